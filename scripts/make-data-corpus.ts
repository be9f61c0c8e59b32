/**
 * Writes a JSONL corpus of about `bytes` bytes made of the shipped Brown documents, repeated in
 * a shuffled order (so a repeated document is not the one before it), streaming: any size.
 *
 *   node --import tsx scripts/make-data-corpus.ts OUT.jsonl [--mb 2048]
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { hash32 } from '../src/engine/rng.ts';
import { loadBrownCorpus } from '../src/data/brown.ts';

/** Writes the corpus to `path`; resolves with its size in bytes. */
export async function writeBrownJsonl(path: string, bytes: number): Promise<number> {
  const docs = loadBrownCorpus({}).train.map((text) => `${JSON.stringify({ text })}\n`);
  const out = createWriteStream(path);
  let written = 0;
  for (let i = 0; written < bytes; i++) {
    const line = docs[hash32(0xc0ffee, i) % docs.length]!;
    written += Buffer.byteLength(line);
    if (!out.write(line)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  return written;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const path = process.argv[2];
  if (!path) throw new Error('usage: make-data-corpus.ts OUT.jsonl [--mb N]');
  const i = process.argv.indexOf('--mb');
  const mb = i >= 0 ? Number(process.argv[i + 1]) : 2048;
  const size = await writeBrownJsonl(path, mb * 2 ** 20);
  console.log(`${path}: ${(size / 2 ** 20).toFixed(0)} MiB`);
}
