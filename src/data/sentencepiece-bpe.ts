/**
 * SentencePiece-style BPE (LLaMA-2's tokenizer.json) encoded fast and exactly.
 *
 * Such a file normalises text by prepending "▁" and replacing every space by "▁", has no
 * pre-tokenizer, and so runs BPE over each whole text segment as one word — which the general
 * implementation does in time that grows faster than the text (13 s for a 400 K-character
 * document). When no vocabulary token holds "▁" after another character (true of vocabularies
 * converted from SentencePiece, which learns pieces of the form "▁word"), no merge can cross a
 * position where "▁" follows another character; the segment splits there into words that are
 * merged separately — with a cache, since words repeat — giving the same ids as the whole.
 * Decoding and the tokenizer.json form stay with the general implementation.
 */
import { applyMerges, MergeTable, WordCache } from './bpe-merge.ts';
import { HfTokenizer } from './hf-tokenizer.ts';
import { literalAlternation } from './literal-regex.ts';
import type { Tokenizer } from './tokenizer.ts';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

const MARK = '\u2581'; // ▁
const MARK_CODE = 0x2581;
const utf8 = new TextEncoder();

function isLlamaNormalizer(n: unknown): boolean {
  if (!isObject(n) || n.type !== 'Sequence' || !Array.isArray(n.normalizers) || n.normalizers.length !== 2) return false;
  const [prepend, replace] = n.normalizers as unknown[];
  return (
    isObject(prepend) && prepend.type === 'Prepend' && prepend.prepend === MARK &&
    isObject(replace) && replace.type === 'Replace' && isObject(replace.pattern) && replace.pattern.String === ' ' && replace.content === MARK
  );
}

/** Why a tokenizer.json cannot run on SentencePieceBpe, or null when it can. */
export function sentencePieceBpeIncompatibility(json: unknown): string | null {
  if (!isObject(json)) return 'not a JSON object';
  const model = json.model;
  if (!isObject(model) || model.type !== 'BPE') return 'model.type is not "BPE"';
  if (!isLlamaNormalizer(json.normalizer)) return 'the normalizer is not Prepend("▁") + Replace(" ", "▁")';
  if (json.pre_tokenizer !== null && json.pre_tokenizer !== undefined) return 'it has a pre-tokenizer';
  if (model.dropout !== null && model.dropout !== undefined) return 'model has BPE dropout';
  if (model.ignore_merges === true) return 'model ignores merges';
  if (model.continuing_subword_prefix || model.end_of_word_suffix) return 'model has a subword prefix or suffix';
  if (!isObject(model.vocab) || !Array.isArray(model.merges)) return 'model lacks vocab or merges';
  if (!(MARK in model.vocab)) return 'the vocabulary lacks "▁"';
  for (const token of Object.keys(model.vocab)) {
    const afterMarks = token.replace(/^\u2581+/, '');
    if (afterMarks.includes(MARK)) return `vocabulary token ${JSON.stringify(token)} holds "▁" after another character`;
  }
  for (const t of (json.added_tokens ?? []) as unknown[]) {
    if (!isObject(t) || typeof t.content !== 'string' || typeof t.id !== 'number') return 'an added token lacks id or content';
    if (t.normalized === true || t.single_word || t.lstrip || t.rstrip) return `added token ${JSON.stringify(t.content)} is normalized or has single_word/lstrip/rstrip`;
  }
  return null;
}

