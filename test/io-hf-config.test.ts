import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  fromHFConfig,
  parseHFConfig,
  readHFConfig,
  toHFConfig,
  writeHFConfig,
  type LlamaArchitecture,
} from '../src/io/hf-config.ts';

const dir = mkdtempSync(join(tmpdir(), 'relora-io-hf-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

// Written by transformers 5.x (LlamaConfig.to_json_string) in tools/reference/make_fixtures.py.
const FIXTURE_CONFIG = fileURLToPath(new URL('./fixtures/parity_model.config.json', import.meta.url));

/** A transformers 4.x style config (top-level rope_theta, torch_dtype, rope_scaling null). */
function v4Config(): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 768,
    intermediate_size: 2048,
    num_attention_heads: 12,
    num_hidden_layers: 12,
    rms_norm_eps: 1e-6,
    rope_theta: 500000.0,
    rope_scaling: null,
    vocab_size: 32100,
    max_position_embeddings: 1024,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'bfloat16',
    hidden_act: 'silu',
  };
}

let counter = 0;
function folderWith(config: unknown): string {
  counter += 1;
  const d = join(dir, `model-${counter}`);
  mkdirSync(d);
  writeFileSync(join(d, 'config.json'), typeof config === 'string' ? config : JSON.stringify(config));
  return d;
}

test('reads the transformers 5 fixture config (rope_parameters, no dtype field)', async () => {
  const raw = JSON.parse(readFileSync(FIXTURE_CONFIG, 'utf8')) as Record<string, unknown>;
  const cfg = await readHFConfig(FIXTURE_CONFIG);
  assert.equal(cfg.hidden_size, raw.hidden_size);
  assert.equal(cfg.intermediate_size, raw.intermediate_size);
  assert.equal(cfg.num_attention_heads, raw.num_attention_heads);
  assert.equal(cfg.num_key_value_heads, raw.num_key_value_heads);
  assert.equal(cfg.num_hidden_layers, raw.num_hidden_layers);
  assert.equal(cfg.vocab_size, raw.vocab_size);
  assert.equal(cfg.rms_norm_eps, raw.rms_norm_eps);
  assert.equal(cfg.rope_theta, (raw.rope_parameters as { rope_theta: number }).rope_theta);
  assert.equal(cfg.torch_dtype, 'float32');
  assert.equal(cfg.pad_token_id, null);
});

test('reads a transformers 4 config folder and fills transformers defaults', async () => {
  const raw = v4Config();
  const cfg = await readHFConfig(folderWith(raw));
  assert.equal(cfg.rope_theta, 500000);
  assert.equal(cfg.torch_dtype, 'bfloat16');
  assert.equal(cfg.num_key_value_heads, 12, 'defaults to num_attention_heads');
  assert.equal(cfg.tie_word_embeddings, false);
  assert.equal(cfg.initializer_range, 0.02);

  const bare = v4Config();
  for (const k of ['rope_theta', 'rope_scaling', 'torch_dtype', 'bos_token_id', 'eos_token_id', 'architectures']) delete bare[k];
  const d = await readHFConfig(folderWith(bare));
  assert.equal(d.rope_theta, 10000);
  assert.equal(d.torch_dtype, 'float32');
  assert.equal(d.bos_token_id, 1);
  assert.equal(d.eos_token_id, 2);

  const llama3ish: Record<string, unknown> = { ...v4Config(), eos_token_id: [2, 7], dtype: 'torch.float16', tie_word_embeddings: true };
  delete llama3ish.torch_dtype;
  const e = await readHFConfig(folderWith(llama3ish));
  assert.deepEqual(e.eos_token_id, [2, 7]);
  assert.equal(e.torch_dtype, 'float16');
  assert.equal(e.tie_word_embeddings, true);
});

