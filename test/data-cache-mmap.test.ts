/**
 * A complete token cache is read through memory maps when the native addon is present: the ids
 * are the same as positioned reads give, for both widths and for ranges that straddle the mapped
 * windows (a tiny window size makes those common); without maps, or while the cache is still
 * being written, positioned reads serve every read.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mapFileReadOnly, nativeLoadError } from '../src/engine/backends/native.ts';
import { corpusFromPieces } from '../src/data/corpus.ts';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { TOKEN_CACHE_FORMAT, TOKEN_CACHE_VERSION, type TokenCacheMeta, type TokenDtype } from '../src/data/token-cache.ts';
import { TokenDataset } from '../src/data/token-dataset.ts';

const hasMap = mapFileReadOnly() !== null;
const noAddon = hasMap ? false : `the native addon has no mapFile: ${nativeLoadError() ?? 'rebuild it with "node scripts/build-native.mjs"'}`;

/** A complete cache of `ids` written as the cache builder lays it out; returns the sidecar's path. */
function writeCache(dir: string, dtype: TokenDtype, ids: ArrayLike<number>): string {
  const data = dtype === 'uint16' ? Uint16Array.from(ids) : Uint32Array.from(ids);
  const key = `test-${dtype}`;
  writeFileSync(join(dir, `${key}.tokens`), new Uint8Array(data.buffer));
  const vocabSize = dtype === 'uint16' ? 65536 : 2 ** 32;
  const meta: TokenCacheMeta = {
    format: TOKEN_CACHE_FORMAT, version: TOKEN_CACHE_VERSION, key, dtype, byteOrder: 'little', numTokens: data.length, numDocuments: 1,
    eosId: 0, vocabSize, corpus: 'test', corpusFingerprint: 'test', tokenizerHash: 'test', createdAt: new Date(0).toISOString(),
  };
  const metaPath = join(dir, `${key}.json`);
  writeFileSync(metaPath, JSON.stringify(meta));
  return metaPath;
}

/** A small deterministic generator (mulberry32), so a failure reproduces. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

for (const dtype of ['uint16', 'uint32'] as const) {
  test(`mapped reads of a ${dtype} cache equal positioned reads, across window boundaries too`, { skip: noAddon }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'relora-mmap-'));
    try {
      const random = rng(dtype === 'uint16' ? 1 : 2);
      const max = dtype === 'uint16' ? 2 ** 16 : 2 ** 32;
      const numTokens = 50_000;
      const ids = Array.from({ length: numTokens }, () => Math.floor(random() * max));
      const metaPath = writeCache(dir, dtype, ids);
      // 4 KiB windows: 1024 or 2048 tokens each, so many reads straddle two and the LRU turns over.
      const mapped = TokenDataset.open(metaPath, { mapWindowBytes: 4096 });
      const positioned = TokenDataset.open(metaPath, { memoryMap: false });
      const width = dtype === 'uint16' ? 2 : 4;
      const perWindow = 4096 / width;
      const ranges: [number, number][] = [[0, 1], [0, perWindow], [perWindow - 1, 2], [perWindow, perWindow], [numTokens - 7, 7], [numTokens - 1, 1]];
      for (let i = 0; i < 400; i++) {
        const count = 1 + Math.floor(random() * (perWindow / 2));
        ranges.push([Math.floor(random() * (numTokens - count)), count]);
      }
      for (const [start, count] of ranges) {
        const got = mapped.readTokens(start, count);
        assert.deepEqual(got, positioned.readTokens(start, count), `tokens [${start}, ${start + count})`);
        // Ids above 2^31 wrap as Int32Array stores them, as positioned reads do; compare to the source too.
        assert.deepEqual(Array.from(got, (v) => v >>> 0), ids.slice(start, start + count), `tokens [${start}, ${start + count}) vs the ids written`);
      }
      const counts = mapped.readCounts;
      assert.ok(counts.mapped > ranges.length / 4, `maps served ${counts.mapped} of ${ranges.length} reads`);
      assert.ok(counts.positioned > 0, 'some ranges straddle two windows and are read from the file');
      assert.equal(counts.mapped + counts.positioned, ranges.length);
      assert.deepEqual(positioned.readCounts, { mapped: 0, positioned: ranges.length });
      mapped.close();
      positioned.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('with the default window every read of a complete cache is served by the map', { skip: noAddon }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-mmap-'));
  try {
    const ds = TokenDataset.open(writeCache(dir, 'uint16', Array.from({ length: 1000 }, (_, i) => i)));
    assert.deepEqual(Array.from(ds.readSequence(3, 100)), Array.from({ length: 100 }, (_, i) => 300 + i));
    assert.deepEqual(ds.readCounts, { mapped: 1, positioned: 0 });
    ds.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cache still being written is read with positioned reads, and mapped once complete', { skip: noAddon }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-mmap-'));
  try {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => { open = resolve; });
    const docs = Array.from({ length: 400 }, (_, i) => `document ${i}: ${'some text '.repeat(20)}`);
    const corpus = corpusFromPieces('gated', 'gated-mmap', async function* () {
      for (const [i, text] of docs.entries()) {
        if (i === 200) await gate;
        yield { text, end: true };
      }
    });
    const build = TokenDataset.build(corpus, await trainByteLevelBpe(docs.slice(0, 50), { vocabSize: 300 }), { cacheDir: dir, workers: 1, checkpointTokens: 1000, batchChars: 4096 });
    const ds = build.dataset;
    await ds.waitForTokens(2000);
    const early = Array.from(ds.readTokens(0, 2000));
    assert.equal(ds.isComplete, false);
    assert.deepEqual(ds.readCounts, { mapped: 0, positioned: 1 }, 'a growing file is not mapped');
    open();
    await build.done;
    assert.deepEqual(Array.from(ds.readTokens(0, 2000)), early);
    assert.deepEqual(ds.readCounts, { mapped: 1, positioned: 1 });
    ds.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mapping a missing file names it and the OS error', { skip: noAddon }, () => {
  const map = mapFileReadOnly()!;
  assert.throws(() => map('/nonexistent/relora.tokens', 0, 16), /mapFile: \/nonexistent\/relora\.tokens: No such file or directory/);
  const dir = mkdtempSync(join(tmpdir(), 'relora-mmap-'));
  try {
    const metaPath = writeCache(dir, 'uint16', [1, 2, 3, 4]);
    assert.throws(() => map(metaPath.replace(/\.json$/, '.tokens'), 0, 1024), /cannot map bytes \[0, 1024\).*past the end of the file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a window size that splits tokens is refused with the size named', { skip: noAddon }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-mmap-'));
  try {
    const metaPath = writeCache(dir, 'uint32', [1, 2, 3, 4]);
    assert.throws(() => TokenDataset.open(metaPath, { mapWindowBytes: 4098 }), /map window of 4098 bytes, expected a positive multiple of 4/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
