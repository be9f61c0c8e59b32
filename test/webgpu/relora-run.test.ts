/**
 * A tiny ReLoRA run on `--backend webgpu` (warm start, then two merges with optimizer resets,
 * LoRA dropout and random reset pruning) reports the same loss as the native backend at every
 * update, within 1e-4, and the same merges. The learning rate and LoRA scale are modest so the
 * run stays well conditioned: with alpha/r = 8 the gradient norm jumped to ~90 after the first
 * merge, and from there any rounding difference (native against js too) grows past 1e-4. In CI the adapter is SwiftShader (Debian's chromium
 * package); without an adapter the run — and so the test — fails.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { before, test } from 'node:test';

import { SWIFTSHADER_ICD } from '../../src/engine/backends/webgpu/gpu.ts';
import { deterministicMetrics, startCli, tempDir, writeCorpus, type Rec } from '../fixtures/reliability/harness.ts';

const work = tempDir('webgpu-run');
const env: Record<string, string> = { RELORA_CACHE_DIR: join(work, 'cache') };
if (!process.env.VK_ICD_FILENAMES && existsSync(SWIFTSHADER_ICD)) env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;

function args(data: string, out: string, backend: string): string[] {
  return [
    'train', '--data', data, '--out', out, '--backend', backend,
    '--model', '{"hidden_size":32,"intermediate_size":64,"num_heads":4,"num_layers":2}',
    '--mode', 'relora', '--warm-start-steps', '4', '--cycle-length', '4', '--steps', '16',
    '--seq-len', '16', '--micro-batch', '2', '--batch-size', '4', '--rank', '4', '--dropout', '0.1',
    '--optimizer-reset', 'random:0.9', '--eval-every', '100', '--eval-tokens', '64', '--tokenizer-vocab-size', '300',
    '--warmup-steps', '1', '--restart-warmup-steps', '1', '--lr', '1e-3', '--alpha', '4', '--threads', '1', '--no-report',
  ];
}

let data = '';
before(() => {
  data = writeCorpus(work);
});

test('tiny ReLoRA run: webgpu losses match native within 1e-4 per update, two merges', async () => {
  const runs: Record<string, Rec[]> = {};
  for (const backend of ['native', 'webgpu']) {
    const out = join(work, backend);
    const r = await startCli(args(data, out, backend), { env, timeoutMs: 900_000 }).done;
    assert.equal(r.code, 0, `${backend}: ${r.stderr}`);
    runs[backend] = deterministicMetrics(out);
  }
  const steps = (recs: Rec[]): Rec[] => recs.filter((x) => x.type === 'train');
  const [nat, gpu] = [steps(runs.native), steps(runs.webgpu)];
  assert.equal(gpu.length, 16, `records: ${JSON.stringify(runs.webgpu.slice(0, 3))}`);
  assert.equal(gpu.length, nat.length);
  for (let i = 0; i < nat.length; i++) {
    const a = nat[i].loss as number, b = gpu[i].loss as number;
    assert.ok(Number.isFinite(b) && Math.abs(a - b) <= 1e-4, `update ${nat[i].step}: native loss ${a}, webgpu ${b}`);
    // The gradient norm, the other number read back each update, agrees as closely (relatively).
    const ga = nat[i].grad_norm as number, gb = gpu[i].grad_norm as number;
    assert.ok(Math.abs(ga - gb) <= 1e-4 * Math.max(1, ga), `update ${nat[i].step}: native grad norm ${ga}, webgpu ${gb}`);
  }
  const merges = (recs: Rec[]): number[] => recs.filter((x) => x.type === 'restart').map((x) => x.step);
  assert.equal(merges(runs.webgpu).length, 2, 'two merges');
  assert.deepEqual(merges(runs.webgpu), merges(runs.native));
});

test('--backend webgpu without an adapter fails with the reason, before any work', async () => {
  const out = join(work, 'no-adapter');
  const r = await startCli(args(data, out, 'webgpu'), { env: { ...env, VK_ICD_FILENAMES: join(work, 'no-such-driver.json') }, timeoutMs: 120_000 }).done;
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /relora: error: WebGPU: no adapter found \(VK_ICD_FILENAMES=.*no-such-driver\.json; without a GPU, Debian's chromium package provides SwiftShader/);
  assert.ok(!existsSync(out), 'no run folder was created');
});
