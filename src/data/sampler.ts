/**
 * The order in which training sees sequences, determined by (seed, epoch, position) and the
 * shard layout alone, so the state {epoch, position} is all a checkpoint needs to resume at
 * exactly the same next sequence.
 *
 * The first epoch goes through the data shard by shard — shard k is sequences [k·Q, (k+1)·Q) of
 * the packed stream, Q = shard tokens / seqLen — each shard in a permutation of its own. So
 * training can start once the first shard is tokenised while the rest is still being tokenised
 * (token-dataset.ts), and what it sees at each update does not depend on how fast that goes: a
 * shard's sequences are drawn only when the whole shard is on disk (`ready` waits for it), and
 * only the last shard's size depends on where the corpus ends. Every later epoch is one
 * permutation of all sequences. A corpus of one shard is therefore shuffled whole every epoch.
 */
import { hash32, RandomStream } from '../engine/rng.ts';

export interface SamplerState {
  epoch: number;
  /** How many sequences of this epoch have already been handed out. */
  position: number;
}

/** How many sequences there are, for data that may still be growing (a token cache being written). */
export interface SequenceCount {
  /** Sequences that can be read now. */
  available(): number;
  /** All sequences, or null while the data is still being tokenised. */
  total(): number | null;
  /** Resolves once `sequences` can be read or the total is known (rejects if tokenising failed). */
  waitFor(sequences: number): Promise<void>;
}

/** Tokens per shard by default: 32 MiB of uint16 ids, a few seconds of tokenising. */
export const DEFAULT_SHARD_TOKENS = 2 ** 24;

/** Sequences of `seqLen` tokens per shard of `shardTokens` tokens (at least one). */
export function shardSequences(shardTokens: number, seqLen: number): number {
  return Math.max(1, Math.floor(shardTokens / seqLen));
}

export interface SequenceSamplerOptions {
  /** The number of sequences, or a count that grows while the data is tokenised. */
  numSequences: number | SequenceCount;
  /** Unsigned 32-bit seed, e.g. a named RandomStream's seed. */
  seed: number;
  /** false: indices in order 0, 1, 2, … every epoch (evaluation). Default true. */
  shuffle?: boolean;
  /** Sequences per shard of the first epoch (see above). Default: unlimited (one shard). */
  shardSequences?: number;
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

/** The first epoch's permutation of shard k (of `size` sequences); shard 0 is epoch 0's permutation. */
export function shardPermutation(size: number, seed: number, shard: number): Uint32Array {
  return epochPermutation(size, shard === 0 ? seed : hash32(seed, shard), 0);
}

/** A count that is known from the start. */
function fixedCount(n: number): SequenceCount {
  return { available: () => n, total: () => n, waitFor: () => Promise.resolve() };
}

/** Thrown by `next` when the sequence it needs is not tokenised yet (call `ready` first). */
export class NotTokenisedYet extends Error {}

export class SequenceSampler {
  readonly count: SequenceCount;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly shardSequences: number;
  private epoch: number;
  private position: number;
  /** The permutation in use: of epoch `orderEpoch`, and in the first epoch of shard `orderShard`. */
  private order: Uint32Array | null = null;
  private orderEpoch = -1;
  private orderShard = -1;

  constructor(options: SequenceSamplerOptions) {
    const { numSequences, seed, shuffle = true, shardSequences = Infinity } = options;
    if (typeof numSequences === 'number' && (!Number.isInteger(numSequences) || numSequences < 1)) {
      throw new Error(`SequenceSampler: numSequences must be a positive integer, got ${numSequences}`);
    }
    if (!Number.isInteger(seed) || seed < 0 || seed >= TWO_POW_32) {
      throw new Error(`SequenceSampler: seed must be an integer in [0, 2^32), got ${seed}`);
    }
    if (!(shardSequences === Infinity || (Number.isInteger(shardSequences) && shardSequences >= 1))) {
      throw new Error(`SequenceSampler: shardSequences must be a positive integer, got ${shardSequences}`);
    }
    this.count = typeof numSequences === 'number' ? fixedCount(numSequences) : numSequences;
    this.seed = seed;
    this.shuffle = shuffle;
    this.shardSequences = shardSequences;
    this.epoch = 0;
    this.position = 0;
    if (options.state) this.setState(options.state);
  }