test('write then read round-trips an architecture, and the file has every LlamaConfig field', async () => {
  const arch: LlamaArchitecture = {
    vocabSize: 32100,
    hiddenSize: 512,
    intermediateSize: 1376,
    numAttentionHeads: 8,
    numHiddenLayers: 8,
    maxPositionEmbeddings: 256,
    rmsNormEps: 1e-6,
  };
  const d = join(dir, 'written');
  mkdirSync(d);
  await writeHFConfig(d, arch);
  const json = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8')) as Record<string, unknown>;
  for (const key of [
    'architectures',
    'model_type',
    'vocab_size',
    'hidden_size',
    'intermediate_size',
    'num_hidden_layers',
    'num_attention_heads',
    'num_key_value_heads',
    'head_dim',
    'hidden_act',
    'max_position_embeddings',
    'initializer_range',
    'rms_norm_eps',
    'rope_theta',
    'rope_parameters',
    'attention_bias',
    'attention_dropout',
    'mlp_bias',
    'tie_word_embeddings',
    'bos_token_id',
    'eos_token_id',
    'pad_token_id',
    'torch_dtype',
  ]) {
    assert.ok(key in json, `config.json lacks ${key}`);
  }
  assert.deepEqual(json.architectures, ['LlamaForCausalLM']);
  assert.equal(json.head_dim, 64);
  assert.deepEqual(json.rope_parameters, { rope_type: 'default', rope_theta: 10000 });

  const back = fromHFConfig(await readHFConfig(d));
  assert.deepEqual(back, {
    ...arch,
    numKeyValueHeads: 8,
    ropeTheta: 10000,
    tieWordEmbeddings: false,
    bosTokenId: 1,
    eosTokenId: 2,
    padTokenId: null,
    dtype: 'float32',
    initializerRange: 0.02,
  });

  const custom = { ...arch, ropeTheta: 5e5, tieWordEmbeddings: true, bosTokenId: null, eosTokenId: [3, 4], dtype: 'bfloat16' as const };
  assert.deepEqual(fromHFConfig(parseHFConfig(toHFConfig(custom), 'mem')), {
    ...custom,
    numKeyValueHeads: 8,
    padTokenId: null,
    initializerRange: 0.02,
  });
});

test('toHFConfig refuses an architecture it cannot describe', () => {
  assert.throws(
    () => toHFConfig({ vocabSize: 10, hiddenSize: 30, intermediateSize: 8, numAttentionHeads: 4, numHiddenLayers: 1, maxPositionEmbeddings: 8, rmsNormEps: 1e-6 }),
    /"num_attention_heads" is 4; expected a divisor of hidden_size 30/,
  );
});

