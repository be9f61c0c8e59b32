/**
 * Training a byte-level BPE vocabulary, the way the Hugging Face BPE trainer does it:
 * count pre-token "words" once, then run BPE over the unique words weighted by their counts,
 * keeping pair counts up to date incrementally and picking the most frequent pair from a
 * max-heap (stale heap entries are refreshed when they reach the top: a pair's count only
 * ever falls, except for pairs that contain the newest token, which are pushed again).
 *
 * Ids: 0 is the EOS token `<|endoftext|>` (the Hugging Face trainer places special tokens first),
 * 1..256 are the 256 byte symbols in code-point order of their byte-level characters (the trainer's
 * sorted initial alphabet), and each merge that makes a new string adds the next id.
 * Ties between equally frequent pairs go to the pair with the smaller (left id, right id); with
 * the same ids as the Hugging Face trainer this yields the same merges in the same order.
 */
import { BYTE_TO_UNICODE, forEachPretokenRange, stickyPretokenizeRegex } from './byte-level.ts';
import { TextKeyTable, textHash } from './text-key-table.ts';
import { detached } from './bpe-merge.ts';
import { ByteLevelBpe, DEFAULT_EOS_TOKEN } from './bpe.ts';
import { hash32 } from '../engine/rng.ts';
import { tokenizerChunks, whitespaceCut, type TextPiece } from './pieces.ts';

export interface BpeTrainOptions {
  /** Final vocabulary size including the EOS token and the 256 bytes; at least 257. */
  vocabSize: number;
  /** Pairs seen fewer times than this are never merged (training may then stop early). Default 2. */
  minFrequency?: number;
  /** Called every `progressEvery` merges with the vocabulary size so far. */
  onProgress?: (vocabSize: number, target: number) => void;
  progressEvery?: number;
}

const ID_LIMIT = 1 << 21;
const key = (a: number, b: number): number => a * ID_LIMIT + b;

/** Default most distinct words kept while counting (see WordCounter). */
export const DEFAULT_MAX_WORDS = 200_000;

/**
 * Peak memory of tokenizer training with at most `maxWords` distinct words: Node, the text being
 * read, the counts, then the words as symbol arrays with the pair counts and pair-to-word index
 * of the merge loop (about 1.2 kB per word, a generous allowance). Measured peak RSS: 132 MiB on
 * 60 MB of random words (1.7 GB before the word table was capped), 257 MiB and 264 MiB on a
 * 64 Mi-character Brown sample (59 K words) at vocabularies 8000 and 32000.
 */
export function tokenizerTrainingMemoryBytes(maxWords = DEFAULT_MAX_WORDS): number {
  return 160 * 2 ** 20 + maxWords * 1200;
}

/**
 * Counts GPT-2 pre-tokens across documents, keeping at most `maxWords` distinct words: whenever
 * the table overflows, the rarest words are dropped (counts 1, then 2, …, until it is half full),
 * so memory stays bounded on any text while frequent words — the ones BPE merges — keep exact
 * or nearly exact counts. Deterministic for the same text.
 */
export class WordCounter {
  private readonly table = new TextKeyTable<number>();
  private readonly re = stickyPretokenizeRegex();
  /** How many times rare words were dropped. */
  prunes = 0;

  constructor(readonly maxWords = DEFAULT_MAX_WORDS) {
    if (!Number.isInteger(maxWords) || maxWords < 2) throw new Error(`WordCounter: maxWords must be an integer >= 2, got ${maxWords}`);
  }

  /** Each word's count, in the order the words were first seen (since kept). */
  get counts(): Map<string, number> {
    const { keys, values } = this.table;
    return new Map(keys.map((w, e) => [w, values[e]!]));
  }

  add(text: string): void {
    forEachPretokenRange(text, (start, end) => {
      const h = textHash(text, start, end);
      const e = this.table.find(text, start, end, h);
      if (e >= 0) {
        this.table.values[e]!++;
        return;
      }
      this.table.add(detached(text.slice(start, end)), h, 1);
      if (this.table.size > this.maxWords) this.prune();
    }, this.re);
  }

  private prune(): void {
    this.prunes++;
    for (let threshold = 1; this.table.size > this.maxWords / 2; threshold++) this.table.retain((c) => c > threshold);
  }
}

