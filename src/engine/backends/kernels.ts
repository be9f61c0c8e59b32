/**
 * The one interface every compute backend implements.
 *
 * Conventions (the js backend in ./js.ts is the readable reference; native must agree with it):
 * - All matrices are row-major, float32, contiguous unless a leading dimension says otherwise.
 * - Sizes are element counts. Offsets are expressed by passing a `subarray` view.
 * - Forward kernels WRITE their outputs.
 * - Backward kernels ACCUMULATE (+=) into gradient buffers, so several consumers of one tensor
 *   can add their contributions without temporaries. Callers pass zero-filled buffers for the
 *   first contribution.
 * - A `null` gradient buffer means "not needed": the kernel must skip that work entirely (this is
 *   how frozen weights avoid their dW product).
 * - Kernels validate sizes against the arrays they are given before touching memory and throw
 *   an Error naming the kernel and the mismatch. They never read or write out of bounds.
 *
 * Layouts used by the transformer kernels:
 * - Activations are [B, T, H, D] flattened, i.e. a [B*T, H*D] matrix (what a Linear produces).
 * - Attention probabilities saved for backward are [B, H, T, T]; entries above the diagonal are 0.
 * - RoPE tables `cos`/`sin` are [T, D/2]: angle(t, i) = t * theta^(-2i/D) (Hugging Face layout:
 *   the first half of a head pairs with the second half, "rotate half").
 */
import type { DeviceMirror } from '../tensor.ts';

export interface Kernels {
  /** "js", "native" or "webgpu". */
  readonly name: 'js' | 'native' | 'webgpu';
  /** GEMM provider: "onednn", "builtin" (native fallback blocked GEMM) or "js". */
  readonly blas: string;
  /** Threads the backend uses for its kernels (1 for js). */
  getThreads(): number;
  setThreads(n: number): void;

