/**
 * What data-parallel training communicates, predicted for clusters this machine is not: each
 * update all-reduces the trainable gradients (float32), and a ring all-reduce over N nodes sends
 * and receives 2(N−1)/N of those bytes per node, so at a link bandwidth B it takes at least
 * 2(N−1)/N · bytes / B (latency and overlap with backward left out). Full-rank training sends
 * every weight's gradient; ReLoRA (Lialin et al., ICLR 2024) only the LoRA factors, embeddings,
 * norms and head.
 */
import { NAMED_CONFIGS, namedConfig } from '../nn/config.ts';
import { trainingFootprint } from '../relora/accounting.ts';
import type { WrapOptions } from '../relora/wrap.ts';
import { allReduceBytesPerUpdate } from '../parallel/gradients.ts';
import { formatTable } from './table.ts';

/** Seconds a ring all-reduce of `bytes` takes over `nodes` nodes linked at `gbitPerS`. */
export function ringAllReduceSeconds(bytes: number, nodes: number, gbitPerS: number): number {
  return (2 * (nodes - 1) / nodes) * bytes / (gbitPerS * 1e9 / 8);
}

export interface PredictedRow {
  model: string;
  fullBytes: number;
  reloraBytes: number;
  /** Seconds per update, [nodes][bandwidth] in the order given. */
  full: number[][];
  relora: number[][];
}

/** The named configs up to `largest` (in size order), their bytes per update and the predicted seconds. */
export function predictCommunication(lora: WrapOptions, nodes: number[], gbits: number[], largest = 'llama_1b'): PredictedRow[] {
  const names = Object.keys(NAMED_CONFIGS);
  return names.slice(0, names.indexOf(largest) + 1).map((model) => {
    const shape = namedConfig(model);
    const fullBytes = allReduceBytesPerUpdate(trainingFootprint(shape, 'full', lora).params_trainable);
    const reloraBytes = allReduceBytesPerUpdate(trainingFootprint(shape, 'relora', lora).params_trainable);
    const grid = (bytes: number): number[][] => nodes.map((n) => gbits.map((g) => ringAllReduceSeconds(bytes, n, g)));
    return { model, fullBytes, reloraBytes, full: grid(fullBytes), relora: grid(reloraBytes) };
  });
}

function ms(seconds: number): string {
  const v = seconds * 1000;
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

/** One row per model: bytes, then "full / relora" milliseconds per update for each nodes × bandwidth. */
export function predictionTable(rows: PredictedRow[], nodes: number[], gbits: number[], markdown = false): string {
  const headers = ['model', 'full MiB', 'relora MiB', ...nodes.flatMap((n) => gbits.map((g) => `${n} nodes ${g} Gb/s`))];
  const body = rows.map((r) => [
    r.model, (r.fullBytes / 2 ** 20).toFixed(1), (r.reloraBytes / 2 ** 20).toFixed(1),
    ...nodes.flatMap((_, i) => gbits.map((_g, j) => `${ms(r.full[i][j])} / ${ms(r.relora[i][j])}`)),
  ]);
  return formatTable(headers, body, markdown);
}
