/**
 * Faults in a data-parallel job (mpirun, Open MPI): a rank that fails or is killed ends the whole
 * job within seconds, the checkpoint before stays valid, and `--resume` continues it — with the
 * same number of processes bit for bit, with another one correctly and with a note. Skipped, with
 * the reason, where mpirun is absent.
 */
import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { loadCheckpoint } from '../../src/train/checkpoint.ts';
import { exactDifferences, finalWeights, mpirun, mpiUnavailable, numericDifferences, parallelRunArgs, rankPid } from '../fixtures/parallel/mpi-harness.ts';
import { latestCheckpointDir, tempDir, writeCorpus } from '../fixtures/reliability/harness.ts';

const skip = mpiUnavailable() ?? false;
let dir = '', data = '', uninterrupted = '';

before(async () => {
  if (skip) return;
  dir = tempDir('parallel-faults');
  data = writeCorpus(dir);
  uninterrupted = join(dir, 'uninterrupted');
  const r = await mpirun([{ np: 2, args: parallelRunArgs(data, uninterrupted) }]);
  assert.equal(r.code, 0, r.output);
});

/** Kill rank 1 with SIGKILL while it is paused inside update 7 (rank 0 then waits for it in the next all-reduce). */
async function killedRun(out: string): Promise<number> {
  let killedAt = 0;
  const k = await mpirun([{ np: 1, args: parallelRunArgs(data, out) }, { np: 1, args: parallelRunArgs(data, out), env: { RELORA_TEST_PAUSE: 'update:7' } }], {
    timeoutMs: 60_000,
    onOutput: (all, pid) => {
      if (killedAt || !all.includes('paused at update:7')) return;
      const victim = rankPid(pid, 1);
      if (victim === null) return;
      killedAt = Date.now();
      process.kill(victim, 'SIGKILL');
    },
  });
  assert.ok(killedAt > 0, `rank 1 never paused:\n${k.output}`);
  assert.notEqual(k.code, 0);
  assert.match(k.output, /rank 1 .*exited on signal 9/);
  return (Date.now() - killedAt) / 1000;
}

test('a rank that fails ends the job with its message; the checkpoint before stays valid', { skip }, async () => {
  const failed = join(dir, 'failed');
  const r = await mpirun([{ np: 1, args: parallelRunArgs(data, failed) }, { np: 1, args: parallelRunArgs(data, failed), env: { RELORA_TEST_FAIL: 'update:7:ENOMEM' } }], { timeoutMs: 60_000 });
  assert.notEqual(r.code, 0);
  assert.match(r.output, /ENOMEM: injected by RELORA_TEST_FAIL at update:7/);
  assert.equal(loadCheckpoint(latestCheckpointDir(failed)).state.step, 5);
});

test('a rank killed while the other waits in a collective ends the job within seconds; --resume with 2 processes is bit-exact', { skip }, async () => {
  const killed = join(dir, 'killed');
  const seconds = await killedRun(killed);
  assert.ok(seconds < 30, `the job took ${seconds.toFixed(1)} s to end after the kill`);
  assert.equal(loadCheckpoint(latestCheckpointDir(killed)).state.step, 5);
  const r = await mpirun([{ np: 2, args: ['train', '--resume', killed, '--no-report'] }]);
  assert.equal(r.code, 0, r.output);
  assert.doesNotMatch(r.output, /rounding|bit-identical/);
  assert.deepEqual(exactDifferences(uninterrupted, killed), []);
});

test('--resume with another number of processes continues correctly, with a note', { skip }, async () => {
  const killed = join(dir, 'killed-then-3');
  await killedRun(killed);
  const r = await mpirun([{ np: 3, args: ['train', '--resume', killed, '--no-report'] }]);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /written by 2 processes, this run has 3 processes: .* will not be bit-identical/);
  assert.deepEqual(numericDifferences(uninterrupted, killed, 1e-5), []);
  assert.ok(finalWeights(killed).size > 0);
});

test('SIGTERM to one rank: every rank stops after the same update, rank 0 saves it, and --resume is bit-exact', { skip }, async () => {
  const stopped = join(dir, 'stopped');
  const release = join(dir, 'release-stopped');
  let signalled = false;
  const r = await mpirun([{ np: 1, args: parallelRunArgs(data, stopped) }, { np: 1, args: parallelRunArgs(data, stopped), env: { RELORA_TEST_PAUSE: 'update:7', RELORA_TEST_RELEASE: release } }], {
    timeoutMs: 60_000,
    onOutput: (all, pid) => {
      if (signalled || !all.includes('paused at update:7')) return;
      const victim = rankPid(pid, 1);
      if (victim === null) return;
      signalled = true;
      process.kill(victim, 'SIGTERM');
      writeFileSync(release, '');
    },
  });
  assert.ok(signalled, r.output);
  assert.match(r.output, /interrupted by SIGTERM after update 7/);
  assert.equal(loadCheckpoint(latestCheckpointDir(stopped)).state.step, 7);
  const resumed = await mpirun([{ np: 2, args: ['train', '--resume', stopped, '--no-report'] }]);
  assert.equal(resumed.code, 0, resumed.output);
  assert.deepEqual(exactDifferences(uninterrupted, stopped), []);
});

test('a sharded run (--shard-optimizer) stopped by a failing rank resumes from its checkpoint: unsharded with 2 processes bit for bit, sharded with 3 and alone within 1e-5', { skip }, async () => {
  const failed = join(dir, 'sharded-failed');
  const args = parallelRunArgs(data, failed, ['--shard-optimizer']);
  const r = await mpirun([{ np: 1, args }, { np: 1, args, env: { RELORA_TEST_FAIL: 'update:12:ENOMEM' } }], { timeoutMs: 60_000 });
  assert.notEqual(r.code, 0);
  assert.equal(loadCheckpoint(latestCheckpointDir(failed)).state.step, 10, 'the checkpoint after the first merge');
  const copies = ['n2-unsharded', 'n3-sharded', 'n1'].map((name) => {
    const to = join(dir, `sharded-resumed-${name}`);
    cpSync(failed, to, { recursive: true });
    return to;
  });
  const unsharded = await mpirun([{ np: 2, args: ['train', '--resume', copies[0], '--shard-optimizer', 'false', '--no-report'] }]);
  assert.equal(unsharded.code, 0, unsharded.output);
  assert.doesNotMatch(unsharded.output, /optimizer state sharded/);
  assert.deepEqual(exactDifferences(uninterrupted, copies[0]), []);
  const three = await mpirun([{ np: 3, args: ['train', '--resume', copies[1], '--no-report'] }]);
  assert.equal(three.code, 0, three.output);
  assert.match(three.output, /3 processes .*optimizer state sharded over them/);
  assert.deepEqual(numericDifferences(uninterrupted, copies[1], 1e-5), []);
  const alone = await mpirun([{ np: 1, args: ['train', '--resume', copies[2], '--no-report'] }]);
  assert.equal(alone.code, 0, alone.output);
  assert.deepEqual(numericDifferences(uninterrupted, copies[2], 1e-5), []);
});
