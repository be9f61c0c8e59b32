/**
 * HTML reports of training runs, rebuilt from a run folder's files alone (metrics.jsonl,
 * config.json, summary.json). The charts are Vega-Lite specs rendered to SVG here, in Node, and
 * inlined into the page, so a report opens offline with no scripts; each chart is also written
 * as its own SVG file under plots/.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { readMetrics, type EvalRecord, type RankRecord, type RestartRecord, type TrainRecord } from './metrics.ts';

// ─── Reading a run folder ────────────────────────────────────────────────────────────────────

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

// ─── Chart data ──────────────────────────────────────────────────────────────────────────────

interface Point {
  x: number;
  y: number;
}

/** (x, y) pairs of the records whose y is a finite number (NaN is written to JSON as null). */
function pointsOf<T>(records: readonly T[], x: (r: T) => unknown, y: (r: T) => unknown): Point[] {
  const out: Point[] = [];
  for (const r of records) {
    const xv = x(r);
    const yv = y(r);
    if (typeof xv === 'number' && Number.isFinite(xv) && typeof yv === 'number' && Number.isFinite(yv)) out.push({ x: xv, y: yv });
  }
  return out;
}

/** Most points one series contributes to a chart; beyond it the SVG grows without showing more. */
const MAX_POINTS = 2000;

/**
 * Fewer points for long series: each bucket keeps its lowest and highest point, in x order, so
 * spikes (a loss jump, the learning rate's drop at a restart) survive where a mean would hide them.
 */
export function thin(points: readonly Point[], max = MAX_POINTS): Point[] {
  if (points.length <= max) return [...points];
  const buckets = Math.floor(max / 2);
  const out: Point[] = [];
  for (let b = 0; b < buckets; b++) {
    const from = Math.floor((b * points.length) / buckets);
    const to = Math.floor(((b + 1) * points.length) / buckets);
    let lo = from;
    let hi = from;
    for (let i = from; i < to; i++) {
      if (points[i].y < points[lo].y) lo = i;
      if (points[i].y > points[hi].y) hi = i;
    }
    out.push(points[Math.min(lo, hi)]);
    if (lo !== hi) out.push(points[Math.max(lo, hi)]);
  }
  return out;
}

// ─── Rendering ───────────────────────────────────────────────────────────────────────────────

const RESTART_COLOR = '#b22222';
const REFERENCE_COLOR = '#555555';
const WIDTH = 640;
const HEIGHT = 260;

/** One entry of a layered spec's `layer` list. */
type Layer = Extract<TopLevelSpec, { layer: unknown }>['layer'][number];

/** One coloured series per name; `markers` adds a dot at each point. */
interface SeriesSpec {
  name: string;
  points: Point[];
  markers?: boolean;
  /** Drawn as a dashed step line (for bounds) instead of a solid one. */
  dashed?: boolean;
  /** A fixed colour; series without one take the next of the default palette. */
  color?: string;
}

/** Vega's default categorical palette (tableau10). */
const PALETTE = ['#4c78a8', '#f58518', '#e45756', '#72b7b2', '#54a24b', '#eeca3b', '#b279a2', '#ff9da6', '#9d755d', '#bab0ac'];

interface ChartOptions {
  title: string;
  subtitle?: string;
  xTitle: string;
  yTitle: string;
  series: SeriesSpec[];
  /** x positions of dashed vertical rules (ReLoRA restarts). */
  vRules?: number[];
  /** Labelled horizontal reference lines. */
  hRules?: { y: number; label: string }[];
  /** Labelled vertical reference lines drawn in the reference colour. */
  vRefs?: { x: number; label: string }[];
  /** Extra layers drawn under the series (e.g. a min–max band). */
  underlays?: Layer[];
  yLog?: boolean;
  /** Start the y axis at 0 (for quantities whose size matters, not only their trend). */
  yZero?: boolean;
  /** Top of the y axis; dashed lines above it are cut off at the frame. */
  yMax?: number;
  xInteger?: boolean;
}

