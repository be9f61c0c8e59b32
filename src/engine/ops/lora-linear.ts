/**
 * The LoRA linear layer as one op (Hu et al., LoRA; the layer ReLoRA trains, Lialin et al.,
 * ICLR 2024): the frozen product and the low-rank branch in the cheaper order of products, with
 * the dropout mask drawn again in backward rather than stored and no dW for a frozen W.
 */
import { K } from '../backend.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { Bf16Copies, bf16Copy, frozenOperand, frozenProduct, mixedGemm, releaseOperand, type Bf16Matrix, type FrozenBf16Copy, type Operand } from './bf16.ts';
import { applyDropout, applyDropoutBf16, dropoutBackwardAdd, type LoraDropout } from './dropout.ts';
import { copyInto } from './copy.ts';
import { betaFor, gradSlot } from './grad.ts';
import { matmulPrecision } from './precision.ts';

export interface LoraLinearOptions {
  /**
   * Form the frozen-weight products (x·Wᵀ and dY·W) in bfloat16 with fp32 accumulation (AMX /
   * AVX512-BF16 through oneDNN where available; rounding emulated elsewhere). Ignored when W
   * requires a gradient. W itself stays fp32 (merges, checkpoints and export are unchanged).
   */
  frozenBf16?: boolean;
  /**
   * Where the bf16 copy of a frozen W is kept across steps (the layer owns it and invalidates it
   * when W changes); without it W is rounded in forward and again in backward.
   */
  frozenCopy?: FrozenBf16Copy;
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
  copyInto(W, m.buf, W.length);
  K().gemm(false, false, outF, inF, r, s, Bm, r, 0, A, inF, 0, 1, m.buf, inF, 0, 1);
  return m;
}

