/**
 * Averaging the gradients of data-parallel ranks after backward, the way PyTorch's
 * DistributedDataParallel does: only the parameters that train (in a LoRA/ReLoRA phase the LoRA
 * factors, embeddings, norms and head — never the frozen W, which has no gradient) are summed
 * with MPI all-reduce, in buckets, and divided by the number of ranks. Small tensors are packed
 * into shared buckets (one message instead of dozens); large ones are reduced where they lie.
 * Every bucket is started before the first is waited for, so packing and reducing overlap.
 */
import { K } from '../engine/backend.ts';
import { Tensor } from '../engine/tensor.ts';
import type { Communicator, PendingReduction } from './communicator.ts';

/** Elements per bucket (16 MiB of float32), the order of PyTorch DDP's default 25 MB. */
export const BUCKET_ELEMENTS = 1 << 22;

/** What the last update communicated. */
export interface CommunicationStats {
  /** Bytes of gradients each rank all-reduced (float32; the 8-byte loss beside them is not counted). */
  bytes: number;
  /** Seconds spent in communication (packing, reducing, unpacking, scaling). */
  seconds: number;
}

interface Bucket {
  /** The parameters packed into this bucket, and their offsets in it. */
  members: { param: Tensor; offset: number }[];
  buffer: Float32Array;
}

export class GradientAverager {
  private buckets: Bucket[] = [];
  private large: Tensor[] = [];
  private layoutOf: Tensor[] = [];
  /** Statistics of the last `average` call. */
  last: CommunicationStats = { bytes: 0, seconds: 0 };

  constructor(private readonly comm: Communicator, private readonly bucketElements = BUCKET_ELEMENTS) {}

  /**
   * Replace every parameter's gradient by the mean over the ranks and return the mean of the
   * ranks' losses. Every rank must pass the same parameters in the same order. A parameter without
   * a gradient on this rank gets a zero one, so that every rank sends the same layout.
   */
  average(params: readonly Tensor[], loss: number): number {
    if (this.comm.size === 1) return loss;
    const started = performance.now();
    for (const p of params) p.grad ??= Tensor.zeros(p.shape);
    if (!sameTensors(params, this.layoutOf)) this.plan(params);
    const pending: PendingReduction[] = [];
    for (const p of this.large) pending.push(this.comm.startAllReduceSum(gradData(p)));
    for (const b of this.buckets) {
      for (const m of b.members) b.buffer.set(gradData(m.param), m.offset);
      pending.push(this.comm.startAllReduceSum(b.buffer));
    }
    const scalar = new Float64Array([loss]);
    this.comm.allReduceF64(scalar, 'sum');
    const k = K(), inv = 1 / this.comm.size;
    let elements = 0;
    for (const p of this.large) elements += p.size;
    for (const b of this.buckets) elements += b.buffer.length;
    pending.forEach((r) => r.wait());
    for (const b of this.buckets) for (const m of b.members) gradData(m.param).set(b.buffer.subarray(m.offset, m.offset + m.param.size));
    for (const p of params) k.scale(p.grad!.data, inv, p.grad!.data, p.size);
    this.last = { bytes: elements * 4, seconds: (performance.now() - started) / 1000 };
    return scalar[0] * inv;
  }

  /** Large gradients go alone; the others are packed, in order, into buckets of at most bucketElements. */
  private plan(params: readonly Tensor[]): void {
    this.layoutOf = [...params];
    this.large = params.filter((p) => p.size >= this.bucketElements);
    this.buckets = [];
    let members: Bucket['members'] = [], used = 0;
    const close = (): void => {
      if (members.length) this.buckets.push({ members, buffer: new Float32Array(used) });
      members = [];
      used = 0;
    };
    for (const p of params) {
      if (p.size >= this.bucketElements) continue;
      if (used + p.size > this.bucketElements) close();
      members.push({ param: p, offset: used });
      used += p.size;
    }
    close();
  }
}

/** Bytes of gradients all-reduced per update when this many parameters train (float32). */
export function allReduceBytesPerUpdate(trainableParameters: number): number {
  return trainableParameters * 4;
}

function gradData(p: Tensor): Float32Array {
  return p.grad!.data.subarray(0, p.size) as Float32Array;
}

function sameTensors(a: readonly Tensor[], b: readonly Tensor[]): boolean {
  return a.length === b.length && a.every((t, i) => t === b[i]);
}
