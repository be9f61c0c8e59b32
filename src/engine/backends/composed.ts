/**
 * Kernels that a backend without a fused version of its own runs as the separate kernels they
 * fuse (the js oracle, webgpu): the same values, more passes over memory.
 */
import { acquire, release } from '../pool.ts';
import type { Kernels } from './kernels.ts';

type Parts = Pick<Kernels, 'crossEntropyForward' | 'crossEntropyBackwardWrite' | 'toBf16'>;

/** Kernels.dropoutApplyBf16 as dropoutApply into a scratch buffer, then toBf16. */
export function composedDropoutApplyBf16(k: Pick<Kernels, 'dropoutApply' | 'toBf16'>): Kernels['dropoutApplyBf16'] {
  return (x, out, n, key, threshold, scale) => {
    if (out.length < (n + 1) >> 1) throw new Error(`dropoutApplyBf16: out has ${out.length} elements but ceil(n/2) needs ${(n + 1) >> 1}`);
    const values = acquire(n, false);
    try {
      k.dropoutApply(x, values, n, key, threshold, scale);
      k.toBf16(values, out, n);
    } finally {
      release(values);
    }
  };
}

/**
 * In place, x's non-ignored rows become gradScale·(softmax − onehot) as crossEntropyFused computes
 * it in bf16: from the terms e_j = exp(x_j − max) of the row's sum, k = fp32(gradScale / Σe),
 * e_j·k in fp32 arithmetic (as the native kernel's fp32 e_j and k give); ignored rows zeroed.
 */
function softmaxGradientFromSum(x: Float32Array, targets: Int32Array, rows: number, V: number, ignoreIndex: number, gradScale: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * V, t = targets[r];
    if (t === ignoreIndex) {
      x.fill(0, o, o + V);
      continue;
    }
    let max = -Infinity;
    for (let j = 0; j < V; j++) if (x[o + j] > max) max = x[o + j];
    let s = 0;
    for (let j = 0; j < V; j++) s += Math.exp(x[o + j] - max);
    // gradScale as the native kernel receives it (an fp32 argument).
    const gs = Math.fround(gradScale), k = Math.fround(gs / s);
    // x[o + j] is rounded to fp32 when stored, as e_j·k is in the native kernel.
    for (let j = 0; j < V; j++) x[o + j] = Math.fround(Math.exp(x[o + j] - max)) * k;
    x[o + t] -= gs;
  }
}

/** Writes the fp32 values of n packed bf16 values into dst. */
export type Widen = (src: Float32Array, dst: Float32Array, n: number) => void;

/**
 * Kernels.crossEntropyFused as crossEntropyForward and crossEntropyBackwardWrite; in bf16 the
 * logits widened first, the gradient from the row's sum (softmaxGradientFromSum) and rounded by
 * toBf16 at the end.
 */
export function composedCrossEntropyFused(k: Parts, widen: Widen): Kernels['crossEntropyFused'] {
  return (logits, targets, losses, lse, dLogits, rows, V, ignoreIndex, gradScale, bf16) => {
    const n = rows * V, need = bf16 ? (n + 1) >> 1 : n;
    for (const [name, a] of [['logits', logits], ['dLogits', dLogits]] as const) {
      if (a.length < need) throw new Error(`crossEntropyFused: ${name} has ${a.length} elements; rows*V = ${n} ${bf16 ? 'packed bf16 values need ' + need : 'needs as many'}`);
    }
    if (!bf16) {
      const count = k.crossEntropyForward(logits, targets, losses, lse, rows, V, ignoreIndex);
      k.crossEntropyBackwardWrite(logits, targets, lse, dLogits, rows, V, ignoreIndex, gradScale);
      return count;
    }
    const values = acquire(n, false);
    try {
      widen(logits, values, n);
      const count = k.crossEntropyForward(values, targets, losses, lse, rows, V, ignoreIndex);
      softmaxGradientFromSum(values, targets, rows, V, ignoreIndex, gradScale);
      k.toBf16(values, dLogits, n);
      return count;
    } finally {
      release(values);
    }
  };
}
