/** RMSNorm (LLaMA): x / sqrt(mean(x²) + eps) * weight, over the last dimension. */
import { K } from '../backend.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { gradZeroed } from './grad.ts';

export function rmsnorm(x: Tensor, weight: Tensor, eps: number): Tensor {
  const dim = x.shape[x.shape.length - 1];
  if (weight.shape.length !== 1 || weight.shape[0] !== dim) {
    throw new Error(`rmsnorm: weight ${shapeStr(weight.shape)} does not match the last dimension of x ${shapeStr(x.shape)}`);
  }
  const rows = x.size / dim;
  const out = Tensor.empty(x.shape, false);
  const rstd = Tensor.empty([rows], false);
  K().rmsnormForward(x.buf, weight.buf, out.buf, rstd.buf, rows, dim, eps);
  if (recording(x, weight)) {
    out.requiresGrad = true;
    out.node = {
      op: 'rmsnorm',
      inputs: [x, weight],
      backward(g) {
        K().rmsnormBackward(g, x.buf, weight.buf, rstd.buf, gradZeroed(x), gradZeroed(weight), rows, dim);
      },
    };
  }
  return out;
}
