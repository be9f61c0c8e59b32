/** Fused log-softmax + cross-entropy with an ignore index (mean over non-ignored rows). */
import { K } from '../backend.ts';
import { hostValue, recording, shapeStr, Tensor } from '../tensor.ts';
import { bf16Scratch, frozenOperand, mixedGemm, releaseOperand, type Bf16Matrix, type Operand } from './bf16.ts';
import { scalarSum } from './elementwise.ts';
import { gradSlot } from './grad.ts';
import { matmulPrecision } from './precision.ts';

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
  const count = K().crossEntropyForward(logits.buf, targets.ints, losses.buf, lse.buf, rows, V, ignoreIndex);
  if (count === 0) throw new Error('crossEntropy: every target is the ignore index; the mean loss is undefined');
  const out = scalarSum(losses.buf, rows, count);
  if (recording(logits)) {
    out.requiresGrad = true;
    out.node = {
      op: 'crossEntropy',
      inputs: [logits],
      backward(g) {
        const gl = gradSlot(logits);
        if (!gl) return;
        const scale = hostValue(g) / count;
        // The logits' gradient is as large as the logits: write it rather than clear and add.
        if (gl.fresh) K().crossEntropyBackwardWrite(logits.buf, targets.ints, lse.buf, gl.data, rows, V, ignoreIndex, scale);
        else K().crossEntropyBackward(logits.buf, targets.ints, lse.buf, gl.data, rows, V, ignoreIndex, scale);
      },
    };
  }
  return out;
}

/** Rows of logits one chunk of linearCrossEntropy holds: about 16 Mi floats (64 MiB). */
const CHUNK_FLOATS = 1 << 24;

/** Rows per chunk linearCrossEntropy uses by default for a vocabulary of V (a multiple of 64). */
export function defaultChunkRows(V: number): number {
  return Math.max(64, Math.floor(CHUNK_FLOATS / V / 64) * 64);
}

export interface LinearCrossEntropyOptions {
  ignoreIndex?: number;
  /** Rows per chunk (default: as many as fit 16 Mi logits, a multiple of 64). */
  chunkRows?: number;
}

/**
 * crossEntropy(linear(x, W), targets) without ever holding all the logits: x [..., d],
 * W [V, d] (a bias-free output layer such as lm_head), targets int32 [...] -> scalar mean loss.
 *
 * Rows go through in chunks: logits = x_c·Wᵀ, the loss, the softmax gradient written over the
 * logits, then dx_c = dlogits·W and dW += dlogitsᵀ·x_c right away. The loss is a graph's final
 * op, so its gradient is known up to the upstream factor before backward runs; backward only
 * scales and hands over dx and dW. At a vocabulary of 32k and 2,048 tokens this keeps 64 MiB of
 * logits (32 MiB when training in bf16) instead of 2 × 263 MB (logits and their gradient), for the
 * same arithmetic.
 */
