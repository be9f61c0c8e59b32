/**
 * Setting a run up, in the order a reader would expect: check every input (validate.ts), then
 * take the run folder, then the data (tokenising), then the model and the run state — fresh,
 * from a warm-start checkpoint, or from the run's own latest checkpoint. A new run that fails
 * on the way leaves nothing behind that would block starting it again.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { backendInfo, setBackend, type BackendInfo } from '../engine/backend.ts';
import { bf16Support } from '../engine/ops/bf16.ts';
import { setMatmulPrecision } from '../engine/ops/precision.ts';
import { atomicWriteFile } from '../io/atomic.ts';
import { copyHfMetadata } from '../io/hf-metadata.ts';
import { loadHFModel } from '../io/hf-model.ts';
import { configToJSON, type LlamaConfig } from '../nn/config.ts';
import { LlamaForCausalLM } from '../nn/llama.ts';
import { trainingFootprint, type TrainingFootprint } from '../relora/accounting.ts';
import type { Communicator } from '../parallel/communicator.ts';
import { GradientAverager, type GradientSync } from '../parallel/gradients.ts';
import { ShardedGradients } from '../parallel/sharded-gradients.ts';
import { defaultThreads, worldCommunicator } from '../parallel/launch.ts';
import type { TrainingMode } from '../relora/wrap.ts';
import { cleanInterruptedWrites, discardCheckpointsAfter, listCheckpoints, loadLatestCheckpoint, type LoadedCheckpoint } from './checkpoint.ts';
import { loraOptions, modelConfigFor, type TrainConfig } from './config.ts';
import { prepareData, type PreparedData } from './data.ts';
import { checkJob, checkRanksAgree, followerResumePoint, noteRankChange } from './data-parallel.ts';
import { MetricsWriter, readMetrics } from './metrics.ts';
import { planAfterWarmStart, planPhases, type PhasePlan } from './phases.ts';
import { evaluationSequences } from './evaluate.ts';
import { lockRunFolder, RUN_FILES, runFile, sealRunFiles } from './run-folder.ts';
import { RunState } from './run-state.ts';
import type { RankHook, TrainHooks, TrainOptions } from './trainer.ts';
import { validateInputs, type RunInputs } from './validate.ts';

/** Everything the training loop works with. */
export interface Run {
  cfg: TrainConfig;
  runDir: string;
  log: (s: string) => void;
  hooks: TrainHooks;
  rankHook?: RankHook;
  engine: BackendInfo;
  data: PreparedData;
  /** The held-out sequences every evaluation uses. */
  evalSeqs: Int32Array[];
  model: LlamaForCausalLM;
  footprint: TrainingFootprint;
  plans: PhasePlan[];
  state: RunState;
  /** Continued from one of the run's own checkpoints. */
  resumed: boolean;
  metrics: MetricsWriter;
  /** Releases the run folder's lock. */
  release: () => void;
  /** The processes training this model together (one, unless started by mpirun); rank 0 writes the run's files. */
  comm: Communicator;
  leader: boolean;
  /** Averages the trainable gradients over the ranks after each backward pass (and shares a sharded optimizer's updates). */
  gradients: GradientSync;
}

