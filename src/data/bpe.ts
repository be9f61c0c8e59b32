/**
 * Byte-level BPE (GPT-2 style) encoding and decoding, and its tokenizer.json form.
 *
 * Encoding cuts text at added (special) tokens, then into GPT-2 pre-tokens; each pre-token's UTF-8
 * bytes start as one symbol per byte and are merged by rank, lowest first, leftmost first among
 * equals — the order the Hugging Face `tokenizers` BPE model uses, so ids agree with it. Results
 * are cached per pre-token because natural text repeats the same words over and over.
 */
import { BYTE_TO_UNICODE, bytesToSymbols, forEachPretokenRange, isWhitespace, stickyPretokenizeRegex, symbolsToBytes } from './byte-level.ts';
import { applyMerges, MAX_VOCAB, MergeTable, WordCache } from './bpe-merge.ts';
import { literalAlternation } from './literal-regex.ts';
import { whitespaceCut } from './pieces.ts';
import type { Tokenizer } from './tokenizer.ts';

export const DEFAULT_EOS_TOKEN = '<|endoftext|>';



export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
}

export interface ByteLevelBpeSpec {
  /** token string (byte-level characters) -> id */
  vocab: Record<string, number>;
  /** merges in rank order, each a pair of vocabulary strings */
  merges: Array<[string, string]>;
  /** tokens matched literally in text before pre-tokenisation (the EOS token among them) */
  addedTokens: AddedToken[];
  eosId: number;
}

/** Whether an occurrence of `token` in `text` spans position i (starts before it, ends after it). */
function overlaps(text: string, token: string, i: number): boolean {
  const start = text.lastIndexOf(token, i - 1);
  return start >= 0 && start + token.length > i;
}

const utf8 = new TextEncoder();
// ignoreBOM: a U+FEFF at the start of the text is content, not a byte-order mark to drop.
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