export function linearCrossEntropy(x: Tensor, weight: Tensor, targets: Tensor, opts: LinearCrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? IGNORE_INDEX;
  if (targets.dtype !== 'int32') throw new Error(`linearCrossEntropy: targets must be int32, got ${targets.dtype}`);
  if (weight.shape.length !== 2) throw new Error(`linearCrossEntropy: weight must be 2-D [V, d], got ${shapeStr(weight.shape)}`);
  const [V, d] = weight.shape;
  if (x.shape[x.shape.length - 1] !== d) throw new Error(`linearCrossEntropy: input ${shapeStr(x.shape)} has last dimension ${x.shape[x.shape.length - 1]}, weight ${shapeStr(weight.shape)} expects ${d}`);
  const rows = x.size / d;
  if (targets.size !== rows) throw new Error(`linearCrossEntropy: input ${shapeStr(x.shape)} has ${rows} rows but targets ${shapeStr(targets.shape)} have ${targets.size}`);
  const t = targets.ints;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    if (t[r] === ignoreIndex) continue;
    if (!(t[r] >= 0 && t[r] < V)) throw new Error(`linearCrossEntropy: target ${t[r]} at row ${r} is outside [0, ${V}) and is not the ignore index ${ignoreIndex}`);
    count++;
  }
  if (count === 0) throw new Error('linearCrossEntropy: every target is the ignore index; the mean loss is undefined');
  const chunk = Math.min(rows, opts.chunkRows ?? defaultChunkRows(V));
  if (!(Number.isInteger(chunk) && chunk >= 1)) throw new Error(`linearCrossEntropy: chunkRows must be a positive integer, got ${opts.chunkRows}`);

  const k = K();
  const needX = recording(x), needW = recording(weight);
  const training = needX || needW;
  // In bf16 precision the head's products take bf16 operands (W rounded once for all chunks) and,
  // when training, write the logits in bf16 as autocast's lm_head does; the loss and its gradient
  // are computed in fp32 from them. Evaluation keeps fp32 logits (forward only, nothing to save).
  const bf16 = matmulPrecision() === 'bf16';
  const losses = Tensor.empty([rows], false), lse = Tensor.empty([chunk], false);
  const logits = bf16 && training ? bf16Scratch(chunk * V).packed : Tensor.empty([chunk * V], false);
  const dx = needX ? Tensor.empty(x.shape, false) : null;
  const dW = needW ? Tensor.empty(weight.shape, false) : null;
  const X = x.buf;
  const W = frozenOperand(weight.buf, bf16);
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const c = Math.min(chunk, rows - r0);
    const tc = t.subarray(r0, r0 + c), xc = X.subarray(r0 * d, (r0 + c) * d);
    const xo = frozenOperand(xc, bf16);
    const lossesC = losses.buf.subarray(r0, r0 + c);
    if (!training) {
      const lg = logits.buf.subarray(0, c * V);
      mixedGemm(bf16, false, true, c, V, d, 1, xo, d, W, d, 0, lg, V);
      k.crossEntropyForward(lg, tc, lossesC, lse.buf, c, V, ignoreIndex);
      releaseOperand(xo);
      continue;
    }
    // The loss and its gradient in one pass, the gradient written over the logits it comes from
    // (in bf16 it is then the products' bf16 operand as it is).
    let lg: Float32Array, dl: Operand;
    if (bf16) {
      lg = logits.buf.subarray(0, (c * V + 1) >> 1);
      k.gemmBf16ToBf16(false, true, c, V, d, 1, (xo as Bf16Matrix).packed.buf, d, (W as Bf16Matrix).packed.buf, d, lg, V);
      dl = { packed: logits };
    } else {
      lg = logits.buf.subarray(0, c * V);
      mixedGemm(false, false, true, c, V, d, 1, xo, d, W, d, 0, lg, V);
      dl = lg;
    }
    k.crossEntropyFused(lg, tc, lossesC, lse.buf, lg, c, V, ignoreIndex, 1 / count, bf16);
    if (dx) mixedGemm(bf16, false, false, c, d, V, 1, dl, V, W, d, 0, dx.buf.subarray(r0 * d, (r0 + c) * d), d);
    if (dW) mixedGemm(bf16, true, false, V, d, c, 1, dl, V, xo, d, r0 === 0 ? 0 : 1, dW.buf, d);
    releaseOperand(xo);
  }
  releaseOperand(W);
  const out = scalarSum(losses.buf, rows, count);
  for (const s of [losses, lse, logits]) s.dispose();
  if (!dx && !dW) return out;
  out.requiresGrad = true;
  out.node = {
    op: 'linearCrossEntropy',
    inputs: [x, weight],
    backward(g) {
      const kb = K(), s = hostValue(g);
      if (dx) {
        const gx = gradSlot(x)!;
        if (gx.fresh) kb.scale(dx.buf, s, gx.data, dx.size);
        else kb.axpy(s, dx.buf, gx.data, dx.size);
        dx.dispose();
      }
      if (dW) {
        if (!weight.grad) {
          // Hand the finished gradient over instead of copying it; a parameter's gradient
          // outlives the step's scope.
          if (s !== 1) kb.scale(dW.buf, s, dW.buf, dW.size);
          if (weight.node === null) dW.keep();
          dW.name = weight.name ? `${weight.name}.grad` : undefined;
          weight.grad = dW;
        } else {
          kb.axpy(s, dW.buf, weight.grad.buf, dW.size);
          dW.dispose();
        }
      }
    },
  };
  return out;
}
