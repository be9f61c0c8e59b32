/**
 * The fused LoRA linear op and the write-instead-of-accumulate gradient slots, on every backend:
 * the fused op must give what the composed ops give (linear, dropout, linear, linear, scale,
 * add), values and every gradient, with the same dropout masks.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { loadNativeKernels } from '../src/engine/backends/native.ts';
import * as ops from '../src/engine/ops/index.ts';
import { RandomStream } from '../src/engine/rng.ts';
import { scope, Tensor } from '../src/engine/tensor.ts';
import { Linear } from '../src/nn/layers.ts';
import { AdamW } from '../src/optim/adamw.ts';
import { LoraLinear } from '../src/relora/lora-linear.ts';

import { maxRelDiff, param } from './engine-helpers.ts';

const backends = loadNativeKernels() ? (['js', 'native'] as const) : (['js'] as const);

interface Case { p: number; wTrainable: boolean; twice: boolean; order?: 'factored' | 'merged'; factorsFrozen?: boolean }

/** out, and the gradients of x, W, A, B after backward of sum(out ∘ G) (twice: two layers share x). */
function run(c: Case, fused: boolean): Float32Array[] {
  const inF = 12, outF = 7, r = 3;
  const x = param([2, 5, inF], 1), W = param([outF, inF], 2, c.wTrainable), A = param([r, inF], 3, !c.factorsFrozen), Bm = param([outF, r], 4, !c.factorsFrozen);
  const G = Tensor.from(Float32Array.from({ length: 2 * 5 * outF }, (_, i) => Math.sin(i)), [2, 5, outF]);
  const s = 0.75;
  const result = scope(() => {
    const streamA = new RandomStream(9), streamB = new RandomStream(9);
    const layer = (): Tensor => {
      if (fused) {
        const d = c.p > 0 ? { p: c.p, key: streamA.maskKey() } : null;
        return ops.loraLinear(x, W, A, Bm, s, d, { order: c.order });
      }
      const xd = ops.dropout(x, c.p, streamB, true);
      return ops.add(ops.linear(x, W), ops.scale(ops.linear(ops.linear(xd, A), Bm), s));
    };
    let out = layer();
    if (c.twice) out = ops.add(out, layer());
    ops.sum(ops.mul(out, G)).backward();
    return [Float32Array.from(out.data)];
  });
  for (const t of [x, W, A, Bm]) result.push(t.grad ? Float32Array.from(t.grad.data) : new Float32Array(0));
  for (const t of [x, W, A, Bm]) t.dispose();
  return result;
}

for (const backend of backends) {
  test(`loraLinear equals the composed LoRA ops on the ${backend} backend (values and gradients)`, () => {
    setBackend(backend);
    for (const c of [
      { p: 0, wTrainable: false, twice: false }, { p: 0.3, wTrainable: false, twice: false },
      { p: 0.3, wTrainable: true, twice: false }, { p: 0.5, wTrainable: false, twice: true }, { p: 0, wTrainable: true, twice: true },
      { p: 0, wTrainable: false, twice: false, order: 'factored' as const }, { p: 0, wTrainable: false, twice: true, order: 'merged' as const },
      { p: 0, wTrainable: true, twice: false, order: 'merged' as const },
      { p: 0.3, wTrainable: false, twice: false, factorsFrozen: true }, { p: 0, wTrainable: false, twice: false, order: 'merged' as const, factorsFrozen: true },
    ]) {
      const fused = run(c, true), composed = run(c, false);
      const names = ['out', 'dx', 'dW', 'dA', 'dB'];
      for (let i = 0; i < names.length; i++) {
        assert.equal(fused[i].length, composed[i].length, `${names[i]} presence ${JSON.stringify(c)}`);
        if (fused[i].length) assert.ok(maxRelDiff(fused[i], composed[i]) < 1e-5, `${names[i]} ${JSON.stringify(c)}: ${maxRelDiff(fused[i], composed[i])}`);
      }
      assert.equal(fused[2].length === 0, !c.wTrainable, 'a frozen W gets no gradient');
      assert.equal(fused[3].length === 0, c.factorsFrozen === true, 'frozen factors get no gradient');
    }
  });

  test(`fresh gradient slots are written, later contributions added (${backend})`, () => {
    setBackend(backend);
    const a = param([6], 5);
    const g = Tensor.from(Float32Array.from([1, 2, 3, 4, 5, 6]), [6]);
    scope(() => ops.sum(ops.mul(ops.add(a, a), g)).backward());
    assert.deepEqual([...a.grad!.data], [2, 4, 6, 8, 10, 12]);
    a.grad!.dispose();
    a.grad = null;
    scope(() => ops.sum(ops.mul(a, a)).backward());
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(a.grad!.data[i] - 2 * a.data[i]) < 1e-6);
    // A second backward without clearing accumulates onto the existing gradient.
    scope(() => ops.sum(ops.scale(a, 3)).backward());
    for (let i = 0; i < 6; i++) assert.ok(Math.abs(a.grad!.data[i] - (2 * a.data[i] + 3)) < 1e-6);
    a.dispose();
  });

  test(`rope's backward writes a fresh gradient exactly as it accumulates one (${backend})`, () => {
    setBackend(backend);
    const tables = ops.ropeTables(6, 4, 10000);
    const x = param([2, 6, 8], 6);
    const G = param([2, 6, 8], 7, false);
    scope(() => ops.sum(ops.mul(ops.rope(x, tables, 2), G)).backward());
    const fresh = Float32Array.from(x.grad!.data);
    x.grad!.data.fill(0);
    scope(() => ops.sum(ops.mul(ops.rope(x, tables, 2), G)).backward());
    assert.deepEqual([...x.grad!.data], [...fresh]);
    x.dispose();
    G.dispose();
  });
}

