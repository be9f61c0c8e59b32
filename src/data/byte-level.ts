/**
 * GPT-2's byte-level conventions, shared by BPE training, encoding and decoding.
 *
 * Every byte is shown as one printable Unicode character so that vocabulary entries and merges
 * are plain strings in tokenizer.json (a space becomes "Ġ", a newline "Ċ"). Text is first cut into
 * "words" by GPT-2's pre-tokenisation regex; BPE merges never cross a word boundary.
 */

/**
 * Whitespace as the Rust regex engine of Hugging Face `tokenizers` sees it (Unicode White_Space).
 * JavaScript's `\s` differs in two characters: it counts U+FEFF (a byte-order mark, which is
 * not White_Space) and omits U+0085 (NEXT LINE, which is), so `\s` would split text differently.
 */
export const WHITESPACE_CLASS = '\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const WS = `[${WHITESPACE_CLASS}]`;
const NOT_WS = `[^${WHITESPACE_CLASS}]`;

/** GPT-2's pre-tokenisation pattern, exactly as the Hugging Face ByteLevel pre-tokenizer uses it. */
export const GPT2_PRETOKENIZE_PATTERN =
  `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^${WHITESPACE_CLASS}\\p{L}\\p{N}]+|${WS}+(?!${NOT_WS})|${WS}+`;

const WHITESPACE = new RegExp(WS);

/** Whether a character (one UTF-16 unit) is whitespace in the sense of the pre-tokenisation regex. */
export function isWhitespace(ch: string): boolean {
  return WHITESPACE.test(ch);
}

/** A fresh global regex for the pattern (a /g regex carries lastIndex state, so never share one). */
export function pretokenizeRegex(): RegExp {
  return new RegExp(GPT2_PRETOKENIZE_PATTERN, 'gu');
}

/** Classes of ASCII characters in the pattern: \p{L}, \p{N}, its whitespace, anything else. */
const LETTER = 1, DIGIT = 2, SPACE = 3, OTHER = 0;
const ASCII_CLASS = new Uint8Array(128).map((_, c) =>
  (c >= 65 && c <= 90) || (c >= 97 && c <= 122) ? LETTER : c >= 48 && c <= 57 ? DIGIT : (c >= 9 && c <= 13) || c === 32 ? SPACE : OTHER,
);

/**
 * Where the pre-token starting at `i` ends, decided on ASCII characters alone, or -1 when a
 * character it would have to look at is not ASCII (the regex decides then). Follows the pattern's
 * alternatives in order: contractions, an optional space before a run of letters, digits or
 * other characters, then whitespace (all of a run before the end of the text or before more
 * whitespace; else all but its last character, which begins the next pre-token, unless the run is
 * that one character).
 */
function asciiPretokenEnd(text: string, i: number): number {
  const n = text.length;
  const c = text.charCodeAt(i);
  if (c >= 128) return -1;
  if (c === 39 && i + 1 < n) {
    const d = text.charCodeAt(i + 1); // 's 't 'm 'd, 're 've 'll
    if (d === 115 || d === 116 || d === 109 || d === 100) return i + 2;
    const e = i + 2 < n ? text.charCodeAt(i + 2) : 0;
    if ((d === 114 && e === 101) || (d === 118 && e === 101) || (d === 108 && e === 108)) return i + 3;
  }
  let from = i;
  let cls = ASCII_CLASS[c]!;
  if (c === 32 && i + 1 < n) {
    const d = text.charCodeAt(i + 1);
    if (d >= 128) return -1;
    if (ASCII_CLASS[d] !== SPACE) {
      from = i + 1;
      cls = ASCII_CLASS[d]!;
    }
  }
  let k = from + 1;
  for (; k < n; k++) {
    const d = text.charCodeAt(k);
    if (d >= 128) return -1;
    if (ASCII_CLASS[d] !== cls) break;
  }
  if (cls !== SPACE || k === n) return k;
  return k - i >= 2 ? k - 1 : k;
}

/**
 * Calls `onWord` with the bounds [start, end) of each GPT-2 pre-token of `text`, in order.
 * Pre-tokens are contiguous (the pattern matches at every position). ASCII text is cut by hand
 * (asciiPretokenEnd); elsewhere a sticky regex's test() finds the end without the match objects
 * exec() allocates. Equal to the regex on any text (property test in data-bpe.test.ts).
 */
export function forEachPretokenRange(text: string, onWord: (start: number, end: number) => void, sticky: RegExp = stickyPretokenizeRegex()): void {
  let start = 0;
  while (start < text.length) {
    let end = asciiPretokenEnd(text, start);
    if (end < 0) {
      sticky.lastIndex = start;
      // Cannot fail (some alternative matches any character); a code point of its own if it did.
      end = sticky.test(text) ? sticky.lastIndex : start + (text.codePointAt(start)! > 0xffff ? 2 : 1);
    }
    onWord(start, end);
    start = end;
  }
}

/** Calls `onWord` with each GPT-2 pre-token of `text`, in order (see forEachPretokenRange). */
export function forEachPretoken(text: string, onWord: (word: string) => void, sticky: RegExp = stickyPretokenizeRegex()): void {
  forEachPretokenRange(text, (start, end) => onWord(text.slice(start, end)), sticky);
}

/** A sticky regex for forEachPretoken (reused to avoid compiling one per call). */
export function stickyPretokenizeRegex(): RegExp {
  return new RegExp(GPT2_PRETOKENIZE_PATTERN, 'yu');
}

/** Splits text into GPT-2 pre-tokens ("words"); concatenating them gives back the text. */
export function pretokenize(text: string): string[] {
  return text.match(pretokenizeRegex()) ?? [];
}

function buildByteToUnicode(): string[] {
  // Printable Latin-1 bytes map to themselves; the rest are shifted to code points 256 and up,
  // in byte order, so that no byte maps to whitespace or a control character.
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const isPrintable = new Set(printable);
  const table: string[] = new Array(256);
  let shifted = 0;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCodePoint(isPrintable.has(b) ? b : 256 + shifted++);
  }
  return table;
}

/** BYTE_TO_UNICODE[b] is the character that stands for byte b. */
export const BYTE_TO_UNICODE: readonly string[] = buildByteToUnicode();

/** The inverse of BYTE_TO_UNICODE. */
export const UNICODE_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_UNICODE.map((c, b) => [c, b]));

/** The byte-level string of some UTF-8 bytes (what appears in vocab and merges). */
export function bytesToSymbols(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += BYTE_TO_UNICODE[bytes[i]!];
  return s;
}

/** The bytes behind a byte-level string; throws on a character that stands for no byte. */
export function symbolsToBytes(symbols: string): Uint8Array {
  const chars = Array.from(symbols);
  const out = new Uint8Array(chars.length);
  for (let i = 0; i < chars.length; i++) {
    const b = UNICODE_TO_BYTE.get(chars[i]!);
    if (b === undefined) {
      throw new Error(`byte-level token ${JSON.stringify(symbols)}: character ${JSON.stringify(chars[i])} stands for no byte`);
    }
    out[i] = b;
  }
  return out;
}
