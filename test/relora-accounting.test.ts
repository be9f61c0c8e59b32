import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { namedConfig, NAMED_CONFIGS } from '../src/nn/config.ts';
import { trainingFootprint } from '../src/relora/accounting.ts';
import { DEFAULT_LORA } from '../src/relora/wrap.ts';

// The table of docs/method.md ("Model"): total and trainable-in-ReLoRA at r = 128, in millions.
const SPEC: Record<string, [number, number]> = {
  llama_9m: [9.0, 9.5], llama_20m: [19.6, 18.9], llama_35m: [35.3, 30.3], llama_40m: [42.5, 34.5], llama_60m: [58.2, 42.9],
  llama_71m: [70.7, 47.8], llama_100m: [100.1, 59.8], llama_130m: [134.3, 71.7], llama_250m: [247.5, 98.9], llama_350m: [368.2, 125.6],
  llama_1b: [1339.5, 251.1],
};

test('relora info numbers match the table of docs/method.md for every named config', () => {
  assert.deepEqual(Object.keys(SPEC).sort(), Object.keys(NAMED_CONFIGS).sort());
  for (const [name, [total, trainable]] of Object.entries(SPEC)) {
    const fp = trainingFootprint(namedConfig(name), 'relora', DEFAULT_LORA);
    assert.equal((fp.params_total / 1e6).toFixed(1), total.toFixed(1), `${name} total`);
    assert.equal((fp.params_trainable / 1e6).toFixed(1), trainable.toFixed(1), `${name} trainable`);
    assert.equal(fp.bytes_grads, 4 * fp.params_trainable);
    assert.equal(fp.bytes_optimizer, 8 * fp.params_trainable);
    assert.equal(fp.bytes_params, 4 * (fp.params_total + fp.params_lora));
    const full = trainingFootprint(namedConfig(name), 'full', DEFAULT_LORA);
    assert.equal(full.params_trainable, full.params_total);
    assert.equal(full.params_lora, 0);
  }
});

test('relora info --json prints the fields; bad input exits 2 with a clear message', () => {
  const entry = fileURLToPath(new URL('../src/cli/entry.ts', import.meta.url));
  const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], { encoding: 'utf8' });
  const r = run('info', '--model', 'llama_20m', '--mode', 'lora', '--rank', '64', '--vocab-size', '1000', '--json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const fp = trainingFootprint(namedConfig('llama_20m', { vocabSize: 1000 }), 'lora', { ...DEFAULT_LORA, rank: 64 });
  // Data parallel: every trainable fp32 gradient, and nothing else, goes through the all-reduce.
  assert.deepEqual(j, { ...fp, allreduce_bytes_per_update: fp.params_trainable * 4 });
  const bad = run('info', '--model', 'llama_20m', '--mode', 'relora', '--rank', '300');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /rank 300 exceeds min\(in, out\)/);
  assert.doesNotMatch(bad.stderr, /at .*\.ts:\d+/);
  const unknown = run('info', '--model', 'llama_3m');
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown model "llama_3m"; known models: llama_9m/);
});
