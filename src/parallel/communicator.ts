/**
 * What data-parallel training needs from the processes it runs in: who this process is (rank of
 * size), and the collectives — sums of gradients and scalars (onto every rank, or onto one: a
 * sharded optimizer's), broadcasts, a barrier, a comparison of byte strings across ranks, and
 * point-to-point sends for rank 0 to collect state. One process is the size-1 case, where every
 * collective is the identity; a job started by mpirun gets the MPI implementation (mpi.ts, opened
 * by launch.ts).
 */

/** A reduction started in the background; `wait` returns when the buffer holds the result. */
export interface PendingReduction {
  wait(): void;
}

/** The processes of one training job and the collective operations between them. */
export interface Communicator {
  /** This process's index, 0 … size − 1; rank 0 writes the run's files. */
  readonly rank: number;
  /** Number of processes in the job. */
  readonly size: number;
  /** Number of processes of the job on this machine (they share its cores). */
  readonly localSize: number;
  /** Replace `x` by the element-wise sum of every rank's `x` (float32, in place). */
  allReduceSum(x: Float32Array): void;
  /** Start the same sum in the background (keep `x` untouched until `wait`). */
  startAllReduceSum(x: Float32Array): PendingReduction;
  /** Element-wise sum (or maximum) of every rank's `x` (float64, in place): losses, counts, flags. */
  allReduceF64(x: Float64Array, op: 'sum' | 'max'): void;
  /** Every rank's `mine` (all of the same length), in rank order. */
  allGatherBytes(mine: Uint8Array): Uint8Array[];
  /** Sum every rank's `x` into rank `root`'s `x` (the others' stay as they are): a sharded optimizer's gradients. */
  reduceSum(x: Float32Array, root: number): void;
  /** Copy rank `root`'s `x` into every rank's `x`: the weights a sharded optimizer's rank updated. */
  broadcast(x: Float32Array, root: number): void;
  /** Send `x` to rank `to`, which receives it with `receive` (blocking; optimizer state for rank 0 to write). */
  send(x: Float32Array, to: number): void;
  /** Receive into `x` what rank `from` sends. */
  receive(x: Float32Array, from: number): void;
  /** Resolves once every rank has called it; the event loop keeps running meanwhile (signals). */
  barrier(): Promise<void>;
  /** End the whole job now (every rank) with `code`, after printing `message` on this rank. */
  abort(message: string, code: number): never;
  /** Leave the job cleanly (MPI_Finalize); nothing may be called afterwards. */
  close(): void;
}

/** One process training alone: every collective is the identity. */
export class SingleProcess implements Communicator {
  readonly rank: number = 0;
  readonly size: number = 1;
  readonly localSize: number = 1;
  allReduceSum(_x: Float32Array): void {}
  startAllReduceSum(_x: Float32Array): PendingReduction {
    return { wait() {} };
  }
  allReduceF64(_x: Float64Array, _op: 'sum' | 'max'): void {}
  allGatherBytes(mine: Uint8Array): Uint8Array[] {
    return [mine];
  }
  reduceSum(_x: Float32Array, _root: number): void {}
  broadcast(_x: Float32Array, _root: number): void {}
  send(_x: Float32Array, to: number): void {
    throw new Error(`send: a process training alone has no rank ${to}`);
  }
  receive(_x: Float32Array, from: number): void {
    throw new Error(`receive: a process training alone has no rank ${from}`);
  }
  async barrier(): Promise<void> {}
  abort(message: string, code: number): never {
    process.stderr.write(`${message}\n`);
    process.exit(code);
  }
  close(): void {}
}

/**
 * This rank's contiguous share of `total` items split over the ranks as evenly as possible (the
 * first `total % size` ranks take one more): used for evaluation sequences.
 */
export function shareOf(total: number, rank: number, size: number): { start: number; count: number } {
  const base = Math.floor(total / size), extra = total % size;
  const start = rank * base + Math.min(rank, extra);
  return { start, count: base + (rank < extra ? 1 : 0) };
}
