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
 * untouched.
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
    throw err;
  }
  await fsyncDirectory(dirname(path));
}

/** Writes a whole file atomically. Strings are written as UTF-8. */
export async function atomicWriteFile(path: string, data: Uint8Array | string): Promise<void> {
  const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data;
  await atomicWriteStream(path, (write) => write(bytes));
}
