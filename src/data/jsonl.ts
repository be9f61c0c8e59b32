/**
 * Documents from JSON Lines files: one JSON object per line, the text in a named field. Lines
 * of ordinary size go through JSON.parse; a line longer than one part (16 MiB by default) is
 * read by a streaming parser, its text yielded in pieces, so no line is too long to read.
 *
 * A record whose field is null is skipped and counted (as Hugging Face `datasets` users expect,
 * and as the Parquet reader does with null cells); a missing field or one of another type is an
 * error naming the line.
 */
import { StreamingTextField, type FieldOutcome } from './json-text-field.ts';
import { LineDecoder, readLineParts } from './lines.ts';
import { joinPieces, type TextPiece } from './pieces.ts';

export interface RecordReadOptions {
  /** Largest line read whole, and largest piece, in bytes (default 16 MiB; tests make it small). */
  maxPieceBytes?: number;
  /** Told about records skipped because their text is null. */
  onNote?: (message: string) => void;
}

/** Documents as whole strings (see readJsonlPieces for documents of any size). */
export function readJsonlFile(path: string, textField = 'text', options: RecordReadOptions = {}): AsyncGenerator<string> {
  return joinPieces(readJsonlPieces(path, textField, options), path);
}

function fieldProblem(path: string, line: number, textField: string, outcome: FieldOutcome): Error {
  if (outcome.kind === 'missing') {
    return new Error(`${path}: line ${line} has no field "${textField}" (fields: ${outcome.keys.join(', ') || '(none)'})`);
  }
  const what = outcome.kind === 'other' ? ` (${outcome.what})` : '';
  return new Error(`${path}: line ${line} has a non-string field "${textField}"${what}`);
}

/** The message for records skipped because their text field is null (shared with Parquet). */
export function nullsSkippedNote(path: string, field: string, count: number): string {
  return `${path}: skipped ${count} record${count === 1 ? '' : 's'} whose "${field}" is null`;
}

export async function* readJsonlPieces(path: string, textField = 'text', options: RecordReadOptions = {}): AsyncGenerator<TextPiece> {
  const decoder = new LineDecoder(path);
  let count = 0;
  let nulls = 0;
  let long: StreamingTextField | null = null;
  let longHasText = false;
  for await (const part of readLineParts(path, options.maxPieceBytes)) {
    if (long === null && part.end) {
      const text = decoder.decode(part);
      if (text.trim().length === 0) continue;
      let record: unknown;
      try {
        record = JSON.parse(text);
      } catch (err) {
        throw new Error(`${path}: line ${part.number} is not valid JSON (${(err as Error).message})`);
      }
      if (typeof record !== 'object' || record === null || Array.isArray(record)) {
        throw new Error(`${path}: line ${part.number} is not a JSON object`);
      }
      const value = (record as Record<string, unknown>)[textField];
      if (value === null) {
        nulls++;
        continue;
      }
      if (typeof value !== 'string') {
        throw fieldProblem(path, part.number, textField, value === undefined ? { kind: 'missing', keys: Object.keys(record) } : { kind: 'other', what: typeof value });
      }
      if (value.length === 0) continue;
      count++;
      yield { text: value, end: true };
      continue;
    }
    // A line too long to read whole.
    let bytes: Uint8Array = part.bytes;
    if (long === null) {
      long = new StreamingTextField(textField, (message) => new Error(`${path}: line ${part.number} is not valid JSON (${message})`));
      if (part.number === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3); // byte-order mark
    }
    const text = long.feed(bytes);
    if (text.length > 0) {
      longHasText = true;
      yield { text, end: false };
    }
    if (!part.end) continue;
    const outcome = long.finish();
    long = null;
    if (outcome.kind === 'null') nulls++;
    else if (outcome.kind !== 'string') throw fieldProblem(path, part.number, textField, outcome);
    else if (longHasText) {
      count++;
      yield { text: '', end: true };
    }
    longHasText = false;
  }
  if (nulls > 0) options.onNote?.(nullsSkippedNote(path, textField, nulls));
  if (count === 0) throw new Error(`${path}: no documents (no non-empty "${textField}" values)`);
}
