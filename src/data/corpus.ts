/**
 * A Corpus is a named, re-readable stream of documents with a fingerprint that changes whenever
 * its content might have changed; token caches are keyed by that fingerprint. Documents can be
 * read whole (`documents()`, for ordinary sizes) or as pieces (`pieces()`, any size).
 */
import { stat } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { BROWN_TEXT_VERSION, brownCorpusVersion, DEFAULT_BROWN_VALIDATION_EVERY, loadBrownCorpus } from './brown.ts';
import { readJsonlPieces } from './jsonl.ts';
import { readParquetFile } from './parquet.ts';
import { joinPieces, piecesOf, type TextPiece } from './pieces.ts';
import { dataFormatOf, resolveDataFiles } from './sources.ts';
import { readTextPieces, type TextFileMode } from './text-files.ts';

export interface Corpus {
  /** For messages: what the data is ("brown:train", "3 files under data/…"). */
  readonly name: string;
  /** Changes whenever the documents might: paths, sizes, modification times, read options. */
  readonly fingerprint: string;
  /** The documents, streamed; may be iterated more than once. A document too long for one string is an error. */
  documents(): AsyncIterable<string>;
  /** The documents as pieces (see pieces.ts): documents of any size, in bounded memory. */
  pieces(): AsyncIterable<TextPiece>;
  /** Bytes of the sources when known (file corpora): what a sample is a fraction of. */
  readonly sizeBytes?: number;
}

/** A corpus from its pieces; `documents()` joins them. */
export function corpusFromPieces(name: string, fingerprint: string, pieces: () => AsyncIterable<TextPiece>, sizeBytes?: number): Corpus {
  return { name, fingerprint, sizeBytes, pieces, documents: () => joinPieces(pieces(), name) };
}

export interface FileCorpusOptions {
  /** JSONL field / Parquet column holding the text. Default "text". */
  textField?: string;
  /** .txt files: one document per file (default) or documents separated by blank lines. */
  txtMode?: TextFileMode;
  /** Base for relative sources. Default: the working directory. */
  cwd?: string;
  /** Largest piece read at once in bytes (default 16 MiB; tests make it small). */
  maxPieceBytes?: number;
  /** Told about records skipped while reading (null texts), once per file and pass. */
  onNote?: (message: string) => void;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Documents from the files behind `sources` (files, folders, globs), read in file order. */
export async function fileCorpus(sources: readonly string[], options: FileCorpusOptions = {}): Promise<Corpus> {
  const textField = options.textField ?? 'text';
  const txtMode = options.txtMode ?? 'file';
  if (textField.length === 0) throw new Error('data textField: must not be empty');
  const files = await resolveDataFiles(sources, options.cwd);
  const identity = [];
  for (const f of files) {
    const s = await stat(f);
    identity.push({ path: f, size: s.size, mtimeMs: s.mtimeMs });
  }
  const fingerprint = sha256(JSON.stringify({ kind: 'files', files: identity, textField, txtMode }));
  const name = files.length === 1 ? files[0]! : `${files.length} files (${sources.join(', ')})`;
  const read = { maxPieceBytes: options.maxPieceBytes, onNote: options.onNote };
  return corpusFromPieces(name, fingerprint, async function* () {
    for (const f of files) {
      const format = dataFormatOf(f);
      if (format === 'txt') yield* readTextPieces(f, txtMode, read);
      else if (format === 'jsonl') yield* readJsonlPieces(f, textField, read);
      else yield* piecesOf(readParquetFile(f, textField, read));
    }
  }, identity.reduce((sum, f) => sum + f.size, 0));
}

/** One split of the shipped Brown corpus (see brown.ts). */
export function brownCorpus(split: 'train' | 'validation', validationEvery = DEFAULT_BROWN_VALIDATION_EVERY): Corpus {
  return corpusFromPieces(
    `brown:${split}`,
    sha256(JSON.stringify({ kind: 'brown', version: brownCorpusVersion(), split, validationEvery, textVersion: BROWN_TEXT_VERSION })),
    () => piecesOf(loadBrownCorpus({ validationEvery })[split]),
  );
}

/** Documents already in memory (tests, small experiments). */
export function memoryCorpus(name: string, docs: readonly string[]): Corpus {
  return corpusFromPieces(name, sha256(JSON.stringify({ kind: 'memory', docs })), () => piecesOf(docs));
}
