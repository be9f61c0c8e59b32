/**
 * Matrix products. C = op(A)·op(B) with transpose flags (never materialised) and an optional
 * batch dimension. Backward skips the product for any operand that needs no gradient — this is
 * what spares a frozen weight its dW = dYᵀ·X.
 */
import { K } from '../backend.ts';
import { fusedKernels } from '../backends/native.ts';
import { dropThreshold } from '../rng.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { betaFor, gradSlot } from './grad.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * a: [M, K] (or [K, M] with transA), or [batch, ...] 3-D; b: [K, N] (or [N, K] with transB), 2-D or
 * 3-D with the same batch. When b is 2-D and a has more dimensions (and !transA), the leading
 * dimensions of a are folded into M (a Linear layer over [B, T, in]).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error(`matmul: expected float32 operands, got ${a.dtype} and ${b.dtype}`);
  if (b.shape.length !== 2 && b.shape.length !== 3) throw new Error(`matmul: b must be 2-D or 3-D, got shape ${shapeStr(b.shape)}`);
  let batch = 1, M: number, Ka: number, outShape: number[];
  const bBatched = b.shape.length === 3;
  if (bBatched) {
    if (a.shape.length !== 3 || a.shape[0] !== b.shape[0]) {
      throw new Error(`matmul: batched b ${shapeStr(b.shape)} needs a 3-D a with the same batch, got a ${shapeStr(a.shape)}`);
    }
    batch = a.shape[0];
    M = transA ? a.shape[2] : a.shape[1];
    Ka = transA ? a.shape[1] : a.shape[2];
  } else if (a.shape.length === 2 || transA) {
    if (a.shape.length !== 2) throw new Error(`matmul: transA needs a 2-D a, got ${shapeStr(a.shape)}`);
    M = transA ? a.shape[1] : a.shape[0];
    Ka = transA ? a.shape[0] : a.shape[1];
  } else {
    if (a.shape.length < 1) throw new Error(`matmul: a must have at least 2 dimensions, got ${shapeStr(a.shape)}`);
    Ka = a.shape[a.shape.length - 1];
    M = a.size / Math.max(Ka, 1);
  }
  const bs = bBatched ? b.shape.slice(1) : b.shape;
  const Kb = transB ? bs[1] : bs[0];
  const N = transB ? bs[0] : bs[1];
  if (Ka !== Kb) {
    throw new Error(`matmul: inner dimensions differ: a ${shapeStr(a.shape)}${transA ? 'ᵀ' : ''} · b ${shapeStr(b.shape)}${transB ? 'ᵀ' : ''} (${Ka} vs ${Kb})`);
  }
  const Kd = Ka;
  if (bBatched) outShape = [batch, M, N];
  else if (a.shape.length === 2 || transA) outShape = [M, N];
  else outShape = [...a.shape.slice(0, -1), N];

  const lda = a.shape[a.shape.length - 1], ldb = bs[1];
  const sA = bBatched ? a.shape[1] * a.shape[2] : 0, sB = bBatched ? bs[0] * bs[1] : 0, sC = M * N;
  const out = Tensor.empty(outShape, false);
  K().gemm(transA, transB, M, N, Kd, 1, a.data, lda, sA, b.data, ldb, sB, 0, out.data, N, sC, batch);

  if (recording(a, b)) {
    out.requiresGrad = true;
    out.node = {
      op: 'matmul',
      inputs: [a, b],
      backward(dC) {
        const k = K();
        // A fresh gradient is written (beta 0) rather than cleared and accumulated into.
        const dA = gradSlot(a);
        if (dA) {
          const beta = betaFor(dA);
          if (!transA) k.gemm(false, !transB, M, Kd, N, 1, dC, N, sC, b.data, ldb, sB, beta, dA.data, lda, sA, batch);
          else k.gemm(transB, true, Kd, M, N, 1, b.data, ldb, sB, dC, N, sC, beta, dA.data, lda, sA, batch);
        }
        const dB = gradSlot(b);
        if (dB) {
          const beta = betaFor(dB);
          if (!transB) k.gemm(!transA, false, Kd, N, M, 1, a.data, lda, sA, dC, N, sC, beta, dB.data, ldb, sB, batch);
          else k.gemm(true, transA, N, Kd, M, 1, dC, N, sC, a.data, lda, sA, beta, dB.data, ldb, sB, batch);
        }
      },
    };
  }
  return out;
}

/** y = x · Wᵀ for W [out, in] (PyTorch's Linear without bias); x [..., in] -> [..., out]. */
export function linear(x: Tensor, weight: Tensor): Tensor {
  if (weight.shape.length !== 2) throw new Error(`linear: weight must be 2-D [out, in], got ${shapeStr(weight.shape)}`);
  if (x.shape[x.shape.length - 1] !== weight.shape[1]) {
    throw new Error(`linear: input ${shapeStr(x.shape)} has last dimension ${x.shape[x.shape.length - 1]}, weight ${shapeStr(weight.shape)} expects ${weight.shape[1]}`);
  }
  return matmul(x, weight, { transB: true });
}

