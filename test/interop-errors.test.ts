/**
 * Folders that are not a loadable LLaMA model fail with an Error naming the file and the
 * problem, before any weight is trusted: wrong architecture, missing files, shapes that disagree
 * with config.json, unknown or non-float dtypes, headers that lie, broken shard indexes.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setBackend } from '../src/engine/backend.ts';
import { loadModelSource } from '../src/infer/model-source.ts';
import { loadHFModel } from '../src/io/hf-model.ts';
import { parseSafetensors, serializeSafetensors, type TensorToWrite } from '../src/io/safetensors.ts';
import { interopFixture, tempDir } from './interop-helpers.ts';

setBackend('js');

const GQA = interopFixture('gqa');

function fixtureTensors(): Record<string, TensorToWrite> {
  const st = parseSafetensors(readFileSync(join(GQA, 'model.safetensors')), 'model.safetensors');
  return Object.fromEntries(st.names().map((n) => [n, { dtype: 'F32' as const, shape: st.info(n).shape, data: st.readFloat32(n) }]));
}

function fixtureConfig(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(GQA, 'config.json'), 'utf8')) as Record<string, unknown>;
}

/** A model folder with the given config and weights (fixture ones by default). */
function folder(root: string, name: string, opts: { config?: Record<string, unknown>; tensors?: Record<string, TensorToWrite>; weights?: Uint8Array | null } = {}): string {
  const dir = join(root, name);
  mkdirSync(dir);
  writeFileSync(join(dir, 'config.json'), JSON.stringify(opts.config ?? fixtureConfig()));
  if (opts.weights !== null) writeFileSync(join(dir, 'model.safetensors'), opts.weights ?? serializeSafetensors(opts.tensors ?? fixtureTensors()));
  return dir;
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

test('not a model folder, missing files and other architectures are named', async () => {
  const { dir, cleanup } = tempDir('bad-hf');
  try {
    await assert.rejects(loadHFModel(join(dir, 'absent')), new RegExp(`${escape(join(dir, 'absent'))}: no such folder`));
    writeFileSync(join(dir, 'file'), 'x');
    await assert.rejects(loadHFModel(join(dir, 'file')), /: is a file; expected a Hugging Face model folder/);
    const noConfig = join(dir, 'no-config');
    mkdirSync(noConfig);
    await assert.rejects(loadHFModel(noConfig), new RegExp(`${escape(join(noConfig, 'config.json'))} is missing`));

    const mistral = folder(dir, 'mistral', { config: { ...fixtureConfig(), model_type: 'mistral', architectures: ['MistralForCausalLM'] } });
    await assert.rejects(loadHFModel(mistral), new RegExp(`${escape(join(mistral, 'config.json'))}: field "model_type" is "mistral"; expected "llama"`));
    const gpt = folder(dir, 'gpt2', { config: { model_type: 'gpt2', n_embd: 32 } });
    await assert.rejects(loadHFModel(gpt), /config.json: field "model_type" is "gpt2"; expected "llama"/);

    const noWeights = folder(dir, 'no-weights', { weights: null });
    await assert.rejects(loadHFModel(noWeights), /has no weights: expected model.safetensors or model.safetensors.index.json/);
    writeFileSync(join(noWeights, 'pytorch_model.bin'), 'pickle');
    await assert.rejects(loadHFModel(noWeights), /only pytorch_model.bin; only safetensors weights are supported/);

    const notJson = folder(dir, 'bad-config');
    writeFileSync(join(notJson, 'config.json'), '{"model_type": "llama",');
    await assert.rejects(loadHFModel(notJson), /bad-config\/config.json: not valid JSON/);
  } finally {
    cleanup();
  }
});

test('shapes that disagree with config.json, missing, extra and non-float tensors are named with their file', async () => {
  const { dir, cleanup } = tempDir('bad-shapes');
  try {
    // The weights are GQA (k_proj [16, 32]) but this config.json says 4 key/value heads.
    const mha = folder(dir, 'mha-config', { config: { ...fixtureConfig(), num_key_value_heads: 4 } });
    await assert.rejects(loadHFModel(mha), (e: Error) => {
      assert.match(e.message, new RegExp(`^${escape(join(mha, 'model.safetensors'))}: tensor "model.layers.0.self_attn.k_proj.weight" has shape \\[16, 32\\]`));
      assert.match(e.message, /config.json \(.*num_key_value_heads 4.*\) implies \[32, 32\]/);
      return true;
    });
    const wider = folder(dir, 'wider', { config: { ...fixtureConfig(), intermediate_size: 80 } });
    await assert.rejects(loadHFModel(wider), /tensor "model.layers.0.mlp.gate_proj.weight" has shape \[64, 32\], but .*implies \[80, 32\]/);

    const missing = fixtureTensors();
    delete missing['model.norm.weight'];
    await assert.rejects(loadHFModel(folder(dir, 'missing', { tensors: missing })), /model.safetensors: tensor "model.norm.weight" is missing; a LLaMA model with hidden_size 32/);

    const extra = fixtureTensors();
    extra['model.layers.0.self_attn.q_proj.bias'] = { dtype: 'F32', shape: [32], data: new Float32Array(32) };
    await assert.rejects(loadHFModel(folder(dir, 'extra', { tensors: extra })), /model.safetensors: holds tensor "model.layers.0.self_attn.q_proj.bias", which a LLaMA model .* does not have/);

    const ints = fixtureTensors();
    ints['model.norm.weight'] = { dtype: 'I32', shape: [32], data: new Int32Array(32) };
    await assert.rejects(loadHFModel(folder(dir, 'ints', { tensors: ints })), /model.safetensors: tensor "model.norm.weight" has dtype I32; expected F32, F16 or BF16/);
  } finally {
    cleanup();
  }
});

test('a safetensors header that lies about sizes or offsets, or names an unknown dtype, is refused before any read', async () => {
  const { dir, cleanup } = tempDir('bad-header');
  try {
    const good = serializeSafetensors(fixtureTensors());
    const truncated = folder(dir, 'truncated', { weights: good.subarray(0, good.length - 100) });
    await assert.rejects(loadHFModel(truncated), new RegExp(`safetensors file "${escape(join(truncated, 'model.safetensors'))}": .*(run past the end|data buffer)`));

    // Rewrite one entry of the header in place (same length) to claim a dtype nobody knows.
    const n = Number(new DataView(good.buffer, good.byteOffset).getBigUint64(0, true));
    const header = new TextDecoder().decode(good.subarray(8, 8 + n));
    const lying = header.replace('"dtype":"F32"', '"dtype":"F4X"');
    assert.equal(lying.length, header.length);
    const bytes = Uint8Array.from(good);
    bytes.set(new TextEncoder().encode(lying), 8);
    await assert.rejects(loadHFModel(folder(dir, 'dtype', { weights: bytes })), /model.safetensors": tensor ".*": unknown dtype "F4X"/);

    const huge = Uint8Array.from(good);
    new DataView(huge.buffer).setBigUint64(0, 1n << 40n, true);
    await assert.rejects(loadHFModel(folder(dir, 'huge', { weights: huge })), /header length 1099511627776 exceeds/);
  } finally {
    cleanup();
  }
});

test('a shard index that is broken, points outside the folder, or lies about its shards is named', async () => {
  const { dir, cleanup } = tempDir('bad-index');
  try {
    const tied = interopFixture('tied');
    const copyTied = (name: string): string => {
      const d = join(dir, name);
      mkdirSync(d);
      for (const f of ['config.json', 'model.safetensors.index.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors']) copyFileSync(join(tied, f), join(d, f));
      return d;
    };
    const index = (d: string): { weight_map: Record<string, string> } => JSON.parse(readFileSync(join(d, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
    const writeIndex = (d: string, v: unknown): void => writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify(v));

    const ok = await loadHFModel(copyTied('ok'));
    ok.model.dispose();

    const missingShard = copyTied('missing-shard');
    writeFileSync(join(missingShard, 'model-00002-of-00002.safetensors'), '');
    await assert.rejects(loadHFModel(missingShard), /model-00002-of-00002.safetensors": file is 0 bytes, too short/);

    const gone = copyTied('gone');
    const ix = index(gone);
    ix.weight_map['model.norm.weight'] = 'model-00003-of-00003.safetensors';
    writeIndex(gone, ix);
    await assert.rejects(loadHFModel(gone), /model.safetensors.index.json: lists shard model-00003-of-00003.safetensors, but .* is missing/);

    const escapeDir = copyTied('escape');
    const ix2 = index(escapeDir);
    ix2.weight_map['model.norm.weight'] = '../ok/model-00001-of-00002.safetensors';
    writeIndex(escapeDir, ix2);
    await assert.rejects(loadHFModel(escapeDir), /weight_map\["model.norm.weight"\] is "..\/ok\/model-00001-of-00002.safetensors"; expected the name of a .safetensors file in the same folder/);

    const lies = copyTied('lies');
    const ix3 = index(lies);
    const first = ix3.weight_map['model.embed_tokens.weight'];
    const other = first === 'model-00001-of-00002.safetensors' ? 'model-00002-of-00002.safetensors' : 'model-00001-of-00002.safetensors';
    ix3.weight_map['model.embed_tokens.weight'] = other;
    writeIndex(lies, ix3);
    await assert.rejects(loadHFModel(lies), new RegExp(`says tensor "model.embed_tokens.weight" is in ${escape(other)}, but .* has no such tensor`));

    const broken = copyTied('broken');
    writeIndex(broken, { metadata: {} });
    await assert.rejects(loadHFModel(broken), /model.safetensors.index.json: field "weight_map" is missing; expected an object/);
    writeFileSync(join(broken, 'model.safetensors.index.json'), '{');
    await assert.rejects(loadHFModel(broken), /model.safetensors.index.json: not valid JSON/);
  } finally {
    cleanup();
  }
});

test('run and checkpoint folders with problems are named too', async () => {
  const { dir, cleanup } = tempDir('bad-run');
  try {
    await assert.rejects(loadModelSource(join(dir, 'nope')), /nope: no such file or folder/);
    mkdirSync(join(dir, 'empty'));
    await assert.rejects(loadModelSource(join(dir, 'empty')), /not a relora run folder, checkpoint folder or Hugging Face model folder/);
    const run = join(dir, 'run');
    mkdirSync(run);
    writeFileSync(join(run, 'config.json'), '{}');
    await assert.rejects(loadModelSource(run), /run folder has no checkpoints/);
    const ckpt = join(dir, 'lonely-checkpoint');
    mkdirSync(ckpt);
    writeFileSync(join(ckpt, 'manifest.json'), '{}');
    await assert.rejects(loadModelSource(ckpt), /is a checkpoint, but .* has no config.json/);
  } finally {
    cleanup();
  }
});