test('AdamW.zeroGrad drops gradients (set to none) and step skips parameters without one', () => {
  setBackend('js');
  const p = param([4], 8), q = param([4], 9);
  const opt = new AdamW([['p', p], ['q', q]], { lr: 0.1 });
  scope(() => ops.sum(ops.add(p, q)).backward());
  opt.step();
  opt.zeroGrad();
  assert.equal(p.grad, null);
  assert.equal(q.grad, null);
  const qBefore = Float32Array.from(q.data);
  scope(() => ops.sum(ops.scale(p, 2)).backward());
  assert.deepEqual([...p.grad!.data], [2, 2, 2, 2]);
  opt.step();
  assert.deepEqual([...q.data], [...qBefore]);
  opt.dispose();
  p.dispose();
  q.dispose();
});

test('frozen-W bf16 products: native AMX path equals the emulated rounding, and stays close to fp32', () => {
  const inF = 40, outF = 24, r = 4;
  const results: Record<string, Float32Array[]> = {};
  for (const [name, backend, bf16] of [['js-fp32', 'js', false], ['js-bf16', 'js', true], ...backends.filter((b) => b === 'native').map((b) => [`${b}-bf16`, b, true])] as [string, 'js' | 'native', boolean][]) {
    setBackend(backend);
    const x = param([3, 7, inF], 11), W = param([outF, inF], 12, false), A = param([r, inF], 13), Bm = param([outF, r], 14);
    const G = param([3, 7, outF], 15, false);
    const out = scope(() => {
      const y = ops.loraLinear(x, W, A, Bm, 0.5, { p: 0.2, key: 77 }, { frozenBf16: bf16 });
      ops.sum(ops.mul(y, G)).backward();
      return Float32Array.from(y.data);
    });
    results[name] = [out, Float32Array.from(x.grad!.data), Float32Array.from(A.grad!.data), Float32Array.from(Bm.grad!.data)];
    assert.equal(W.grad, null);
    for (const t of [x, W, A, Bm, G]) t.dispose();
  }
  for (let i = 0; i < 4; i++) {
    const emulatedVsFp32 = maxRelDiff(results['js-bf16'][i], results['js-fp32'][i]);
    // bf16 keeps 8 significant bits: visibly different from fp32, but only at the 1e-2 level.
    if (i < 2) assert.ok(emulatedVsFp32 > 1e-5 && emulatedVsFp32 < 3e-2, `tensor ${i}: bf16 vs fp32 ${emulatedVsFp32}`);
    if (results['native-bf16']) assert.ok(maxRelDiff(results['native-bf16'][i], results['js-bf16'][i]) < 1e-5, `tensor ${i}: native vs emulated bf16`);
  }
});

