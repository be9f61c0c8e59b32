/**
 * The training run: full-rank warm start, then LoRA or ReLoRA (spec sections 6, 7), with
 * gradient accumulation, evaluation, checkpoints, metrics, progress and a summary.
 *
 * Phases:  mode full   → [full × steps]
 *          mode lora   → [full × warm_start_steps] [lora × rest]
 *          mode relora → [full × warm_start_steps] [relora × rest]   (merge + reset every cycle)
 * Each phase has its own AdamW and its own schedule; the data stream continues across phases.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { setBackend, backendInfo } from '../engine/backend.ts';
import { bf16Support } from '../engine/ops/bf16.ts';
import { clearPool } from '../engine/pool.ts';
import { RandomStream } from '../engine/rng.ts';
import { noGrad, scope, Tensor } from '../engine/tensor.ts';
import { SequenceSampler } from '../data/sampler.ts';
import { configFromJSON, configToJSON, namedConfig, validateConfig, type LlamaConfig } from '../nn/config.ts';
import { loadHFModel } from '../io/hf-model.ts';
import { LlamaForCausalLM } from '../nn/llama.ts';
import { AdamW } from '../optim/adamw.ts';
import { makeSchedule, type SchedulerKind } from '../optim/schedule.ts';
import { trainingFootprint } from '../relora/accounting.ts';
import { parseResetKind } from '../relora/prune.ts';
import { restart } from '../relora/restart.ts';
import { emptyRestartCounters, isRestartAfter, type RestartCounters } from '../relora/restarts.ts';
import { loraLayers, loraStreams, wrapWithLora, type TrainingMode } from '../relora/wrap.ts';
import { atomicWriteFile } from '../io/atomic.ts';
import {
  cleanInterruptedWrites, discardCheckpointsAfter, listCheckpoints, loadCheckpoint, loadLatestCheckpoint, saveCheckpoint,
  type LoadedCheckpoint, type TrainState,
} from './checkpoint.ts';
import { resolveConfig, type TrainConfig } from './config.ts';
import { prepareData, unigramPerplexity, type PreparedData } from './data.ts';
import { MetricsWriter, readMetrics, type MetricRecord, type RankRecord } from './metrics.ts';
import { Progress } from './progress.ts';
import { checkMemory, estimateTrainingMemory } from './memory.ts';
import { trainStep } from './step.ts';
import { testHook } from './test-hooks.ts';

export type Phase = 'full' | 'lora' | 'relora';

export interface TrainOptions {
  config: TrainConfig;
  runDir: string;
  /** Continue the latest valid checkpoint of runDir. */
  resume?: boolean;
  /** Start the LoRA/ReLoRA phase from this full-rank checkpoint (folder or run folder). */
  warmStartFrom?: string;
  log?: (s: string) => void;
  /** Measure the accumulated update's rank at merges and at the end (plugged in by the caller). */
  rankHook?: RankHook;
  /** Install SIGINT/SIGTERM handlers that checkpoint and stop (CLI: true). */
  handleSignals?: boolean;
  /** Start even when the estimated memory exceeds `memoryLimitBytes`. */
  force?: boolean;
  /** What the memory estimate is compared with; default this machine's total memory. */
  memoryLimitBytes?: number;
}

export interface RankHook {
  /** Called when the low-rank phase starts (W at warm start is the reference). */
  start(model: LlamaForCausalLM, runDir: string, resumed: boolean): Promise<void> | void;
  measure(model: LlamaForCausalLM, step: number, merges: number): RankRecord[];
}

export interface TrainSummary {
  run_dir: string;
  mode: TrainingMode;
  steps: number;
  tokens: number;
  final_eval_loss: number;
  final_eval_ppl: number;
  unigram_ppl: number;
  tokens_per_s: number;
  elapsed_s: number;
  peak_rss_bytes: number;
  params_total: number;
  params_trainable: number;
  state_bytes: number;
  merges: number;
  resets: number;
  skipped_updates: number;
  backend: string;
  blas: string;
  threads: number;
  /** Set when the run was interrupted (signal) before its last update. */
  interrupted?: boolean;
  /** The signal that interrupted it. */
  interrupted_by?: 'SIGINT' | 'SIGTERM';
}