/** Vega-Lite spec of a multi-series line chart with optional restart rules and reference lines. */
export function lineChartSpec(opts: ChartOptions): TopLevelSpec {
  const names = opts.series.map((s) => s.name);
  if (new Set(names).size !== names.length) throw new Error(`chart "${opts.title}": series names must be unique, got ${names.join(', ')}`);
  // Colours follow the full series list, so a run keeps its colour across charts even where
  // another run has no data; empty series get no legend entry.
  let next = 0;
  const colours = opts.series.map((s) => s.color ?? PALETTE[next++ % PALETTE.length]);
  const shown = opts.series.map((s, i) => ({ name: s.name, colour: colours[i], empty: s.points.length === 0 })).filter((s) => !s.empty);
  const colour = {
    field: 'series',
    type: 'nominal' as const,
    scale: { domain: shown.map((s) => s.name), range: shown.map((s) => s.colour) },
    legend: shown.length > 1 ? { title: null, orient: 'bottom' as const, columns: 2, labelLimit: 320 } : null,
  };
  const x = {
    field: 'x',
    type: 'quantitative' as const,
    title: opts.xTitle,
    scale: { zero: false, nice: false },
    axis: opts.xInteger ? { tickMinStep: 1, format: 'd' } : {},
  };
  const y = {
    field: 'y',
    type: 'quantitative' as const,
    title: opts.yTitle,
    scale: opts.yLog ? { type: 'log' as const } : { zero: opts.yZero ?? false, ...(opts.yMax !== undefined ? { domainMax: opts.yMax } : {}) },
    axis: opts.yLog ? { format: '.0e' } : {},
  };
  const rows = (s: SeriesSpec) => s.points.map((p) => ({ ...p, series: s.name }));
  const solid = opts.series.filter((s) => !s.dashed && s.points.length > 0);
  const dashed = opts.series.filter((s) => s.dashed && s.points.length > 0);
  const marked = opts.series.filter((s) => s.markers && s.points.length > 0);
  const layers: Layer[] = [...(opts.underlays ?? [])];
  if (solid.length > 0) {
    layers.push({
      data: { values: solid.flatMap(rows) },
      mark: { type: 'line', strokeWidth: 1.5 },
      encoding: { x, y, color: colour },
    });
  }
  if (dashed.length > 0) {
    layers.push({
      data: { values: dashed.flatMap(rows) },
      mark: { type: 'line', interpolate: 'step-after', strokeDash: [6, 3], strokeWidth: 1.5, clip: opts.yMax !== undefined },
      encoding: { x, y, color: colour },
    });
  }
  if (marked.length > 0) {
    layers.push({
      data: { values: marked.flatMap(rows) },
      mark: { type: 'point', filled: true, size: 36, opacity: 1 },
      encoding: { x, y, color: colour },
    });
  }
  if (opts.vRules && opts.vRules.length > 0) {
    layers.push({
      data: { values: opts.vRules.map((v) => ({ x: v })) },
      mark: { type: 'rule', strokeDash: [4, 4], color: RESTART_COLOR, opacity: 0.8 },
      encoding: { x: { field: 'x', type: 'quantitative' } },
    });
  }
  for (const [axis, refs] of [['y', opts.hRules ?? []], ['x', opts.vRefs ?? []]] as const) {
    if (refs.length === 0) continue;
    const values = refs.map((r) => ({ v: 'y' in r ? r.y : r.x, label: r.label }));
    const enc = { [axis]: { field: 'v', type: 'quantitative' as const } };
    layers.push({
      data: { values },
      layer: [
        { mark: { type: 'rule', color: REFERENCE_COLOR, strokeWidth: 1 }, encoding: enc },
        {
          mark: axis === 'y'
            ? { type: 'text', align: 'left', baseline: 'bottom', dx: 3, dy: -2, x: 0, color: REFERENCE_COLOR, fontSize: 10 }
            : { type: 'text', align: 'left', baseline: 'bottom', dx: 3, dy: -2, y: 'height', color: REFERENCE_COLOR, fontSize: 10 },
          encoding: { ...enc, text: { field: 'label', type: 'nominal' } },
        },
      ],
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: opts.title, subtitle: opts.subtitle, anchor: 'start' },
    width: WIDTH,
    height: HEIGHT,
    layer: layers,
  };
}

/** Renders a spec to an SVG document. Vega is loaded on first use: it is large. */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, vegaLite] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(vegaLite.compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

// ─── The charts of one run ───────────────────────────────────────────────────────────────────

const RESTART_NOTE = 'dashed red lines: ReLoRA restarts (merge + optimizer reset after that update)';

interface Chart {
  /** File name under plots/, without .svg. */
  name: string;
  heading: string;
  caption: string;
  spec: TopLevelSpec;
}

function restartSteps(run: RunData): number[] {
  return run.restarts.map((r) => r.step);
}

function lossChart(run: RunData): Chart | undefined {
  const train = thin(pointsOf(run.train, (r) => r.step, (r) => r.loss));
  const evals = pointsOf(run.evals, (r) => r.step, (r) => r.eval_loss);
  if (train.length === 0 && evals.length === 0) return undefined;
  const restarts = restartSteps(run);
  return {
    name: 'loss',
    heading: 'Loss',
    caption: 'Training loss of each update and validation loss at each evaluation (dots).' +
      (evals.length === 0 ? ' No evaluations were recorded.' : ''),
    spec: lineChartSpec({
      title: 'Training and validation loss',
      subtitle: restarts.length > 0 ? RESTART_NOTE : undefined,
      xTitle: 'update step',
      yTitle: 'cross-entropy loss (nats/token)',
      series: [
        { name: 'train loss', points: train },
        { name: 'validation loss', points: evals, markers: true },
      ],
      vRules: restarts,
      xInteger: true,
    }),
  };
}

function lrChart(run: RunData): Chart | undefined {
  const lr = thin(pointsOf(run.train, (r) => r.step, (r) => r.lr));
  if (lr.length === 0) return undefined;
  const restarts = restartSteps(run);
  return {
    name: 'lr',
    heading: 'Learning rate',
    caption: restarts.length > 0
      ? 'Learning rate used by each update; each restart begins a new warm-up.'
      : 'Learning rate used by each update (no restarts in this run).',
    spec: lineChartSpec({
      title: 'Learning rate',
      subtitle: restarts.length > 0 ? RESTART_NOTE : undefined,
      xTitle: 'update step',
      yTitle: 'learning rate',
      series: [{ name: 'learning rate', points: lr }],
      vRules: restarts,
      yZero: true,
      xInteger: true,
    }),
  };
}

function throughputChart(run: RunData): Chart | undefined {
  const tps = thin(pointsOf(run.train, (r) => r.step, (r) => r.tokens_per_s));
  if (tps.length === 0) return undefined;
  const restarts = restartSteps(run);
  return {
    name: 'throughput',
    heading: 'Throughput',
    caption: 'Training tokens per second as logged with each update.',
    spec: lineChartSpec({
      title: 'Training throughput',
      subtitle: restarts.length > 0 ? RESTART_NOTE : undefined,
      xTitle: 'update step',
      yTitle: 'tokens / s',
      series: [{ name: 'tokens/s', points: tps }],
      vRules: restarts,
      yZero: true,
      xInteger: true,
    }),
  };
}

/** Above this many modules the rank chart shows their mean and range instead of one line each. */
const MAX_RANK_LINES = 8;

function rankChart(run: RunData): Chart | undefined {
  const ranks = run.ranks.filter((r) => typeof r.rank === 'number' && Number.isFinite(r.rank));
  if (ranks.length === 0) return undefined;
  const modules = [...new Set(ranks.map((r) => r.module))];
  const steps = [...new Set(ranks.map((r) => r.step))].sort((a, b) => a - b);
  const series: SeriesSpec[] = [];
  const underlays: Layer[] = [];
  if (modules.length <= MAX_RANK_LINES) {
    for (const m of modules) {
      series.push({ name: m, points: pointsOf(ranks.filter((r) => r.module === m), (r) => r.step, (r) => r.rank), markers: true });
    }
  } else {
    const band = steps.map((step) => {
      const at = ranks.filter((r) => r.step === step).map((r) => r.rank);
      return { x: step, lo: Math.min(...at), hi: Math.max(...at), mean: at.reduce((a, b) => a + b, 0) / at.length };
    });
    underlays.push({
      data: { values: band },
      mark: { type: 'area', opacity: 0.25, color: '#4c78a8' },
      encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
    });
    series.push({ name: `mean of ${modules.length} modules (band: min–max)`, points: band.map((b) => ({ x: b.x, y: b.mean })), markers: true });
  }
  // Right after merge k, W − W(warm start) is a sum of k rank-r updates, so its rank is at most
  // k·r. A record taken elsewhere (the end of the run) also holds the live LoRA product: (k+1)·r.
  // The matrix's own size caps it too, but records keep only the largest singular values, so the
  // size is unknown here; the bound is cut off at the top of the chart instead.
  const mergeSteps = new Set(restartSteps(run));
  const bound = steps.map((step) => {
    const at = ranks.filter((r) => r.step === step);
    const k = Math.max(...at.map((r) => r.merges ?? 0)) + (mergeSteps.has(step) ? 0 : 1);
    return { x: step, y: k * Math.max(...at.map((r) => r.lora_rank ?? 0)) };
  });
  if (bound.some((b) => b.y > 0)) series.push({ name: 'upper bound: merged LoRA updates × r', points: bound, dashed: true, color: REFERENCE_COLOR });
  const loraRanks = [...new Set(ranks.map((r) => r.lora_rank).filter((r) => typeof r === 'number' && r > 0))];
  const top = Math.max(...ranks.map((r) => r.rank), ...loraRanks);
  return {
    name: 'rank-growth',
    heading: 'Rank of the accumulated update',
    caption: 'Number of singular values of W − W(warm start) above 1% of the largest, at each merge and at the end. ' +
      'ReLoRA\u2019s claim is that this grows past the LoRA rank r (solid grey line) as merges accumulate.',
    spec: lineChartSpec({
      title: 'Rank of W − W(warm start)',
      subtitle: 'singular values above 1% of the largest',
      xTitle: 'update step',
      yTitle: 'rank',
      series,
      underlays,
      hRules: loraRanks.map((r) => ({ y: r, label: `LoRA rank r = ${r}` })),
      yZero: true,
      yMax: Math.ceil(top * 1.25),
      xInteger: true,
    }),
  };
}

/** Up to `n` items spread evenly over the list, first and last included. */
function spread<T>(items: readonly T[], n: number): T[] {
  if (items.length <= n) return [...items];
  return Array.from({ length: n }, (_, i) => items[Math.round((i * (items.length - 1)) / (n - 1))]);
}

const SPECTRA_MODULES = 4;

function spectraChart(run: RunData): Chart | undefined {
  if (run.ranks.length === 0) return undefined;
  const lastStep = run.ranks[run.ranks.length - 1].step;
  const final = run.ranks.filter((r) => r.step === lastStep);
  // σ/σ₁ puts every module's 1% rank threshold on one line; zeros cannot sit on a log axis.
  const usable = final
    .map((r) => {
      const sv = r.singular_values.filter((v): v is number => typeof v === 'number' && Number.isFinite(v));
      const top = Math.max(0, ...sv);
      return { r, points: top > 0 ? sv.map((v, i) => ({ x: i + 1, y: v / top })).filter((p) => p.y > 0) : [] };
    })
    .filter((u) => u.points.length > 0);
  if (usable.length === 0) return undefined;
  const chosen = spread(usable, SPECTRA_MODULES);
  const loraRanks = [...new Set(chosen.map((u) => u.r.lora_rank).filter((r) => typeof r === 'number' && r > 0))];
  return {
    name: 'spectra',
    heading: 'Singular-value spectra',
    caption: `Singular values of W − W(warm start) at update ${lastStep} (merge ${final[0].merges ?? '?'}), divided by the largest, ` +
      `for ${chosen.length} of ${final.length} modules. Values right of the r line and above the 1% line are rank the LoRA factors alone could not hold.`,
    spec: lineChartSpec({
      title: `Singular-value spectra at update ${lastStep}`,
      xTitle: 'index i (largest first)',
      yTitle: 'σᵢ / σ₁ (log scale)',
      series: chosen.map((u) => ({ name: u.r.module, points: u.points })),
      hRules: [{ y: 0.01, label: '1% of the largest (rank threshold)' }],
      vRefs: loraRanks.map((r) => ({ x: r, label: `r = ${r}` })),
      yLog: true,
      xInteger: true,
    }),
  };
}

// ─── HTML ────────────────────────────────────────────────────────────────────────────────────

export function escapeHtml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** Nested objects become dotted keys so that a config reads as one flat table. */
export function flatten(obj: Record<string, unknown>, prefix = ''): [string, unknown][] {
  const out: [string, unknown][] = [];
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length > 0) {
      out.push(...flatten(v as Record<string, unknown>, key));
    } else {
      out.push([key, v]);
    }
  }
  return out;
}

function formatValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(6)));
  if (v === undefined) return '—';
  return JSON.stringify(v);
}

function table(head: string[], rows: unknown[][], cls = ''): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escapeHtml(formatValue(c))}</td>`).join('')}</tr>`).join('\n');
  return `<table${cls ? ` class="${cls}"` : ''}><thead><tr>${th}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function keyValueTable(obj: Record<string, unknown> | undefined, missing: string): string {
  if (obj === undefined) return `<p class="note">${escapeHtml(missing)}</p>`;
  const rows = flatten(obj);
  if (rows.length === 0) return '<p class="note">(empty)</p>';
  return table(['key', 'value'], rows, 'kv');
}

/**
 * Vega numbers its clip paths and gradients from 1 in every SVG; inlined side by side those ids
 * would collide and one chart would clip to another's rectangle.
 */
export function scopeIds(svg: string, scope: string): string {
  return svg.replace(/\bid="([^"]+)"/g, `id="${scope}-$1"`).replace(/url\(#([^)]+)\)/g, `url(#${scope}-$1)`);
}

const STYLE = `
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; max-width: 960px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta, .note, figcaption { color: #666; }
figure { margin: 1em 0; }
figure svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
td { font-variant-numeric: tabular-nums; }
table.kv td:first-child { font-family: ui-monospace, monospace; }
table.kv td:last-child { word-break: break-word; }
code { font-family: ui-monospace, monospace; }
`;

