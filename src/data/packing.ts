/**
 * Packing (spec §8): each document is followed by EOS, documents are concatenated, and the
 * stream is cut into sequences of exactly seqLen tokens — no BOS, no padding, and a final
 * partial sequence is dropped. The token cache stores the concatenated stream, so sequence i
 * is simply tokens [i·seqLen, (i+1)·seqLen) of it; this file is the same rule for streams.
 */

/** The packed token stream of some documents' token ids: doc₀ EOS doc₁ EOS … */
export function* withEos(documents: Iterable<ArrayLike<number>>, eosId: number): Generator<number> {
  for (const doc of documents) {
    for (let i = 0; i < doc.length; i++) yield doc[i]!;
    yield eosId;
  }
}

/** Full sequences of seqLen tokens from tokenised documents; the leftover tail is dropped. */
export function* packSequences(documents: Iterable<ArrayLike<number>>, eosId: number, seqLen: number): Generator<Int32Array> {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`packing: seqLen must be a positive integer, got ${seqLen}`);
  let seq = new Int32Array(seqLen);
  let fill = 0;
  for (const token of withEos(documents, eosId)) {
    seq[fill++] = token;
    if (fill === seqLen) {
      yield seq;
      seq = new Int32Array(seqLen);
      fill = 0;
    }
  }
}

/** How many full sequences a stream of numTokens tokens packs into. */
export function sequenceCount(numTokens: number, seqLen: number): number {
  if (!Number.isInteger(seqLen) || seqLen < 1) throw new Error(`packing: seqLen must be a positive integer, got ${seqLen}`);
  return Math.floor(numTokens / seqLen);
}
