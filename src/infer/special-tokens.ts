/**
 * The special tokens a model is prompted with, from its Hugging Face metadata: the ids that end
 * a sequence (config.json's eos_token_id, one or several) and the tokens put before a prompt
 * (BOS, when the tokenizer adds it). One rule for a Hugging Face folder and for a run continued
 * from one (which keeps the folder's metadata), so `relora generate` prompts both as
 * transformers prompts the exported model.
 */
import type { Tokenizer } from '../data/tokenizer.ts';
import type { LlamaHFConfig } from '../io/hf-config.ts';
import { promptPrefix } from './prompt.ts';

export interface SpecialTokenIds {
  eosIds: number[];
  promptPrefix: number[];
}

/**
 * From config.json, tokenizer_config.json and tokenizer.json (`tokenizerJson`, default the
 * tokenizer's own: its post-processor may put BOS first); the tokenizer's EOS when config.json
 * names none.
 */
export function specialTokensFromHF(
  hfConfig: LlamaHFConfig, tokenizerConfig: Record<string, unknown> | null, tokenizer: Tokenizer | null, tokenizerJson: object | null = tokenizer?.toJSON() ?? null,
): SpecialTokenIds {
  const eos = hfConfig.eos_token_id;
  const eosIds = eos === null ? [] : Array.isArray(eos) ? [...eos] : [eos];
  if (eosIds.length === 0 && tokenizer) eosIds.push(tokenizer.eosId);
  return { eosIds, promptPrefix: promptPrefix(tokenizerJson, tokenizerConfig, hfConfig.bos_token_id) };
}
