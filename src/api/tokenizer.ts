/**
 * The public tokenizer entry points, gathered under one name as `transformers` users expect:
 * load a tokenizer.json (or a model / run folder holding one), train a byte-level BPE on your
 * own documents, save it.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { trainByteLevelBpe } from '../data/bpe-train.ts';
import type { Corpus } from '../data/corpus.ts';
import { loadTokenizer, saveTokenizer, tokenizerFromJSON } from '../data/tokenizer-files.ts';
import type { Tokenizer as TokenizerInterface } from '../data/tokenizer.ts';

/**
 * A tokenizer: `encode(text)` → ids (no BOS/EOS added), `decode(ids)` → text, `vocabSize`,
 * `eosId` (the id appended after every document when packing), `toJSON()` (a Hugging Face
 * tokenizer.json object).
 */
export type Tokenizer = TokenizerInterface;

/** Options of {@link Tokenizer.train}. */
export interface TrainTokenizerOptions {
  /** Final vocabulary size, counting the EOS token `<|endoftext|>` and the 256 bytes; at least 257. */
  vocabSize: number;
  /** Pairs seen fewer times are never merged. Default 2. */
  minFrequency?: number;
}

/** Where the tokenizer of `path` is: the file itself, the folder's tokenizer.json, or a checkpoint's run folder. */
function tokenizerLocation(path: string): string {
  const p = resolve(path);
  // A checkpoint (RUN/checkpoints/step-N) shares its run's tokenizer.
  if (existsSync(join(p, 'manifest.json')) && !existsSync(join(p, 'tokenizer.json'))) return dirname(dirname(p));
  return p;
}

/** Loading, training and saving tokenizers. */
export const Tokenizer = {
  /**
   * Loads a tokenizer.json file, or the one in a Hugging Face model folder, run folder or
   * checkpoint folder (a tokenizer_config.json beside it is read too: it can name the EOS
   * token). GPT-2-style byte-level BPE files run on relora's fast encoder, every other
   * Hugging Face tokenizer on `@huggingface/tokenizers`.
   */
  async fromPretrained(path: string): Promise<Tokenizer> {
    return loadTokenizer(tokenizerLocation(path));
  },

  /** A tokenizer from a parsed tokenizer.json object (and optionally its tokenizer_config.json). */
  fromJSON(json: unknown, tokenizerConfig: Record<string, unknown> = {}): Tokenizer {
    return tokenizerFromJSON(json, tokenizerConfig);
  },

  /**
   * Trains a byte-level BPE (GPT-2 pre-tokenisation, the same merges as the Hugging Face BPE
   * trainer) on documents: an array, any (async) iterable of strings, or a {@link Corpus}.
   * Id 0 is the EOS token `<|endoftext|>`.
   */
  async train(documents: Iterable<string> | AsyncIterable<string> | Corpus, options: TrainTokenizerOptions): Promise<Tokenizer> {
    const docs = 'documents' in documents && typeof documents.documents === 'function' ? documents.documents() : documents as Iterable<string>;
    return trainByteLevelBpe(docs, { vocabSize: options.vocabSize, minFrequency: options.minFrequency });
  },

  /** Writes `tokenizer` as a tokenizer.json file (atomically: a temporary file, then a rename). */
  async save(tokenizer: Tokenizer, path: string): Promise<void> {
    return saveTokenizer(tokenizer, path);
  },
};
