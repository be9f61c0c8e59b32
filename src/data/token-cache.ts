/**
 * The token cache: a corpus tokenised once into a flat binary file of token ids on disk
 * (documents each followed by EOS, concatenated — the packed stream of spec §8), plus a JSON
 * sidecar. Files are named by a hash of the corpus fingerprint and the tokenizer JSON, so a later
 * run with the same data and tokenizer reuses the file and any change makes a new one.
 *
 * Layout in cacheDir:  <key>.tokens  little-endian uint16 (vocabSize <= 65536) or uint32 ids
 *                      <key>.json    TokenCacheMeta, written last: its presence marks a complete cache
 * Both are written to a temporary name and renamed into place, so a crash never leaves a partial
 * cache that looks complete.
 */
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { mkdir, open, rename, rm, stat, writeFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import { join } from 'node:path';
import type { Corpus } from './corpus.ts';
import type { Tokenizer } from './tokenizer.ts';

export const TOKEN_CACHE_FORMAT = 'relora-token-cache';
export const TOKEN_CACHE_VERSION = 1;

export type TokenDtype = 'uint16' | 'uint32';

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

const bytesPerToken = (dtype: TokenDtype) => (dtype === 'uint16' ? 2 : 4);

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

async function writeAtomically(path: string, write: (tmp: string) => Promise<void>): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    await write(tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

/**
 * Makes sure the token cache of (corpus, tokenizer) exists, tokenising the corpus if it does not.
 * Returns the path of its sidecar and whether an existing cache was reused.
 */
export async function buildTokenCache(
  corpus: Corpus,
  tokenizer: Tokenizer,
  options: TokenCacheOptions,
): Promise<{ metaPath: string; meta: TokenCacheMeta; reused: boolean }> {
  const key = tokenCacheKey(corpus, tokenizer);
  const paths = cachePaths(options.cacheDir, key);
  const existing = await readCompleteMeta(options.cacheDir, key);
  if (existing) return { metaPath: paths.meta, meta: existing, reused: true };
  if (endianness() !== 'LE') throw new Error('token cache: only little-endian machines are supported');

  await mkdir(options.cacheDir, { recursive: true });
  const dtype = dtypeForVocab(tokenizer.vocabSize);
  const limit = dtype === 'uint16' ? 65536 : 2 ** 32;
  const chunk = dtype === 'uint16' ? new Uint16Array(1 << 20) : new Uint32Array(1 << 20);
  const progressEvery = options.progressEvery ?? 1000;
  let fill = 0;
  let numTokens = 0;
  let numDocuments = 0;

  await writeAtomically(paths.tokens, async (tmp) => {
    const fh = await open(tmp, 'w');
    try {
      const flush = async () => {
        if (fill > 0) await fh.write(new Uint8Array(chunk.buffer, 0, fill * chunk.BYTES_PER_ELEMENT));
        fill = 0;
      };
      for await (const doc of corpus.documents()) {
        const ids = tokenizer.encode(doc);
        ids.push(tokenizer.eosId);
        for (const id of ids) {
          if (!(id >= 0 && id < limit && id < tokenizer.vocabSize)) {
            throw new Error(`token cache for ${corpus.name}: tokenizer produced id ${id}, outside [0, ${tokenizer.vocabSize})`);
          }
          chunk[fill++] = id;
          if (fill === chunk.length) await flush();
        }
        numTokens += ids.length;
        numDocuments++;
        if (options.onProgress && numDocuments % progressEvery === 0) options.onProgress({ documents: numDocuments, tokens: numTokens });
      }
      await flush();
      await fh.sync();
    } finally {
      await fh.close();
    }
    if (numDocuments === 0) throw new Error(`token cache: corpus ${corpus.name} has no documents`);
  });
  options.onProgress?.({ documents: numDocuments, tokens: numTokens });

  const meta: TokenCacheMeta = {
    format: TOKEN_CACHE_FORMAT,
    version: TOKEN_CACHE_VERSION,
    key,
    dtype,
    byteOrder: 'little',
    numTokens,
    numDocuments,
    eosId: tokenizer.eosId,
    vocabSize: tokenizer.vocabSize,
    corpus: corpus.name,
    corpusFingerprint: corpus.fingerprint,
    tokenizerHash: tokenizerHash(tokenizer),
    createdAt: new Date().toISOString(),
  };
  await writeAtomically(paths.meta, (tmp) => writeFile(tmp, JSON.stringify(meta, null, 2) + '\n'));
  return { metaPath: paths.meta, meta, reused: false };
}

/**
 * Read access to a token cache: the packed stream, cut into sequences on demand with positioned
 * reads, so the file is never loaded whole.
 */
export class TokenDataset {
  readonly meta: TokenCacheMeta;
  readonly tokensPath: string;
  private fd: number;
  private scratch = new ArrayBuffer(0);

  private constructor(meta: TokenCacheMeta, tokensPath: string) {
    this.meta = meta;
    this.tokensPath = tokensPath;
    this.fd = openSync(tokensPath, 'r');
    const size = fstatSync(this.fd).size;
    if (size !== meta.numTokens * bytesPerToken(meta.dtype)) {
      closeSync(this.fd);
      throw new Error(`token cache ${tokensPath}: ${size} bytes, expected ${meta.numTokens} ${meta.dtype} tokens`);
    }
  }

  /** Opens a complete cache by its sidecar path (<key>.json). */
  static open(metaPath: string): TokenDataset {
    let meta: TokenCacheMeta;
    try {
      meta = JSON.parse(readFileSync(metaPath, 'utf8')) as TokenCacheMeta;
    } catch (err) {
      throw new Error(`token cache ${metaPath}: cannot read sidecar (${(err as Error).message})`);
    }
    if (meta.format !== TOKEN_CACHE_FORMAT || meta.version !== TOKEN_CACHE_VERSION) {
      throw new Error(`token cache ${metaPath}: format ${meta.format} v${meta.version}, expected ${TOKEN_CACHE_FORMAT} v${TOKEN_CACHE_VERSION}`);
    }
    if (meta.dtype !== 'uint16' && meta.dtype !== 'uint32') throw new Error(`token cache ${metaPath}: unknown dtype ${String(meta.dtype)}`);
    return new TokenDataset(meta, metaPath.replace(/\.json$/, '.tokens'));
  }

  /** Tokenises `corpus` into cacheDir unless already cached there, then opens the cache. */
  static async fromCorpus(corpus: Corpus, tokenizer: Tokenizer, options: TokenCacheOptions): Promise<TokenDataset> {
    const { metaPath } = await buildTokenCache(corpus, tokenizer, options);
    return TokenDataset.open(metaPath);
  }

  get numTokens(): number {
    return this.meta.numTokens;
  }

  /** Full sequences of seqLen tokens; throws when the corpus is shorter than one sequence. */
  numSequences(seqLen: number): number {
    if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`numSequences: seqLen must be a positive integer, got ${seqLen}`);
    const n = Math.floor(this.meta.numTokens / seqLen);
    if (n === 0) {
      throw new Error(
        `corpus ${this.meta.corpus}: ${this.meta.numTokens} tokens (${this.meta.numDocuments} documents with EOS), ` +
          `shorter than one sequence of ${seqLen} tokens`,
      );
    }
    return n;
  }

  /** Tokens [start, start + count) of the packed stream. */
  readTokens(start: number, count: number, out: Int32Array = new Int32Array(count)): Int32Array {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.meta.numTokens) {
      throw new Error(`token cache ${this.tokensPath}: tokens [${start}, ${start + count}) out of range [0, ${this.meta.numTokens})`);
    }
    if (out.length < count) throw new Error(`readTokens: output holds ${out.length} tokens, need ${count}`);
    const width = bytesPerToken(this.meta.dtype);
    const bytes = count * width;
    if (this.scratch.byteLength < bytes) this.scratch = new ArrayBuffer(bytes);
    const view = new Uint8Array(this.scratch, 0, bytes);
    let done = 0;
    while (done < bytes) {
      const n = readSync(this.fd, view, done, bytes - done, start * width + done);
      if (n === 0) throw new Error(`token cache ${this.tokensPath}: unexpected end of file`);
      done += n;
    }
    const ids = this.meta.dtype === 'uint16' ? new Uint16Array(this.scratch, 0, count) : new Uint32Array(this.scratch, 0, count);
    for (let i = 0; i < count; i++) out[i] = ids[i]!;
    return out;
  }

  /** Sequence i of length seqLen: tokens [i·seqLen, (i+1)·seqLen). */
  readSequence(i: number, seqLen: number, out?: Int32Array): Int32Array {
    const n = this.numSequences(seqLen);
    if (!Number.isInteger(i) || i < 0 || i >= n) throw new Error(`readSequence: index ${i} out of range [0, ${n}) for seqLen ${seqLen}`);
    return this.readTokens(i * seqLen, seqLen, out);
  }

  close(): void {
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
  }
}
