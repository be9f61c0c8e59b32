/**
 * Partial reset of optimizer moments at a ReLoRA restart (docs/method.md, "Optimizer reset"):
 * the first and second moments of a tensor are pruned in place — at random with a mask of their
 * own each (the reference code), at random with one mask shared by both, by magnitude, or zeroed.
 */
import { RandomStream } from '../engine/rng.ts';

/**
 * `random`: each moment gets its own random mask (the reference code; an entry can keep m while
 * losing v, and its next Adam step is then lr·m̂/ε). `random_shared`: one mask for m and v.
 * `magnitude`: each moment pruned by its own magnitude quantile. `zero`: both moments zeroed.
 */
export type ResetKind =
  | { method: 'random'; ratio: number }
  | { method: 'random_shared'; ratio: number }
  | { method: 'magnitude'; ratio: number }
  | { method: 'zero' };

/** The reference prunes at random with ratio 0.999 rather than zeroing. */
export const DEFAULT_RESET_RATIO = 0.999;

/**
 * Named resets. `reference` (alias `reset`, its older name) is the reference code's behaviour;
 * `shared` keeps the same 0.1% of entries in both moments; `zero` is a true reset.
 */
export const NAMED_RESETS: Readonly<Record<string, ResetKind>> = {
  reference: { method: 'random', ratio: DEFAULT_RESET_RATIO },
  reset: { method: 'random', ratio: DEFAULT_RESET_RATIO },
  shared: { method: 'random_shared', ratio: DEFAULT_RESET_RATIO },
  zero: { method: 'zero' },
};

const DECIMAL = /^[+]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Parses `reference` (or `reset`), `shared`, `zero`, `random:p`, `shared:p` or `magnitude:p`
 * with p in [0, 1).
 */
export function parseResetKind(s: string): ResetKind {
  const text = s.trim();
  const named = Object.hasOwn(NAMED_RESETS, text) ? NAMED_RESETS[text] : undefined;
  if (named) return { ...named };
  const m = /^(random|shared|magnitude):(.*)$/.exec(text);
  if (!m) {
    throw new Error(`optimizer reset: expected 'reference', 'shared', 'zero', 'random:p', 'shared:p' or 'magnitude:p' with p in [0, 1) ('reset' = 'reference'), got '${s}'`);
  }
  const method = m[1] === 'shared' ? 'random_shared' : (m[1] as 'random' | 'magnitude');
  const ratioText = m[2]!.trim();
  const ratio = DECIMAL.test(ratioText) ? Number(ratioText) : NaN;
  if (!(ratio >= 0 && ratio < 1)) {
    throw new Error(`optimizer reset: ratio p in '${s}' must be a number in [0, 1), got '${ratioText}'`);
  }
  return { method, ratio };
}

export function formatResetKind(kind: ResetKind): string {
  if (kind.method === 'zero') return 'zero';
  return `${kind.method === 'random_shared' ? 'shared' : kind.method}:${kind.ratio}`;
}

/**
 * Resets one tensor's Adam moments in place. `random` draws a mask for m, then one for v (two
 * `rng.uniform` calls, as the reference does); `random_shared` draws one mask and applies it to
 * both; `zero` draws nothing. Returns the entries of m and v set to zero together.
 */
export function resetMomentsInPlace(m: Float32Array, v: Float32Array, kind: ResetKind, rng: RandomStream): number {
  if (m.length !== v.length) throw new Error(`resetMomentsInPlace: m has ${m.length} entries, v has ${v.length}`);
  if (kind.method === 'random_shared') {
    if (!(kind.ratio >= 0 && kind.ratio <= 1)) throw new Error(`resetMomentsInPlace: ratio must be in [0, 1], got ${kind.ratio}`);
    return pruneRandom([m, v], kind.ratio, rng);
  }
  return pruneInPlace(m, kind, rng) + pruneInPlace(v, kind, rng);
}

/**
 * Prunes `x` in place. Random: entry i is kept iff u_i > p with u from one `rng.uniform` draw
 * (so the stream advances by one call, also for an empty tensor). Magnitude: entries with
 * |x| <= quantile(|x|, p) become 0. Returns the number of entries set to zero by this call
 * (entries that were already zero and stay zero count too).
 * Users choose p in [0, 1) (parseResetKind); p = 1 (zero everything: the quantile is the
 * maximum) is accepted here for a full reset, which the stable parity fixture uses.
 */
