/**
 * Averaging the gradients of data-parallel ranks after backward, the way PyTorch's
 * DistributedDataParallel does: only the parameters that train (in a LoRA/ReLoRA phase the LoRA
 * factors, embeddings, norms and head — never the frozen W, which has no gradient) are summed
 * with MPI all-reduce, in buckets (buckets.ts), and divided by the number of ranks. Every bucket
 * is started before the first is waited for, so packing and reducing overlap. With a sharded
 * optimizer the same steps are done differently (sharded-gradients.ts); `GradientSync` is what
 * the training step sees of either.
 */
import { K } from '../engine/backend.ts';
import { Tensor } from '../engine/tensor.ts';
import { startGradNorm, type AdamW, type AdamWState } from '../optim/adamw.ts';
import { BUCKET_ELEMENTS, gradValues, pack, planBuckets, planFits, unpack, type BucketPlan } from './buckets.ts';
import type { Communicator, PendingReduction } from './communicator.ts';

export { BUCKET_ELEMENTS } from './buckets.ts';

/** What the last update communicated. */
export interface CommunicationStats {
  /** Bytes of gradients each rank reduced (float32; the 8-byte loss beside them is not counted). */
  bytes: number;
  /** Seconds spent in communication (packing, reducing, unpacking, scaling, sharing weights). */
  seconds: number;
}

/** The optimizer moments of every trainable parameter, for a checkpoint; `release` frees what was copied for it. */
export interface CollectedMoments {
  moments: ReadonlyMap<string, AdamWState>;
  release(): void;
}

/** How one update's gradients, and then its weights, are shared between the ranks. */
export interface GradientSync {
  /** Statistics of the last update. */
  readonly last: CommunicationStats;
  /**
   * Return the mean of the ranks' losses; afterwards the gradients this rank's optimizer updates
   * hold their mean over the ranks. Every rank passes the same parameters in the same order.
   */
  average(params: readonly Tensor[], loss: number): number;
  /** The global gradient norm, the same on every rank (the optimizer step applies the clipping, clipScale). */
  norm(params: readonly Tensor[]): number;
  /** After the optimizer step: every rank gets the weights other ranks updated. */
  shareWeights(params: readonly Tensor[]): void;
  /** The moments of every parameter, on rank 0 (for a checkpoint); every rank calls it. */
  collectMoments(optimizer: AdamW): CollectedMoments;
}

export class GradientAverager implements GradientSync {
  private plan: BucketPlan | null = null;
  last: CommunicationStats = { bytes: 0, seconds: 0 };

  constructor(private readonly comm: Communicator, private readonly bucketElements = BUCKET_ELEMENTS) {}

  /**
   * Replace every parameter's gradient by the mean over the ranks and return the mean of the
   * ranks' losses. A parameter without a gradient on this rank gets a zero one, so that every
   * rank sends the same layout.
   */
  average(params: readonly Tensor[], loss: number): number {
    if (this.comm.size === 1) return loss;
    const started = performance.now();
    for (const p of params) p.grad ??= Tensor.zeros(p.shape);
    if (!planFits(this.plan, params)) this.plan = planBuckets(params, this.bucketElements);
    const plan = this.plan;
    const pending: PendingReduction[] = plan.large.map(({ param }) => this.comm.startAllReduceSum(gradValues(param)));
    for (const b of plan.buckets) {
      pack(b, gradValues);
      pending.push(this.comm.startAllReduceSum(b.buffer));
    }
    const scalar = new Float64Array([loss]);
    this.comm.allReduceF64(scalar, 'sum');
    const k = K(), inv = 1 / this.comm.size;
    pending.forEach((r) => r.wait());
    for (const b of plan.buckets) unpack(b, gradValues);
    for (const p of params) k.scale(p.grad!.data, inv, p.grad!.data, p.size);
    this.last = { bytes: plan.elements * 4, seconds: (performance.now() - started) / 1000 };
    return scalar[0] * inv;
  }

  norm(params: readonly Tensor[]): number {
    return startGradNorm(params).norm();
  }

  /** Every rank took the same step: nothing to share. */
  shareWeights(_params: readonly Tensor[]): void {}

  /** Every rank holds every moment. */
  collectMoments(optimizer: AdamW): CollectedMoments {
    return { moments: optimizer.state, release() {} };
  }
}

/** Bytes of gradients all-reduced per update when this many parameters train (float32). */
export function allReduceBytesPerUpdate(trainableParameters: number): number {
  return trainableParameters * 4;
}
