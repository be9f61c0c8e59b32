/**
 * Gradient checks.
 * 1. Kernel level, float64: the js kernels are run on Float64Arrays (they only index and add), and
 *    every backward kernel is compared element by element with central differences of its forward.
 * 2. Op level, float32: every autodiff op through the Tensor API, on each available backend.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsKernels as k } from '../src/engine/backends/js.ts';
import { setBackend } from '../src/engine/backend.ts';
import { runGradchecks } from '../src/engine/gradcheck.ts';
import { ropeTables } from '../src/engine/ops/rope.ts';
import { RandomStream } from '../src/engine/rng.ts';

type F = Float32Array; // the kernels' declared type; Float64Arrays are passed at run time
const f64 = (a: Float64Array): F => a as unknown as F;

interface KernelCase {
  name: string;
  inputs: Record<string, number>;
  outSize: number;
  forward(x: Record<string, F>, out: F): void;
  /** Accumulates d(sum(out·dout))/dx into grads[name] (zero-initialised). */
  backward(x: Record<string, F>, dout: F, grads: Record<string, F>): void;
}

const B = 2, T = 4, H = 2, D = 4, HD = H * D, N = B * T * HD;
const rt = ropeTables(T, D, 10000);
const cos = f64(Float64Array.from(rt.cos)), sin = f64(Float64Array.from(rt.sin));
const tokenIds = Int32Array.from([2, 0, 2, 4, 1]);
const targets = Int32Array.from([1, -100, 4, 0]);

const cases: KernelCase[] = [
  {
    name: 'gemm (all transposes, batched)',
    inputs: { a: 2 * 3 * 4, b: 2 * 4 * 5 },
    outSize: 2 * 3 * 5 * 4,
    forward: (x, out) => {
      let o = 0;
      for (const ta of [false, true]) for (const tb of [false, true]) {
        k.gemm(ta, tb, 3, 5, 4, 1, x.a, ta ? 3 : 4, 12, x.b, tb ? 4 : 5, 20, 0, out.subarray(o), 5, 15, 2);
        o += 30;
      }
    },
    backward: (x, dout, g) => {
      let o = 0;
      for (const ta of [false, true]) for (const tb of [false, true]) {
        const dC = dout.subarray(o);
        const lda = ta ? 3 : 4, ldb = tb ? 4 : 5;
        if (!ta) k.gemm(false, !tb, 3, 4, 5, 1, dC, 5, 15, x.b, ldb, 20, 1, g.a, lda, 12, 2);
        else k.gemm(tb, true, 4, 3, 5, 1, x.b, ldb, 20, dC, 5, 15, 1, g.a, lda, 12, 2);
        if (!tb) k.gemm(!ta, false, 4, 5, 3, 1, x.a, lda, 12, dC, 5, 15, 1, g.b, ldb, 20, 2);
        else k.gemm(true, ta, 5, 4, 3, 1, dC, 5, 15, x.a, lda, 12, 1, g.b, ldb, 20, 2);
        o += 30;
      }
    },
  },
  {
    name: 'embedding',
    inputs: { w: 5 * 3 },
    outSize: 5 * 3,
    forward: (x, out) => k.embeddingForward(x.w, tokenIds, out, 5, 5, 3),
    backward: (_x, dout, g) => k.embeddingBackward(dout, tokenIds, g.w, 5, 5, 3),
  },
  {
    name: 'rmsnorm',
    inputs: { x: 3 * 6, w: 6 },
    outSize: 18,
    forward: (x, out) => k.rmsnormForward(x.x, x.w, out, f64(new Float64Array(3)), 3, 6, 1e-6),
    backward: (x, dout, g) => {
      const rstd = f64(new Float64Array(3));
      k.rmsnormForward(x.x, x.w, f64(new Float64Array(18)), rstd, 3, 6, 1e-6);
      k.rmsnormBackward(dout, x.x, x.w, rstd, g.x, g.w, 3, 6);
    },
  },
  {
    name: 'rope',
    inputs: { x: N },
    outSize: N,
    forward: (x, out) => k.ropeForward(x.x, cos, sin, out, B, T, H, D),
    backward: (_x, dout, g) => k.ropeBackward(dout, cos, sin, g.x, B, T, H, D),
  },
  {
    name: 'attention',
    inputs: { q: N, k: N, v: N },
    outSize: N,
    forward: (x, out) => k.attentionForward(x.q, x.k, x.v, out, f64(new Float64Array(B * H * T * T)), B, T, H, D, 0.5),
    backward: (x, dout, g) => {
      const probs = f64(new Float64Array(B * H * T * T));
      k.attentionForward(x.q, x.k, x.v, f64(new Float64Array(N)), probs, B, T, H, D, 0.5);
      k.attentionBackward(dout, x.q, x.k, x.v, probs, g.q, g.k, g.v, B, T, H, D, 0.5);
    },
  },
  {
    name: 'silu',
    inputs: { x: 7 },
    outSize: 7,
    forward: (x, out) => k.siluForward(x.x, out, 7),
    backward: (x, dout, g) => k.siluBackward(dout, x.x, g.x, 7),
  },
  {
    name: 'swiglu',
    inputs: { g: 7, u: 7 },
    outSize: 7,
    forward: (x, out) => k.swigluForward(x.g, x.u, out, 7),
    backward: (x, dout, g) => k.swigluBackward(dout, x.g, x.u, g.g, g.u, 7, true),
  },
  {
    name: 'add / mul / scale',
    inputs: { a: 5, b: 5 },
    outSize: 15,
    forward: (x, out) => {
      k.add(x.a, x.b, out, 5);
      k.mul(x.a, x.b, out.subarray(5), 5);
      k.scale(x.a, 3, out.subarray(10), 5);
    },
    backward: (x, dout, g) => {
      k.axpy(1, dout, g.a, 5); k.axpy(1, dout, g.b, 5);
      for (let i = 0; i < 5; i++) { g.a[i] += dout[5 + i] * x.b[i]; g.b[i] += dout[5 + i] * x.a[i]; }
      k.axpy(3, dout.subarray(10), g.a, 5);
    },
  },
  {
    name: 'crossEntropy (with ignore index)',
    inputs: { logits: 4 * 5 },
    outSize: 4,
    forward: (x, out) => { k.crossEntropyForward(x.logits, targets, out, f64(new Float64Array(4)), 4, 5, -100); },
    backward: (x, dout, g) => {
      // Per-row losses with weights dout: the kernel takes one scale, so apply it row by row.
      const lse = f64(new Float64Array(4));
      k.crossEntropyForward(x.logits, targets, f64(new Float64Array(4)), lse, 4, 5, -100);
      for (let r = 0; r < 4; r++) {
        k.crossEntropyBackward(x.logits.subarray(r * 5), targets.subarray(r), lse.subarray(r), g.logits.subarray(r * 5), 1, 5, -100, dout[r]);
      }
    },
  },
];

