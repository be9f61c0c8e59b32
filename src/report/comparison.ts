/** `comparison.html` of several runs: their loss curves overlaid and their summaries side by side. */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { escapeHtml, noChart, page, table } from './html.ts';
import { writePlots, type ReportFiles } from './plot-files.ts';
import { comparisonCharts } from './run-charts.ts';
import { loadRun } from './run-data.ts';
import { summaryRows, type SummaryRow } from './summary-table.ts';

export interface ComparedRun {
  label: string;
  dir: string;
}

/**
 * Writes OUT_DIR/comparison.html and OUT_DIR/plots/compare-*.svg: the runs' validation and
 * training loss curves overlaid (one colour per run) and their summary tables as one.
 */
export async function writeComparisonReport(outDir: string, runs: readonly ComparedRun[]): Promise<ReportFiles> {
  if (runs.length === 0) throw new Error('comparison report: no runs given');
  const labels = runs.map((r) => r.label);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup !== undefined) throw new Error(`comparison report: run label "${dup}" is used twice; labels must be unique`);
  const data = await Promise.all(runs.map((r) => loadRun(r.dir)));
  const charts = comparisonCharts(labels, data);
  const { figures, plots } = await writePlots(outDir, charts);

  // One row per figure any run has: metrics.jsonl's first, then summary.json's, marked as such.
  const keyOf = (r: SummaryRow) => (r.fromSummary ? `summary: ${r.label}` : r.label);
  const runRows = data.map(summaryRows);
  const all = runRows.flat();
  const keys = [...new Set([...all.filter((r) => !r.fromSummary), ...all.filter((r) => r.fromSummary)].map(keyOf))];
  const perRun = runRows.map((rs) => new Map(rs.map((r) => [keyOf(r), r.value])));
  const rows = [['folder', ...runs.map((r) => resolve(r.dir))], ...keys.map((k) => [k, ...perRun.map((m) => m.get(k))])];
  const sections = [
    '<h2>Runs</h2>',
    table(['run', ...labels], rows),
    ...(charts.every((c) => c.name !== 'compare-val-loss') ? [noChart('Validation loss', 'None of the runs has evaluations yet.')] : []),
    ...figures,
  ];
  const html = page(`ReLoRA comparison: ${labels.join(' vs ')}`,
    `${runs.length} runs · generated ${escapeHtml(new Date().toISOString())}`, sections);
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, 'comparison.html');
  await writeFile(file, html);
  return { html: file, plots };
}
