/**
 * The trainer's side of data parallelism (src/parallel has the processes and collectives): how
 * a job's ranks share each update's sequences and the evaluation set, what they check before
 * training together, and how they agree to stop. One process is the size-1 case of each.
 *
 * The global batch is drawn exactly as one process draws it (the sampler's next `batch_size`
 * indices, on every rank, so every rank's sampler stays in step), and rank r takes the r-th
 * contiguous share: the result of a run does not depend on the number of ranks beyond rounding.
 */
import type { RandomStream } from '../engine/rng.ts';
import type { Tensor } from '../engine/tensor.ts';
import type { SequenceSampler } from '../data/sampler.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import type { Communicator } from '../parallel/communicator.ts';
import type { LoraLinear } from '../relora/lora-linear.ts';
import { codeFingerprint, requireSameOnEveryRank, weightsFingerprint } from '../parallel/consistency.ts';
import { listCheckpoints, loadLatestCheckpoint, type LoadedCheckpoint } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import type { PreparedData } from './data.ts';
import type { RunState } from './run-state.ts';

/** Sequences per forward/backward pass on each rank: the configured micro-batch, or less when the rank's share needs it. */
export function rankMicroBatch(cfg: TrainConfig, comm: Communicator): number {
  const share = cfg.batch_size / comm.size;
  let a = cfg.micro_batch, b = share;
  while (b) [a, b] = [b, a % b];
  return a; // gcd(micro_batch, share): divides the share, never above micro_batch
}

/**
 * Before any work: the global batch must split evenly, and every rank must have been given the
 * same configuration and code (threads may differ: machines differ).
 */
export function checkJob(cfg: TrainConfig, comm: Communicator): void {
  if (cfg.batch_size % comm.size !== 0) {
    throw new Error(`batch_size ${cfg.batch_size} cannot be split evenly over the ${comm.size} processes of this job; choose a batch_size that is a multiple of ${comm.size} (or another number of processes)`);
  }
  if (comm.size > 1) requireSameOnEveryRank(comm, { 'the configuration': JSON.stringify({ ...cfg, threads: undefined }), "relora's code": codeFingerprint() });
}

/** After set-up: every rank read the same data and starts from the same weights and state. */
export function checkRanksAgree(comm: Communicator, data: PreparedData, evalSeqs: Int32Array[], model: LlamaForCausalLM, state: RunState, seqLen: number): void {
  if (comm.size === 1) return;
  const n = data.train.numSequences(seqLen);
  const probe = [0, 1, 2, n - 3, n - 2, n - 1].filter((i) => i >= 0 && i < n).map((i) => data.train.readSequence(i, seqLen));
  const ints = (arrays: Int32Array[]): string => arrays.map((a) => a.join(',')).join(';');
  requireSameOnEveryRank(comm, {
    'the training data': `${data.train.numTokens}|${ints(probe)}`,
    'the evaluation data': ints(evalSeqs),
    'the starting weights': weightsFingerprint(model.stateDict()),
    'the starting state': JSON.stringify({ step: state.step, phase: state.phaseIndex, sampler: state.sampler.state() }),
  });
}

/** Where a rank other than 0 resumes: the checkpoint rank 0 chose (rank 0 has already tidied the folder). */
export function followerResumePoint(runDir: string, resume: boolean): LoadedCheckpoint | null {
  return resume && listCheckpoints(runDir).length ? loadLatestCheckpoint(runDir, () => {}) : null;
}

/** A run resumed with another number of processes continues correctly, but its sums are rounded differently. */
export function noteRankChange(resumeFrom: LoadedCheckpoint | null, comm: Communicator, log: (s: string) => void): void {
  const was = resumeFrom?.state.engine?.ranks ?? 1;
  if (!resumeFrom || was === comm.size) return;
  const processes = (n: number): string => `${n} process${n === 1 ? '' : 'es'}`;
  log(`note: the checkpoint was written by ${processes(was)}, this run has ${processes(comm.size)}: it continues with the same global batch and data order, ` +
    'but gradients are summed in another order, so it will not be bit-identical to an uninterrupted run (resume with the same number of processes for that)');
}

/** This rank's share of the next global batch, in micro-batches (`makeBatch` turns indices into a tensor). */
export function nextRankMicroBatches(cfg: TrainConfig, comm: Communicator, sampler: SequenceSampler, makeBatch: (indices: number[]) => Tensor): Tensor[] {
  const global = sampler.nextBatch(cfg.batch_size);
  const share = cfg.batch_size / comm.size, micro = rankMicroBatch(cfg, comm);
  const mine = global.slice(comm.rank * share, (comm.rank + 1) * share);
  const out: Tensor[] = [];
  for (let i = 0; i < mine.length; i += micro) out.push(makeBatch(mine.slice(i, i + micro)));
  return out;
}

/** Every rank stops after the same update when any of them was asked to (mpirun forwards signals, not always at once). */
export function agreeToStop(comm: Communicator, requested: boolean): boolean {
  if (comm.size === 1) return requested;
  const flag = new Float64Array([requested ? 1 : 0]);
  comm.allReduceF64(flag, 'max');
  return flag[0] > 0;
}

/** Sets up each of this rank's micro-batches before its forward pass, and the state after the update. */
export interface DropoutPlacement {
  /** Before this rank's micro-batch `index`. */
  place(index: number): void;
  /** After the update: the stream where one process's is. */
  finish(): void;
}

/**
 * LoRA dropout in a data-parallel job, drawn as one process draws it: each LoRA layer takes one
 * mask key from the shared dropout stream per forward pass, so one process's micro-batch m uses
 * the keys `base + m·layers …`, and its sequences take consecutive stretches of each mask. A
 * rank's micro-batch lies inside one of those (rankMicroBatch divides the micro-batch and the
 * share), so the rank sets the stream to that micro-batch's keys and the layers to the place of
 * its first sequence in it. Null when there is nothing to place (one process, or no dropout).
 */
export function dropoutPlacement(cfg: TrainConfig, comm: Communicator, stream: RandomStream, layers: ReadonlyMap<string, LoraLinear>): DropoutPlacement | null {
  if (comm.size === 1 || cfg.dropout === 0 || layers.size === 0) return null;
  const base = stream.calls, keys = layers.size, share = cfg.batch_size / comm.size, micro = rankMicroBatch(cfg, comm);
  const setRows = (rows: number): void => layers.forEach((l) => void (l.dropoutRowOffset = rows));
  return {
    place(index) {
      const first = comm.rank * share + index * micro; // the sequence's place in the global batch
      stream.calls = base + Math.floor(first / cfg.micro_batch) * keys;
      setRows(first % cfg.micro_batch);
    },
    finish() {
      stream.calls = base + (cfg.batch_size / cfg.micro_batch) * keys;
      setRows(0);
    },
  };
}
