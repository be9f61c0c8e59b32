/**
 * metrics.jsonl: one JSON object per line, appended as training goes. Everything a report plots
 * comes from this file, so a report can be rebuilt from any run folder.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

/** One record per optimizer update. */
export interface TrainRecord {
  type: 'train';
  step: number;
  /** 'full' during full-rank training (incl. the warm start), 'lora' or 'relora' otherwise. */
  phase: 'full' | 'lora' | 'relora';
  loss: number;
  lr: number;
  grad_norm: number;
  /** Training tokens consumed so far (all updates). */
  tokens: number;
  tokens_per_s: number;
  merges: number;
  resets: number;
  /** Seconds since the run started (accumulated across resumes). */
  elapsed: number;
  /** Updates skipped so far because the loss or gradient was not finite. */
  skipped?: number;
}

export interface EvalRecord {
  type: 'eval';
  step: number;
  eval_loss: number;
  eval_ppl: number;
  tokens: number;
  elapsed: number;
}

/** A ReLoRA merge + optimizer reset happened right after update `step`. */
export interface RestartRecord {
  type: 'restart';
  step: number;
  merges: number;
  resets: number;
}

/**
 * Singular values of W − W_at_warm_start for one wrapped matrix, at a merge or at the end.
 * `rank` counts singular values above 1% of the largest; `lora_rank` is r.
 */
export interface RankRecord {
  type: 'rank';
  step: number;
  merges: number;
  module: string;
  rank: number;
  lora_rank: number;
  singular_values: number[];
}

export type MetricRecord = TrainRecord | EvalRecord | RestartRecord | RankRecord;

export class MetricsWriter {
  constructor(readonly path: string) {}

  write(record: MetricRecord): void {
    appendFileSync(this.path, `${JSON.stringify(record)}\n`);
  }
}

/** Read every record; a torn last line (a crash mid-write) is ignored, anything else malformed is an error. */
export function readMetrics(path: string): MetricRecord[] {
  if (!existsSync(path)) throw new Error(`${path}: no metrics file (is this a relora run folder?)`);
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: MetricRecord[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (!line) continue;
    try {
      out.push(JSON.parse(line) as MetricRecord);
    } catch {
      if (i >= lines.length - 2) break;
      throw new Error(`${path}:${i + 1}: not a JSON object`);
    }
  }
  return out;
}
