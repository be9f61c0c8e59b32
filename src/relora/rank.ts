/**
 * ReLoRA's central claim, measured (Lialin et al., ReLoRA, ICLR 2024; docs/method.md,
 * "Merge and re-initialisation"): the accumulated update W − W_at_warm_start is
 * a sum of k merged rank-r updates and so can reach rank up to min(k·r, out, in), far above r.
 * `RankTracker` snapshots the sampled wrapped matrices when the low-rank phase starts and, at each
 * merge (or at the end), records the singular values of the effective weight minus that snapshot.
 */
import { singularValues } from '../engine/linalg.ts';
import type { LoraLinear } from './lora-linear.ts';

/**
 * Singular values of W − W_at_warm_start for one wrapped matrix, at a merge or at the end: one
 * line of metrics.jsonl. `rank` counts singular values above 1% of the largest; `lora_rank` is r.
 */
export interface RankRecord {
  type: 'rank';
  step: number;
  merges: number;
  module: string;
  rank: number;
  lora_rank: number;
  singular_values: number[];
}

/** RankRecord.rank counts singular values above this fraction of the largest. */
export const DEFAULT_REL_THRESHOLD = 0.01;
/** Singular values kept per record: enough for the spectra plots, bounded so metrics.jsonl stays small. */
export const MAX_RECORDED_VALUES = 256;
/** Significant digits kept per recorded singular value. */
export const RECORDED_DIGITS = 6;
/** Projections the default sample takes from the first and last decoder layer. */
export const DEFAULT_SAMPLE_PROJECTIONS: readonly string[] = ['q_proj', 'v_proj', 'down_proj'];

export interface UpdateRank {
  /** Singular values above relThreshold·σmax; 0 when the update is zero. */
  rank: number;
  /** All min(outF, inF) singular values of W − W0, descending. */
  singularValues: number[];
}

/** Singular values and numerical rank of W − W0 for row-major [outF, inF] matrices. */
export function updateRank(
  w: Float32Array, w0: Float32Array, outF: number, inF: number, relThreshold = DEFAULT_REL_THRESHOLD,
): UpdateRank {
  if (!Number.isInteger(outF) || outF < 1) throw new Error(`updateRank: outF must be a positive integer, got ${outF}`);
  if (!Number.isInteger(inF) || inF < 1) throw new Error(`updateRank: inF must be a positive integer, got ${inF}`);
  checkThreshold(relThreshold, 'updateRank');
  const size = outF * inF;
  if (w.length !== size) throw new Error(`updateRank: w has ${w.length} entries; expected outF·inF = ${outF}·${inF} = ${size}`);
  if (w0.length !== size) throw new Error(`updateRank: w0 has ${w0.length} entries; expected outF·inF = ${outF}·${inF} = ${size}`);
  // The difference of two float32 values is (nearly always) exact in float64; in float32 the
  // update's small directions would drown in W's rounding.
  const delta = new Float64Array(size);
  for (let i = 0; i < size; i++) delta[i] = w[i] - w0[i];
  const s = Array.from(singularValues(delta, outF, inF));
  return { rank: countAbove(s, relThreshold), singularValues: s };
}

function countAbove(s: number[], relThreshold: number): number {
  const top = s[0];
  if (!(top > 0)) return 0;
  let r = 0;
  while (r < s.length && s[r] > relThreshold * top) r++;
  return r;
}

function checkThreshold(t: number, where: string): void {
  if (!(t > 0 && t < 1)) throw new Error(`${where}: relThreshold must be in (0, 1), got ${t}`);
}

/**
 * The default modules to track: q_proj, v_proj and down_proj of the first and last decoder layer
 * (attention and MLP, square and rectangular, both ends of the network) among `names`; if the
 * wrapped targets include none of those projections, every wrapped module of those two layers.
 * Names without a `layers.<i>.` part are all kept.
 */
export function defaultRankSample(names: Iterable<string>): string[] {
  const all = [...names];
  const layerOf = (name: string): number | undefined => {
    const m = /(?:^|\.)layers\.(\d+)\./.exec(name);
    return m ? Number(m[1]) : undefined;
  };
  const indices = all.map(layerOf).filter((i): i is number => i !== undefined);
  if (indices.length === 0) return all; // not a decoder stack: nothing to sample from
  const ends = new Set([Math.min(...indices), Math.max(...indices)]);
  const atEnds = all.filter((n) => ends.has(layerOf(n) ?? -1));
  const preferred = atEnds.filter((n) => DEFAULT_SAMPLE_PROJECTIONS.includes(n.slice(n.lastIndexOf('.') + 1)));
  const chosen = preferred.length > 0 ? preferred : atEnds;
  return chosen.sort((a, b) => (layerOf(a) ?? 0) - (layerOf(b) ?? 0) || a.localeCompare(b));
}

