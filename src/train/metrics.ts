/**
 * metrics.jsonl: one JSON object per line, appended as training goes. Everything a report plots
 * comes from this file, so a report can be rebuilt from any run folder.
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { isDiskFull } from './checkpoint.ts';
import { testHook } from './test-hooks.ts';
import type { RankRecord } from '../relora/rank.ts';

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
  /** Data parallel (more than one process): bytes of gradients each process all-reduced in this update. */
  allreduce_bytes?: number;
  /** Data parallel: seconds this update spent communicating (rank 0's). */
  comm_s?: number;
  /** Data parallel: the number of processes. */
  ranks?: number;
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

/** The rank record is defined where ranks are measured, in relora (it sits below train). */
export type { RankRecord } from '../relora/rank.ts';

export type MetricRecord = TrainRecord | EvalRecord | RestartRecord | RankRecord;

export class MetricsWriter {
  constructor(readonly path: string) {}

  /** Append one record; a failed write names the file (and, for a full disk, says so). */
  write(record: MetricRecord): void {
    try {
      testHook('metrics');
      appendFileSync(this.path, `${JSON.stringify(record)}\n`);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const why = isDiskFull(code)
        ? `the disk is full (${code}); free some space, then continue the run with --resume (its last checkpoint is intact)`
        : (e as Error).message;
      throw new Error(`cannot append to ${this.path}: ${why}`, { cause: e });
    }
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
