/**
 * The token cache: a corpus tokenised once into a flat binary file of token ids on disk
 * (documents each followed by EOS, concatenated — the packed stream of docs/method.md), plus a
 * JSON sidecar. Files are named by a hash of the corpus fingerprint and the tokenizer JSON, so a
 * later run with the same data and tokenizer reuses the file and any change makes a new one.
 *
 * Layout in cacheDir:  <key>.tokens  little-endian uint16 (vocabSize <= 65536) or uint32 ids
 *                      <key>.json    TokenCacheMeta, written last: its presence marks a complete cache
 * The ids are written to <key>.tokens.tmp-<pid>-<random> and renamed into place, so a crash never
 * leaves a partial cache that looks complete. Beside the temporary file, <…>.progress records how
 * many documents and tokens of it are on disk (fsynced); a run that finds the temporary file of a
 * process that no longer exists resumes from there instead of starting again, and temporary
 * files of dead processes for other keys are removed.
 *
 * Documents are read as pieces and tokenised in chunks (pieces.ts), so no document is too large;
 * with `workers` > 1 the chunks are tokenised by worker threads, written in the same order.
 * Reading a cache back is token-dataset.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { Corpus } from './corpus.ts';
import { batchEncoder } from './encode-batches.ts';
import { DEFAULT_CHUNK_CHARS, tokenizerChunks, whitespaceCut, type TextChunk, type TextPiece } from './pieces.ts';
import type { Tokenizer } from './tokenizer.ts';
import { bytesPerToken, cacheWriteError, doneWriting, openingTurn, openTemporary, type TokenDtype } from './token-writer.ts';

export { bytesPerToken, cacheWriteError, TokenWriter, type TokenDtype } from './token-writer.ts';

export const TOKEN_CACHE_FORMAT = 'relora-token-cache';
/** 2: GPT-2 pre-tokenisation follows Unicode White_Space (U+FEFF, U+0085), which changes some ids. */
export const TOKEN_CACHE_VERSION = 2;

export interface TokenCacheMeta {
  format: typeof TOKEN_CACHE_FORMAT;
  version: number;
  key: string;
  dtype: TokenDtype;
  byteOrder: 'little';
  numTokens: number;
  numDocuments: number;
  eosId: number;
  vocabSize: number;
  /** Corpus.name, for messages. */
  corpus: string;
  corpusFingerprint: string;
  tokenizerHash: string;
  createdAt: string;
}

