/**
 * Read access to a token cache written by token-cache.ts: the packed stream of token ids, cut into
 * sequences on demand, so the file is never loaded whole. A complete cache is memory-mapped when the
 * native addon is present (mapped-windows.ts); a cache still being written, and any read the maps
 * cannot serve, is read with positioned reads (a growing file is never mapped).
 *
 * A dataset can also be read while its cache is still being written (`TokenDataset.build`): the
 * ids on disk so far are readable, `waitForTokens` waits for more, and the sequence count it
 * gives a sampler (`sequences`) grows until the cache is complete. Training starts on the first
 * shard while the rest is tokenised (sampler.ts says why the order stays the same).
 */
import { closeSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import type { Corpus } from './corpus.ts';
import type { SequenceCount } from './sampler.ts';
import { DEFAULT_MAP_WINDOW_BYTES, MappedWindows } from './mapped-windows.ts';
import { buildTokenCache, bytesPerToken, TOKEN_CACHE_FORMAT, TOKEN_CACHE_VERSION, type TokenCacheMeta, type TokenCacheOptions, type TokenDtype } from './token-cache.ts';
import type { Tokenizer } from './tokenizer.ts';

/** A token cache being built, readable as it grows. */
export interface TokenCacheBuild {
  readonly dataset: TokenDataset;
  /** Resolves when the cache is complete (and the dataset with it); rejects if tokenising fails or is stopped. */
  readonly done: Promise<Awaited<ReturnType<typeof buildTokenCache>>>;
  /** Stops tokenising, keeping the partial cache for a later run to resume; resolves when stopped. */
  stop(): Promise<void>;
}

/** How a dataset reads its complete cache. */
export interface TokenDatasetReadOptions {
  /** Memory-map the complete cache when the native addon is present (default true). */
  memoryMap?: boolean;
  /** Bytes per mapped window (default 256 MiB); a multiple of the token width. */
  mapWindowBytes?: number;
}

/** How many readTokens calls each read path served (tests check that the maps are used). */
export interface TokenReadCounts {
  mapped: number;
  positioned: number;
}

interface Waiter {
  tokens: number;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class TokenDataset {
  private completeMeta: TokenCacheMeta | null = null;
  private path: string;
  private fd = -1;
  private dtype: TokenDtype;
  /** Tokens readable now (all of them once complete). */
  private written = 0;
  private failure: Error | null = null;
  private waiters: Waiter[] = [];
  private scratch = new ArrayBuffer(0);
  private mapped: MappedWindows | null = null;
  private readonly counts: TokenReadCounts = { mapped: 0, positioned: 0 };

  private constructor(
    tokensPath: string,
    dtype: TokenDtype,
    private readonly corpusName: string,
    private readonly readOptions: TokenDatasetReadOptions = {},
  ) {
    this.path = tokensPath;
    this.dtype = dtype;
  }

  /** Opens a complete cache by its sidecar path (<key>.json). */
  static open(metaPath: string, readOptions: TokenDatasetReadOptions = {}): TokenDataset {
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
    const ds = new TokenDataset(metaPath.replace(/\.json$/, '.tokens'), meta.dtype, meta.corpus, readOptions);
    ds.attach(ds.path);
    ds.complete(meta);
    return ds;
  }

  /** Tokenises `corpus` into cacheDir unless already cached there, then opens the cache. */
  static async fromCorpus(corpus: Corpus, tokenizer: Tokenizer, options: TokenCacheOptions, readOptions: TokenDatasetReadOptions = {}): Promise<TokenDataset> {
    const { metaPath } = await buildTokenCache(corpus, tokenizer, options);
    return TokenDataset.open(metaPath, readOptions);
  }

  /**
   * Starts building the cache of (corpus, tokenizer) — or finds it complete — and returns a
   * dataset that can be read while it grows. `options.onWritten` and `options.signal` are its own.
   */
  static build(
    corpus: Corpus,
    tokenizer: Tokenizer,
    options: Omit<TokenCacheOptions, 'onWritten' | 'signal'>,
    readOptions: TokenDatasetReadOptions = {},
  ): TokenCacheBuild {
    const ds = new TokenDataset('', 'uint16', corpus.name, readOptions);
    const abort = new AbortController();
    const done = buildTokenCache(corpus, tokenizer, {
      ...options,
      signal: abort.signal,
      onWritten: ({ path, dtype, tokens }) => {
        if (ds.fd < 0) {
          ds.dtype = dtype;
          ds.attach(path);
        }
        ds.grow(tokens);
      },
    });
    const settled = done
      .then((built) => {
        if (ds.fd < 0) ds.attach(built.metaPath.replace(/\.json$/, '.tokens'));
        ds.dtype = built.meta.dtype;
        ds.complete(built.meta);
      })
      .catch((err: Error) => ds.fail(err));
    return {
      dataset: ds,
      done,
      stop: async () => {
        abort.abort(new Error(`tokenising ${corpus.name} was stopped; the next run resumes the partial cache`));
        await settled;
      },
    };
  }

  private attach(path: string): void {
    this.path = path;
    this.fd = openSync(path, 'r');
  }

  private complete(meta: TokenCacheMeta): void {
    const size = fstatSync(this.fd).size;
    if (size !== meta.numTokens * bytesPerToken(meta.dtype)) {
      this.close();
      throw new Error(`token cache ${this.path}: ${size} bytes, expected ${meta.numTokens} ${meta.dtype} tokens`);
    }
    this.completeMeta = meta;
    this.path = this.path.replace(/\.tmp-\d+-[0-9a-f]+$/, '');
    if (this.readOptions.memoryMap !== false && size > 0) {
      const width = bytesPerToken(meta.dtype);
      this.mapped = MappedWindows.open(this.path, size, this.readOptions.mapWindowBytes ?? DEFAULT_MAP_WINDOW_BYTES, width);
    }
    this.grow(meta.numTokens);
  }

  private grow(tokens: number): void {
    this.written = tokens;
    const ready = (w: Waiter) => this.completeMeta !== null || w.tokens <= tokens;
    for (const w of this.waiters.filter(ready)) w.resolve();
    this.waiters = this.waiters.filter((w) => !ready(w));
  }

  private fail(err: Error): void {
    this.failure = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  /** The complete cache's sidecar; throws while it is still being written. */
  get meta(): TokenCacheMeta {
    if (this.completeMeta === null) throw new Error(`token cache of ${this.corpusName}: still being written (${this.written} tokens so far)`);
    return this.completeMeta;
  }

  get tokensPath(): string {
    return this.path;
  }

  /** Whether every token of the corpus is on disk. */
  get isComplete(): boolean {
    return this.completeMeta !== null;
  }

  /** Tokens that can be read now (all of them once complete). */
  get tokensAvailable(): number {
    return this.written;
  }

  /** All tokens; throws while the cache is still being written. */
  get numTokens(): number {
    return this.meta.numTokens;
  }

  /** Resolves once `tokens` tokens can be read, or the cache is complete (with fewer). */
  waitForTokens(tokens: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.completeMeta !== null || tokens <= this.written) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ tokens, resolve, reject }));
  }

  /** Full sequences of seqLen tokens; throws when the corpus is shorter than one sequence, or still being tokenised. */
  numSequences(seqLen: number): number {
    if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`numSequences: seqLen must be a positive integer, got ${seqLen}`);
    const meta = this.meta;
    const n = Math.floor(meta.numTokens / seqLen);
    if (n === 0) {
      throw new Error(
        `corpus ${meta.corpus}: ${meta.numTokens} tokens (${meta.numDocuments} documents with EOS), ` +
          `shorter than one sequence of ${seqLen} tokens`,
      );
    }
    return n;
  }

  /** Full sequences readable now: all of them once complete (see numSequences), else those on disk so far. */
  sequencesAvailable(seqLen: number): number {
    return this.isComplete ? this.numSequences(seqLen) : Math.floor(this.written / seqLen);
  }

  /** The sequence count a sampler draws from: growing while the cache is written. */
  sequences(seqLen: number): SequenceCount {
    return {
      available: () => Math.floor(this.written / seqLen),
      total: () => (this.isComplete ? this.numSequences(seqLen) : null),
      waitFor: (n) => this.waitForTokens(n * seqLen),
    };
  }

  /** Tokens [start, start + count) of the packed stream. */
  readTokens(start: number, count: number, out: Int32Array = new Int32Array(count)): Int32Array {
    if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || count < 0 || start + count > this.written) {
      const what = this.isComplete ? '' : ' written so far';
      throw new Error(`token cache ${this.path}: tokens [${start}, ${start + count}) out of range [0, ${this.written})${what}`);
    }
    if (out.length < count) throw new Error(`readTokens: output holds ${out.length} tokens, need ${count}`);
    const width = bytesPerToken(this.dtype);
    const region = this.mappedRegion(start * width, count * width);
    if (region) {
      this.counts.mapped++;
      this.copyIds(region.buffer, region.offset, count, out);
      return out;
    }
    this.counts.positioned++;
    const bytes = count * width;
    if (this.scratch.byteLength < bytes) this.scratch = new ArrayBuffer(bytes);
    const view = new Uint8Array(this.scratch, 0, bytes);
    let done = 0;
    while (done < bytes) {
      const n = readSync(this.fd, view, done, bytes - done, start * width + done);
      if (n === 0) throw new Error(`token cache ${this.path}: unexpected end of file`);
      done += n;
    }
    this.copyIds(this.scratch, 0, count, out);
    return out;
  }

  /** The mapped bytes of a range inside one window; null to read it from the file instead. */
  private mappedRegion(byteStart: number, byteLength: number): { buffer: ArrayBuffer; offset: number } | null {
    if (!this.mapped || byteLength === 0) return null;
    try {
      return this.mapped.bytes(byteStart, byteLength);
    } catch (err) {
      // Mapping can fail where reading does not (address space limits, a file system without
      // mmap): positioned reads give the same bytes, so the dataset keeps working without maps.
      process.emitWarning(`token cache ${this.path}: memory-mapping failed, reading with positioned reads (${(err as Error).message})`);
      this.mapped = null;
      return null;
    }
  }

  private copyIds(buffer: ArrayBuffer, byteOffset: number, count: number, out: Int32Array): void {
    out.set(this.dtype === 'uint16' ? new Uint16Array(buffer, byteOffset, count) : new Uint32Array(buffer, byteOffset, count));
  }

  /** How many reads the memory maps and the positioned reads have served so far. */
  get readCounts(): Readonly<TokenReadCounts> {
    return { ...this.counts };
  }

  /** Sequence i of length seqLen: tokens [i·seqLen, (i+1)·seqLen). */
  readSequence(i: number, seqLen: number, out?: Int32Array): Int32Array {
    const n = this.isComplete ? this.numSequences(seqLen) : Math.floor(this.written / seqLen);
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new Error(`readSequence: index ${i} out of range [0, ${n}) for seqLen ${seqLen}${this.isComplete ? '' : ' (tokenised so far)'}`);
    }
    return this.readTokens(i * seqLen, seqLen, out);
  }

  close(): void {
    this.mapped?.close();
    this.mapped = null;
    if (this.fd >= 0) {
      closeSync(this.fd);
      this.fd = -1;
    }
  }
}