export interface RankTrackerOptions {
  /** Module names to track, or 'all'; default `defaultRankSample`. */
  modules?: readonly string[] | 'all';
  /** Default DEFAULT_REL_THRESHOLD (1%). */
  relThreshold?: number;
}

/** Rounds to `digits` significant digits (0 stays 0). */
function roundSignificant(x: number, digits: number): number {
  return x === 0 ? 0 : Number(x.toPrecision(digits));
}

export class RankTracker {
  /** Tracked module names, in record order. */
  readonly modules: readonly string[];
  readonly relThreshold: number;
  private readonly layers: Map<string, LoraLinear>;
  private snapshots: Map<string, Float32Array> | null = null;

  constructor(layers: Map<string, LoraLinear>, options: RankTrackerOptions = {}) {
    if (layers.size === 0) throw new Error('RankTracker: the model has no LoRA-wrapped layers to track');
    this.layers = layers;
    this.relThreshold = options.relThreshold ?? DEFAULT_REL_THRESHOLD;
    checkThreshold(this.relThreshold, 'RankTracker');
    const wanted = options.modules ?? defaultRankSample(layers.keys());
    if (wanted === 'all') {
      this.modules = [...layers.keys()];
    } else {
      if (wanted.length === 0) throw new Error(`RankTracker: the module list is empty; give names such as ${[...layers.keys()][0]} or 'all'`);
      for (const name of wanted) {
        if (!layers.has(name)) {
          const known = [...layers.keys()];
          const shown = known.slice(0, 4).join(', ') + (known.length > 4 ? `, … (${known.length} in all)` : '');
          throw new Error(`RankTracker: module "${name}" is not a LoRA-wrapped layer; wrapped layers are ${shown}, or use 'all'`);
        }
      }
      this.modules = [...new Set(wanted)];
    }
  }

  /** Whether start() (or startFrom) has been called. */
  get started(): boolean {
    return this.snapshots !== null;
  }

  /** Take W_at_warm_start: a copy of each tracked layer's current effective weight W + s·B·A. */
  start(): void {
    const snaps = new Map<string, Float32Array>();
    for (const name of this.modules) snaps.set(name, this.layer(name).mergedWeight());
    this.snapshots = snaps;
  }

  /**
   * Use given W_at_warm_start weights (e.g. read back from the warm-start checkpoint on resume).
   * Each must be the [out, in] weight of a tracked module; the arrays are copied.
   */
  startFrom(weights: Map<string, Float32Array>): void {
    const snaps = new Map<string, Float32Array>();
    for (const name of this.modules) {
      const w = weights.get(name);
      if (!w) throw new Error(`RankTracker.startFrom: no warm-start weight given for "${name}"`);
      const l = this.layer(name);
      const size = l.outFeatures * l.inFeatures;
      if (w.length !== size) throw new Error(`RankTracker.startFrom: "${name}" has ${w.length} entries; expected ${l.outFeatures}·${l.inFeatures} = ${size}`);
      snaps.set(name, Float32Array.from(w));
    }
    this.snapshots = snaps;
  }

  /** The warm-start copy of one tracked module (for checkpointing), or undefined before start(). */
  snapshot(name: string): Float32Array | undefined {
    return this.snapshots?.get(name);
  }

  /** One RankRecord per tracked module, for the current effective weight minus its warm-start copy. */
  measure(step: number, merges: number): RankRecord[] {
    if (!this.snapshots) throw new Error('RankTracker.measure: call start() first (at the end of the warm start)');
    if (!Number.isInteger(step) || step < 0) throw new Error(`RankTracker.measure: step must be an integer >= 0, got ${step}`);
    if (!Number.isInteger(merges) || merges < 0) throw new Error(`RankTracker.measure: merges must be an integer >= 0, got ${merges}`);
    const records: RankRecord[] = [];
    for (const name of this.modules) {
      const l = this.layer(name);
      const w0 = this.snapshots.get(name) as Float32Array;
      const { rank, singularValues: s } = updateRank(l.mergedWeight(), w0, l.outFeatures, l.inFeatures, this.relThreshold);
      records.push({
        type: 'rank',
        step,
        merges,
        module: name,
        rank,
        lora_rank: l.rank,
        singular_values: s.slice(0, MAX_RECORDED_VALUES).map((x) => roundSignificant(x, RECORDED_DIGITS)),
      });
    }
    return records;
  }

  private layer(name: string): LoraLinear {
    return this.layers.get(name) as LoraLinear;
  }
}
