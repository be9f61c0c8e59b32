/**
 * What `npm run study` and `npm run ablation` share: one `relora train` per run, each in its own
 * process (so peak RSS and wall time are its own), its metrics and summary kept under the
 * results folder, and re-read from there when the same run is asked for again (a study that was
 * stopped goes on where it was).
 */
import { spawn } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { TrainSummary } from '../src/train/trainer.ts';

/** One finished run as read back from its metrics. */
export interface SavedRun {
  summary: TrainSummary;
  /** Rank of W − W_at_warm_start at the last measurement (largest over the measured matrices); null when never measured (full-rank). */
  rank: number | null;
  /** Validation perplexity at each evaluation. */
  evals: { step: number; tokens: number; ppl: number }[];
}

interface MetricLine {
  type: string;
  step?: number;
  tokens?: number;
  eval_ppl?: number;
  rank?: number;
}

const entry = resolve('src/cli/entry.ts');

/** `{"micro_batch": 8}` as `--micro-batch 8`. */
export function configFlags(extra: Record<string, unknown>): string[] {
  return Object.entries(extra).flatMap(([k, v]) => [`--${k.replace(/_/g, '-')}`, Array.isArray(v) ? v.join(',') : String(v)]);
}

function runTrain(id: string, flags: string[], runDir: string, logFile: string): Promise<void> {
  const all = ['train', ...flags, '--save-every', '1000000', '--no-report', '--out', runDir];
  return new Promise((ok, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', entry, ...all], { stdio: ['ignore', 'ignore', 'pipe'] });
    let tail = '';
    child.stderr.on('data', (d: Buffer) => {
      tail = (tail + d.toString()).slice(-4000);
    });
    child.on('error', fail);
    child.on('exit', (code) => {
      writeFileSync(logFile, tail);
      if (code === 0) ok();
      else fail(new Error(`run ${id} failed (exit ${code}); the end of its log is in ${logFile}:\n${tail.slice(-1500)}`));
    });
  });
}

/** Reads a run's saved metrics and summary from `metricsDir`. */
export function readRun(metricsDir: string, id: string): SavedRun {
  const summary = JSON.parse(readFileSync(join(metricsDir, `${id}.summary.json`), 'utf8')) as TrainSummary;
  const records = readFileSync(join(metricsDir, `${id}.jsonl`), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as MetricLine);
  const ranks = records.filter((r) => r.type === 'rank');
  const lastStep = ranks.at(-1)?.step;
  const rank = ranks.length ? Math.max(...ranks.filter((r) => r.step === lastStep).map((r) => r.rank!)) : null;
  const evals = records.filter((r) => r.type === 'eval').map((r) => ({ step: r.step!, tokens: r.tokens!, ppl: r.eval_ppl! }));
  return { summary, rank, evals };
}

/**
 * Trains run `id` with `relora train FLAGS` unless `metricsDir` already holds its summary, and
 * reads it back. The run folder (checkpoints) lives in the temp folder and is removed after.
 */
export async function trainOnce(id: string, flags: string[], metricsDir: string): Promise<SavedRun> {
  if (!existsSync(join(metricsDir, `${id}.summary.json`))) {
    const runDir = join(tmpdir(), 'relora-study', id);
    rmSync(runDir, { recursive: true, force: true });
    process.stderr.write(`${new Date().toISOString()} start ${id}\n`);
    await runTrain(id, flags, runDir, join(metricsDir, `${id}.log`));
    copyFileSync(join(runDir, 'metrics.jsonl'), join(metricsDir, `${id}.jsonl`));
    copyFileSync(join(runDir, 'summary.json'), join(metricsDir, `${id}.summary.json`));
    rmSync(runDir, { recursive: true, force: true });
  }
  const run = readRun(metricsDir, id);
  process.stderr.write(`${new Date().toISOString()} done ${id}: ppl ${run.summary.final_eval_ppl.toFixed(2)}\n`);
  return run;
}

/** Runs `jobs` with at most `parallel` at a time; results in the order of `jobs`. */
export async function inParallel<T>(jobs: (() => Promise<T>)[], parallel: number): Promise<T[]> {
  const results: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      results[i] = await jobs[i]();
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return results;
}

export function list(name: string, text: string): string[] {
  const xs = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (xs.length === 0) throw new Error(`--${name}: expected a comma-separated list, got '${text}'`);
  return xs;
}

export function whole(name: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new Error(`--${name}: expected a whole number, got '${text}'`);
  return Number(text);
}

export function meanStd(xs: number[]): { mean: number; std: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (xs.length - 1)) : NaN;
  return { mean, std };
}
