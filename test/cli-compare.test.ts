/** `relora compare`: four methods on the same data, budget and seed, one table and one report. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

test('relora compare trains full-rank, LoRA, LoRA + warm start and ReLoRA and tabulates them', () => {
  const dir = mkdtempSync(join(tmpdir(), 'relora-compare-'));
  const words = 'the cat sat on a mat while the dog ran to the park and a bird sang over the river'.split(' ');
  const docs = Array.from({ length: 80 }, (_, i) => Array.from({ length: 40 }, (_, j) => words[(i * 7 + j * 3) % words.length]).join(' '));
  writeFileSync(join(dir, 'corpus.jsonl'), docs.map((d) => JSON.stringify({ text: d })).join('\n'));
  const entry = fileURLToPath(new URL('../src/cli/entry.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', entry, 'compare',
    '--model', '{"hidden_size":32,"intermediate_size":64,"num_heads":4,"num_layers":2}', '--data', join(dir, 'corpus.jsonl'),
    '--tokenizer-vocab-size', '300', '--seq-len', '32', '--micro-batch', '4', '--steps', '12', '--warm-start-steps', '4',
    '--cycle-length', '4', '--warmup-steps', '1', '--restart-warmup-steps', '1', '--rank', '4', '--eval-every', '4',
    '--rank-sample', 'none', '--out', join(dir, 'cmp')], { encoding: 'utf8', env: { ...process.env, RELORA_CACHE_DIR: join(dir, 'cache') } });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  for (const label of ['full-rank', 'LoRA', 'LoRA + warm start', 'ReLoRA']) assert.match(r.stdout, new RegExp(`^${label.replace('+', '\\+')}\\s+\\d`, 'm'));
  assert.ok(existsSync(join(dir, 'cmp', 'comparison.html')));
  const summaries = ['full', 'lora', 'lora-warm', 'relora'].map((d) => JSON.parse(readFileSync(join(dir, 'cmp', d, 'summary.json'), 'utf8')));
  assert.deepEqual(summaries.map((s) => s.mode), ['full', 'lora', 'lora', 'relora']);
  assert.ok(summaries.every((s) => s.tokens === summaries[0].tokens), 'same token budget');
  assert.equal(summaries[3].merges, 1);
  assert.ok(summaries[1].params_trainable < summaries[0].params_trainable);
  // A second comparison into the same folder is refused.
  const again = spawnSync(process.execPath, ['--import', 'tsx', entry, 'compare', '--out', join(dir, 'cmp')], { encoding: 'utf8' });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /already holds a comparison/);
});
