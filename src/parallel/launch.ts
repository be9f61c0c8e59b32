/**
 * How this process was started: alone, or as one rank of a job that mpirun (Open MPI) or Slurm's
 * `srun --mpi=pmix` launched. The launcher says so in the environment; only then is MPI opened.
 */
import { availableParallelism } from 'node:os';
import { SingleProcess, type Communicator } from './communicator.ts';
import { MpiCommunicator } from './mpi.ts';

/** What the launcher's environment says about the job; null when no launcher started this process. */
export interface LaunchInfo {
  /** Processes in the job, when the launcher says (mpirun does; PMIx leaves it to MPI). */
  size: number | null;
  /** Processes of the job on this machine. */
  localSize: number;
}

function positive(value: string | undefined): number | null {
  const n = value === undefined ? NaN : Number.parseInt(value, 10);
  return Number.isInteger(n) && n > 0 ? n : null;
}

/** Reads the variables mpirun and srun set for each process they start. */
export function detectLaunch(env: NodeJS.ProcessEnv = process.env): LaunchInfo | null {
  const launched = env.OMPI_COMM_WORLD_SIZE !== undefined || env.PMIX_RANK !== undefined || env.PMI_RANK !== undefined;
  if (!launched) return null;
  // Slurm writes tasks per node as e.g. "4(x2),3": this node's count is not known from it, the first is a fair guess.
  const slurmLocal = positive(env.SLURM_NTASKS_PER_NODE) ?? positive(env.SLURM_STEP_TASKS_PER_NODE?.split(/[(,]/)[0]);
  const localSize = positive(env.OMPI_COMM_WORLD_LOCAL_SIZE) ?? positive(env.MPI_LOCALNRANKS) ?? slurmLocal ?? 1;
  return { size: positive(env.OMPI_COMM_WORLD_SIZE) ?? positive(env.PMI_SIZE) ?? positive(env.SLURM_NTASKS), localSize };
}

/** Compute threads per process when none are asked for: this machine's cores shared by its ranks. */
export function defaultThreads(comm: Communicator, cores = availableParallelism()): number {
  return Math.max(1, Math.floor(cores / comm.localSize));
}

let world: Communicator | null = null;

/**
 * The job this process belongs to: an MPI communicator when a launcher started it with more than
 * one process, else a single process. Opened once; MPI is finalised when the process exits
 * normally. A process exiting with an error does not finalise (MPI_Finalize waits for the other
 * ranks, which may be waiting for this one): mpirun then ends the whole job.
 */
export function worldCommunicator(env: NodeJS.ProcessEnv = process.env): Communicator {
  if (world) return world;
  const launch = detectLaunch(env);
  if (!launch || launch.size === 1) return (world = new SingleProcess());
  const mpi = MpiCommunicator.open(launch.localSize);
  process.on('exit', (code) => {
    if (code === 0) mpi.close();
  });
  return (world = mpi);
}
