/**
 * Atomic file replacement: a reader (or a run resumed after a crash or power cut) sees either
 * the old file or the complete new one, never a torn mixture.
 *
 * Recipe: write `<path>.tmp-<pid>-<n>` next to the target (same directory, so the rename stays
 * on one filesystem), fsync it so its bytes are on disk before its name is, rename it over the
 * target (atomic on POSIX), then fsync the directory so the rename itself survives a crash.
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Appends bytes at the end of the file being written. */
export type ChunkWriter = (chunk: Uint8Array) => Promise<void>;

/** Errno codes that mean "no room left": a full disk, or the user's quota. */
const NO_SPACE = new Set(['ENOSPC', 'EDQUOT']);

/**
 * A file-system error met while writing `path`, as an Error that names the file and says what
 * to do (for a full disk: free space there or write elsewhere); the errno `code` is kept for
 * callers that branch on it. Other errors (a producer's own refusal) are returned as they are.
 */
export function writeFailure(path: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException;
  if (!(e instanceof Error) || typeof e.code !== 'string' || e.syscall === undefined) return err as Error;
  let reason: string;
  if (NO_SPACE.has(e.code)) reason = `the disk is full (${e.code}); free some space on the device holding ${dirname(path)}, or write elsewhere`;
  else if (e.code === 'EROFS') reason = `the file system holding ${dirname(path)} is read-only (EROFS)`;
  else if (e.code === 'EACCES' || e.code === 'EPERM') reason = `permission denied (${e.code}); check the permissions of ${dirname(path)}`;
  else reason = e.message;
  return Object.assign(new Error(`cannot write ${path}: ${reason}`, { cause: err }), { code: e.code });
}

// The counter keeps two concurrent writes of the same path in one process from sharing a
// temporary file; the pid does the same across processes.
let tmpCounter = 0;

function temporaryPath(path: string): string {
  tmpCounter += 1;
  return `${path}.tmp-${process.pid}-${tmpCounter}`;
}

async function writeFully(handle: FileHandle, chunk: Uint8Array): Promise<void> {
  let done = 0;
  while (done < chunk.byteLength) {
    const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done);
    done += bytesWritten;
  }
}

/**
 * Makes a completed rename durable. Some platforms and filesystems (Windows, some network
 * mounts) cannot open or fsync a directory; there the rename is still atomic, only its
 * durability across power loss is up to the OS, so those specific refusals are not errors.
 */
async function fsyncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EISDIR' && code !== 'EINVAL' && code !== 'EPERM' && code !== 'ENOTSUP') {
      throw new Error(`atomic write: could not fsync directory "${dir}": ${(err as Error).message}`, {
        cause: err,
      });
    }
  } finally {
    await handle?.close();
  }
}

/**
 * Streams a file into place atomically. `produce` receives a writer and appends chunks in
 * order; if it throws (or a write fails) the temporary file is removed and the target is left
 * untouched. A failed write is reported by writeFailure (the file named, a full disk said so).
 */
export async function atomicWriteStream(
  path: string,
  produce: (write: ChunkWriter) => Promise<void>,
): Promise<void> {
  const tmp = temporaryPath(path);
  let handle: FileHandle | undefined;
  try {
    handle = await open(tmp, 'w');
    const h = handle;
    await produce((chunk) => writeFully(h, chunk));
    await h.sync();
    await h.close();
    handle = undefined;
    await rename(tmp, path);
  } catch (err) {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw writeFailure(path, err);
  }
  await fsyncDirectory(dirname(path));
}

/** Writes a whole file atomically. Strings are written as UTF-8. */
export async function atomicWriteFile(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  await atomicWriteStream(path, (write) => write(bytes));
}
