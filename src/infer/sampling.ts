/**
 * Choosing the next token from logits: greedy at temperature 0, otherwise sampling from
 * softmax(logits / T) restricted by top-k and then top-p (nucleus), in the order and with the
 * tie rules of Hugging Face's logits warpers. Seeded, so a run is reproducible.
 */
import { RandomStream } from '../engine/rng.ts';

export interface SamplingOptions {
  /** 0 = greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens; 0 = no limit. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p; 1 = no limit. */
  topP?: number;
  seed?: number;
}

export function validateSampling(o: SamplingOptions): Required<SamplingOptions> {
  const t = o.temperature ?? 1, k = o.topK ?? 0, p = o.topP ?? 1, seed = o.seed ?? 0;
  if (!(Number.isFinite(t) && t >= 0)) throw new Error(`temperature must be a number >= 0, got ${t}`);
  if (!(Number.isInteger(k) && k >= 0)) throw new Error(`top-k must be an integer >= 0 (0 = off), got ${k}`);
  if (!(p > 0 && p <= 1)) throw new Error(`top-p must be in (0, 1], got ${p}`);
  if (!(Number.isInteger(seed) && seed >= 0 && seed < 2 ** 32)) throw new Error(`seed must be an integer in [0, 2^32), got ${seed}`);
  return { temperature: t, topK: k, topP: p, seed };
}

/** Index of the largest logit; the first one on ties (as torch.argmax). */
export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

export class TokenSampler {
  private readonly opts: Required<SamplingOptions>;
  private readonly rng: RandomStream;
  private readonly draw = new Float64Array(1);

  constructor(opts: SamplingOptions = {}) {
    this.opts = validateSampling(opts);
    this.rng = RandomStream.named(this.opts.seed, 'sampling');
  }

  get greedy(): boolean {
    return this.opts.temperature === 0;
  }

  next(logits: ArrayLike<number>): number {
    if (this.greedy) return argmax(logits);
    const { temperature, topK, topP } = this.opts;
    const V = logits.length;
    // Candidates by descending logit; a stable sort keeps the lower id first on ties.
    const order = Array.from({ length: V }, (_, i) => i).sort((a, b) => logits[b] - logits[a] || a - b);
    let keep = topK > 0 ? Math.min(topK, V) : V;
    const max = logits[order[0]] / temperature;
    const probs = new Float64Array(keep);
    let total = 0;
    for (let i = 0; i < keep; i++) {
      probs[i] = Math.exp(logits[order[i]] / temperature - max);
      total += probs[i];
    }
    if (topP < 1) {
      // Smallest prefix whose mass reaches topP (at least one token).
      let cum = 0;
      for (let i = 0; i < keep; i++) {
        cum += probs[i] / total;
        if (cum >= topP) {
          keep = i + 1;
          break;
        }
      }
      total = 0;
      for (let i = 0; i < keep; i++) total += probs[i];
    }
    this.rng.uniform(this.draw);
    let u = this.draw[0] * total;
    for (let i = 0; i < keep; i++) {
      u -= probs[i];
      if (u < 0) return order[i];
    }
    return order[keep - 1];
  }
}
