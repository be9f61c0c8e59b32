/** SiLU, the SwiGLU product silu(gate)·up, and dropout. */
import { K } from '../backend.ts';
import { dropThreshold, type RandomStream } from '../rng.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { gradSlot, gradZeroed } from './grad.ts';

export function silu(x: Tensor): Tensor {
  const out = Tensor.empty(x.shape, false);
  K().siluForward(x.data, out.data, x.size);
  if (recording(x)) {
    out.requiresGrad = true;
    out.node = {
      op: 'silu',
      inputs: [x],
      backward(g) {
        const gx = gradZeroed(x);
        if (gx) K().siluBackward(g, x.data, gx, x.size);
      },
    };
  }
  return out;
}

export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (gate.shape.length !== up.shape.length || gate.shape.some((d, i) => d !== up.shape[i])) {
    throw new Error(`swiglu: gate ${shapeStr(gate.shape)} and up ${shapeStr(up.shape)} differ in shape`);
  }
  const out = Tensor.empty(gate.shape, false);
  K().swigluForward(gate.data, up.data, out.data, gate.size);
  if (recording(gate, up)) {
    out.requiresGrad = true;
    out.node = {
      op: 'swiglu',
      inputs: [gate, up],
      backward(g) {
        K().swigluBackward(g, gate.data, up.data, gradZeroed(gate), gradZeroed(up), gate.size);
      },
    };
  }
  return out;
}

/** Inverted dropout with probability p, masks drawn from `rng` (same masks on every backend). */
export function dropout(x: Tensor, p: number, rng: RandomStream, training: boolean): Tensor {
  if (!(p >= 0 && p < 1)) throw new Error(`dropout: probability must be in [0, 1), got ${p}`);
  if (!training || p === 0) return x;
  const mask = Tensor.empty(x.shape, false);
  K().dropoutMask(mask.data, x.size, rng.maskKey(), dropThreshold(p), 1 / (1 - p));
  const out = Tensor.empty(x.shape, false);
  K().mul(x.data, mask.data, out.data, x.size);
  if (recording(x)) {
    out.requiresGrad = true;
    out.node = {
      op: 'dropout',
      inputs: [x],
      backward(g) {
        const gx = gradSlot(x);
        if (!gx) return;
        if (gx.fresh) {
          K().mul(g, mask.data, gx.data, x.size);
          return;
        }
        const tmp = Tensor.empty(x.shape, false);
        K().mul(g, mask.data, tmp.data, x.size);
        K().axpy(1, tmp.data, gx.data, x.size);
        tmp.dispose();
      },
    };
  }
  return out;
}
