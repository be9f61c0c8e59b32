/**
 * The training run: a full-rank warm start, then LoRA or ReLoRA (Lialin et al., ReLoRA; see
 * docs/method.md), with gradient accumulation, evaluation, checkpoints, metrics, progress and a
 * summary. Set-up is in setup.ts, the state a checkpoint holds in run-state.ts, the phases in
 * phases.ts; this file is the loop.
 */
import { join } from 'node:path';
import { bf16Support } from '../engine/ops/bf16.ts';
import { clearPool } from '../engine/pool.ts';
import { Tensor, toHostAll } from '../engine/tensor.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';
import type { AdamWState } from '../optim/adamw.ts';
import { parseResetKind } from '../relora/prune.ts';
import { restart } from '../relora/restart.ts';
import { isRestartAfter } from '../relora/restarts.ts';
import { loraLayers, type TrainingMode } from '../relora/wrap.ts';
import type { LoraLinear } from '../relora/lora-linear.ts';
import { atomicWriteFile } from '../io/atomic.ts';
import { listCheckpoints, saveCheckpoint } from './checkpoint.ts';
import type { TrainConfig } from './config.ts';
import { unigramPerplexity } from './data.ts';
import { evaluateShared } from './evaluate.ts';
import { agreeToStop, dropoutPlacement, nextRankMicroBatches } from './data-parallel.ts';
import type { MetricRecord, RankRecord } from './metrics.ts';
import { lrAdvice, scheduleFor, type Phase, type PhasePlan } from './phases.ts';
import { Progress } from './progress.ts';
import { runFile } from './run-folder.ts';
import { setupRun, type Run } from './setup.ts';
import { trainStep } from './step.ts';
import { StopSignal, type StopSignalName } from './stop-signal.ts';
import { testHook } from './test-hooks.ts';
import type { Communicator } from '../parallel/communicator.ts';

// Imported from here by tests and callers written before the loop was split up.
export { modelConfigFor } from './config.ts';
export { evaluate } from './evaluate.ts';
export { planPhases, type Phase, type PhasePlan } from './phases.ts';

/** Callbacks for a caller that follows the run (a library user, a notebook, a dashboard). */
export interface TrainHooks {
  /** Every record written to metrics.jsonl: updates, evaluations, restarts, rank measurements. */
  onMetric?(record: MetricRecord): void;
  /** After each evaluation on the held-out sequences. */
  onEval?(e: { step: number; loss: number; perplexity: number }): void;
  /** After each ReLoRA merge and optimizer reset. */
  onRestart?(r: { step: number; merges: number; resets: number }): void;
  /** When a phase (full-rank warm start, lora, relora) starts or is resumed. */
  onPhase?(p: { phase: Phase; step: number }): void;
}

export interface TrainOptions {
  config: TrainConfig;
  runDir: string;
  /** Continue the latest valid checkpoint of runDir. */
  resume?: boolean;
  /** Start the LoRA/ReLoRA phase from this full-rank checkpoint (folder or run folder). */
  warmStartFrom?: string;
  log?: (s: string) => void;
  hooks?: TrainHooks;
  /** Measure the accumulated update's rank at merges and at the end (plugged in by the caller). */
  rankHook?: RankHook;
  /** Install SIGINT/SIGTERM handlers that checkpoint and stop (see stop-signal.ts). */
  handleSignals?: boolean;
  /**
   * Handlers the caller installed already (the CLI installs them before set-up and keeps them
   * until its report is written); the run tells it which stage it is in. Implies handleSignals.
   */
  stopSignal?: StopSignal;
  /** Start even when the estimated memory exceeds `memoryLimitBytes`. */
  force?: boolean;
  /** What the memory estimate is compared with; default this machine's total memory. */
  memoryLimitBytes?: number;
  /** The processes that train together; default the job mpirun started this process in, or this process alone. */
  communicator?: Communicator;
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
  interrupted_by?: StopSignalName;
}

/** What the loop keeps beside the run state: nothing of it goes into a checkpoint. */
interface Loop {
  run: Run;
  progress: Progress;
  stop: StopSignal;
  lastEval: number;
  /** Tokens/s of each update of this process, for the summary's mean. */
  throughput: number[];
}

/** The phase being trained, with its schedule and (in lora/relora) its LoRA layers. */
interface ActivePhase {
  plan: PhasePlan;
  lambda: (phaseStep: number) => number;
  layers: Map<string, LoraLinear>;
}

