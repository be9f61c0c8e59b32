/**
 * Reading what a training run left behind: its config, metrics, summary and checkpoints
 * (`loadRun`), and one checkpoint as a ready model with its tokenizer (`loadCheckpoint`).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tokenizer } from '../data/tokenizer.ts';
import { loadCheckpointModel } from '../infer/model-source.ts';
import { listCheckpoints, verifyCheckpoint, type TrainState } from '../train/checkpoint.ts';
import type { TrainConfig } from '../train/config.ts';
import { readMetrics, type MetricRecord } from '../train/metrics.ts';
import { openCheckpoint, readRunConfig, runFile } from '../train/run-folder.ts';
import type { TrainSummary } from '../train/trainer.ts';
import { asPublicModel, type LlamaForCausalLM } from './model.ts';

/** A run folder as {@link loadRun} reads it. */
export interface Run {
  /** The run folder (absolute). */
  dir: string;
  /** The resolved config the run was started with (RUN/config.json). */
  config: TrainConfig;
  /** Every record of RUN/metrics.jsonl: updates, evaluations, restarts, rank measurements. */
  metrics: MetricRecord[];
  /** RUN/summary.json, or null while the run has not finished (or was never resumed to the end). */
  summary: TrainSummary | null;
  /** Checkpoint folders, newest first (absolute paths). */
  checkpoints: string[];
}

/** Reads a run folder written by `train()` or `relora train`. Throws naming the file that is missing or malformed. */
export function loadRun(runDir: string): Run {
  const dir = resolve(runDir);
  const config = readRunConfig(dir);
  const metricsPath = runFile(dir, 'metrics');
  const metrics = existsSync(metricsPath) ? readMetrics(metricsPath) : [];
  const summaryPath = runFile(dir, 'summary');
  let summary: TrainSummary | null = null;
  if (existsSync(summaryPath)) {
    try {
      summary = JSON.parse(readFileSync(summaryPath, 'utf8')) as TrainSummary;
    } catch (e) {
      throw new Error(`${summaryPath}: not valid JSON (${(e as Error).message})`, { cause: e });
    }
  }
  const checkpoints = listCheckpoints(dir).map((name) => join(runFile(dir, 'checkpoints'), name));
  return { dir, config, metrics, summary, checkpoints };
}

/** One checkpoint as {@link loadCheckpoint} returns it. */
export interface Checkpoint {
  /** The checkpoint folder (RUN/checkpoints/step-N). */
  dir: string;
  /** Its run folder. */
  runDir: string;
  /** The model with every LoRA factor merged into its weight: a plain LLaMA, ready to evaluate, sample or save. */
  model: LlamaForCausalLM;
  /** The run's tokenizer (null if the run folder has none). */
  tokenizer: Tokenizer | null;
  /** Where training stood: update, phase, tokens seen, merges, … (state.json). */
  state: TrainState;
}

/** Options of {@link loadCheckpoint}. */
export interface LoadCheckpointOptions {
  /** Told about newer checkpoints that failed verification and were passed over. Default: written to stderr. */
  onWarning?: (message: string) => void;
}

/**
 * Loads a checkpoint — a checkpoint folder, or a run folder for its newest checkpoint that
 * verifies — with its model file and state checked against the checkpoint's manifest.
 */
export async function loadCheckpoint(path: string, options: LoadCheckpointOptions = {}): Promise<Checkpoint> {
  const warn = options.onWarning ?? ((m: string) => process.stderr.write(`warning: ${m}\n`));
  const opened = openCheckpoint(path, (dir) => verifyCheckpoint(dir, ['model.safetensors', 'state.json']), warn);
  const source = await loadCheckpointModel(opened.checkpointDir, warn);
  return { dir: opened.checkpointDir, runDir: opened.runDir, model: asPublicModel(source.model), tokenizer: source.tokenizer, state: opened.value };
}
