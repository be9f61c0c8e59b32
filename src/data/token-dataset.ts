/**
 * Read access to a token cache written by token-cache.ts: the packed stream of token ids, cut into
 * sequences on demand with positioned reads, so the file is never loaded whole.
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import type { Corpus } from './corpus.ts';
import { buildTokenCache, bytesPerToken, TOKEN_CACHE_FORMAT, TOKEN_CACHE_VERSION, type TokenCacheMeta, type TokenCacheOptions } from './token-cache.ts';
import type { Tokenizer } from './tokenizer.ts';

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
