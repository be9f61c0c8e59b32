/**
 * In bf16 precision a LoRA layer keeps the bf16 copy of its frozen W between merges rather than
 * rounding W twice per step. The fp32 W stays the master copy: a merge or a loaded state dict must
 * drop the kept copy, so the next forward and backward equal, bit for bit, a layer that never had
 * one — and a layer with a stale copy would not.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { loadNativeKernels } from '../src/engine/backends/native.ts';
import * as ops from '../src/engine/ops/index.ts';
import { withPrecision, type Precision } from '../src/engine/ops/precision.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { noGrad, scope, Tensor } from '../src/engine/tensor.ts';
import { Linear } from '../src/nn/layers.ts';
import { LoraLinear } from '../src/relora/lora-linear.ts';
import { param } from './engine-helpers.ts';

const backends = loadNativeKernels() ? (['js', 'native'] as const) : (['js'] as const);
const IN = 48, OUT = 40;

/** A layer with W, A and B all non-zero, so a merge changes W. */
function layer(): LoraLinear {
  const base = new Linear(IN, OUT);
  new RandomStream(1).uniform(base.weight.data, -1, 1);
  const l = new LoraLinear(base, { rank: 8, alpha: 16, dropout: 0.1 }, new RandomStream(2), new RandomStream(3));
  new RandomStream(4).uniform(l.loraB.data, -0.5, 0.5);
  return l;
}

/** Output and every gradient of one forward and backward through the layer, as copies. */
function step(l: LoraLinear, x: Tensor, p: Precision): Float32Array[] {
  for (const t of [x, l.loraA, l.loraB]) t.grad?.data.fill(0);
  const y = withPrecision(p, () => scope(() => {
    const out = l.forward(x);
    ops.sum(ops.mul(out, out)).backward();
    return Float32Array.from(out.data);
  }));
  return [y, ...[x, l.loraA, l.loraB].map((t) => Float32Array.from(t.grad!.data))];
}

function assertBitEqual(a: Float32Array[], b: Float32Array[], what: string): void {
  const names = ['y', 'dx', 'dA', 'dB'];
  for (let i = 0; i < a.length; i++) {
    const ua = new Uint32Array(a[i].buffer), ub = new Uint32Array(b[i].buffer);
    assert.deepEqual(ua, ub, `${what}: ${names[i]} differs`);
  }
}

/** The op itself, without a kept copy (eval: no dropout). */
function uncachedOutput(l: LoraLinear, x: Tensor): Float32Array {
  return withPrecision('bf16', () => noGrad(() => scope(() => Float32Array.from(ops.loraLinear(x, l.weight, l.loraA, l.loraB, l.scaling, null).data))));
}

for (const backend of backends) {
  test(`${backend}: a merge drops the kept bf16 W — the next step equals a layer that never kept one, bit for bit`, () => {
    setBackend(backend);
    const x = param([2, 3, IN], 5, true);
    const kept = layer(), fresh = layer();
    step(kept, x, 'bf16'); // keeps the bf16 copy of the pre-merge W
    step(fresh, x, 'fp32'); // the same dropout draw, without making a copy
    kept.mergeAndReinit(new RandomStream(6));
    fresh.mergeAndReinit(new RandomStream(6));
    new RandomStream(7).uniform(kept.loraB.data, -0.5, 0.5);
    new RandomStream(7).uniform(fresh.loraB.data, -0.5, 0.5);
    assertBitEqual(step(kept, x, 'bf16'), step(fresh, x, 'bf16'), 'after a merge');
    // Twice with the kept copy (now of the merged W) changes nothing either.
    assertBitEqual(step(kept, x, 'bf16'), step(fresh, x, 'bf16'), 'second step after the merge');
    kept.eval();
    assert.deepEqual(withPrecision('bf16', () => noGrad(() => scope(() => Float32Array.from(kept.forward(x).data)))), uncachedOutput(kept, x));
    for (const t of [x, ...kept.parameters(), ...fresh.parameters()]) t.dispose();
  });

  test(`${backend}: loading a state dict drops the kept bf16 W`, () => {
    setBackend(backend);
    const x = param([5, IN], 8, false);
    const l = layer().eval();
    const before = withPrecision('bf16', () => noGrad(() => scope(() => Float32Array.from(l.forward(x).data))));
    const w = new Float32Array(OUT * IN);
    new RandomStream(9).uniform(w, -1, 1);
    l.loadStateDict({ weight: w, 'lora_A.weight': l.loraA.data.slice(), 'lora_B.weight': l.loraB.data.slice() });
    const after = withPrecision('bf16', () => noGrad(() => scope(() => Float32Array.from(l.forward(x).data))));
    assert.notDeepEqual(after, before);
    assert.deepEqual(after, uncachedOutput(l, x));
    for (const t of [x, ...l.parameters()]) t.dispose();
  });
}