for (const c of cases) {
  test(`float64 gradcheck of the ${c.name} kernels`, () => {
    const rng = new RandomStream(42);
    const x: Record<string, F> = {};
    for (const [n, size] of Object.entries(c.inputs)) {
      const a = new Float64Array(size);
      rng.uniform(a, -1, 1);
      x[n] = f64(a);
    }
    const dout = new Float64Array(c.outSize);
    rng.uniform(dout, -1, 1);
    const grads: Record<string, F> = {};
    for (const [n, size] of Object.entries(c.inputs)) grads[n] = f64(new Float64Array(size));
    c.backward(x, f64(dout), grads);
    const L = (): number => {
      const out = new Float64Array(c.outSize);
      c.forward(x, f64(out));
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i] * dout[i];
      return s;
    };
    const eps = 1e-6;
    for (const n of Object.keys(c.inputs)) {
      for (let i = 0; i < x[n].length; i++) {
        const saved = x[n][i];
        x[n][i] = saved + eps;
        const lp = L();
        x[n][i] = saved - eps;
        const lm = L();
        x[n][i] = saved;
        const numeric = (lp - lm) / (2 * eps);
        const err = Math.abs(numeric - grads[n][i]) / Math.max(1e-3, Math.abs(numeric));
        assert.ok(err < 1e-5, `${c.name}: d/d${n}[${i}] analytic ${grads[n][i]} vs numeric ${numeric}`);
      }
    }
  });
}

for (const backend of ['js', 'native'] as const) {
  test(`float32 gradcheck of every autodiff op on the ${backend} backend`, () => {
    setBackend(backend);
    const results = runGradchecks();
    const failed = results.filter((r) => !r.passed);
    assert.ok(results.length >= 25, `expected a check per op input, got ${results.length}`);
    assert.deepEqual(failed, [], `failed: ${JSON.stringify(failed)}`);
  });
}
