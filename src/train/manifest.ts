/**
 * Manifests: the size and SHA-256 of each file a folder's integrity rests on (a checkpoint's
 * tensors and state; a run's defining files, see run-folder.ts), recorded when the files are
 * written and compared when they are read.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';

/** One file of a manifest: its name (relative to the manifest's folder), size and SHA-256. */
export interface ManifestEntry {
  file: string;
  bytes: number;
  sha256: string;
}

/** What a manifest's `files` list must hold. */
export const ManifestFilesSchema = z.array(z.object({
  file: z.string().min(1),
  bytes: z.number().int().nonnegative(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits'),
}));

/** Zod issues as `"path": message; …`, for errors that name the field. */
export function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `"${i.path.join('.') || '(root)'}": ${i.message}`).join('; ');
}

const HASH_CHUNK = 1 << 22;

/** SHA-256 of a file, read in chunks so a multi-gigabyte checkpoint is never held in memory at once. */
function sha256File(path: string): string {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(HASH_CHUNK);
  const fd = openSync(path, 'r');
  try {
    for (let n; (n = readSync(fd, buf, 0, HASH_CHUNK, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

/** The manifest entry of `dir/file` as it is now. */
export function manifestEntry(dir: string, file: string): ManifestEntry {
  const p = join(dir, file);
  return { file, bytes: statSync(p).size, sha256: sha256File(p) };
}

/**
 * How `dir/entry.file` differs from what its manifest recorded: 'missing', 'size' (with the
 * size found), 'checksum', or null when it is unchanged.
 */
export function manifestMismatch(dir: string, entry: ManifestEntry): { kind: 'missing' | 'size' | 'checksum'; bytes?: number } | null {
  const p = join(dir, entry.file);
  if (!existsSync(p)) return { kind: 'missing' };
  const bytes = statSync(p).size;
  if (bytes !== entry.bytes) return { kind: 'size', bytes };
  return sha256File(p) === entry.sha256 ? null : { kind: 'checksum' };
}
