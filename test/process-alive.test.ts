/** isProcessAlive: live, exited and zombie processes (a zombie holds no lock, cache or export). */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { test } from 'node:test';
import { isProcessAlive } from '../src/data/process-alive.ts';

test('this process is alive; an exited and reaped one is not', () => {
  assert.equal(isProcessAlive(process.pid), true);
  const r = spawnSync('true');
  assert.equal(isProcessAlive(r.pid!), false);
});

test('a zombie (exited, never reaped by its parent) counts as exited', { skip: !existsSync('/proc/self/stat') && 'no /proc on this system' }, async (t) => {
  // `sh` starts a background `sleep`, then becomes another `sleep` (exec), which never reaps its
  // children; killing the first one once the exec is done leaves it a zombie until the parent ends.
  const parent = spawn('sh', ['-c', 'sleep 60 & echo $!; exec sleep 60'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => parent.kill('SIGKILL'));
  const child = await new Promise<number>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
  const field = (pid: number, name: 'comm' | 'state'): string => {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return name === 'comm' ? s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')) : s[s.lastIndexOf(')') + 2];
  };
  const waitFor = async (ok: () => boolean, what: string): Promise<void> => {
    for (let i = 0; i < 1000 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(ok(), what);
  };
  await waitFor(() => field(parent.pid!, 'comm') === 'sleep', 'the shell never exec-ed sleep');
  assert.equal(isProcessAlive(child), true);
  process.kill(child, 'SIGKILL');
  await waitFor(() => field(child, 'state') === 'Z', 'the child never became a zombie');
  assert.equal(isProcessAlive(child), false);
  assert.equal(isProcessAlive(parent.pid!), true);
});