/** Dropout on the LoRA branch's input: probability p, mask key from the layer's random stream. */
export interface LoraDropout {
  p: number;
  key: number;
}

/** xd = x ∘ mask (the mask Kernels.dropoutMask draws from `key`), into `out`. */
function applyDropout(x: Float32Array, out: Float32Array, n: number, d: LoraDropout): void {
  const k = K(), f = fusedKernels(k), threshold = dropThreshold(d.p), keep = 1 / (1 - d.p);
  if (f) return f.dropoutApply(x, out, n, d.key, threshold, keep);
  k.dropoutMask(out, n, d.key, threshold, keep);
  k.mul(x, out, out, n);
}

/** dx += g ∘ mask; `g` may be overwritten. */
function dropoutBackwardAdd(g: Float32Array, dx: Float32Array, n: number, d: LoraDropout): void {
  const k = K(), f = fusedKernels(k), threshold = dropThreshold(d.p), keep = 1 / (1 - d.p);
  if (f) return f.dropoutBackwardAdd(g, dx, n, d.key, threshold, keep);
  const mask = Tensor.empty([n], false);
  k.dropoutMask(mask.data, n, d.key, threshold, keep);
  k.mul(g, mask.data, g, n);
  mask.dispose();
  k.axpy(1, g, dx, n);
}

/**
 * A bfloat16 copy of an fp32 matrix for the frozen-weight products: packed two per float for
 * the native bf16 GEMM, or (js backend, or a CPU without bf16 matmuls) the fp32 values rounded to
 * bf16, which an fp32 GEMM then multiplies to the same result up to summation order.
 */
interface Bf16Copy {
  t: Tensor;
  packed: boolean;
}