export async function train(opts: TrainOptions): Promise<TrainSummary> {
  const stop = opts.stopSignal ?? new StopSignal(opts.log ?? ((s: string) => process.stderr.write(`${s}\n`)));
  const ownsSignals = !opts.stopSignal && opts.handleSignals === true;
  if (ownsSignals) stop.install();
  stop.enter('setup');
  let run: Run;
  try {
    run = await setupRun(opts); // every input checked, then data, model and state
  } catch (e) {
    if (ownsSignals) stop.uninstall();
    throw e;
  }
  const { cfg, state, plans } = run;
  state.startClock();
  const loop: Loop = { run, progress: new Progress(cfg.steps, state.step, run.log), stop, lastEval: NaN, throughput: [] };
  const alreadyDone = run.resumed && state.step >= cfg.steps;
  stop.enter('training');
  try {
    // The loss of the starting weights.
    if (!run.resumed && state.step === 0) evaluateNow(loop);
    if (alreadyDone) run.log(`the run had already finished all ${cfg.steps} updates`);
    for (; state.phaseIndex < plans.length; state.phaseIndex++) {
      // A new phase: LoRA layers, a fresh optimizer and schedule (or those of the checkpoint).
      const phase = await enterPhase(run);
      while (state.phaseStep < phase.plan.steps) {
        // One update; in relora, a merge and optimizer reset when a cycle ends.
        await runUpdate(loop, phase);
        // Signal handlers (and a terminal progress bar) run only when the event loop gets a turn.
        await new Promise<void>((resolve) => setImmediate(resolve));
        if (state.step === cfg.steps) break; // the end of the run evaluates and saves below
        if (state.step % cfg.eval_every === 0) evaluateNow(loop);
        // Every process stops after the same update (a signal may reach them at different times).
        const stopping = agreeToStop(run.comm, stop.requested !== null);
        if (state.step % cfg.save_every === 0 || state.phaseStep === phase.plan.steps || stopping) await saveNow(run, phase.plan.phase);
        if (stopping) return await summarise(loop, stop.requested ?? 'SIGTERM');
      }
      if (state.phaseIndex < plans.length - 1) state.phaseStep = 0;
    }
    // The end: a final evaluation and checkpoint (a run resumed after its end only re-evaluates).
    stop.enter('finishing');
    if (alreadyDone) loop.lastEval = evaluateQuietly(run);
    else await finishRun(loop);
    return await summarise(loop, null);
  } finally {
    loop.progress.stop();
    if (ownsSignals) stop.uninstall();
    run.release();
  }
}

/** Start (or resume) the current phase: wrap the model for lora/relora, make its optimizer. */
async function enterPhase(run: Run): Promise<ActivePhase> {
  const { cfg, state, model } = run;
  const plan = run.plans[state.phaseIndex];
  const resumedHere = state.resumedPhase === plan.phase;
  if (plan.phase !== 'full' && !resumedHere && state.phaseStep === 0) {
    // The warm-started model gets its LoRA layers, a new optimizer and schedule (docs/method.md, "Warm start").
    if (loraLayers(model).size === 0) state.wrap(model);
    state.optimizer?.dispose();
    state.optimizer = null;
    clearPool();
    run.log(`switching to ${plan.phase} at update ${state.step}: rank ${cfg.rank}, alpha ${cfg.alpha}${plan.phase === 'relora' ? `, merge and reset every ${cfg.cycle_length} updates (${cfg.optimizer_reset})` : ''}${cfg.frozen_bf16 ? `, frozen W products in bfloat16 (${bf16Support()})` : ''}`);
  }
  if (plan.phase !== 'full') await run.rankHook?.start(model, run.runDir, resumedHere);
  state.optimizer ??= state.newOptimizer(model, plan.lr);
  run.hooks.onPhase?.({ phase: plan.phase, step: state.step });
  return { plan, lambda: scheduleFor(cfg, plan), layers: loraLayers(model) };
}

