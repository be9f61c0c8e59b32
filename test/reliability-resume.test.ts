/**
 * Crash safety for real: `relora train` runs in a child process and is SIGKILLed at several
 * moments (at random, in the middle of a checkpoint write, in the middle of an update right after
 * a merge), resumed with --resume each time, and must end with every metrics record and the final
 * weights and optimizer state bit-identical to an uninterrupted run. SIGINT and SIGTERM must save
 * a checkpoint and exit cleanly, and resuming from it must also be bit-identical.
 *
 * The test's own random choices come from RELORA_TEST_SEED (default: the clock); the seed is
 * printed so a failure can be replayed.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { loadLatestCheckpoint } from '../src/train/checkpoint.ts';
import {
  deterministicMetrics, MERGES, progressStep, runCli, runDifferences, SAVE_EVERY, seededRandom, startCli, STEPS, tempDir, WARM_START,
  tinyRunArgs, writeCorpus, type CliResult,
} from './fixtures/reliability/harness.ts';

const seed = Number(process.env.RELORA_TEST_SEED ?? Date.now() % 1_000_000);
const random = seededRandom(seed);
const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));

const work = tempDir('resume');
const env = { RELORA_CACHE_DIR: join(work, 'cache') };
let data = '';
let reference = '';

/** How a child is stopped: SIGKILL once a progress line reaches an update, or at a test-hook pause. */
type Kill =
  | { kind: 'random'; atUpdate: number; delayMs: number }
  | { kind: 'checkpoint-write'; step: number }
  | { kind: 'after-merge'; merge: number; update: number };

function describeKill(k: Kill): string {
  if (k.kind === 'random') return `SIGKILL ${k.delayMs} ms after update ${k.atUpdate} was reported`;
  if (k.kind === 'checkpoint-write') return `SIGKILL in the middle of writing checkpoint ${k.step}`;
  return `SIGKILL in the middle of update ${k.update}, ${k.update - k.merge} after the merge at update ${k.merge}`;
}

/**
 * Five kills in increasing order of update: one at random early (possibly before the first
 * checkpoint), one inside a checkpoint write, one inside an update at most two after a merge,
 * two more at random.
 */
function planKills(): Kill[] {
  const first = between(2, 8);
  const ckpt = [10, 15][between(0, 1)]!;
  const merge = MERGES.filter((m) => m > ckpt && m < MERGES[MERGES.length - 1]!)[0]!;
  const afterMerge = merge + between(1, 2);
  const fourth = between(afterMerge + 1, afterMerge + 4);
  const fifth = between(fourth + 2, STEPS - 2);
  return [
    { kind: 'random', atUpdate: first, delayMs: between(0, 15) },
    { kind: 'checkpoint-write', step: ckpt },
    { kind: 'after-merge', merge, update: afterMerge },
    { kind: 'random', atUpdate: fourth, delayMs: between(0, 15) },
    { kind: 'random', atUpdate: fifth, delayMs: between(0, 15) },
  ];
}

function runUntilKilled(args: string[], kill: Kill): Promise<CliResult> {
  const hookEnv: Record<string, string> = { ...env };
  if (kill.kind === 'checkpoint-write') hookEnv.RELORA_TEST_PAUSE = `checkpoint:${kill.step}`;
  if (kill.kind === 'after-merge') hookEnv.RELORA_TEST_PAUSE = `update:${kill.update}`;
  let fired = false;
  return startCli(args, {
    env: hookEnv,
    onLine: (line, child) => {
      if (fired) return;
      const step = progressStep(line);
      if (kill.kind === 'random' && step !== null && step >= kill.atUpdate) {
        fired = true;
        setTimeout(() => child.kill('SIGKILL'), kill.delayMs);
      } else if (kill.kind !== 'random' && line.startsWith('relora-test: paused at')) {
        fired = true;
        child.kill('SIGKILL');
      }
    },
  }).done;
}

/** The checkpoint before the one at `step`: every SAVE_EVERY updates and at the end of the warm start. */
const previousSave = (step: number): number => Math.max(WARM_START < step ? WARM_START : 0, SAVE_EVERY * Math.floor((step - 1) / SAVE_EVERY));

const lastTrainStep = (runDir: string): number => Math.max(0, ...deterministicMetrics(runDir).filter((r) => r.type === 'train').map((r) => r.step));

