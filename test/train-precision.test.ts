/**
 * `--precision bf16` through the CLI: the run says which bf16 hardware it uses, trains to losses
 * close to the fp32 run's without being the same numbers (the products really are rounded), and
 * the saved config keeps the setting for --resume; a bad value is refused by name.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { runCli, tempDir, tinyRunArgs, writeCorpus } from './fixtures/reliability/harness.ts';

const work = tempDir('precision');
const env = { RELORA_CACHE_DIR: join(work, 'cache') };

function trainLosses(runDir: string): number[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string; loss: number })
    .filter((r) => r.type === 'train').map((r) => r.loss);
}

test('--precision bf16 trains every phase in bf16, says so, and records the setting', async () => {
  const data = writeCorpus(work);
  const fp32 = join(work, 'fp32'), bf16 = join(work, 'bf16');
  const a = await runCli(tinyRunArgs(data, fp32, ['--backend', 'native']), env);
  assert.equal(a.code, 0, a.stderr);
  const b = await runCli(tinyRunArgs(data, bf16, ['--backend', 'native', '--precision', 'bf16']), env);
  assert.equal(b.code, 0, b.stderr);
  assert.match(b.stdout + b.stderr, /precision bf16: products in bfloat16 with fp32 accumulation \((oneDNN bf16 matmul on (AMX|AVX512-BF16)|emulated in fp32: .*slower)/);
  assert.doesNotMatch(a.stdout + a.stderr, /precision bf16/);
  assert.equal((JSON.parse(readFileSync(join(bf16, 'config.json'), 'utf8')) as { precision: string }).precision, 'bf16');
  const la = trainLosses(fp32), lb = trainLosses(bf16);
  assert.equal(la.length, lb.length);
  // Unlike frozen_bf16, the full-rank warm start is in bf16 too: the very first loss differs.
  assert.notEqual(la[0], lb[0]);
  assert.ok(Math.abs(la[0] - lb[0]) / la[0] < 1e-3, `first loss ${la[0]} vs ${lb[0]}`);

  const bad = await runCli(tinyRunArgs(data, join(work, 'bad'), ['--precision', 'fp16']), env);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /precision/);
  assert.match(bad.stderr, /fp32|bf16/);
});
