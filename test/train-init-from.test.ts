/**
 * `relora train --init-from HF_DIR`: continued pre-training of an existing (grouped-query, tied)
 * model with ReLoRA; such a run's folder reads back and resumes like any other.
 */
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { before, test } from 'node:test';
import { trainByteLevelBpe } from '../src/data/bpe-train.ts';
import { setBackend } from '../src/engine/backend.ts';
import { exportHFModel } from '../src/io/hf-export.ts';
import { loadHFModel } from '../src/io/hf-model.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { DEFAULT_MODEL, resolveConfig, type TrainConfigInput } from '../src/train/config.ts';
import { prepareData } from '../src/train/data.ts';
import type { MetricRecord } from '../src/train/metrics.ts';
import { readRunConfig } from '../src/train/run-folder.ts';
import { evaluate, train, type TrainHooks } from '../src/train/trainer.ts';
import { deterministicMetrics, runDifferences } from './fixtures/reliability/harness.ts';

const dir = mkdtempSync(join(tmpdir(), 'relora-init-'));
const hfDir = join(dir, 'pretrained');
const corpus = join(dir, 'corpus.jsonl');

before(async () => {
  setBackend('native');
  process.env.RELORA_CACHE_DIR = join(dir, 'cache');
  const words = 'the cat sat on a mat while the dog ran to the park and a bird sang over the river'.split(' ');
  const docs = Array.from({ length: 120 }, (_, i) => Array.from({ length: 40 }, (_, j) => words[(i * 7 + j * 3 + (i % 5) * j) % words.length]).join(' '));
  writeFileSync(corpus, docs.map((d) => JSON.stringify({ text: d })).join('\n'));
  const tokenizer = await trainByteLevelBpe(docs, { vocabSize: 300 });
  const base = new LlamaForCausalLM({
    vocabSize: tokenizer.vocabSize, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKVHeads: 2, numLayers: 2,
    maxSeqLen: 64, rmsNormEps: 1e-6, ropeTheta: 10000, tieWordEmbeddings: true,
  }).initWeights(9);
  await exportHFModel(base, hfDir, { tokenizer });
  base.dispose();
});

/** A 12-update init-from run; relora merges every 4 updates (full mode: one full-rank phase). */
function initFromConfig(extra: TrainConfigInput = {}) {
  const raw: TrainConfigInput = {
    init_from: hfDir, mode: 'relora', data: [corpus], seq_len: 32, micro_batch: 4, steps: 12,
    warm_start_steps: 0, cycle_length: 4, warmup_steps: 1, restart_warmup_steps: 1, rank: 4, eval_every: 4, save_every: 6, rank_sample: 'none',
    out: join(dir, 'run'), backend: 'native', ...extra,
  };
  if (raw.mode === 'full') delete raw.warm_start_steps;
  return resolveConfig(raw);
}

test('--init-from loads a Hugging Face folder (GQA, tied embeddings) and continues it with ReLoRA', async () => {
  const cfg = initFromConfig();
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

for (const mode of ['relora', 'full'] as const) {
  test(`an --init-from run in ${mode} mode reads back and resumes from its checkpoint to the same end, bit for bit`, async () => {
    const cfg = initFromConfig({ mode, save_every: 4, keep_checkpoints: 3 });
    const reference = join(dir, `resume-${mode}`);
    const calls: Record<string, unknown[]> = { metric: [], eval: [], restart: [], phase: [] };
    const hooks: TrainHooks = {
      onMetric: (r) => calls.metric.push(r), onEval: (e) => calls.eval.push(e), onRestart: (r) => calls.restart.push(r), onPhase: (p) => calls.phase.push(p),
    };
    await train({ config: cfg, runDir: reference, hooks, log: () => {} });

    // RUN/config.json holds init_from and no model block, and reads back as the same config.
    const raw = JSON.parse(readFileSync(join(reference, 'config.json'), 'utf8'));
    assert.equal('model' in raw, false);
    const saved = readRunConfig(reference);
    assert.deepEqual(saved, cfg);

    // The hooks saw what metrics.jsonl records.
    const records = deterministicMetrics(reference);
    assert.equal(calls.metric.length, records.length);
    assert.deepEqual((calls.metric as MetricRecord[]).map((r) => `${r.type}:${r.step}`), records.map((r) => `${r.type}:${r.step}`));
    assert.deepEqual(calls.eval.map((e) => (e as { step: number }).step), [0, 4, 8, 12]);
    assert.deepEqual(calls.restart.map((r) => (r as { step: number }).step), mode === 'relora' ? [5, 9] : []);
    assert.deepEqual(calls.phase, [{ phase: mode, step: 0 }]);

    // As if killed after the checkpoint of update 4: the copy continues to the reference's end.
    const cut = join(dir, `resume-${mode}-cut`);
    cpSync(reference, cut, { recursive: true });
    for (const s of ['step-000008', 'step-000012']) rmSync(join(cut, 'checkpoints', s), { recursive: true });
    writeFileSync(join(cut, 'latest'), 'step-000004');
    const log: string[] = [];
    const summary = await train({ config: readRunConfig(cut), runDir: cut, resume: true, log: (s) => log.push(s) });
    assert.ok(log.some((l) => /resuming .* \(update 4 of 12\)/.test(l)), log.join('\n'));
    assert.equal(summary.steps, 12);
    assert.deepEqual(runDifferences(reference, cut), []);
  });
}

test('a run folder written with the default model block beside init_from (earlier versions) still reads back', () => {
  const run = join(dir, 'old-init-from');
  cpSync(join(dir, 'resume-full'), run, { recursive: true });
  const raw = JSON.parse(readFileSync(join(run, 'config.json'), 'utf8'));
  writeFileSync(join(run, 'config.json'), JSON.stringify({ ...raw, model: { ...DEFAULT_MODEL } }));
  rmSync(join(run, 'run-manifest.json'), { force: true }); // such a folder predates the run manifest too
  assert.equal(readRunConfig(run).model, undefined);
  assert.equal(readRunConfig(run).init_from, hfDir);
});
