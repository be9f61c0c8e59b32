/**
 * The temporary file a token cache is written to (token-cache.ts): buffered writes of ids, fsynced
 * progress records, and adopting the partial file of a writer that is no longer running — a
 * killed process, or a build this process stopped — so that tokenising resumes where it was.
 */
import { writeSync } from 'node:fs';
import { open, readdir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { isProcessAlive } from './process-alive.ts';

export type TokenDtype = 'uint16' | 'uint32';

/** Bytes one token id takes in the cache file. */
export const bytesPerToken = (dtype: TokenDtype): number => (dtype === 'uint16' ? 2 : 4);

/** An error for a failed write that names the file and, for a full disk, what to do. */
export function cacheWriteError(path: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOSPC' || code === 'EDQUOT') {
    return new Error(
      `token cache: cannot write ${path}: the disk is full (${code}). Free some space and run again ` +
        '(the tokens written so far are kept and tokenising resumes), or put the cache on a larger disk (RELORA_CACHE_DIR)',
    );
  }
  return new Error(`token cache: cannot write ${path} (${code ?? (err as Error).message})`);
}

const TEMP_PATTERN = /^(.*)\.tmp-(\d+)-[0-9a-f]+$/;


export interface Progress {
  documents: number;
  tokens: number;
}

async function readProgress(path: string): Promise<Progress | null> {
  try {
    const p = JSON.parse(await readFile(path, 'utf8')) as Progress;
    return Number.isSafeInteger(p.documents) && Number.isSafeInteger(p.tokens) && p.documents >= 0 && p.tokens >= 0 ? p : null;
  } catch {
    return null;
  }
}

/** Temporary token files this process is writing now (a stopped build's file is left to adopt). */
const writing = new Set<string>();

/** The end of the last turn taken to open a temporary file (see openingTurn). */
let lastTurn: Promise<void> = Promise.resolve();
/** Keys of builds of this process that have started and not yet opened their file. */
const starting = new Map<string, number>();

/**
 * A place in line for opening a temporary file of `key`, taken synchronously when a build starts:
 * builds of this process open one after another, and none removes the stale partial file of a
 * key another one is about to build (opening removes stale files of other keys, so the training
 * set's build would otherwise delete the partial validation cache of a killed run, or the other
 * way round, before its own build adopted it). `ready` resolves when it is this build's turn;
 * call `done` once it has opened (or given up).
 */
export function openingTurn(key: string): { ready: Promise<void>; done: () => void } {
  const ready = lastTurn;
  let release!: () => void;
  lastTurn = new Promise<void>((resolve) => { release = resolve; });
  starting.set(key, (starting.get(key) ?? 0) + 1);
  let finished = false;
  const done = () => {
    if (finished) return;
    finished = true;
    const n = starting.get(key)! - 1;
    if (n === 0) starting.delete(key);
    else starting.set(key, n);
    release();
  };
  return { ready, done };
}

/**
 * Opens a new temporary token file `tmp` for key, resuming from the partial file of a writer no
 * longer running when there is one. The file counts as being written until doneWriting(tmp).
 */
export async function openTemporary(cacheDir: string, key: string, tmp: string, dtype: TokenDtype): Promise<{ writer: TokenWriter; resumed: Progress | null }> {
  writing.add(tmp);
  try {
    const resumed = await adoptOrCleanTemporaries(cacheDir, key, tmp);
    return { writer: await TokenWriter.open(tmp, dtype, resumed ?? undefined), resumed };
  } catch (err) {
    writing.delete(tmp);
    throw err;
  }
}

/** After the build of `tmp` ended (renamed into place, kept for a later run, or removed). */
export function doneWriting(tmp: string): void {
  writing.delete(tmp);
}

/**
 * Whether a temporary file's writer has gone: its process ended, or (for the key being built)
 * this process stopped writing it. Other files of this process are left alone.
 */
function abandoned(dir: string, base: string, pid: number, sameKey: boolean): boolean {
  return pid === process.pid ? sameKey && !writing.has(join(dir, base)) : !isProcessAlive(pid);
}

/** The cache key of a temporary file's name part before `.tokens.tmp-…`. */
const keyOf = (tokensName: string): string => tokensName.replace(/\.tokens$/, '');

/**
 * Removes temporary files that writers no longer running left in cacheDir, except the partial
 * token file of `key` with the most tokens, which is renamed to `ours` (with its progress file)
 * and whose progress is returned, to be resumed.
 */
