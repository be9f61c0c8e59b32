/**
 * releaseUnreadValues gives back, right after a block's forward, the buffers of intermediates no
 * backward reads: gradients are bit-identical to keeping everything, the released tensors are the
 * ones each op's `reads` says nobody needs (in bf16 nearly the whole block, in fp32 only what rope
 * and add consume), and reading a released tensor throws a message that says why.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { loadNativeKernels } from '../src/engine/backends/native.ts';
import * as ops from '../src/engine/ops/index.ts';
import { withPrecision, type Precision } from '../src/engine/ops/precision.ts';
import { releaseUnreadValues } from '../src/engine/release.ts';
import { scope, Tensor } from '../src/engine/tensor.ts';
import { param } from './engine-helpers.ts';

const backends = loadNativeKernels() ? (['js', 'native'] as const) : (['js'] as const);
const B = 2, T = 8, H = 2, D = 8, C = H * D, F = 24;

/** A decoder layer's ops (as src/nn/llama.ts composes them) on x = input·W0ᵀ; returns every gradient and the intermediates. */
function layer(w: Tensor[], input: Tensor, precision: Precision, release: boolean): { grads: Float32Array[]; released: string[] } {
  // Dropped, not zeroed: every run writes its gradients afresh (beta 0), as adding into zeros may
  // take a different oneDNN kernel (gemm_bf16.c) that rounds differently.
  for (const t of w) {
    t.grad?.dispose();
    t.grad = null;
  }
  const tables = ops.ropeTables(T, D, 10000);
  let released: string[] = [];
  withPrecision(precision, () => scope(() => {
    const x = ops.linear(input, w[0]);
    const n1 = ops.rmsnorm(x, w[1], 1e-6);
    const qLin = ops.linear(n1, w[2]), kLin = ops.linear(n1, w[3]), v = ops.linear(n1, w[4]);
    const q = ops.rope(qLin, tables, H), k = ops.rope(kLin, tables, H);
    const att = ops.causalAttention(q, k, v, H);
    const o = ops.linear(att, w[5]);
    const h = ops.add(x, o);
    const n2 = ops.rmsnorm(h, w[6], 1e-6);
    const gate = ops.linear(n2, w[7]), up = ops.linear(n2, w[8]);
    const act = ops.swiglu(gate, up);
    const down = ops.linear(act, w[9]);
    const out = ops.add(h, down);
    if (release) releaseUnreadValues(out, [x]);
    const named = { x, n1, qLin, kLin, v, q, k, att, o, h, n2, gate, up, act, down, out };
    released = Object.entries(named).filter(([, t]) => t.disposed).map(([name]) => name).sort();
    ops.sum(ops.mul(out, out)).backward();
    return null;
  }));
  return { grads: w.map((t) => Float32Array.from(t.grad!.data)), released };
}

function weights(): Tensor[] {
  const shapes = [[C, C], [C], [C, C], [C, C], [C, C], [C, C], [C], [F, C], [F, C], [C, F]];
  return shapes.map((s, i) => {
    const p = param(s, 10 + i, true, 0.3);
    if (s.length === 1) p.data.fill(1);
    return p;
  });
}

for (const backend of backends) {
  for (const precision of ['bf16', 'fp32'] as const) {
    test(`${backend} ${precision}: released intermediates leave every gradient bit-identical`, () => {
      setBackend(backend);
      const w = weights(), input = param([B, T, C], 3, false);
      const kept = layer(w, input, precision, false), freed = layer(w, input, precision, true);
      for (let i = 0; i < w.length; i++) assert.deepEqual(freed.grads[i], kept.grads[i], `gradient ${i}`);
      // fp32: rope's and add's inputs only (everything else is read by a backward); bf16: every
      // product keeps bf16 copies and attention its rounded q, k, v, so only what rmsnorm and
      // swiglu read stays (x and the output are the block's own).
      const want = precision === 'fp32' ? ['down', 'kLin', 'o', 'qLin'] : ['act', 'att', 'down', 'k', 'kLin', 'n1', 'n2', 'o', 'q', 'qLin', 'v'];
      assert.deepEqual(freed.released, want.sort());
      assert.deepEqual(kept.released, [], 'nothing released without the call');
    });
  }

  test(`${backend}: reading a released tensor throws and says why`, () => {
    setBackend(backend);
    const w = param([C, C], 1), input = param([B, T, C], 2, false);
    withPrecision('bf16', () => scope(() => {
      const x = ops.linear(input, w);
      const y = ops.linear(ops.linear(x, w), w);
      const inner = y.node!.inputs[0];
      releaseUnreadValues(y, [x]);
      assert.throws(() => inner.data, /values were released after forward because no backward reads them/);
      assert.doesNotThrow(() => x.data);
      assert.doesNotThrow(() => y.data);
      return null;
    }));
  });
}
