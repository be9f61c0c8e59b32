/**
 * Ranks that would train different things must not start: each rank hashes what it was given
 * (its configuration, relora's own code, the data it read, the weights it starts from) and the
 * hashes are compared across ranks, so a mismatch is an error at start naming what differs,
 * not a silently wrong model.
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Communicator } from './communicator.ts';

/** What one rank hashed: a label (for the message) and the bytes or text. */
export type Fingerprints = Record<string, string | Uint8Array>;

function digest(value: string | Uint8Array): Uint8Array {
  return createHash('sha256').update(value).digest();
}

/** Throws on every rank, naming each item and the ranks whose hash differs from rank 0's. */
export function requireSameOnEveryRank(comm: Communicator, items: Fingerprints): void {
  if (comm.size === 1) return;
  const labels = Object.keys(items);
  const mine = new Uint8Array(32 * labels.length);
  labels.forEach((l, i) => mine.set(digest(items[l]), 32 * i));
  const all = comm.allGatherBytes(mine);
  const problems: string[] = [];
  labels.forEach((label, i) => {
    const at = (r: number): string => Buffer.from(all[r].subarray(32 * i, 32 * i + 32)).toString('hex');
    const differ = all.map((_, r) => r).filter((r) => at(r) !== at(0));
    if (differ.length) problems.push(`${label} of rank${differ.length > 1 ? 's' : ''} ${differ.join(', ')} differ${differ.length > 1 ? '' : 's'} from rank 0's`);
  });
  if (problems.length) {
    throw new Error(`the ${comm.size} processes of this job were not started alike: ${problems.join('; ')}. Start every rank with the same command, relora version and data`);
  }
}

let codeHash: string | null = null;

/** A hash of relora's own code as this process runs it (the source or compiled folder it loaded from). */
export function codeFingerprint(): string {
  if (codeHash) return codeHash;
  const root = dirname(dirname(fileURLToPath(import.meta.url)));
  const h = createHash('sha256');
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const path = join(dir, e.name);
      if (e.isDirectory()) walk(path);
      else if (/\.(ts|js)$/.test(e.name)) h.update(path.slice(root.length)).update(readFileSync(path));
    }
  };
  walk(root);
  return (codeHash = h.digest('hex'));
}

/** A hash of float32 weights (every tensor's name and bytes). */
export function weightsFingerprint(tensors: Record<string, { data: Float32Array | Int32Array; size: number }>): Uint8Array {
  const h = createHash('sha256');
  for (const name of Object.keys(tensors).sort()) {
    const t = tensors[name];
    h.update(name).update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.size * 4));
  }
  return h.digest();
}