function page(title: string, subtitle: string, sections: string[]): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<h1>${escapeHtml(title)}</h1>
<p class="meta">${subtitle}</p>
${sections.join('\n')}
</body>
</html>
`;
}

/** Renders each chart, writes plots/<name>.svg, and returns the figure sections of the page. */
async function renderCharts(outDir: string, charts: Chart[]): Promise<{ sections: string[]; plots: string[] }> {
  const plotDir = join(outDir, 'plots');
  await mkdir(plotDir, { recursive: true });
  const sections: string[] = [];
  const plots: string[] = [];
  for (const c of charts) {
    const svg = await renderSvg(c.spec);
    const file = join(plotDir, `${c.name}.svg`);
    await writeFile(file, svg);
    plots.push(file);
    sections.push(
      `<h2>${escapeHtml(c.heading)}</h2>\n<figure id="${c.name}">${scopeIds(svg, c.name)}\n` +
        `<figcaption>${escapeHtml(c.caption)} (<a href="plots/${c.name}.svg">SVG</a>)</figcaption></figure>`,
    );
  }
  return { sections, plots };
}

function last<T>(xs: readonly T[]): T | undefined {
  return xs[xs.length - 1];
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Figures every run has, taken from metrics.jsonl (summary.json, when present, is shown as is). */
export function glance(run: RunData): [string, unknown][] {
  const t = last(run.train);
  const bestEval = run.evals.reduce<EvalRecord | undefined>(
    (best, e) => (Number.isFinite(e.eval_loss) && (best === undefined || e.eval_loss < best.eval_loss) ? e : best), undefined);
  const e = last(run.evals);
  const rows: [string, unknown][] = [
    ['updates', t?.step],
    ['phase at the end', t?.phase],
    ['training tokens', t?.tokens],
    ['elapsed (s)', t?.elapsed],
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

const noChart = (heading: string, why: string) => `<h2>${escapeHtml(heading)}</h2>\n<p class="note">${escapeHtml(why)}</p>`;

export interface ReportFiles {
  /** Path of the HTML file written. */
  html: string;
  /** Paths of the SVG files written, one per chart. */
  plots: string[];
}

/**
 * Writes RUN_DIR/report.html and RUN_DIR/plots/*.svg from the run folder's files. Charts with no
 * data (no train records yet, a full-rank run without rank records) are replaced by a note.
 */
export async function writeRunReport(runDir: string): Promise<ReportFiles> {
  const run = await loadRun(runDir);
  const charts = [lossChart(run), lrChart(run), throughputChart(run), rankChart(run), spectraChart(run)];
  const rendered = await renderCharts(runDir, charts.filter((c): c is Chart => c !== undefined));
  const sections = [
    '<h2>At a glance</h2>',
    table(['', 'value'], glance(run), 'kv'),
    '<h2>Summary</h2>',
    keyValueTable(run.summary, 'This run has no summary.json (it may still be running or have stopped early).'),
  ];
  if (run.train.length === 0) sections.push(noChart('Training curves', 'metrics.jsonl has no train records yet.'));
  let i = 0;
  for (const c of charts) {
    if (c === undefined) continue;
    sections.push(rendered.sections[i++]);
    if (c.name === 'rank-growth') sections.push(rankTable(run));
  }
  if (run.ranks.length === 0) {
    sections.push(noChart('Rank of the accumulated update', 'No rank records in metrics.jsonl (a full-rank run, or one that has not merged yet).'));
  }
  sections.push('<h2>Configuration</h2>', keyValueTable(run.config, 'This run folder has no config.json.'));
  const name = basename(resolve(runDir));
  const html = page(`ReLoRA run report: ${name}`,
    `Run folder <code>${escapeHtml(resolve(runDir))}</code> · generated ${escapeHtml(new Date().toISOString())}`, sections);
  const file = join(runDir, 'report.html');
  await writeFile(file, html);
  return { html: file, plots: rendered.plots };
}

// ─── Comparison of several runs ──────────────────────────────────────────────────────────────

export interface ComparedRun {
  label: string;
  dir: string;
}

/**
 * Writes OUT_DIR/comparison.html and OUT_DIR/plots/compare-*.svg: the runs' validation and
 * training loss curves overlaid (one colour per run) and a table of their summaries.
 */
export async function writeComparisonReport(outDir: string, runs: readonly ComparedRun[]): Promise<ReportFiles> {
  if (runs.length === 0) throw new Error('comparison report: no runs given');
  const labels = runs.map((r) => r.label);
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup !== undefined) throw new Error(`comparison report: run label "${dup}" is used twice; labels must be unique`);
  const data = await Promise.all(runs.map((r) => loadRun(r.dir)));

  const charts: Chart[] = [];
  const val = runs.map((r, i) => ({ name: r.label, points: pointsOf(data[i].evals, (e) => e.step, (e) => e.eval_loss), markers: true }));
  if (val.some((s) => s.points.length > 0)) {
    charts.push({
      name: 'compare-val-loss',
      heading: 'Validation loss',
      caption: 'Validation loss at each evaluation, one colour per run.',
      spec: lineChartSpec({ title: 'Validation loss', xTitle: 'update step', yTitle: 'cross-entropy loss (nats/token)', series: val, xInteger: true }),
    });
  }
  const train = runs.map((r, i) => ({ name: r.label, points: thin(pointsOf(data[i].train, (t) => t.step, (t) => t.loss)) }));
  if (train.some((s) => s.points.length > 0)) {
    charts.push({
      name: 'compare-train-loss',
      heading: 'Training loss',
      caption: 'Training loss of each update, one colour per run.',
      spec: lineChartSpec({ title: 'Training loss', xTitle: 'update step', yTitle: 'cross-entropy loss (nats/token)', series: train, xInteger: true }),
    });
  }
  const rendered = await renderCharts(outDir, charts);

  // Rows: the figures from metrics.jsonl, then every key any summary.json has.
  const glances = data.map((d) => new Map(glance(d)));
  const summaries = data.map((d) => new Map(flatten(d.summary ?? {})));
  const keysOf = (maps: Map<string, unknown>[]) => [...new Set(maps.flatMap((m) => [...m.keys()]))];
  const rows = [
    ...keysOf(glances).map((key) => [key, ...glances.map((g) => g.get(key))]),
    ...keysOf(summaries).map((key) => [`summary: ${key}`, ...summaries.map((s) => s.get(key))]),
  ];
  const runTable = table(['run', ...labels], [['folder', ...runs.map((r) => resolve(r.dir))], ...rows]);
  const sections = [
    '<h2>Runs</h2>',
    runTable,
    ...(val.every((s) => s.points.length === 0) ? [noChart('Validation loss', 'None of the runs has evaluations yet.')] : []),
    ...rendered.sections,
  ];
  const html = page(`ReLoRA comparison: ${labels.join(' vs ')}`,
    `${runs.length} runs · generated ${escapeHtml(new Date().toISOString())}`, sections);
  await mkdir(outDir, { recursive: true });
  const file = join(outDir, 'comparison.html');
  await writeFile(file, html);
  return { html: file, plots: rendered.plots };
}
