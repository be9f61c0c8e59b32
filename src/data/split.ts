/**
 * A deterministic held-out split of a corpus by document: document i goes to validation iff
 * hash32(seed, i) < fraction · 2^32. Both halves stream from the same source.
 */
import { createHash } from 'node:crypto';
import { hash32 } from '../engine/rng.ts';
import { corpusFromPieces, type Corpus } from './corpus.ts';

export function splitCorpus(corpus: Corpus, fraction: number, seed = 0x5eed): { train: Corpus; validation: Corpus } {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`validation fraction must be in (0, 1), got ${fraction}`);
  const threshold = Math.floor(fraction * 4294967296);
  const part = (validation: boolean): Corpus =>
    corpusFromPieces(
      `${corpus.name} (${validation ? 'held-out' : 'training'} part, fraction ${fraction})`,
      createHash('sha256').update(`${corpus.fingerprint}|split|${fraction}|${seed}|${validation}`).digest('hex'),
      async function* () {
        let i = 0;
        for await (const piece of corpus.pieces()) {
          if ((hash32(seed, i) < threshold) === validation) yield piece;
          if (piece.end) i++;
        }
      },
      corpus.sizeBytes === undefined ? undefined : Math.round(corpus.sizeBytes * (validation ? fraction : 1 - fraction)),
    );
  return { train: part(false), validation: part(true) };
}