/**
 * A LoRA linear layer as one op (docs/method.md; Lialin et al., ReLoRA):
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
  const tok = x.size / inF, n = x.size;
  const W = weight.buf, A = loraA.buf, Bm = loraB.buf;
  const out = Tensor.empty([...x.shape.slice(0, -1), outF], false);
  const y = out.buf;
  const grads = recording(x, weight, loraA, loraB);
  const requested = opts.order ?? 'auto';
  if (requested === 'merged' && dropout) throw new Error('loraLinear: the merged order needs dropout off (the branch must see the same x as W)');
  const order = requested === 'auto' ? loraProductOrder(tok, inF, outF, r, dropout !== null, grads) : requested;
  // Without opts.frozenCopy the bf16 copy of W is made again in backward rather than kept:
  // converting costs less than holding half of every frozen weight through the step. A bf16 copy
  // of the merged W + s·B·A is kept (forming it again would cost a GEMM too); an fp32 one is formed
  // again rather than held. In bf16 precision every product is bf16 (`mixed`), x's copy is the one
  // all ops share (Bf16Copies.ofTensor), and the branch keeps u and dropout(x) for backward as the
  // bf16 values its products take, so neither is rounded, nor the mask drawn, a second time.
  // frozenBf16 alone rounds the frozen products only.
  const mixed = matmulPrecision() === 'bf16';
  const bf16 = mixed || (opts.frozenBf16 === true && !weight.requiresGrad);
  const cache = bf16 && !weight.requiresGrad ? opts.frozenCopy : undefined;
  const frozenW = (copies: Bf16Copies): Operand => (cache ? cache.of(weight) : copies.of(W, bf16));
  let u: Tensor | null = null;
  let uKept: Bf16Matrix | null = null, xdKept: Bf16Matrix | null = null;
  const releaseKept = (): void => {
    uKept?.packed.dispose();
    xdKept?.packed.dispose();
    uKept = xdKept = null;
  };
  let merged: Operand | null = null;
  const fwd = new Bf16Copies();
  // The factors' bf16 copies are small: made once, kept for backward.
  const factors = new Bf16Copies();
  if (order === 'merged') {
    const m = mergedCopy(W, A, Bm, scaling, outF, inF, r);
    merged = frozenOperand(m.buf, bf16);
    frozenProduct(bf16, true, tok, outF, inF, fwd.ofTensor(x, x.buf, bf16), merged, 0, y);
    if (merged === m.buf || !grads) {
      releaseOperand(merged);
      merged = null;
    }
    m.dispose();
  } else {
    frozenProduct(bf16, true, tok, outF, inF, fwd.ofTensor(x, x.buf, bf16), frozenW(fwd), 0, y);
    u = Tensor.empty([tok, r], false);
    if (dropout && mixed) {
      xdKept = applyDropoutBf16(x.buf, n, dropout);
      mixedGemm(mixed, false, true, tok, r, inF, 1, xdKept, inF, factors.of(A, mixed), inF, 0, u.buf, r);
    } else if (dropout) {
      const xd = Tensor.empty([n], false);
      applyDropout(x.buf, xd.buf, n, dropout);
      mixedGemm(mixed, false, true, tok, r, inF, 1, xd.buf, inF, factors.of(A, mixed), inF, 0, u.buf, r);
      xd.dispose();
    } else {
      mixedGemm(mixed, false, true, tok, r, inF, 1, fwd.ofTensor(x, x.buf, mixed), inF, factors.of(A, mixed), inF, 0, u.buf, r);
    }
    if (mixed) {
      uKept = bf16Copy(u.buf, tok * r);
      u.dispose();
      u = null;
    }
    mixedGemm(mixed, false, true, tok, outF, r, scaling, uKept ?? u!.buf, r, factors.of(Bm, mixed), r, 1, y, outF);
  }
  fwd.dispose();
  if (!grads) {
    u?.dispose();
    releaseKept();
    factors.dispose();
    return out;
  }
  if (!loraA.requiresGrad) {
    xdKept?.packed.dispose();
    xdKept = null;
  }
  out.requiresGrad = true;
  out.node = {
    op: 'loraLinear',
    inputs: [x, weight, loraA, loraB],
    backward(g) {
      // Copies of arrays that outlive this backward only (g, x, W, A, B); scratch is rounded per product.
      const c = new Bf16Copies();
      try {
        backwardProducts(g, c);
      } finally {
        c.dispose();
        u?.dispose();
        u = null;
        releaseKept();
        factors.dispose();
      }
    },
  };
  function backwardProducts(g: Float32Array, c: Bf16Copies): void {
    const gx = gradSlot(x);
    if (gx && order === 'merged') {
      // dx = g·(W + s·B·A): the branch's share of dx comes with the frozen product.
      const m = merged ? null : mergedCopy(W, A, Bm, scaling, outF, inF, r);
      frozenProduct(bf16, false, tok, inF, outF, c.of(g, bf16, outF), merged ?? m!.buf, betaFor(gx), gx.data);
      m?.dispose();
    } else if (gx) {
      frozenProduct(bf16, false, tok, inF, outF, c.of(g, bf16, outF), frozenW(c), betaFor(gx), gx.data);
    }
    if (merged) releaseOperand(merged);
    merged = null;
    const gW = gradSlot(weight);
    if (gW) mixedGemm(mixed, true, false, outF, inF, tok, 1, c.of(g, mixed, outF), outF, c.ofTensor(x, x.buf, mixed), inF, betaFor(gW), gW.data, inF);
    const needA = loraA.requiresGrad, needB = loraB.requiresGrad;
    if (!needA && !needB && (order === 'merged' || !gx)) return;
    if (!u && !uKept && needB) {
      u = Tensor.empty([tok, r], false);
      mixedGemm(mixed, false, true, tok, r, inF, 1, c.ofTensor(x, x.buf, mixed), inF, factors.of(A, mixed), inF, 0, u.buf, r);
    }
    const gB = gradSlot(loraB);
    if (gB) mixedGemm(mixed, true, false, outF, r, tok, scaling, c.of(g, mixed, outF), outF, uKept ?? u!.buf, r, betaFor(gB), gB.data, r);
    u?.dispose();
    u = null;
    const branchDx = gx !== null && order === 'factored';
    if (!needA && !branchDx) return;
    // t = s·g·B [tok, r]: the gradient of u.
    const t = Tensor.empty([tok, r], false);
    mixedGemm(mixed, false, false, tok, r, outF, scaling, c.of(g, mixed, outF), outF, factors.of(Bm, mixed), r, 0, t.buf, r);
    // Rounded once for both products that take it (scratch, so not through `c`).
    const tOp: Operand = mixed ? bf16Copy(t.buf, tok * r) : t.buf;
    const scratch = dropout ? Tensor.empty([n], false) : null;
    const gA = gradSlot(loraA);
    if (gA) {
      let xd: Operand | null = xdKept;
      if (!xd && scratch) {
        applyDropout(x.buf, scratch.buf, n, dropout!);
        xd = scratch.buf;
      }
      mixedGemm(mixed, true, false, r, inF, tok, 1, tOp, r, xd ?? c.ofTensor(x, x.buf, mixed), inF, betaFor(gA), gA.data, inF);
    }
    if (branchDx) {
      // dx += (t·A) ∘ mask; without dropout the GEMM accumulates straight into dx.
      if (scratch) {
        mixedGemm(mixed, false, false, tok, inF, r, 1, tOp, r, factors.of(A, mixed), inF, 0, scratch.buf, inF);
        dropoutBackwardAdd(scratch.buf, gx!.data, n, dropout!);
      } else {
        mixedGemm(mixed, false, false, tok, inF, r, 1, tOp, r, factors.of(A, mixed), inF, 1, gx!.data, inF);
      }
    }
    scratch?.dispose();
    releaseOperand(tOp);
    t.dispose();
  }
  return out;
}
