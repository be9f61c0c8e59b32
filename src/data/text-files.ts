/**
 * Documents from plain-text files: either each file is one document, or documents are
 * separated by blank lines (lines holding only whitespace). Both are streamed as pieces, so a
 * file (or paragraph) of any size is read in bounded memory.
 */
import { createReadStream } from 'node:fs';
import { firstInvalidUtf8Line, LineDecoder, readLineParts } from './lines.ts';
import { joinPieces, type TextPiece } from './pieces.ts';

export type TextFileMode = 'file' | 'blank-line';

/** Documents as whole strings (see readTextPieces for documents of any size). */
export function readTextFile(path: string, mode: TextFileMode = 'file'): AsyncGenerator<string> {
  return joinPieces(readTextPieces(path, mode), path);
}

export interface TextReadOptions {
  /** Largest piece in bytes (default 16 MiB; tests make it small). */
  maxPieceBytes?: number;
}

const DEFAULT_PIECE_BYTES = 16 * 2 ** 20;
const noText = (path: string) => new Error(`${path}: the file holds no text (empty or only whitespace)`);

export function readTextPieces(path: string, mode: TextFileMode = 'file', options: TextReadOptions = {}): AsyncGenerator<TextPiece> {
  const maxPieceBytes = options.maxPieceBytes ?? DEFAULT_PIECE_BYTES;
  return mode === 'file' ? wholeFilePieces(path, maxPieceBytes) : paragraphPieces(path, maxPieceBytes);
}

/** The whole file as one document, in pieces of about maxPieceBytes. */
async function* wholeFilePieces(path: string, maxPieceBytes: number): AsyncGenerator<TextPiece> {
  // ignoreBOM keeps every U+FEFF; the one at the very start is dropped below, as a byte-order mark.
  const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  let first = true;
  let hasText = false;
  let held: string | null = null;
  const decode = async (bytes: Uint8Array, stream: boolean): Promise<string> => {
    try {
      return decoder.decode(bytes, { stream });
    } catch {
      throw new Error(`${path}: line ${await firstInvalidUtf8Line(path)} is not valid UTF-8`);
    }
  };
  for await (const chunk of createReadStream(path, { highWaterMark: maxPieceBytes }) as AsyncIterable<Buffer>) {
    let text = await decode(chunk, true);
    if (first && text.startsWith('\uFEFF')) text = text.slice(1);
    first = false;
    if (text.length === 0) continue;
    hasText ||= text.trim().length > 0;
    // Hold one piece back so that the last one can carry `end`.
    if (held !== null) yield { text: held, end: false };
    held = text;
  }
  const tail = await decode(new Uint8Array(0), false);
  held = (held ?? '') + tail;
  hasText ||= tail.trim().length > 0;
  if (!hasText) throw noText(path);
  yield { text: held, end: true };
}

/**
 * Documents separated by blank lines; a paragraph's lines are joined by "\n". A line longer than
 * one part is streamed as paragraph text, whatever it holds.
 */
async function* paragraphPieces(path: string, maxPieceBytes: number): AsyncGenerator<TextPiece> {
  const decoder = new LineDecoder(path);
  let buffer = ''; // text of the open paragraph not yet yielded
  let open = false; // a paragraph has begun
  let streaming = false; // inside a line that comes in several parts
  let count = 0;
  for await (const part of readLineParts(path, maxPieceBytes)) {
    const text = decoder.decode(part);
    if (!streaming && (!part.end || text.trim().length > 0)) {
      buffer += open ? `\n${text}` : text;
      open = true;
      streaming = !part.end;
    } else if (streaming) {
      buffer += text;
      streaming = !part.end;
    } else {
      // A blank line ends the open paragraph.
      if (open) {
        yield { text: buffer, end: true };
        count++;
      }
      buffer = '';
      open = false;
      continue;
    }
    if (buffer.length >= maxPieceBytes) {
      yield { text: buffer, end: false };
      buffer = '';
    }
  }
  if (open) {
    yield { text: buffer, end: true };
    count++;
  }
  if (count === 0) throw noText(path);
}
