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
  // `sh` starts `true` in the background, then becomes `sleep`, which never reaps it: a zombie for 5 s.
  const parent = spawn('sh', ['-c', 'true & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => parent.kill('SIGKILL'));
  const zombie = await new Promise<number>((resolve) => parent.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))));
  const state = (): string => { const s = readFileSync(`/proc/${zombie}/stat`, 'utf8'); return s[s.lastIndexOf(')') + 2]; };
  for (let i = 0; i < 200 && state() !== 'Z'; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(state(), 'Z', 'the child never became a zombie');
  assert.equal(isProcessAlive(zombie), false);
  assert.equal(isProcessAlive(parent.pid!), true);
});
