/**
 * Causal multi-head self-attention as one fused op: softmax(q·kᵀ/√D + causal mask)·v. In bf16
 * precision q, k and v enter rounded to bf16 (the operands autocast's attention products take);
 * the kernel accumulates and takes the softmax in fp32.
 */
import { K } from '../backend.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { roundedToBf16 } from './bf16.ts';
import { gradZeroed } from './grad.ts';
import { matmulPrecision } from './precision.ts';

/** q, k, v: [B, T, H*D] -> [B, T, H*D]. */
export function causalAttention(q: Tensor, k: Tensor, v: Tensor, heads: number): Tensor {
  if (q.shape.length !== 3) throw new Error(`attention: expected q as [B, T, H*D], got ${shapeStr(q.shape)}`);
  for (const [n, t] of [['k', k], ['v', v]] as const) {
    if (t.shape.length !== 3 || t.shape.some((d, i) => d !== q.shape[i])) {
      throw new Error(`attention: ${n} ${shapeStr(t.shape)} must have the shape of q ${shapeStr(q.shape)}`);
    }
  }
  const [B, T, HD] = q.shape;
  if (!Number.isInteger(heads) || heads < 1 || HD % heads !== 0) throw new Error(`attention: width ${HD} is not divisible into ${heads} heads`);
  const D = HD / heads;
  const scale = 1 / Math.sqrt(D);
  const out = Tensor.empty(q.shape, false);
  const probs = Tensor.empty([B, heads, T, T], false);
  const rounded = matmulPrecision() === 'bf16' ? [q, k, v].map((t) => roundedToBf16(t.buf, t.size)) : null;
  const [qd, kd, vd] = rounded ? rounded.map((t) => t.buf) : [q.buf, k.buf, v.buf];
  K().attentionForward(qd, kd, vd, out.buf, probs.buf, B, T, heads, D, scale);
  const grads = recording(q, k, v);
  if (!grads) rounded?.forEach((t) => t.dispose());
  if (grads) {
    out.requiresGrad = true;
    out.node = {
      op: 'attention',
      inputs: [q, k, v],
      // In bf16 backward reads the rounded copies, not q, k and v.
      ...(rounded ? { reads: [] } : {}),
      backward(g) {
        K().attentionBackward(g, qd, kd, vd, probs.buf, gradZeroed(q), gradZeroed(k), gradZeroed(v), B, T, heads, D, scale);
        rounded?.forEach((t) => t.dispose());
      },
    };
  }
  return out;
}