  /**
   * Batched GEMM: for b in [0, batch):
   *   C_b = alpha * op(A_b) · op(B_b) + beta * C_b
   * with op(A_b) M×K, op(B_b) K×N, C_b M×N (leading dimension ldc).
   * A_b starts at A[b*strideA]; stored M×K with row stride lda (lda >= K) when !transA,
   * or K×M with lda >= M when transA. Likewise B_b: K×N (ldb >= N) or N×K (ldb >= K) when transB.
   * A stride of 0 broadcasts that operand over the batch. When beta == 0, C is not read
   * (NaNs in C do not propagate).
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, strideA: number,
    B: Float32Array, ldb: number, strideB: number,
    beta: number, C: Float32Array, ldc: number, strideC: number, batch: number,
  ): void;

  /** out[i] = a[i] + b[i] for i < n. */
  add(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  /** out[i] = a[i] * b[i]. */
  mul(a: Float32Array, b: Float32Array, out: Float32Array, n: number): void;
  /** out[i] = a[i] * s. */
  scale(a: Float32Array, s: number, out: Float32Array, n: number): void;
  /** y[i] += alpha * x[i]. */
  axpy(alpha: number, x: Float32Array, y: Float32Array, n: number): void;
  /** out[i] += value. */
  addScalar(out: Float32Array, value: number, n: number): void;
  /** Sum of x[0..n) accumulated in float64. */
  sum(x: Float32Array, n: number): number;
  /** Sum of squares of x[0..n) accumulated in float64. */
  sumSquares(x: Float32Array, n: number): number;
  /** out[i] = 0. */
  fill(out: Float32Array, value: number, n: number): void;

  /**
   * out[r, :] = weight[ids[r], :] for r < nIds. Throws (before writing anything) if any id is
   * outside [0, vocab); the message names the first bad id and its position.
   */
  embeddingForward(weight: Float32Array, ids: Int32Array, out: Float32Array, nIds: number, vocab: number, dim: number): void;
  /** dWeight[ids[r], :] += dout[r, :] (scatter-add; ids already validated by forward). */
  embeddingBackward(dout: Float32Array, ids: Int32Array, dWeight: Float32Array, nIds: number, vocab: number, dim: number): void;

  /**
   * RMSNorm over rows: rstd[r] = 1 / sqrt(mean(x[r,:]^2) + eps) (mean accumulated in float32 like
   * PyTorch's fp32 path or better), out[r, j] = x[r, j] * rstd[r] * weight[j].
   */
  rmsnormForward(x: Float32Array, weight: Float32Array, out: Float32Array, rstd: Float32Array, rows: number, dim: number, eps: number): void;
  /** Accumulates dx (if not null) and dWeight (if not null). */
  rmsnormBackward(
    dout: Float32Array, x: Float32Array, weight: Float32Array, rstd: Float32Array,
    dx: Float32Array | null, dWeight: Float32Array | null, rows: number, dim: number,
  ): void;

  /**
   * Rotary embedding on x [B, T, H, D] with tables cos/sin [T, D/2] (D even):
   *   out1 = x1*c - x2*s ; out2 = x2*c + x1*s   where x1 = x[..., :D/2], x2 = x[..., D/2:].
   */
  ropeForward(x: Float32Array, cos: Float32Array, sin: Float32Array, out: Float32Array, B: number, T: number, H: number, D: number): void;
  /** Inverse rotation of dout, accumulated into dx: dx1 += d1*c + d2*s ; dx2 += d2*c - d1*s. */
  ropeBackward(dout: Float32Array, cos: Float32Array, sin: Float32Array, dx: Float32Array, B: number, T: number, H: number, D: number): void;

  /**
   * Causal multi-head attention. q, k, v, out: [B, T, H, D]; probs: [B, H, T, T] (written, with
   * zeros above the diagonal). out[b,t,h,:] = sum_{s<=t} P[b,h,t,s] v[b,s,h,:],
   * P = softmax_s(scale * q[b,t,h,:]·k[b,s,h,:]) over s <= t.
   */
  attentionForward(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, probs: Float32Array,
    B: number, T: number, H: number, D: number, scale: number,
  ): void;
  /** Accumulates into dq, dk, dv (each may be null when not needed). */
  attentionBackward(
    dout: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array, probs: Float32Array,
    dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null,
    B: number, T: number, H: number, D: number, scale: number,
  ): void;

  /**
   * attentionForward in bf16 mixed precision, as autocast runs it: P = softmax(scale · bf16(q)·bf16(k)ᵀ)
   * with fp32 accumulation and an fp32 softmax, out = bf16(P)·bf16(v). P itself is not kept:
   * `stats` [B, H, T, 2] gets each query row's softmax max and 1/sum, from which the backward
   * computes P again bit for bit (as flash attention does), and `saved` q, k, v rounded to bf16
   * (toBf16's rounding), packed, head-major [3, B, H, T, D] — ceil(3·B·T·H·D / 2) floats.
   */
  attentionForwardBf16(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, stats: Float32Array, saved: Float32Array,
    B: number, T: number, H: number, D: number, scale: number,
  ): void;
  /**
   * Its backward, from `saved` and `stats`, into dq, dk, dv (each may be null) — added to them, or
   * with `accumulate` false written over them (no clearing pass for fresh gradients) — with the
   * products' operands rounded to bf16: g = bf16(dout); dv += bf16(P)ᵀ·g; dP = g·bf16(v)ᵀ;
   * dS = scale · P ∘ (dP − rowsum(dP ∘ P)) in fp32; dq += bf16(dS)·bf16(k); dk += bf16(dS)ᵀ·bf16(q).
   */
  attentionBackwardBf16(
    dout: Float32Array, saved: Float32Array, stats: Float32Array,
    dq: Float32Array | null, dk: Float32Array | null, dv: Float32Array | null,
    B: number, T: number, H: number, D: number, scale: number, accumulate: boolean,
  ): void;

  /** out = silu(x) = x * sigmoid(x). */
  siluForward(x: Float32Array, out: Float32Array, n: number): void;
  /** dx += dout * silu'(x). */
  siluBackward(dout: Float32Array, x: Float32Array, dx: Float32Array, n: number): void;
  /** SwiGLU product: out = silu(gate) * up. */
  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array, n: number): void;
  /**
   * dGate += dout * up * silu'(gate); dUp += dout * silu(gate). Either may be null. With
   * `accumulate` false both are written instead (0 + the same term), so fresh gradients need no
   * clearing pass.
   */
  swigluBackward(dout: Float32Array, gate: Float32Array, up: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null, n: number, accumulate: boolean): void;

  /**
   * Dropout mask from the counter-based generator (see ../rng.ts `hash32`):
   *   mask[i] = hash32(key, i) >= threshold ? scale : 0
   * where threshold = round(p * 2^32) clamped to [0, 2^32-1] and scale = 1/(1-p).
   * Pure integer comparison, so js and native produce identical masks.
   */
  dropoutMask(mask: Float32Array, n: number, key: number, threshold: number, scale: number): void;
  /** out[i] = x[i] · mask[i] with the mask of dropoutMask(key, threshold, scale), never stored (out must not be x). */
  dropoutApply(x: Float32Array, out: Float32Array, n: number, key: number, threshold: number, scale: number): void;
  /** dropoutApply with `out` packed bf16 (ceil(n / 2) floats): the values toBf16 would round them to. */
  dropoutApplyBf16(x: Float32Array, out: Float32Array, n: number, key: number, threshold: number, scale: number): void;
  /** dx[i] += g[i] · mask[i], the same mask (the backward of dropoutApply). */
  dropoutBackwardAdd(g: Float32Array, dx: Float32Array, n: number, key: number, threshold: number, scale: number): void;

