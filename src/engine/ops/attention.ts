/**
 * Causal multi-head self-attention as one fused op: softmax(q·kᵀ/√D + causal mask)·v. In bf16
 * precision its products take bf16 operands as autocast's do — q, k, v, the probabilities, the
 * gradients (Kernels.attentionForwardBf16) — accumulating in fp32 with an fp32 softmax, and the
 * backward reads the kernel's bf16 copies of q, k and v, not the tensors.
 */
import { K } from '../backend.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { gradSlots, gradZeroed } from './grad.ts';
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
  const bf16 = matmulPrecision() === 'bf16';
  // fp32 keeps P for the backward; bf16 each row's softmax stats (P is computed again) and q, k, v
  // as bf16, packed two per float.
  const probs = bf16 ? Tensor.empty([B, heads, T, 2], false) : Tensor.empty([B, heads, T, T], false);
  const saved = bf16 ? Tensor.empty([Math.ceil((3 * q.size) / 2)], false) : null;
  if (saved) K().attentionForwardBf16(q.buf, k.buf, v.buf, out.buf, probs.buf, saved.buf, B, T, heads, D, scale);
  else K().attentionForward(q.buf, k.buf, v.buf, out.buf, probs.buf, B, T, heads, D, scale);
  const grads = recording(q, k, v);
  if (!grads) saved?.dispose();
  if (grads) {
    out.requiresGrad = true;
    out.node = {
      op: 'attention',
      inputs: [q, k, v],
      ...(saved ? { reads: [] } : {}),
      backward(g) {
        if (saved) {
          const { grads: [dq, dk, dv], accumulate } = gradSlots([q, k, v]);
          K().attentionBackwardBf16(g, saved.buf, probs.buf, dq, dk, dv, B, T, heads, D, scale, accumulate);
          saved.dispose();
        } else {
          K().attentionBackward(g, q.buf, k.buf, v.buf, probs.buf, gradZeroed(q), gradZeroed(k), gradZeroed(v), B, T, heads, D, scale);
        }
      },
    };
  }
  return out;
}
