/**
 * Checkpoint storage rules, in process: keep-K pruning that never removes the newest committed
 * checkpoint, failed writes that change nothing, same-step replacement without a gap, recovery
 * of writes a crash interrupted, the `latest` pointer as the commit point, numeric ordering,
 * state.json validated by field, and no checkpoint deleted because a newer one is unreadable.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, test } from 'node:test';
import { Tensor } from '../src/engine/tensor.ts';
import {
  cleanInterruptedWrites, discardCheckpointsAfter, listCheckpoints, loadCheckpoint, loadLatestCheckpoint, saveCheckpoint, type TrainState,
} from '../src/train/checkpoint.ts';
import { tamperState, tempDir } from './fixtures/reliability/harness.ts';

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

test('state.json contents are validated field by field: the file and the field are named', async () => {
  const run = tempDir('ck-state');
  await saveCheckpoint(run, content(3), 2);
  const dir = join(run, 'checkpoints', 'step-000003');
  const cases: [string, (s: Record<string, unknown>) => void, RegExp][] = [
    ['missing step', (s) => delete s.step, /"step": /],
    ['negative step', (s) => { s.step = -1; }, /"step": .*>=0/],
    ['rng null', (s) => { s.rng = null; }, /"rng": /],
    ['optimizer_steps null', (s) => { s.optimizer_steps = null; }, /"optimizer_steps": /],
    ['unknown phase', (s) => { s.phase = 'half'; }, /"phase": /],
    ['fractional sampler position', (s) => { s.sampler = { epoch: 0, position: 1.5 }; }, /"sampler\.position": /],
    ['a generator without calls', (s) => { s.rng = { prune: { seed: 1 } }; }, /"rng\.prune\.calls": /],
  ];
  for (const [what, edit, field] of cases) {
    const copy = join(run, `copy-${what.replace(/ /g, '-')}`, 'step-000003');
    cpSync(dir, copy, { recursive: true });
    tamperState(copy, edit);
    assert.throws(() => loadCheckpoint(copy), (e: Error) => {
      assert.match(e.message, new RegExp(`checkpoint file ${copy}/state\\.json is not a valid training state: `), what);
      assert.match(e.message, field, what);
      return true;
    });
  }
  // The manifest is held to its schema too.
  const mp = join(dir, 'manifest.json');
  const manifest = JSON.parse(readFileSync(mp, 'utf8')) as { step?: number; files: { sha256: string }[] };
  writeFileSync(mp, JSON.stringify({ ...manifest, step: undefined }));
  assert.throws(() => loadCheckpoint(dir), /manifest\.json does not have the expected fields \(corrupted\): "step": /);
  writeFileSync(mp, JSON.stringify({ ...manifest, files: manifest.files.map((f, i) => (i === 0 ? { ...f, sha256: 'x' } : f)) }));
  assert.throws(() => loadCheckpoint(dir), /manifest\.json does not have the expected fields \(corrupted\): "files\.0\.sha256": expected 64 lowercase hex digits/);
  writeFileSync(mp, JSON.stringify(manifest));
  // A step that disagrees with the folder's name (a state copied from another checkpoint).
  tamperState(dir, (s) => { s.step = 4; });
  assert.throws(() => loadCheckpoint(dir), /state\.json says "step" 4, but its folder is step-000003/);
});

test('a newer checkpoint with an unreadable state is passed over, and resuming deletes no checkpoint because of it', async () => {
  const run = tempDir('ck-state-fallback');
  for (const s of [10, 20, 30]) await saveCheckpoint(run, content(s), 5);
  for (const [i, edit] of [(s: Record<string, unknown>) => delete s.step, (s: Record<string, unknown>) => { s.step = -1; }].entries()) {
    tamperState(join(run, 'checkpoints', 'step-000030'), edit);
    const warnings: string[] = [];
    const ck = loadLatestCheckpoint(run, (m) => warnings.push(m));
    assert.equal(ck.state.step, 20);
    assert.match(warnings[0]!, /step-000030\/state\.json is not a valid training state: "step": .*; falling back to an older checkpoint/);
    const notes: string[] = [];
    assert.deepEqual(discardCheckpointsAfter(run, ck.state.step, (m) => notes.push(m)), [], 'nothing is deleted');
    assert.deepEqual(listCheckpoints(run), ['step-000020', 'step-000010'], 'the valid checkpoints stay');
    const aside = readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('step-000030.rejected-'));
    assert.equal(aside.length, 1, 'the unreadable one is set aside, not deleted');
    assert.match(notes[0]!, /set aside step-000030 as .*step-000030\.rejected-\d+ \(it failed verification: .*state\.json/);
    if (i === 0) {
      // Put it back for the second kind of damage.
      rmSync(join(run, 'checkpoints', aside[0]!), { recursive: true });
      await saveCheckpoint(run, content(30), 5);
    }
  }
  assert.throws(() => discardCheckpointsAfter(run, undefined as unknown as number), /step must be a non-negative integer, got undefined/);
  assert.deepEqual(listCheckpoints(run), ['step-000020', 'step-000010']);
});
