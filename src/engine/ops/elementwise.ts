/** Elementwise add, mul and scale on same-shape tensors, and sum / mean reductions. */
import { K } from '../backend.ts';
import { hostValue, recording, shapeStr, Tensor } from '../tensor.ts';
import { copyInto } from './copy.ts';
import { gradSlot, type GradSlot } from './grad.ts';

function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: shapes differ: ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  }
}

export function add(a: Tensor, b: Tensor): Tensor {
  sameShape('add', a, b);
  const out = Tensor.empty(a.shape, false);
  K().add(a.buf, b.buf, out.buf, a.size);
  if (recording(a, b)) {
    out.requiresGrad = true;
    out.node = {
      op: 'add',
      inputs: [a, b],
      reads: [],
      backward(g) {
        // Slots one at a time: add(x, x) must see the second one as no longer fresh.
        const ga = gradSlot(a);
        if (ga) {
          if (ga.fresh) copyInto(g, ga.data, a.size);
          else K().axpy(1, g, ga.data, a.size);
        }
        const gb = gradSlot(b);
        if (gb) {
          if (gb.fresh) copyInto(g, gb.data, b.size);
          else K().axpy(1, g, gb.data, b.size);
        }
      },
    };
  }
  return out;
}

/** slot (+)= g ∘ other: written straight into a fresh slot, through a temporary otherwise. */
function mulInto(g: Float32Array, other: Float32Array, slot: GradSlot | null, n: number): void {
  if (!slot) return;
  if (slot.fresh) {
    K().mul(g, other, slot.data, n);
    return;
  }
  const tmp = Tensor.empty([n], false);
  K().mul(g, other, tmp.buf, n);
  K().axpy(1, tmp.buf, slot.data, n);
  tmp.dispose();
}

export function mul(a: Tensor, b: Tensor): Tensor {
  sameShape('mul', a, b);
  const out = Tensor.empty(a.shape, false);
  K().mul(a.buf, b.buf, out.buf, a.size);
  if (recording(a, b)) {
    out.requiresGrad = true;
    out.node = {
      op: 'mul',
      inputs: [a, b],
      backward(g) {
        mulInto(g, b.buf, gradSlot(a), a.size);
        mulInto(g, a.buf, gradSlot(b), b.size);
      },
    };
  }
  return out;
}

export function scale(a: Tensor, s: number): Tensor {
  const out = Tensor.empty(a.shape, false);
  K().scale(a.buf, s, out.buf, a.size);
  if (recording(a)) {
    out.requiresGrad = true;
    out.node = {
      op: 'scale',
      inputs: [a],
      backward(g) {
        const ga = gradSlot(a);
        if (!ga) return;
        if (ga.fresh) K().scale(g, s, ga.data, a.size);
        else K().axpy(s, g, ga.data, a.size);
      },
    };
  }
  return out;
}

/**
 * A scalar tensor holding Σ x[0..n) / divisor: summed on the host in float64 by the CPU
 * backends, left on the device (no readback) by a device backend.
 */
export function scalarSum(x: Float32Array, n: number, divisor: number): Tensor {
  const k = K();
  if (!k.sumInto) return Tensor.from(new Float32Array([k.sum(x, n) / divisor]), []);
  const out = Tensor.empty([], false);
  k.sumInto(x, n, out.buf, 1 / divisor);
  return out;
}

export function sum(a: Tensor): Tensor {
  const out = scalarSum(a.buf, a.size, 1);
  if (recording(a)) {
    out.requiresGrad = true;
    out.node = {
      op: 'sum',
      inputs: [a],
      backward(g) {
        const ga = gradSlot(a);
        if (!ga) return;
        const g0 = hostValue(g);
        if (ga.fresh) K().fill(ga.data, g0, a.size);
        else K().addScalar(ga.data, g0, a.size);
      },
    };
  }
  return out;
}

export function mean(a: Tensor): Tensor {
  if (a.size === 0) throw new Error(`mean: tensor of shape ${shapeStr(a.shape)} is empty`);
  const n = a.size;
  const out = scalarSum(a.buf, n, n);
  if (recording(a)) {
    out.requiresGrad = true;
    out.node = {
      op: 'mean',
      inputs: [a],
      backward(g) {
        const ga = gradSlot(a);
        if (!ga) return;
        const g0 = hostValue(g) / n;
        if (ga.fresh) K().fill(ga.data, g0, n);
        else K().addScalar(ga.data, g0, n);
      },
    };
  }
  return out;
}
