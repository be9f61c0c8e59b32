/**
 * Reading a token cache while it is being written (TokenDataset.build): training can start on
 * the first shard, draws exactly what it would draw from the complete cache, and a stopped build
 * keeps its partial cache for the next run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { corpusFromPieces, type Corpus } from '../src/data/corpus.ts';
import { piecesOf } from '../src/data/pieces.ts';
import { SequenceSampler } from '../src/data/sampler.ts';
import { tokenCacheKey } from '../src/data/token-cache.ts';
import { TokenDataset } from '../src/data/token-dataset.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const LINES = readFileSync(join(FIXTURES, 'corpus.txt'), 'utf8').split('\n').filter((l) => l.length > 0);
const DOCS = Array.from({ length: 4000 }, (_, i) => `${LINES[i % LINES.length]} (${i})`);
const SEQ = 16;
const SHARD = 32; // sequences: shards of 512 tokens

/** The documents, with reading held at document `at` until `open` is called (the rest not yet tokenised). */
function gatedCorpus(at: number): { corpus: Corpus; open: () => void } {
  let open!: () => void;
  const gate = new Promise<void>((resolve) => { open = resolve; });
  const corpus = corpusFromPieces('gated', 'gated-docs', async function* () {
    for (const [i, text] of DOCS.entries()) {
      if (i === at) await gate;
      yield { text, end: true };
    }
  });
  return { corpus, open };
}

const sequencesOf = (ds: TokenDataset, indices: number[]) => indices.map((i) => Array.from(ds.readSequence(i, SEQ)));

test('training draws from the first shards before the cache is complete, the same sequences as from the complete cache', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-overlap-'));
  const tok = await trainByteLevelBpe(LINES, { vocabSize: 400 });
  const { corpus, open } = gatedCorpus(2000);
  // Progress records every shard, as training sets it up (train/data.ts).
  const build = TokenDataset.build(corpus, tok, { cacheDir: dir, workers: 2, checkpointTokens: SHARD * SEQ, batchChars: 4096 });
  const ds = build.dataset;
  const sampler = new SequenceSampler({ numSequences: ds.sequences(SEQ), seed: 5, shardSequences: SHARD });
  await sampler.ready(8);
  // The first shard is durable before anything trains on it: a run killed now resumes after it.
  const progress = readdirSync(dir).find((n) => n.endsWith('.progress'));
  assert.ok(progress, readdirSync(dir).join(', '));
  assert.ok((JSON.parse(readFileSync(join(dir, progress), 'utf8')) as { tokens: number }).tokens >= SHARD * SEQ);
  const drawn: number[] = [];
  const seen: number[][] = [];
  // Three shards and a half: all of it from the first 2000 documents, while the rest waits.
  for (let b = 0; b < 14; b++) {
    await sampler.ready(8);
    const batch = sampler.nextBatch(8);
    drawn.push(...batch);
    seen.push(...sequencesOf(ds, batch));
  }
  assert.equal(ds.isComplete, false, 'the cache is still being written');
  assert.throws(() => ds.numTokens, /still being written/);
  assert.ok(Math.max(...drawn) < 4 * SHARD, 'only complete shards were drawn from');
  open();
  await build.done;
  assert.equal(ds.isComplete, true);
  const total = ds.numSequences(SEQ);
  assert.ok(total > 10 * SHARD, `${total} sequences`);
  for (let b = 0; b < 100; b++) {
    await sampler.ready(8);
    const batch = sampler.nextBatch(8);
    drawn.push(...batch);
    seen.push(...sequencesOf(ds, batch));
  }

  // The same run on the complete cache (opened afresh from its sidecar).
  const complete = TokenDataset.open(readdirSync(dir).filter((n) => n.endsWith('.json')).map((n) => join(dir, n))[0]!);
  const again = new SequenceSampler({ numSequences: complete.numSequences(SEQ), seed: 5, shardSequences: SHARD });
  const drawnAgain = again.nextBatch(drawn.length);
  assert.deepEqual(drawnAgain, drawn);
  assert.deepEqual(sequencesOf(complete, drawnAgain), seen);
  ds.close();
  complete.close();
});

