/**
 * Sizes in a Hugging Face folder are checked before they are trusted: config.json against the
 * weight headers before anything is allocated, and the memory the shape needs before loading
 * it for generate, eval or export.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, ftruncateSync, mkdirSync, openSync, rmSync, truncateSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { setBackend } from '../src/engine/backend.ts';
import { checkInferenceMemory, estimateInferenceMemory } from '../src/infer/inference-memory.ts';
import { loadModelSource } from '../src/infer/model-source.ts';
import { expectedTensorShapes, inspectHFModel, llamaConfigFromHF, loadHFModel } from '../src/io/hf-model.ts';
import { exportHFModel } from '../src/io/hf-export.ts';
import { countParameters, type LlamaConfig } from '../src/nn/config.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { ResourceError } from '../src/train/memory.ts';
import { tempDir } from './interop-helpers.ts';

setBackend('js');
const { dir: work, cleanup } = tempDir('sizes');
after(cleanup);

const small: LlamaConfig = { vocabSize: 96, hiddenSize: 32, intermediateSize: 64, numHeads: 4, numKVHeads: 2, numLayers: 2, maxSeqLen: 64, rmsNormEps: 1e-5, ropeTheta: 10000 };

function hfConfig(c: LlamaConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'], model_type: 'llama', hidden_size: c.hiddenSize, intermediate_size: c.intermediateSize,
    num_attention_heads: c.numHeads, num_key_value_heads: c.numKVHeads, num_hidden_layers: c.numLayers, vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen, rms_norm_eps: c.rmsNormEps, rope_theta: c.ropeTheta, tie_word_embeddings: c.tieWordEmbeddings ?? false,
    torch_dtype: 'bfloat16', ...extra,
  };
}

/**
 * A folder whose model.safetensors has a consistent header for every tensor of `c` (bfloat16)
 * and a data section that is a hole in a sparse file: a model of any size, on no disk space.
 */
function sparseFolder(name: string, c: LlamaConfig): string {
  const dir = join(work, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig(c)));
  const header: Record<string, unknown> = {};
  let offset = 0;
  for (const [tensor, shape] of expectedTensorShapes(llamaConfigFromHF(hfConfig(c) as never))) {
    const bytes = shape.reduce((a, b) => a * b, 2);
    header[tensor] = { dtype: 'BF16', shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const fd = openSync(join(dir, 'model.safetensors'), 'w');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  writeSync(fd, prefix);
  writeSync(fd, json);
  ftruncateSync(fd, 8 + json.length + offset);
  closeSync(fd);
  return dir;
}

test('expectedTensorShapes is what the model allocates (grouped-query, tied and untied)', () => {
  for (const tie of [false, true]) {
    const model = new LlamaForCausalLM({ ...small, tieWordEmbeddings: tie });
    assert.deepEqual(expectedTensorShapes(model.config), new Map([...model.namedParameters()].map(([n, t]) => [n, [...t.shape]])));
    model.dispose();
  }
});

test('a config.json that disagrees with the weights is refused by tensor name before the model is allocated', async () => {
  const dir = join(work, 'lying');
  const model = new LlamaForCausalLM(small).initWeights(1);
  await exportHFModel(model, dir);
  model.dispose();
  // 1000 layers of width 8192: loading it first would need terabytes; the headers say 2 layers of 32.
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig({ ...small, hiddenSize: 8192, numHeads: 64, numKVHeads: 8, intermediateSize: 28672, numLayers: 1000 })));
  const refused = /model\.safetensors: tensor "model\.embed_tokens\.weight" has shape \[96, 32\], but .*config\.json \(hidden_size 8192, .*num_hidden_layers 1000.*\) implies \[96, 8192\]/;
  await assert.rejects(inspectHFModel(dir), refused);
  let allocated = false;
  await assert.rejects(loadHFModel(dir, { beforeAllocate: () => { allocated = true; } }), refused);
  assert.equal(allocated, false);
  // A config with fewer layers than the weights: the extra tensors are named.
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfConfig({ ...small, numLayers: 1 })));
  await assert.rejects(inspectHFModel(dir), /holds tensor "model\.layers\.1\.[a-z_.]+weight", which a LLaMA model .*num_hidden_layers 1.* does not have/);
});

test('a consistent model too large for this machine is refused by its memory estimate before allocation (generate, export)', async () => {
  const huge: LlamaConfig = { vocabSize: 128256, hiddenSize: 8192, intermediateSize: 28672, numHeads: 64, numKVHeads: 8, numLayers: 1000, maxSeqLen: 8192, rmsNormEps: 1e-5, ropeTheta: 500000 };
  const dir = sparseFolder('huge', huge);
  // The folder is valid: inspecting it (what train --init-from does first) gives its shape for the estimate.
  const inspected = await inspectHFModel(dir, { maxSeqLen: 64 });
  assert.equal(inspected.config.numLayers, 1000);
  assert.ok(countParameters(inspected.config) > 8e11);
  await assert.rejects(loadModelSource(dir), (e: Error) => {
    assert.ok(e instanceof ResourceError, String(e));
    assert.ok(e.message.startsWith(`the model in ${dir} needs an estimated `), e.message);
    assert.match(e.message, /parameters .*, rotary tables .*, KV cache and activations for 2048 tokens .*more than this machine's .* of memory/);
    return true;
  });
  const entry = fileURLToPath(new URL('../src/cli/entry.ts', import.meta.url));
  for (const args of [['generate', dir, '--prompt', 'x'], ['export', dir, join(work, 'huge-out')]]) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', entry, ...args], { encoding: 'utf8', env: { ...process.env, RELORA_BACKEND: 'js' }, timeout: 60_000 });
    assert.equal(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /relora: error: the model in .*huge needs an estimated .* more than this machine's/);
  }
});

test('oversized JSON files of a model folder are refused by their size, before they are read', async () => {
  const dir = join(work, 'big-json');
  const model = new LlamaForCausalLM(small).initWeights(1);
  await exportHFModel(model, dir);
  model.dispose();
  for (const [file, limit] of [['model.safetensors.index.json', '64 MiB'], ['tokenizer_config.json', '16 MiB']] as const) {
    writeFileSync(join(dir, file), '{}');
    truncateSync(join(dir, file), 2 ** 40);
    await assert.rejects(loadHFModel(dir), new RegExp(`${file}: cannot read \\(the file is 1,099,511,627,776 bytes, more than the ${limit}`));
    rmSync(join(dir, file));
  }
});

test('the inference estimate counts parameters, rotary tables, KV cache and activations', () => {
  const e = estimateInferenceMemory({ ...small, numLayers: 2 }, 16);
  assert.equal(e.params, countParameters(small) * 4);
  assert.equal(e.ropeTables, 64 * 8 * 4);
  // KV cache: 2 (K, V) × 2 layers × 16 tokens × 2 kv heads × 8; forward: 16 × (6·32 + 3·64) + 4·16² + 16·96.
  assert.equal(e.context, (2 * 2 * 16 * 2 * 8 + 16 * (6 * 32 + 3 * 64) + 4 * 16 * 16 + 16 * 96) * 4);
  assert.equal(e.total, e.params + e.ropeTables + e.context + e.runtime);
  assert.throws(() => checkInferenceMemory(small, { what: 'the test model', available: 2 ** 20 }), /Error: the test model needs an estimated .* more than this machine's 1\.00 MiB of memory$/);
  assert.match(checkInferenceMemory(small, { what: 'the test model' }), /parameters/);
});
