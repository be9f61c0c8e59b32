/**
 * Dropout with counter-based masks (../rng.ts), identical on every backend: the `dropout` op,
 * which keeps its mask for backward, and the mask-free pair the LoRA op uses, which draws the
 * mask again from its key in backward instead of storing it.
 */
import { K } from '../backend.ts';
import { dropThreshold, type RandomStream } from '../rng.ts';
import { recording, Tensor } from '../tensor.ts';
import { gradSlot } from './grad.ts';

/** Inverted dropout with probability p, masks drawn from `rng` (same masks on every backend). */
export function dropout(x: Tensor, p: number, rng: RandomStream, training: boolean): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: probability must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const mask = Tensor.empty(x.shape, false);
  K().dropoutMask(mask.buf, x.size, rng.maskKey(), dropThreshold(p), 1 / (1 - p));
  const out = Tensor.empty(x.shape, false);
  K().mul(x.buf, mask.buf, out.buf, x.size);
  if (recording(x)) {
    out.requiresGrad = true;
    out.node = {
      op: 'dropout',
      inputs: [x],
      backward(g) {
        const gx = gradSlot(x);
        if (!gx) return;
        if (gx.fresh) {
          K().mul(g, mask.buf, gx.data, x.size);
          return;
        }
        const tmp = Tensor.empty(x.shape, false);
        K().mul(g, mask.buf, tmp.buf, x.size);
        K().axpy(1, tmp.buf, gx.data, x.size);
        tmp.dispose();
      },
    };
  }
  return out;
}

/** Dropout on the LoRA branch's input: probability p, mask key from the layer's random stream. */
export interface LoraDropout {
  p: number;
  key: number;
}

/** out = x ∘ mask, the mask Kernels.dropoutMask draws from `d.key`. */
export function applyDropout(x: Float32Array, out: Float32Array, n: number, d: LoraDropout): void {
  K().dropoutApply(x, out, n, d.key, dropThreshold(d.p), 1 / (1 - d.p));
}

/** dx += g ∘ mask, the same mask: the backward of applyDropout. */
export function dropoutBackwardAdd(g: Float32Array, dx: Float32Array, n: number, d: LoraDropout): void {
  K().dropoutBackwardAdd(g, dx, n, d.key, dropThreshold(d.p), 1 / (1 - d.p));
}