test('a stopped build keeps its partial cache and progress record; the next build, even in this process, continues it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-overlap-stop-'));
  const tok = await trainByteLevelBpe(LINES, { vocabSize: 400 });
  const { corpus } = gatedCorpus(2000); // never opened
  const build = TokenDataset.build(corpus, tok, { cacheDir: dir, workers: 1, checkpointTokens: 1000, batchChars: 4096 });
  await build.dataset.waitForTokens(4 * SHARD * SEQ);
  await build.stop(); // while reading is held at the gate
  await assert.rejects(build.done, /tokenising gated was stopped; the next run resumes the partial cache/);
  await assert.rejects(build.dataset.waitForTokens(Infinity), /was stopped/);
  const names = readdirSync(dir);
  assert.equal(names.filter((n) => n.endsWith('.json')).length, 0, 'no sidecar: not complete');
  assert.equal(names.filter((n) => /\.tokens\.tmp-\d+-[0-9a-f]+$/.test(n)).length, 1, names.join(', '));
  assert.equal(names.filter((n) => n.endsWith('.progress')).length, 1, names.join(', '));

  // The same corpus again (now readable to the end): the stopped build's file is continued.
  const { corpus: whole, open } = gatedCorpus(2000);
  open();
  const again = await TokenDataset.build(whole, tok, { cacheDir: dir, workers: 1, checkpointTokens: 1000, batchChars: 4096 }).done;
  assert.ok(again.resumedTokens >= 4 * SHARD * SEQ - 1000, `resumed from token ${again.resumedTokens}`);
  const fresh = await TokenDataset.build(whole, tok, { cacheDir: join(dir, 'fresh'), workers: 1, batchChars: 4096 }).done;
  assert.equal(fresh.resumedTokens, 0);
  assert.deepEqual(readFileSync(again.metaPath.replace(/\.json$/, '.tokens')), readFileSync(fresh.metaPath.replace(/\.json$/, '.tokens')));
  assert.deepEqual(readdirSync(dir).filter((n) => n.includes('.tmp-')), [], 'no temporary file left');
});

test('builds started together (training and validation sets) do not remove each other\'s partial file of a killed run', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-overlap-pair-'));
  const tok = await trainByteLevelBpe(LINES, { vocabSize: 400 });
  const docs = DOCS.slice(0, 600);
  const training = corpusFromPieces('training', 'training-docs', () => piecesOf(docs));
  const validation = corpusFromPieces('validation', 'validation-docs', () => piecesOf(docs.slice(0, 50)));
  // The partial cache a killed run left: the ids of the first 200 documents (a prefix of the
  // whole stream) under the name and progress record of a process that has exited.
  const prefix = await TokenDataset.build(corpusFromPieces('prefix', 'prefix-docs', () => piecesOf(docs.slice(0, 200))), tok, { cacheDir: join(dir, 'prefix') }).done;
  const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']).stdout.toString();
  const partial = join(dir, `${tokenCacheKey(training, tok)}.tokens.tmp-${dead}-abcd`);
  copyFileSync(prefix.metaPath.replace(/\.json$/, '.tokens'), partial);
  writeFileSync(`${partial}.progress`, JSON.stringify({ documents: 200, tokens: prefix.meta.numTokens }));

  // The validation set's build starts first and cleans up stale files of other keys.
  const [val, train] = await Promise.all([validation, training].map((c) => TokenDataset.build(c, tok, { cacheDir: dir }).done));
  assert.equal(val.resumedTokens, 0);
  assert.equal(train!.resumedTokens, prefix.meta.numTokens, 'the training set continued the killed run\'s partial file');
  const fresh = await TokenDataset.build(training, tok, { cacheDir: join(dir, 'fresh') }).done;
  assert.deepEqual(readFileSync(train!.metaPath.replace(/\.json$/, '.tokens')), readFileSync(fresh.metaPath.replace(/\.json$/, '.tokens')));
});
