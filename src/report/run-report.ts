/**
 * `report.html` of one run, rebuilt from its folder alone: the summary table, the charts (inline,
 * and as plots/*.svg), the rank table and the configuration.
 */
import { writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { escapeHtml, keyValueTable, noChart, note, page, table } from './html.ts';
import { writePlots, type ReportFiles } from './plot-files.ts';
import { runCharts, type Chart } from './run-charts.ts';
import { loadRun, type RunData } from './run-data.ts';
import { summaryRows } from './summary-table.ts';

function rankTable(run: RunData): string {
  if (run.ranks.length === 0) return '';
  const steps = [...new Set(run.ranks.map((r) => r.step))].sort((a, b) => a - b);
  const modules = [...new Set(run.ranks.map((r) => r.module))];
  const at = new Map(run.ranks.map((r) => [`${r.step}\u0000${r.module}`, r]));
  const mergesAt = steps.map((s) => run.ranks.find((r) => r.step === s)?.merges);
  const head = ['module', 'r', ...steps.map((s, i) => `update ${s} (merge ${mergesAt[i] ?? '?'})`)];
  const rows = modules.map((m) => [
    m,
    run.ranks.find((r) => r.module === m)?.lora_rank,
    ...steps.map((s) => at.get(`${s}\u0000${m}`)?.rank),
  ]);
  return `<p>Rank of W − W(warm start) per module:</p>\n${table(head, rows)}`;
}

function summarySection(run: RunData): string[] {
  const rows = summaryRows(run).map((r) => [r.label, r.value]);
  const missing = run.summary === undefined
    ? [note('This run has no summary.json (it may still be running or have stopped early): the figures above come from metrics.jsonl.')]
    : [];
  return ['<h2>Summary</h2>', table(['', 'value'], rows, 'kv'), ...missing];
}

/**
 * Writes RUN_DIR/report.html and RUN_DIR/plots/*.svg from the run folder's files. Charts with no
 * data (no train records yet, a full-rank run without rank records) are replaced by a note.
 */
export async function writeRunReport(runDir: string): Promise<ReportFiles> {
  const run = await loadRun(runDir);
  const charts = runCharts(run).filter((c): c is Chart => c !== undefined);
  const { figures, plots } = await writePlots(runDir, charts);
  const sections = summarySection(run);
  if (run.train.length === 0) sections.push(noChart('Training curves', 'metrics.jsonl has no train records yet.'));
  charts.forEach((c, i) => {
    sections.push(figures[i]);
    if (c.name === 'rank-growth') sections.push(rankTable(run));
  });
  if (run.ranks.length === 0) {
    sections.push(noChart('Rank of the accumulated update', 'No rank records in metrics.jsonl (a full-rank run, or one that has not merged yet).'));
  }
  sections.push('<h2>Configuration</h2>', keyValueTable(run.config, 'This run folder has no config.json.'));
  const html = page(`ReLoRA run report: ${basename(resolve(runDir))}`,
    `Run folder <code>${escapeHtml(resolve(runDir))}</code> · generated ${escapeHtml(new Date().toISOString())}`, sections);
  const file = join(runDir, 'report.html');
  await writeFile(file, html);
  return { html: file, plots };
}
