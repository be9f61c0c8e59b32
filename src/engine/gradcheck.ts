/**
 * Finite-difference gradient checks of every op through the public Tensor API, on the active
 * backend. Each case builds a scalar L = sum(op(inputs) · w) with random weights w, and compares
 * the directional derivative along a random direction u, (L(x+εu) − L(x−εu)) / 2ε, with
 * <∇L, u> from backward(). Used by tests and by `relora doctor`.
 */
import * as ops from './ops/index.ts';
import { RandomStream } from './rng.ts';
import { noGrad, scope, Tensor } from './tensor.ts';

export interface GradcheckResult {
  op: string;
  input: string;
  analytic: number;
  numeric: number;
  relError: number;
  passed: boolean;
}

interface Case {
  op: string;
  /** Differentiable inputs (float32) by name; shapes. */
  inputs: Record<string, number[]>;
  /** Extra non-differentiable tensors (token ids, targets). */
  build(x: Record<string, Tensor>, rng: RandomStream): Tensor;
}

function ids(values: number[], shape: number[]): Tensor {
  return Tensor.from(Int32Array.from(values), shape);
}

function weightedSum(t: Tensor, seed: number): Tensor {
  const w = new Float32Array(t.size);
  new RandomStream(seed).uniform(w, -1, 1);
  return ops.sum(ops.mul(t, Tensor.from(w, t.shape)));
}

const B = 2, T = 5, H = 2, D = 4;
const tables = ops.ropeTables(T, D, 10000);

export const gradcheckCases: Case[] = [
  { op: 'matmul', inputs: { a: [3, 4], b: [4, 5] }, build: (x) => weightedSum(ops.matmul(x.a, x.b), 1) },
  { op: 'matmul(transA,transB)', inputs: { a: [4, 3], b: [5, 4] }, build: (x) => weightedSum(ops.matmul(x.a, x.b, { transA: true, transB: true }), 2) },
  { op: 'matmul(transA)', inputs: { a: [4, 3], b: [4, 5] }, build: (x) => weightedSum(ops.matmul(x.a, x.b, { transA: true }), 3) },
  { op: 'matmul(batched,transB)', inputs: { a: [2, 3, 4], b: [2, 5, 4] }, build: (x) => weightedSum(ops.matmul(x.a, x.b, { transB: true }), 4) },
  { op: 'linear', inputs: { x: [2, 3, 4], w: [6, 4] }, build: (x) => weightedSum(ops.linear(x.x, x.w), 5) },
  { op: 'add', inputs: { a: [3, 4], b: [3, 4] }, build: (x) => weightedSum(ops.add(x.a, x.b), 6) },
  { op: 'mul', inputs: { a: [3, 4], b: [3, 4] }, build: (x) => weightedSum(ops.mul(x.a, x.b), 7) },
  { op: 'scale', inputs: { a: [7] }, build: (x) => weightedSum(ops.scale(x.a, -1.7), 8) },
  { op: 'sum', inputs: { a: [3, 2] }, build: (x) => ops.scale(ops.sum(ops.mul(x.a, x.a)), 0.5) },
  { op: 'mean', inputs: { a: [3, 2] }, build: (x) => ops.mean(ops.mul(x.a, x.a)) },
  { op: 'embedding', inputs: { w: [6, 3] }, build: (x) => weightedSum(ops.embedding(ids([1, 5, 1, 0], [2, 2]), x.w), 9) },
  { op: 'rmsnorm', inputs: { x: [3, 8], w: [8] }, build: (x) => weightedSum(ops.rmsnorm(x.x, x.w, 1e-6), 10) },
  { op: 'rope', inputs: { x: [B, T, H * D] }, build: (x) => weightedSum(ops.rope(x.x, tables, H), 11) },
  {
    op: 'attention',
    inputs: { q: [B, T, H * D], k: [B, T, H * D], v: [B, T, H * D] },
    build: (x) => weightedSum(ops.causalAttention(x.q, x.k, x.v, H), 12),
  },
  { op: 'silu', inputs: { x: [9] }, build: (x) => weightedSum(ops.silu(x.x), 13) },
  { op: 'swiglu', inputs: { g: [9], u: [9] }, build: (x) => weightedSum(ops.swiglu(x.g, x.u), 14) },
  // One tensor as both inputs: the second gradient adds to the first instead of being written.
  { op: 'swiglu(x, x)', inputs: { x: [9] }, build: (x) => weightedSum(ops.swiglu(x.x, x.x), 18) },
  // Same key for every evaluation (fresh stream per build), so the mask is fixed across L(x±εu).
  { op: 'dropout', inputs: { x: [20] }, build: (x) => weightedSum(ops.dropout(x.x, 0.3, new RandomStream(99), true), 15) },
  {
    op: 'crossEntropy',
    inputs: { logits: [4, 7] },
    build: (x) => ops.crossEntropy(x.logits, ids([3, ops.IGNORE_INDEX, 0, 6], [4])),
  },
  // Chunks of 2 rows over 5, an ignored row, an upstream factor other than 1.
  {
    op: 'linearCrossEntropy',
    inputs: { x: [5, 4], w: [7, 4] },
    build: (x) => ops.scale(ops.linearCrossEntropy(x.x, x.w, ids([3, ops.IGNORE_INDEX, 0, 6, 2], [5]), { chunkRows: 2 }), 1.5),
  },
  // Grouped-query K/V sharing: 2 key/value heads, each read by 3 query heads.
  { op: 'repeatKV', inputs: { x: [B, T, 2 * D] }, build: (x) => weightedSum(ops.repeatKV(x.x, 2, 3), 16) },
  {
    op: 'attention(grouped kv)',
    inputs: { q: [B, T, H * D], k: [B, T, D], v: [B, T, D] },
    build: (x) => weightedSum(ops.causalAttention(x.q, ops.repeatKV(x.k, 1, H), ops.repeatKV(x.v, 1, H), H), 17),
  },
];

