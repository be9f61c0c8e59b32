/**
 * The one tokenizer interface the rest of the project sees, whichever implementation is behind it
 * (our own byte-level BPE, our SentencePiece-style BPE, or a Hugging Face tokenizer.json run by
 * @huggingface/tokenizers).
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
  /**
   * Where a long document may be cut so that encoding the two parts (the second with
   * `encodeContinuation`) gives exactly the ids of encoding it whole: the largest such position
   * in (0, before], or -1. Absent: the cut falls before whitespace that follows non-whitespace,
   * and ids within a token or two of each cut may differ from encoding the document whole.
   */
  safeCut?(text: string, before: number): number;
  /** Ids of text that continues a document cut at a safeCut position. Absent: encode. */
  encodeContinuation?(text: string): number[];
}
