/**
 * The order in which training sees sequences: a fresh permutation of all sequence indices every
 * epoch, determined by (seed, epoch) alone, so the state {epoch, position} is all a checkpoint
 * needs to resume at exactly the same next sequence.
 */
import { hash32, RandomStream } from '../engine/rng.ts';

export interface SamplerState {
  epoch: number;
  /** How many sequences of this epoch have already been handed out. */
  position: number;
}

export interface SequenceSamplerOptions {
  numSequences: number;
  /** Unsigned 32-bit seed, e.g. a named RandomStream's seed. */
  seed: number;
  /** false: indices in order 0, 1, 2, … every epoch (evaluation). Default true. */
  shuffle?: boolean;
  /** Where to start (a saved state). Default {epoch: 0, position: 0}. */
  state?: SamplerState;
}

const TWO_POW_32 = 4294967296;

/**
 * Fisher–Yates permutation of 0..n-1 for one epoch. The epoch's key is draw number `epoch` of the
 * RandomStream `seed`, and swap i uses hash32(key, i), so no generator state is carried over. (The modulo bias of mapping a
 * 32-bit draw to [0, i] is below n / 2^32, negligible for shuffling.)
 */
export function epochPermutation(n: number, seed: number, epoch: number): Uint32Array {
  const perm = new Uint32Array(n);
  for (let i = 0; i < n; i++) perm[i] = i;
  const key = new RandomStream(seed, epoch).nextKey();
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((hash32(key, i) / TWO_POW_32) * (i + 1));
    const t = perm[i]!;
    perm[i] = perm[j]!;
    perm[j] = t;
  }
  return perm;
}

export class SequenceSampler {
  readonly numSequences: number;
  readonly seed: number;
  readonly shuffle: boolean;
  private epoch: number;
  private position: number;
  private order: Uint32Array | null = null;
  private orderEpoch = -1;

  constructor(options: SequenceSamplerOptions) {
    const { numSequences, seed, shuffle = true } = options;
    if (!Number.isInteger(numSequences) || numSequences < 1) {
      throw new Error(`SequenceSampler: numSequences must be a positive integer, got ${numSequences}`);
    }
    if (!Number.isInteger(seed) || seed < 0 || seed >= TWO_POW_32) {
      throw new Error(`SequenceSampler: seed must be an integer in [0, 2^32), got ${seed}`);
    }
    this.numSequences = numSequences;
    this.seed = seed;
    this.shuffle = shuffle;
    this.epoch = 0;
    this.position = 0;
    if (options.state) this.setState(options.state);
  }

  state(): SamplerState {
    return { epoch: this.epoch, position: this.position };
  }

  setState(state: SamplerState): void {
    const { epoch, position } = state;
    if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`SequenceSampler state: epoch must be a non-negative integer, got ${epoch}`);
    if (!Number.isInteger(position) || position < 0 || position > this.numSequences) {
      throw new Error(`SequenceSampler state: position must be an integer in [0, ${this.numSequences}], got ${position}`);
    }
    this.epoch = epoch;
    this.position = position;
  }

  /** The next sequence index; a new epoch (and permutation) starts after the last one. */
  next(): number {
    if (this.position === this.numSequences) {
      this.epoch++;
      this.position = 0;
    }
    const i = this.position++;
    if (!this.shuffle) return i;
    if (this.orderEpoch !== this.epoch) {
      this.order = epochPermutation(this.numSequences, this.seed, this.epoch);
      this.orderEpoch = this.epoch;
    }
    return this.order![i]!;
  }

  /** The next `microBatch` indices (a batch may run across an epoch boundary). */
  nextBatch(microBatch: number): number[] {
    if (!Number.isInteger(microBatch) || microBatch < 1) throw new Error(`nextBatch: microBatch must be a positive integer, got ${microBatch}`);
    const out = new Array<number>(microBatch);
    for (let b = 0; b < microBatch; b++) out[b] = this.next();
    return out;
  }
}
