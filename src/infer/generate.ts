/**
 * Autoregressive generation with a KV cache: the prompt is run once (prefill), then each new
 * token costs one position. Tokens are handed to `onToken` as they are chosen; generation stops
 * at max new tokens or at an end-of-sequence id.
 */
import type { LlamaForCausalLM } from '../nn/llama.ts';
import { KVCache } from './kv-cache.ts';
import { TokenSampler, type SamplingOptions } from './sampling.ts';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Ids that end generation (the id itself is returned). Empty: always run to maxNewTokens. */
  stopIds?: readonly number[];
  /** Called with each new id as soon as it is chosen. */
  onToken?: (id: number) => void;
}

/** New ids (not the prompt) generated after `prompt`. */
export function generate(model: LlamaForCausalLM, prompt: readonly number[], opts: GenerateOptions): number[] {
  if (prompt.length === 0) throw new Error('generate: the prompt is empty; give at least one token (e.g. the BOS or EOS id)');
  if (!(Number.isInteger(opts.maxNewTokens) && opts.maxNewTokens >= 0)) {
    throw new Error(`generate: max new tokens must be an integer >= 0, got ${opts.maxNewTokens}`);
  }
  const V = model.config.vocabSize;
  for (const [i, id] of prompt.entries()) {
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new Error(`generate: prompt token ${i} is ${id}, outside the vocabulary [0, ${V})`);
  }
  const sampler = new TokenSampler(opts);
  const out: number[] = [];
  if (opts.maxNewTokens === 0) return out;
  const stop = new Set(opts.stopIds ?? []);
  const cache = new KVCache(model, prompt.length + opts.maxNewTokens);
  let logits = cache.forward(prompt);
  for (;;) {
    const id = sampler.next(logits);
    out.push(id);
    opts.onToken?.(id);
    if (stop.has(id) || out.length === opts.maxNewTokens) return out;
    logits = cache.forward([id]);
  }
}

/**
 * Turns a stream of ids into a stream of text. Byte-level tokens can end in the middle of a
 * UTF-8 character, so text is emitted only up to the last complete character; the rest waits
 * for the next token. New ids are decoded after the `context` ids (the prompt) rather than on
 * their own, because some decoders treat the start of a text specially (SentencePiece drops
 * the space a leading "▁" stands for).
 */
export class TextStreamer {
  private readonly ids: number[];
  private emitted: number;

  constructor(private readonly decode: (ids: number[]) => string, context: readonly number[] = []) {
    this.ids = [...context];
    this.emitted = context.length ? decode(this.ids).length : 0;
  }

  /** The new text that `id` completes ('' while a character is still partial). */
  push(id: number): string {
    this.ids.push(id);
    const text = this.decode(this.ids);
    // U+FFFD at the end is a character still waiting for its remaining bytes.
    if (text.endsWith('\uFFFD')) return '';
    const fresh = text.slice(this.emitted);
    this.emitted = text.length;
    return fresh;
  }

  /** Whatever is still held back (a character that never completed is written as U+FFFD). */
  flush(): string {
    const text = this.decode(this.ids);
    const fresh = text.slice(this.emitted);
    this.emitted = text.length;
    return fresh;
  }
}
