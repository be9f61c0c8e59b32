/**
 * Kernels that a backend without a fused version of its own runs as the separate kernels they
 * fuse (the js oracle, webgpu): the same values, more passes over memory.
 */
import { acquire, release } from '../pool.ts';
import type { Kernels } from './kernels.ts';

type Parts = Pick<Kernels, 'crossEntropyForward' | 'crossEntropyBackwardWrite' | 'toBf16'>;

/** Writes the fp32 values of n packed bf16 values into dst. */
export type Widen = (src: Float32Array, dst: Float32Array, n: number) => void;

/**
 * Kernels.crossEntropyFused as crossEntropyForward and crossEntropyBackwardWrite; in bf16 the
 * logits widened first and the gradient rounded by toBf16 at the end.
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
      k.crossEntropyBackwardWrite(values, targets, lse, values, rows, V, ignoreIndex, gradScale);
      k.toBf16(values, dLogits, n);
      return count;
    } finally {
      release(values);
    }
  };
}
