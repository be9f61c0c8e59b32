/**
 * `frozen_bf16`: the bare flag turns it on, the run says so, its losses follow the fp32 run's
 * closely without being the same numbers (the frozen products really are rounded), and the
 * saved config keeps the setting for --resume.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir, tinyRunArgs, writeCorpus } from './fixtures/reliability/harness.ts';

const work = tempDir('frozen-bf16');
const env = { RELORA_CACHE_DIR: join(work, 'cache') };

/** Training losses up to the first merge (after it, the tiny run's optimizer resets make it chaotic). */
function losses(runDir: string): number[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: number; merges: number })
    .filter((r) => r.type === 'train' && r.merges === 0).map((r) => r.loss);
}

test('--frozen-bf16 trains with bf16 frozen products and records the setting', async () => {
  const data = writeCorpus(work);
  const fp32 = join(work, 'fp32'), bf16 = join(work, 'bf16');
  const a = await runCli(tinyRunArgs(data, fp32, ['--backend', 'native']), env);
  assert.equal(a.code, 0, a.stderr);
  const b = await runCli(tinyRunArgs(data, bf16, ['--backend', 'native', '--frozen-bf16']), env);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout + b.stderr, /switching to relora at update \d+: .*frozen W products in bfloat16 \(/);
  assert.doesNotMatch(a.stdout + a.stderr, /bfloat16/);
  assert.equal((JSON.parse(readFileSync(join(bf16, 'config.json'), 'utf8')) as { frozen_bf16: boolean }).frozen_bf16, true);

  const la = losses(fp32), lb = losses(bf16);
  assert.equal(la.length, lb.length);
  assert.ok(la.length >= 10, `${la.length} updates before the first merge`);
  // The full-rank warm start is identical; the LoRA phase differs by rounding only.
  assert.equal(la[0], lb[0]);
  let maxDiff = 0, differs = false;
  for (let i = 0; i < la.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(la[i] - lb[i]) / la[i]);
    differs ||= la[i] !== lb[i];
  }
  assert.ok(differs, 'the bf16 run gave exactly the fp32 losses: the frozen products were not rounded');
  assert.ok(maxDiff < 1e-3, `losses drift apart by ${maxDiff} (relative)`);
});
