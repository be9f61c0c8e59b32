/** Text in, text out: a prompt string continued by a model, streamed piece by piece. */
import type { Tokenizer } from '../data/tokenizer.ts';
import { generate, TextStreamer, type GenerateOptions } from '../infer/generate.ts';
import type { LlamaForCausalLM } from '../nn/llama.ts';

/** Options of {@link generateText}. */
export interface GenerateTextOptions extends Omit<GenerateOptions, 'onToken'> {
  /** Called with each piece of new text as soon as it is complete (for streaming). */
  onText?: (text: string) => void;
  /** Token ids put before the encoded prompt (e.g. a BOS id). Default none. */
  prefixIds?: readonly number[];
}

/**
 * Continues `prompt` and returns the new text (not the prompt). Stops after `maxNewTokens` or
 * at one of `stopIds` (default: the tokenizer's EOS), whose text is left out. Temperature 0 is greedy; otherwise
 * top-k / top-p sampling, seeded (`seed`, default 0) so it is reproducible.
 */
export function generateText(model: LlamaForCausalLM, tokenizer: Tokenizer, prompt: string, options: GenerateTextOptions): string {
  const promptIds = tokenizer.encode(prompt);
  let ids = [...(options.prefixIds ?? []), ...promptIds];
  // An empty prompt starts a fresh document: the token that separates documents.
  if (ids.length === 0) ids = [tokenizer.eosId];
  const stopIds = options.stopIds ?? [tokenizer.eosId];
  const streamer = new TextStreamer((t) => tokenizer.decode(t), promptIds);
  let text = '';
  generate(model, ids, {
    ...options,
    stopIds,
    onToken: (id) => {
      // The token that ends generation is not part of the text.
      if (stopIds.includes(id)) return;
      const piece = streamer.push(id);
      text += piece;
      if (piece) options.onText?.(piece);
    },
  });
  const rest = streamer.flush();
  if (rest) options.onText?.(rest);
  return text + rest;
}
