/**
 * The js backend: every kernel in plain TypeScript. It is the readable specification of what
 * each kernel computes (native must agree with it), the oracle in tests, and the fallback when
 * the native addon cannot load.
 */
import { acquire, release } from '../pool.ts';
import { hash32 } from '../rng.ts';
import { emulatedAttentionBf16 } from './attention-bf16.ts';
import { emulatedGemmBf16, emulatedGemmBf16ToBf16, toBf16Packed, toBf16RowsPacked, widenBf16 } from './bf16.ts';
import { need, positiveInts } from './checks.ts';
import { composedCrossEntropyFused, composedDropoutApplyBf16 } from './composed.ts';
import type { Kernels } from './kernels.ts';

function gemm(
  transA: boolean, transB: boolean, M: number, N: number, K: number, alpha: number,
  A: Float32Array, lda: number, strideA: number,
  B: Float32Array, ldb: number, strideB: number,
  beta: number, C: Float32Array, ldc: number, strideC: number, batch: number,
): void {
  positiveInts('gemm', { M, N, K, lda, ldb, ldc, strideA, strideB, strideC, batch });
  if (M === 0 || N === 0 || batch === 0) return;
  const aRows = transA ? K : M, aCols = transA ? M : K;
  const bRows = transB ? N : K, bCols = transB ? K : N;
  if (lda < aCols || ldb < bCols || ldc < N) {
    throw new Error(`gemm: leading dimensions too small (lda=${lda} needs >= ${aCols}, ldb=${ldb} needs >= ${bCols}, ldc=${ldc} needs >= ${N})`);
  }
  if (aRows > 0) need('gemm', 'A', A, (batch - 1) * strideA + (aRows - 1) * lda + aCols);
  if (bRows > 0) need('gemm', 'B', B, (batch - 1) * strideB + (bRows - 1) * ldb + bCols);
  need('gemm', 'C', C, (batch - 1) * strideC + (M - 1) * ldc + N);
  const acc = new Float64Array(N);
  for (let b = 0; b < batch; b++) {
    const a0 = b * strideA, b0 = b * strideB, c0 = b * strideC;
    for (let i = 0; i < M; i++) {
      acc.fill(0);
      for (let p = 0; p < K; p++) {
        const aip = transA ? A[a0 + p * lda + i] : A[a0 + i * lda + p];
        if (aip === 0) continue;
        if (transB) {
          for (let j = 0; j < N; j++) acc[j] += aip * B[b0 + j * ldb + p];
        } else {
          const row = b0 + p * ldb;
          for (let j = 0; j < N; j++) acc[j] += aip * B[row + j];
        }
      }
      const row = c0 + i * ldc;
      if (beta === 0) for (let j = 0; j < N; j++) C[row + j] = alpha * acc[j];
      else for (let j = 0; j < N; j++) C[row + j] = alpha * acc[j] + beta * C[row + j];
    }
  }
}

function silu(x: number): number {
  return x / (1 + Math.exp(-x));
}

function siluGrad(x: number): number {
  const s = 1 / (1 + Math.exp(-x));
  return s * (1 + x * (1 - s));
}

