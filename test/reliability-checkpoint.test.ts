/**
 * Checkpoint storage rules, in process: keep-K pruning that never removes the newest committed
 * checkpoint, failed writes that change nothing, same-step replacement without a gap, recovery
 * of writes a crash interrupted, the `latest` pointer as the commit point, numeric ordering.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { Tensor } from '../src/engine/tensor.ts';
import {
  cleanInterruptedWrites, discardCheckpointsAfter, listCheckpoints, loadCheckpoint, loadLatestCheckpoint, saveCheckpoint, type TrainState,
} from '../src/train/checkpoint.ts';
import { tempDir } from './fixtures/reliability/harness.ts';

function state(step: number): TrainState {
  return {
    version: 1, step, phase: 'full', phase_step: step, optimizer_steps: step, counters: { merges: 0, resets: 0 }, tokens: step * 10, elapsed: 0, skipped: 0,
    sampler: { epoch: 0, position: step }, rng: { prune: { seed: 1, calls: step } },
  };
}

const content = (step: number, value = step) => ({
  model: { w: Tensor.from(new Float32Array([value, value + 0.5]), [2]) },
  optimizer: { 'm.w': Tensor.from(new Float32Array([0.1, 0.2]), [2]), 'v.w': Tensor.from(new Float32Array([0.3, 0.4]), [2]) },
  state: state(step),
});

const latest = (run: string) => readFileSync(join(run, 'latest'), 'utf8').trim();
const hidden = (run: string) => readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.'));

afterEach(() => {
  delete process.env.RELORA_TEST_FAIL;
});

test('keep K: the newest K stay, the rest go; latest points at the newest', async () => {
  const run = tempDir('ck-keep');
  for (let s = 1; s <= 5; s++) await saveCheckpoint(run, content(s), 2);
  assert.deepEqual(listCheckpoints(run), ['step-000005', 'step-000004']);
  assert.equal(latest(run), 'step-000005');
  assert.deepEqual(Array.from(loadLatestCheckpoint(run, assert.fail).model.w!), [5, 5.5]);
  assert.deepEqual(hidden(run), []);
});

test('a failed write changes nothing: no pruning, the previous checkpoint stays latest, the partial folder is removed', async () => {
  const run = tempDir('ck-fail');
  for (let s = 1; s <= 3; s++) await saveCheckpoint(run, content(s), 1);
  assert.deepEqual(listCheckpoints(run), ['step-000003']);
  for (const code of ['ENOSPC', 'EDQUOT', 'EIO']) {
    process.env.RELORA_TEST_FAIL = `checkpoint:4:${code}`;
    await assert.rejects(saveCheckpoint(run, content(4), 1), (e: Error) => {
      assert.match(e.message, /^checkpoint step-000004 not written: /);
      assert.match(e.message, code === 'EIO' ? /EIO/ : new RegExp(`the disk is full \\(${code}\\)`));
      assert.match(e.message, /the previous checkpoint .*step-000003 is still valid/);
      return true;
    });
    assert.deepEqual(listCheckpoints(run), ['step-000003'], 'the last valid checkpoint is never deleted');
    assert.equal(latest(run), 'step-000003');
    assert.deepEqual(hidden(run), []);
  }
});

test('non-finite values are never written', async () => {
  const run = tempDir('ck-nan');
  await saveCheckpoint(run, content(1), 1);
  for (const bad of [NaN, Infinity, -Infinity]) {
    await assert.rejects(saveCheckpoint(run, content(2, bad), 1), new RegExp(`checkpoint step-000002 not written: tensor "w" holds a non-finite value \\(${bad}\\) at index 0; .*step-000001 is still valid`));
  }
  assert.deepEqual(listCheckpoints(run), ['step-000001']);
  assert.deepEqual(hidden(run), []);
});

test('re-saving a step (a resumed run redoes updates) replaces it with no moment where neither copy is whole', async () => {
  const run = tempDir('ck-replace');
  await saveCheckpoint(run, content(7, 1), 3);
  await saveCheckpoint(run, content(7, 2), 3);
  assert.deepEqual(Array.from(loadCheckpoint(join(run, 'checkpoints', 'step-000007')).model.w!), [2, 2.5]);
  assert.deepEqual(hidden(run), []);

  // A crash between "move the old copy aside" and "rename the new one in": the old copy comes back.
  const ckDir = join(run, 'checkpoints');
  renameSync(join(ckDir, 'step-000007'), join(ckDir, '.old-step-000007-999999'));
  mkdirSync(join(ckDir, '.tmp-step-000007-999999'));
  cleanInterruptedWrites(run);
  assert.deepEqual(readdirSync(ckDir).sort(), ['step-000007']);
  assert.deepEqual(Array.from(loadCheckpoint(join(ckDir, 'step-000007')).model.w!), [2, 2.5]);
});

test('latest is the commit point: a newer folder it does not name is ignored; a missing or broken pointer falls back to the newest valid', async () => {
  const run = tempDir('ck-pointer');
  for (const s of [10, 20, 30]) await saveCheckpoint(run, content(s), 5);
  // A crash after the rename of step 30 but before the pointer update.
  writeFileSync(join(run, 'latest'), 'step-000020\n');
  assert.equal(loadLatestCheckpoint(run, assert.fail).state.step, 20);
  // The resumed run discards what lies beyond the checkpoint it resumed from.
  assert.deepEqual(discardCheckpointsAfter(run, 20), ['step-000030']);
  assert.deepEqual(listCheckpoints(run), ['step-000020', 'step-000010']);

  writeFileSync(join(run, 'latest'), 'garbage\n');
  assert.equal(loadLatestCheckpoint(run, assert.fail).state.step, 20);
  writeFileSync(join(run, 'latest'), 'step-000099\n');
  assert.equal(loadLatestCheckpoint(run, assert.fail).state.step, 20);
});

test('checkpoints past update 999999 still sort by step', async () => {
  const run = tempDir('ck-order');
  for (const s of [999_999, 1_000_000, 1_000_001]) await saveCheckpoint(run, content(s, 1), 2);
  assert.deepEqual(listCheckpoints(run), ['step-1000001', 'step-1000000']);
  assert.ok(!existsSync(join(run, 'checkpoints', 'step-999999')));
  assert.equal(loadLatestCheckpoint(run, assert.fail).state.step, 1_000_001);
});
