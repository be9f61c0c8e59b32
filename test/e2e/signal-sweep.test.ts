/**
 * SIGINT / SIGTERM at any moment of `relora train` — set-up, updates, evaluations, merges,
 * checkpoint writes, the final evaluation, rank measurement, last save, summary and report —
 * ends in one of the allowed outcomes, never in a crash (rc 133/134/139) or an ignored signal:
 *
 * - exit 130 (SIGINT) / 143 (SIGTERM), every checkpoint in the run folder verifies and the run
 *   files are intact; a resumed run then ends with the same losses as an uninterrupted one;
 * - exit 0 with the finished run (summary.json, report.html) and a note that the run had
 *   already finished, when the signal came after the last update.
 *
 * Two sweeps: signals at named points (the process pauses there, the signal is sent, the process
 * carries on), and signals at wall-clock delays over the whole run in small steps.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { listCheckpoints, verifyCheckpoint } from '../../src/train/checkpoint.ts';
import { verifyRunFiles } from '../../src/train/run-folder.ts';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'relora.js');
const STEPS = 24;
const TRAIN_ARGS = [
  'train', '--model', '{"hidden_size":64,"intermediate_size":176,"num_heads":2,"num_layers":2}', '--mode', 'relora', '--rank', '8',
  '--steps', String(STEPS), '--warm-start-steps', '8', '--cycle-length', '8', '--warmup-steps', '2', '--restart-warmup-steps', '2',
  '--seq-len', '32', '--micro-batch', '2', '--batch-size', '4', '--eval-every', '8', '--save-every', '8', '--eval-tokens', '1024',
  '--tokenizer-vocab-size', '2000', '--threads', '1', '--backend', 'native',
];
const CRASH = new Set([133, 134, 139]);
const EXIT_CODE = { SIGINT: 130, SIGTERM: 143 } as const;
type Sig = keyof typeof EXIT_CODE;

let work: string;
let env: NodeJS.ProcessEnv;

interface Outcome {
  code: number | null; signal: NodeJS.Signals | null; out: string; runDir: string; ms: number; delivered: boolean;
  /** Milliseconds from the start until the (first) signal was sent, if it was. */
  deliveredMs?: number;
  /** Milliseconds from the start until each line first appeared. */
  lineAt: (pattern: RegExp) => number | undefined;
}

/**
 * Start a run; `send` decides when to signal it: after `delayMs`, when it prints that it paused at
 * `pausePoint` (then it is released right after the signal), or `afterOutputMs` after it prints
 * `afterOutput`.
 */
function runWithSignal(name: string, sig: Sig, send: { delayMs?: number; pausePoint?: string; twice?: boolean; afterOutput?: string; afterOutputMs?: number }): Promise<Outcome> {
  const runDir = join(work, name);
  const release = join(work, `${name}.release`);
  const childEnv = { ...env, ...(send.pausePoint ? { RELORA_TEST_PAUSE: send.pausePoint, RELORA_TEST_RELEASE: release } : {}) };
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [CLI, ...TRAIN_ARGS, '--out', runDir], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let delivered = false;
    let deliveredMs: number | undefined;
    const lines: [number, string][] = [];
    let sentTwice = false, outputSeen = false;
    const signal = () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      delivered = child.kill(sig);
      if (delivered) deliveredMs = Date.now() - t0;
    };
    const onData = (d: Buffer) => {
      out += d;
      for (const line of String(d).split('\n')) lines.push([Date.now() - t0, line]);
      if (send.pausePoint && !delivered && out.includes(`relora-test: paused at ${send.pausePoint}\n`)) {
        signal();
        writeFileSync(release, '');
      }
      if (send.afterOutput && !delivered && !outputSeen && out.includes(send.afterOutput)) {
        outputSeen = true;
        setTimeout(signal, send.afterOutputMs ?? 0);
      }
      // The second signal only once the first was handled (a pending signal is not queued twice).
      if (send.twice && delivered && !sentTwice && out.includes(`${sig} received:`)) {
        sentTwice = true;
        child.kill(sig);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = send.delayMs !== undefined ? setTimeout(signal, send.delayMs) : null;
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearTimeout(timer);
      const lineAt = (pattern: RegExp) => lines.find(([, l]) => pattern.test(l))?.[0];
      resolve({ code, signal, out, runDir, ms: Date.now() - t0, delivered, deliveredMs, lineAt });
    });
  });
}

function finalLosses(runDir: string): number[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss?: number; eval_loss?: number })
    .filter((r) => r.type === 'train' || r.type === 'eval').map((r) => r.loss ?? r.eval_loss!);
}

/** Asserts the outcome is an allowed one; returns 'interrupted' or 'finished'. */
function checkOutcome(o: Outcome, sig: Sig, what: string): 'interrupted' | 'finished' {
  const detail = `${what}: exit ${o.code} (signal ${o.signal}) after ${o.ms} ms\n${o.out.slice(-1500)}`;
  assert.ok(o.code === null || !CRASH.has(o.code), `crashed — ${detail}`);
  if (o.signal !== null) {
    // Before Node has run the CLI's first line no handler exists yet: the default action ends the
    // process (the shell sees 128 + the signal's number), and it has written nothing.
    assert.equal(o.signal, sig, detail);
    assert.ok(!existsSync(o.runDir), `killed by ${o.signal} after the run folder was made — ${detail}`);
    return 'interrupted';
  }
  if (o.code === 0) {
    const summary = JSON.parse(readFileSync(join(o.runDir, 'summary.json'), 'utf8')) as { steps: number; interrupted?: boolean };
    assert.equal(summary.steps, STEPS, detail);
    assert.equal(summary.interrupted, undefined, detail);
    assert.ok(existsSync(join(o.runDir, 'report.html')), `no report — ${detail}`);
    // A signal sent once the run has printed its last line may find the process exiting: it
    // ends as the finished run it is, without a note.
    const lastLine = o.lineAt(/^report: /) ?? Infinity;
    if (o.delivered && o.deliveredMs! < lastLine) assert.match(o.out, /had already finished/, `a signal after the last update is reported — ${detail}`);
    return 'finished';
  }
  assert.equal(o.code, EXIT_CODE[sig], `exit code for ${sig} — ${detail}`);
  if (existsSync(join(o.runDir, 'config.json'))) {
    for (const name of listCheckpoints(o.runDir)) verifyCheckpoint(join(o.runDir, 'checkpoints', name));
    verifyRunFiles(o.runDir);
  }
  return 'interrupted';
}

