/**
 * Import of a Hugging Face LLaMA folder (config.json, model.safetensors or shards with an index,
 * tokenizer.json) as a LlamaForCausalLM with its tokenizer: float32, float16 or bfloat16
 * weights, grouped-query attention and tied embeddings.
 *
 * Everything is checked against config.json before a byte of weights is trusted: every tensor
 * the model needs is present with the shape the config implies and a float dtype, and nothing
 * else is there (a bias, an adapter, another architecture's tensor), so a folder that is not
 * the model config.json describes fails with the file and tensor named.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '../data/tokenizer-files.ts';
import type { Tokenizer } from '../data/tokenizer.ts';
import { validateConfig, type LlamaConfig } from '../nn/config.ts';
import { LlamaForCausalLM } from '../nn/llama.ts';
import { readHFConfig, type LlamaHFConfig } from './hf-config.ts';
import { openHFWeights } from './hf-weights.ts';

export interface LoadHFModelOptions {
  /**
   * Rotary tables are built for this many positions; default max_position_embeddings. A smaller
   * value saves memory for models configured for very long contexts.
   */
  maxSeqLen?: number;
  /** Skip the tokenizer even when the folder has one. */
  noTokenizer?: boolean;
}

export interface LoadedHFModel {
  model: LlamaForCausalLM;
  /** Null when the folder has no tokenizer.json (e.g. a bare random model). */
  tokenizer: Tokenizer | null;
  hfConfig: LlamaHFConfig;
  /** tokenizer_config.json as found, for writing the folder back out; null when absent. */
  tokenizerConfig: Record<string, unknown> | null;
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

function readJsonObject(path: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${path}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/** Loads a Hugging Face LLaMA folder. Throws an Error naming the file and the problem. */
export async function loadHFModel(dir: string, opts: LoadHFModelOptions = {}): Promise<LoadedHFModel> {
  if (!existsSync(dir)) throw new Error(`${dir}: no such folder`);
  if (!statSync(dir).isDirectory()) throw new Error(`${dir}: is a file; expected a Hugging Face model folder (config.json, model.safetensors, tokenizer.json)`);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new Error(`${configPath} is missing; a Hugging Face model folder has config.json next to its weights`);
  const hfConfig = await readHFConfig(configPath);
  const cfg = llamaConfigFromHF(hfConfig, opts.maxSeqLen);

  const weights = await openHFWeights(dir);
  const model = new LlamaForCausalLM(cfg);
  try {
    const expected = new Map(model.namedParameters());
    for (const [name, t] of expected) {
      const file = weights.fileOf(name);
      if (!file) {
        throw new Error(`${weights.files.join(', ')}: tensor ${JSON.stringify(name)} is missing; a LLaMA model with ${describeConfig(hfConfig)} needs it`);
      }
      const info = file.info(name);
      if (!FLOAT_DTYPES.has(info.dtype)) {
        throw new Error(`${file.header.file}: tensor ${JSON.stringify(name)} has dtype ${info.dtype}; expected F32, F16 or BF16`);
      }
      if (info.shape.length !== t.shape.length || info.shape.some((d, i) => d !== t.shape[i])) {
        throw new Error(`${file.header.file}: tensor ${JSON.stringify(name)} has shape [${info.shape.join(', ')}], but ${configPath} (${describeConfig(hfConfig)}) implies [${t.shape.join(', ')}]`);
      }
    }
    for (const name of weights.names()) {
      if (expected.has(name) || IGNORED_TENSORS.test(name)) continue;
      // Tied models are sometimes saved with the head written out as well; it must be the embedding.
      if (name === 'lm_head.weight' && cfg.tieWordEmbeddings) continue;
      const where = weights.fileOf(name)?.header.file ?? weights.files.join(', ');
      throw new Error(`${where}: holds tensor ${JSON.stringify(name)}, which a LLaMA model (${configPath}: ${describeConfig(hfConfig)}${cfg.tieWordEmbeddings ? ', tied embeddings' : ''}) does not have`);
    }
    // Only now that every header agrees with the config are tensor bytes read, each straight
    // into its parameter's buffer.
    for (const [name, t] of expected) weights.fileOf(name)!.readFloat32(name, t.data);
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    await weights.close();
  }

  let tokenizer: Tokenizer | null = null;
  let tokenizerConfig: Record<string, unknown> | null = null;
  const tokConfigPath = join(dir, 'tokenizer_config.json');
  if (existsSync(tokConfigPath)) tokenizerConfig = readJsonObject(tokConfigPath);
  if (!opts.noTokenizer && existsSync(join(dir, 'tokenizer.json'))) {
    try {
      tokenizer = await loadTokenizer(dir);
    } catch (e) {
      model.dispose();
      throw e;
    }
    if (tokenizer.vocabSize > cfg.vocabSize) {
      model.dispose();
      throw new Error(`${join(dir, 'tokenizer.json')}: produces ids up to ${tokenizer.vocabSize - 1}, but ${configPath} has vocab_size ${cfg.vocabSize}`);
    }
  }
  return { model, tokenizer, hfConfig, tokenizerConfig };
}
