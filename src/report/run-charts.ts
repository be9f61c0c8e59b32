/**
 * The charts of one run, each a `lineChartSpec` over update steps: loss, learning rate,
 * throughput, the rank of the accumulated update, and the singular-value spectra at the end.
 * A chart whose data the run lacks is left out (the page says why).
 */
import type { TopLevelSpec } from 'vega-lite';
import { lineChartSpec, pointsOf, REFERENCE_COLOR, thin, type ChartOptions, type Layer, type SeriesSpec } from './chart.ts';
import type { TrainRecord } from '../train/metrics.ts';
import type { RunData } from './run-data.ts';

/** A chart ready to render: its spec plus where and how the page shows it. */
export interface Chart {
  /** File name under plots/, without .svg; also the figure's id on the page. */
  name: string;
  heading: string;
  caption: string;
  spec: TopLevelSpec;
}

const RESTART_NOTE = 'dashed red lines: ReLoRA restarts (merge + optimizer reset after that update)';

/**
 * The template of every chart over update steps: integer x axis and, for a run with restarts,
 * a dashed rule after each restart explained in the subtitle.
 */
function overUpdates(run: RunData, opts: Omit<ChartOptions, 'xTitle'>): TopLevelSpec {
  const restarts = run.restarts.map((r) => r.step);
  return lineChartSpec({
    subtitle: restarts.length > 0 ? RESTART_NOTE : undefined,
    vRules: restarts,
    ...opts,
    xTitle: 'update step',
    xInteger: true,
  });
}

function lossChart(run: RunData): Chart | undefined {
  const train = thin(pointsOf(run.train, (r) => r.step, (r) => r.loss));
  const evals = pointsOf(run.evals, (r) => r.step, (r) => r.eval_loss);
  if (train.length === 0 && evals.length === 0) return undefined;
  return {
    name: 'loss',
    heading: 'Loss',
    caption: 'Training loss of each update and validation loss at each evaluation (dots).' +
      (evals.length === 0 ? ' No evaluations were recorded.' : ''),
    spec: overUpdates(run, {
      title: 'Training and validation loss',
      yTitle: 'cross-entropy loss (nats/token)',
      series: [
        { name: 'train loss', points: train },
        { name: 'validation loss', points: evals, markers: true },
      ],
    }),
  };
}

/** A chart of one figure every train record has, from y = 0 (its size matters, not only its trend). */
function trainFigureChart(
  run: RunData, y: (r: TrainRecord) => number, chart: Omit<Chart, 'spec'> & { title: string; yTitle: string; series: string },
): Chart | undefined {
  const points = thin(pointsOf(run.train, (r) => r.step, y));
  if (points.length === 0) return undefined;
  const { title, yTitle, series, ...shown } = chart;
  return { ...shown, spec: overUpdates(run, { title, yTitle, series: [{ name: series, points }], yZero: true }) };
}

const lrChart = (run: RunData): Chart | undefined => trainFigureChart(run, (r) => r.lr, {
  name: 'lr',
  heading: 'Learning rate',
  caption: run.restarts.length > 0
    ? 'Learning rate used by each update; each restart begins a new warm-up.'
    : 'Learning rate used by each update (no restarts in this run).',
  title: 'Learning rate',
  yTitle: 'learning rate',
  series: 'learning rate',
});

const throughputChart = (run: RunData): Chart | undefined => trainFigureChart(run, (r) => r.tokens_per_s, {
  name: 'throughput',
  heading: 'Throughput',
  caption: 'Training tokens per second as logged with each update.',
  title: 'Training throughput',
  yTitle: 'tokens / s',
  series: 'tokens/s',
});

/** Above this many modules the rank chart shows their mean and range instead of one line each. */
const MAX_RANK_LINES = 8;

/** One line per module, or for many modules their mean with a min–max band under it. */
function rankSeries(ranks: RunData['ranks'], steps: number[]): { series: SeriesSpec[]; underlays: Layer[] } {
  const modules = [...new Set(ranks.map((r) => r.module))];
  if (modules.length <= MAX_RANK_LINES) {
    const series = modules.map((m) => ({ name: m, points: pointsOf(ranks.filter((r) => r.module === m), (r) => r.step, (r) => r.rank), markers: true }));
    return { series, underlays: [] };
  }
  const band = steps.map((step) => {
    const at = ranks.filter((r) => r.step === step).map((r) => r.rank);
    return { x: step, lo: Math.min(...at), hi: Math.max(...at), mean: at.reduce((a, b) => a + b, 0) / at.length };
  });
  return {
    series: [{ name: `mean of ${modules.length} modules (band: min–max)`, points: band.map((b) => ({ x: b.x, y: b.mean })), markers: true }],
    underlays: [{
      data: { values: band },
      mark: { type: 'area', opacity: 0.25, color: '#4c78a8' },
      encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } },
    }],
  };
}

function rankChart(run: RunData): Chart | undefined {
  const ranks = run.ranks.filter((r) => typeof r.rank === 'number' && Number.isFinite(r.rank));
  if (ranks.length === 0) return undefined;
  const steps = [...new Set(ranks.map((r) => r.step))].sort((a, b) => a - b);
  const { series, underlays } = rankSeries(ranks, steps);
  // Right after merge k, W − W(warm start) is a sum of k rank-r updates, so its rank is at most
  // k·r. A record taken elsewhere (the end of the run) also holds the live LoRA product: (k+1)·r.
  // The matrix's own size caps it too, but records keep only the largest singular values, so the
  // size is unknown here; the bound is cut off at the top of the chart instead.
  const mergeSteps = new Set(run.restarts.map((r) => r.step));
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
    // Rank records are taken at the restarts themselves, so the restart rules would only repeat them.
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

/** The run's charts in page order; undefined where the run has no data for one. */
export function runCharts(run: RunData): (Chart | undefined)[] {
  return [lossChart(run), lrChart(run), throughputChart(run), rankChart(run), spectraChart(run)];
}

/** Validation and training loss of several runs overlaid, one colour per run. */
export function comparisonCharts(labels: readonly string[], runs: readonly RunData[]): Chart[] {
  const charts: Chart[] = [];
  const val = runs.map((d, i) => ({ name: labels[i], points: pointsOf(d.evals, (e) => e.step, (e) => e.eval_loss), markers: true }));
  const train = runs.map((d, i) => ({ name: labels[i], points: thin(pointsOf(d.train, (t) => t.step, (t) => t.loss)) }));
  const lossAxes = { xTitle: 'update step', yTitle: 'cross-entropy loss (nats/token)', xInteger: true };
  if (val.some((s) => s.points.length > 0)) {
    charts.push({
      name: 'compare-val-loss',
      heading: 'Validation loss',
      caption: 'Validation loss at each evaluation, one colour per run.',
      spec: lineChartSpec({ title: 'Validation loss', series: val, ...lossAxes }),
    });
  }
  if (train.some((s) => s.points.length > 0)) {
    charts.push({
      name: 'compare-train-loss',
      heading: 'Training loss',
      caption: 'Training loss of each update, one colour per run.',
      spec: lineChartSpec({ title: 'Training loss', series: train, ...lossAxes }),
    });
  }
  return charts;
}
