/**
 * The Communicator of a job started by mpirun (or srun --mpi=pmix): Open MPI through the native
 * addon, which opens libmpi only now (native/src/kernels/mpi.c), so nothing about MPI is needed
 * to build or run relora without it.
 */
import { nativeAddonBindings, nativeLoadError } from '../engine/backends/native.ts';
import type { Communicator, PendingReduction } from './communicator.ts';

/** The addon's MPI entry points (native/src/napi/mpi.c). */
interface MpiBindings {
  mpiInit(): [number, number];
  mpiFinalize(): void;
  mpiAbort(code: number): void;
  mpiAllreduceSum(x: Float32Array): void;
  mpiAllreduceF64(x: Float64Array, max: boolean): void;
  mpiIallreduceSum(x: Float32Array): number;
  mpiIbarrier(): number;
  mpiTest(request: number): boolean;
  mpiWait(request: number): void;
  mpiAllgatherBytes(mine: Uint8Array, all: Uint8Array): void;
  mpiReduceSum(x: Float32Array, root: number): void;
  mpiBcastF32(x: Float32Array, root: number): void;
  mpiSendF32(x: Float32Array, to: number): void;
  mpiRecvF32(x: Float32Array, from: number): void;
}

/** How often a rank waiting at a barrier looks again (its event loop runs in between). */
const BARRIER_POLL_MS = 5;

export class MpiCommunicator implements Communicator {
  readonly rank: number;
  readonly size: number;
  private closed = false;

  private constructor(private readonly mpi: MpiBindings, readonly localSize: number) {
    [this.rank, this.size] = mpi.mpiInit();
  }

  /** Join the MPI job this process was started in; throws with the reason when MPI cannot be used. */
  static open(localSize: number): MpiCommunicator {
    const addon = nativeAddonBindings() as Partial<MpiBindings> | null;
    if (!addon) throw new Error(`this process was started by mpirun, but the native addon (which talks to MPI) is unavailable: ${nativeLoadError() ?? 'unknown reason'}`);
    if (typeof addon.mpiInit !== 'function') throw new Error('this process was started by mpirun, but the native addon was built without MPI support; rebuild it with "node scripts/build-native.mjs"');
    try {
      return new MpiCommunicator(addon as MpiBindings, localSize);
    } catch (e) {
      throw new Error(`cannot join the MPI job: ${(e as Error).message}`, { cause: e });
    }
  }

  allReduceSum(x: Float32Array): void {
    if (x.length) this.mpi.mpiAllreduceSum(x);
  }

  startAllReduceSum(x: Float32Array): PendingReduction {
    const request = this.mpi.mpiIallreduceSum(x);
    return { wait: () => this.mpi.mpiWait(request) };
  }

  allReduceF64(x: Float64Array, op: 'sum' | 'max'): void {
    this.mpi.mpiAllreduceF64(x, op === 'max');
  }

  allGatherBytes(mine: Uint8Array): Uint8Array[] {
    const all = new Uint8Array(mine.length * this.size);
    this.mpi.mpiAllgatherBytes(mine, all);
    return Array.from({ length: this.size }, (_, r) => all.subarray(r * mine.length, (r + 1) * mine.length));
  }

  reduceSum(x: Float32Array, root: number): void {
    this.mpi.mpiReduceSum(x, root);
  }

  broadcast(x: Float32Array, root: number): void {
    this.mpi.mpiBcastF32(x, root);
  }

  send(x: Float32Array, to: number): void {
    this.mpi.mpiSendF32(x, to);
  }

  receive(x: Float32Array, from: number): void {
    this.mpi.mpiRecvF32(x, from);
  }

  async barrier(): Promise<void> {
    const request = this.mpi.mpiIbarrier();
    while (!this.mpi.mpiTest(request)) await new Promise((resolve) => setTimeout(resolve, BARRIER_POLL_MS));
  }

  abort(message: string, code: number): never {
    process.stderr.write(`${message}\n`);
    this.mpi.mpiAbort(code);
    process.exit(code);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.mpi.mpiFinalize();
  }
}
