/**
 * End to end, as a user runs it: `relora train` with no arguments (the compiled CLI, a fresh cache,
 * so the tokenizer is trained and the corpus tokenised too), then `relora eval` of the result.
 * Slow (minutes): run by `npm run test:e2e`, which CI runs after the unit tests.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../../bin/relora.js', import.meta.url));

test('`relora train` with no arguments: ReLoRA with a warm start and 3+ restarts, perplexity far below unigram, a report', () => {
  const cwd = mkdtempSync(join(tmpdir(), 'relora-e2e-'));
  const env = { ...process.env, RELORA_CACHE_DIR: join(cwd, 'cache') };
  const t0 = Date.now();
  const r = spawnSync(process.execPath, [bin, 'train'], { cwd, env, encoding: 'utf8', timeout: 30 * 60_000 });
  const minutes = (Date.now() - t0) / 60_000;
  assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr.slice(-3000)}`);
  process.stdout.write(`# default run took ${minutes.toFixed(1)} min\n# ${r.stdout.trim().split('\n').join('\n# ')}\n`);
  const m = /final validation perplexity ([\d.]+) .*unigram perplexity of the same tokens ([\d.]+)/.exec(r.stdout);
  assert.ok(m, r.stdout);
  const [ppl, unigram] = [Number(m[1]), Number(m[2])];
  assert.ok(ppl < unigram / 3, `perplexity ${ppl} is not far below the unigram perplexity ${unigram}`);
  const runs = readdirSync(join(cwd, 'runs'));
  assert.equal(runs.length, 1);
  const runDir = join(cwd, 'runs', runs[0]);
  const summary = JSON.parse(readFileSync(join(runDir, 'summary.json'), 'utf8'));
  assert.equal(summary.mode, 'relora');
  assert.ok(summary.merges >= 3 && summary.resets === summary.merges, JSON.stringify(summary));
  assert.ok(existsSync(join(runDir, 'report.html')) && r.stdout.includes(join(runDir, 'report.html')));
  const records = readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const phases = new Set(records.filter((x) => x.type === 'train').map((x) => x.phase));
  assert.deepEqual([...phases], ['full', 'relora'], 'warm start then ReLoRA, in one command');
  // The paper's claim, visible on the default run: after several merges the update's rank exceeds r.
  const last = records.filter((x) => x.type === 'rank').at(-1);
  assert.ok(last && last.rank > last.lora_rank, `rank records: ${JSON.stringify(last)}`);

  const e = spawnSync(process.execPath, [bin, 'eval', runDir, '--json'], { cwd, env, encoding: 'utf8' });
  assert.equal(e.status, 0, e.stderr);
  const ev = JSON.parse(e.stdout);
  assert.ok(Math.abs(ev.eval_ppl - ppl) / ppl < 1e-3, `eval of the final checkpoint ${ev.eval_ppl} vs training's final ${ppl}`);
});
