/** Copying between arrays where their data lives. */
import { K } from '../backend.ts';

/**
 * dst[0..n) = src[0..n): a device copy on a backend whose data lives on a device (a host copy
 * there would read stale arrays), a plain host copy otherwise.
 */
export function copyInto(src: Float32Array, dst: Float32Array, n: number): void {
  const k = K();
  if (k.copy) k.copy(src, dst, n);
  else dst.set(src.subarray(0, n));
}
