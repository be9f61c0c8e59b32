/** `relora train --init-from HF_DIR`: continued pre-training of an existing (grouped-query, tied) model with ReLoRA. */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { setBackend } from '../src/engine/backend.ts';
import { exportHFModel } from '../src/io/hf-export.ts';
import { loadHFModel } from '../src/io/hf-model.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { resolveConfig } from '../src/train/config.ts';
import { prepareData } from '../src/train/data.ts';
import { evaluate, train } from '../src/train/trainer.ts';

test('--init-from loads a Hugging Face folder (GQA, tied embeddings) and continues it with ReLoRA', async () => {
  setBackend('native');
  const dir = mkdtempSync(join(tmpdir(), 'relora-init-'));
  process.env.RELORA_CACHE_DIR = join(dir, 'cache');
  const words = 'the cat sat on a mat while the dog ran to the park and a bird sang over the river'.split(' ');
  const docs = Array.from({ length: 120 }, (_, i) => Array.from({ length: 40 }, (_, j) => words[(i * 7 + j * 3 + (i % 5) * j) % words.length]).join(' '));
  writeFileSync(join(dir, 'corpus.jsonl'), docs.map((d) => JSON.stringify({ text: d })).join('\n'));
  const tokenizer = await trainByteLevelBpe(docs, { vocabSize: 300 });

  const hfDir = join(dir, 'pretrained');
  const base = new LlamaForCausalLM({
    vocabSize: tokenizer.vocabSize, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKVHeads: 2, numLayers: 2,
    maxSeqLen: 64, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true,
  }).initWeights(9);
  await exportHFModel(base, hfDir, { tokenizer });
  base.dispose();

  const cfg = resolveConfig({
    init_from: hfDir, mode: 'relora', data: [join(dir, 'corpus.jsonl')], seq_len: 32, micro_batch: 4, steps: 12,
    warm_start_steps: 0, cycle_length: 4, warmup_steps: 1, restart_warmup_steps: 1, rank: 4, eval_every: 4, save_every: 6, rank_sample: 'none',
    out: join(dir, 'run'), backend: 'native',
  });
  const summary = await train({ config: cfg, runDir: join(dir, 'run'), log: () => {} });
  assert.equal(summary.merges, 2);
  assert.ok(Number.isFinite(summary.final_eval_loss));
  const saved = JSON.parse(readFileSync(join(dir, 'run', 'model.json'), 'utf8'));
  assert.equal(saved.numKVHeads, 2);
  assert.equal(saved.tieWordEmbeddings, true);
  // The first evaluation is of the imported weights: equal to evaluating the folder's model directly.
  const records = readFileSync(join(dir, 'run', 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  const first = records.find((r) => r.type === 'eval');
  const hf = await loadHFModel(hfDir);
  const data = await prepareData(cfg, () => {}, join(hfDir, 'tokenizer.json'));
  const n = Math.min(Math.floor(cfg.eval_tokens / cfg.seq_len), data.validation.numSequences(cfg.seq_len));
  const seqs = Array.from({ length: n }, (_, i) => data.validation.readSequence(i, cfg.seq_len));
  assert.equal(first.step, 0);
  assert.ok(Math.abs(first.eval_loss - evaluate(hf.model, seqs, cfg.seq_len, cfg.micro_batch)) < 1e-6, 'the run started from the imported weights');
  // Bad combinations are refused up front.
  assert.throws(() => resolveConfig({ init_from: hfDir, model: 'llama_9m' }), /model: not allowed with init_from/);
  assert.ok(existsSync(join(dir, 'run', 'tokenizer.json')));
});