/** Run every case; eps and tolerance suit float32 arithmetic. */
export function runGradchecks(eps = 1e-2, tol = 2e-2): GradcheckResult[] {
  const results: GradcheckResult[] = [];
  let seed = 1000;
  for (const c of gradcheckCases) {
    for (const target of Object.keys(c.inputs)) {
      seed++;
      results.push(scope(() => checkOne(c, target, seed, eps, tol)));
    }
  }
  return results;
}

function checkOne(c: Case, target: string, seed: number, eps: number, tol: number): GradcheckResult {
  const rng = new RandomStream(seed);
  const values: Record<string, Float32Array> = {};
  for (const [name, shape] of Object.entries(c.inputs)) {
    const v = new Float32Array(shape.reduce((a, b) => a * b, 1));
    rng.uniform(v, -1, 1);
    values[name] = v;
  }
  const dir = new Float32Array(values[target].length);
  rng.uniform(dir, -1, 1);
  const make = (shift: number): Record<string, Tensor> => {
    const x: Record<string, Tensor> = {};
    for (const [name, shape] of Object.entries(c.inputs)) {
      const v = Float32Array.from(values[name]);
      if (name === target) for (let i = 0; i < v.length; i++) v[i] += shift * dir[i];
      x[name] = Tensor.from(v, shape);
    }
    return x;
  };
  const x = make(0);
  x[target].requiresGrad = true;
  const loss = c.build(x, rng);
  loss.backward();
  const g = x[target].grad!.data;
  let analytic = 0;
  for (let i = 0; i < g.length; i++) analytic += g[i] * dir[i];
  x[target].grad!.dispose();
  const lp = noGrad(() => c.build(make(eps), rng).item());
  const lm = noGrad(() => c.build(make(-eps), rng).item());
  const numeric = (lp - lm) / (2 * eps);
  const relError = Math.abs(analytic - numeric) / Math.max(1, Math.abs(analytic), Math.abs(numeric));
  return { op: c.op, input: target, analytic, numeric, relError, passed: relError <= tol && Number.isFinite(analytic) };
}