/** Round-to-nearest-even fp32 → bf16 (kept in fp32), NaN stays NaN; the C toBf16 bit for bit. */
function roundToBf16(src: Float32Array, dst: Float32Array, n: number): void {
  const s = new Uint32Array(src.buffer, src.byteOffset, n), d = new Uint32Array(dst.buffer, dst.byteOffset, n);
  for (let i = 0; i < n; i++) {
    const u = s[i];
    d[i] = (u & 0x7fffffff) > 0x7f800000 ? (u | 0x400000) & 0xffff0000 : (((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16) >>> 0;
  }
}

/** How frozenBf16 products run on the active backend, in words. */
export function bf16Support(): string {
  return fusedKernels(K())?.bf16 ? 'oneDNN bf16 matmul' : 'bf16 rounding emulated in fp32 on this backend';
}

function bf16Copy(src: Float32Array, n: number): Bf16Copy {
  const f = fusedKernels(K());
  if (f?.bf16) {
    const t = Tensor.empty([(n + 1) >> 1], false);
    f.toBf16(src, t.data, n);
    return { t, packed: true };
  }
  const t = Tensor.empty([n], false);
  roundToBf16(src, t.data, n);
  return { t, packed: false };
}

function gemmBf16(transA: boolean, transB: boolean, M: number, N: number, Kd: number, A: Bf16Copy, lda: number, B: Bf16Copy, ldb: number, beta: number, C: Float32Array, ldc: number): void {
  if (A.packed && B.packed) fusedKernels(K())!.gemmBf16(transA, transB, M, N, Kd, 1, A.t.data, lda, B.t.data, ldb, beta, C, ldc);
  else K().gemm(transA, transB, M, N, Kd, 1, A.t.data, lda, 0, B.t.data, ldb, 0, beta, C, ldc, 0, 1);
}

export interface LoraLinearOptions {
  /**
   * Form the frozen-weight products (x·Wᵀ and dY·W) in bfloat16 with fp32 accumulation (AMX /
   * AVX512-BF16 through oneDNN where available; rounding emulated elsewhere). Ignored when W
   * requires a gradient. W itself stays fp32 (merges, checkpoints and export are unchanged).
   */
  frozenBf16?: boolean;
  /** Order of products (see loraProductOrder); 'auto' (default) picks the one with fewer FLOPs. */
  order?: 'auto' | LoraOrder;
}

/**
 * 'factored': y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, the LoRA branch as two skinny products.
 * 'merged' (RunLoRA): y = x·(W + s·B·A)ᵀ, the branch folded into a temporary copy of W, one big
 * product; only possible without dropout, since the branch must see the same x as W.
 */
export type LoraOrder = 'factored' | 'merged';

/**
 * The order with fewer FLOPs for `tokens` rows through an [out, in] layer of rank r. Forward
 * alone: factored 2·T·r·(in+out), merged 2·r·in·out. Forward and backward (W frozen, A and B
 * trained): merged also skips the branch's share of dX (2·T·r·in) but recomputes x·Aᵀ and the
 * merged W, so it wins when T·(in+out) > 2·in·out.
 */
export function loraProductOrder(tokens: number, inF: number, outF: number, r: number, dropout: boolean, backward: boolean): LoraOrder {
  if (dropout || r === 0) return 'factored';
  return tokens * (inF + outF) > (backward ? 2 : 1) * inF * outF ? 'merged' : 'factored';
}

/** W + s·B·A as a scratch tensor [out, in] (the caller disposes it). */
function mergedCopy(W: Float32Array, A: Float32Array, Bm: Float32Array, s: number, outF: number, inF: number, r: number): Tensor {
  const m = Tensor.empty([outF, inF], false);
  m.data.set(W);
  K().gemm(false, false, outF, inF, r, s, Bm, r, 0, A, inF, 0, 1, m.data, inF, 0, 1);
  return m;
}

/** The frozen operand as fp32 values, or as a bfloat16 copy (then X is rounded to bf16 too). */
type FrozenOperand = Float32Array | Bf16Copy;

function frozenOperand(W: Float32Array, bf16: boolean): FrozenOperand {
  return bf16 ? bf16Copy(W, W.length) : W;
}

function releaseOperand(w: FrozenOperand): void {
  if (!(w instanceof Float32Array)) w.t.dispose();
}

/** C = X·Wᵀ (transW) or X·W with fp32 accumulation; beta as in GEMM. */
function frozenProduct(transW: boolean, rows: number, cols: number, inner: number, X: Float32Array, W: FrozenOperand, beta: number, C: Float32Array): void {
  const ldx = inner, ldw = transW ? inner : cols;
  if (W instanceof Float32Array) return K().gemm(false, transW, rows, cols, inner, 1, X, ldx, 0, W, ldw, 0, beta, C, cols, 0, 1);
  const xb = bf16Copy(X, rows * inner);
  gemmBf16(false, transW, rows, cols, inner, xb, ldx, W, ldw, beta, C, cols);
  xb.t.dispose();
}

/**
 * A LoRA linear layer as one op (spec section 3):
 *   y = x·Wᵀ + s · ((dropout(x)·Aᵀ)·Bᵀ),   W [out, in], A [r, in], B [out, r]
 * in the order of products with fewer FLOPs (loraProductOrder). Factored: x·Aᵀ first, the
 * [tokens, r] intermediate u is the only thing kept for backward besides x, and s·u·Bᵀ is added
 * into y by the GEMM itself; the dropout mask is regenerated from its key in backward instead of
 * being stored. Merged: nothing is kept but x; W + s·B·A is formed again in backward. Either way
 * a frozen W (no gradient) costs no dW product. x: [..., in] -> [..., out].
 */
export function loraLinear(
  x: Tensor, weight: Tensor, loraA: Tensor, loraB: Tensor, scaling: number, dropout: LoraDropout | null, opts: LoraLinearOptions = {},
): Tensor {
  if (weight.shape.length !== 2 || loraA.shape.length !== 2 || loraB.shape.length !== 2) {
    throw new Error(`loraLinear: W, A and B must be 2-D, got ${shapeStr(weight.shape)}, ${shapeStr(loraA.shape)}, ${shapeStr(loraB.shape)}`);
  }
  const [outF, inF] = weight.shape, r = loraA.shape[0];
  if (x.shape[x.shape.length - 1] !== inF) throw new Error(`loraLinear: input ${shapeStr(x.shape)} has last dimension ${x.shape[x.shape.length - 1]}, W ${shapeStr(weight.shape)} expects ${inF}`);
  if (loraA.shape[1] !== inF || loraB.shape[0] !== outF || loraB.shape[1] !== r) {
    throw new Error(`loraLinear: A ${shapeStr(loraA.shape)} and B ${shapeStr(loraB.shape)} do not fit W ${shapeStr(weight.shape)} (expected A [r, ${inF}], B [${outF}, r])`);
  }
  if (dropout && !(dropout.p > 0 && dropout.p < 1)) throw new Error(`loraLinear: dropout probability must be in (0, 1), got ${dropout.p}`);
  const k = K();
  const tok = x.size / inF, n = x.size;
  const W = weight.data, A = loraA.data, Bm = loraB.data;
  const out = Tensor.empty([...x.shape.slice(0, -1), outF], false);
  const y = out.data;
  const grads = recording(x, weight, loraA, loraB);
  const requested = opts.order ?? 'auto';
  if (requested === 'merged' && dropout) throw new Error('loraLinear: the merged order needs dropout off (the branch must see the same x as W)');
  const order = requested === 'auto' ? loraProductOrder(tok, inF, outF, r, dropout !== null, grads) : requested;
  // The bf16 copy of W is made again in backward rather than kept: converting costs less than
  // holding half of every frozen weight through the step. A bf16 copy of the merged W + s·B·A is
  // kept (forming it again would cost a GEMM too); an fp32 one is formed again rather than held.
  const bf16 = opts.frozenBf16 === true && !weight.requiresGrad;
  let u: Tensor | null = null;
  let merged: FrozenOperand | null = null;
  if (order === 'merged') {
    const m = mergedCopy(W, A, Bm, scaling, outF, inF, r);
    merged = frozenOperand(m.data, bf16);
    frozenProduct(true, tok, outF, inF, x.data, merged, 0, y);
    if (merged === m.data || !grads) {
      releaseOperand(merged);
      merged = null;
    }
    m.dispose();
  } else {
    const w = frozenOperand(W, bf16);
    frozenProduct(true, tok, outF, inF, x.data, w, 0, y);
    releaseOperand(w);
    u = Tensor.empty([tok, r], false);
    if (dropout) {
      const xd = Tensor.empty([n], false);
      applyDropout(x.data, xd.data, n, dropout);
      k.gemm(false, true, tok, r, inF, 1, xd.data, inF, 0, A, inF, 0, 0, u.data, r, 0, 1);
      xd.dispose();
    } else {
      k.gemm(false, true, tok, r, inF, 1, x.data, inF, 0, A, inF, 0, 0, u.data, r, 0, 1);
    }
    k.gemm(false, true, tok, outF, r, scaling, u.data, r, 0, Bm, r, 0, 1, y, outF, 0, 1);
  }
  if (!grads) {
    u?.dispose();
    return out;
  }
  out.requiresGrad = true;
  out.node = {
    op: 'loraLinear',
    inputs: [x, weight, loraA, loraB],
    backward(g) {
      const kb = K();
      const gx = gradSlot(x);
      if (gx && order === 'merged') {
        // dx = g·(W + s·B·A): the branch's share of dx comes with the frozen product.
        const m = merged ? null : mergedCopy(W, A, Bm, scaling, outF, inF, r);
        frozenProduct(false, tok, inF, outF, g, merged ?? m!.data, betaFor(gx), gx.data);
        m?.dispose();
      } else if (gx) {
        const w = frozenOperand(W, bf16);
        frozenProduct(false, tok, inF, outF, g, w, betaFor(gx), gx.data);
        releaseOperand(w);
      }
      if (merged) releaseOperand(merged);
      merged = null;
      const gW = gradSlot(weight);
      if (gW) kb.gemm(true, false, outF, inF, tok, 1, g, outF, 0, x.data, inF, 0, betaFor(gW), gW.data, inF, 0, 1);
      const needA = loraA.requiresGrad, needB = loraB.requiresGrad;
      if (!needA && !needB && (order === 'merged' || !gx)) {
        u?.dispose();
        return;
      }
      if (!u && needB) {
        u = Tensor.empty([tok, r], false);
        kb.gemm(false, true, tok, r, inF, 1, x.data, inF, 0, A, inF, 0, 0, u.data, r, 0, 1);
      }
      const gB = gradSlot(loraB);
      if (gB) kb.gemm(true, false, outF, r, tok, scaling, g, outF, 0, u!.data, r, 0, betaFor(gB), gB.data, r, 0, 1);
      u?.dispose();
      u = null;
      const branchDx = gx !== null && order === 'factored';
      if (!needA && !branchDx) return;
      // t = s·g·B [tok, r]: the gradient of u.
      const t = Tensor.empty([tok, r], false);
      kb.gemm(false, false, tok, r, outF, scaling, g, outF, 0, Bm, r, 0, 0, t.data, r, 0, 1);
      const scratch = dropout ? Tensor.empty([n], false) : null;
      const gA = gradSlot(loraA);
      if (gA) {
        let xd = x.data;
        if (scratch) {
          applyDropout(x.data, scratch.data, n, dropout!);
          xd = scratch.data;
        }
        kb.gemm(true, false, r, inF, tok, 1, t.data, r, 0, xd, inF, 0, betaFor(gA), gA.data, inF, 0, 1);
      }
      if (branchDx) {
        // dx += (t·A) ∘ mask; without dropout the GEMM accumulates straight into dx.
        if (scratch) {
          kb.gemm(false, false, tok, inF, r, 1, t.data, r, 0, A, inF, 0, 0, scratch.data, inF, 0, 1);
          dropoutBackwardAdd(scratch.data, gx!.data, n, dropout!);
        } else {
          kb.gemm(false, false, tok, inF, r, 1, t.data, r, 0, A, inF, 0, 1, gx!.data, inF, 0, 1);
        }
      }
      scratch?.dispose();
      t.dispose();
    },
  };
  return out;
}
