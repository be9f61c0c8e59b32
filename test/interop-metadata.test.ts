/**
 * An export carries the Hugging Face metadata of the model it came from over unchanged (BOS/EOS
 * ids, max_position_embeddings, tokenizer_config.json, …), for a folder exported directly and
 * for a run continued from one; a model trained from scratch gets metadata that agrees with
 * `relora generate`.
 */
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { exportModelSource } from '../src/infer/export-source.ts';
import { loadModelSource } from '../src/infer/model-source.ts';
import { copyHfMetadata } from '../src/io/hf-metadata.ts';
import { loadHFModel } from '../src/io/hf-model.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { LLAMA3_BOS, LLAMA3_EOS, writeLlama3LikeFolder } from './hf-metadata-helpers.ts';
import { bpeTokenizer, fakeRun, logitsOf, maxAbsDiff, randomIds, tempDir } from './interop-helpers.ts';

setBackend('js');

type Json = Record<string, unknown>;
const readJson = (path: string): Json => JSON.parse(readFileSync(path, 'utf8')) as Json;
const KEPT_VERBATIM = ['tokenizer.json', 'generation_config.json', 'tokenizer_config.json', 'special_tokens_map.json'];
const RUN_SHAPE = { model: { hidden_size: 16, intermediate_size: 32, num_heads: 2, num_layers: 1 }, alpha: 8, rank: 4, seq_len: 64 };

/** The export's config.json equals the source's but for the fields named in `changed`. */
function assertConfigKept(source: string, exported: string, changed: Json): void {
  const src = readJson(join(source, 'config.json'));
  const out = readJson(join(exported, 'config.json'));
  assert.deepEqual(out, { ...src, ...changed });
  assert.equal(out.bos_token_id, LLAMA3_BOS);
  assert.equal(out.eos_token_id, LLAMA3_EOS);
  assert.equal(out.max_position_embeddings, 8192);
}

function assertFilesKept(source: string, exported: string): void {
  for (const f of KEPT_VERBATIM) assert.deepEqual(readFileSync(join(exported, f)), readFileSync(join(source, f)), `${f} is carried over byte for byte`);
}

test('exporting a Llama-3-like Hugging Face folder keeps its metadata (BOS 128000, 8192 positions, tokenizer settings)', async () => {
  const { dir, cleanup } = tempDir('meta-direct');
  try {
    const hf = join(dir, 'llama3');
    await writeLlama3LikeFolder(hf);
    const out = join(dir, 'exported');
    await exportModelSource(hf, out);
    // Only the weight dtype changed (the source says bfloat16; this export is float32).
    assertConfigKept(hf, out, { torch_dtype: 'float32' });
    assertFilesKept(hf, out);
    // Loaded back, it prompts as the source does.
    const a = await loadModelSource(hf), b = await loadModelSource(out);
    assert.deepEqual(b.promptPrefix, [LLAMA3_BOS]);
    assert.deepEqual([b.promptPrefix, b.eosIds], [a.promptPrefix, a.eosIds]);
    a.model.dispose();
    b.model.dispose();
  } finally {
    cleanup();
  }
});

test('a run continued from a Llama-3-like folder exports with the source metadata; only a grown vocabulary changes it', async () => {
  const { dir, cleanup } = tempDir('meta-run');
  try {
    const hf = join(dir, 'llama3');
    await writeLlama3LikeFolder(hf);
    // The run's model: the imported one at the run's sequence length, as the trainer builds it.
    const { model, tokenizer } = await loadHFModel(hf, { maxSeqLen: 64 });
    const run = join(dir, 'run');
    mkdirSync(run);
    await copyHfMetadata(hf, run);
    await fakeRun(run, model, tokenizer!, RUN_SHAPE, { modelJson: true });
    const out = join(dir, 'exported');
    await exportModelSource(run, out);
    assertConfigKept(hf, out, { torch_dtype: 'float32' });
    assertFilesKept(hf, out);
    const back = await loadHFModel(out);
    const ids = randomIds(1, 7, 128256, 3);
    assert.ok(maxAbsDiff(logitsOf(back.model, ids), logitsOf(model, ids)) < 1e-6, 'the weights are the run\'s');
    back.model.dispose();
    // relora generate prompts the run as transformers prompts the source and the export: BOS first, Llama-3's EOS.
    const fromRun = await loadModelSource(run), fromExport = await loadModelSource(out);
    assert.deepEqual([fromRun.promptPrefix, fromRun.eosIds], [[LLAMA3_BOS], [LLAMA3_EOS]]);
    assert.deepEqual([fromExport.promptPrefix, fromExport.eosIds], [fromRun.promptPrefix, fromRun.eosIds]);
    fromRun.model.dispose();
    fromExport.model.dispose();

    // A run that grew the vocabulary: vocab_size follows the weights, everything else stays.
    const grownRun = join(dir, 'grown');
    mkdirSync(grownRun);
    await copyHfMetadata(hf, grownRun);
    const grown = new LlamaForCausalLM({ ...model.config, vocabSize: 128264 }).initWeights(2);
    await fakeRun(grownRun, grown, tokenizer!, RUN_SHAPE, { modelJson: true });
    const grownOut = join(dir, 'grown-exported');
    await exportModelSource(grownRun, grownOut, { dtype: 'bfloat16' });
    assertConfigKept(hf, grownOut, { torch_dtype: 'bfloat16', vocab_size: 128264 });
    assertFilesKept(hf, grownOut);
    model.dispose();
    grown.dispose();
  } finally {
    cleanup();
  }
});

test('a run trained from scratch exports BOS/EOS as relora generate uses them', async () => {
  const { dir, cleanup } = tempDir('meta-scratch');
  try {
    const tokenizer = await bpeTokenizer();
    const model = new LlamaForCausalLM({
      vocabSize: tokenizer.vocabSize, hiddenSize: 16, intermediateSize: 32, numHeads: 2, numLayers: 1, maxSeqLen: 64, rmsNormEps: 1e-6, ropeTheta: 10000,
    }).initWeights(3);
    await fakeRun(dir, model, tokenizer, RUN_SHAPE, { modelJson: true });
    const out = join(dir, 'exported');
    await exportModelSource(dir, out);
    const run = await loadModelSource(dir), exported = await loadModelSource(out);
    assert.deepEqual([exported.eosIds, exported.promptPrefix], [run.eosIds, run.promptPrefix]);
    const cfg = readJson(join(out, 'config.json'));
    const gen = readJson(join(out, 'generation_config.json'));
    const tc = readJson(join(out, 'tokenizer_config.json'));
    // No BOS token: an empty prompt starts after EOS in relora generate, and transformers starts from bos_token_id.
    assert.deepEqual([cfg.bos_token_id, cfg.eos_token_id, gen.bos_token_id, gen.eos_token_id], Array(4).fill(tokenizer.eosId));
    assert.deepEqual([tc.bos_token, tc.eos_token, tc.add_bos_token], ['<|endoftext|>', '<|endoftext|>', false]);
    assert.equal(cfg.max_position_embeddings, 64);
    run.model.dispose();
    exported.model.dispose();
    model.dispose();
  } finally {
    cleanup();
  }
});
