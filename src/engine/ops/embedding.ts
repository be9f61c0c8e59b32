/** Token embedding lookup; its backward is a scatter-add into the table's gradient. */
import { K } from '../backend.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { gradZeroed } from './grad.ts';

/** ids: int32 [...]; weight [vocab, dim] -> [..., dim]. Out-of-range ids throw before any write. */
export function embedding(ids: Tensor, weight: Tensor): Tensor {
  if (ids.dtype !== 'int32') throw new Error(`embedding: ids must be int32, got ${ids.dtype}`);
  if (weight.shape.length !== 2) throw new Error(`embedding: weight must be [vocab, dim], got ${shapeStr(weight.shape)}`);
  const [vocab, dim] = weight.shape;
  const out = Tensor.empty([...ids.shape, dim], false);
  K().embeddingForward(weight.buf, ids.ints, out.buf, ids.size, vocab, dim);
  if (recording(weight)) {
    out.requiresGrad = true;
    out.node = {
      op: 'embedding',
      inputs: [weight],
      backward(g) {
        const gw = gradZeroed(weight);
        if (gw) K().embeddingBackward(g, ids.ints, gw, ids.size, vocab, dim);
      },
    };
  }
  return out;
}