/** Trains on documents (held or streamed); only the (bounded) word counts are kept in memory. */
export async function trainByteLevelBpe(
  documents: Iterable<string> | AsyncIterable<string>,
  options: BpeTrainOptions & { maxWords?: number },
): Promise<ByteLevelBpe> {
  const counter = new WordCounter(options.maxWords);
  for await (const doc of documents) counter.add(doc);
  return trainByteLevelBpeFromCounts(counter.counts, options);
}

const SAMPLE_SEED = 0x70c3;

/** Default most characters of text the tokenizer is trained on. */
export const DEFAULT_SAMPLE_CHARS = 64 * 2 ** 20;

export interface TokenizerSample {
  documents: number;
  chars: number;
  /** Share of the corpus's documents taken (1 when the whole corpus fits the budget). */
  rate: number;
  distinctWords: number;
}

/**
 * Trains on a bounded sample of a corpus: each document is taken with probability
 * maxChars / corpus size (by a hash of its index, so the sample is spread over the corpus and the
 * same every time), until maxChars characters are taken. Documents of any size are counted in
 * chunks cut where pre-tokens do not cross.
 */
export async function trainByteLevelBpeOnCorpus(
  corpus: { pieces(): AsyncIterable<TextPiece>; sizeBytes?: number },
  options: BpeTrainOptions & { maxWords?: number; maxChars?: number },
): Promise<{ tokenizer: ByteLevelBpe; sample: TokenizerSample }> {
  const maxChars = options.maxChars ?? DEFAULT_SAMPLE_CHARS;
  const rate = corpus.sizeBytes === undefined || corpus.sizeBytes <= maxChars ? 1 : maxChars / corpus.sizeBytes;
  const threshold = Math.min(2 ** 32, Math.ceil(rate * 2 ** 32));
  const counter = new WordCounter(options.maxWords);
  let index = 0;
  let documents = 0;
  let chars = 0;
  async function* sampled(): AsyncGenerator<TextPiece> {
    let take: boolean | null = null; // whether the current document is in the sample
    for await (const piece of corpus.pieces()) {
      if (take === null) take = hash32(SAMPLE_SEED, index) < threshold;
      if (take) {
        chars += piece.text.length;
        yield piece;
        if (piece.end) documents++;
        else if (chars >= maxChars) {
          // A huge document fills the budget: end the sample inside it.
          yield { text: '', end: true };
          documents++;
          return;
        }
      }
      if (piece.end) {
        index++;
        take = null;
        if (chars >= maxChars) return;
      }
    }
  }
  for await (const chunk of tokenizerChunks(sampled(), whitespaceCut)) counter.add(chunk.text);
  const counts = counter.counts;
  const tokenizer = trainByteLevelBpeFromCounts(counts, options);
  return { tokenizer, sample: { documents, chars, rate, distinctWords: counts.size } };
}