describe('bit-exact resume', () => {
  before(() => {
    data = writeCorpus(work);
  });

  test('five SIGKILLs (random, mid-checkpoint, right after a merge) and resumes reproduce the uninterrupted run', async (t) => {
    t.diagnostic(`RELORA_TEST_SEED=${seed}`);
    reference = join(work, 'reference');
    const crashed = join(work, 'crashed');
    const kills = planKills();
    // The uninterrupted run goes alongside the crashing one (one thread each).
    const referenceRun = runCli(tinyRunArgs(data, reference), env);

    let args = tinyRunArgs(data, crashed);
    for (const kill of kills) {
      t.diagnostic(describeKill(kill));
      const r = await runUntilKilled(args, kill);
      assert.equal(r.signal, 'SIGKILL', `${describeKill(kill)}: the child was not killed (exit ${r.code}):\n${r.stderr}`);
      if (args[1] === '--resume') assert.match(r.stderr, /resuming .* from .*step-\d+ \(update \d+|no checkpoint yet: starting the run again/);

      const ckDir = join(crashed, 'checkpoints');
      if (kill.kind === 'checkpoint-write') {
        const partial = readdirSync(ckDir).filter((n) => n.startsWith(`.tmp-step-${String(kill.step).padStart(6, '0')}-`));
        assert.equal(partial.length, 1, 'the interrupted write left its temporary folder');
        assert.ok(!existsSync(join(ckDir, `step-${String(kill.step).padStart(6, '0')}`)), 'no half-written checkpoint under its final name');
      }
      if (existsSync(ckDir) && readdirSync(ckDir).some((n) => n.startsWith('step-'))) {
        // Whatever the moment, the newest committed checkpoint verifies (no fallback needed).
        const warnings: string[] = [];
        const ck = loadLatestCheckpoint(crashed, (m) => warnings.push(m));
        assert.deepEqual(warnings, []);
        assert.ok(ck.state.step <= lastTrainStep(crashed), 'the checkpoint is not ahead of the metrics');
        if (kill.kind === 'checkpoint-write') assert.equal(ck.state.step, previousSave(kill.step));
      }
      args = ['train', '--resume', crashed];
    }
    const final = await runCli(args, env);
    assert.equal(final.code, 0, final.stderr);
    assert.match(final.stderr, /resuming /);
    const ref = await referenceRun;
    assert.equal(ref.code, 0, ref.stderr);

    assert.deepEqual(runDifferences(reference, crashed), []);
    const trainRecords = deterministicMetrics(crashed).filter((r) => r.type === 'train');
    assert.deepEqual(trainRecords.map((r) => r.step), Array.from({ length: STEPS }, (_, i) => i + 1), 'one record per update, none repeated');
    assert.deepEqual(deterministicMetrics(crashed).filter((r) => r.type === 'restart').map((r) => r.step), MERGES);
    assert.deepEqual(readdirSync(join(crashed, 'checkpoints')).filter((n) => n.startsWith('.')), [], 'leftovers of interrupted writes are cleaned up');
  });

  for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143]] as const) {
    test(`${signal} saves a checkpoint at the update it finishes, exits with ${code}, and the run resumes bit-exactly`, async (t) => {
      assert.ok(reference, 'needs the reference run of the previous test');
      const runDir = join(work, signal.toLowerCase());
      const at = between(3, STEPS - 5);
      t.diagnostic(`${signal} once update ${at} is reported`);
      let sent = false;
      const r = await startCli(tinyRunArgs(data, runDir), {
        env,
        onLine: (line, child) => {
          const step = progressStep(line);
          if (!sent && step !== null && step >= at) {
            sent = true;
            child.kill(signal);
          }
        },
      }).done;
      assert.equal(r.signal, null, 'exited by itself, not killed by the signal');
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, new RegExp(`${signal} received: finishing this update, saving a checkpoint`));
      assert.match(r.stdout, new RegExp(`interrupted by ${signal} after update \\d+; continue with: relora train --resume`));
      const stopped = lastTrainStep(runDir);
      assert.ok(stopped >= at && stopped < STEPS);
      const ck = loadLatestCheckpoint(runDir, (m) => assert.fail(m));
      assert.equal(ck.state.step, stopped, 'the checkpoint holds the last finished update');
      const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8')) as Record<string, unknown>;
      assert.equal(summary.interrupted_by, signal);

      const resumed = await runCli(['train', '--resume', runDir], env);
      assert.equal(resumed.code, 0, resumed.stderr);
      assert.deepEqual(runDifferences(reference, runDir), []);
    });
  }

  test('a second SIGINT exits at once; the last complete checkpoint stays valid and the run resumes bit-exactly', async (t) => {
    assert.ok(reference, 'needs the reference run of the first test');
    const runDir = join(work, 'double-sigint');
    const at = between(6, STEPS - 5);
    t.diagnostic(`SIGINT once update ${at} is reported, again as soon as the first is acknowledged`);
    let sent = 0;
    const r = await startCli(tinyRunArgs(data, runDir), {
      env,
      onLine: (line, child) => {
        const step = progressStep(line);
        if (sent === 0 && step !== null && step >= at) {
          sent++;
          child.kill('SIGINT');
        } else if (sent === 1 && line.includes('SIGINT received: finishing this update')) {
          sent++;
          child.kill('SIGINT');
        }
      },
    }).done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /SIGINT received again: exiting without saving \(the last complete checkpoint is intact\)/);
    const ck = loadLatestCheckpoint(runDir, (m) => assert.fail(m));
    assert.ok(ck.state.step <= lastTrainStep(runDir));
    const resumed = await runCli(['train', '--resume', runDir], env);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.deepEqual(runDifferences(reference, runDir), []);
  });
});
