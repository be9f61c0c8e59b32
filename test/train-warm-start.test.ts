/**
 * `relora train --warm-start CHECKPOINT`: the low-rank phase started from a full-rank checkpoint
 * of another run continues exactly as that run's own low-rank phase did — same records after the
 * warm start, same final weights and optimizer state — and a checkpoint that cannot be a warm
 * start is refused before any work.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { deterministicMetrics, latestCheckpointDir, runCli, tempDir, tinyRunArgs, WARM_START, writeCorpus } from './fixtures/reliability/harness.ts';

const work = tempDir('warm-start');
const env = { RELORA_CACHE_DIR: join(work, 'cache') };
let data = '';
let reference = '';

before(async () => {
  data = writeCorpus(work);
  reference = join(work, 'reference');
  const r = await runCli(tinyRunArgs(data, reference, ['--keep-checkpoints', '100']), env);
  assert.equal(r.code, 0, r.stderr);
});

test('--warm-start from the full-rank checkpoint of a run reproduces that run\'s low-rank phase bit for bit', async () => {
  const checkpoint = join(reference, 'checkpoints', `step-${String(WARM_START).padStart(6, '0')}`);
  assert.equal(JSON.parse(readFileSync(join(checkpoint, 'state.json'), 'utf8')).phase, 'full');
  const warm = join(work, 'warm');
  const r = await runCli([...tinyRunArgs(data, warm), '--warm-start', checkpoint], env);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`warm start from ${checkpoint} \\(full-rank update ${WARM_START}\\)`));
  const expected = deterministicMetrics(reference).filter((x) => x.step > WARM_START);
  assert.deepEqual(deterministicMetrics(warm), expected);
  for (const f of ['model.safetensors', 'optimizer.safetensors']) {
    assert.ok(readFileSync(join(latestCheckpointDir(warm), f)).equals(readFileSync(join(latestCheckpointDir(reference), f))), `final ${f}`);
  }
});

test('a checkpoint of a low-rank phase is refused as a warm start, before any work', async () => {
  const out = join(work, 'refused');
  const r = await runCli([...tinyRunArgs(data, out), '--warm-start', latestCheckpointDir(reference)], env);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /--warm-start .*: checkpoint is from a relora phase; a full-rank checkpoint is needed/);
  assert.ok(!existsSync(out));
});
