/**
 * The signal sweep of signal-sweep.test.ts under `mpirun -np 2`: SIGTERM or SIGINT reaches one rank
 * (as a failing peer's mpirun or a scheduler does) or both, at named points of a data-parallel run —
 * warm start, ReLoRA updates, checkpoint writes, the final evaluation, rank measurement, the last
 * save, summary, report. Every outcome is an allowed one: both ranks stop after the same update with
 * every checkpoint valid (and `--resume` then equals an uninterrupted run bit for bit), or — after the
 * last update — the run finishes with its summary. No rank crashes, hangs or is killed by a signal.
 * Skipped, with the reason, where mpirun is absent (CI installs it).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { listCheckpoints, verifyCheckpoint } from '../../src/train/checkpoint.ts';
import { exactDifferences, mpirun, mpiUnavailable, parallelRunArgs, rankPid } from '../fixtures/parallel/mpi-harness.ts';
import { tempDir, writeCorpus } from '../fixtures/reliability/harness.ts';

const skip = mpiUnavailable() ?? false;
const STEPS = 16;
let dir = '', data = '', uninterrupted = '';

before(async () => {
  if (skip) return;
  dir = tempDir('signal-sweep-mpi');
  data = writeCorpus(dir);
  uninterrupted = join(dir, 'uninterrupted');
  const r = await mpirun([{ np: 2, args: parallelRunArgs(data, uninterrupted) }]);
  assert.equal(r.code, 0, r.output);
});

type Target = 0 | 1 | 'both';

/** A 2-rank run whose target rank(s) pause at `point`; the signal is sent there, then they go on. */
async function signalledRun(name: string, point: string, sig: 'SIGTERM' | 'SIGINT', target: Target) {
  const out = join(dir, name);
  const release = join(dir, `${name}.release`);
  const pause = { RELORA_TEST_PAUSE: point, RELORA_TEST_RELEASE: release };
  const paused = (rank: 0 | 1) => target === 'both' || target === rank;
  let sent = false;
  const r = await mpirun([0, 1].map((rank) => ({ np: 1, args: parallelRunArgs(data, out), env: paused(rank as 0 | 1) ? pause : {} })), {
    timeoutMs: 90_000,
    onOutput: (all, pid) => {
      const expected = target === 'both' ? 2 : 1;
      if (sent || all.split(`paused at ${point}\n`).length - 1 < expected) return;
      const ranks = target === 'both' ? [0, 1] : [target];
      const pids = ranks.map((k) => rankPid(pid, k));
      if (pids.some((p) => p === null)) return;
      sent = true;
      for (const p of pids) process.kill(p!, sig);
      writeFileSync(release, '');
    },
  });
  return { ...r, out, sent };
}

// Checkpoints, summary and report are rank 0's alone, so only rank 0 passes those points.
const CASES: [string, Target][] = [
  ['update:3', 1], ['update:6', 0], ['checkpoint:10', 0], ['update:13', 'both'],
  ['finish:eval', 'both'], ['finish:rank', 1], ['checkpoint:16', 0], ['finish:summary', 0], ['finish:report', 0],
];

test('a signal at named points of a 2-process run ends in an allowed outcome, and resumes bit-exact', { skip }, async () => {
  const outcomes: string[] = [];
  for (const [i, [point, target]] of CASES.entries()) {
    const sig = i % 2 === 0 ? 'SIGTERM' : 'SIGINT';
    const r = await signalledRun(`case-${i}`, point, sig, target);
    const detail = `${sig} to rank ${target} at ${point}: exit ${r.code} after ${r.seconds.toFixed(1)} s\n${r.output.slice(-2000)}`;
    assert.ok(r.sent, `never paused — ${detail}`);
    assert.doesNotMatch(r.output, /exited on signal|Segmentation fault|Aborted|corrupted|malloc/, detail);
    for (const name of listCheckpoints(r.out)) verifyCheckpoint(join(r.out, 'checkpoints', name));
    if (new RegExp(`interrupted by ${sig} after update`).test(r.output)) {
      assert.notEqual(r.code, 0, detail);
      outcomes.push(`${point} → interrupted`);
      const resumed = await mpirun([{ np: 2, args: ['train', '--resume', r.out, '--no-report'] }]);
      assert.equal(resumed.code, 0, resumed.output);
      assert.deepEqual(exactDifferences(uninterrupted, r.out), [], detail);
    } else {
      assert.equal(r.code, 0, detail);
      const summary = JSON.parse(readFileSync(join(r.out, 'summary.json'), 'utf8')) as { steps: number; interrupted?: boolean };
      assert.equal(summary.steps, STEPS, detail);
      assert.equal(summary.interrupted, undefined, detail);
      // Rank 0 prints for the job: the note is there when rank 0 got the signal.
      if (target !== 1) assert.match(r.output, /had already finished/, detail);
      assert.ok(existsSync(join(r.out, 'checkpoints')), detail);
      outcomes.push(`${point} → finished`);
    }
  }
  process.stdout.write(`# ${outcomes.join('; ')}\n`);
  // During updates the job stops; after the last update it finishes.
  assert.ok(outcomes.includes('update:6 → interrupted') && outcomes.includes('finish:summary → finished'), outcomes.join(', '));
});