test('loraProductOrder: merged only without dropout and when tokens·(in+out) exceed (2×, with backward) in·out', () => {
  assert.equal(ops.loraProductOrder(2048, 512, 512, 128, false, true), 'merged');
  assert.equal(ops.loraProductOrder(2048, 512, 512, 128, true, true), 'factored');
  // 512 tokens: 512·1024 = 2·512·512, a tie, stays factored; one token more merges.
  assert.equal(ops.loraProductOrder(512, 512, 512, 8, false, true), 'factored');
  assert.equal(ops.loraProductOrder(513, 512, 512, 8, false, true), 'merged');
  // Forward only (generation, evaluation) merges from half as many tokens.
  assert.equal(ops.loraProductOrder(300, 512, 512, 8, false, false), 'merged');
  assert.equal(ops.loraProductOrder(1, 512, 512, 8, false, false), 'factored');
  setBackend('js');
  const x = param([4, 3], 41, false), W = param([2, 3], 42, false), A = param([1, 3], 43), Bm = param([2, 1], 44);
  assert.throws(() => ops.loraLinear(x, W, A, Bm, 1, { p: 0.1, key: 1 }, { order: 'merged' }), /merged order needs dropout off/);
  for (const t of [x, W, A, Bm]) t.dispose();
});

for (const backend of backends) {
  test(`merged and factored orders agree with bf16 frozen products too (${backend})`, () => {
    setBackend(backend);
    const inF = 48, outF = 32, r = 4;
    const results: Float32Array[][] = [];
    for (const order of ['factored', 'merged'] as const) {
      const x = param([2, 40, inF], 51), W = param([outF, inF], 52, false), A = param([r, inF], 53), Bm = param([outF, r], 54);
      const G = param([2, 40, outF], 55, false);
      const out = scope(() => {
        const y = ops.loraLinear(x, W, A, Bm, 0.5, null, { frozenBf16: true, order });
        ops.sum(ops.mul(y, G)).backward();
        return Float32Array.from(y.data);
      });
      results.push([out, Float32Array.from(x.grad!.data), Float32Array.from(A.grad!.data), Float32Array.from(Bm.grad!.data)]);
      for (const t of [x, W, A, Bm, G]) t.dispose();
    }
    // Merged rounds W + s·B·A to bf16 where factored rounds only W: equal to bf16 precision.
    for (let i = 0; i < 4; i++) assert.ok(maxRelDiff(results[1][i], results[0][i]) < 3e-2, `tensor ${i}: ${maxRelDiff(results[1][i], results[0][i])}`);
  });
}

for (const backend of backends) {
  test(`cross-entropy writes a fresh logits gradient exactly as it accumulates one, ignored rows zero (${backend})`, () => {
    setBackend(backend);
    const logits = param([5, 9], 21);
    const targets = Tensor.from(Int32Array.from([3, -100, 0, 8, -100]), [5], 'int32');
    scope(() => ops.crossEntropy(logits, targets).backward());
    const fresh = Float32Array.from(logits.grad!.data);
    for (const r of [1, 4]) assert.ok(fresh.subarray(r * 9, r * 9 + 9).every((x) => x === 0), `ignored row ${r}`);
    logits.grad!.data.fill(0);
    scope(() => ops.crossEntropy(logits, targets).backward());
    assert.deepEqual([...logits.grad!.data], [...fresh]);
    logits.dispose();
  });
}

test('LoraLinear passes frozenBf16 to the op: close to, not equal to, the fp32 layer', () => {
  setBackend('js');
  const base = new Linear(32, 16);
  new RandomStream(31).uniform(base.weight.data, -1, 1);
  const opts = { rank: 4, alpha: 8, dropout: 0 };
  const fp32 = new LoraLinear(base, opts, new RandomStream(32), new RandomStream(33));
  const bf16 = new LoraLinear(base, { ...opts, frozenBf16: true }, new RandomStream(32), new RandomStream(33));
  assert.equal(bf16.frozenBf16, true);
  assert.equal(fp32.frozenBf16, false);
  const x = param([3, 32], 34, false);
  const [a, b] = scope(() => [Float32Array.from(fp32.forward(x).data), Float32Array.from(bf16.forward(x).data)]);
  const d = maxRelDiff(b, a);
  assert.ok(d > 1e-5 && d < 3e-2, `bf16 vs fp32 layer output: ${d}`);
  x.dispose();
});