/** One optimizer update over `grad_accum` micro-batches, its metrics, and a restart when one is due. */
async function runUpdate(loop: Loop, phase: ActivePhase): Promise<void> {
  const { run, progress } = loop;
  const { cfg, state } = run;
  await state.sampler.ready(cfg.batch_size); // the batch's shard may still be being tokenised
  const started = Date.now();
  const lr = phase.plan.lr * phase.lambda(state.phaseStep);
  const update = state.step + 1;
  const dropout = dropoutPlacement(cfg, run.comm, state.lora.dropout, phase.layers);
  // One process has nothing to average: without a sync, a device backend reads the update back once.
  const sync = run.comm.size > 1 ? run.gradients : undefined;
  const r = trainStep(run.model, state.optimizer!, nextMicroBatches(run), lr, cfg.clip_norm, () => testHook(`update:${update}`), sync, dropout?.place);
  dropout?.finish();
  if (!r.applied) {
    state.skipped++;
    progress.log(`warning: update ${update} skipped: loss ${r.loss}, gradient norm ${r.gradNorm} (${state.skipped} skipped so far, at most ${cfg.max_skipped_updates})`);
  }
  state.phaseStep++;
  state.step++;
  const batchTokens = cfg.batch_size * cfg.seq_len;
  state.tokens += batchTokens;
  const tps = batchTokens / Math.max((Date.now() - started) / 1000, 1e-9);
  loop.throughput.push(tps);
  emit(run, {
    type: 'train', step: state.step, phase: phase.plan.phase, loss: r.loss, lr, grad_norm: r.gradNorm, tokens: state.tokens, tokens_per_s: tps,
    merges: state.counters.merges, resets: state.counters.resets, elapsed: state.elapsed(), skipped: state.skipped,
    ...(run.comm.size > 1 ? { allreduce_bytes: run.gradients.last.bytes, comm_s: run.gradients.last.seconds, ranks: run.comm.size } : {}),
  });
  progress.update({ step: state.step, phase: phase.plan.phase, loss: r.loss, lr, tokensPerS: tps, merges: state.counters.merges });
  if (state.skipped > cfg.max_skipped_updates) {
    const last = listCheckpoints(run.runDir)[0];
    throw new Error(
      `${state.skipped} updates had a non-finite loss or gradient (more than max_skipped_updates ${cfg.max_skipped_updates}); ${lrAdvice(cfg, phase.plan)}` +
      `${last ? `. The last checkpoint, ${join(run.runDir, 'checkpoints', last)}, holds finite weights` : ''}`,
    );
  }
  if (phase.plan.phase === 'relora' && isRestartAfter(state.phaseStep, cfg.cycle_length)) mergeAndRestart(loop, phase.layers);
}

/** This process's micro-batches of the next batch, in the sampler's order (all of them when training alone). */
function nextMicroBatches(run: Run): Tensor[] {
  const { cfg, state, data } = run;
  const seqLen = cfg.seq_len;
  return nextRankMicroBatches(cfg, run.comm, state.sampler, (indices) => {
    const ids = new Int32Array(indices.length * seqLen);
    indices.forEach((si, j) => data.train.readSequence(si, seqLen, ids.subarray(j * seqLen, (j + 1) * seqLen)));
    return Tensor.from(ids, [indices.length, seqLen]);
  });
}

/** ReLoRA's restart: merge every LoRA product into W, re-initialise the factors, reset the optimizer (docs/method.md). */
function mergeAndRestart(loop: Loop, layers: Map<string, LoraLinear>): void {
  const { run } = loop;
  const { cfg, state } = run;
  restart(layers, state.optimizer!, parseResetKind(cfg.optimizer_reset), { init: state.lora.init, prune: state.pruneRng }, state.counters);
  emit(run, { type: 'restart', step: state.step, merges: state.counters.merges, resets: state.counters.resets });
  run.hooks.onRestart?.({ step: state.step, merges: state.counters.merges, resets: state.counters.resets });
  if (!run.rankHook) return;
  const recs = run.rankHook.measure(run.model, state.step, state.counters.merges);
  for (const rr of recs) emit(run, rr);
  if (recs.length) loop.progress.log(`merge ${state.counters.merges} after update ${state.step}: rank of W − W_warm_start ${recs.map((x) => x.rank).join(', ')} (LoRA rank ${cfg.rank})`);
}

/** A record for metrics.jsonl, and for the caller's hook. */
function emit(run: Run, record: MetricRecord): void {
  if (run.leader) run.metrics.write(record);
  run.hooks.onMetric?.(record);
}

/** Evaluate on the held-out sequences, record it and report it. */
function evaluateNow(loop: Loop): void {
  const { run } = loop;
  const { state } = run;
  const loss = evaluateQuietly(run);
  loop.lastEval = loss;
  emit(run, { type: 'eval', step: state.step, eval_loss: loss, eval_ppl: Math.exp(loss), tokens: state.tokens, elapsed: state.elapsed() });
  loop.progress.log(`eval at update ${state.step}: loss ${loss.toFixed(4)}, perplexity ${Math.exp(loss).toFixed(2)}`);
}

