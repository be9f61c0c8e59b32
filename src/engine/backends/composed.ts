/**
 * Kernels that a backend without a fused version of its own runs as the separate kernels they
 * fuse (the js oracle, webgpu): the same values, more passes over memory.
 */
import { acquire, release } from '../pool.ts';
import type { Kernels } from './kernels.ts';

type Parts = Pick<Kernels, 'crossEntropyForward' | 'crossEntropyBackwardWrite' | 'toBf16'>;

/** Kernels.crossEntropyFused as crossEntropyForward, crossEntropyBackwardWrite and (bf16) toBf16. */
export function composedCrossEntropyFused(k: Parts): Kernels['crossEntropyFused'] {
  return (logits, targets, losses, lse, dLogits, rows, V, ignoreIndex, gradScale, bf16) => {
    const n = rows * V;
    if (dLogits.length < (bf16 ? (n + 1) >> 1 : n)) {
      throw new Error(`crossEntropyFused: dLogits has ${dLogits.length} elements; rows*V = ${n} ${bf16 ? 'packed bf16 values need ' + ((n + 1) >> 1) : 'needs as many'}`);
    }
    const count = k.crossEntropyForward(logits, targets, losses, lse, rows, V, ignoreIndex);
    if (!bf16) {
      k.crossEntropyBackwardWrite(logits, targets, lse, dLogits, rows, V, ignoreIndex, gradScale);
      return count;
    }
    const grad = acquire(n, false);
    try {
      k.crossEntropyBackwardWrite(logits, targets, lse, grad, rows, V, ignoreIndex, gradScale);
      k.toBf16(grad, dLogits, n);
    } finally {
      release(grad);
    }
    return count;
  };
}