export function pruneInPlace(x: Float32Array, kind: ResetKind, rng: RandomStream): number {
  if (kind.method === 'zero') {
    x.fill(0);
    return x.length;
  }
  if (!(kind.ratio >= 0 && kind.ratio <= 1)) {
    throw new Error(`pruneInPlace: ratio must be in [0, 1], got ${kind.ratio}`);
  }
  // On a single tensor a shared mask is just a random one.
  if (kind.method === 'random' || kind.method === 'random_shared') return pruneRandom([x], kind.ratio, rng);
  if (kind.method === 'magnitude') return pruneMagnitude(x, kind.ratio);
  throw new Error(`pruneInPlace: unknown method ${String((kind as { method: unknown }).method)}`);
}

/** One uniform draw u over the first tensor's length; entry i of every tensor is kept iff u_i > p. */
function pruneRandom(xs: Float32Array[], p: number, rng: RandomStream): number {
  const u = new Float32Array(xs[0].length);
  rng.uniform(u);
  let zeroed = 0;
  for (const x of xs) {
    for (let i = 0; i < x.length; i++) {
      if (!(u[i] > p)) {
        x[i] = 0;
        zeroed++;
      }
    }
  }
  return zeroed;
}

function pruneMagnitude(x: Float32Array, p: number): number {
  if (x.length === 0) return 0;
  const t = absQuantile(x, p);
  let zeroed = 0;
  for (let i = 0; i < x.length; i++) {
    if (Math.abs(x[i]) <= t) {
      x[i] = 0;
      zeroed++;
    }
  }
  return zeroed;
}

/**
 * quantile(|x|, p) with linear interpolation between order statistics at position p·(n − 1),
 * the default of numpy.quantile and torch.quantile. Computed in float64.
 */
export function absQuantile(x: Float32Array, p: number): number {
  const n = x.length;
  if (n === 0) throw new Error('absQuantile: empty tensor');
  if (!(p >= 0 && p <= 1)) throw new Error(`absQuantile: p must be in [0, 1], got ${p}`);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const v = x[i];
    if (Number.isNaN(v)) throw new Error(`absQuantile: tensor has NaN at index ${i}; cannot prune by magnitude`);
    a[i] = Math.abs(v);
  }
  const pos = p * (n - 1);
  const k = Math.floor(pos);
  const lower = selectKth(a, k);
  if (k + 1 >= n) return lower;
  // After selection everything right of k is >= a[k]; the next order statistic is their minimum.
  let upper = Infinity;
  for (let i = k + 1; i < n; i++) if (a[i] < upper) upper = a[i];
  return lerp(lower, upper, pos - k);
}

/** numpy's lerp: exact at both ends, monotone in g. */
function lerp(a: number, b: number, g: number): number {
  const d = b - a;
  return g >= 0.5 ? b - d * (1 - g) : a + d * g;
}

/**
 * Rearranges `a` so that a[k] holds the k-th smallest value (0-based), smaller-or-equal values
 * left of it and greater-or-equal values right of it; returns a[k]. Quickselect with a
 * median-of-three pivot, expected O(n); after too many rounds it sorts the remaining range,
 * which bounds the worst case by O(n log n).
 */
export function selectKth(a: Float32Array, k: number): number {
  let lo = 0;
  let hi = a.length - 1;
  let budget = 2 * Math.ceil(Math.log2(a.length + 1)) + 8;
  while (hi > lo) {
    if (hi - lo < 16 || budget-- <= 0) {
      a.subarray(lo, hi + 1).sort();
      return a[k];
    }
    const mid = lo + ((hi - lo) >> 1);
    const pivot = medianOf3(a[lo], a[mid], a[hi]);
    // Hoare partition with strict comparisons: runs of equal values (e.g. many exact zeros in
    // freshly reset moments) get split evenly instead of degrading to quadratic time.
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
      if (i <= j) {
        const tmp = a[i];
        a[i] = a[j];
        a[j] = tmp;
        i++;
        j--;
      }
    }
    if (k <= j) hi = j;
    else if (k >= i) lo = i;
    else return a[k]; // j < k < i: a[k] equals the pivot
  }
  return a[k];
}

function medianOf3(x: number, y: number, z: number): number {
  if (x < y) return y < z ? y : x < z ? z : x;
  return x < z ? x : y < z ? z : y;
}
