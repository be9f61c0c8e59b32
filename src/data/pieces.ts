/**
 * Documents as streams of text pieces, so that a document of any size (a 600 MB JSONL line, a
 * multi-GB .txt file) passes through the readers and the tokenizer in bounded memory: no step
 * ever holds a whole huge document as one string or its ids as one array.
 *
 * Readers cut pieces anywhere (at read-buffer boundaries); `tokenizerChunks` re-cuts them into
 * chunks of at most `maxChars` at positions where the tokenizer gives the same ids for the two
 * halves as for the whole (see Tokenizer.safeCut), so chunked and whole encoding agree.
 */
import { isWhitespace } from './byte-level.ts';

/** A stretch of one document's text; `end` marks the document's last piece (which may be empty). */
export interface TextPiece {
  text: string;
  end: boolean;
}

/** Strings a whole document may have in `documents()`; larger ones must be read as pieces. */
export const MAX_WHOLE_DOCUMENT_CHARS = 256 * 2 ** 20;

/** Default largest chunk handed to the tokenizer at once (UTF-16 units). */
export const DEFAULT_CHUNK_CHARS = 2 ** 20;

/** Whole documents from pieces; a document longer than `maxChars` is an error naming `what`. */
export async function* joinPieces(
  pieces: AsyncIterable<TextPiece>,
  what: string,
  maxChars = MAX_WHOLE_DOCUMENT_CHARS,
): AsyncGenerator<string> {
  let parts: string[] = [];
  let length = 0;
  let index = 0;
  for await (const piece of pieces) {
    parts.push(piece.text);
    length += piece.text.length;
    if (length > maxChars) {
      throw new Error(
        `${what}: document ${index + 1} is longer than ${maxChars} characters, too long to hold as one string; ` +
          'it can only be read piece by piece (the token cache and tokenizer training do that)',
      );
    }
    if (piece.end) {
      yield parts.length === 1 ? parts[0]! : parts.join('');
      parts = [];
      length = 0;
      index++;
    }
  }
  if (parts.length > 0) throw new Error(`${what}: the last document has no end (internal error in a reader)`);
}

/** Pieces of whole documents: one piece each. */
export async function* piecesOf(documents: Iterable<string> | AsyncIterable<string>): AsyncGenerator<TextPiece> {
  for await (const text of documents) yield { text, end: true };
}

/**
 * The default cut: before a whitespace character that follows a non-whitespace one. It is exact
 * for GPT-2-style pre-tokenisation (no pre-token spans such a position) and close elsewhere.
 * Returns the largest such position in [from, before], or -1.
 */
export function whitespaceCut(text: string, before: number, from = 1): number {
  for (let i = Math.min(before, text.length - 1); i >= Math.max(from, 1); i--) {
    if (isWhitespace(text[i]!) && !isWhitespace(text[i - 1]!)) return i;
  }
  return -1;
}

/** A chunk of a document for the tokenizer: `first` when it starts the document. */
export interface TextChunk {
  text: string;
  first: boolean;
  end: boolean;
}

/**
 * Re-cuts document pieces into chunks of at most `maxChars` (up to 4·maxChars where the text
 * offers no cut point sooner), each cut made by `cut(text, before)`: a position in (0, before],
 * or -1. Without any cut point in 4·maxChars of text the chunk is cut hard at maxChars (never
 * inside a surrogate pair); only there may ids differ from encoding the document whole.
 */
export async function* tokenizerChunks(
  pieces: AsyncIterable<TextPiece>,
  cut: (text: string, before: number) => number,
  maxChars = DEFAULT_CHUNK_CHARS,
): AsyncGenerator<TextChunk> {
  if (!Number.isInteger(maxChars) || maxChars < 2) throw new Error(`tokenizer chunk size must be an integer >= 2, got ${maxChars}`);
  let carry = '';
  let first = true;
  for await (const piece of pieces) {
    carry = carry.length === 0 ? piece.text : carry + piece.text;
    while (carry.length > maxChars) {
      let at = cut(carry, maxChars);
      if (at <= 0) at = cut(carry, Math.min(carry.length - 1, 4 * maxChars));
      if (at <= 0) {
        if (carry.length < 4 * maxChars) break; // no cut point yet: wait for more text or the document's end
        at = maxChars;
        const code = carry.charCodeAt(at - 1);
        if (code >= 0xd800 && code <= 0xdbff) at--;
      }
      yield { text: carry.slice(0, at), first, end: false };
      first = false;
      carry = carry.slice(at);
    }
    if (piece.end) {
      yield { text: carry, first, end: true };
      carry = '';
      first = true;
    }
  }
}