const bad: [string, (c: Record<string, unknown>) => unknown, RegExp][] = [
  ['another model type', (c) => ({ ...c, model_type: 'mistral' }), /"model_type" is "mistral"; expected "llama"/],
  ['no model type', (c) => ({ ...c, model_type: undefined }), /"model_type" is missing; expected "llama"/],
  ['a base model without lm_head', (c) => ({ ...c, architectures: ['LlamaModel'] }), /"architectures" is \["LlamaModel"\]; expected a list including "LlamaForCausalLM"/],
  ['missing hidden_size', (c) => ({ ...c, hidden_size: undefined }), /required field "hidden_size" is missing/],
  ['missing rms_norm_eps', (c) => ({ ...c, rms_norm_eps: undefined }), /required field "rms_norm_eps" is missing/],
  ['missing max_position_embeddings', (c) => ({ ...c, max_position_embeddings: undefined }), /required field "max_position_embeddings" is missing/],
  ['fractional layer count', (c) => ({ ...c, num_hidden_layers: 2.5 }), /"num_hidden_layers" is 2\.5; expected a positive integer/],
  ['vocab size as a string', (c) => ({ ...c, vocab_size: '32000' }), /"vocab_size" is "32000"; expected a positive integer/],
  ['zero eps', (c) => ({ ...c, rms_norm_eps: 0 }), /"rms_norm_eps" is 0; expected a positive number/],
  ['heads not dividing hidden', (c) => ({ ...c, num_attention_heads: 7 }), /"num_attention_heads" is 7; expected a divisor of hidden_size 768/],
  ['kv heads not dividing heads', (c) => ({ ...c, num_key_value_heads: 5 }), /"num_key_value_heads" is 5; expected a divisor of num_attention_heads 12/],
  ['decoupled head_dim', (c) => ({ ...c, head_dim: 128 }), /"head_dim" is 128; expected hidden_size \/ num_attention_heads = 64/],
  ['gelu activation', (c) => ({ ...c, hidden_act: 'gelu' }), /"hidden_act" is "gelu"; expected "silu"/],
  ['attention biases', (c) => ({ ...c, attention_bias: true }), /"attention_bias" is true; expected false/],
  ['scaled RoPE (4.x)', (c) => ({ ...c, rope_scaling: { type: 'linear', factor: 2 } }), /"rope_scaling" asks for RoPE type "linear"/],
  ['scaled RoPE (5.x)', (c) => ({ ...c, rope_parameters: { rope_type: 'llama3', rope_theta: 5e5 } }), /"rope_parameters" asks for RoPE type "llama3"/],
  ['negative rope theta', (c) => ({ ...c, rope_theta: -1 }), /"rope_theta" is -1; expected a positive number/],
  ['bos beyond the vocabulary', (c) => ({ ...c, bos_token_id: 32100 }), /"bos_token_id" is 32100; expected a token id in \[0, 32100\) or null/],
  ['empty eos list', (c) => ({ ...c, eos_token_id: [] }), /"eos_token_id" is \[\]; expected a token id/],
  ['unknown dtype', (c) => ({ ...c, torch_dtype: 'int8' }), /"torch_dtype" is "int8"; expected "float32", "float16", "bfloat16"/],
  ['tie flag as a string', (c) => ({ ...c, tie_word_embeddings: 'false' }), /"tie_word_embeddings" is "false"; expected true or false/],
  ['a JSON array', () => [1], /expected a JSON object, got \[1\]/],
  // Sizes are bounded before anything is allocated from them.
  ['100000 layers', (c) => ({ ...c, num_hidden_layers: 100000 }), /"num_hidden_layers" is 100000; expected a positive integer up to 1,024/],
  ['a hidden size of 1e9', (c) => ({ ...c, hidden_size: 1e9 }), /"hidden_size" is 1000000000; expected a positive integer up to 65,536/],
  ['a vocabulary of 1e9', (c) => ({ ...c, vocab_size: 1e9 }), /"vocab_size" is 1000000000; expected a positive integer up to 4,194,304/],
  ['an intermediate size of 1e9', (c) => ({ ...c, intermediate_size: 1e9 }), /"intermediate_size" is 1000000000; expected a positive integer up to 262,144/],
  ['1e9 positions', (c) => ({ ...c, max_position_embeddings: 1e9 }), /"max_position_embeddings" is 1000000000; expected a positive integer up to 16,777,216/],
  ['an embedding no array holds', (c) => ({ ...c, hidden_size: 6144, vocab_size: 1000000 }), /vocab_size × hidden_size = 1000000 × 6144 = 6,144,000,000 values in one weight matrix, more than the 4,294,967,296 one array can hold/],
  ['an odd head size', (c) => ({ ...c, hidden_size: 36 }), /"num_attention_heads" is 12; expected a divisor of hidden_size 36 leaving an even head size/],
];

for (const [what, mutate, expected] of bad) {
  test(`config.json rejected with the file and field named: ${what}`, async () => {
    const d = folderWith(mutate(v4Config()));
    await assert.rejects(readHFConfig(d), (e: Error) => {
      assert.ok(e.message.startsWith(join(d, 'config.json')), e.message);
      assert.match(e.message, expected);
      return true;
    });
  });
}

test('unreadable or non-JSON config.json names the file', async () => {
  const notJson = folderWith('{"model_type": llama}');
  await assert.rejects(readHFConfig(notJson), new RegExp(`${join(notJson, 'config.json')}: not valid JSON`));
  const empty = join(dir, 'no-config');
  mkdirSync(empty);
  await assert.rejects(readHFConfig(empty), new RegExp(`${join(empty, 'config.json')}: cannot read Hugging Face config: ENOENT`));
  await assert.rejects(readHFConfig(join(dir, 'does-not-exist')), /does-not-exist: cannot read Hugging Face config: ENOENT/);
  // A huge file is refused by its size, not read into memory.
  const huge = folderWith('{}');
  truncateSync(join(huge, 'config.json'), 2 ** 40);
  await assert.rejects(readHFConfig(huge), new RegExp(`${join(huge, 'config.json')}: cannot read Hugging Face config: the file is 1,099,511,627,776 bytes; a config.json is a few KB`));
});
