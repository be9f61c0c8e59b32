/** Summary statistics of repeated timings. */

export interface Spread {
  median: number;
  min: number;
  max: number;
  /** Interquartile range (q3 − q1, linear interpolation between order statistics). */
  iqr: number;
}

function quantile(sorted: number[], p: number): number {
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos), hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

export function spread(xs: readonly number[]): Spread {
  if (xs.length === 0) throw new Error('spread: no samples');
  const s = [...xs].sort((a, b) => a - b);
  return { median: quantile(s, 0.5), min: s[0], max: s[s.length - 1], iqr: quantile(s, 0.75) - quantile(s, 0.25) };
}