export const jsKernels: Kernels = {
  name: 'js',
  blas: 'js',
  getThreads: () => 1,
  setThreads: () => {},
  gemm,

  add(a, b, out, n) {
    need('add', 'a', a, n); need('add', 'b', b, n); need('add', 'out', out, n);
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
  },
  mul(a, b, out, n) {
    need('mul', 'a', a, n); need('mul', 'b', b, n); need('mul', 'out', out, n);
    for (let i = 0; i < n; i++) out[i] = a[i] * b[i];
  },
  scale(a, s, out, n) {
    need('scale', 'a', a, n); need('scale', 'out', out, n);
    for (let i = 0; i < n; i++) out[i] = a[i] * s;
  },
  axpy(alpha, x, y, n) {
    need('axpy', 'x', x, n); need('axpy', 'y', y, n);
    for (let i = 0; i < n; i++) y[i] += alpha * x[i];
  },
  addScalar(out, value, n) {
    need('addScalar', 'out', out, n);
    for (let i = 0; i < n; i++) out[i] += value;
  },
  sum(x, n) {
    need('sum', 'x', x, n);
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i];
    return s;
  },
  sumSquares(x, n) {
    need('sumSquares', 'x', x, n);
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i] * x[i];
    return s;
  },
  fill(out, value, n) {
    need('fill', 'out', out, n);
    out.fill(value, 0, n);
  },

  embeddingForward(weight, ids, out, nIds, vocab, dim) {
    need('embedding', 'weight', weight, vocab * dim); need('embedding', 'ids', ids, nIds); need('embedding', 'out', out, nIds * dim);
    for (let r = 0; r < nIds; r++) {
      const id = ids[r];
      if (id < 0 || id >= vocab) throw new Error(`embedding: token id ${id} at position ${r} is outside [0, ${vocab})`);
    }
    for (let r = 0; r < nIds; r++) out.set(weight.subarray(ids[r] * dim, ids[r] * dim + dim), r * dim);
  },
  embeddingBackward(dout, ids, dWeight, nIds, vocab, dim) {
    need('embeddingBackward', 'dout', dout, nIds * dim); need('embeddingBackward', 'ids', ids, nIds);
    need('embeddingBackward', 'dWeight', dWeight, vocab * dim);
    for (let r = 0; r < nIds; r++) {
      const id = ids[r];
      if (id < 0 || id >= vocab) throw new Error(`embeddingBackward: token id ${id} at position ${r} is outside [0, ${vocab})`);
      const w0 = id * dim, d0 = r * dim;
      for (let j = 0; j < dim; j++) dWeight[w0 + j] += dout[d0 + j];
    }
  },

  rmsnormForward(x, weight, out, rstd, rows, dim, eps) {
    need('rmsnorm', 'x', x, rows * dim); need('rmsnorm', 'weight', weight, dim);
    need('rmsnorm', 'out', out, rows * dim); need('rmsnorm', 'rstd', rstd, rows);
    for (let r = 0; r < rows; r++) {
      const o = r * dim;
      let ss = 0;
      for (let j = 0; j < dim; j++) ss += x[o + j] * x[o + j];
      const rs = 1 / Math.sqrt(ss / dim + eps);
      rstd[r] = rs;
      const rsf = rstd[r];
      for (let j = 0; j < dim; j++) out[o + j] = x[o + j] * rsf * weight[j];
    }
  },
  rmsnormBackward(dout, x, weight, rstd, dx, dWeight, rows, dim) {
    need('rmsnormBackward', 'dout', dout, rows * dim); need('rmsnormBackward', 'x', x, rows * dim);
    need('rmsnormBackward', 'weight', weight, dim); need('rmsnormBackward', 'rstd', rstd, rows);
    if (dx) need('rmsnormBackward', 'dx', dx, rows * dim);
    if (dWeight) need('rmsnormBackward', 'dWeight', dWeight, dim);
    for (let r = 0; r < rows; r++) {
      const o = r * dim, rs = rstd[r];
      if (dWeight) for (let j = 0; j < dim; j++) dWeight[j] += dout[o + j] * x[o + j] * rs;
      if (dx) {
        // y = x*rs*w  =>  dx = rs*(g*w) - x*rs^3*mean(g*w*x)
        let dot = 0;
        for (let j = 0; j < dim; j++) dot += dout[o + j] * weight[j] * x[o + j];
        const c = (rs * rs * rs * dot) / dim;
        for (let j = 0; j < dim; j++) dx[o + j] += rs * dout[o + j] * weight[j] - c * x[o + j];
      }
    }
  },

  ropeForward(x, cos, sin, out, B, T, H, D) {
    positiveInts('rope', { B, T, H, D });
    if (D % 2 !== 0) throw new Error(`rope: head dimension ${D} must be even`);
    const half = D / 2, n = B * T * H * D;
    need('rope', 'x', x, n); need('rope', 'out', out, n); need('rope', 'cos', cos, T * half); need('rope', 'sin', sin, T * half);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      const o = ((b * T + t) * H + h) * D, tc = t * half;
      for (let i = 0; i < half; i++) {
        const x1 = x[o + i], x2 = x[o + half + i], c = cos[tc + i], s = sin[tc + i];
        out[o + i] = x1 * c - x2 * s;
        out[o + half + i] = x2 * c + x1 * s;
      }
    }
  },
  ropeBackward(dout, cos, sin, dx, B, T, H, D) {
    positiveInts('ropeBackward', { B, T, H, D });
    if (D % 2 !== 0) throw new Error(`ropeBackward: head dimension ${D} must be even`);
    const half = D / 2, n = B * T * H * D;
    need('ropeBackward', 'dout', dout, n); need('ropeBackward', 'dx', dx, n);
    need('ropeBackward', 'cos', cos, T * half); need('ropeBackward', 'sin', sin, T * half);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
      const o = ((b * T + t) * H + h) * D, tc = t * half;
      for (let i = 0; i < half; i++) {
        const d1 = dout[o + i], d2 = dout[o + half + i], c = cos[tc + i], s = sin[tc + i];
        dx[o + i] += d1 * c + d2 * s;
        dx[o + half + i] += d2 * c - d1 * s;
      }
    }
  },

  attentionForward(q, k, v, out, probs, B, T, H, D, scale) {
    positiveInts('attention', { B, T, H, D });
    const n = B * T * H * D, HD = H * D;
    need('attention', 'q', q, n); need('attention', 'k', k, n); need('attention', 'v', v, n);
    need('attention', 'out', out, n); need('attention', 'probs', probs, B * H * T * T);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
      const p0 = (b * H + h) * T * T;
      for (let t = 0; t < T; t++) {
        const qo = (b * T + t) * HD + h * D, prow = p0 + t * T;
        let max = -Infinity;
        for (let s = 0; s <= t; s++) {
          const ko = (b * T + s) * HD + h * D;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[qo + d] * k[ko + d];
          const z = dot * scale;
          probs[prow + s] = z;
          if (z > max) max = z;
        }
        let denom = 0;
        for (let s = 0; s <= t; s++) {
          const e = Math.exp(probs[prow + s] - max);
          probs[prow + s] = e;
          denom += e;
        }
        for (let s = 0; s <= t; s++) probs[prow + s] /= denom;
        for (let s = t + 1; s < T; s++) probs[prow + s] = 0;
        for (let d = 0; d < D; d++) {
          let acc = 0;
          for (let s = 0; s <= t; s++) acc += probs[prow + s] * v[(b * T + s) * HD + h * D + d];
          out[qo + d] = acc;
        }
      }
    }
  },
  attentionBackward(dout, q, k, v, probs, dq, dk, dv, B, T, H, D, scale) {
    positiveInts('attentionBackward', { B, T, H, D });
    const n = B * T * H * D, HD = H * D;
    for (const [name, a] of [['dout', dout], ['q', q], ['k', k], ['v', v]] as const) need('attentionBackward', name, a, n);
    need('attentionBackward', 'probs', probs, B * H * T * T);
    if (dq) need('attentionBackward', 'dq', dq, n);
    if (dk) need('attentionBackward', 'dk', dk, n);
    if (dv) need('attentionBackward', 'dv', dv, n);
    const dP = new Float64Array(T);
    for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) {
      const p0 = (b * H + h) * T * T;
      for (let t = 0; t < T; t++) {
        const to = (b * T + t) * HD + h * D, prow = p0 + t * T;
        // dP[s] = dout[t]·v[s]; dS = P*(dP - sum(P*dP))
        let rowDot = 0;
        for (let s = 0; s <= t; s++) {
          const so = (b * T + s) * HD + h * D;
          let acc = 0;
          for (let d = 0; d < D; d++) acc += dout[to + d] * v[so + d];
          dP[s] = acc;
          rowDot += acc * probs[prow + s];
        }
        for (let s = 0; s <= t; s++) {
          const so = (b * T + s) * HD + h * D, p = probs[prow + s];
          const dS = p * (dP[s] - rowDot) * scale;
          if (dv) for (let d = 0; d < D; d++) dv[so + d] += p * dout[to + d];
          if (dq) for (let d = 0; d < D; d++) dq[to + d] += dS * k[so + d];
          if (dk) for (let d = 0; d < D; d++) dk[so + d] += dS * q[to + d];
        }
      }
    }
  },

  siluForward(x, out, n) {
    need('silu', 'x', x, n); need('silu', 'out', out, n);
    for (let i = 0; i < n; i++) out[i] = silu(x[i]);
  },
  siluBackward(dout, x, dx, n) {
    need('siluBackward', 'dout', dout, n); need('siluBackward', 'x', x, n); need('siluBackward', 'dx', dx, n);
    for (let i = 0; i < n; i++) dx[i] += dout[i] * siluGrad(x[i]);
  },
  swigluForward(gate, up, out, n) {
    need('swiglu', 'gate', gate, n); need('swiglu', 'up', up, n); need('swiglu', 'out', out, n);
    for (let i = 0; i < n; i++) out[i] = silu(gate[i]) * up[i];
  },
  swigluBackward(dout, gate, up, dGate, dUp, n, accumulate) {
    need('swigluBackward', 'dout', dout, n); need('swigluBackward', 'gate', gate, n); need('swigluBackward', 'up', up, n);
    if (dGate) need('swigluBackward', 'dGate', dGate, n);
    if (dUp) need('swigluBackward', 'dUp', dUp, n);
    for (let i = 0; i < n; i++) {
      if (dGate) dGate[i] = (accumulate ? dGate[i] : 0) + dout[i] * up[i] * siluGrad(gate[i]);
      if (dUp) dUp[i] = (accumulate ? dUp[i] : 0) + dout[i] * silu(gate[i]);
    }
  },

  dropoutMask(mask, n, key, threshold, scale) {
    need('dropoutMask', 'mask', mask, n);
    for (let i = 0; i < n; i++) mask[i] = hash32(key, i) >= threshold ? scale : 0;
  },
  // Composed from the mask: `out` holds the mask, then the product.
  dropoutApply(x, out, n, key, threshold, scale) {
    jsKernels.dropoutMask(out, n, key, threshold, scale);
    jsKernels.mul(x, out, out, n);
  },
  dropoutBackwardAdd(g, dx, n, key, threshold, scale) {
    need('dropoutBackwardAdd', 'g', g, n); need('dropoutBackwardAdd', 'dx', dx, n);
    const masked = acquire(n, false);
    jsKernels.dropoutMask(masked, n, key, threshold, scale);
    jsKernels.mul(g, masked, masked, n);
    jsKernels.axpy(1, masked, dx, n);
    release(masked);
  },

  crossEntropyForward(logits, targets, losses, lse, rows, V, ignoreIndex) {
    need('crossEntropy', 'logits', logits, rows * V); need('crossEntropy', 'targets', targets, rows);
    need('crossEntropy', 'losses', losses, rows); need('crossEntropy', 'lse', lse, rows);
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t !== ignoreIndex && (t < 0 || t >= V)) throw new Error(`crossEntropy: target ${t} at row ${r} is outside [0, ${V}) and is not the ignore index ${ignoreIndex}`);
    }
    let count = 0;
    for (let r = 0; r < rows; r++) {
      const o = r * V;
      let max = -Infinity;
      for (let j = 0; j < V; j++) if (logits[o + j] > max) max = logits[o + j];
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(logits[o + j] - max);
      const l = max + Math.log(s);
      lse[r] = l;
      const t = targets[r];
      if (t === ignoreIndex) losses[r] = 0;
      else {
        losses[r] = l - logits[o + t];
        count++;
      }
    }
    return count;
  },
  crossEntropyBackward(logits, targets, lse, dLogits, rows, V, ignoreIndex, gradScale) {
    need('crossEntropyBackward', 'logits', logits, rows * V); need('crossEntropyBackward', 'targets', targets, rows);
    need('crossEntropyBackward', 'lse', lse, rows); need('crossEntropyBackward', 'dLogits', dLogits, rows * V);
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t === ignoreIndex) continue;
      if (t < 0 || t >= V) throw new Error(`crossEntropyBackward: target ${t} at row ${r} is outside [0, ${V})`);
      const o = r * V, l = lse[r];
      for (let j = 0; j < V; j++) dLogits[o + j] += gradScale * Math.exp(logits[o + j] - l);
      dLogits[o + t] -= gradScale;
    }
  },
  crossEntropyBackwardWrite(logits, targets, lse, dLogits, rows, V, ignoreIndex, gradScale) {
    const k = 'crossEntropyBackwardWrite';
    need(k, 'logits', logits, rows * V); need(k, 'targets', targets, rows); need(k, 'lse', lse, rows); need(k, 'dLogits', dLogits, rows * V);
    for (let r = 0; r < rows; r++) {
      const t = targets[r];
      if (t !== ignoreIndex && (t < 0 || t >= V)) throw new Error(`${k}: target ${t} at row ${r} is outside [0, ${V})`);
    }
    // Row by row, each element read before it is written: dLogits may be logits itself.
    for (let r = 0; r < rows; r++) {
      const t = targets[r], o = r * V, l = lse[r];
      if (t === ignoreIndex) {
        dLogits.fill(0, o, o + V);
        continue;
      }
      for (let j = 0; j < V; j++) dLogits[o + j] = gradScale * Math.exp(logits[o + j] - l);
      dLogits[o + t] -= gradScale;
    }
  },

  crossEntropyFused: (...args) => composedCrossEntropyFused(jsKernels, widenBf16)(...args),
  dropoutApplyBf16: (...args) => composedDropoutApplyBf16(jsKernels)(...args),

  toBf16: toBf16Packed,
  toBf16Rows: toBf16RowsPacked,
  gemmBf16: emulatedGemmBf16(gemm),
  gemmBf16ToBf16: emulatedGemmBf16ToBf16(emulatedGemmBf16(gemm)),
  hasBf16Gemm: () => false,
  ...emulatedAttentionBf16(gemm),

  adamwStep(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale) {
    need('adamw', 'param', param, n); need('adamw', 'grad', grad, n); need('adamw', 'm', m, n); need('adamw', 'v', v, n);
    const decay = 1 - lr * weightDecay;
    const stepSize = lr / bc1;
    const bc2Sqrt = Math.sqrt(bc2);
    for (let i = 0; i < n; i++) {
      const g = Math.fround(grad[i] * gradScale);
      m[i] = beta1 * m[i] + (1 - beta1) * g;
      v[i] = beta2 * v[i] + (1 - beta2) * g * g;
      const denom = Math.sqrt(v[i]) / bc2Sqrt + eps;
      param[i] = param[i] * decay - stepSize * (m[i] / denom);
    }
  },
};
