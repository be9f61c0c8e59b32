/**
 * In bf16 precision an activation is rounded once for every product that takes it (forward and
 * backward, and several ops on the same input): the results equal, bit for bit, products on a
 * private copy of the same values, and a shared copy freed by an inner scope before backward is
 * made again rather than read after it was freed.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { loadNativeKernels } from '../src/engine/backends/native.ts';
import * as ops from '../src/engine/ops/index.ts';
import { withPrecision } from '../src/engine/ops/precision.ts';
import { scope, Tensor } from '../src/engine/tensor.ts';
import { param } from './engine-helpers.ts';

const backends = loadNativeKernels() ? (['js', 'native'] as const) : (['js'] as const);

/** y1 + y2 + y3 with yi = h·Wiᵀ, h = x·W0ᵀ; `private` gives each product its own leaf copy of h. */
function threeHeads(x: Tensor, w: Tensor[], privateCopies: boolean, innerScope: boolean): Float32Array[] {
  // Drop the gradients rather than zero them: every run then writes them afresh (beta 0), as
  // adding into zeros may take a different oneDNN kernel (gemm_bf16.c) that rounds differently.
  for (const t of [x, ...w]) {
    t.grad?.dispose();
    t.grad = null;
  }
  withPrecision('bf16', () => scope(() => {
    const h = ops.linear(x, w[0]);
    const input = (): Tensor => {
      if (!privateCopies) return h;
      // Same values, but a leaf: its bf16 copy is the product's own. Gradients flow through `h`
      // by adding the copy's gradient back, below.
      const c = Tensor.from(Float32Array.from(h.data), h.shape);
      c.requiresGrad = true;
      copies.push(c);
      return c;
    };
    const copies: Tensor[] = [];
    // With innerScope the first product, which makes h's shared copy, runs in a scope that frees
    // the copy on return (the product's output survives, returned).
    const first = (): Tensor => ops.linear(input(), w[1]);
    const y1 = innerScope ? scope(first) : first();
    const y = ops.add(ops.add(y1, ops.linear(input(), w[2])), ops.linear(input(), w[3]));
    ops.sum(ops.mul(y, y)).backward();
    if (privateCopies) {
      // dW0 and dx through h: backward of h with the summed gradient of its copies.
      const g = new Float32Array(h.size);
      for (const c of copies) for (let i = 0; i < g.length; i++) g[i] += c.grad!.data[i];
      ops.sum(ops.mul(h, Tensor.from(g, h.shape))).backward();
    }
  }));
  return [x, ...w].map((t) => Float32Array.from(t.grad!.data));
}

for (const backend of backends) {
  test(`${backend}: products sharing an activation's bf16 copy equal products on private copies, bit for bit`, () => {
    setBackend(backend);
    const x = param([6, 16], 1, true), w = [2, 3, 4, 5].map((s) => param([16, 16], s, true, 0.5));
    const shared = threeHeads(x, w, false, false), own = threeHeads(x, w, true, false);
    for (let i = 0; i < shared.length; i++) assert.deepEqual(new Uint32Array(shared[i].buffer), new Uint32Array(own[i].buffer), `gradient ${i}`);
    for (const t of [x, ...w]) t.dispose();
  });

  test(`${backend}: a shared bf16 copy freed by an inner scope before backward is made again`, () => {
    setBackend(backend);
    const x = param([6, 16], 1, true), w = [2, 3, 4, 5].map((s) => param([16, 16], s, true, 0.5));
    const outer = threeHeads(x, w, false, false), inner = threeHeads(x, w, false, true);
    for (let i = 0; i < outer.length; i++) assert.deepEqual(new Uint32Array(inner[i].buffer), new Uint32Array(outer[i].buffer), `gradient ${i}`);
    for (const t of [x, ...w]) t.dispose();
  });
}