/** Evaluate without a metrics record (a finished run's records are written already). */
function evaluateQuietly(run: Run): number {
  const loss = evaluateShared(run.comm, run.model, run.evalSeqs, run.cfg.seq_len, run.cfg.micro_batch);
  run.hooks.onEval?.({ step: run.state.step, loss, perplexity: Math.exp(loss) });
  return loss;
}

/** The final evaluation, rank measurement and checkpoint. */
async function finishRun(loop: Loop): Promise<void> {
  const { run } = loop;
  testHook('finish:eval');
  evaluateNow(loop);
  const phase = run.plans[run.plans.length - 1].phase;
  testHook('finish:rank');
  if (run.rankHook && phase !== 'full') for (const rr of run.rankHook.measure(run.model, run.state.step, run.state.counters.merges)) emit(run, rr);
  await saveNow(run, phase);
}

/** Write a checkpoint of this moment; weights that overflowed are never written. */
async function saveNow(run: Run, phase: Phase): Promise<void> {
  const { state } = run;
  // Every process takes part (a sharded optimizer's moments are spread over them); rank 0 writes.
  const collected = state.optimizer ? run.gradients.collectMoments(state.optimizer) : null;
  try {
    if (run.leader) await saveLeader(run, phase, collected?.moments);
  } finally {
    collected?.release();
  }
}

/** Rank 0's part of saveNow: the processes of a data-parallel job hold the same weights. */
async function saveLeader(run: Run, phase: Phase, moments: ReadonlyMap<string, AdamWState> | undefined): Promise<void> {
  const { cfg, state, model } = run;
  const bad = firstNonFinite(model);
  if (bad) {
    const last = listCheckpoints(run.runDir)[0];
    throw new Error(
      `after update ${state.step} the model weight ${bad} holds non-finite values, so no checkpoint was written` +
      `${last ? ` (the last one, ${join(run.runDir, 'checkpoints', last)}, is valid)` : ''}; ${lrAdvice(cfg, run.plans[Math.min(state.phaseIndex, run.plans.length - 1)]!)}`,
    );
  }
  await saveCheckpoint(run.runDir, state.snapshot(model, phase, { ...run.engine, ranks: run.comm.size }, moments), cfg.keep_checkpoints);
}

/** The first parameter holding NaN or ±Infinity, if any. */
function firstNonFinite(model: LlamaForCausalLM): string | null {
  const tensors = model.stateDict();
  toHostAll(Object.values(tensors)); // from a GPU: every tensor in one readback
  for (const [name, t] of Object.entries(tensors)) {
    const d = t.data;
    for (let i = 0; i < t.size; i++) if (!Number.isFinite(d[i])) return name;
  }
  return null;
}

/** RUN/summary.json (also returned); frees the model and optimizer. */
async function summarise(loop: Loop, interruptedBy: StopSignalName | null): Promise<TrainSummary> {
  const { run } = loop;
  const { state, footprint, engine, data } = run;
  const evalTokens = new Int32Array(run.evalSeqs.length * run.cfg.seq_len);
  run.evalSeqs.forEach((s, i) => evalTokens.set(s, i * run.cfg.seq_len));
  const summary: TrainSummary = {
    run_dir: run.runDir,
    mode: run.cfg.mode as TrainingMode,
    steps: state.step,
    tokens: state.tokens,
    // An interrupted run has no final evaluation; an earlier one would pass for it.
    final_eval_loss: interruptedBy ? NaN : loop.lastEval,
    final_eval_ppl: interruptedBy ? NaN : Math.exp(loop.lastEval),
    unigram_ppl: await unigramPerplexity(data.train, evalTokens, data.tokenizer.vocabSize),
    tokens_per_s: loop.throughput.length ? loop.throughput.reduce((a, b) => a + b, 0) / loop.throughput.length : 0,
    elapsed_s: state.elapsed(),
    peak_rss_bytes: process.resourceUsage().maxRSS * 1024,
    params_total: footprint.params_total,
    params_trainable: footprint.params_trainable,
    state_bytes: footprint.bytes_params + footprint.bytes_grads + footprint.bytes_optimizer,
    merges: state.counters.merges,
    resets: state.counters.resets,
    skipped_updates: state.skipped,
    backend: engine.backend,
    blas: engine.blas,
    threads: engine.threads,
    ...(interruptedBy ? { interrupted: true, interrupted_by: interruptedBy } : {}),
  };
  testHook('finish:summary');
  if (run.leader) await atomicWriteFile(runFile(run.runDir, 'summary'), `${JSON.stringify(summary, null, 2)}\n`);
  state.optimizer?.dispose();
  run.model.dispose();
  return summary;
}