export async function setupRun(opts: TrainOptions): Promise<Run> {
  const { config: cfg, runDir } = opts;
  // Data parallel (mpirun): rank 0 sets the run folder up and writes to it; the other ranks wait
  // for it, then read what it wrote (tokenizer, checkpoint) and write nothing.
  const comm = opts.communicator ?? worldCommunicator();
  const leader = comm.rank === 0;
  const log = leader ? opts.log ?? ((s: string) => process.stderr.write(`${s}\n`)) : () => {};
  checkJob(cfg, comm);
  const engine = selectBackend(cfg, comm, log);
  if (!leader) await comm.barrier();
  // One process per run folder: the lock comes first, so a second process is told the folder is
  // busy, not what the first one is doing with it. (It removes a folder it created, when empty.)
  const release = leader ? lockRunFolder(runDir) : () => {};
  let inputs: RunInputs, folder: RunFolder;
  try {
    inputs = await validateInputs(opts, log, leader);
    folder = leader ? await openRunFolder(opts, release, engine, log) : { resumeFrom: followerResumePoint(runDir, opts.resume === true), release, abandon: release };
  } catch (e) {
    release();
    throw e;
  }
  let stopData: (() => Promise<void>) | undefined;
  try {
    // Alone, training starts on the first shard while the rest is tokenised (ranks of a job compare all their data first).
    const { data, evalSeqs } = await loadData(cfg, runDir, inputs, log, comm.size === 1);
    stopData = data.stop;
    const { model, shape } = await buildModel(cfg, runDir, inputs, data, log);
    if (leader) await sealRunFiles(runDir);
    const sharded = cfg.shard_optimizer && comm.size > 1 ? new ShardedGradients(comm) : null;
    const { state, plans } = await initialState(cfg, runDir, inputs, folder.resumeFrom, model, data, log, leader, sharded?.shard);
    if (leader) await comm.barrier();
    checkRanksAgree(comm, data, evalSeqs, model, state, cfg.seq_len);
    noteRankChange(folder.resumeFrom, comm, log);
    if (comm.size > 1) log(`data parallel: ${comm.size} processes (${comm.localSize} on this machine), ${cfg.batch_size / comm.size} sequences of each update per process${sharded ? '; optimizer state sharded over them (ZeRO stage 1)' : ''}`);
    else if (cfg.shard_optimizer) log('shard_optimizer: one process, nothing to shard (it takes effect with 2 or more processes under mpirun or srun)');
    const footprint = trainingFootprint(shape, cfg.mode as TrainingMode, loraOptions(cfg));
    log(`model: ${(footprint.params_total / 1e6).toFixed(2)}M parameters, ${(footprint.params_trainable / 1e6).toFixed(2)}M trainable in the ${cfg.mode} phase; ${cfg.steps} updates of ${cfg.batch_size} × ${cfg.seq_len} tokens (micro-batch ${cfg.micro_batch}, accumulation ${cfg.grad_accum})${warmStartNote(cfg)}`);
    return {
      cfg, runDir, log, hooks: opts.hooks ?? {}, rankHook: leader ? opts.rankHook : undefined, engine, data, evalSeqs, model, footprint, plans, state,
      resumed: folder.resumeFrom !== null, metrics: new MetricsWriter(runFile(runDir, 'metrics')), release: () => { void data.stop(); folder.release(); },
      comm, leader, gradients: sharded ?? new GradientAverager(comm),
    };
  } catch (e) {
    void stopData?.();
    folder.abandon();
    throw e;
  }
}

function selectBackend(cfg: TrainConfig, comm: Communicator, log: (s: string) => void): BackendInfo {
  // Processes sharing a machine share its cores.
  setBackend(cfg.backend, cfg.threads ?? (comm.size > 1 ? defaultThreads(comm) : undefined));
  const info = backendInfo();
  log(`backend ${info.backend} (GEMM ${info.blas}, ${info.threads} threads)${info.fallback ? ` — native unavailable: ${info.fallback}` : ''}`);
  setMatmulPrecision(cfg.precision);
  if (cfg.precision === 'bf16') log(`precision bf16: products in bfloat16 with fp32 accumulation (${bf16Support()}); weights, optimizer and checkpoints fp32`);
  return info;
}

interface RunFolder {
  /** The checkpoint a resumed run continues; null for a new run (or one killed before its first checkpoint). */
  resumeFrom: LoadedCheckpoint | null;
  release: () => void;
  /** Undo what set-up wrote (a new run's files) and release the folder. */
  abandon: () => void;
}

