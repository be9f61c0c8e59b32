/**
 * Matrix products. C = op(A)·op(B) with transpose flags (never materialised) and an optional
 * batch dimension. Backward skips the product for any operand that needs no gradient — this is
 * what spares a frozen weight its dW = dYᵀ·X. In bf16 precision (./precision.ts) forward and
 * backward products take bf16 operands with fp32 accumulation; outputs and gradients stay fp32.
 */
import { recording, shapeStr, Tensor } from '../tensor.ts';
import { Bf16Copies, bf16RowsCopy, gemmIn, mixedGemm } from './bf16.ts';
import { betaFor, gradSlot } from './grad.ts';
import { matmulPrecision } from './precision.ts';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * a: [M, K] (or [K, M] with transA), or [batch, ...] 3-D; b: [K, N] (or [N, K] with transB), 2-D or
 * 3-D with the same batch. When b is 2-D and a has more dimensions (and !transA), the leading
 * dimensions of a are folded into M (a Linear layer over [B, T, in]).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false, transB = opts.transB ?? false;
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error(`matmul: expected float32 operands, got ${a.dtype} and ${b.dtype}`);
  if (b.shape.length !== 2 && b.shape.length !== 3) throw new Error(`matmul: b must be 2-D or 3-D, got shape ${shapeStr(b.shape)}`);
  let batch = 1, M: number, Ka: number, outShape: number[];
  const bBatched = b.shape.length === 3;
  if (bBatched) {
    if (a.shape.length !== 3 || a.shape[0] !== b.shape[0]) {
      throw new Error(`matmul: batched b ${shapeStr(b.shape)} needs a 3-D a with the same batch, got a ${shapeStr(a.shape)}`);
    }
    batch = a.shape[0];
    M = transA ? a.shape[2] : a.shape[1];
    Ka = transA ? a.shape[1] : a.shape[2];
  } else if (a.shape.length === 2 || transA) {
    if (a.shape.length !== 2) throw new Error(`matmul: transA needs a 2-D a, got ${shapeStr(a.shape)}`);
    M = transA ? a.shape[1] : a.shape[0];
    Ka = transA ? a.shape[0] : a.shape[1];
  } else {
    if (a.shape.length < 1) throw new Error(`matmul: a must have at least 2 dimensions, got ${shapeStr(a.shape)}`);
    Ka = a.shape[a.shape.length - 1];
    M = a.size / Math.max(Ka, 1);
  }
  const bs = bBatched ? b.shape.slice(1) : b.shape;
  const Kb = transB ? bs[1] : bs[0];
  const N = transB ? bs[0] : bs[1];
  if (Ka !== Kb) {
    throw new Error(`matmul: inner dimensions differ: a ${shapeStr(a.shape)}${transA ? 'ᵀ' : ''} · b ${shapeStr(b.shape)}${transB ? 'ᵀ' : ''} (${Ka} vs ${Kb})`);
  }
  const Kd = Ka;
  if (bBatched) outShape = [batch, M, N];
  else if (a.shape.length === 2 || transA) outShape = [M, N];
  else outShape = [...a.shape.slice(0, -1), N];

  const lda = a.shape[a.shape.length - 1], ldb = bs[1];
  const sA = bBatched ? a.shape[1] * a.shape[2] : 0, sB = bBatched ? bs[0] * bs[1] : 0, sC = M * N;
  const out = Tensor.empty(outShape, false);
  const bf16 = matmulPrecision() === 'bf16';
  // A single product's bf16 operand copies are made once and kept for its backward (an
  // activation's is the copy every op shares, Bf16Copies.ofTensor).
  const copies = bf16 && batch === 1 ? new Bf16Copies(true) : undefined;
  // The arrays as forward saw them: with bf16 copies they are only the copies' keys in backward,
  // whose fp32 values may have been released by then (GradNode.reads).
  const aBuf = a.buf, bBuf = b.buf;
  copies?.ofTensor(a, aBuf, true);
  copies?.ofTensor(b, bBuf, true);
  gemmIn(bf16, transA, transB, M, N, Kd, 1, aBuf, lda, sA, bBuf, ldb, sB, 0, out.buf, N, sC, batch, copies);
  if (!recording(a, b)) copies?.dispose();

  if (recording(a, b)) {
    out.requiresGrad = true;
    out.node = {
      op: 'matmul',
      inputs: [a, b],
      ...(copies ? { reads: [] } : {}),
      backward(dC) {
        if (copies) {
          // bf16, one matrix: the saved operands' copies, and one of dC kept out of `copies` (a
          // released operand's array may come back from the pool as dC itself).
          const g = bf16RowsCopy(dC, M, N);
          try {
            const dA = gradSlot(a);
            if (dA) {
              if (!transA) mixedGemm(true, false, !transB, M, Kd, N, 1, g, N, copies.of(bBuf, true), ldb, betaFor(dA), dA.data, lda);
              else mixedGemm(true, transB, true, Kd, M, N, 1, copies.of(bBuf, true), ldb, g, N, betaFor(dA), dA.data, lda);
            }
            const dB = gradSlot(b);
            if (dB) {
              if (!transB) mixedGemm(true, !transA, false, Kd, N, M, 1, copies.of(aBuf, true), lda, g, N, betaFor(dB), dB.data, ldb);
              else mixedGemm(true, true, transA, N, Kd, M, 1, g, N, copies.of(aBuf, true), lda, betaFor(dB), dB.data, ldb);
            }
          } finally {
            g.packed.dispose();
            copies.dispose();
          }
          return;
        }
        const c = new Bf16Copies();
        // A fresh gradient is written (beta 0) rather than cleared and accumulated into.
        const dA = gradSlot(a);
        if (dA) {
          const beta = betaFor(dA);
          if (!transA) gemmIn(bf16, false, !transB, M, Kd, N, 1, dC, N, sC, bBuf, ldb, sB, beta, dA.data, lda, sA, batch, c);
          else gemmIn(bf16, transB, true, Kd, M, N, 1, bBuf, ldb, sB, dC, N, sC, beta, dA.data, lda, sA, batch, c);
        }
        const dB = gradSlot(b);
        if (dB) {
          const beta = betaFor(dB);
          if (!transB) gemmIn(bf16, !transA, false, Kd, N, M, 1, aBuf, lda, sA, dC, N, sC, beta, dB.data, ldb, sB, batch, c);
          else gemmIn(bf16, true, transA, N, Kd, M, 1, dC, N, sC, aBuf, lda, sA, beta, dB.data, ldb, sB, batch, c);
        }
        c.dispose();
      },
    };
  }
  return out;
}

/** y = x · Wᵀ for W [out, in] (PyTorch's Linear without bias); x [..., in] -> [..., out]. */
export function linear(x: Tensor, weight: Tensor): Tensor {
  if (weight.shape.length !== 2) throw new Error(`linear: weight must be 2-D [out, in], got ${shapeStr(weight.shape)}`);
  if (x.shape[x.shape.length - 1] !== weight.shape[1]) {
    throw new Error(`linear: input ${shapeStr(x.shape)} has last dimension ${x.shape[x.shape.length - 1]}, weight ${shapeStr(weight.shape)} expects ${weight.shape[1]}`);
  }
  return matmul(x, weight, { transB: true });
}
