/**
 * Reading a run folder for a report: metrics.jsonl split by record type, plus config.json and
 * summary.json when the folder has them. Nothing else is needed, so a report can be rebuilt from
 * any run folder, also one whose run is still going or was stopped.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { readMetrics, type EvalRecord, type RankRecord, type RestartRecord, type TrainRecord } from '../train/metrics.ts';

/** A run folder's contents, sorted by step, one record per step (or per step and module). */
export interface RunData {
  dir: string;
  train: TrainRecord[];
  evals: EvalRecord[];
  restarts: RestartRecord[];
  ranks: RankRecord[];
  /** config.json, or undefined when the folder has none. */
  config?: Record<string, unknown>;
  /** summary.json, or undefined when the folder has none. */
  summary?: Record<string, unknown>;
}

async function readJsonObject(path: string): Promise<Record<string, unknown> | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${path}: cannot read: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new Error(`${path}: expected a JSON object, got ${Array.isArray(value) ? 'an array' : JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

/**
 * A resumed run appends again from its checkpoint's step, so a step can occur twice; the later
 * record is the one the final weights descend from.
 */
function lastPerKey<T extends { step: number }>(records: T[], key: (r: T) => string = (r) => String(r.step)): T[] {
  const byKey = new Map<string, T>();
  for (const r of records) {
    byKey.delete(key(r));
    byKey.set(key(r), r);
  }
  return [...byKey.values()].sort((a, b) => a.step - b.step);
}

/** Reads a run folder. Throws when the folder or its metrics.jsonl is missing or malformed. */
export async function loadRun(dir: string): Promise<RunData> {
  let info;
  try {
    info = await stat(dir);
  } catch {
    throw new Error(`${dir}: no such run folder`);
  }
  if (!info.isDirectory()) throw new Error(`${dir}: not a folder (expected a run folder holding metrics.jsonl)`);
  const metricsPath = join(dir, 'metrics.jsonl');
  const records = readMetrics(metricsPath);
  const train: TrainRecord[] = [];
  const evals: EvalRecord[] = [];
  const restarts: RestartRecord[] = [];
  const ranks: RankRecord[] = [];
  records.forEach((r, i) => {
    if (typeof r !== 'object' || r === null) throw new Error(`${metricsPath}: record ${i + 1} is not a JSON object`);
    // Unknown record types are left for newer readers, not an error.
    if (!['train', 'eval', 'restart', 'rank'].includes(r.type)) return;
    if (typeof r.step !== 'number' || !Number.isFinite(r.step)) {
      throw new Error(`${metricsPath}: record ${i + 1} (type "${r.type}") has step ${JSON.stringify(r.step)}, expected a number`);
    }
    if (r.type === 'train') train.push(r);
    else if (r.type === 'eval') evals.push(r);
    else if (r.type === 'restart') restarts.push(r);
    else {
      if (typeof r.module !== 'string' || !Array.isArray(r.singular_values)) {
        throw new Error(`${metricsPath}: rank record ${i + 1} needs "module" (a string) and "singular_values" (an array)`);
      }
      ranks.push(r);
    }
  });
  return {
    dir,
    train: lastPerKey(train),
    evals: lastPerKey(evals),
    restarts: lastPerKey(restarts),
    ranks: lastPerKey(ranks, (r) => `${r.step}\u0000${r.module}`),
    config: await readJsonObject(join(dir, 'config.json')),
    summary: await readJsonObject(join(dir, 'summary.json')),
  };
}