/** Find where a resumed run continues, or start a new run in the (locked) folder. */
async function openRunFolder(opts: TrainOptions, release: () => void, engine: BackendInfo, log: (s: string) => void): Promise<RunFolder> {
  const { config: cfg, runDir } = opts;
  if (opts.resume) return { resumeFrom: resumePoint(runDir, cfg, engine, log), release, abandon: release };
  const before = new Set(readdirSync(runDir));
  await atomicWriteFile(runFile(runDir, 'config'), `${JSON.stringify(cfg, null, 2)}\n`);
  const abandon = (): void => {
    for (const name of readdirSync(runDir)) {
      if (!before.has(name) && name !== RUN_FILES.lock) rmSync(join(runDir, name), { recursive: true, force: true });
    }
    release();
  };
  return { resumeFrom: null, release, abandon };
}

/** The latest valid checkpoint of a run (falling back past damaged ones), or null before the first. */
function resumePoint(runDir: string, cfg: TrainConfig, engine: BackendInfo, log: (s: string) => void): LoadedCheckpoint | null {
  tidyRunFolder(runDir);
  if (listCheckpoints(runDir).length === 0) {
    // Killed before its first checkpoint: nothing to lose by starting over, and the run folder
    // (config, tokenizer) is already there.
    log(`${runDir} has no checkpoint yet: starting the run again from update 0 with its saved config`);
    rmSync(runFile(runDir, 'metrics'), { force: true });
    return null;
  }
  const ck = loadLatestCheckpoint(runDir, (m) => log(`warning: ${m}`));
  const skippedNames = ck.skipped ?? [];
  if (skippedNames.length) log(`falling back to ${ck.dir}: ${skippedNames.join(', ')} failed verification (see the warnings above)`);
  for (const n of discardCheckpointsAfter(runDir, ck.state.step, log)) log(`removed checkpoint ${n}: it is newer than the one resumed from, and its updates will be redone`);
  log(`resuming ${runDir} from ${ck.dir} (update ${ck.state.step} of ${cfg.steps})`);
  const was = ck.state.engine;
  if (was && (was.backend !== engine.backend || was.threads !== engine.threads)) {
    const threads = (n: number) => `${n} thread${n === 1 ? '' : 's'}`;
    log(`note: the checkpoint was written by the ${was.backend} backend with ${threads(was.threads)}, this process uses ${engine.backend} with ${threads(engine.threads)}; ` +
      'the run continues correctly but will not be bit-identical to an uninterrupted one (use the same --backend and --threads for that)');
  }
  return ck;
}

/** Leftovers of writes a crash interrupted: temporary checkpoint folders and temporary files. */
function tidyRunFolder(runDir: string): void {
  cleanInterruptedWrites(runDir);
  for (const n of readdirSync(runDir)) {
    const m = /\.tmp-(\d+)-\d+$/.exec(n);
    if (m && Number(m[1]) !== process.pid) rmSync(join(runDir, n), { force: true });
  }
}

/** The tokenised data (the run keeps its tokenizer, and an imported model's metadata) and the evaluation sequences. */
async function loadData(cfg: TrainConfig, runDir: string, inputs: RunInputs, log: (s: string) => void, overlap: boolean): Promise<{ data: PreparedData; evalSeqs: Int32Array[] }> {
  const hasTokenizer = existsSync(runFile(runDir, 'tokenizer'));
  if (cfg.init_from && !hasTokenizer) await copyHfMetadata(cfg.init_from, runDir);
  const data = await prepareData(cfg, log, inputs.tokenizer, { overlap });
  if (!hasTokenizer) await atomicWriteFile(runFile(runDir, 'tokenizer'), JSON.stringify(data.tokenizer.toJSON()));
  const evalSeqs = evaluationSequences(data.validation, cfg.seq_len, cfg.eval_tokens);
  const trainTokens = data.train.isComplete ? `${data.train.numTokens.toLocaleString('en-US')} training tokens` : `${data.train.tokensAvailable.toLocaleString('en-US')} training tokens so far, the rest tokenised while training`;
  log(`data: ${trainTokens} (${data.trainName}), ${evalSeqs.length} evaluation sequences of ${cfg.seq_len} (${data.validationName})`);
  return { data, evalSeqs };
}

