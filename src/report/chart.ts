/**
 * The one chart template and the one SVG renderer. Every chart — the run report's, the
 * comparison's, `relora schedule --plot` — is a line chart over x built by `lineChartSpec` (a
 * Vega-Lite spec) and drawn to SVG by `renderSvg` (Vega, headless, in Node), so they share
 * colours, sizes, restart rules and reference lines.
 */
import type { TopLevelSpec } from 'vega-lite';

export interface Point {
  x: number;
  y: number;
}

/** (x, y) pairs of the records whose y is a finite number (NaN is written to JSON as null). */
export function pointsOf<T>(records: readonly T[], x: (r: T) => unknown, y: (r: T) => unknown): Point[] {
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

/** Throws, naming `where` and the index, unless `values` is a non-empty series of finite numbers. */
export function checkSeries(values: ArrayLike<number>, where: string): void {
  if (values.length === 0) throw new Error(`${where}: series is empty`);
  for (let i = 0; i < values.length; i++) {
    if (!Number.isFinite(values[i])) throw new Error(`${where}: series value at index ${i} is ${values[i]}, expected a finite number`);
  }
}

/** Colour of the dashed rules that mark ReLoRA restarts (Vega's "firebrick"). */
export const RESTART_COLOR = '#b22222';
/** Colour of labelled reference lines and bounds. */
export const REFERENCE_COLOR = '#555555';
const WIDTH = 640;
const HEIGHT = 260;

/** One entry of a layered spec's `layer` list. */
export type Layer = Extract<TopLevelSpec, { layer: unknown }>['layer'][number];

/** One coloured series per name; `markers` adds a dot at each point. */
export interface SeriesSpec {
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

export interface ChartOptions {
  title: string;
  subtitle?: string;
  xTitle: string;
  yTitle: string;
  series: SeriesSpec[];
  /** x positions of dashed vertical rules (ReLoRA restarts). */
  vRules?: readonly number[];
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
  const seriesLayer = (which: SeriesSpec[], mark: Extract<Layer, { mark: unknown }>['mark']): Layer[] =>
    which.length === 0 ? [] : [{ data: { values: which.flatMap(rows) }, mark, encoding: { x, y, color: colour } }];
  const drawn = opts.series.filter((s) => s.points.length > 0);
  const layers: Layer[] = [
    ...(opts.underlays ?? []),
    ...seriesLayer(drawn.filter((s) => !s.dashed), { type: 'line', strokeWidth: 1.5 }),
    ...seriesLayer(drawn.filter((s) => s.dashed),
      { type: 'line', interpolate: 'step-after', strokeDash: [6, 3], strokeWidth: 1.5, clip: opts.yMax !== undefined }),
    ...seriesLayer(drawn.filter((s) => s.markers), { type: 'point', filled: true, size: 36, opacity: 1 }),
  ];
  if (opts.vRules && opts.vRules.length > 0) {
    layers.push({
      data: { values: opts.vRules.map((v) => ({ x: v })) },
      mark: { type: 'rule', strokeDash: [4, 4], color: RESTART_COLOR, opacity: 0.8 },
      encoding: { x: { field: 'x', type: 'quantitative' } },
    });
  }
  for (const [axis, refs] of [['y', opts.hRules ?? []], ['x', opts.vRefs ?? []]] as const) {
    if (refs.length > 0) layers.push(referenceLines(axis, refs.map((r) => ({ v: 'y' in r ? r.y : r.x, label: r.label }))));
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: opts.title, subtitle: opts.subtitle, anchor: 'start' },
    width: WIDTH,
    height: HEIGHT,
    layer: layers,
  };
}

/** Labelled rules across the chart at the given x (vertical) or y (horizontal) values. */
function referenceLines(axis: 'x' | 'y', values: { v: number; label: string }[]): Layer {
  const enc = { [axis]: { field: 'v', type: 'quantitative' as const } };
  // Horizontal labels sit at the left end of their line, vertical ones at its foot.
  const at = axis === 'y' ? { x: 0 } : { y: 'height' as const };
  return {
    data: { values },
    layer: [
      { mark: { type: 'rule', color: REFERENCE_COLOR, strokeWidth: 1 }, encoding: enc },
      {
        mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 3, dy: -2, ...at, color: REFERENCE_COLOR, fontSize: 10 },
        encoding: { ...enc, text: { field: 'label', type: 'nominal' } },
      },
    ],
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

export interface SvgChartOptions {
  title?: string;
  xTitle?: string;
  yTitle?: string;
  /** x positions (not indices) of dashed vertical rules. */
  markers?: readonly number[];
  /** What the dashed rules mean; shown as the subtitle. */
  markerLabel?: string;
  /** x value of index 0 (default 0). */
  xStart?: number;
}

/** One series of values at x = xStart, xStart + 1, … as an SVG document, from the same template. */
export async function svgLineChart(values: ArrayLike<number>, opts: SvgChartOptions = {}): Promise<string> {
  checkSeries(values, 'SVG chart');
  const xStart = opts.xStart ?? 0;
  const yTitle = opts.yTitle ?? 'y';
  const markers = opts.markers ?? [];
  return renderSvg(lineChartSpec({
    title: opts.title ?? '',
    subtitle: markers.length > 0 && opts.markerLabel !== undefined ? `dashed lines: ${opts.markerLabel}` : undefined,
    xTitle: opts.xTitle ?? 'x',
    yTitle,
    series: [{ name: yTitle, points: thin(Array.from(values, (y, i) => ({ x: xStart + i, y }))) }],
    vRules: markers,
    xInteger: Number.isInteger(xStart),
  }));
}
