/**
 * PyTorch parity of the default random optimizer-state pruning at 0.999 (docs/method.md,
 * "Optimizer reset"): the reference code's independent masks for the two moments (`reference`)
 * and relora's one mask for both (`shared`), in a 30-update ReLoRA run with two merges. The
 * PyTorch side (tools/reference/make_prune_fixtures.py) prunes with the masks relora's
 * counter-based stream draws, so both sides prune exactly the same entries.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { Tensor } from '../src/engine/tensor.ts';
import { PROJECTIONS } from '../src/nn/llama.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { makeSchedule } from '../src/optim/schedule.ts';
import { parseResetKind, resetMomentsInPlace } from '../src/relora/prune.ts';
import { restart } from '../src/relora/restart.ts';
import { emptyRestartCounters, isRestartAfter } from '../src/relora/restarts.ts';
import { wrapWithLora } from '../src/relora/wrap.ts';
import { trainStep } from '../src/train/step.ts';
import { assertFinalWeights, fixtureJson, openFixture, parityModel } from './parity-helpers.ts';

interface PruneMeta {
  optimizer_reset: string;
  prune_ratio: number;
  prune_stream_seed: number;
  prune_order: string[];
  kept_per_merge: { exp_avg: number; exp_avg_sq: number; both: number }[];
  wrapped_modules: string[];
  merges_after: number[];
  losses: number[];
  lr: number[];
  fp64_final_max_abs_diff: Record<string, number>;
}

const VARIANTS = ['reference', 'shared'] as const;
const MOMENTS = [['exp_avg', 'm'], ['exp_avg_sq', 'v']] as const;

function load(variant: (typeof VARIANTS)[number]) {
  const meta = fixtureJson<PruneMeta>(`parity_prune_${variant}.json`);
  assert.equal(meta.optimizer_reset, variant);
  assert.equal(meta.prune_ratio, 0.999);
  return { fx: openFixture(`parity_prune_${variant}.safetensors`), meta };
}

/** Entry i kept (nonzero) on exactly the same entries as the reference, and within rounding there. */
function assertSamePruning(mine: Float32Array, ref: Float32Array, what: string): number {
  let kept = 0;
  for (let i = 0; i < ref.length; i++) {
    assert.equal(mine[i] !== 0, ref[i] !== 0, `${what}: entry ${i} is ${mine[i]}, PyTorch has ${ref[i]}`);
    if (ref[i] === 0) continue;
    kept++;
    assert.ok(Math.abs(mine[i] - ref[i]) <= 1e-3 * Math.abs(ref[i]), `${what}: entry ${i} is ${mine[i]}, PyTorch has ${ref[i]}`);
  }
  return kept;
}

for (const variant of VARIANTS) {
  test(`optimizer_reset ${variant} (random 0.999) prunes the moments PyTorch pruned, entry for entry, at both merges`, () => {
    const { fx, meta } = load(variant);
    const kind = parseResetKind(variant);
    const stream = new RandomStream(meta.prune_stream_seed);
    for (let k = 1; k <= 2; k++) {
      const kept = { exp_avg: 0, exp_avg_sq: 0 };
      for (const name of meta.prune_order) {
        const m = fx.readFloat32(`merge${k}.pre_prune.exp_avg.${name}`);
        const v = fx.readFloat32(`merge${k}.pre_prune.exp_avg_sq.${name}`);
        resetMomentsInPlace(m, v, kind, stream);
        kept.exp_avg += assertSamePruning(m, fx.readFloat32(`merge${k}.exp_avg.${name}`), `merge ${k} exp_avg of ${name}`);
        kept.exp_avg_sq += assertSamePruning(v, fx.readFloat32(`merge${k}.exp_avg_sq.${name}`), `merge ${k} exp_avg_sq of ${name}`);
      }
      assert.deepEqual(kept, { exp_avg: meta.kept_per_merge[k - 1].exp_avg, exp_avg_sq: meta.kept_per_merge[k - 1].exp_avg_sq });
    }
  });
}

for (const variant of VARIANTS) {
  for (const backend of ['js', 'native'] as const) {
    test(`ReLoRA with optimizer_reset ${variant} (random 0.999, two merges) matches PyTorch for all 30 updates on the ${backend} backend`, () => {
      setBackend(backend);
      const { fx, meta } = load(variant);
      const model = parityModel();
      const layers = wrapWithLora(model, { rank: 4, alpha: 8, dropout: 0, targetModules: PROJECTIONS }, { init: new RandomStream(1), dropout: new RandomStream(2) });
      assert.deepEqual([...layers.keys()], meta.wrapped_modules);
      for (const [name, l] of layers) l.loraA.data.set(fx.readFloat32(`A_init.${name}`));
      const opt = new AdamW(model.namedTrainableParameters(), { lr: 2e-2, weightDecay: 0.01 });
      // Masks are drawn tensor by tensor in the optimizer's order; PyTorch drew them in this one.
      assert.deepEqual(opt.params.map(([n]) => n).filter((n) => /\.lora_[AB]\.weight$/.test(n)), meta.prune_order);
      const lambda = makeSchedule({ scheduler: 'cosine_restarts', steps: 30, warmupSteps: 2, restartWarmupSteps: 2, cycleLength: 10, minLrRatio: 0.1 });
      const streams = { init: new RandomStream(1), prune: new RandomStream(meta.prune_stream_seed) };
      const counters = emptyRestartCounters();
      const all = fx.readInt32('batches');
      const merges: number[] = [];
      for (let u = 1; u <= 30; u++) {
        const lr = 2e-2 * lambda(u - 1);
        assert.ok(Math.abs(lr - meta.lr[u - 1]) < 1e-9, `lr of update ${u}`);
        const r = trainStep(model, opt, [Tensor.from(all.slice((u - 1) * 32, u * 32), [2, 16])], lr, 1.0);
        assert.ok(Math.abs(r.loss - meta.losses[u - 1]) < 1e-4, `loss of update ${u}: ${r.loss} vs ${meta.losses[u - 1]}`);
        if (!isRestartAfter(u, 10)) continue;
        restart(layers, opt, parseResetKind(meta.optimizer_reset), streams, counters);
        for (const [name, l] of layers) l.loraA.data.set(fx.readFloat32(`A_merge${counters.merges}.${name}`));
        merges.push(u);
        const k = counters.merges;
        for (const name of meta.prune_order) {
          const s = opt.state.get(name)!;
          for (const [moment, key] of MOMENTS) assertSamePruning(s[key].data, fx.readFloat32(`merge${k}.${moment}.${name}`), `after merge ${k}, ${moment} of ${name}`);
        }
      }
      assert.deepEqual(merges, meta.merges_after);
      assert.equal(opt.stepCount, 30, 'the Adam step count is never reset');
      assertFinalWeights(model, fx, meta.fp64_final_max_abs_diff);
      opt.dispose();
      model.dispose();
    });
  }
}