export function modelConfigFor(cfg: TrainConfig, vocabSize: number): LlamaConfig {
  const base = { vocabSize: cfg.vocab_size ?? vocabSize, maxSeqLen: cfg.seq_len };
  if (typeof cfg.model === 'string') return namedConfig(cfg.model, base);
  return validateConfig({
    ...base,
    hiddenSize: cfg.model.hidden_size,
    intermediateSize: cfg.model.intermediate_size,
    numHeads: cfg.model.num_heads,
    numLayers: cfg.model.num_layers,
    rmsNormEps: 1e-6,
    ropeTheta: 10000,
  });
}

interface PhasePlan {
  phase: Phase;
  /** Global step at which the phase starts. */
  start: number;
  steps: number;
  lr: number;
  scheduler: SchedulerKind;
}

export function planPhases(cfg: TrainConfig): PhasePlan[] {
  if (cfg.mode === 'full') return [{ phase: 'full', start: 0, steps: cfg.steps, lr: cfg.lr, scheduler: cfg.scheduler }];
  const plans: PhasePlan[] = [];
  if (cfg.warm_start_steps > 0) plans.push({ phase: 'full', start: 0, steps: cfg.warm_start_steps, lr: cfg.warm_start_lr, scheduler: 'cosine' });
  plans.push({ phase: cfg.mode as Phase, start: cfg.warm_start_steps, steps: cfg.steps - cfg.warm_start_steps, lr: cfg.lr, scheduler: cfg.scheduler });
  return plans;
}

function scheduleFor(cfg: TrainConfig, p: PhasePlan): (s: number) => number {
  return makeSchedule({
    scheduler: p.scheduler,
    steps: p.steps,
    warmupSteps: Math.min(cfg.warmup_steps, p.steps),
    restartWarmupSteps: cfg.restart_warmup_steps,
    cycleLength: p.scheduler === 'cosine_restarts' ? cfg.cycle_length : undefined,
    minLrRatio: cfg.min_lr_ratio,
  });
}

/** Mean loss over the fixed held-out sequences. */
export function evaluate(model: LlamaForCausalLM, evalSeqs: Int32Array[], seqLen: number, microBatch: number): number {
  model.eval();
  let total = 0, count = 0;
  noGrad(() => {
    for (let i = 0; i < evalSeqs.length; i += microBatch) {
      const batch = evalSeqs.slice(i, i + microBatch);
      const ids = new Int32Array(batch.length * seqLen);
      batch.forEach((s, j) => ids.set(s, j * seqLen));
      total += scope(() => model.loss(Tensor.from(ids, [batch.length, seqLen])).item()) * batch.length;
      count += batch.length;
    }
  });
  model.train();
  return total / count;
}

function peakRss(): number {
  const r = process.resourceUsage();
  return r.maxRSS * 1024;
}

