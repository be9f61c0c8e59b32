/**
 * The one tokenizer interface the rest of the project sees, whichever implementation is behind it
 * (our own byte-level BPE, or a Hugging Face tokenizer.json run by @huggingface/tokenizers).
 */
export interface Tokenizer {
  /** Token ids of `text`, with no BOS/EOS added (packing appends EOS after each document). */
  encode(text: string): number[];
  /** Text of some token ids; special tokens are written out as their text. */
  decode(ids: ArrayLike<number>): string;
  /** One more than the largest id this tokenizer can produce: the model's embedding rows. */
  readonly vocabSize: number;
  /** The end-of-sequence token appended after every document. */
  readonly eosId: number;
  /** A Hugging Face tokenizer.json object that reproduces this tokenizer. */
  toJSON(): object;
}