export interface TokenCacheOptions {
  cacheDir: string;
  /** Called after every `progressEvery` documents (default 1000) and at the end. */
  onProgress?: (progress: { documents: number; tokens: number }) => void;
  progressEvery?: number;
  /** Worker threads that tokenise in parallel (default 1: this thread). */
  workers?: number;
  /** Largest text chunk tokenised at once, in UTF-16 units (default 1 Mi). */
  maxChunkChars?: number;
  /** Characters sent to the encoder at once (default 512 Ki; tests make it small). */
  batchChars?: number;
  /** Tokens between two fsynced progress records of a partial cache (default 16 Mi). */
  checkpointTokens?: number;
  /**
   * Told where the ids are being written and how many of them can be read back (a reader may
   * use them before the cache is complete; see TokenDataset.build): once at the start and after
   * every batch. The file is renamed to `<key>.tokens` at the end; an open descriptor stays valid.
   */
  onWritten?: (written: { path: string; dtype: TokenDtype; tokens: number }) => void;
  /**
   * Stops tokenising after the current batch: the partial cache is kept (up to its last progress
   * record) for a later run to resume, and the build rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** Hash of a tokenizer's JSON form: same file, same ids. */
export function tokenizerHash(tokenizer: Tokenizer): string {
  return sha256(JSON.stringify(tokenizer.toJSON()));
}

export function tokenCacheKey(corpus: Corpus, tokenizer: Tokenizer): string {
  const identity = { version: TOKEN_CACHE_VERSION, corpus: corpus.fingerprint, tokenizer: tokenizerHash(tokenizer) };
  return sha256(JSON.stringify(identity)).slice(0, 32);
}

export function dtypeForVocab(vocabSize: number): TokenDtype {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}


function cachePaths(cacheDir: string, key: string) {
  return { tokens: join(cacheDir, `${key}.tokens`), meta: join(cacheDir, `${key}.json`) };
}

/** The sidecar of a complete cache, or null when there is none (or it is damaged). */
async function readCompleteMeta(cacheDir: string, key: string): Promise<TokenCacheMeta | null> {
  const paths = cachePaths(cacheDir, key);
  if (!existsSync(paths.meta) || !existsSync(paths.tokens)) return null;
  try {
    const meta = JSON.parse(readFileSync(paths.meta, 'utf8')) as TokenCacheMeta;
    const size = (await stat(paths.tokens)).size;
    if (meta.format !== TOKEN_CACHE_FORMAT || meta.version !== TOKEN_CACHE_VERSION || meta.key !== key) return null;
    if (size !== meta.numTokens * bytesPerToken(meta.dtype)) return null;
    return meta;
  } catch {
    return null;
  }
}

/** The pieces after the first `documents` documents (already in a resumed partial cache). */
async function* skipDocuments(pieces: AsyncIterable<TextPiece>, documents: number): AsyncGenerator<TextPiece> {
  let seen = 0;
  for await (const piece of pieces) {
    if (seen >= documents) yield piece;
    else if (piece.end) seen++;
  }
}

/** `source`, ending with the signal's reason as soon as it aborts (even while a read is pending). */
async function* untilAborted<T>(source: AsyncIterable<T>, signal: AbortSignal | undefined): AsyncGenerator<T> {
  if (!signal) return yield* source;
  const it = source[Symbol.asyncIterator]();
  const aborted = new Promise<never>((_, reject) => {
    signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true });
  });
  aborted.catch(() => {}); // observed by the race below
  signal.throwIfAborted();
  for (;;) {
    const next = await Promise.race([it.next(), aborted]);
    if (next.done) return;
    yield next.value;
  }
}

/** Batches of chunks of about `chars` characters, each ending at a chunk boundary. */
async function* batchesOf(chunks: AsyncIterable<TextChunk>, chars: number): AsyncGenerator<TextChunk[]> {
  let batch: TextChunk[] = [];
  let size = 0;
  for await (const chunk of chunks) {
    batch.push(chunk);
    size += chunk.text.length;
    if (size >= chars) {
      yield batch;
      batch = [];
      size = 0;
    }
  }
  if (batch.length > 0) yield batch;
}

/** Characters per batch sent to the encoder: large enough to amortise messages, small enough to overlap. */
const BATCH_CHARS = 1 << 19;

/**
 * Makes sure the token cache of (corpus, tokenizer) exists, tokenising the corpus if it does not
 * (resuming a partial cache a killed run left). Returns the path of its sidecar and whether an
 * existing cache was reused.
 */
