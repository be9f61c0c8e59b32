/**
 * Reading random sequences from a complete token cache: memory-mapped (the native addon's
 * mapFile, src/data/mapped-windows.ts) against positioned reads. Writes a cache of --mb MiB of
 * uint16 ids (default 256) to a temporary folder, reads --reads random sequences of --seq tokens
 * each way (warm page cache: the file was just written), prints the times with the load average,
 * and deletes the cache.
 *
 *   node --import tsx scripts/bench-cache-read.ts [--mb 256] [--reads 100000] [--seq 1024]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { TOKEN_CACHE_FORMAT, TOKEN_CACHE_VERSION, type TokenCacheMeta } from '../src/data/token-cache.ts';
import { TokenDataset } from '../src/data/token-dataset.ts';
import { scriptOptions } from '../src/cli/errors.ts';

const { values } = scriptOptions(() => parseArgs({ options: { mb: { type: 'string', default: '256' }, reads: { type: 'string', default: '100000' }, seq: { type: 'string', default: '1024' } } }));
const mb = Number(values.mb);
const reads = Number(values.reads);
const seq = Number(values.seq);

const dir = mkdtempSync(join(tmpdir(), 'relora-bench-cache-read-'));
try {
  const numTokens = (mb * 1024 * 1024) / 2;
  const ids = new Uint16Array(numTokens);
  for (let i = 0; i < numTokens; i++) ids[i] = (i * 2654435761) >>> 16;
  writeFileSync(join(dir, 'bench.tokens'), ids);
  const meta: TokenCacheMeta = {
    format: TOKEN_CACHE_FORMAT, version: TOKEN_CACHE_VERSION, key: 'bench', dtype: 'uint16', byteOrder: 'little',
    numTokens, numDocuments: 1, eosId: 0, vocabSize: 65536, corpus: 'bench', corpusFingerprint: 'bench', tokenizerHash: 'bench',
    createdAt: new Date().toISOString(),
  };
  writeFileSync(join(dir, 'bench.json'), JSON.stringify(meta));
  const numSequences = Math.floor(numTokens / seq);
  const order = Array.from({ length: reads }, (_, i) => ((i * 2654435761) >>> 0) % numSequences);
  const out = new Int32Array(seq);
  for (const memoryMap of [false, true, false, true]) {
    const ds = TokenDataset.open(join(dir, 'bench.json'), { memoryMap });
    const load = loadavg()[0]!.toFixed(1);
    const t0 = performance.now();
    for (const i of order) ds.readSequence(i, seq, out);
    const ms = performance.now() - t0;
    const { mapped, positioned } = ds.readCounts;
    console.log(
      `${memoryMap ? 'mapped    ' : 'positioned'}: ${reads} random sequences of ${seq} tokens from ${mb} MiB in ${ms.toFixed(0)} ms ` +
        `(${((reads / ms) * 1000 / 1e6).toFixed(2)} M sequences/s, ${(ms * 1000 / reads).toFixed(2)} µs each; reads mapped ${mapped}, positioned ${positioned}) ` +
        `load ${load} → ${loadavg()[0]!.toFixed(1)}`,
    );
    ds.close();
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
