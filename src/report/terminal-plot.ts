/**
 * A line plot of one series as text, for the terminal (asciichart): no colours, so it survives
 * pipes and logs. Long series are bucketed to the width; markers are dotted vertical lines.
 */
import asciichart from 'asciichart';
import { checkSeries } from './chart.ts';

export type Reduce = 'mean' | 'min' | 'max';

export interface TerminalPlotOptions {
  /** Columns used for data; longer series are bucketed (default 72). */
  width?: number;
  /** Rows of the chart (default 12). */
  height?: number;
  /** How a bucket of several points becomes one column (default mean). */
  reduce?: Reduce;
  /** Indices into the series at which to draw a dotted vertical line. */
  markers?: readonly number[];
  /** x value of index 0, printed under the first column (default 0). */
  xStart?: number;
  /** Fixed y range; defaults to the data's range. */
  min?: number;
  max?: number;
}

const MARKER = '┊';
const AXIS = /[┤┼]/;

function checkCount(name: string, value: number, min: number): void {
  if (!Number.isInteger(value) || value < min) throw new Error(`terminal plot: ${name} must be an integer >= ${min}, got ${value}`);
}

/** Column index of series index i when n points are spread over `cols` columns. */
function columnOf(i: number, n: number, cols: number): number {
  return n <= cols ? i : Math.min(cols - 1, Math.floor((i * cols) / n));
}

function bucket(values: ArrayLike<number>, cols: number, reduce: Reduce): number[] {
  const n = values.length;
  if (n <= cols) return Array.from(values);
  const out: number[] = [];
  for (let c = 0; c < cols; c++) {
    const from = Math.floor((c * n) / cols);
    const to = Math.floor(((c + 1) * n) / cols);
    let acc = reduce === 'min' ? Infinity : reduce === 'max' ? -Infinity : 0;
    for (let i = from; i < to; i++) {
      const v = values[i];
      if (reduce === 'min') acc = Math.min(acc, v);
      else if (reduce === 'max') acc = Math.max(acc, v);
      else acc += v;
    }
    out.push(reduce === 'mean' ? acc / (to - from) : acc);
  }
  return out;
}

/** Renders the series as lines of text (no colours, so it survives pipes and logs). */
export function terminalPlot(values: ArrayLike<number>, opts: TerminalPlotOptions = {}): string {
  checkSeries(values, 'terminal plot');
  const width = opts.width ?? 72;
  const height = opts.height ?? 12;
  checkCount('width', width, 2);
  checkCount('height', height, 2);
  const n = values.length;
  const markers = opts.markers ?? [];
  for (const m of markers) {
    if (!Number.isInteger(m) || m < 0 || m >= n) {
      throw new Error(`terminal plot: marker ${m} is not an index into the series (0 … ${n - 1})`);
    }
  }

  const series = bucket(values, width, opts.reduce ?? 'mean');
  const chart = asciichart.plot(series, {
    height: height - 1,
    min: opts.min,
    max: opts.max,
    format: (x: number) => x.toFixed(2).padStart(7),
  });
  const rows = chart.split('\n');
  // Point j of the plotted series sits j characters right of the y axis.
  const axis = rows[0]!.search(AXIS);
  const columns = new Set(markers.map((m) => columnOf(m, n, series.length)));
  const marked = rows.map((row) => {
    const chars = Array.from(row);
    for (const c of columns) {
      const pos = axis + c;
      while (chars.length <= pos) chars.push(' ');
      if (chars[pos] === ' ') chars[pos] = MARKER;
    }
    return chars.join('').trimEnd();
  });

  const xStart = opts.xStart ?? 0;
  const first = String(xStart);
  const last = String(xStart + n - 1);
  const gap = Math.max(1, series.length - first.length - last.length);
  marked.push(' '.repeat(axis) + first + ' '.repeat(gap) + last);
  return marked.join('\n');
}