/** Read the config a run folder was started with. */
export function readRunConfig(runDir: string): TrainConfig {
  const p = join(runDir, 'config.json');
  if (!existsSync(p)) throw new Error(`${runDir}: no config.json (not a relora run folder)`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(p, 'utf8'));
  } catch (e) {
    throw new Error(`${p}: not valid JSON (${(e as Error).message})`);
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${p}: expected a JSON object`);
  // The saved config is a resolved one: drop what resolving derives (and the token budget that
  // became `steps`) and validate the rest like any config.
  const { grad_accum: _derived, tokens: _budget, ...keys } = raw as Record<string, unknown>;
  return resolveConfig(keys, p);
}

/** Leftovers of writes a crash interrupted: temporary checkpoint folders and temporary files. */
function tidyRunFolder(runDir: string): void {
  cleanInterruptedWrites(runDir);
  for (const n of readdirSync(runDir)) {
    const m = /\.tmp-(\d+)-\d+$/.exec(n);
    if (m && Number(m[1]) !== process.pid) rmSync(join(runDir, n), { force: true });
  }
}

/** The first parameter holding NaN or ±Infinity, if any. */
function firstNonFinite(model: LlamaForCausalLM): string | null {
  for (const [name, t] of Object.entries(model.stateDict())) {
    const d = t.data;
    for (let i = 0; i < t.size; i++) if (!Number.isFinite(d[i])) return name;
  }
  return null;
}

/** What to change when training diverges: the learning rate of the phase it diverged in. */
function lrAdvice(cfg: TrainConfig, plan: PhasePlan): string {
  const flag = plan.phase === 'full' && cfg.mode !== 'full' ? '--warm-start-lr' : '--lr';
  return `the learning rate (${plan.lr}) is probably too high: lower ${flag}`;
}

const EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;

export async function train(opts: TrainOptions): Promise<TrainSummary> {
  const cfg = opts.config;
  const runDir = opts.runDir;
  const log = opts.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  setBackend(cfg.backend, cfg.threads);
  const info = backendInfo();
  log(`backend ${info.backend} (GEMM ${info.blas}, ${info.threads} threads)${info.fallback ? ` — native unavailable: ${info.fallback}` : ''}`);

  const lora = { rank: cfg.rank, alpha: cfg.alpha, dropout: cfg.dropout, targetModules: cfg.target_modules, frozenBf16: cfg.frozen_bf16 };
  const memoryCheck = (vocabSize: number): string => checkMemory(
    estimateTrainingMemory({ model: modelConfigFor(cfg, vocabSize), mode: cfg.mode as TrainingMode, lora, microBatch: cfg.micro_batch, seqLen: cfg.seq_len }),
    { available: opts.memoryLimitBytes, force: opts.force, what: 'this training configuration' },
  );
  // Refuse a config that cannot fit before any data is read; the vocabulary of a given
  // tokenizer file is only known after loading it, so that case is checked again below.
  const vocabKnown = !cfg.init_from && (cfg.vocab_size !== undefined || cfg.tokenizer === undefined);
  if (vocabKnown) log(`estimated memory: ${memoryCheck(cfg.vocab_size ?? cfg.tokenizer_vocab_size)}`);

  // ---- run folder ----
  mkdirSync(runDir, { recursive: true });
  let resumeFrom: LoadedCheckpoint | null = null;
  if (opts.resume) {
    tidyRunFolder(runDir);
    if (listCheckpoints(runDir).length === 0) {
      // Killed before its first checkpoint: nothing to lose by starting over, and the run folder
      // (config, tokenizer) is already there.
      log(`${runDir} has no checkpoint yet: starting the run again from update 0 with its saved config`);
      rmSync(join(runDir, 'metrics.jsonl'), { force: true });
    } else {
      resumeFrom = loadLatestCheckpoint(runDir, (m) => log(`warning: ${m}`));
      const skippedNames = resumeFrom.skipped ?? [];
      if (skippedNames.length) log(`falling back to ${resumeFrom.dir}: ${skippedNames.join(', ')} failed verification (see the warnings above)`);
      for (const n of discardCheckpointsAfter(runDir, resumeFrom.state.step)) log(`removed checkpoint ${n}: it is newer than the one resumed from, and its updates will be redone`);
      log(`resuming ${runDir} from ${resumeFrom.dir} (update ${resumeFrom.state.step} of ${cfg.steps})`);
      const was = resumeFrom.state.engine;
      if (was && (was.backend !== info.backend || was.threads !== info.threads)) {
        const threads = (n: number) => `${n} thread${n === 1 ? '' : 's'}`;
        log(`note: the checkpoint was written by the ${was.backend} backend with ${threads(was.threads)}, this process uses ${info.backend} with ${threads(info.threads)}; ` +
          'the run continues correctly but will not be bit-identical to an uninterrupted one (use the same --backend and --threads for that)');
      }
    }
  } else {
    if (existsSync(join(runDir, 'config.json')) || existsSync(join(runDir, 'metrics.jsonl'))) {
      throw new Error(`output folder ${runDir} already holds a run; continue it with --resume ${runDir}, or choose another --out`);
    }
    await atomicWriteFile(join(runDir, 'config.json'), `${JSON.stringify(cfg, null, 2)}\n`);
  }

  // ---- data ----
  const tokenizerPath = existsSync(join(runDir, 'tokenizer.json')) ? join(runDir, 'tokenizer.json') : undefined;
  if (cfg.init_from && !tokenizerPath) {
    if (!existsSync(join(cfg.init_from, 'tokenizer.json'))) throw new Error(`--init-from ${cfg.init_from}: the folder has no tokenizer.json; relora continues pre-training with the model's own tokenizer`);
    // The EOS token of a Hugging Face tokenizer is named in tokenizer_config.json: keep it beside the run's copy.
    if (existsSync(join(cfg.init_from, 'tokenizer_config.json'))) await atomicWriteFile(join(runDir, 'tokenizer_config.json'), readFileSync(join(cfg.init_from, 'tokenizer_config.json')));
  }
  const data: PreparedData = await prepareData(cfg, log, tokenizerPath ?? (cfg.init_from ? join(cfg.init_from, 'tokenizer.json') : undefined));
  if (!tokenizerPath) await atomicWriteFile(join(runDir, 'tokenizer.json'), JSON.stringify(data.tokenizer.toJSON()));
  const seqLen = cfg.seq_len;
  const evalCount = Math.min(Math.floor(cfg.eval_tokens / seqLen), data.validation.numSequences(seqLen));
  const evalSeqs = Array.from({ length: evalCount }, (_, i) => data.validation.readSequence(i, seqLen));
  const evalTokens = new Int32Array(evalCount * seqLen);
  evalSeqs.forEach((s, i) => evalTokens.set(s, i * seqLen));
  log(`data: ${data.train.numTokens.toLocaleString('en-US')} training tokens (${data.trainName}), ${evalCount} evaluation sequences of ${seqLen} (${data.validationName})`);

  // ---- model ----
  // The exact model shape lives in RUN/model.json (grouped-query, tied and imported models cannot
  // be rebuilt from config.json alone).
  const modelJson = join(runDir, 'model.json');
  let modelCfg: LlamaConfig;
  let model: LlamaForCausalLM;
  if (resumeFrom && existsSync(modelJson)) {
    modelCfg = configFromJSON(JSON.parse(readFileSync(modelJson, 'utf8')), modelJson);
    model = new LlamaForCausalLM(modelCfg).initWeights(cfg.seed);
  } else if (cfg.init_from) {
    const hf = await loadHFModel(cfg.init_from, { maxSeqLen: cfg.seq_len, noTokenizer: true });
    if (cfg.seq_len > hf.hfConfig.max_position_embeddings) {
      throw new Error(`seq_len ${cfg.seq_len} exceeds max_position_embeddings ${hf.hfConfig.max_position_embeddings} of ${cfg.init_from}`);
    }
    model = hf.model;
    modelCfg = model.config;
    log(`initialised from ${cfg.init_from}: ${modelCfg.numLayers} layers, hidden ${modelCfg.hiddenSize}, ${modelCfg.numHeads} heads (${modelCfg.numKVHeads ?? modelCfg.numHeads} key/value), vocabulary ${modelCfg.vocabSize}${modelCfg.tieWordEmbeddings ? ', tied embeddings' : ''}`);
  } else {
    modelCfg = modelConfigFor(cfg, data.tokenizer.vocabSize);
    model = new LlamaForCausalLM(modelCfg).initWeights(cfg.seed);
  }
  if (!vocabKnown) {
    log(`estimated memory: ${checkMemory(
      estimateTrainingMemory({ model: modelCfg, mode: cfg.mode as TrainingMode, lora, microBatch: cfg.micro_batch, seqLen: cfg.seq_len }),
      { available: opts.memoryLimitBytes, force: opts.force, what: 'this training configuration' },
    )}`);
  }
  if (modelCfg.vocabSize < data.tokenizer.vocabSize) {
    throw new Error(`vocab_size ${modelCfg.vocabSize} is smaller than the tokenizer's vocabulary (${data.tokenizer.vocabSize})`);
  }
  if (!existsSync(modelJson)) await atomicWriteFile(modelJson, `${JSON.stringify(configToJSON(modelCfg), null, 2)}\n`);
  const streams = loraStreams(cfg.seed);
  const pruneRng = RandomStream.named(cfg.seed, 'prune');
  const resetKind = parseResetKind(cfg.optimizer_reset);
  const sampler0 = new SequenceSampler({ numSequences: data.train.numSequences(seqLen), seed: RandomStream.named(cfg.seed, 'data-order').seed });
  let sampler = sampler0;

  const plans = planPhases(cfg);
  let step = 0, tokens = 0, elapsedBefore = 0, skipped = 0;
  let counters: RestartCounters = emptyRestartCounters();
  let phaseIndex = 0, phaseStep = 0;
  let optimizer: AdamW | null = null;

  const wrap = (): void => {
    wrapWithLora(model, lora, streams);
  };

  if (opts.warmStartFrom && !resumeFrom) {
    const ck = existsSync(join(opts.warmStartFrom, 'manifest.json'))
      ? loadCheckpoint(opts.warmStartFrom)
      : loadLatestCheckpoint(opts.warmStartFrom, (m) => log(`warning: ${m}`));
    if (ck.state.phase !== 'full') throw new Error(`--warm-start ${opts.warmStartFrom}: checkpoint is from a ${ck.state.phase} phase; a full-rank checkpoint is needed`);
    if (cfg.mode === 'full') throw new Error('--warm-start needs mode lora or relora');
    model.loadStateDict(ck.model, true, `${ck.dir}/model.safetensors`);
    sampler = new SequenceSampler({ numSequences: sampler0.numSequences, seed: sampler0.seed, state: ck.state.sampler });
    step = ck.state.step;
    tokens = ck.state.tokens;
    phaseIndex = plans.length - 1;
    const p = plans[phaseIndex];
    if (step >= cfg.steps) throw new Error(`--warm-start: the checkpoint is at update ${step}, but the run has only ${cfg.steps} updates`);
    plans[phaseIndex] = { ...p, start: step, steps: cfg.steps - step };
    plans.splice(0, phaseIndex);
    phaseIndex = 0;
    log(`warm start from ${ck.dir} (full-rank update ${step}); the ${cfg.mode} phase has ${cfg.steps - step} updates`);
  }

  if (resumeFrom) {
    const s = resumeFrom.state;
    phaseIndex = plans.findIndex((p) => p.phase === s.phase && s.step >= p.start && s.step <= p.start + p.steps);
    if (phaseIndex < 0) phaseIndex = plans.findIndex((p) => p.phase === s.phase);
    if (phaseIndex < 0) throw new Error(`${resumeFrom.dir}: phase ${s.phase} does not occur in this run's plan (mode ${cfg.mode})`);
    if (s.phase !== 'full') wrap();
    model.loadStateDict(resumeFrom.model, true, `${resumeFrom.dir}/model.safetensors`);
    step = s.step;
    phaseStep = s.phase_step;
    tokens = s.tokens;
    elapsedBefore = s.elapsed;
    skipped = s.skipped;
    counters = { ...s.counters };
    sampler = new SequenceSampler({ numSequences: sampler0.numSequences, seed: sampler0.seed, state: s.sampler });
    streams.init.seed = s.rng.lora_init.seed; streams.init.calls = s.rng.lora_init.calls;
    streams.dropout.seed = s.rng.lora_dropout.seed; streams.dropout.calls = s.rng.lora_dropout.calls;
    pruneRng.seed = s.rng.prune.seed; pruneRng.calls = s.rng.prune.calls;
    optimizer = new AdamW(model.namedTrainableParameters(), { lr: plans[phaseIndex].lr, weightDecay: cfg.weight_decay });
    optimizer.stepCount = s.optimizer_steps;
    for (const [name, st] of optimizer.state) {
      const m = resumeFrom.optimizer[`m.${name}`], v = resumeFrom.optimizer[`v.${name}`];
      if (!m || !v) throw new Error(`${resumeFrom.dir}/optimizer.safetensors: no moments for ${name}`);
      st.m.data.set(m);
      st.v.data.set(v);
    }
    // Metrics written after the checkpoint belong to the lost part of the run.
    const mpath = join(runDir, 'metrics.jsonl');
    if (existsSync(mpath)) {
      const kept = readMetrics(mpath).filter((r) => r.step <= step);
      await atomicWriteFile(mpath, kept.map((r) => JSON.stringify(r)).join('\n') + (kept.length ? '\n' : ''));
    }
  }

  const metrics = new MetricsWriter(join(runDir, 'metrics.jsonl'));
  const footprint = trainingFootprint(modelCfg, cfg.mode as TrainingMode, lora);
  log(`model: ${(footprint.params_total / 1e6).toFixed(2)}M parameters, ${(footprint.params_trainable / 1e6).toFixed(2)}M trainable in the ${cfg.mode} phase; ${cfg.steps} updates of ${cfg.batch_size} × ${seqLen} tokens (micro-batch ${cfg.micro_batch}, accumulation ${cfg.grad_accum})`);

  let stopRequested: 'SIGINT' | 'SIGTERM' | null = null;
  const onSignal = (sig: 'SIGINT' | 'SIGTERM') => () => {
    if (stopRequested) {
      // A second signal means "now": checkpoint writes are atomic, so the last complete one stays valid.
      log(`\n${sig} received again: exiting without saving (the last complete checkpoint is intact)`);
      process.exit(EXIT_CODES[sig]);
    }
    stopRequested = sig;
    log(`\n${sig} received: finishing this update, saving a checkpoint and exiting (send it again to exit at once)`);
  };
  const handlers: [NodeJS.Signals, () => void][] = opts.handleSignals ? [['SIGINT', onSignal('SIGINT')], ['SIGTERM', onSignal('SIGTERM')]] : [];
  for (const [s, h] of handlers) process.on(s, h);

  const rngState = () => ({ lora_init: streams.init.state(), lora_dropout: streams.dropout.state(), prune: pruneRng.state() });
  const save = async (phase: Phase): Promise<void> => {
    const bad = firstNonFinite(model);
    if (bad) {
      const last = listCheckpoints(runDir)[0];
      throw new Error(
        `after update ${step} the model weight ${bad} holds non-finite values, so no checkpoint was written` +
        `${last ? ` (the last one, ${join(runDir, 'checkpoints', last)}, is valid)` : ''}; ${lrAdvice(cfg, plans[Math.min(phaseIndex, plans.length - 1)]!)}`,
      );
    }
    const state: TrainState = {
      version: 1, step, phase, phase_step: phaseStep, optimizer_steps: optimizer?.stepCount ?? 0, counters: { ...counters },
      tokens, elapsed: elapsedBefore + (Date.now() - t0) / 1000, skipped, sampler: sampler.state(), rng: rngState(),
      engine: { backend: info.backend, threads: info.threads },
    };
    const optTensors: Record<string, Tensor> = {};
    if (optimizer) for (const [name, st] of optimizer.state) { optTensors[`m.${name}`] = st.m; optTensors[`v.${name}`] = st.v; }
    await saveCheckpoint(runDir, { model: model.stateDict(), optimizer: optTensors, state }, cfg.keep_checkpoints);
  };

  const t0 = Date.now();
  const progress = new Progress(cfg.steps, step, log);
  let lastEval = NaN;
  const runEval = (): void => {
    const l = evaluate(model, evalSeqs, seqLen, cfg.micro_batch);
    lastEval = l;
    metrics.write({ type: 'eval', step, eval_loss: l, eval_ppl: Math.exp(l), tokens, elapsed: elapsedBefore + (Date.now() - t0) / 1000 });
    progress.log(`eval at update ${step}: loss ${l.toFixed(4)}, perplexity ${Math.exp(l).toFixed(2)}`);
  };

  if (!resumeFrom && step === 0) runEval();
  const resumedComplete = resumeFrom !== null && step >= cfg.steps;
  if (resumedComplete) log(`the run had already finished all ${cfg.steps} updates`);
  const ids = new Int32Array(cfg.micro_batch * seqLen);
  let interrupted = false;
  let tokensPerSSum = 0, tokensPerSCount = 0;

  try {
    for (; phaseIndex < plans.length; phaseIndex++) {
      const plan = plans[phaseIndex];
      const lambda = scheduleFor(cfg, plan);
      const firstEntry = !(resumeFrom && resumeFrom.state.phase === plan.phase);
      if (plan.phase !== 'full' && firstEntry && phaseStep === 0) {
        // Spec section 7: wrap the warm-started model; a new optimizer and schedule.
        if (loraLayers(model).size === 0) wrap();
        optimizer?.dispose();
        optimizer = null;
        clearPool();
        log(`switching to ${plan.phase} at update ${step}: rank ${cfg.rank}, alpha ${cfg.alpha}${plan.phase === 'relora' ? `, merge and reset every ${cfg.cycle_length} updates (${cfg.optimizer_reset})` : ''}${cfg.frozen_bf16 ? `, frozen W products in bfloat16 (${bf16Support()})` : ''}`);
      }
      if (plan.phase !== 'full') await opts.rankHook?.start(model, runDir, !firstEntry);
      optimizer ??= new AdamW(model.namedTrainableParameters(), { lr: plan.lr, weightDecay: cfg.weight_decay });
      const layers = loraLayers(model);

      for (; phaseStep < plan.steps; ) {
        const tStep = Date.now();
        const micro: Tensor[] = [];
        for (let a = 0; a < cfg.grad_accum; a++) {
          const idx = sampler.nextBatch(cfg.micro_batch);
          idx.forEach((si, j) => data.train.readSequence(si, seqLen, ids.subarray(j * seqLen, (j + 1) * seqLen)));
          micro.push(Tensor.from(Int32Array.from(ids), [cfg.micro_batch, seqLen]));
        }
        const lr = plan.lr * lambda(phaseStep);
        const update = step + 1;
        const r = trainStep(model, optimizer, micro, lr, cfg.clip_norm, () => testHook(`update:${update}`));
        if (!r.applied) {
          skipped++;
          progress.log(`warning: update ${update} skipped: loss ${r.loss}, gradient norm ${r.gradNorm} (${skipped} skipped so far, at most ${cfg.max_skipped_updates})`);
        }
        phaseStep++;
        step++;
        const batchTokens = cfg.batch_size * seqLen;
        tokens += batchTokens;
        const dt = (Date.now() - tStep) / 1000;
        const tps = batchTokens / Math.max(dt, 1e-9);
        tokensPerSSum += tps;
        tokensPerSCount++;
        const rec: MetricRecord = {
          type: 'train', step, phase: plan.phase, loss: r.loss, lr, grad_norm: r.gradNorm, tokens, tokens_per_s: tps,
          merges: counters.merges, resets: counters.resets, elapsed: elapsedBefore + (Date.now() - t0) / 1000, skipped,
        };
        metrics.write(rec);
        progress.update({ step, phase: plan.phase, loss: r.loss, lr, tokensPerS: tps, merges: counters.merges });
        if (skipped > cfg.max_skipped_updates) {
          const last = listCheckpoints(runDir)[0];
          throw new Error(
            `${skipped} updates had a non-finite loss or gradient (more than max_skipped_updates ${cfg.max_skipped_updates}); ${lrAdvice(cfg, plan)}` +
            `${last ? `. The last checkpoint, ${join(runDir, 'checkpoints', last)}, holds finite weights` : ''}`,
          );
        }

        if (plan.phase === 'relora' && isRestartAfter(phaseStep, cfg.cycle_length)) {
          restart(layers, optimizer, resetKind, { init: streams.init, prune: pruneRng }, counters);
          metrics.write({ type: 'restart', step, merges: counters.merges, resets: counters.resets });
          if (opts.rankHook) {
            const recs = opts.rankHook.measure(model, step, counters.merges);
            for (const rr of recs) metrics.write(rr);
            if (recs.length) progress.log(`merge ${counters.merges} after update ${step}: rank of W − W_warm_start ${recs.map((x) => x.rank).join(', ')} (LoRA rank ${cfg.rank})`);
          }
        }
        // Signal handlers (and a terminal progress bar) run only when the event loop gets a turn.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const last = step === cfg.steps;
        if (last) continue; // the end of the run evaluates and saves below
        if (step % cfg.eval_every === 0) runEval();
        if (step % cfg.save_every === 0 || phaseStep === plan.steps || stopRequested) await save(plan.phase);
        if (stopRequested) {
          interrupted = true;
          break;
        }
      }
      if (interrupted) break;
      if (phaseIndex < plans.length - 1) phaseStep = 0;
    }
    if (resumedComplete) {
      // The final checkpoint is written after the final records: they are in metrics.jsonl already.
      lastEval = evaluate(model, evalSeqs, seqLen, cfg.micro_batch);
    } else if (!interrupted) {
      runEval();
      const phase = plans[plans.length - 1].phase;
      if (opts.rankHook && phase !== 'full') for (const rr of opts.rankHook.measure(model, step, counters.merges)) metrics.write(rr);
      await save(phase);
    }
  } finally {
    progress.stop();
    for (const [s, h] of handlers) process.off(s, h);
  }

  const elapsed = elapsedBefore + (Date.now() - t0) / 1000;
  const summary: TrainSummary = {
    run_dir: runDir,
    mode: cfg.mode as TrainingMode,
    steps: step,
    tokens,
    // An interrupted run has no final evaluation; an earlier one would pass for it.
    final_eval_loss: interrupted ? NaN : lastEval,
    final_eval_ppl: interrupted ? NaN : Math.exp(lastEval),
    unigram_ppl: unigramPerplexity(data.train, evalTokens, data.tokenizer.vocabSize),
    tokens_per_s: tokensPerSCount ? tokensPerSSum / tokensPerSCount : 0,
    elapsed_s: elapsed,
    peak_rss_bytes: peakRss(),
    params_total: footprint.params_total,
    params_trainable: footprint.params_trainable,
    state_bytes: footprint.bytes_params + footprint.bytes_grads + footprint.bytes_optimizer,
    merges: counters.merges,
    resets: counters.resets,
    skipped_updates: skipped,
    backend: info.backend,
    blas: info.blas,
    threads: info.threads,
    ...(interrupted ? { interrupted: true, interrupted_by: stopRequested ?? undefined } : {}),
  };
  await atomicWriteFile(join(runDir, 'summary.json'), `${JSON.stringify(summary, null, 2)}\n`);
  optimizer?.dispose();
  model.dispose();
  return summary;
}
