import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { type Corpus, fileCorpus, memoryCorpus } from '../src/data/corpus.ts';
import { packSequences, sequenceCount, withEos } from '../src/data/packing.ts';
import { buildTokenCache, dtypeForVocab, tokenCacheKey } from '../src/data/token-cache.ts';
import { TokenDataset } from '../src/data/token-dataset.ts';
import type { Tokenizer } from '../src/data/tokenizer.ts';

const DOCS = ['The jury said so.', 'Another document, with ✓ and 🎉.', 'x', 'A third, longer document about elections and juries.'];

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'relora-cache-'));
}

/** Counts encode calls, to tell a reused cache from a rebuilt one. */
function counting(inner: Tokenizer): Tokenizer & { calls: number } {
  return {
    calls: 0,
    get vocabSize() {
      return inner.vocabSize;
    },
    get eosId() {
      return inner.eosId;
    },
    encode(text: string) {
      this.calls++;
      return inner.encode(text);
    },
    decode: (ids) => inner.decode(ids),
    toJSON: () => inner.toJSON(),
  };
}

test('packing: EOS after every document, fixed-length sequences, tail dropped', () => {
  const docs = [[1, 2, 3], [4], [], [5, 6, 7, 8, 9]];
  assert.deepEqual([...withEos(docs, 0)], [1, 2, 3, 0, 4, 0, 0, 5, 6, 7, 8, 9, 0]);
  const seqs = [...packSequences(docs, 0, 4)].map((s) => Array.from(s));
  assert.deepEqual(seqs, [
    [1, 2, 3, 0],
    [4, 0, 0, 5],
    [6, 7, 8, 9],
  ]);
  assert.equal(sequenceCount(13, 4), 3);
  assert.deepEqual([...packSequences([[1, 2]], 9, 4)], []);
  assert.throws(() => [...packSequences(docs, 0, 0)], /seqLen must be a positive integer, got 0/);
});

test('token cache: tokenises once, stores the packed stream, and is reused', async () => {
  const dir = tempDir();
  const tok = counting(await trainByteLevelBpe(DOCS, { vocabSize: 300 }));
  const corpus = memoryCorpus('test-docs', DOCS);

  const first = await buildTokenCache(corpus, tok, { cacheDir: dir });
  assert.equal(first.reused, false);
  assert.equal(tok.calls, DOCS.length);
  assert.equal(first.meta.dtype, 'uint16');
  assert.equal(first.meta.numDocuments, DOCS.length);
  const stream = [...withEos(DOCS.map((d) => tok.encode(d)), tok.eosId)];
  tok.calls = 0;
  assert.equal(first.meta.numTokens, stream.length);
  assert.equal(readFileSync(first.metaPath.replace(/\.json$/, '.tokens')).length, 2 * stream.length);

  const second = await buildTokenCache(corpus, tok, { cacheDir: dir });
  assert.equal(second.reused, true);
  assert.equal(tok.calls, 0, 'a reused cache does not retokenise');
  assert.equal(second.metaPath, first.metaPath);
  assert.deepEqual(
    readdirSync(dir).sort(),
    [`${first.meta.key}.json`, `${first.meta.key}.tokens`],
    'no temporary files are left behind',
  );

  const ds = TokenDataset.open(second.metaPath);
  assert.deepEqual(Array.from(ds.readTokens(0, ds.numTokens)), stream);
  const seqLen = 5;
  const packed = [...packSequences(DOCS.map((d) => tok.encode(d)), tok.eosId, seqLen)];
  assert.equal(ds.numSequences(seqLen), packed.length);
  for (let i = 0; i < packed.length; i++) assert.deepEqual(ds.readSequence(i, seqLen), packed[i]);
  const out = new Int32Array(seqLen);
  assert.equal(ds.readSequence(1, seqLen, out), out);
  assert.throws(() => ds.readSequence(packed.length, seqLen), /index \d+ out of range/);
  ds.close();
});