  /** All sequences; throws while the data is still being tokenised. */
  get numSequences(): number {
    const total = this.count.total();
    if (total === null) throw new NotTokenisedYet('SequenceSampler: the number of sequences is not known until tokenising is complete');
    return total;
  }

  state(): SamplerState {
    return { epoch: this.epoch, position: this.position };
  }

  setState(state: SamplerState): void {
    const { epoch, position } = state;
    if (!Number.isInteger(epoch) || epoch < 0) throw new Error(`SequenceSampler state: epoch must be a non-negative integer, got ${epoch}`);
    // While the total is unknown the position is checked when it becomes known (in `next`).
    const total = this.count.total();
    if (!Number.isInteger(position) || position < 0 || (total !== null && position > total)) {
      throw new Error(`SequenceSampler state: position must be an integer in [0, ${total ?? 'the number of sequences'}], got ${position}`);
    }
    this.epoch = epoch;
    this.position = position;
  }

  /**
   * How many sequences must be readable (from the start of the data) before the next `count`
   * indices can be drawn: 0 when all are known, Infinity when only the complete data will do.
   */
  sequencesNeeded(count: number): number {
    if (this.count.total() !== null || count === 0) return 0;
    if (this.epoch > 0) return Infinity;
    const last = this.position + count - 1;
    if (!this.shuffle) return last + 1;
    return (Math.floor(last / this.shardSequences) + 1) * this.shardSequences;
  }

  /** Waits until the next `count` indices can be drawn (at once when the data is complete). */
  async ready(count: number): Promise<void> {
    const needed = this.sequencesNeeded(count);
    if (needed > 0) await this.count.waitFor(needed);
  }

  /** The next sequence index; a new epoch (and permutation) starts after the last one. */
  next(): number {
    const total = this.count.total();
    if (total !== null && this.position > total) {
      throw new Error(`SequenceSampler state: position ${this.position} is beyond the ${total} sequences of the data`);
    }
    if (total !== null && this.position === total) {
      this.epoch++;
      this.position = 0;
    }
    const i = this.indexAt(this.position, total);
    this.position++;
    return i;
  }

  private indexAt(i: number, total: number | null): number {
    const available = this.count.available();
    if (!this.shuffle) {
      if (total === null && i >= available) throw this.notYet();
      return i;
    }
    if (this.epoch > 0) {
      if (total === null) throw this.notYet();
      if (this.orderEpoch !== this.epoch) this.use(epochPermutation(total, this.seed, this.epoch), this.epoch, -1);
      return this.order![i]!;
    }
    const q = this.shardSequences;
    const shard = Math.floor(i / q);
    const start = shard === 0 ? 0 : shard * q; // (0 · Infinity is NaN)
    if (this.orderEpoch !== 0 || this.orderShard !== shard) {
      // A full shard is known to be full once its sequences are on disk; the last one only at the end.
      const size = available >= start + q ? q : total !== null ? total - start : -1;
      if (size < 0) throw this.notYet();
      this.use(shardPermutation(size, this.seed, shard), 0, shard);
    }
    return start + this.order![i - start]!;
  }

  private use(order: Uint32Array, epoch: number, shard: number): void {
    this.order = order;
    this.orderEpoch = epoch;
    this.orderShard = shard;
  }

  private notYet(): Error {
    return new NotTokenisedYet(`SequenceSampler: sequence ${this.position} of epoch ${this.epoch} is not tokenised yet (await ready() first)`);
  }

  /** The next `microBatch` indices (a batch may run across an epoch boundary). */
  nextBatch(microBatch: number): number[] {
    if (!Number.isInteger(microBatch) || microBatch < 1) throw new Error(`nextBatch: microBatch must be a positive integer, got ${microBatch}`);
    const out = new Array<number>(microBatch);
    for (let b = 0; b < microBatch; b++) out[b] = this.next();
    return out;
  }
}
