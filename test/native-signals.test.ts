/**
 * Signals arriving while native code runs must not corrupt memory (issue: "a signal at the wrong
 * moment corrupts the heap"). oneDNN's JIT SGEMM kernels point the stack pointer into a heap
 * workspace while they run (uxlfoundation/oneDNN#4845); a signal delivered to that thread then
 * writes its frame into the heap. The addon blocks asynchronous signals while its kernels run and
 * in its OpenMP worker threads, so the signal waits until the kernel returns.
 *
 * Without that, this storm aborts the child within a second ("corrupted size vs. prev_size",
 * rc 134) or segfaults (rc 139).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { loadNativeKernels, nativeLoadError } from '../src/engine/backends/native.ts';

const CHILD = join(import.meta.dirname, 'fixtures', 'signals', 'native-under-signals.ts');

interface StormResult { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; sent: number }

/** Run the child and send it SIGTERM every `everyMs` until it exits. */
function storm(threads: number, durationMs: number, everyMs: number): Promise<StormResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', CHILD, String(threads), String(durationMs)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '', stderr = '', sent = 0;
    let timer: NodeJS.Timeout | null = null;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d;
      if (/^ok /m.test(stdout)) {
        if (timer) clearInterval(timer);
        child.stdin.end();
      } else if (!timer && stdout.includes('ready')) {
        timer = setInterval(() => {
          if (child.exitCode === null && child.signalCode === null && child.kill('SIGTERM')) sent++;
        }, everyMs);
      }
    });
    child.stderr.on('data', (d: Buffer) => { stderr += d; });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearInterval(timer);
      resolve({ code, signal, stdout, stderr, sent });
    });
  });
}

describe('native kernels under a signal storm', () => {
  for (const threads of [1, 2]) {
    it(`GEMM and attention stay exact and the process intact (${threads} thread${threads > 1 ? 's' : ''})`, async () => {
      // A missing addon is a failure, not a skip (CI installs what it needs).
      if (!loadNativeKernels()) assert.fail(`native addon not available: ${nativeLoadError()}`);
      const r = await storm(threads, 1500, 2);
      const detail = `exit code ${r.code}, signal ${r.signal}; stderr: ${r.stderr.slice(-400)}`;
      assert.equal(r.code, 0, detail);
      const m = /ok (\d+) (\d+)/.exec(r.stdout);
      assert.ok(m, `child did not finish its loop: ${detail}`);
      assert.ok(r.sent >= 100, `only ${r.sent} signals were sent`);
      // Most signals reach the listener (some coalesce while one is pending).
      assert.ok(Number(m[2]) >= 20, `the child saw only ${m[2]} of ${r.sent} signals`);
    });
  }
});
