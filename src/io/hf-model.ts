/**
 * Import of a Hugging Face LLaMA folder (config.json, model.safetensors or shards with an index,
 * tokenizer.json) as a LlamaForCausalLM with its tokenizer: float32, float16 or bfloat16
 * weights, grouped-query attention and tied embeddings.
 *
 * Everything is checked against config.json before anything is allocated and before a byte of
 * weights is trusted: config.json's sizes are bounded, every tensor the model needs is present
 * in the safetensors headers with the shape the config implies and a float dtype, and nothing
 * else is there (a bias, an adapter, another architecture's tensor), so a folder that is not
 * the model config.json describes fails with the file and tensor named. inspectHFModel does
 * only these checks, so a caller can estimate memory from the real shape before loading.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { tokenizerFromJSON } from '../data/tokenizer-files.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import { headDimOf, kvHeadsOf, validateConfig, type LlamaConfig } from '../nn/config.ts';
import { LlamaForCausalLM } from '../nn/llama.ts';
import { readHFConfig, type LlamaHFConfig } from './hf-config.ts';
import { openHFWeights, type HFWeights } from './hf-weights.ts';
import { readJsonObjectFile } from './json-file.ts';

export interface LoadHFModelOptions {
  /**
   * Rotary tables are built for this many positions; default max_position_embeddings. A smaller
   * value saves memory for models configured for very long contexts.
   */
  maxSeqLen?: number;
  /** Skip the tokenizer even when the folder has one. */
  noTokenizer?: boolean;
  /**
   * Called with the model's shape once config.json and the weight headers agree, before the
   * model is allocated; throw to refuse (e.g. a memory estimate that does not fit).
   */
  beforeAllocate?: (config: LlamaConfig, hfConfig: LlamaHFConfig) => void;
}

/** What inspectHFModel finds without loading anything: the validated configs. */
export interface InspectedHFModel {
  hfConfig: LlamaHFConfig;
  /** The model shape (rotary tables for maxSeqLen positions when given). */
  config: LlamaConfig;
  configPath: string;
}

export interface LoadedHFModel {
  model: LlamaForCausalLM;
  /** Null when the folder has no tokenizer.json (e.g. a bare random model). */
  tokenizer: Tokenizer | null;
  hfConfig: LlamaHFConfig;
  /** tokenizer_config.json as found, for writing the folder back out; null when absent. */
  tokenizerConfig: Record<string, unknown> | null;
  /**
   * tokenizer.json as found (null without a tokenizer): its post-processor says whether a text
   * starts with BOS, which the tokenizer relora runs need not keep.
   */
  tokenizerJson: Record<string, unknown> | null;
}

/** Tensors a LLaMA checkpoint may carry that are not parameters (old transformers saved these buffers). */
const IGNORED_TENSORS = /(^|\.)rotary_emb\.inv_freq$/;

/** The model config a Hugging Face config describes. */
export function llamaConfigFromHF(hf: LlamaHFConfig, maxSeqLen?: number): LlamaConfig {
  return validateConfig({
    vocabSize: hf.vocab_size,
    hiddenSize: hf.hidden_size,
    intermediateSize: hf.intermediate_size,
    numHeads: hf.num_attention_heads,
    numKVHeads: hf.num_key_value_heads,
    numLayers: hf.num_hidden_layers,
    maxSeqLen: maxSeqLen ?? hf.max_position_embeddings,
    rmsNormEps: hf.rms_norm_eps,
    ropeTheta: hf.rope_theta,
    tieWordEmbeddings: hf.tie_word_embeddings,
  });
}

function describeConfig(hf: LlamaHFConfig): string {
  return `hidden_size ${hf.hidden_size}, intermediate_size ${hf.intermediate_size}, num_attention_heads ${hf.num_attention_heads}, ` +
    `num_key_value_heads ${hf.num_key_value_heads}, num_hidden_layers ${hf.num_hidden_layers}, vocab_size ${hf.vocab_size}`;
}

const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16']);

/** tokenizer.json of the largest vocabularies is tens of MB; its config a few KB. */
const MAX_TOKENIZER_BYTES = 256 * 2 ** 20;
const MAX_TOKENIZER_CONFIG_BYTES = 16 * 2 ** 20;

/**
 * Every parameter tensor a LLaMA model of config `c` has, under Hugging Face names, with its
 * shape (what LlamaForCausalLM allocates, computed without allocating).
 */