export async function buildTokenCache(
  corpus: Corpus,
  tokenizer: Tokenizer,
  options: TokenCacheOptions,
): Promise<{ metaPath: string; meta: TokenCacheMeta; reused: boolean; resumedTokens: number; workersUsed: number }> {
  const key = tokenCacheKey(corpus, tokenizer);
  const turn = openingTurn(key); // before any await: see openingTurn
  const paths = cachePaths(options.cacheDir, key);
  const dtype = dtypeForVocab(tokenizer.vocabSize);
  const tmp = `${paths.tokens}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  let opened: Awaited<ReturnType<typeof openTemporary>>;
  try {
    const existing = await readCompleteMeta(options.cacheDir, key);
    if (existing) return { metaPath: paths.meta, meta: existing, reused: true, resumedTokens: 0, workersUsed: 0 };
    if (endianness() !== 'LE') throw new Error('token cache: only little-endian machines are supported');
    await mkdir(options.cacheDir, { recursive: true });
    await turn.ready;
    opened = await openTemporary(options.cacheDir, key, tmp, dtype);
  } finally {
    turn.done();
  }
  const { writer, resumed } = opened;
  const progressEvery = options.progressEvery ?? 1000;
  const checkpointTokens = options.checkpointTokens ?? 16 * 2 ** 20;
  const encoder = batchEncoder(tokenizer, options.workers ?? 1);
  let workersUsed = 0;
  const cut = tokenizer.safeCut ? (text: string, before: number) => tokenizer.safeCut!(text, before) : whitespaceCut;
  const written = () => options.onWritten?.({ path: tmp, dtype, tokens: writer.flushedTokens });
  written();
  try {
    let nextProgress = Math.ceil((writer.documents + 1) / progressEvery) * progressEvery;
    let nextCheckpoint = writer.tokens + checkpointTokens;
    const takeOne = async () => {
      const { ids, documents, endsDocument } = await encoder.take();
      await writer.append(ids, documents);
      if (options.onProgress && writer.documents >= nextProgress) {
        options.onProgress({ documents: writer.documents, tokens: writer.tokens });
        nextProgress = Math.floor(writer.documents / progressEvery) * progressEvery + progressEvery;
      }
      // A progress record must fall between documents: resuming skips whole documents.
      if (writer.tokens >= nextCheckpoint && endsDocument) {
        await writer.checkpoint();
        nextCheckpoint = writer.tokens + checkpointTokens;
      }
      // After the progress record: a reader that starts training on these ids (the first shard)
      // would otherwise run without one, and a run killed then would tokenise them again.
      if (options.onWritten) {
        await writer.flush();
        written();
      }
    };
    let inFlight = 0;
    const pieces = untilAborted(resumed ? skipDocuments(corpus.pieces(), resumed.documents) : corpus.pieces(), options.signal);
    for await (const batch of batchesOf(tokenizerChunks(pieces, cut, options.maxChunkChars ?? DEFAULT_CHUNK_CHARS), options.batchChars ?? BATCH_CHARS)) {
      encoder.submit(batch);
      if (++inFlight >= encoder.depth) {
        await takeOne();
        inFlight--;
      }
    }
    for (; inFlight > 0; inFlight--) await takeOne();
    if (writer.documents === 0) throw new Error(`token cache: corpus ${corpus.name} has no documents`);
    await writer.finish();
    try {
      await rename(tmp, paths.tokens);
    } catch (err) {
      throw cacheWriteError(paths.tokens, err);
    }
    await rm(`${tmp}.progress`, { force: true });
  } catch (err) {
    if (options.signal?.aborted) {
      await writer.suspend();
      throw err;
    }
    await writer.abandon();
    const message = (err as Error).message;
    throw message.startsWith('tokenizer produced id') ? new Error(`token cache for ${corpus.name}: ${message}`) : err;
  } finally {
    doneWriting(tmp);
    workersUsed = encoder.workersStarted;
    await encoder.close();
  }
  options.onProgress?.({ documents: writer.documents, tokens: writer.tokens });

  const meta: TokenCacheMeta = {
    format: TOKEN_CACHE_FORMAT,
    version: TOKEN_CACHE_VERSION,
    key,
    dtype,
    byteOrder: 'little',
    numTokens: writer.tokens,
    numDocuments: writer.documents,
    eosId: tokenizer.eosId,
    vocabSize: tokenizer.vocabSize,
    corpus: corpus.name,
    corpusFingerprint: corpus.fingerprint,
    tokenizerHash: tokenizerHash(tokenizer),
    createdAt: new Date().toISOString(),
  };
  const metaTmp = `${paths.meta}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(metaTmp, JSON.stringify(meta, null, 2) + '\n');
    await rename(metaTmp, paths.meta);
  } catch (err) {
    await rm(metaTmp, { force: true });
    throw cacheWriteError(paths.meta, err);
  }
  return { metaPath: paths.meta, meta, reused: false, resumedTokens: resumed?.tokens ?? 0, workersUsed };
}
