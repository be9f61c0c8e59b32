/**
 * bfloat16 in TypeScript: rounding fp32 to packed bf16 (two values per float, as the native
 * addon's toBf16 writes them) and a bf16 product emulated with an fp32 GEMM. The js backend uses
 * both; the native backend uses the emulation where oneDNN cannot run bf16 matmuls.
 */
import { acquire, release } from '../pool.ts';
import type { Kernels } from './kernels.ts';

/** Kernels.toBf16 bit for bit: round to nearest even, NaN kept NaN (quietened), packed. */
export function toBf16Packed(src: Float32Array, dst: Float32Array, n: number): void {
  if (src.length < n || dst.length < (n + 1) >> 1) {
    throw new Error(`toBf16: src has ${src.length} elements and dst ${dst.length}; n = ${n} needs ${n} and ${(n + 1) >> 1}`);
  }
  const s = new Uint32Array(src.buffer, src.byteOffset, n), d = new Uint16Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0; i < n; i++) d[i] = bf16Bits(s[i]);
}

/** Kernels.toBf16Rows: toBf16Packed row by row, ld bf16 values apart. */
export function toBf16RowsPacked(src: Float32Array, dst: Float32Array, rows: number, cols: number, ld: number): void {
  if (ld < cols) throw new Error(`toBf16Rows: ld = ${ld} is less than cols = ${cols}`);
  const span = rows === 0 ? 0 : (rows - 1) * ld + cols;
  if (src.length < rows * cols) throw new Error(`toBf16Rows: src has ${src.length} elements but rows*cols needs ${rows * cols}`);
  if (dst.length < (span + 1) >> 1) throw new Error(`toBf16Rows: dst has ${dst.length} elements but ceil(((rows-1)*ld+cols)/2) needs ${(span + 1) >> 1}`);
  const s = new Uint32Array(src.buffer, src.byteOffset, rows * cols), d = new Uint16Array(dst.buffer, dst.byteOffset, span);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) d[r * ld + c] = bf16Bits(s[r * cols + c]);
}

/** The bf16 bits of the fp32 value with bits u, rounded to nearest even. */
function bf16Bits(u: number): number {
  // A NaN whose payload sits in the low bits only would round to Inf: keep the top bits, set quiet.
  return (u & 0x7fffffff) > 0x7f800000 ? (u >>> 16) | 0x40 : (u + 0x7fff + ((u >>> 16) & 1)) >>> 16;
}

/** toBf16Packed's rounding with the result kept as fp32 (dst may be src): the value a bf16 operand stands for. */
export function roundBf16(src: Float32Array, dst: Float32Array, n: number): void {
  if (src.length < n || dst.length < n) throw new Error(`roundBf16: src has ${src.length} elements and dst ${dst.length}; n = ${n} needs ${n} in each`);
  const s = new Uint32Array(src.buffer, src.byteOffset, n), d = new Uint32Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0; i < n; i++) d[i] = bf16Bits(s[i]) << 16;
}

/** dst[i] = the fp32 value of packed bf16 element i (exact: bf16 is fp32 with a shorter mantissa). */
export function widenBf16(src: Float32Array, dst: Float32Array, n: number): void {
  const s = new Uint16Array(src.buffer, src.byteOffset, n), d = new Uint32Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0; i < n; i++) d[i] = s[i] << 16;
}

/**
 * Kernels.gemmBf16 through `gemm`: each packed operand widened whole to an fp32 copy with the
 * same layout (so gemm checks its sizes, in bf16 values), then one fp32 product.
 */
export function emulatedGemmBf16(gemm: Kernels['gemm']): Kernels['gemmBf16'] {
  return (transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) => {
    const a = acquire(2 * A.length, false), b = acquire(2 * B.length, false);
    try {
      widenBf16(A, a, a.length);
      widenBf16(B, b, b.length);
      gemm(transA, transB, M, N, K, alpha, a, lda, 0, b, ldb, 0, beta, C, ldc, 0, 1);
    } finally {
      release(a);
      release(b);
    }
  };
}

/**
 * Kernels.gemmBf16ToBf16 through an emulated gemmBf16: the fp32 product in a scratch matrix of
 * C's layout, then rounded into C (on the host: a device backend passes a gemmBf16 that leaves its
 * result readable there, and `beforeWrite` to claim C's host copy, told whether every value of C
 * is about to be written).
 */
export function emulatedGemmBf16ToBf16(
  gemmBf16: Kernels['gemmBf16'], beforeWrite?: (C: Float32Array, writesAll: boolean) => void,
): Kernels['gemmBf16ToBf16'] {
  return (transA, transB, M, N, K, alpha, A, lda, B, ldb, C, ldc) => {
    if (M === 0 || N === 0) return;
    const n = (M - 1) * ldc + N;
    if (!(ldc >= N) || 2 * C.length < n) throw new Error(`gemmBf16ToBf16: C has ${C.length} floats, too few for ${M}×${N} packed bf16 values with ldc ${ldc}`);
    beforeWrite?.(C, ldc === N && n === 2 * C.length);
    const c = acquire(n, false);
    try {
      gemmBf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, 0, c, ldc);
      // Row by row: C's elements between rows (ldc > N) are not the product's to write.
      const bits = new Uint32Array(c.buffer, c.byteOffset, n), out = new Uint16Array(C.buffer, C.byteOffset, n);
      for (let r = 0; r < M; r++) for (let j = r * ldc; j < r * ldc + N; j++) out[j] = bf16Bits(bits[j]);
    } finally {
      release(c);
    }
  };
}