export class ByteLevelBpe implements Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number;
  private readonly vocab: Record<string, number>;
  private readonly merges: Array<[string, string]>;
  private readonly addedTokens: AddedToken[];
  private readonly idOfByte = new Int32Array(256);
  private readonly mergeTable: MergeTable;
  private readonly idBytes: Uint8Array[];
  private readonly addedById = new Map<number, AddedToken>();
  private readonly addedByContent = new Map<string, number>();
  private readonly addedSplitter: RegExp | null;
  /** Added tokens that hold whitespace: the only ones a whitespace cut could fall inside. */
  private readonly addedWithWhitespace: string[];
  private readonly wordRegex = stickyPretokenizeRegex();
  private readonly cache = new WordCache((word) => this.encodeWord(word));

  constructor(spec: ByteLevelBpeSpec) {
    this.vocab = spec.vocab;
    this.merges = spec.merges;
    this.addedTokens = spec.addedTokens;
    let maxId = -1;
    for (const [token, id] of Object.entries(spec.vocab)) {
      if (!Number.isInteger(id) || id < 0 || id >= MAX_VOCAB) {
        throw new Error(`BPE vocab: id of ${JSON.stringify(token)} must be an integer in [0, ${MAX_VOCAB}), got ${id}`);
      }
      maxId = Math.max(maxId, id);
    }
    for (const t of spec.addedTokens) {
      if (!Number.isInteger(t.id) || t.id < 0 || t.id >= MAX_VOCAB) {
        throw new Error(`BPE added token ${JSON.stringify(t.content)}: id must be an integer in [0, ${MAX_VOCAB}), got ${t.id}`);
      }
      if (t.content.length === 0) throw new Error(`BPE added token ${t.id}: content must not be empty`);
      maxId = Math.max(maxId, t.id);
      this.addedById.set(t.id, t);
      this.addedByContent.set(t.content, t.id);
    }
    this.vocabSize = maxId + 1;
    if (!this.addedById.has(spec.eosId) && !Object.values(spec.vocab).includes(spec.eosId)) {
      throw new Error(`BPE: eosId ${spec.eosId} is neither an added token nor in the vocab`);
    }
    this.eosId = spec.eosId;

    this.idBytes = new Array(this.vocabSize);
    for (const [token, id] of Object.entries(spec.vocab)) this.idBytes[id] = symbolsToBytes(token);
    for (const t of spec.addedTokens) this.idBytes[t.id] = utf8.encode(t.content);

    for (let b = 0; b < 256; b++) {
      const id = spec.vocab[BYTE_TO_UNICODE[b]!];
      if (id === undefined) {
        throw new Error(`BPE vocab lacks the byte-level symbol ${JSON.stringify(BYTE_TO_UNICODE[b])} for byte ${b}`);
      }
      this.idOfByte[b] = id;
    }

    this.mergeTable = new MergeTable(
      spec.merges.map(([left, right], rank) => {
        const l = spec.vocab[left];
        const r = spec.vocab[right];
        const merged = spec.vocab[left + right];
        if (l === undefined || r === undefined || merged === undefined) {
          throw new Error(`BPE merge ${rank} (${JSON.stringify(left)} ${JSON.stringify(right)}): its parts and their concatenation must all be in the vocab`);
        }
        return [l, r, merged] as const;
      }),
    );

    // Longest first, so that a token that contains another is matched whole.
    const contents = [...this.addedByContent.keys()].sort((a, b) => b.length - a.length);
    this.addedSplitter = literalAlternation(contents);
    this.addedWithWhitespace = contents.filter((c) => [...c].some(isWhitespace));
  }

  /**
   * Before whitespace that follows non-whitespace: no GPT-2 pre-token spans that position (each
   * starts with at most one space and then holds no whitespace, or is all whitespace), and the
   * pattern looks behind nothing, so the halves split into the same pre-tokens as the whole.
   * Positions inside an added token that holds whitespace are skipped.
   */
  safeCut(text: string, before: number): number {
    for (let at = before; ; ) {
      const i = whitespaceCut(text, at);
      if (i < 0 || !this.addedWithWhitespace.some((c) => overlaps(text, c, i))) return i;
      at = i - 1;
    }
  }

  encode(text: string): number[] {
    const out: number[] = [];
    const splitter = this.addedSplitter;
    if (splitter === null) {
      this.encodeOrdinary(text, out);
      return out;
    }
    splitter.lastIndex = 0;
    let start = 0;
    for (let m = splitter.exec(text); m !== null; m = splitter.exec(text)) {
      if (m.index > start) this.encodeOrdinary(text.slice(start, m.index), out);
      out.push(this.addedByContent.get(m[0])!);
      start = m.index + m[0].length;
    }
    if (start < text.length) this.encodeOrdinary(text.slice(start), out);
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const bytes = this.idBytes[ids[i]!];
      if (bytes === undefined) throw new Error(`BPE decode: token id ${ids[i]} is not in the vocabulary (size ${this.vocabSize})`);
      parts.push(bytes);
      total += bytes.length;
    }
    const all = new Uint8Array(total);
    let offset = 0;
    for (const p of parts) {
      all.set(p, offset);
      offset += p.length;
    }
    // Not fatal: a cut between the tokens of one character shows as U+FFFD, as in Hugging Face.
    return utf8Decoder.decode(all);
  }

  /** The token string of an id (byte-level characters, or an added token's content). */
  idToToken(id: number): string | undefined {
    const added = this.addedById.get(id);
    if (added) return added.content;
    const bytes = this.idBytes[id];
    return bytes === undefined ? undefined : bytesToSymbols(bytes);
  }

  private encodeOrdinary(text: string, out: number[]): void {
    forEachPretokenRange(text, (start, end) => this.cache.appendRange(text, start, end, out), this.wordRegex);
  }

  /** BPE on one pre-token: its bytes as symbols, merged by rank. */
  private encodeWord(word: string): number[] {
    const bytes = utf8.encode(word);
    const sym = new Int32Array(bytes.length);
    for (let i = 0; i < bytes.length; i++) sym[i] = this.idOfByte[bytes[i]!]!;
    return applyMerges(sym, this.mergeTable);
  }

  toJSON(): object {
    return {
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: this.addedTokens.map((t) => ({
        id: t.id,
        content: t.content,
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: false,
        special: t.special,
      })),
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: null,
        end_of_word_suffix: null,
        fuse_unk: false,
        byte_fallback: false,
        ignore_merges: false,
        vocab: this.vocab,
        // "left right" strings: byte-level symbols never contain a space, and every version of
        // the Hugging Face libraries reads this form.
        merges: this.merges.map(([l, r]) => `${l} ${r}`),
      },
    };
  }
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Why a tokenizer.json cannot run on ByteLevelBpe, or null when it can (our own files and
 * GPT-2-style ones). Anything else goes to the general Hugging Face implementation.
 */
