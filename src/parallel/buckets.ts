/**
 * How the tensors of one collective operation are grouped into messages, as PyTorch's
 * DistributedDataParallel does: small tensors are packed into shared buckets (one message
 * instead of dozens); large ones are sent where they lie. Each message has a root — the rank
 * that receives a reduction or sends a broadcast (a sharded optimizer's owner of those tensors);
 * an all-reduce ignores it.
 */
import type { Tensor } from '../engine/tensor.ts';

/** Elements per bucket (16 MiB of float32), the order of PyTorch DDP's default 25 MB. */
export const BUCKET_ELEMENTS = 1 << 22;

/** Small tensors packed into one buffer, at their offsets. */
export interface Bucket {
  root: number;
  members: { param: Tensor; offset: number }[];
  buffer: Float32Array;
}

export interface BucketPlan {
  /** The tensors planned for, in the caller's order. */
  params: readonly Tensor[];
  /** Tensors of at least `bucketElements` values, each its own message. */
  large: { param: Tensor; root: number }[];
  buckets: Bucket[];
  /** Values in all messages together. */
  elements: number;
}

/**
 * Group `params` into messages of at most `bucketElements` values (larger tensors alone). With
 * `rootOf` (a rank per parameter index), a bucket holds only tensors of one root.
 */
export function planBuckets(params: readonly Tensor[], bucketElements: number, rootOf: (index: number) => number = () => 0): BucketPlan {
  const plan: BucketPlan = { params: [...params], large: [], buckets: [], elements: 0 };
  const roots = [...new Set(params.map((_, i) => rootOf(i)))].sort((a, b) => a - b);
  for (const root of roots) {
    let members: Bucket['members'] = [], used = 0;
    const close = (): void => {
      if (members.length) plan.buckets.push({ root, members, buffer: new Float32Array(used) });
      members = [];
      used = 0;
    };
    params.forEach((p, i) => {
      if (rootOf(i) !== root) return;
      if (p.size >= bucketElements) {
        plan.large.push({ param: p, root });
        return;
      }
      if (used + p.size > bucketElements) close();
      members.push({ param: p, offset: used });
      used += p.size;
    });
    close();
  }
  plan.elements = params.reduce((n, p) => n + p.size, 0);
  return plan;
}

/** Whether `plan` was made for exactly these tensors, in this order. */
export function planFits(plan: BucketPlan | null, params: readonly Tensor[]): plan is BucketPlan {
  return plan !== null && plan.params.length === params.length && plan.params.every((t, i) => t === params[i]);
}

/** Copy each member's values (`of` picks gradient or weights) into the bucket. */
export function pack(bucket: Bucket, of: (p: Tensor) => Float32Array): void {
  for (const m of bucket.members) bucket.buffer.set(of(m.param), m.offset);
}

/** Copy the bucket's values back into each member's. */
export function unpack(bucket: Bucket, of: (p: Tensor) => Float32Array): void {
  for (const m of bucket.members) of(m.param).set(bucket.buffer.subarray(m.offset, m.offset + m.param.size));
}

/** A parameter's gradient values (the buffer may be longer than the tensor). */
export function gradValues(p: Tensor): Float32Array {
  return p.grad!.data.subarray(0, p.size) as Float32Array;
}

/** A parameter's own values. */
export function weightValues(p: Tensor): Float32Array {
  return p.data.subarray(0, p.size) as Float32Array;
}
