/**
 * PyTorch parity of what the first parity tests leave out (tools/reference/README.md): LoRA
 * dropout 0.1 with the very masks relora draws, and the phase switch of a ReLoRA run — a
 * full-rank warm start on the first part of a whole-run cosine, then a new AdamW over the
 * trainable parameters and a new jagged schedule with two merges (docs/method.md, "Warm start").
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { RandomStream } from '../src/engine/rng.ts';
import * as ops from '../src/engine/ops/index.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { PROJECTIONS } from '../src/nn/llama.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { makeSchedule } from '../src/optim/schedule.ts';
import type { LoraLinear } from '../src/relora/lora-linear.ts';
import { parseResetKind, type ResetKind } from '../src/relora/prune.ts';
import { restart } from '../src/relora/restart.ts';
import { emptyRestartCounters, isRestartAfter } from '../src/relora/restarts.ts';
import { wrapWithLora } from '../src/relora/wrap.ts';
import { resolveConfig } from '../src/train/config.ts';
import { planPhases, scheduleFor } from '../src/train/phases.ts';
import { trainStep } from '../src/train/step.ts';
import { assertFinalWeights, fixtureJson, openFixture, parityModel, relError } from './parity-helpers.ts';

type Fixture = ReturnType<typeof openFixture>;

function batchesOf(fx: Fixture, n: number): Tensor[] {
  const all = fx.readInt32('batches');
  return Array.from({ length: n }, (_, u) => Tensor.from(all.slice(u * 32, u * 32 + 32), [2, 16]));
}

interface Meta {
  losses: number[];
  lr: number[];
  merges_after: number[];
  wrapped_modules: string[];
  fp64_final_max_abs_diff: Record<string, number>;
}

function injectA(layers: Map<string, LoraLinear>, fx: Fixture, prefix: string): void {
  for (const [name, l] of layers) l.loraA.data.set(fx.readFloat32(`${prefix}.${name}`));
}

for (const backend of ['js', 'native'] as const) {
  test(`ReLoRA with LoRA dropout 0.1 (the same masks on both sides) matches PyTorch for all 30 updates on the ${backend} backend`, () => {
    setBackend(backend);
    const fx = openFixture('parity_relora_dropout_traj.safetensors');
    const meta = fixtureJson<Meta & { dropout_stream_seed: number; lora: { dropout: number } }>('parity_relora_dropout_traj.json');
    assert.equal(meta.lora.dropout, 0.1);
    const model = parityModel();
    const dropout = new RandomStream(meta.dropout_stream_seed);
    const layers = wrapWithLora(model, { rank: 4, alpha: 8, dropout: 0.1, targetModules: PROJECTIONS }, { init: new RandomStream(1), dropout });
    assert.deepEqual([...layers.keys()], meta.wrapped_modules);
    injectA(layers, fx, 'A_init');
    const opt = new AdamW(model.namedTrainableParameters(), { lr: 2e-2, weightDecay: 0.01 });
    const lambda = makeSchedule({ scheduler: 'cosine_restarts', steps: 30, warmupSteps: 2, restartWarmupSteps: 2, cycleLength: 10, minLrRatio: 0.1 });
    // The stable fixture's full reset (p = 1, below what users may type).
    const kind: ResetKind = { method: 'magnitude', ratio: 1 };
    const counters = emptyRestartCounters();
    const data = batchesOf(fx, 30);
    for (let u = 1; u <= 30; u++) {
      const r = trainStep(model, opt, [data[u - 1]], 2e-2 * lambda(u - 1), 1.0);
      assert.ok(Math.abs(r.loss - meta.losses[u - 1]) < 1e-4, `loss of update ${u}: ${r.loss} vs ${meta.losses[u - 1]}`);
      if (u === 1) assert.equal(dropout.calls, 14, 'one mask per wrapped layer per training forward');
      if (isRestartAfter(u, 10)) {
        restart(layers, opt, kind, { init: new RandomStream(1), prune: new RandomStream(2) }, counters);
        injectA(layers, fx, `A_merge${counters.merges}`);
      }
    }
    assert.equal(counters.merges, 2);
    assert.equal(dropout.calls, 30 * 14);
    assertFinalWeights(model, fx, meta.fp64_final_max_abs_diff);
    opt.dispose();
    model.dispose();
  });
}

test('the dropout masks PyTorch used are the ones relora draws (first forward, every wrapped layer)', () => {
  const fx = openFixture('parity_relora_dropout_traj.safetensors');
  const meta = fixtureJson<Meta & { dropout_stream_seed: number }>('parity_relora_dropout_traj.json');
  const stream = new RandomStream(meta.dropout_stream_seed);
  for (const name of meta.wrapped_modules) {
    const ref = fx.readFloat32(`mask_update1.${name}`);
    // Draw the mask relora's dropout op draws for this layer: keep iff hash32(key, i) >= threshold.
    const x = Tensor.from(new Float32Array(ref.length).fill(1), [ref.length]);
    const mine = Array.from(dropoutOf(x, stream));
    const mismatch = mine.findIndex((v, i) => Math.abs(v - ref[i]) > 1e-6);
    assert.equal(mismatch, -1, `${name}: entry ${mismatch} is ${mine[mismatch]}, PyTorch used ${ref[mismatch]}`);
  }
});

function dropoutOf(x: Tensor, stream: RandomStream): Float32Array {
  setBackend('js');
  return ops.dropout(x, 0.1, stream, true).data;
}

for (const backend of ['js', 'native'] as const) {
  test(`phase switch: 10 warm-start updates on the whole-run cosine, then 30 ReLoRA updates with a new AdamW, a new schedule and two merges, match PyTorch on the ${backend} backend`, () => {
    setBackend(backend);
    const fx = openFixture('parity_phase_switch.safetensors');
    const meta = fixtureJson<Meta & { warm_start_updates: number }>('parity_phase_switch.json');
    // The run as relora train plans it: the same phases, peaks and schedules as the fixture.
    const cfg = resolveConfig({
      mode: 'relora', steps: 40, warm_start_steps: 10, lr: 2e-2, warm_start_lr: 1e-2, warmup_steps: 2, restart_warmup_steps: 2,
      cycle_length: 10, min_lr_ratio: 0.1, weight_decay: 0.01, rank: 4, alpha: 8, dropout: 0, optimizer_reset: 'zero',
    });
    const plans = planPhases(cfg);
    assert.deepEqual(plans.map((p) => [p.phase, p.start, p.steps]), [['full', 0, 10], ['relora', 10, 30]]);
    const model = parityModel();
    const data = batchesOf(fx, 40);
    let u = 0;
    let layers = new Map<string, LoraLinear>();
    const counters = emptyRestartCounters();
    const merges: number[] = [];
    for (const plan of plans) {
      if (plan.phase === 'relora') {
        for (const [name, p] of model.namedParameters()) {
          const err = relError(p.data, fx.readFloat32(`warm.${name}`));
          assert.ok(err < 1e-4, `after the warm start, ${name}: relative error ${err}`);
        }
        layers = wrapWithLora(model, { rank: 4, alpha: 8, dropout: 0, targetModules: PROJECTIONS }, { init: new RandomStream(1), dropout: new RandomStream(2) });
        assert.deepEqual([...layers.keys()], meta.wrapped_modules);
        injectA(layers, fx, 'A_init');
      }
      // Each phase has an optimizer of its own over what it trains (the trainer does the same).
      const opt = new AdamW(model.namedTrainableParameters(), { lr: plan.lr, weightDecay: cfg.weight_decay });
      const lambda = scheduleFor(cfg, plan);
      for (let s = 0; s < plan.steps; s++, u++) {
        const lr = plan.lr * lambda(s);
        assert.ok(Math.abs(lr - meta.lr[u]) < 1e-9, `lr of update ${u + 1}: ${lr} vs ${meta.lr[u]}`);
        const r = trainStep(model, opt, [data[u]], lr, cfg.clip_norm);
        assert.ok(Math.abs(r.loss - meta.losses[u]) < 1e-4, `loss of update ${u + 1}: ${r.loss} vs ${meta.losses[u]}`);
        if (plan.phase === 'relora' && isRestartAfter(s + 1, cfg.cycle_length)) {
          restart(layers, opt, parseResetKind(cfg.optimizer_reset), { init: new RandomStream(1), prune: new RandomStream(2) }, counters);
          injectA(layers, fx, `A_merge${counters.merges}`);
          merges.push(u + 1);
        }
      }
      assert.equal(opt.stepCount, plan.steps, 'a new optimizer per phase: its step count starts at 0');
      opt.dispose();
    }
    assert.deepEqual(merges, meta.merges_after);
    assertFinalWeights(model, fx, meta.fp64_final_max_abs_diff);
    model.dispose();
  });
}
