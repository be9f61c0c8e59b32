/** `relora info` describes the run `relora train` would make with the same flags. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { namedConfig } from '../src/nn/config.ts';
import { trainingFootprint } from '../src/relora/accounting.ts';
import { resolveConfig } from '../src/train/config.ts';

test('relora info uses the LoRA rank relora train defaults to', () => {
  const entry = fileURLToPath(new URL('../src/cli/entry.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry, 'info', '--model', 'llama_20m', '--mode', 'relora', '--json'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const train = resolveConfig({ mode: 'relora' });
  const expected = trainingFootprint(namedConfig('llama_20m'), 'relora', {
    rank: train.rank, alpha: train.alpha, dropout: train.dropout, targetModules: train.target_modules,
  });
  // …plus what data-parallel training all-reduces per update: the trainable gradients in float32.
  assert.deepEqual(JSON.parse(r.stdout), { ...expected, allreduce_bytes_per_update: expected.params_trainable * 4 });
  const text = spawnSync(process.execPath, ['--import', 'tsx', entry, 'info', '--model', 'llama_20m', '--mode', 'relora'], { encoding: 'utf8' });
  assert.match(text.stdout, new RegExp(`llama_20m \\(relora, rank ${train.rank}\\)`));
});
