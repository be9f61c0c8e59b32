/**
 * bfloat16 products with fp32 accumulation, as the ops use them in bf16 precision (see
 * ./precision.ts) and for LoraLinearOptions.frozenBf16: each fp32 operand is rounded to a packed
 * bf16 copy (Kernels.toBf16) and multiplied by Kernels.gemmBf16 — oneDNN on AMX or AVX512-BF16
 * where the CPU has them, emulated in fp32 elsewhere. The fp32 tensors themselves never change,
 * so merges, checkpoints and export see fp32 values.
 */
import { K } from '../backend.ts';
import { nativeBf16Isa } from '../backends/native.ts';
import { shapeStr, Tensor, untracked } from '../tensor.ts';

/** How bf16 products run on the active backend, in words (for the train log and benchmarks). */
export function bf16Support(): string {
  const k = K();
  if (k.hasBf16Gemm()) return `oneDNN bf16 matmul on ${nativeBf16Isa() === 'amx' ? 'AMX' : 'AVX512-BF16'}`;
  if (k.name === 'native') return 'emulated in fp32: this CPU has neither AMX nor AVX512-BF16, so bf16 is slower than fp32 here';
  return 'emulated in fp32 on the js backend (slow; same rounding as the native kernels)';
}

/** A packed bf16 copy of a matrix (Kernels.toBf16), in a scratch tensor. */
export interface Bf16Matrix {
  packed: Tensor;
  /**
   * Set when the copy's rows lie further apart than the fp32 matrix's (bf16RowsCopy): rows of `cols`
   * values in fp32, `ld` apart in the copy. mixedGemm reads such a copy with its own stride.
   */
  rows?: { cols: number; ld: number };
}

/** Room for n packed bf16 values, for a kernel to write (a scratch tensor of the current scope). */
export function bf16Scratch(n: number): Bf16Matrix {
  return { packed: Tensor.empty([(n + 1) >> 1], false) };
}

/**
 * The row stride (in bf16 values) of a bf16 copy of a matrix with `cols` columns: a whole number of
 * 64 values (128 bytes). Products reading a llama_60m MLP gradient (1,376 wide) ran 15–20 % faster
 * from a copy 1,408 apart (BENCHMARKS.md, "Ninth session": padded gradient copies) because oneDNN
 * runs strided matrices on its gemm:jit kernel, not because of the alignment: on AMX, gemm_bf16.c
 * now picks gemm:jit for those products whatever the stride, and the padding measured neutral
 * ("Tenth session"). It stays for CPUs without AMX, where that rule is off and it was not measured.
 */
export function bf16RowStride(cols: number): number {
  return cols < 64 || cols % 64 === 0 ? cols : Math.ceil(cols / 64) * 64;
}

/** A packed bf16 copy of the rows × cols matrix src, its rows bf16RowStride(cols) values apart. */
export function bf16RowsCopy(src: Float32Array, rows: number, cols: number): Bf16Matrix {
  const ld = bf16RowStride(cols);
  if (ld === cols) return bf16Copy(src, rows * cols);
  const packed = Tensor.empty([(rows === 0 ? 0 : (rows - 1) * ld + cols + 1) >> 1], false);
  K().toBf16Rows(src, packed.data, rows, cols, ld);
  return { packed, rows: { cols, ld } };
}

/** A new packed bf16 copy of src[0..n) (a scratch tensor of the current scope; dispose it when done). */
export function bf16Copy(src: Float32Array, n: number): Bf16Matrix {
  const packed = Tensor.empty([(n + 1) >> 1], false);
  K().toBf16(src, packed.data, n);
  return { packed };
}

/**
 * The bf16 copies of activations, shared across ops for as long as the activation lives: a tensor
 * a grad node produced keeps its values until it is disposed (backward reads them), so one copy
 * serves every product that takes it as an operand — forward and backward, and the q, k and v
 * projections (or gate and up) of the same input. A copy belongs to the scope it was made in (the
 * training step's) and is made again if that scope freed it while the activation lives on.
 * Parameters (leaves) are never shared this way: the optimizer writes them between steps.
 */
const activationCopies = new WeakMap<Tensor, Bf16Matrix>();