test('token cache key follows the corpus and the tokenizer', async () => {
  const a = await trainByteLevelBpe(DOCS, { vocabSize: 300 });
  const b = await trainByteLevelBpe(DOCS, { vocabSize: 270 });
  assert.notEqual(a.vocabSize, b.vocabSize);
  const c1 = memoryCorpus('c', DOCS);
  const c2 = memoryCorpus('c', [...DOCS, 'one more']);
  assert.equal(tokenCacheKey(c1, a), tokenCacheKey(memoryCorpus('c', DOCS), a));
  assert.notEqual(tokenCacheKey(c1, a), tokenCacheKey(c2, a));
  assert.notEqual(tokenCacheKey(c1, a), tokenCacheKey(c1, b));
  // Files: touching the data changes the key, so the cache is rebuilt.
  const dir = tempDir();
  const file = join(dir, 'd.txt');
  writeFileSync(file, 'some text');
  const before = tokenCacheKey(await fileCorpus([file]), a);
  writeFileSync(file, 'some other text');
  assert.notEqual(tokenCacheKey(await fileCorpus([file]), a), before);
});

test('a damaged or partial cache is rebuilt', async () => {
  const dir = tempDir();
  const tok = counting(await trainByteLevelBpe(DOCS, { vocabSize: 300 }));
  const corpus = memoryCorpus('test-docs', DOCS);
  const first = await buildTokenCache(corpus, tok, { cacheDir: dir });
  const tokensPath = first.metaPath.replace(/\.json$/, '.tokens');
  writeFileSync(tokensPath, readFileSync(tokensPath).subarray(0, 6));
  tok.calls = 0;
  const again = await buildTokenCache(corpus, tok, { cacheDir: dir });
  assert.equal(again.reused, false);
  assert.equal(tok.calls, DOCS.length);
  assert.equal(readFileSync(tokensPath).length, 2 * again.meta.numTokens);
});

test('vocabularies above 65536 are stored as uint32', async () => {
  const big: Tokenizer = {
    vocabSize: 70_000,
    eosId: 69_999,
    encode: (text) => Array.from(text, (ch) => 65_000 + ch.charCodeAt(0)),
    decode: () => '',
    toJSON: () => ({ fake: 'uint32' }),
  };
  assert.equal(dtypeForVocab(65_536), 'uint16');
  assert.equal(dtypeForVocab(65_537), 'uint32');
  const dir = tempDir();
  const { metaPath, meta } = await buildTokenCache(memoryCorpus('big', ['ab', 'c']), big, { cacheDir: dir });
  assert.equal(meta.dtype, 'uint32');
  const ds = TokenDataset.open(metaPath);
  assert.deepEqual(Array.from(ds.readTokens(0, ds.numTokens)), [65_097, 65_098, 69_999, 65_099, 69_999]);
  ds.close();
});

test('a corpus shorter than one sequence is an error naming it', async () => {
  const dir = tempDir();
  const file = join(dir, 'tiny.txt');
  writeFileSync(file, 'tiny');
  const tok = await trainByteLevelBpe(['tiny'], { vocabSize: 260 });
  const ds = await TokenDataset.fromCorpus(await fileCorpus([file]), tok, { cacheDir: join(dir, 'cache') });
  assert.equal(ds.numSequences(ds.numTokens), 1);
  assert.throws(() => ds.numSequences(ds.numTokens + 1), {
    message: `corpus ${file}: ${ds.numTokens} tokens (1 documents with EOS), shorter than one sequence of ${ds.numTokens + 1} tokens`,
  });
  ds.close();
});

test('tokeniser errors and empty corpora leave no cache behind', async () => {
  const dir = tempDir();
  const tok = await trainByteLevelBpe(DOCS, { vocabSize: 300 });
  const failing: Corpus = {
    name: 'failing',
    fingerprint: 'f',
    async *documents() {
      yield 'fine';
      throw new Error('broken.jsonl: line 2 is not valid JSON');
    },
    async *pieces() {
      yield { text: 'fine', end: true };
      throw new Error('broken.jsonl: line 2 is not valid JSON');
    },
  };
  await assert.rejects(buildTokenCache(failing, tok, { cacheDir: dir }), /broken\.jsonl: line 2/);
  await assert.rejects(buildTokenCache(memoryCorpus('nothing', []), tok, { cacheDir: dir }), /corpus nothing has no documents/);
  assert.deepEqual(readdirSync(dir), []);
  assert.ok(!existsSync(join(dir, 'x')));
});
