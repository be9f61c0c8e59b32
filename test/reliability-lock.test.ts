/**
 * One process per run folder (src/train/run-lock.ts), with real processes: a second one is
 * refused with the folder and the holder's pid; a lock left by a killed process, by a process
 * whose pid was reused, or torn before it was written is taken over; one from another host is
 * not. Then the CLI: `train --out R` twice at once, and `--resume R` while R is resumed.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { lockRunFolder, RunLockedError, RUN_FILES } from '../src/train/run-folder.ts';
import { deterministicMetrics, REPO, runCli, startCli, tempDir, tinyRunArgs, writeCorpus, type CliResult } from './fixtures/reliability/harness.ts';

const HOLDER = fileURLToPath(new URL('./fixtures/reliability/hold-lock.ts', import.meta.url));
const work = tempDir('lock');

interface Holder {
  child: ChildProcess;
  /** The first line the holder printed: "locked <pid>" or "refused <message>". */
  said: Promise<string>;
  exited: Promise<number | null>;
}

function holdLock(runDir: string): Holder {
  const child = spawn(process.execPath, ['--import', 'tsx', HOLDER, runDir], { cwd: REPO, stdio: ['pipe', 'pipe', 'inherit'] });
  const said = new Promise<string>((resolve) => {
    let out = '';
    child.stdout!.on('data', (b: Buffer) => {
      out += b.toString();
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.on('close', () => resolve(out));
  });
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, said, exited };
}

/** /proc/PID/stat field 22: when that process started. */
const procStart = (pid: number): string => {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return s.slice(s.lastIndexOf(')') + 2).split(' ')[19]!;
};

describe('the run-folder lock', () => {
  test('a second process is refused, naming the folder and the holder; a killed holder leaves no stuck lock', async () => {
    const run = join(work, 'two');
    const first = holdLock(run);
    assert.equal(await first.said, `locked ${first.child.pid}`);
    const second = holdLock(run);
    const refused = await second.said;
    assert.match(refused, new RegExp(`^refused run folder ${run} is in use by process ${first.child.pid} on ${hostname()} \\(since .*\\): one process per run folder`));
    assert.equal(await second.exited, 3);
    // In this process too, with the error type the CLI reports.
    assert.throws(() => lockRunFolder(run), (e: Error) => e instanceof RunLockedError && e.message.includes(String(first.child.pid)));

    first.child.kill('SIGKILL');
    await first.exited;
    assert.ok(existsSync(join(run, RUN_FILES.lock)), 'a SIGKILL leaves the lock file');
    const third = holdLock(run);
    assert.equal(await third.said, `locked ${third.child.pid}`, 'a dead holder\'s lock is taken over');
    third.child.stdin!.end();
    assert.equal(await third.exited, 0);
    assert.ok(!existsSync(join(run, RUN_FILES.lock)), 'released on exit');
  });

  test('a reused pid, a torn lock file and another host', () => {
    const run = join(work, 'stale');
    mkdirSync(run);
    const lock = join(run, RUN_FILES.lock);
    const owner = { pid: 1, hostname: hostname(), started: '2020-01-01T00:00:00.000Z' };
    // pid 1 is alive, but this lock was taken by an earlier process with that pid.
    writeFileSync(lock, JSON.stringify({ ...owner, proc_start: `${procStart(1)}1` }));
    lockRunFolder(run)();
    // The same live process: refused.
    writeFileSync(lock, JSON.stringify({ ...owner, proc_start: procStart(1) }));
    assert.throws(() => lockRunFolder(run), /is in use by process 1 on .*Wait for it to finish/);
    // A crash between creating the lock file and writing it; and a stale lock moved aside by a process that died then.
    writeFileSync(`${lock}.stale-999999999`, '{}');
    writeFileSync(lock, '');
    lockRunFolder(run)();
    assert.deepEqual(readdirSync(run), [], 'nothing of the lock is left');
    // Another host's lock cannot be checked: refused, with how to clear it by hand.
    writeFileSync(lock, JSON.stringify({ ...owner, hostname: 'elsewhere' }));
    assert.throws(() => lockRunFolder(run), new RegExp(`in use by process 1 on elsewhere .*If that process is no longer running, delete ${lock}`));
  });

  test('a folder the lock created, left empty, goes with the lock; a used one stays', () => {
    const fresh = join(work, 'fresh');
    lockRunFolder(fresh)();
    assert.ok(!existsSync(fresh));
    const used = join(work, 'used');
    const release = lockRunFolder(used);
    writeFileSync(join(used, 'config.json'), '{}');
    release();
    assert.deepEqual(readdirSync(used), ['config.json']);
    assert.throws(() => lockRunFolder(join(used, 'config.json')), /config\.json is a file, not a run folder/);
  });
});

describe('the CLI takes the lock (trainer)', () => {
  const env = { RELORA_CACHE_DIR: join(work, 'cache') };
  const data = writeCorpus(work);

  /** Start a training paused at `point`; resolves once it is paused, with its result to come. */
  async function pausedRun(args: string[], point: string, release: string): Promise<{ done: Promise<CliResult> }> {
    let paused!: () => void;
    const atPause = new Promise<void>((resolve) => { paused = resolve; });
    const run = startCli(args, {
      env: { ...env, RELORA_TEST_PAUSE: point, RELORA_TEST_RELEASE: release },
      onLine: (line) => { if (line.startsWith('relora-test: paused at')) paused(); },
    });
    await Promise.race([atPause, run.done.then((r) => assert.fail(`ended before ${point}: ${r.stderr}`))]);
    // Wrapped: an async function returning the promise itself would wait for the run to end.
    return { done: run.done };
  }

  test('train --out R twice at once: one runs, the other is refused, and the folder holds one run', async () => {
    const run = join(work, 'cli-out');
    const [a, b] = await Promise.all([runCli(tinyRunArgs(data, run), env), runCli(tinyRunArgs(data, run, ['--seed', '7']), env)]);
    const winner = a.code === 0 ? a : b, loser = a.code === 0 ? b : a;
    assert.equal(winner.code, 0, winner.stderr);
    assert.equal(loser.code, 1, loser.stderr);
    // Refused by the lock, or (had the first already written its config) as a folder holding a run.
    assert.match(loser.stderr, new RegExp(`relora: error: (run folder ${run} is in use by process \\d+ on |output folder ${run} already holds a run)`));
    const seed = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8')).seed as number;
    assert.equal(seed, winner === a ? 0 : 7, 'the config is the winner\'s');
    assert.deepEqual(deterministicMetrics(run).filter((x) => x.type === 'train').map((x) => x.step), Array.from({ length: 30 }, (_, i) => i + 1), 'the metrics of one run');
    assert.ok(!existsSync(join(run, RUN_FILES.lock)));
  });

  test('train --out R while R trains: refused by the lock before anything is read or written', async () => {
    const run = join(work, 'cli-busy');
    const release = join(work, 'release-busy');
    const first = await pausedRun(tinyRunArgs(data, run), 'update:3', release);
    // Without its config the folder no longer looks like a run: only the lock can refuse now.
    rmSync(join(run, 'config.json'));
    const second = await runCli(tinyRunArgs(data, run, ['--seed', '7']), env);
    writeFileSync(release, '');
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`relora: error: run folder ${run} is in use by process \\d+ on `));
    assert.equal((await first.done).code, 0);
  });

  test('--resume R while R is being resumed: refused, and the first one\'s checkpoint writes are left alone', async () => {
    const run = join(work, 'cli-resume');
    const killedAt = join(work, 'release-never');
    const first = startCli(tinyRunArgs(data, run), { env: { ...env, RELORA_TEST_PAUSE: 'update:12', RELORA_TEST_RELEASE: killedAt }, onLine: (l, c) => { if (l.startsWith('relora-test: paused')) c.kill('SIGKILL'); } });
    assert.equal((await first.done).signal, 'SIGKILL');
    const release = join(work, 'release-resume');
    // Paused inside the write of checkpoint 15: its temporary folder exists.
    const resumed = await pausedRun(['train', '--resume', run], 'checkpoint:15', release);
    assert.equal(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.tmp-step-000015-')).length, 1);
    const second = await runCli(['train', '--resume', run], env);
    assert.equal(second.code, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`relora: error: run folder ${run} is in use by process \\d+`));
    assert.equal(readdirSync(join(run, 'checkpoints')).filter((n) => n.startsWith('.tmp-step-000015-')).length, 1, 'the refused process deleted nothing');
    writeFileSync(release, '');
    const r = await resumed.done;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(existsSync(join(run, 'checkpoints', 'step-000030')));
  });
});
