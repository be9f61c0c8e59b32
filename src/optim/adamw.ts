/**
 * AdamW over trainable parameters only (PyTorch semantics; docs/method.md, "Optimizer reset"): β = (0.9, 0.999),
 * eps 1e-8, decoupled weight decay, bias correction from the step count.
 */
import { K } from '../engine/backend.ts';
import { parameter, Tensor } from '../engine/tensor.ts';
import { partitionParameters } from './partition.ts';

export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /**
   * Keep moments only for this process's share of the parameters (ZeRO stage 1, partition.ts):
   * `step` then updates only those, and the caller shares the updated weights.
   */
  shard?: { rank: number; size: number };
}

export interface AdamWState {
  m: Tensor;
  v: Tensor;
}

export class AdamW {
  readonly params: [string, Tensor][];
  lr: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of optimizer steps taken (not reset at ReLoRA restarts). */
  stepCount = 0;
  /** Moments of the parameters this process updates (all of them unless sharded), in parameter order. */
  readonly state = new Map<string, AdamWState>();
  /** The process that keeps each parameter's moments (by index in `params`); all 0 unless sharded. */
  readonly owners: number[];

  constructor(params: [string, Tensor][], opts: AdamWOptions) {
    this.params = params.filter(([, t]) => t.requiresGrad);
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    if (!(this.lr >= 0)) throw new Error(`AdamW: lr must be >= 0, got ${opts.lr}`);
    if (!(this.beta1 >= 0 && this.beta1 < 1)) throw new Error(`AdamW: beta1 must be in [0, 1), got ${this.beta1}`);
    if (!(this.beta2 >= 0 && this.beta2 < 1)) throw new Error(`AdamW: beta2 must be in [0, 1), got ${this.beta2}`);
    if (!(this.eps > 0)) throw new Error(`AdamW: eps must be > 0, got ${this.eps}`);
    if (!(this.weightDecay >= 0)) throw new Error(`AdamW: weight decay must be >= 0, got ${this.weightDecay}`);
    const shard = opts.shard ?? { rank: 0, size: 1 };
    this.owners = partitionParameters(this.params.map(([, t]) => t.size), shard.size);
    this.params.forEach(([name, t], i) => {
      if (this.owners[i] === shard.rank) this.state.set(name, { m: parameter(t.shape, false), v: parameter(t.shape, false) });
    });
  }

  /**
   * One update with learning rate `lr` (the schedule's lr·λ), each gradient taken as
   * grad · gradScale — clipScale's factor: clipping folded into the update, the gradients left as
   * they are. Parameters without a gradient, or kept by another process, are skipped.
   */
  step(lr = this.lr, gradScale = 1): void {
    this.stepCount++;
    const bc1 = 1 - Math.pow(this.beta1, this.stepCount);
    const bc2 = 1 - Math.pow(this.beta2, this.stepCount);
    const k = K();
    for (const [name, p] of this.params) {
      const s = this.state.get(name);
      if (!p.grad || !s) continue;
      k.adamwStep(p.buf, p.grad.buf, s.m.buf, s.v.buf, p.size, lr, this.beta1, this.beta2, this.eps, this.weightDecay, bc1, bc2, gradScale);
    }
  }

  /**
   * Drop every gradient, as PyTorch's zero_grad(set_to_none=True): the buffers go back to the
   * pool and the next backward takes them again (no allocation) and writes its first
   * contribution instead of adding it to zeros. A parameter that then gets no gradient is
   * skipped by step(), as in PyTorch.
   */
  zeroGrad(): void {
    for (const [, p] of this.params) {
      if (!p.grad) continue;
      p.grad.dispose();
      p.grad = null;
    }
  }

  /** Bytes of optimizer state this process keeps (two moments per element). */
  stateBytes(): number {
    let n = 0;
    for (const s of this.state.values()) n += 2 * s.m.size * 4;
    return n;
  }

  dispose(): void {
    for (const s of this.state.values()) {
      s.m.dispose();
      s.v.dispose();
    }
  }
}

/** Global L2 norm of the gradients; if above maxNorm, scale them by maxNorm / (norm + 1e-6) (PyTorch clip_grad_norm_). */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const norm = startGradNorm(params).norm();
  scaleGradients(params, clipScale(norm, maxNorm));
  return norm;
}

/**
 * The factor clip_grad_norm_ multiplies the gradients by: maxNorm / (norm + 1e-6) when that is
 * below 1, else 1 (also when maxNorm ≤ 0 turns clipping off, or the norm is not finite).
 */
export function clipScale(norm: number, maxNorm: number): number {
  if (!(maxNorm > 0) || !Number.isFinite(norm)) return 1;
  return Math.min(1, maxNorm / (norm + 1e-6));
}

/** Multiplies every gradient of `params` present by `scale` (nothing to do for 1). */
export function scaleGradients(params: readonly Tensor[], scale: number): void {
  if (scale === 1) return;
  const k = K();
  for (const p of params) if (p.grad) k.scale(p.grad.buf, scale, p.grad.buf, p.size);
}

/** The global gradient norm in two halves (startGradNorm): the sums of squares, then the norm. */
export interface PendingNorm {
  /**
   * On a device backend, the tensor holding every gradient's sum of squares, still on the device:
   * a caller that reads it back together with its other values (toHostAll) saves a readback.
   * Null on a host backend, where the sums are already computed.
   */
  readonly deviceSums: Tensor | null;
  /** The global L2 norm (reading deviceSums back if the caller has not). */
  norm(): number;
}

/**
 * Computes every gradient's sum of squares now (on a device backend, into a device tensor
 * without reading it back); `norm` adds them up. The gradients must not change in between.
 */
export function startGradNorm(params: readonly Tensor[]): PendingNorm {
  const k = K();
  if (!k.sumSquaresEachInto) {
    const each = params.map((p) => (p.grad ? k.sumSquares(p.grad.buf, p.size) : 0));
    return { deviceSums: null, norm: () => globalNorm(each) };
  }
  const grads = params.flatMap((p) => (p.grad ? [p.grad] : []));
  const sums = Tensor.empty([Math.max(1, grads.length)], false);
  k.sumSquaresEachInto(grads.map((g) => g.buf), grads.map((g) => g.size), sums.buf);
  return {
    deviceSums: sums,
    norm: () => {
      try {
        return globalNorm(sums.data.subarray(0, grads.length));
      } finally {
        sums.dispose();
      }
    },
  };
}

/**
 * The global L2 norm from every gradient's sum of squares, in parameter order (summed in that
 * order, so processes that each computed some of them get the norm bit for bit).
 */
export function globalNorm(sumsOfSquares: ArrayLike<number>): number {
  let ss = 0;
  for (let i = 0; i < sumsOfSquares.length; i++) ss += sumsOfSquares[i];
  return Math.sqrt(ss);
}