function sharedActivationCopy(t: Tensor, values: Float32Array): Bf16Matrix | null {
  if (t.node === null) return null;
  let c = activationCopies.get(t);
  if (!c || c.packed.disposed) {
    // Rows as the products read them: the last dimension, padded (bf16RowStride).
    const cols = t.shape.length > 0 ? t.shape[t.shape.length - 1] : 1;
    c = cols > 0 ? bf16RowsCopy(values, t.size / cols, cols) : bf16Copy(values, t.size);
    activationCopies.set(t, c);
  }
  return c;
}

/**
 * A bf16 copy of a frozen weight kept across steps — ReLoRA's W between merges — so it is rounded
 * once per phase rather than twice per step. The fp32 weight stays the master copy (merges,
 * checkpoints, export). Whoever writes the weight's values in place must call invalidate() (the
 * LoRA layer does on a merge and when a state dict is loaded); a weight whose storage array was
 * replaced is noticed and rounded again.
 */
export class FrozenBf16Copy {
  private copy: Tensor | null = null;
  private source: Float32Array | null = null;

  /** The bf16 copy of `weight`'s current values, rounded now if none is held. */
  of(weight: Tensor): Bf16Matrix {
    const values = weight.data;
    if (!this.copy || this.copy.disposed || this.source !== values) {
      this.invalidate();
      this.copy = untracked(() => bf16Copy(values, weight.size).packed);
      this.source = values;
    }
    return { packed: this.copy };
  }

  /** Drops the copy: the next product rounds the weight again. */
  invalidate(): void {
    this.copy?.dispose();
    this.copy = null;
    this.source = null;
  }
}

/** An operand of a product: fp32 values, or a packed bf16 copy (then the product is bf16). */
export type Operand = Float32Array | Bf16Matrix;

/** The operand for fp32 values W: W itself, or a new bf16 copy when bf16 (free it with releaseOperand). */
export function frozenOperand(W: Float32Array, bf16: boolean): Operand {
  return bf16 ? bf16Copy(W, W.length) : W;
}

/** Frees a bf16 copy; fp32 values belong to their tensor. */
export function releaseOperand(w: Operand): void {
  if (!(w instanceof Float32Array)) w.packed.dispose();
}

/**
 * The bf16 copies of one op's operands, each made once however many products use it (x in both
 * x·Wᵀ and x·Aᵀ, the upstream gradient in dX, dA and dB), all freed by dispose(). Keyed by the
 * array itself: only for arrays that outlive it (a pooled scratch freed and handed out again
 * would find its predecessor's copy).
 */
export class Bf16Copies {
  private readonly copies = new Map<Float32Array, Bf16Matrix>();
  /**
   * Arrays whose copy is an activation's shared one (with the activation): found here, freed by
   * the scope that made it — and fetched again if that scope ended before this set's last use.
   */
  private readonly borrowed = new Map<Float32Array, Tensor>();

  /**
   * @param pastScope make this set's own copies outside any scope, for a set a forward keeps for
   *   its backward: a scope that ends between the two (its output returned) must not free them.
   */
  constructor(private readonly pastScope = false) {}

  /**
   * `x` itself when !bf16, else its bf16 copy (made on first request); given `cols`, x is a matrix
   * of rows that long and its copy's rows are padded (bf16RowsCopy).
   */
  of(x: Float32Array, bf16: boolean, cols?: number): Operand {
    if (!bf16) return x;
    let c = this.copies.get(x);
    const owner = this.borrowed.get(x);
    if (c && owner && c.packed.disposed) {
      if (owner.disposed) throw new Error(`bf16: the shared copy of activation ${shapeStr(owner.shape)} was freed before its backward, and its fp32 values are gone too (released or disposed)`);
      c = sharedActivationCopy(owner, x) ?? undefined;
      if (!c) this.borrowed.delete(x);
    }
    if (!c) {
      const copy = (): Bf16Matrix => (cols ? bf16RowsCopy(x, Math.floor(x.length / cols), cols) : bf16Copy(x, x.length));
      c = this.pastScope ? untracked(copy) : copy();
    }
    this.copies.set(x, c);
    return c;
  }

  /**
   * Tensor t's values as an operand: `values` (its array as the op reads it) when !bf16, else its
   * bf16 copy — the one shared by every op for an activation, else one of this set's.
   */
  ofTensor(t: Tensor, values: Float32Array, bf16: boolean): Operand {
    // `values` is the key from now on, so of(values) finds the same copy.
    if (!bf16) return values;
    if (this.copies.has(values)) return this.of(values, true);
    const shared = sharedActivationCopy(t, values);
    if (!shared) return this.of(values, true);
    this.copies.set(values, shared);
    this.borrowed.set(values, t);
    return shared;
  }