export function expectedTensorShapes(c: LlamaConfig): Map<string, number[]> {
  const d = c.hiddenSize, f = c.intermediateSize, kv = kvHeadsOf(c) * headDimOf(c);
  const out = new Map<string, number[]>([['model.embed_tokens.weight', [c.vocabSize, d]]]);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.layers.${i}`;
    out.set(`${p}.self_attn.q_proj.weight`, [d, d]);
    out.set(`${p}.self_attn.k_proj.weight`, [kv, d]);
    out.set(`${p}.self_attn.v_proj.weight`, [kv, d]);
    out.set(`${p}.self_attn.o_proj.weight`, [d, d]);
    out.set(`${p}.mlp.gate_proj.weight`, [f, d]);
    out.set(`${p}.mlp.up_proj.weight`, [f, d]);
    out.set(`${p}.mlp.down_proj.weight`, [d, f]);
    out.set(`${p}.input_layernorm.weight`, [d]);
    out.set(`${p}.post_attention_layernorm.weight`, [d]);
  }
  out.set('model.norm.weight', [d]);
  if (!c.tieWordEmbeddings) out.set('lm_head.weight', [c.vocabSize, d]);
  return out;
}

/** Checks the weight headers against the shape config.json describes; reads no tensor data. */
function checkWeights(weights: HFWeights, cfg: LlamaConfig, hfConfig: LlamaHFConfig, configPath: string): void {
  const expected = expectedTensorShapes(cfg);
  for (const [name, shape] of expected) {
    const file = weights.fileOf(name);
    if (!file) {
      throw new Error(`${weights.files.join(', ')}: tensor ${JSON.stringify(name)} is missing; a LLaMA model with ${describeConfig(hfConfig)} needs it`);
    }
    const info = file.info(name);
    if (!FLOAT_DTYPES.has(info.dtype)) {
      throw new Error(`${file.header.file}: tensor ${JSON.stringify(name)} has dtype ${info.dtype}; expected F32, F16 or BF16`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new Error(`${file.header.file}: tensor ${JSON.stringify(name)} has shape [${info.shape.join(', ')}], but ${configPath} (${describeConfig(hfConfig)}) implies [${shape.join(', ')}]`);
    }
  }
  for (const name of weights.names()) {
    if (expected.has(name) || IGNORED_TENSORS.test(name)) continue;
    // Tied models are sometimes saved with the head written out as well; it must be the embedding.
    if (name === 'lm_head.weight' && cfg.tieWordEmbeddings) continue;
    const where = weights.fileOf(name)?.header.file ?? weights.files.join(', ');
    throw new Error(`${where}: holds tensor ${JSON.stringify(name)}, which a LLaMA model (${configPath}: ${describeConfig(hfConfig)}${cfg.tieWordEmbeddings ? ', tied embeddings' : ''}) does not have`);
  }
}

function checkFolder(dir: string): string {
  if (!existsSync(dir)) throw new Error(`${dir}: no such folder`);
  if (!statSync(dir).isDirectory()) throw new Error(`${dir}: is a file; expected a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)`);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new Error(`${configPath} is missing; a Hugging Face model folder has config.json next to its weights`);
  return configPath;
}

async function openChecked(dir: string, maxSeqLen: number | undefined): Promise<InspectedHFModel & { weights: HFWeights }> {
  const configPath = checkFolder(dir);
  const hfConfig = await readHFConfig(configPath);
  const config = llamaConfigFromHF(hfConfig, maxSeqLen);
  const weights = await openHFWeights(dir);
  try {
    checkWeights(weights, config, hfConfig, configPath);
  } catch (e) {
    await weights.close();
    throw e;
  }
  return { hfConfig, config, configPath, weights };
}

/**
 * Validates a Hugging Face LLaMA folder without loading it: config.json (sizes bounded) and the
 * safetensors headers (every tensor with the shape the config implies). Reads no tensor data and
 * allocates nothing the size of the model, so a caller can check the memory the real shape needs
 * first. `maxSeqLen` sizes the rotary tables as loadHFModel would.
 */
export async function inspectHFModel(dir: string, opts: { maxSeqLen?: number } = {}): Promise<InspectedHFModel> {
  const { weights, ...found } = await openChecked(dir, opts.maxSeqLen);
  await weights.close();
  return found;
}

/** The folder's tokenizer.json, read once (size checked): as written, and as the tokenizer relora runs. */
function loadFolderTokenizer(dir: string, cfg: LlamaConfig, configPath: string, tokenizerConfig: Record<string, unknown> | null): { tokenizer: Tokenizer; json: Record<string, unknown> } {
  const path = join(dir, 'tokenizer.json');
  const json = readJsonObjectFile(path, MAX_TOKENIZER_BYTES);
  const tokenizer = tokenizerFromJSON(json, tokenizerConfig ?? {}, { describe: path });
  if (tokenizer.vocabSize > cfg.vocabSize) {
    throw new Error(`${path}: produces ids up to ${tokenizer.vocabSize - 1}, but ${configPath} has vocab_size ${cfg.vocabSize}`);
  }
  return { tokenizer, json };
}

/** Loads a Hugging Face LLaMA folder. Throws an Error naming the file and the problem. */
export async function loadHFModel(dir: string, opts: LoadHFModelOptions = {}): Promise<LoadedHFModel> {
  const { hfConfig, config: cfg, configPath, weights } = await openChecked(dir, opts.maxSeqLen);
  let tokenizer: Tokenizer | null = null;
  let tokenizerConfig: Record<string, unknown> | null = null;
  let tokenizerJson: Record<string, unknown> | null = null;
  let model: LlamaForCausalLM | null = null;
  try {
    // The small files first: a bad tokenizer is refused before the model is allocated.
    const tokConfigPath = join(dir, 'tokenizer_config.json');
    if (existsSync(tokConfigPath)) tokenizerConfig = readJsonObjectFile(tokConfigPath, MAX_TOKENIZER_CONFIG_BYTES);
    if (!opts.noTokenizer && existsSync(join(dir, 'tokenizer.json'))) {
      ({ tokenizer, json: tokenizerJson } = loadFolderTokenizer(dir, cfg, configPath, tokenizerConfig));
    }
    opts.beforeAllocate?.(cfg, hfConfig);
    model = new LlamaForCausalLM(cfg);
    // Every header agrees with the config: tensor bytes are read, each straight into its parameter's buffer.
    for (const [name, t] of model.namedParameters()) weights.fileOf(name)!.readFloat32(name, t.data);
  } catch (e) {
    model?.dispose();
    throw e;
  } finally {
    await weights.close();
  }
  return { model, tokenizer, hfConfig, tokenizerConfig, tokenizerJson };
}
