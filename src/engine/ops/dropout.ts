/**
 * Dropout with counter-based masks (../rng.ts), identical on every backend: the `dropout` op,
 * which keeps its mask for backward, and the mask-free pair the LoRA op uses, which draws the
 * mask again from its key in backward instead of storing it.
 */
import { K } from '../backend.ts';
import { dropThreshold, type RandomStream } from '../rng.ts';
import { hostArray, recording, Tensor } from '../tensor.ts';
import { bf16Copy, bf16Scratch, type Bf16Matrix } from './bf16.ts';
import { copyInto } from './copy.ts';
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
  /**
   * Index in the mask of x's first element (default 0): a data-parallel rank computing the later
   * sequences of a micro-batch that one process computes whole takes that process's mask for them.
   */
  offset?: number;
}

/** out = x ∘ mask, the mask Kernels.dropoutMask draws from `d.key`. */
export function applyDropout(x: Float32Array, out: Float32Array, n: number, d: LoraDropout): void {
  const apply: MaskKernel = (src, dst, len) => K().dropoutApply(src, dst, len, d.key, dropThreshold(d.p), 1 / (1 - d.p));
  if (d.offset) copyInto(atOffset(x, n, d.offset, apply), out, n);
  else apply(x, out, n);
}

/**
 * bf16(x ∘ mask) as a packed copy (a scratch tensor of the current scope): what applyDropout then
 * bf16Copy give, in one pass that writes no fp32 values.
 */
export function applyDropoutBf16(x: Float32Array, n: number, d: LoraDropout): Bf16Matrix {
  if (d.offset) {
    const xd = Tensor.empty([n], false);
    applyDropout(x, xd.buf, n, d);
    const copy = bf16Copy(xd.buf, n);
    xd.dispose();
    return copy;
  }
  const copy = bf16Scratch(n);
  K().dropoutApplyBf16(x, copy.packed.data, n, d.key, dropThreshold(d.p), 1 / (1 - d.p));
  return copy;
}

/** dx += g ∘ mask, the same mask: the backward of applyDropout. */
export function dropoutBackwardAdd(g: Float32Array, dx: Float32Array, n: number, d: LoraDropout): void {
  const add: MaskKernel = (src, dst, len) => K().dropoutBackwardAdd(src, dst, len, d.key, dropThreshold(d.p), 1 / (1 - d.p));
  if (d.offset) K().axpy(1, atOffset(g, n, d.offset, add), dx, n); // dx + g∘mask, one rounding as in the kernel
  else add(g, dx, n);
}

type MaskKernel = (src: Float32Array, dst: Float32Array, len: number) => void;

/**
 * A mask kernel's result for `a` (n values) as if it began at element `at` of its mask: the
 * kernels number mask elements from 0, so they run on a copy of `a` placed at `at` (zeros before).
 */
function atOffset(a: Float32Array, n: number, at: number, kernel: MaskKernel): Float32Array {
  const src = new Float32Array(at + n), dst = new Float32Array(at + n);
  src.set(hostArray(a).subarray(0, n), at);
  kernel(src, dst, at + n);
  return dst.subarray(at);
}
