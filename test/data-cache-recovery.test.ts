/**
 * The token cache after a killed run (stale temporary files, resuming), on a full disk, and
 * built by worker threads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { corpusFromPieces, memoryCorpus } from '../src/data/corpus.ts';
import { piecesOf } from '../src/data/pieces.ts';
import { buildTokenCache, tokenCacheKey, TokenWriter } from '../src/data/token-cache.ts';
import { loadTokenizer, saveTokenizer } from '../src/data/tokenizer-files.ts';

const FIXTURES = join(import.meta.dirname, 'fixtures', 'data');
const CORPUS_LINES = readFileSync(join(FIXTURES, 'corpus.txt'), 'utf8').split('\n').filter((l) => l.length > 0);
/** Enough documents for several batches and checkpoints. */
const DOCS = Array.from({ length: 6000 }, (_, i) => `${CORPUS_LINES[i % CORPUS_LINES.length]} (${i})`);

function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'relora-cache-rec-'));
}

/** A pid that belonged to a process that has exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  return Number(child.stdout.toString());
}

test('a killed tokenisation is resumed from its last checkpoint, with the same result', async () => {
  const dir = tempDir();
  const tok = await trainByteLevelBpe(CORPUS_LINES, { vocabSize: 400 });
  const tokPath = join(dir, 'tokenizer.json');
  await saveTokenizer(tok, tokPath);
  const docsPath = join(dir, 'docs.json');
  writeFileSync(docsPath, JSON.stringify(DOCS));
  const cacheDir = join(dir, 'cache');
  // The child tokenises the documents, then hangs on the last one until it is killed.
  const script = `
    import { readFileSync } from 'node:fs';
    import { corpusFromPieces } from ${JSON.stringify(join(import.meta.dirname, '../src/data/corpus.ts'))};
    import { buildTokenCache } from ${JSON.stringify(join(import.meta.dirname, '../src/data/token-cache.ts'))};
    import { loadTokenizer } from ${JSON.stringify(join(import.meta.dirname, '../src/data/tokenizer-files.ts'))};
    const docs = JSON.parse(readFileSync(${JSON.stringify(docsPath)}, 'utf8'));
    const tok = await loadTokenizer(${JSON.stringify(tokPath)});
    const corpus = corpusFromPieces('docs', 'fixed', async function* () {
      for (const [i, text] of docs.entries()) {
        if (i === docs.length - 1) await new Promise(() => setInterval(() => {}, 1000));
        yield { text, end: true };
      }
    });
    await buildTokenCache(corpus, tok, { cacheDir: ${JSON.stringify(cacheDir)}, checkpointTokens: 1000 });
  `;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: 'inherit' });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve(signal ?? code)));
  const progressFile = () => (existsSync(cacheDir) ? readdirSync(cacheDir).find((n) => n.endsWith('.progress')) : undefined);
  for (let waited = 0; progressFile() === undefined; waited += 50) {
    assert.ok(waited < 60_000, 'the child wrote no progress record');
    await sleep(50);
  }
  await sleep(300);
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL', 'the child was still tokenising when killed');
  const leftover = readdirSync(cacheDir);
  assert.ok(leftover.some((n) => /\.tokens\.tmp-\d+-[0-9a-f]+$/.test(n)), 'the killed run left its partial file');
  // A stale temporary file of another key, from another dead process, is removed.
  const stale = join(cacheDir, `0123.tokens.tmp-${deadPid()}-abcd`);
  writeFileSync(stale, 'junk');
  const mine = join(cacheDir, `0456.tokens.tmp-${process.pid}-abcd`);
  writeFileSync(mine, 'a live process is still writing this');

  const corpus = corpusFromPieces('docs', 'fixed', () => piecesOf(DOCS));
  const loaded = await loadTokenizer(tokPath);
  const resumed = await buildTokenCache(corpus, loaded, { cacheDir });
  assert.ok(resumed.resumedTokens > 0, 'the partial cache was resumed');
  const fresh = await buildTokenCache(corpus, loaded, { cacheDir: join(dir, 'fresh') });
  assert.equal(fresh.resumedTokens, 0);
  assert.deepEqual(resumed.meta.numDocuments, DOCS.length);
  assert.ok(readFileSync(resumed.metaPath.replace(/\.json$/, '.tokens')).equals(readFileSync(fresh.metaPath.replace(/\.json$/, '.tokens'))));
  assert.equal(tokenCacheKey(corpus, loaded), resumed.meta.key);
  assert.deepEqual(readdirSync(cacheDir).sort(), [`${resumed.meta.key}.json`, `${resumed.meta.key}.tokens`, `0456.tokens.tmp-${process.pid}-abcd`].sort());
});

test('a full disk names the file and says what to do', async () => {
  if (!existsSync('/dev/full')) return assert.fail('/dev/full is needed to test a full disk');
  const writer = await TokenWriter.open('/dev/full', 'uint16');
  await writer.append(new Uint32Array([1, 2, 3]), 1);
  await assert.rejects(writer.flush(), {
    message:
      'token cache: cannot write /dev/full: the disk is full (ENOSPC). Free some space and run again (the tokens written so far ' +
      'are kept and tokenising resumes), or put the cache on a larger disk (RELORA_CACHE_DIR)',
  });
});

test('worker threads write exactly the serial token cache', async () => {
  const dir = tempDir();
  // Small chunks where cuts are exact (byte-level and SentencePiece-style BPE); the general
  // Hugging Face path is exact only for documents that need no cut.
  for (const [name, maxChunkChars] of [['gpt2-style', 64], ['llama2-style', 64], ['llama-style', undefined]] as const) {
    const tok = await loadTokenizer(join(FIXTURES, name));
    // Over 2 Mi characters: the first batches are encoded in this thread, the rest by workers.
    const corpus = memoryCorpus('docs', [...DOCS, ...DOCS, ...DOCS, ...DOCS, ...DOCS]);
    const serial = await buildTokenCache(corpus, tok, { cacheDir: join(dir, `${name}-serial`), workers: 1, maxChunkChars });
    const parallel = await buildTokenCache(corpus, tok, { cacheDir: join(dir, `${name}-parallel`), workers: 3, maxChunkChars });
    const bytes = (p: string) => readFileSync(p.replace(/\.json$/, '.tokens'));
    assert.equal(parallel.meta.numDocuments, 5 * DOCS.length);
    assert.equal(parallel.workersUsed, 3);
    assert.equal(serial.workersUsed, 0);
    assert.ok(bytes(serial.metaPath).equals(bytes(parallel.metaPath)), `${name}: same ids`);
  }
});
