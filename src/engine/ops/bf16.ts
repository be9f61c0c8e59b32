/**
 * bfloat16 products of frozen weights (LoraLinearOptions.frozenBf16): the weight and the input
 * rounded to bf16, multiplied with fp32 accumulation by Kernels.gemmBf16 (oneDNN on AMX or
 * AVX512-BF16 where the CPU has them, emulated in fp32 elsewhere). The fp32 weight itself is
 * never changed, so merges, checkpoints and export see fp32 values.
 */
import { K } from '../backend.ts';
import { Tensor } from '../tensor.ts';

/** How frozenBf16 products run on the active backend, in words. */
export function bf16Support(): string {
  return K().hasBf16Gemm() ? 'oneDNN bf16 matmul' : 'bf16 rounding emulated in fp32 on this backend';
}

/** A packed bf16 copy of a matrix (Kernels.toBf16), in a scratch tensor. */
interface Bf16Matrix {
  packed: Tensor;
}

function bf16Copy(src: Float32Array, n: number): Bf16Matrix {
  const packed = Tensor.empty([(n + 1) >> 1], false);
  K().toBf16(src, packed.data, n);
  return { packed };
}

/** The frozen operand of a product: its fp32 values, or a bf16 copy (then X is rounded to bf16 too). */
export type FrozenOperand = Float32Array | Bf16Matrix;

export function frozenOperand(W: Float32Array, bf16: boolean): FrozenOperand {
  return bf16 ? bf16Copy(W, W.length) : W;
}

/** Frees a bf16 copy; fp32 values belong to their tensor. */
export function releaseOperand(w: FrozenOperand): void {
  if (!(w instanceof Float32Array)) w.packed.dispose();
}

/** C = X·Wᵀ (transW) or X·W for X [rows, inner], with fp32 accumulation; beta as in GEMM. */
export function frozenProduct(transW: boolean, rows: number, cols: number, inner: number, X: Float32Array, W: FrozenOperand, beta: number, C: Float32Array): void {
  const ldx = inner, ldw = transW ? inner : cols;
  if (W instanceof Float32Array) return K().gemm(false, transW, rows, cols, inner, 1, X, ldx, 0, W, ldw, 0, beta, C, cols, 0, 1);
  const xb = bf16Copy(X, rows * inner);
  K().gemmBf16(false, transW, rows, cols, inner, 1, xb.packed.data, ldx, W.packed.data, ldw, beta, C, cols);
  xb.packed.dispose();
}