async function adoptOrCleanTemporaries(cacheDir: string, key: string, ours: string): Promise<Progress | null> {
  const stale: string[] = [];
  let best: { path: string; progress: Progress } | null = null;
  for (const name of await readdir(cacheDir)) {
    const m = TEMP_PATTERN.exec(name.replace(/\.progress(\.new)?$/, ''));
    if (m === null || !abandoned(cacheDir, m[0], Number(m[2]), m[1] === `${key}.tokens`)) continue;
    if (m[1] !== `${key}.tokens` && starting.has(keyOf(m[1]!))) continue; // another build of this process adopts it
    const path = join(cacheDir, name);
    stale.push(path);
    if (m[1] === `${key}.tokens` && name === m[0]) {
      const progress = await readProgress(`${path}.progress`);
      if (progress !== null && (best === null || progress.tokens > best.progress.tokens)) best = { path, progress };
    }
  }
  const keep = best === null ? [] : [best.path, `${best.path}.progress`];
  await Promise.all(stale.filter((p) => !keep.includes(p)).map((p) => rm(p, { force: true })));
  if (best === null) return null;
  try {
    // Another run may adopt the same file at the same moment: only one rename succeeds.
    await rename(best.path, ours);
    await rename(`${best.path}.progress`, `${ours}.progress`);
    return best.progress;
  } catch {
    await rm(ours, { force: true });
    return null;
  }
}

/** Buffered writes of ids to the temporary token file, with fsynced progress records. */
export class TokenWriter {
  private readonly buffer: Uint16Array | Uint32Array;
  private fill = 0;
  /** Where the next bytes go: after the tokens already in the file (a resumed file is appended to). */
  private position: number;
  tokens: number;
  documents: number;

  private constructor(readonly path: string, private readonly fh: FileHandle, dtype: TokenDtype, start: Progress) {
    this.buffer = dtype === 'uint16' ? new Uint16Array(1 << 20) : new Uint32Array(1 << 20);
    this.tokens = start.tokens;
    this.documents = start.documents;
    this.position = start.tokens * this.buffer.BYTES_PER_ELEMENT;
  }

  /** Opens `path` for writing after the first `start.tokens` tokens (a resumed file is cut there). */
  static async open(path: string, dtype: TokenDtype, start: Progress = { documents: 0, tokens: 0 }): Promise<TokenWriter> {
    let fh: FileHandle;
    try {
      fh = await open(path, start.tokens > 0 ? 'r+' : 'w');
      if (start.tokens > 0) await fh.truncate(start.tokens * bytesPerToken(dtype));
    } catch (err) {
      throw cacheWriteError(path, err);
    }
    return new TokenWriter(path, fh, dtype, start);
  }

  async append(ids: Uint32Array, documents: number): Promise<void> {
    for (let i = 0; i < ids.length; ) {
      const n = Math.min(ids.length - i, this.buffer.length - this.fill);
      this.buffer.set(ids.subarray(i, i + n), this.fill);
      this.fill += n;
      i += n;
      if (this.fill === this.buffer.length) await this.flush();
    }
    this.tokens += ids.length;
    this.documents += documents;
  }

  /** Tokens in the file (appended and flushed): what a reader can read back. */
  get flushedTokens(): number {
    return this.position / this.buffer.BYTES_PER_ELEMENT;
  }

  /**
   * Writes the buffered ids. Synchronously: a write of at most a few megabytes into the page cache
   * takes well under a millisecond, and while training runs the builder gets one event-loop turn
   * per update, which an asynchronous write would spend on itself (one batch per update).
   */
  async flush(): Promise<void> {
    if (this.fill === 0) return;
    const bytes = new Uint8Array(this.buffer.buffer, 0, this.fill * this.buffer.BYTES_PER_ELEMENT);
    try {
      let done = 0;
      while (done < bytes.length) done += writeSync(this.fh.fd, bytes, done, bytes.length - done, this.position + done);
      this.position += bytes.length;
    } catch (err) {
      throw cacheWriteError(this.path, err);
    }
    this.fill = 0;
  }

  /** Makes everything written so far durable and records it, for a later run to resume from. */
  async checkpoint(): Promise<void> {
    await this.flush();
    const progressPath = `${this.path}.progress`;
    try {
      await this.fh.datasync();
      await writeFile(`${progressPath}.new`, JSON.stringify({ documents: this.documents, tokens: this.tokens }));
      await rename(`${progressPath}.new`, progressPath);
    } catch (err) {
      await rm(`${progressPath}.new`, { force: true });
      throw cacheWriteError(progressPath, err);
    }
  }

  async finish(): Promise<void> {
    await this.flush();
    try {
      await this.fh.sync();
    } catch (err) {
      throw cacheWriteError(this.path, err);
    } finally {
      await this.fh.close();
    }
  }

  /** Closes the file, keeping it and its last progress record for a later run to resume. */
  async suspend(): Promise<void> {
    await this.fh.close().catch(() => {});
  }

  async abandon(): Promise<void> {
    await this.fh.close().catch(() => {});
    await Promise.all([rm(this.path, { force: true }), rm(`${this.path}.progress`, { force: true }), rm(`${this.path}.progress.new`, { force: true })]);
  }
}

