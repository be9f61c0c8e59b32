/**
 * `train(config, options)`: the CLI's training run as one call. The config is the one the
 * `relora train` command reads (snake_case keys, every key optional), validated by the same
 * schema, so a config file and a library call describe the same run.
 */
import { resolve } from 'node:path';
import { resolveConfig, type TrainConfig, type TrainConfigInput } from '../train/config.ts';
import { makeRankHook } from '../train/rank-hook.ts';
import { readRunConfig } from '../train/run-folder.ts';
import { train as runTraining, type TrainHooks, type TrainSummary } from '../train/trainer.ts';

/** Options of {@link train}: where the run goes, how it starts, and callbacks as it goes. */
export interface TrainRunOptions extends TrainHooks {
  /** The run folder. Default: the config's `out` (`runs/relora`). */
  runDir?: string;
  /**
   * Continue the newest valid checkpoint of the run folder with the config saved there; the
   * `config` argument then only chooses the folder (`out`), `backend` and `threads`.
   */
  resume?: boolean;
  /** Start the LoRA/ReLoRA phase from a full-rank checkpoint (checkpoint or run folder). */
  warmStartFrom?: string;
  /** Progress lines (backend, memory estimate, evaluations, merges). Default: written to stderr. */
  log?: (line: string) => void;
  /** Start even when the estimated memory exceeds this machine's. Default false. */
  force?: boolean;
}

/** The config of a run about to start: the given keys over the defaults, or a resumed run's saved config. */
function runConfig(config: TrainConfigInput, options: TrainRunOptions): { cfg: TrainConfig; runDir: string } {
  const changed = options.resume ? Object.keys(config).filter((k) => !['out', 'backend', 'threads'].includes(k)) : [];
  if (changed.length) {
    throw new Error(`train(): resume continues the run with the config saved in its folder; remove ${changed.join(', ')} (only out, backend and threads may be given)`);
  }
  const given = resolveConfig(config, 'train() config');
  const runDir = resolve(options.runDir ?? given.out);
  if (!options.resume) return { cfg: given, runDir };
  const saved = readRunConfig(runDir);
  if (config.backend !== undefined) saved.backend = given.backend;
  if (config.threads !== undefined) saved.threads = given.threads;
  return { cfg: saved, runDir };
}

/**
 * Trains a LLaMA model — full-rank, LoRA, or ReLoRA (a full-rank warm start, then LoRA with
 * merges, optimizer resets and learning-rate restarts every `cycle_length` updates) — and
 * writes a run folder: config, tokenizer, metrics.jsonl, checkpoints, summary.json.
 *
 * Every problem with the config is reported at once, before any work starts (a `ConfigError`
 * listing them). Resolves with the run's summary (final validation perplexity, tokens/s, …).
 *
 * ```ts
 * const summary = await train(
 *   { model: 'llama_9m', mode: 'relora', data: ['corpus/*.jsonl'], steps: 2000, out: 'runs/mine' },
 *   { onEval: (e) => console.log(`update ${e.step}: perplexity ${e.perplexity}`) },
 * );
 * ```
 */
export async function train(config: TrainConfigInput = {}, options: TrainRunOptions = {}): Promise<TrainSummary> {
  const { cfg, runDir } = runConfig(config, options);
  const { onMetric, onEval, onRestart, onPhase } = options;
  return runTraining({
    config: cfg,
    runDir,
    resume: options.resume ?? false,
    warmStartFrom: options.warmStartFrom === undefined ? undefined : resolve(options.warmStartFrom),
    log: options.log,
    force: options.force,
    hooks: { onMetric, onEval, onRestart, onPhase },
    rankHook: makeRankHook(cfg.rank_sample),
  });
}