  dispose(): void {
    for (const [x, c] of this.copies) if (!this.borrowed.has(x)) c.packed.dispose();
    this.copies.clear();
    this.borrowed.clear();
  }
}

/** The row stride to read bf16 copy m with, for a product that reads its fp32 matrix with stride ld. */
function copyStride(m: Bf16Matrix, ld: number, name: string): number {
  if (!m.rows) return ld;
  if (ld !== m.rows.cols) throw new Error(`mixedGemm: ${name}'s bf16 copy holds rows of ${m.rows.cols} values (${m.rows.ld} apart), but the product reads it with ld = ${ld}`);
  return m.rows.ld;
}

/** Elements a matrix of rows × cols with row stride ld spans. */
function span(rows: number, cols: number, ld: number): number {
  return rows === 0 ? 0 : (rows - 1) * ld + cols;
}

/**
 * Kernels.gemm for one matrix, in fp32 (operands must then be fp32) or in bf16: fp32 operands are
 * rounded to temporary bf16 copies, bf16 copies used as they are, and gemmBf16 accumulates in
 * fp32 into fp32 C.
 */
export function mixedGemm(
  bf16: boolean, transA: boolean, transB: boolean, M: number, N: number, Kd: number, alpha: number,
  A: Operand, lda: number, B: Operand, ldb: number, beta: number, C: Float32Array, ldc: number,
): void {
  const k = K();
  if (!bf16) {
    if (!(A instanceof Float32Array && B instanceof Float32Array)) throw new Error('mixedGemm: an fp32 product was given a bf16 operand');
    return k.gemm(transA, transB, M, N, Kd, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0, 1);
  }
  const a = A instanceof Float32Array ? bf16Copy(A, Math.min(A.length, span(transA ? Kd : M, transA ? M : Kd, lda))) : A;
  const b = B instanceof Float32Array ? bf16Copy(B, Math.min(B.length, span(transB ? N : Kd, transB ? Kd : N, ldb))) : B;
  try {
    k.gemmBf16(transA, transB, M, N, Kd, alpha, a.packed.data, copyStride(a, lda, 'A'), b.packed.data, copyStride(b, ldb, 'B'), beta, C, ldc);
  } finally {
    if (a !== A) a.packed.dispose();
    if (b !== B) b.packed.dispose();
  }
}

/**
 * Kernels.gemm (batched, strides in elements) in fp32 or with every operand rounded to bf16:
 * a batch in bf16 runs one gemmBf16 per matrix on bf16 copies of its slices. A single matrix
 * takes its bf16 copies from `copies` when given, so products sharing an operand round it once.
 */
export function gemmIn(
  bf16: boolean, transA: boolean, transB: boolean, M: number, N: number, Kd: number, alpha: number,
  A: Float32Array, lda: number, strideA: number, B: Float32Array, ldb: number, strideB: number,
  beta: number, C: Float32Array, ldc: number, strideC: number, batch: number, copies?: Bf16Copies,
): void {
  if (!bf16) return K().gemm(transA, transB, M, N, Kd, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch);
  if (batch === 1 && copies) return mixedGemm(true, transA, transB, M, N, Kd, alpha, copies.of(A, true), lda, copies.of(B, true), ldb, beta, C, ldc);
  const nA = span(transA ? Kd : M, transA ? M : Kd, lda), nB = span(transB ? N : Kd, transB ? Kd : N, ldb);
  for (let i = 0; i < batch; i++) {
    mixedGemm(
      true, transA, transB, M, N, Kd, alpha, A.subarray(i * strideA, i * strideA + nA), lda, B.subarray(i * strideB, i * strideB + nB), ldb,
      beta, C.subarray(i * strideC), ldc,
    );
  }
}

/** C = X·Wᵀ (transW) or X·W for X [rows, inner], in bf16 or fp32 (mixedGemm); beta as in GEMM. */
export function frozenProduct(bf16: boolean, transW: boolean, rows: number, cols: number, inner: number, X: Operand, W: Operand, beta: number, C: Float32Array): void {
  const ldx = inner, ldw = transW ? inner : cols;
  mixedGemm(bf16, false, transW, rows, cols, inner, 1, X, ldx, W, ldw, beta, C, cols);
}