export class SentencePieceBpe implements Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number;
  private readonly general: HfTokenizer;
  private readonly vocab: Map<string, number>;
  private readonly merges: MergeTable;
  private readonly byteFallback: boolean;
  private readonly fuseUnk: boolean;
  private readonly unkId: number | undefined;
  private readonly byteIds: Int32Array; // <0xNN> ids, -1 where missing
  private readonly added = new Map<string, number>();
  private readonly addedSplitter: RegExp | null;
  private readonly addedContents: string[];
  private readonly cache = new WordCache((word) => this.encodeWord(word));

  /** `general` is the same tokenizer.json on the general implementation (decoding, JSON, EOS). */
  constructor(json: Json, general: HfTokenizer) {
    const why = sentencePieceBpeIncompatibility(json);
    if (why !== null) throw new Error(`tokenizer.json cannot be read as a SentencePiece-style BPE: ${why}`);
    this.general = general;
    this.vocabSize = general.vocabSize;
    this.eosId = general.eosId;
    const model = json.model as Json;
    this.vocab = new Map(Object.entries(model.vocab as Record<string, number>));
    this.byteFallback = model.byte_fallback === true;
    this.fuseUnk = model.fuse_unk === true;
    this.unkId = typeof model.unk_token === 'string' ? this.vocab.get(model.unk_token) : undefined;
    this.byteIds = new Int32Array(256).fill(-1);
    for (let b = 0; b < 256; b++) this.byteIds[b] = this.vocab.get(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`) ?? -1;
    this.merges = new MergeTable(
      (model.merges as unknown[]).map((m, i) => {
        const [left, right] = typeof m === 'string' ? [m.slice(0, m.indexOf(' ')), m.slice(m.indexOf(' ') + 1)] : (m as [string, string]);
        const ids = [this.vocab.get(left), this.vocab.get(right), this.vocab.get(left + right)];
        if (ids.some((id) => id === undefined)) throw new Error(`tokenizer.json model.merges[${i}]: its parts and their concatenation must all be in the vocab`);
        return ids as [number, number, number];
      }),
    );
    for (const t of (json.added_tokens ?? []) as Json[]) this.added.set(t.content as string, t.id as number);
    this.addedContents = [...this.added.keys()].sort((a, b) => b.length - a.length);
    this.addedSplitter = literalAlternation(this.addedContents);
  }

  encode(text: string): number[] {
    return this.encodeText(text, true);
  }

  /** A continuation after a safeCut: its first segment gets no "▁" in front (it is not a segment start). */
  encodeContinuation(text: string): number[] {
    return this.encodeText(text, false);
  }

  /**
   * Before a space that follows a character other than a space or "▁", not inside or right after
   * an added token: there the normalised text has "▁" after another character, a word boundary.
   */
  safeCut(text: string, before: number): number {
    for (let i = Math.min(before, text.length - 1); i >= 1; i--) {
      if (text[i] !== ' ' || text[i - 1] === ' ' || text[i - 1] === MARK) continue;
      if (this.addedContents.some((c) => text.startsWith(c, i - c.length) || overlaps(text, c, i))) continue;
      return i;
    }
    return -1;
  }

  decode(ids: ArrayLike<number>): string {
    return this.general.decode(ids);
  }

  toJSON(): object {
    return this.general.toJSON();
  }

  private encodeText(text: string, segmentStart: boolean): number[] {
    const out: number[] = [];
    const splitter = this.addedSplitter;
    let start = 0;
    if (splitter !== null) {
      splitter.lastIndex = 0;
      for (let m = splitter.exec(text); m !== null; m = splitter.exec(text)) {
        if (m.index > start) this.encodeSegment(text.slice(start, m.index), segmentStart, out);
        out.push(this.added.get(m[0])!);
        start = m.index + m[0].length;
        segmentStart = true;
      }
    }
    if (start < text.length) this.encodeSegment(text.slice(start), segmentStart, out);
    return out;
  }

  /** One stretch between added tokens: normalise, split into words, BPE each word. */
  private encodeSegment(segment: string, prepend: boolean, out: number[]): void {
    // replaceAll after the prepend makes one flat string (a concatenation is slow to index).
    const normal = (prepend ? MARK + segment : segment).replaceAll(' ', MARK);
    let wordStart = 0;
    for (let i = normal.indexOf(MARK, 1); i >= 0; i = normal.indexOf(MARK, i + 1)) {
      if (normal.charCodeAt(i - 1) === MARK_CODE) continue;
      this.cache.appendRange(normal, wordStart, i, out);
      wordStart = i;
    }
    this.cache.appendRange(normal, wordStart, normal.length, out);
  }

  /** Initial symbols as the Hugging Face BPE model makes them (characters, byte fallback, unk), then merges. */
  private encodeWord(word: string): number[] {
    const symbols: number[] = [];
    let pendingUnk = false;
    const flushUnk = () => {
      if (pendingUnk) symbols.push(this.unkId!);
      pendingUnk = false;
    };
    for (const ch of word) {
      const id = this.vocab.get(ch);
      if (id !== undefined) {
        flushUnk();
        symbols.push(id);
        continue;
      }
      if (this.byteFallback) {
        const bytes = utf8.encode(ch);
        const ids = Array.from(bytes, (b) => this.byteIds[b]!);
        if (ids.every((b) => b >= 0)) {
          // As in the Rust model, a pending unknown token is not flushed before byte tokens.
          symbols.push(...ids);
          continue;
        }
      }
      if (this.unkId === undefined) continue;
      if (pendingUnk && !this.fuseUnk) flushUnk();
      pendingUnk = true;
    }
    flushUnk();
    return applyMerges(Int32Array.from(symbols), this.merges);
  }
}

/** Whether an occurrence of `token` in `text` spans position i. */
function overlaps(text: string, token: string, i: number): boolean {
  const start = text.lastIndexOf(token, i - 1);
  return start >= 0 && start + token.length > i;
}