export function trainByteLevelBpeFromCounts(wordCounts: Map<string, number>, options: BpeTrainOptions): ByteLevelBpe {
  const { vocabSize, minFrequency = 2 } = options;
  if (!Number.isInteger(vocabSize) || vocabSize < 257 || vocabSize > ID_LIMIT) {
    throw new Error(`BPE training: vocabSize must be an integer in [257, ${ID_LIMIT}] (EOS + 256 bytes + merges), got ${vocabSize}`);
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 1) {
    throw new Error(`BPE training: minFrequency must be a positive integer, got ${minFrequency}`);
  }

  const alphabet = [...BYTE_TO_UNICODE].sort((x, y) => x.codePointAt(0)! - y.codePointAt(0)!);
  const idOfByte = BYTE_TO_UNICODE.map((c) => 1 + alphabet.indexOf(c));

  // Words as symbol-id arrays; each merge rewrites the words that contain its pair.
  const utf8 = new TextEncoder();
  const words: number[][] = [];
  const freq: number[] = [];
  for (const [w, c] of wordCounts) {
    const bytes = utf8.encode(w);
    const ids = new Array<number>(bytes.length);
    for (let i = 0; i < bytes.length; i++) ids[i] = idOfByte[bytes[i]!]!;
    words.push(ids);
    freq.push(c);
  }

  const pairCount = new Map<number, number>();
  const wordsWithPair = new Map<number, Set<number>>();
  const addPair = (k: number, delta: number, wordIndex: number): void => {
    const count = (pairCount.get(k) ?? 0) + delta;
    if (count === 0) {
      // No word holds the pair any more: forget it (keeps the tables to the live pairs).
      pairCount.delete(k);
      wordsWithPair.delete(k);
      return;
    }
    pairCount.set(k, count);
    if (delta > 0) {
      let set = wordsWithPair.get(k);
      if (set === undefined) wordsWithPair.set(k, (set = new Set()));
      set.add(wordIndex);
    }
  };
  for (let w = 0; w < words.length; w++) {
    const s = words[w]!;
    for (let i = 0; i + 1 < s.length; i++) addPair(key(s[i]!, s[i + 1]!), freq[w]!, w);
  }

  let heap = new CountHeap();
  for (const [k, c] of pairCount) heap.push(c, k);

  // Token strings by id, for the vocab and merges of the result.
  const tokens: string[] = [DEFAULT_EOS_TOKEN, ...alphabet];
  const idOfToken = new Map(tokens.map((t, id) => [t, id]));
  const merges: Array<[string, string]> = [];
  const progressEvery = options.progressEvery ?? 1000;

  while (tokens.length < vocabSize && heap.size > 0) {
    const { count, key: k } = heap.pop();
    const current = pairCount.get(k) ?? 0;
    if (current !== count) {
      if (current > 0) heap.push(current, k);
      continue;
    }
    if (count < minFrequency) break;
    const a = Math.floor(k / ID_LIMIT);
    const b = k - a * ID_LIMIT;
    // Two different pairs can spell the same string ("a"+"bc", "ab"+"c"); like the Hugging Face
    // trainer, the second merge then yields the existing token.
    const merged = tokens[a]! + tokens[b]!;
    let x = idOfToken.get(merged);
    if (x === undefined) {
      x = tokens.length;
      tokens.push(merged);
      idOfToken.set(merged, x);
    }
    merges.push([tokens[a]!, tokens[b]!]);

    const touched = new Set<number>();
    for (const w of wordsWithPair.get(k) ?? []) {
      const s = words[w]!;
      const c = freq[w]!;
      const out: number[] = [];
      let i = 0;
      // Left to right, non-overlapping; the neighbour on the left is the already rewritten symbol,
      // so adjacent occurrences ("abab") are counted correctly.
      while (i < s.length) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) {
          if (out.length > 0) {
            const p = out[out.length - 1]!;
            addPair(key(p, a), -c, w);
            addPair(key(p, x), c, w);
            touched.add(key(p, x));
          }
          if (i + 2 < s.length) {
            const n = s[i + 2]!;
            addPair(key(b, n), -c, w);
            addPair(key(x, n), c, w);
            touched.add(key(x, n));
          }
          out.push(x);
          i += 2;
        } else {
          out.push(s[i]!);
          i++;
        }
      }
      words[w] = out;
    }
    pairCount.delete(k);
    wordsWithPair.delete(k);
    for (const t of touched) {
      const c = pairCount.get(t) ?? 0;
      if (c > 0) heap.push(c, t);
    }
    // Stale entries pile up (every merge pushes the counts it changed); rebuilding from the live
    // counts bounds the heap. The order is by (count, key) alone, so merges do not change.
    if (heap.size > 2 * pairCount.size + 100_000) {
      heap = new CountHeap();
      for (const [k2, c] of pairCount) if (c > 0) heap.push(c, k2);
    }
    if (options.onProgress && merges.length % progressEvery === 0) options.onProgress(tokens.length, vocabSize);
  }

  const vocab: Record<string, number> = {};
  tokens.forEach((t, id) => {
    vocab[t] = id;
  });
  return new ByteLevelBpe({
    vocab,
    merges,
    addedTokens: [{ id: 0, content: DEFAULT_EOS_TOKEN, special: true }],
    eosId: 0,
  });
}

/** Max-heap of (count, pair key): larger count first, then smaller key. */
class CountHeap {
  private counts: number[] = [];
  private keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(count: number, k: number): void {
    this.counts.push(count);
    this.keys.push(k);
    let i = this.counts.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  pop(): { count: number; key: number } {
    const top = { count: this.counts[0]!, key: this.keys[0]! };
    const lc = this.counts.pop()!;
    const lk = this.keys.pop()!;
    const n = this.counts.length;
    if (n > 0) {
      this.counts[0] = lc;
      this.keys[0] = lk;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.before(l, m)) m = l;
        if (r < n && this.before(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}
