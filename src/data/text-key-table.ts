/**
 * A hash table of strings that is looked up by where a string stands in a larger text, so the
 * tokenizer's hot loops find a word they have seen (nearly every word) without cutting it out of
 * the text first. Open addressing over entries kept in insertion order.
 */

/** FNV-1a of text[start, end) (and its length). */
export function textHash(text: string, start: number, end: number): number {
  let h = 0x811c9dc5 ^ (end - start);
  for (let i = start; i < end; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  return h;
}

export class TextKeyTable<V> {
  /** Entries in insertion order. */
  keys: string[] = [];
  values: V[] = [];
  private hashes: number[] = [];
  /** Entry index + 1 per slot; 0 is empty. */
  private slots = new Int32Array(1024);

  get size(): number {
    return this.keys.length;
  }

  /** The entry of text[start, end) with hash h, or -1. */
  find(text: string, start: number, end: number, h: number): number {
    const mask = this.slots.length - 1;
    for (let slot = h & mask; ; slot = (slot + 1) & mask) {
      const e = this.slots[slot]! - 1;
      if (e < 0) return -1;
      const key = this.keys[e]!;
      if (this.hashes[e] === h && key.length === end - start && text.startsWith(key, start)) return e;
    }
  }

  /** Adds `key` (not present; h = its textHash) and returns its entry. */
  add(key: string, h: number, value: V): number {
    if (2 * (this.keys.length + 1) > this.slots.length) this.rehash(2 * this.slots.length);
    const e = this.keys.length;
    this.keys.push(key);
    this.values.push(value);
    this.hashes.push(h);
    this.place(e);
    return e;
  }

  /** Keeps the entries for which `keep` holds, in their order. */
  retain(keep: (value: V, key: string) => boolean): void {
    const { keys, values, hashes } = this;
    this.keys = [];
    this.values = [];
    this.hashes = [];
    for (let e = 0; e < keys.length; e++) {
      if (!keep(values[e]!, keys[e]!)) continue;
      this.keys.push(keys[e]!);
      this.values.push(values[e]!);
      this.hashes.push(hashes[e]!);
    }
    this.rehash(this.slots.length);
  }

  clear(): void {
    this.retain(() => false);
    this.slots = new Int32Array(1024);
  }

  private place(e: number): void {
    const mask = this.slots.length - 1;
    let slot = this.hashes[e]! & mask;
    while (this.slots[slot] !== 0) slot = (slot + 1) & mask;
    this.slots[slot] = e + 1;
  }

  private rehash(capacity: number): void {
    this.slots = new Int32Array(capacity);
    for (let e = 0; e < this.keys.length; e++) this.place(e);
  }
}