export function byteLevelBpeIncompatibility(json: unknown): string | null {
  if (!isObject(json)) return 'not a JSON object';
  const model = json.model;
  if (!isObject(model) || model.type !== 'BPE') return 'model.type is not "BPE"';
  if (json.normalizer !== null && json.normalizer !== undefined) return 'it has a normalizer';
  const pre = json.pre_tokenizer;
  if (!isObject(pre) || pre.type !== 'ByteLevel') return 'pre_tokenizer is not ByteLevel';
  if (pre.add_prefix_space === true) return 'pre_tokenizer adds a prefix space';
  if (pre.use_regex === false) return 'pre_tokenizer does not use the GPT-2 regex';
  const dec = json.decoder;
  if (!isObject(dec) || dec.type !== 'ByteLevel') return 'decoder is not ByteLevel';
  if (model.dropout !== null && model.dropout !== undefined) return 'model has BPE dropout';
  if (model.byte_fallback === true) return 'model uses byte fallback';
  if (model.ignore_merges === true) return 'model ignores merges';
  if (model.continuing_subword_prefix) return 'model has a continuing-subword prefix';
  if (model.end_of_word_suffix) return 'model has an end-of-word suffix';
  if (!isObject(model.vocab) || !Array.isArray(model.merges)) return 'model lacks vocab or merges';
  const added = json.added_tokens ?? [];
  if (!Array.isArray(added)) return 'added_tokens is not an array';
  for (const t of added) {
    if (!isObject(t) || typeof t.content !== 'string' || typeof t.id !== 'number') return 'an added token lacks id or content';
    if (t.single_word || t.lstrip || t.rstrip) return `added token ${JSON.stringify(t.content)} has single_word/lstrip/rstrip`;
  }
  for (let b = 0; b < 256; b++) {
    if (!(BYTE_TO_UNICODE[b]! in model.vocab)) return `vocab lacks the symbol for byte ${b}`;
  }
  return null;
}

/** Builds a ByteLevelBpe from a tokenizer.json object; `eosId` picks the end-of-sequence token. */
export function byteLevelBpeFromJSON(json: unknown, eosId: number): ByteLevelBpe {
  const why = byteLevelBpeIncompatibility(json);
  if (why !== null) throw new Error(`tokenizer.json cannot be read as a byte-level BPE: ${why}`);
  const j = json as Json;
  const model = j.model as Json;
  const merges = (model.merges as unknown[]).map((m, i): [string, string] => {
    if (typeof m === 'string') {
      const space = m.indexOf(' ');
      if (space <= 0) throw new Error(`tokenizer.json model.merges[${i}]: expected "left right", got ${JSON.stringify(m)}`);
      return [m.slice(0, space), m.slice(space + 1)];
    }
    if (Array.isArray(m) && m.length === 2 && typeof m[0] === 'string' && typeof m[1] === 'string') return [m[0], m[1]];
    throw new Error(`tokenizer.json model.merges[${i}]: expected "left right" or [left, right], got ${JSON.stringify(m)}`);
  });
  const addedTokens = ((j.added_tokens ?? []) as Json[]).map((t) => ({
    id: t.id as number,
    content: t.content as string,
    special: t.special === true,
  }));
  return new ByteLevelBpe({ vocab: model.vocab as Record<string, number>, merges, addedTokens, eosId });
}
