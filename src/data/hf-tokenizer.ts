/**
 * Any Hugging Face tokenizer.json (GPT-2, LLaMA/SentencePiece-style, T5, …) run by the pure-JS
 * `@huggingface/tokenizers`, behind the project's Tokenizer interface.
 */
import { Tokenizer as HfJsTokenizer } from '@huggingface/tokenizers';
import type { Tokenizer } from './tokenizer.ts';

/** Names an end-of-sequence token commonly has, tried in order when no config names it. */
const EOS_CANDIDATES = ['<|endoftext|>', '</s>', '<|end_of_text|>', '<eos>'];

type Json = Record<string, unknown>;

/** The string form of a tokenizer_config.json token entry ("</s>" or {content: "</s>", …}). */
function tokenContent(entry: unknown): string | undefined {
  if (typeof entry === 'string') return entry;
  if (typeof entry === 'object' && entry !== null && typeof (entry as Json).content === 'string') {
    return (entry as Json).content as string;
  }
  return undefined;
}

/**
 * The EOS id of a tokenizer.json: the `eos_token` of tokenizer_config.json when given, else the
 * first of the usual EOS names present. `describe` names the file for the error.
 */
export function findEosId(vocab: ReadonlyMap<string, number>, config: Json, describe: string): number {
  const configured = tokenContent(config.eos_token);
  if (configured !== undefined) {
    const id = vocab.get(configured);
    if (id === undefined) throw new Error(`${describe}: eos_token ${JSON.stringify(configured)} of tokenizer_config.json is not in the vocabulary`);
    return id;
  }
  for (const name of EOS_CANDIDATES) {
    const id = vocab.get(name);
    if (id !== undefined) return id;
  }
  throw new Error(
    `${describe}: no end-of-sequence token found (looked for ${EOS_CANDIDATES.join(', ')}); ` +
      'put a tokenizer_config.json with "eos_token" next to it',
  );
}

/**
 * @huggingface/tokenizers' ByteFallback decoder uses a plain TextDecoder, which drops a U+FEFF at
 * the start of the bytes as a byte-order mark; the Rust library keeps it. Give every decoder in the
 * (possibly nested) decoder chain one that keeps it.
 */
function keepLeadingBom(decoder: unknown, seen = new Set<object>()): void {
  // The library's decoders are callable objects, hence 'function'.
  if ((typeof decoder !== 'object' && typeof decoder !== 'function') || decoder === null || seen.has(decoder)) return;
  seen.add(decoder);
  const d = decoder as { text_decoder?: unknown; decoders?: unknown };
  if (d.text_decoder instanceof TextDecoder && !d.text_decoder.ignoreBOM) {
    d.text_decoder = new TextDecoder(d.text_decoder.encoding, { fatal: d.text_decoder.fatal, ignoreBOM: true });
  }
  if (Array.isArray(d.decoders)) for (const inner of d.decoders) keepLeadingBom(inner, seen);
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly eosId: number;
  private readonly inner: HfJsTokenizer;
  private readonly json: object;

  /**
   * `config` is the optional tokenizer_config.json; `describe` names the source in errors;
   * `eosId`, when given, is the EOS id (a worker thread rebuilding a known tokenizer).
   */
  constructor(json: object, config: Json = {}, describe = 'tokenizer.json', eosId?: number) {
    try {
      this.inner = new HfJsTokenizer(json, config);
    } catch (err) {
      throw new Error(`${describe}: @huggingface/tokenizers cannot load it: ${(err as Error).message}`);
    }
    keepLeadingBom((this.inner as unknown as { decoder?: unknown }).decoder);
    this.json = json;
    const vocab = this.inner.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.eosId = eosId ?? findEosId(vocab, config, describe);
  }

  encode(text: string): number[] {
    // No BOS/EOS from the post-processor: packing adds EOS itself, and the reference uses no BOS.
    return this.inner.encode(text, { add_special_tokens: false }).ids;
  }

  decode(ids: ArrayLike<number>): string {
    if (ids.length === 0) return '';
    return this.inner.decode(Array.from(ids), { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  toJSON(): object {
    return this.json;
  }
}
