/**
 * The BPE merge step shared by our tokenizers: given a word's initial symbols (token ids), merge
 * adjacent pairs by rank, lowest first, leftmost first among equals — the order the Hugging Face
 * `tokenizers` BPE model uses, so ids agree with it.
 */
import { TextKeyTable, textHash } from './text-key-table.ts';

/** Ids must stay below this so a pair of ids packs into one exact float64 key. */
export const MAX_VOCAB = 1 << 21;
const pairKey = (left: number, right: number): number => left * MAX_VOCAB + right;

/** Merge rules as ids: pair -> rank, and rank -> the merged token's id. */
export class MergeTable {
  private readonly rankOf = new Map<number, number>();
  private readonly result: Int32Array;

  /**
   * `merges[rank]` = [left id, right id, merged id]. A repeated pair keeps its first
   * (highest-priority) rank, as the Hugging Face model does.
   */
  constructor(merges: ReadonlyArray<readonly [number, number, number]>) {
    this.result = new Int32Array(merges.length);
    merges.forEach(([left, right, merged], rank) => {
      const key = pairKey(left, right);
      if (!this.rankOf.has(key)) this.rankOf.set(key, rank);
      this.result[rank] = merged;
    });
  }

  /** The rank of merging (left, right), or -1. */
  rank(left: number, right: number): number {
    return this.rankOf.get(pairKey(left, right)) ?? -1;
  }

  merged(rank: number): number {
    return this.result[rank]!;
  }
}

/**
 * A copy of a short piece of a long string that does not keep the long string alive. V8 makes a
 * substring of 13 or more characters a view into its parent; a word kept as a map key would then
 * hold a whole megabyte-sized chunk of text in memory.
 */
export function detached(word: string): string {
  return word.length < 13 ? word : (' ' + word).slice(1);
}

/**
 * Ids of words already encoded: natural text repeats the same words over and over. Beyond
 * `limit` words the cache is dropped and refilled, which bounds memory on odd data.
 */
export class WordCache {
  private readonly table = new TextKeyTable<number[]>();
  constructor(private readonly encode: (word: string) => number[], private readonly limit = 500_000) {}

  /** Appends the ids of `word` to `out`. */
  append(word: string, out: number[]): void {
    this.appendRange(word, 0, word.length, out);
  }

  /** Appends the ids of the word text[start, end) to `out`. */
  appendRange(text: string, start: number, end: number, out: number[]): void {
    const h = textHash(text, start, end);
    const e = this.table.find(text, start, end, h);
    let ids: number[];
    if (e >= 0) ids = this.table.values[e]!;
    else {
      const word = text.slice(start, end);
      ids = this.encode(word);
      if (this.table.size >= this.limit) this.table.clear();
      this.table.add(detached(word), h, ids);
    }
    for (let i = 0; i < ids.length; i++) out.push(ids[i]!);
  }
}

/** BPE on one word's symbols: a heap of (rank, position) over a linked list of symbols. */
export function applyMerges(sym: Int32Array, table: MergeTable): number[] {
  const n = sym.length;
  if (n < 2) return Array.from(sym);
  const next = new Int32Array(n);
  const prev = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const heap = new PairHeap();
  const rankAt = (i: number): number => {
    const j = next[i]!;
    return j < 0 ? -1 : table.rank(sym[i]!, sym[j]!);
  };
  for (let i = 0; i + 1 < n; i++) {
    const r = rankAt(i);
    if (r >= 0) heap.push(r, i);
  }
  while (heap.size > 0) {
    const r = heap.topRank();
    const i = heap.pop();
    // Entries go stale when a neighbour merges first; only a pair that still has this rank counts.
    if (sym[i]! < 0 || rankAt(i) !== r) continue;
    const j = next[i]!;
    sym[i] = table.merged(r);
    sym[j] = -1;
    next[i] = next[j]!;
    if (next[j]! >= 0) prev[next[j]!] = i;
    const p = prev[i]!;
    if (p >= 0) {
      const rp = rankAt(p);
      if (rp >= 0) heap.push(rp, p);
    }
    const rn = rankAt(i);
    if (rn >= 0) heap.push(rn, i);
  }
  const out: number[] = [];
  for (let i = 0; i >= 0; i = next[i]!) out.push(sym[i]!);
  return out;
}

/** Min-heap of (rank, position), ordered by rank then position. */
class PairHeap {
  private ranks: number[] = [];
  private positions: number[] = [];

  get size(): number {
    return this.ranks.length;
  }

  topRank(): number {
    return this.ranks[0]!;
  }

  private less(a: number, b: number): boolean {
    const ra = this.ranks[a]!;
    const rb = this.ranks[b]!;
    return ra < rb || (ra === rb && this.positions[a]! < this.positions[b]!);
  }

  private swap(a: number, b: number): void {
    const r = this.ranks[a]!;
    this.ranks[a] = this.ranks[b]!;
    this.ranks[b] = r;
    const p = this.positions[a]!;
    this.positions[a] = this.positions[b]!;
    this.positions[b] = p;
  }

  push(rank: number, position: number): void {
    this.ranks.push(rank);
    this.positions.push(position);
    let i = this.ranks.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the top entry and returns its position. */
  pop(): number {
    const top = this.positions[0]!;
    const lastRank = this.ranks.pop()!;
    const lastPos = this.positions.pop()!;
    const n = this.ranks.length;
    if (n > 0) {
      this.ranks[0] = lastRank;
      this.positions[0] = lastPos;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < n && this.less(l, m)) m = l;
        if (r < n && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}

