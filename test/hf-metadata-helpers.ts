/** A Llama-3-like Hugging Face folder and its metadata: distinct BOS and EOS ids, 8192 positions. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { exportHFModel } from '../src/io/hf-export.ts';
import { LlamaForCausalLM } from '../src/nn/llama.ts';
import { BPE_TOKENIZER } from './interop-helpers.ts';

export const LLAMA3_BOS = 128000;
export const LLAMA3_EOS = 128001;

/** The shape fields a small Llama-3-like config.json has (vocabulary large enough for Llama-3's ids). */
export function llama3LikeConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    attention_bias: false,
    attention_dropout: 0.0,
    bos_token_id: LLAMA3_BOS,
    eos_token_id: LLAMA3_EOS,
    hidden_act: 'silu',
    hidden_size: 16,
    initializer_range: 0.02,
    intermediate_size: 32,
    max_position_embeddings: 8192,
    mlp_bias: false,
    num_attention_heads: 2,
    num_hidden_layers: 1,
    num_key_value_heads: 1,
    pretraining_tp: 1,
    rms_norm_eps: 1e-5,
    rope_scaling: null,
    rope_theta: 500000.0,
    tie_word_embeddings: false,
    torch_dtype: 'bfloat16',
    transformers_version: '4.40.0',
    use_cache: true,
    vocab_size: 128256,
    ...overrides,
  };
}

/** Writes config.json, generation_config.json, tokenizer_config.json and special_tokens_map.json of a Llama-3-like model. */
export function writeLlama3LikeMetadata(dir: string, config: Record<string, unknown> = llama3LikeConfig()): void {
  const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;
  writeFileSync(join(dir, 'config.json'), json(config));
  writeFileSync(join(dir, 'generation_config.json'), json({ bos_token_id: LLAMA3_BOS, eos_token_id: [LLAMA3_EOS, 128009], do_sample: true, temperature: 0.6, top_p: 0.9 }));
  // As Llama 3's: no add_bos_token; tokenizer.json's post-processor puts BOS before every text.
  writeFileSync(join(dir, 'tokenizer_config.json'), json({
    bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>', clean_up_tokenization_spaces: true,
    model_input_names: ['input_ids', 'attention_mask'], model_max_length: 1000000000000000019884624838656, tokenizer_class: 'PreTrainedTokenizerFast',
  }));
  writeFileSync(join(dir, 'special_tokens_map.json'), json({ bos_token: '<|begin_of_text|>', eos_token: '<|end_of_text|>' }));
}

/**
 * A complete small Llama-3-like Hugging Face folder in `dir` (which must not exist or be empty):
 * random weights, the byte-level BPE fixture's tokenizer.json with Llama-3's BOS and EOS added
 * at their ids (BOS put before every text, as Llama-3's post-processor does), and the metadata
 * of writeLlama3LikeMetadata.
 */
export async function writeLlama3LikeFolder(dir: string, seed = 1): Promise<void> {
  const c = llama3LikeConfig();
  const model = new LlamaForCausalLM({
    vocabSize: c.vocab_size as number, hiddenSize: c.hidden_size as number, intermediateSize: c.intermediate_size as number,
    numHeads: c.num_attention_heads as number, numKVHeads: c.num_key_value_heads as number, numLayers: c.num_hidden_layers as number,
    maxSeqLen: 64, rmsNormEps: c.rms_norm_eps as number, ropeTheta: c.rope_theta as number,
  }).initWeights(seed);
  await exportHFModel(model, dir);
  model.dispose();
  const tok = JSON.parse(readFileSync(BPE_TOKENIZER, 'utf8')) as Record<string, unknown>;
  const special = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  tok.added_tokens = [...(tok.added_tokens as object[]), special(LLAMA3_BOS, '<|begin_of_text|>'), special(LLAMA3_EOS, '<|end_of_text|>')];
  tok.post_processor = {
    type: 'TemplateProcessing',
    single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [LLAMA3_BOS], tokens: ['<|begin_of_text|>'] } },
  };
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tok));
  writeLlama3LikeMetadata(dir, c);
}