function resume(runDir: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'train', '--resume', runDir, '--threads', '1', '--backend', 'native'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d; });
    child.stderr.on('data', (d: Buffer) => { out += d; });
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('a signal at any moment of a run', () => {
  let reference: { losses: number[]; ms: number; firstUpdateMs: number; lastUpdateMs: number };

  before(async () => {
    work = mkdtempSync(join(tmpdir(), 'relora-signals-'));
    env = { ...process.env, RELORA_CACHE_DIR: join(work, 'cache'), RELORA_BACKEND: 'native' };
    // The first run trains the tokenizer and fills the token cache; time the second.
    for (const name of ['warm-cache', 'reference']) {
      const o = await runWithSignal(name, 'SIGTERM', {});
      assert.equal(o.code, 0, o.out.slice(-1500));
      reference = {
        losses: finalLosses(o.runDir), ms: o.ms,
        firstUpdateMs: o.lineAt(/^step 1\//) ?? 0, lastUpdateMs: o.lineAt(new RegExp(`^step ${STEPS}/`)) ?? o.ms,
      };
    }
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  const points = [
    'update:3', 'checkpoint:8', 'update:9', 'update:16', 'checkpoint:16', 'update:24',
    'finish:eval', 'finish:rank', 'checkpoint:24', 'finish:summary', 'finish:report',
  ];
  it('at named points, both signals, and resumes to the same losses', async () => {
    const seen = new Set<string>();
    for (const [i, point] of points.entries()) {
      for (const sig of ['SIGTERM', 'SIGINT'] as const) {
        const o = await runWithSignal(`point-${i}-${sig}`, sig, { pausePoint: point });
        assert.ok(o.delivered, `the run never paused at ${point}:\n${o.out.slice(-800)}`);
        const kind = checkOutcome(o, sig, `${sig} at ${point}`);
        seen.add(`${point}:${kind}`);
        if (kind === 'interrupted' && sig === 'SIGTERM' && listCheckpoints(o.runDir).length > 0) {
          const r = await resume(o.runDir);
          assert.equal(r.code, 0, r.out.slice(-1500));
          assert.deepEqual(finalLosses(o.runDir), reference.losses, `resumed after ${sig} at ${point}: losses differ from the uninterrupted run`);
        }
      }
    }
    // During updates the run stops; after the last update it finishes.
    assert.ok(seen.has('update:9:interrupted') && seen.has('finish:report:finished'), [...seen].join(', '));
  });

  it('a second signal exits at once and leaves the checkpoints valid', async () => {
    for (const sig of ['SIGTERM', 'SIGINT'] as const) {
      const o = await runWithSignal(`twice-${sig}`, sig, { pausePoint: 'update:12', twice: true });
      assert.equal(checkOutcome(o, sig, `${sig} twice`), 'interrupted');
      assert.match(o.out, /received again: exiting without saving/);
      // The checkpoint of update 8 was complete before either signal; it survives whatever the
      // second one interrupted (checkOutcome verified every checkpoint left).
      assert.ok(listCheckpoints(o.runDir).includes('step-000008'), listCheckpoints(o.runDir).join(', '));
    }
  });

  it('in the last milliseconds of the process, after the run printed its report, the run stays finished', async () => {
    // Node's own teardown closes its signal handles before it ends; a signal landing then took the
    // default action (killed by SIGINT, exit null) until the CLI exited explicitly.
    const outcomes: string[] = [];
    for (let i = 0; i < 8; i++) {
      const sig = i % 2 === 0 ? 'SIGINT' : 'SIGTERM';
      const o = await runWithSignal(`exit-${i}`, sig, { afterOutput: '\nreport: ', afterOutputMs: i % 4 });
      outcomes.push(`${i % 4}ms ${sig} → ${o.code ?? o.signal}`);
      assert.equal(checkOutcome(o, sig, `${sig} ${i % 4} ms after the report line`), 'finished');
    }
    process.stdout.write(`# ${outcomes.join('; ')}\n`);
  });

  it('at wall-clock delays over the whole run, both signals', async () => {
    // Start-up and set-up, then the updates in small steps, then the end of the run up to exit.
    const { firstUpdateMs: a, lastUpdateMs: b, ms } = reference;
    const spread = (from: number, to: number, k: number) => Array.from({ length: k }, (_, i) => from + ((i + 0.5) / k) * (to - from));
    const delays = [...spread(0, a, 6), ...spread(a, b, 18), ...spread(b, ms * 1.05, 8)].map(Math.round);
    const outcomes: string[] = [];
    for (const [i, delayMs] of delays.entries()) {
      const sig = i % 2 === 0 ? 'SIGTERM' : 'SIGINT';
      const o = await runWithSignal(`delay-${i}`, sig, { delayMs });
      outcomes.push(`${delayMs}ms ${sig} → ${o.code ?? o.signal}`);
      checkOutcome(o, sig, `${sig} after ${delayMs} ms`);
    }
    process.stdout.write(`# ${outcomes.join('; ')}\n`);
  });
});