  /**
   * Fused log-softmax + negative log-likelihood over rows of logits [rows, V].
   * For each row r with targets[r] != ignoreIndex: losses[r] = lse[r] - logits[r, targets[r]];
   * ignored rows get losses[r] = 0. lse[r] (log-sum-exp) is always written. Returns the number
   * of non-ignored rows. Throws if a non-ignored target is outside [0, V).
   */
  crossEntropyForward(logits: Float32Array, targets: Int32Array, losses: Float32Array, lse: Float32Array, rows: number, V: number, ignoreIndex: number): number;
  /** dLogits[r, :] += gradScale * (softmax(logits[r]) - onehot(targets[r])) for non-ignored rows. */
  crossEntropyBackward(logits: Float32Array, targets: Int32Array, lse: Float32Array, dLogits: Float32Array, rows: number, V: number, ignoreIndex: number, gradScale: number): void;
  /**
   * crossEntropyBackward that WRITES dLogits (ignored rows zeroed) instead of adding to it, so a
   * fresh buffer needs no clearing pass. dLogits may be `logits` itself (the gradient overwrites
   * the logits it is computed from).
   */
  crossEntropyBackwardWrite(logits: Float32Array, targets: Int32Array, lse: Float32Array, dLogits: Float32Array, rows: number, V: number, ignoreIndex: number, gradScale: number): void;
  /**
   * crossEntropyForward then crossEntropyBackwardWrite, each row visited once (it is still in cache
   * for its gradient): writes losses and lse, returns the non-ignored rows, and writes dLogits.
   * Without `bf16`, logits and dLogits are fp32, the same values as the two calls. With it, both
   * are packed bf16 (the logits a gemmBf16ToBf16 wrote): losses and lse are crossEntropyForward's
   * on the logits' exact fp32 values, and the gradient is computed from the terms of the row's sum
   * — bf16(e_j·k − gradScale·[j = target]) with e_j = exp(x_j − max), k = fp32(gradScale / Σe) — so
   * each exp is computed once: gradScale·softmax up to fp32 rounding, then rounded as toBf16 rounds.
   * dLogits may be `logits` itself, or must not overlap it.
   */
  crossEntropyFused(logits: Float32Array, targets: Int32Array, losses: Float32Array, lse: Float32Array, dLogits: Float32Array, rows: number, V: number, ignoreIndex: number, gradScale: number, bf16: boolean): number;

  /**
   * bfloat16 values travel packed two per float (so they come from the same buffer pool): a bf16
   * array of n values needs ceil(n / 2) floats.
   * dst = bf16(src[0..n)), rounded to nearest even; NaN stays NaN.
   */
  toBf16(src: Float32Array, dst: Float32Array, n: number): void;
  /**
   * toBf16 of a rows × cols matrix into rows ld bf16 values apart (ld >= cols; dst needs
   * ceil(((rows − 1)·ld + cols) / 2) floats): a copy whose row stride suits the bf16 products better
   * than the fp32 one. The values between rows are not written.
   */
  toBf16Rows(src: Float32Array, dst: Float32Array, rows: number, cols: number, ld: number): void;
  /**
   * C = alpha·op(A)·op(B) + beta·C for one matrix (gemm's conventions, no batch) with A and B
   * packed bf16 (as toBf16 writes them; leading dimensions count bf16 values), C fp32, fp32
   * accumulation.
   */
  gemmBf16(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, beta: number, C: Float32Array, ldc: number,
  ): void;
  /**
   * gemmBf16 with beta = 0 into packed bf16 C (ldc counts bf16 values): the fp32 sums rounded as
   * toBf16 rounds them (oneDNN may flush fp32 subnormals to zero first), for a product only ever
   * used rounded — half the bytes to write and to read back.
   */
  gemmBf16ToBf16(
    transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
    A: Float32Array, lda: number, B: Float32Array, ldb: number, C: Float32Array, ldc: number,
  ): void;
  /**
   * Whether gemmBf16 runs on bf16 matrix hardware (oneDNN on AMX or AVX512-BF16). When false it
   * is emulated: the bf16 values widened to fp32 and multiplied by gemm, the same result up to
   * summation order.
   */
  hasBf16Gemm(): boolean;

  /**
   * One AdamW step in place (PyTorch semantics), with g = fp32(grad · gradScale) — gradScale is the
   * factor clip_grad_norm_ would have multiplied the gradient by (1 when not clipping), so clipping
   * costs no pass of its own and gives the same values:
   *   p *= (1 - lr*weightDecay); m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
   *   p -= lr * (m / bc1) / (sqrt(v / bc2) + eps)
   * with bc1 = 1 - b1^step, bc2 = 1 - b2^step passed in by the caller.
   * PyTorch computes denom = sqrt(v)/sqrt(bc2) + eps and step = lr/bc1; use that form.
   */
  adamwStep(
    param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, bc1: number, bc2: number, gradScale: number,
  ): void;

  // A backend whose arrays live in device memory (webgpu) has these too; callers use them when
  // present, so that what they compute stays on the device, and host code otherwise.
  /** dst[0..n) = src[0..n). */
  copy?(src: Float32Array, dst: Float32Array, n: number): void;
  /** out[0] = scale · Σ x[0..n), written where the data lives (no readback). */
  sumInto?(x: Float32Array, n: number, out: Float32Array, scale: number): void;
  /** out[i] = Σ x² over the first sizes[i] elements of each xs[i], written where the data lives (no readback). */
  sumSquaresEachInto?(xs: readonly Float32Array[], sizes: readonly number[], out: Float32Array): void;
  /** Keeps tensors' host arrays and device buffers coherent (see ../tensor.ts). */
  readonly deviceMirror?: DeviceMirror;
}
