/**
 * Training while the corpus is still being tokenised, for real: `relora train` on an empty cache
 * starts updating after the first shard, is SIGKILLed with the cache still incomplete, resumes
 * (the partial cache too), and must end bit-identical to a run that found the cache complete.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadBrownCorpus } from '../src/data/brown.ts';
import { runCli, runDifferences, startCli, tempDir, tinyRunArgs } from './fixtures/reliability/harness.ts';

const work = tempDir('overlap');
const cache = join(work, 'cache');
const env = { RELORA_CACHE_DIR: cache };
/** Shards of 256 tokens = 16 sequences = 4 updates: the run crosses several before the cache is complete. */
const args = (data: string, out: string, extra: string[] = []) => tinyRunArgs(data, out, ['--data-shard-tokens', '256', ...extra]);

/** About 6 MiB of Brown documents as JSONL: a few seconds of tokenising, far more than a shard. */
function writeBrownCorpus(): string {
  const docs = loadBrownCorpus({}).train;
  const lines: string[] = [];
  for (let i = 0, bytes = 0; bytes < 6 * 2 ** 20; i++) {
    lines.push(JSON.stringify({ text: docs[(i * 7919) % docs.length] }));
    bytes += lines[lines.length - 1]!.length + 1;
  }
  const path = join(work, 'corpus.jsonl');
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

interface CacheState {
  complete: boolean;
  partial: number;
}

/** Whether the training part's cache is complete, and how many partial token files with a progress record there are. */
function trainingCache(): CacheState {
  const dir = join(cache, 'tokens');
  const names = existsSync(dir) ? readdirSync(dir) : [];
  const complete = names.filter((n) => n.endsWith('.json'))
    .some((n) => (JSON.parse(readFileSync(join(dir, n), 'utf8')) as { corpus: string }).corpus.includes('training part'));
  return { complete, partial: names.filter((n) => /\.tokens\.tmp-\d+-[0-9a-f]+\.progress$/.test(n)).length };
}

test('the first update comes before the cache is complete; killed, resumed, it equals a run on the complete cache', async () => {
  const data = writeBrownCorpus();
  const overlapped = join(work, 'overlapped');

  // 1. Empty cache: paused inside update 7 (after the checkpoints of updates 5 and 6), then killed.
  let atPause: CacheState | null = null;
  const killed = await startCli(args(data, overlapped), {
    env: { ...env, RELORA_TEST_PAUSE: 'update:7' },
    onLine: (line, child) => {
      if (!line.startsWith('relora-test: paused at')) return;
      atPause = trainingCache();
      child.kill('SIGKILL');
    },
  }).done;
  assert.equal(killed.signal, 'SIGKILL', killed.stderr);
  assert.match(killed.stderr, /data: [\d,]+ training tokens so far, the rest tokenised while training/);
  assert.deepEqual(atPause, { complete: false, partial: 1 }, 'at update 7 the training cache was still being written, with a progress record');
  assert.doesNotMatch(killed.stderr, /tokenising training data: complete/);

  // 2. Resumed: the checkpoint of update 5 and the partial cache, both continued.
  const resumed = await runCli(['train', '--resume', overlapped], env);
  assert.equal(resumed.code, 0, resumed.stderr);
  const from = /tokenising training data: resumed the partial cache a stopped run left, from token (\d+)/.exec(resumed.stderr);
  assert.ok(from && Number(from[1]) > 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming .* \(update 6 of 30\)/); // the checkpoint at the end of the warm start
  assert.deepEqual(trainingCache(), { complete: true, partial: 0 });

  // 3. The cache is complete now: a new run reuses it (no tokenising) and sees the same data.
  const reference = join(work, 'reference');
  const again = await runCli(args(data, reference), env);
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stderr, /tokenising training data/);
  assert.match(again.stderr, /data: [\d,]+ training tokens \(/);
  assert.deepEqual(runDifferences(reference, overlapped), []);
});
