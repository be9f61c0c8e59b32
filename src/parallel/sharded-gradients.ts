/**
 * Data parallelism with the optimizer state sharded over the ranks (ZeRO stage 1, as PyTorch's
 * ZeroRedundancyOptimizer which the ReLoRA reference code uses): each trainable tensor's Adam
 * moments live on one rank (src/optim/partition.ts), so each rank keeps about 1/N of them.
 *
 * An update: each bucket of gradients is summed onto the rank that owns it (MPI_Reduce — half
 * of an all-reduce's traffic; blocking, see native/src/kernels/mpi.c) and divided by N there; the global norm is the sum of the owners'
 * per-tensor sums of squares, added in parameter order as one process adds them, so clipping
 * and the step are bit for bit those of the unsharded job; each owner steps its tensors, and
 * broadcasts them to the others. A checkpoint still holds every moment: rank 0 collects them.
 */
import { K } from '../engine/backend.ts';
import { parameter, Tensor } from '../engine/tensor.ts';
import { globalNorm, type AdamW, type AdamWState } from '../optim/adamw.ts';
import { partitionParameters } from '../optim/partition.ts';
import { BUCKET_ELEMENTS, gradValues, pack, planBuckets, planFits, unpack, weightValues, type BucketPlan } from './buckets.ts';
import type { Communicator } from './communicator.ts';
import type { CollectedMoments, CommunicationStats, GradientSync } from './gradients.ts';

export class ShardedGradients implements GradientSync {
  private plan: BucketPlan | null = null;
  private owners: number[] = [];
  last: CommunicationStats = { bytes: 0, seconds: 0 };

  constructor(private readonly comm: Communicator, private readonly bucketElements = BUCKET_ELEMENTS) {}

  /** The optimizer's own options for the same sharding. */
  get shard(): { rank: number; size: number } {
    return { rank: this.comm.rank, size: this.comm.size };
  }

  /** Sums each gradient onto its owner (the others' copies are left unreduced: they are not used). */
  average(params: readonly Tensor[], loss: number): number {
    const started = performance.now();
    for (const p of params) p.grad ??= Tensor.zeros(p.shape);
    const plan = this.planFor(params);
    for (const { param, root } of plan.large) this.comm.reduceSum(gradValues(param), root);
    for (const b of plan.buckets) {
      pack(b, gradValues);
      this.comm.reduceSum(b.buffer, b.root);
      if (b.root === this.comm.rank) unpack(b, gradValues);
    }
    const scalar = new Float64Array([loss]);
    this.comm.allReduceF64(scalar, 'sum');
    const k = K(), inv = 1 / this.comm.size;
    params.forEach((p, i) => {
      if (this.owners[i] === this.comm.rank) k.scale(p.grad!.data, inv, p.grad!.data, p.size);
    });
    this.last = { bytes: plan.elements * 4, seconds: (performance.now() - started) / 1000 };
    return scalar[0] * inv;
  }

  norm(params: readonly Tensor[]): number {
    const started = performance.now();
    const k = K();
    const squares = new Float64Array(params.length);
    params.forEach((p, i) => {
      if (this.owners[i] === this.comm.rank) squares[i] = k.sumSquares(p.grad!.data, p.size);
    });
    // Each entry is non-zero on its owner only: the sum is exact.
    this.comm.allReduceF64(squares, 'sum');
    const norm = globalNorm(squares);
    this.last.seconds += (performance.now() - started) / 1000;
    return norm;
  }

  shareWeights(params: readonly Tensor[]): void {
    const started = performance.now();
    const plan = this.planFor(params);
    for (const { param, root } of plan.large) this.comm.broadcast(weightValues(param), root);
    for (const b of plan.buckets) {
      if (b.root === this.comm.rank) pack(b, weightValues);
      this.comm.broadcast(b.buffer, b.root);
      if (b.root !== this.comm.rank) unpack(b, weightValues);
    }
    this.last.seconds += (performance.now() - started) / 1000;
  }

  /** Rank 0 receives, tensor by tensor in parameter order, the moments other ranks own. */
  collectMoments(optimizer: AdamW): CollectedMoments {
    const { rank } = this.comm;
    const moments = new Map<string, AdamWState>();
    const copies: Tensor[] = [];
    optimizer.params.forEach(([name, p], i) => {
      const owner = optimizer.owners[i];
      const own = optimizer.state.get(name);
      if (owner === rank && own) {
        if (rank === 0) moments.set(name, own);
        else for (const t of [own.m, own.v]) this.comm.send(weightValues(t), 0);
      } else if (rank === 0) {
        const m = parameter(p.shape, false), v = parameter(p.shape, false);
        for (const t of [m, v]) this.comm.receive(weightValues(t), owner);
        copies.push(m, v);
        moments.set(name, { m, v });
      }
    });
    return { moments, release: () => copies.forEach((t) => t.dispose()) };
  }

  /** The owner of each parameter is the optimizer's (the same partition of the same tensors). */
  private planFor(params: readonly Tensor[]): BucketPlan {
    if (planFits(this.plan, params)) return this.plan;
    this.owners = partitionParameters(params.map((p) => p.size), this.comm.size);
    return (this.plan = planBuckets(params, this.bucketElements, (i) => this.owners[i]));
  }
}
