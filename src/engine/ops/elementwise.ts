/** Elementwise add, mul and scale on same-shape tensors, and sum / mean reductions. */
import { K } from '../backend.ts';
import { gradBuffer, recording, shapeStr, Tensor } from '../tensor.ts';

function sameShape(op: string, a: Tensor, b: Tensor): void {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new Error(`${op}: shapes differ: ${shapeStr(a.shape)} and ${shapeStr(b.shape)}`);
  }
}

export function add(a: Tensor, b: Tensor): Tensor {
  sameShape('add', a, b);
  const out = Tensor.empty(a.shape, false);
  K().add(a.data, b.data, out.data, a.size);
  if (recording(a, b)) {
    out.requiresGrad = true;
    out.node = {
      op: 'add',
      inputs: [a, b],
      backward(g) {
        const ga = gradBuffer(a), gb = gradBuffer(b);
        if (ga) K().axpy(1, g, ga, a.size);
        if (gb) K().axpy(1, g, gb, b.size);
      },
    };
  }
  return out;
}

export function mul(a: Tensor, b: Tensor): Tensor {
  sameShape('mul', a, b);
  const out = Tensor.empty(a.shape, false);
  K().mul(a.data, b.data, out.data, a.size);
  if (recording(a, b)) {
    out.requiresGrad = true;
    out.node = {
      op: 'mul',
      inputs: [a, b],
      backward(g) {
        const ga = gradBuffer(a), gb = gradBuffer(b);
        const tmp = ga || gb ? Tensor.empty(a.shape, false) : null;
        if (ga) {
          K().mul(g, b.data, tmp!.data, a.size);
          K().axpy(1, tmp!.data, ga, a.size);
        }
        if (gb) {
          K().mul(g, a.data, tmp!.data, a.size);
          K().axpy(1, tmp!.data, gb, b.size);
        }
        tmp?.dispose();
      },
    };
  }
  return out;
}

export function scale(a: Tensor, s: number): Tensor {
  const out = Tensor.empty(a.shape, false);
  K().scale(a.data, s, out.data, a.size);
  if (recording(a)) {
    out.requiresGrad = true;
    out.node = {
      op: 'scale',
      inputs: [a],
      backward(g) {
        const ga = gradBuffer(a);
        if (ga) K().axpy(s, g, ga, a.size);
      },
    };
  }
  return out;
}

export function sum(a: Tensor): Tensor {
  const out = Tensor.from(new Float32Array([K().sum(a.data, a.size)]), []);
  if (recording(a)) {
    out.requiresGrad = true;
    out.node = {
      op: 'sum',
      inputs: [a],
      backward(g) {
        const ga = gradBuffer(a);
        if (ga) K().addScalar(ga, g[0], a.size);
      },
    };
  }
  return out;
}

export function mean(a: Tensor): Tensor {
  if (a.size === 0) throw new Error(`mean: tensor of shape ${shapeStr(a.shape)} is empty`);
  const n = a.size;
  const out = Tensor.from(new Float32Array([K().sum(a.data, n) / n]), []);
  if (recording(a)) {
    out.requiresGrad = true;
    out.node = {
      op: 'mean',
      inputs: [a],
      backward(g) {
        const ga = gradBuffer(a);
        if (ga) K().addScalar(ga, g[0] / n, n);
      },
    };
  }
  return out;
}
