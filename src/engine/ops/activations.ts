/** SiLU and the SwiGLU product silu(gate)·up. */
import { K } from '../backend.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { gradSlots, gradZeroed } from './grad.ts';

export function silu(x: Tensor): Tensor {
  const out = Tensor.empty(x.shape, false);
  K().siluForward(x.buf, out.buf, x.size);
  if (recording(x)) {
    out.requiresGrad = true;
    out.node = {
      op: 'silu',
      inputs: [x],
      backward(g) {
        const gx = gradZeroed(x);
        if (gx) K().siluBackward(g, x.buf, gx, x.size);
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
  K().swigluForward(gate.buf, up.buf, out.buf, gate.size);
  if (recording(gate, up)) {
    out.requiresGrad = true;
    out.node = {
      op: 'swiglu',
      inputs: [gate, up],
      backward(g) {
        const { grads: [dGate, dUp], accumulate } = gradSlots([gate, up]);
        K().swigluBackward(g, gate.buf, up.buf, dGate, dUp, gate.size, accumulate);
      },
    };
  }
  return out;
}
