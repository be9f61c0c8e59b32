/**
 * Counter-based random numbers. A stream is (seed, calls): every draw derives a fresh key from
 * that pair and then hashes element indices, so
 * - results do not depend on the backend (native dropout uses the same `hash32`),
 * - a stream's whole state is two plain numbers (checkpoints store them; resume is exact).
 */

/** Wellons' "lowbias32" integer hash of (key, counter); returns an unsigned 32-bit integer. */
export function hash32(key: number, counter: number): number {
  let x = (Math.imul(counter >>> 0, 0x9e3779b1) ^ key) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/** 32-bit FNV-1a of a string: turns stream names into seeds. */
export function hashString(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const TWO_POW_32 = 4294967296;
const INV_2_24 = 1 / 16777216;

export interface RandomState {
  seed: number;
  calls: number;
}

export class RandomStream {
  seed: number;
  calls: number;

  constructor(seed: number, calls = 0) {
    if (!Number.isInteger(seed) || seed < 0 || seed >= TWO_POW_32) {
      throw new Error(`RandomStream: seed must be an integer in [0, 2^32), got ${seed}`);
    }
    this.seed = seed;
    this.calls = calls;
  }

  /** The stream called `name` under a run's global seed. */
  static named(globalSeed: number, name: string): RandomStream {
    return new RandomStream(hash32(hashString(name), globalSeed >>> 0));
  }

  state(): RandomState {
    return { seed: this.seed, calls: this.calls };
  }

  static fromState(s: RandomState): RandomStream {
    return new RandomStream(s.seed, s.calls);
  }

  /** A fresh 32-bit key for one draw; advances the stream by one call. */
  nextKey(): number {
    const hi = Math.floor(this.calls / TWO_POW_32);
    const key = hash32(hash32(this.seed, hi), this.calls >>> 0);
    this.calls++;
    return key;
  }

  /** Uniform floats in [0, 1) with 24 random bits each (exact in float32). */
  uniform(out: Float32Array | Float64Array, low = 0, high = 1): void {
    const key = this.nextKey();
    const width = high - low;
    for (let i = 0; i < out.length; i++) out[i] = low + width * ((hash32(key, i) >>> 8) * INV_2_24);
  }

  /** Normal(mean, std) via Box-Muller on pairs of uniforms. */
  normal(out: Float32Array | Float64Array, mean = 0, std = 1): void {
    const key = this.nextKey();
    for (let i = 0; i < out.length; i += 2) {
      const u1 = ((hash32(key, i) >>> 8) + 1) * INV_2_24; // (0, 1]: log is finite
      const u2 = (hash32(key, i + 1) >>> 8) * INV_2_24;
      const r = Math.sqrt(-2 * Math.log(u1));
      const a = 2 * Math.PI * u2;
      out[i] = mean + std * r * Math.cos(a);
      if (i + 1 < out.length) out[i + 1] = mean + std * r * Math.sin(a);
    }
  }

  /** A key and threshold for a dropout/keep mask: element i is kept iff hash32(key, i) >= threshold. */
  maskKey(): number {
    return this.nextKey();
  }
}

/** Threshold for "drop with probability p": hash32 values below it are dropped. */
export function dropThreshold(p: number): number {
  return Math.min(TWO_POW_32 - 1, Math.max(0, Math.round(p * TWO_POW_32)));
}
