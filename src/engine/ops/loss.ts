/** Fused log-softmax + cross-entropy with an ignore index (mean over non-ignored rows). */
import { K } from '../backend.ts';
import { fusedKernels } from '../backends/native.ts';
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { gradSlot } from './grad.ts';

export const IGNORE_INDEX = -100;

/** logits [..., V], targets int32 [...] -> scalar mean loss over targets != ignoreIndex. */
export function crossEntropy(logits: Tensor, targets: Tensor, ignoreIndex = IGNORE_INDEX): Tensor {
  if (targets.dtype !== 'int32') throw new Error(`crossEntropy: targets must be int32, got ${targets.dtype}`);
  const V = logits.shape[logits.shape.length - 1];
  const rows = logits.size / V;
  if (targets.size !== rows) {
    throw new Error(`crossEntropy: logits ${shapeStr(logits.shape)} have ${rows} rows but targets ${shapeStr(targets.shape)} have ${targets.size}`);
  }
  const losses = Tensor.empty([rows], false);
  const lse = Tensor.empty([rows], false);
  const count = K().crossEntropyForward(logits.data, targets.ints, losses.data, lse.data, rows, V, ignoreIndex);
  if (count === 0) throw new Error('crossEntropy: every target is the ignore index; the mean loss is undefined');
  const out = Tensor.from(new Float32Array([K().sum(losses.data, rows) / count]), []);
  if (recording(logits)) {
    out.requiresGrad = true;
    out.node = {
      op: 'crossEntropy',
      inputs: [logits],
      backward(g) {
        const gl = gradSlot(logits);
        if (!gl) return;
        const k = K(), f = fusedKernels(k), scale = g[0] / count;
        // The logits' gradient is as large as the logits: write it rather than clear and add.
        if (gl.fresh && f) return f.crossEntropyBackwardWrite(logits.data, targets.ints, lse.data, gl.data, rows, V, ignoreIndex, scale);
        if (gl.fresh) k.fill(gl.data, 0, logits.size);
        k.crossEntropyBackward(logits.data, targets.ints, lse.data, gl.data, rows, V, ignoreIndex, scale);
      },
    };
  }
  return out;
}