/**
 * The model: imported (`init_from`), or built from its shape and initialised from the seed (a
 * resumed run's weights come from its checkpoint later). RUN/model.json keeps the exact shape:
 * grouped-query, tied and imported models cannot be rebuilt from config.json alone.
 */
async function buildModel(cfg: TrainConfig, runDir: string, inputs: RunInputs, data: PreparedData, log: (s: string) => void): Promise<{ model: LlamaForCausalLM; shape: LlamaConfig }> {
  let model: LlamaForCausalLM, shape: LlamaConfig;
  if (inputs.imported) {
    model = (await loadHFModel(cfg.init_from!, { maxSeqLen: cfg.seq_len, noTokenizer: true })).model;
    shape = model.config;
    log(`initialised from ${cfg.init_from}: ${shape.numLayers} layers, hidden ${shape.hiddenSize}, ${shape.numHeads} heads (${shape.numKVHeads ?? shape.numHeads} key/value), vocabulary ${shape.vocabSize}${shape.tieWordEmbeddings ? ', tied embeddings' : ''}`);
  } else {
    shape = inputs.savedShape ?? modelConfigFor(cfg, data.tokenizer.vocabSize);
    model = new LlamaForCausalLM(shape).initWeights(cfg.seed);
  }
  if (shape.vocabSize < data.tokenizer.vocabSize) {
    model.dispose();
    throw new Error(`vocab_size ${shape.vocabSize} is smaller than the tokenizer's vocabulary (${data.tokenizer.vocabSize})`);
  }
  if (!existsSync(runFile(runDir, 'model'))) await atomicWriteFile(runFile(runDir, 'model'), `${JSON.stringify(configToJSON(shape), null, 2)}\n`);
  return { model, shape };
}

/** The plan of phases and the state to start from: fresh, after a warm start, or a checkpoint of this run. */
async function initialState(
  cfg: TrainConfig, runDir: string, inputs: RunInputs, resumeFrom: LoadedCheckpoint | null, model: LlamaForCausalLM, data: PreparedData, log: (s: string) => void,
  leader: boolean, optimizerShard?: { rank: number; size: number },
): Promise<{ state: RunState; plans: PhasePlan[] }> {
  const state = new RunState(cfg, loraOptions(cfg), data.train.sequences(cfg.seq_len), optimizerShard);
  let plans = planPhases(cfg);
  const warm = inputs.warmStart;
  if (warm && !resumeFrom) {
    plans = planAfterWarmStart(cfg, warm.state.step);
    state.startFrom(warm, model);
    log(`warm start from ${warm.dir} (full-rank update ${state.step}); the ${cfg.mode} phase has ${cfg.steps - state.step} updates`);
  }
  if (resumeFrom) {
    state.restore(resumeFrom, model, plans);
    // Metrics written after the checkpoint belong to the lost part of the run.
    const path = runFile(runDir, 'metrics');
    if (leader && existsSync(path)) {
      const kept = readMetrics(path).filter((r) => r.step <= state.step);
      await atomicWriteFile(path, kept.map((r) => JSON.stringify(r)).join('\n') + (kept.length ? '\n' : ''));
    }
  }
  return { state, plans };
}

/** Says that lora and relora runs begin full-rank (a plain LoRA run needs warm_start_steps 0). */
function warmStartNote(cfg: TrainConfig): string {
  if (cfg.mode === 'full' || cfg.warm_start_steps === 0) return '';
  const lr = cfg.warm_start_schedule === 'run' ? 'the first part of a cosine over the whole run' : 'a cosine of its own';
  return `; the first ${cfg.warm_start_steps} are a full-rank warm start (peak ${cfg.warm_start_lr}, ${lr}; --warm-start-steps 0 for none)`;
}
