/**
 * A deterministic held-out split of a corpus by document: document i goes to validation iff
 * hash32(seed, i) < fraction · 2^32. Both halves stream from the same source.
 */
import { createHash } from 'node:crypto';
import { hash32 } from '../engine/rng.ts';
import type { Corpus } from './corpus.ts';

export function splitCorpus(corpus: Corpus, fraction: number, seed = 0x5eed): { train: Corpus; validation: Corpus } {
  if (!(fraction > 0 && fraction < 1)) throw new Error(`validation fraction must be in (0, 1), got ${fraction}`);
  const threshold = Math.floor(fraction * 4294967296);
  const part = (validation: boolean): Corpus => ({
    name: `${corpus.name} (${validation ? 'held-out' : 'training'} part, fraction ${fraction})`,
    fingerprint: createHash('sha256').update(`${corpus.fingerprint}|split|${fraction}|${seed}|${validation}`).digest('hex'),
    async *documents() {
      let i = 0;
      for await (const doc of corpus.documents()) {
        if ((hash32(seed, i) < threshold) === validation) yield doc;
        i++;
      }
    },
  });
  return { train: part(false), validation: part(true) };
}
