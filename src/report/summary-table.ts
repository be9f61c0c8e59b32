/**
 * The one summary table of a run: the figures every run has, read from metrics.jsonl, followed
 * by what summary.json adds (written when a run ends). Bytes and durations are in human units.
 */
import type { EvalRecord } from '../train/metrics.ts';
import { flatten, formatValue } from './html.ts';
import { pointsOf } from './chart.ts';
import type { RunData } from './run-data.ts';
import { formatBytes, formatDuration } from '../train/units.ts';

/** One row: what it is, its value, and whether it came from summary.json. */
export interface SummaryRow {
  label: string;
  value: unknown;
  fromSummary: boolean;
}

/** summary.json keys that repeat a row from metrics.jsonl: shown once, where metrics.jsonl has it. */
const SAME_AS: Record<string, string> = {
  steps: 'updates',
  tokens: 'training tokens',
  elapsed_s: 'elapsed',
  merges: 'merges / optimizer resets',
  resets: 'merges / optimizer resets',
  skipped_updates: 'skipped updates (non-finite)',
};

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** A summary.json value in human units where its key names the unit (`…_bytes`, `…_s`). */
function inUnits(key: string, v: unknown): unknown {
  if (typeof v !== 'number') return v;
  if (/_bytes$/.test(key)) return formatBytes(v);
  if (/_s$/.test(key) && !/_per_s$/.test(key)) return formatDuration(v);
  return v;
}

/** Figures from metrics.jsonl, so a run that is still going (no summary.json yet) has them too. */
function fromMetrics(run: RunData): [string, unknown][] {
  const t = run.train[run.train.length - 1];
  const e = run.evals[run.evals.length - 1];
  const bestEval = run.evals.reduce<EvalRecord | undefined>(
    (best, r) => (Number.isFinite(r.eval_loss) && (best === undefined || r.eval_loss < best.eval_loss) ? r : best), undefined);
  const rows: [string, unknown][] = [
    ['updates', t?.step],
    ['phase at the end', t?.phase],
    ['training tokens', t?.tokens],
    ['elapsed', t === undefined ? undefined : formatDuration(t.elapsed)],
    ['last train loss', t?.loss],
    ['last validation loss', e ? `${formatValue(e.eval_loss)} (update ${e.step})` : 'no evaluations'],
    ['last validation perplexity', e?.eval_ppl],
    ['best validation loss', bestEval ? `${formatValue(bestEval.eval_loss)} (update ${bestEval.step})` : undefined],
    ['median tokens/s', median(pointsOf(run.train, (r) => r.step, (r) => r.tokens_per_s).map((p) => p.y))],
    ['restarts (merge + reset)', run.restarts.length],
    ['merges / optimizer resets', t ? `${t.merges} / ${t.resets}` : undefined],
  ];
  if (t?.skipped) rows.push(['skipped updates (non-finite)', t.skipped]);
  return rows;
}

/** The rows of the run's summary table, metrics.jsonl's first. */
export function summaryRows(run: RunData): SummaryRow[] {
  const rows: SummaryRow[] = fromMetrics(run).map(([label, value]) => ({ label, value, fromSummary: false }));
  const shown = new Set(rows.filter((r) => r.value !== undefined).map((r) => r.label));
  for (const [key, value] of flatten(run.summary ?? {})) {
    if (!shown.has(SAME_AS[key])) rows.push({ label: key, value: inUnits(key, value), fromSummary: true });
  }
  return rows;
}
