/**
 * Kernels.attentionForwardBf16 and attentionBackwardBf16 through an fp32 `gemm`: every operand
 * rounded to bf16 (and held as the exact fp32 value it stands for), each product over a head's
 * whole T×T square (the zeros above the diagonal add nothing), the softmax and its gradient in
 * TypeScript; the backward computes the scores again and replays the softmax from its stats.
 * The js backend's kernels, and the native backend's where oneDNN cannot run bf16 matmuls: the
 * same roundings at the same points as native/src/kernels/attention_bf16.c, so the two agree up
 * to summation order.
 */
import { acquire, release } from '../pool.ts';
import { roundBf16, toBf16Packed, widenBf16 } from './bf16.ts';
import { need, positiveInts } from './checks.ts';
import type { Kernels } from './kernels.ts';

type AttentionBf16 = Pick<Kernels, 'attentionForwardBf16' | 'attentionBackwardBf16'>;

function check(kernel: string, B: number, T: number, H: number, D: number, arrays: [string, Float32Array | null, number][]): void {
  positiveInts(kernel, { B, T, H, D });
  for (const [name, a, n] of arrays) if (a) need(kernel, name, a, n);
}

/** dst[b][h][t][:] = src[b][t][h][:] (activations to head-major). */
function toHeadMajor(src: Float32Array, dst: Float32Array, B: number, T: number, H: number, D: number): void {
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
    const from = ((b * T + t) * H + h) * D, to = ((b * H + h) * T + t) * D;
    dst.set(src.subarray(from, from + D), to);
  }
}

/** dst[b][t][h][:] (+)= src[b][h][t][:] (a head-major gradient into activations). */
function toActivations(src: Float32Array, dst: Float32Array, B: number, T: number, H: number, D: number, accumulate: boolean): void {
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) {
    const to = ((b * T + t) * H + h) * D, from = ((b * H + h) * T + t) * D;
    if (accumulate) for (let d = 0; d < D; d++) dst[to + d] += src[from + d];
    else dst.set(src.subarray(from, from + D), to);
  }
}

/**
 * P for every head into `P` from the head-major q and k: the scaled scores, then each row's causal
 * softmax — computed, with {max, 1/sum} written to stats, or replayed from stats, the same
 * operations in the same order, so the same bits.
 */
function probabilities(gemm: Kernels['gemm'], qh: Float32Array, kh: Float32Array, P: Float32Array, stats: Float32Array, replay: boolean, BH: number, T: number, D: number, scale: number): void {
  gemm(false, true, T, T, D, scale, qh, D, T * D, kh, D, T * D, 0, P, T, T * T, BH);
  for (let r = 0; r < BH * T; r++) {
    const t = r % T, row = P.subarray(r * T, (r + 1) * T);
    const max = replay ? stats[2 * r] : row.subarray(0, t + 1).reduce((m, x) => Math.max(m, x), -Infinity);
    let denom = 0;
    for (let s = 0; s <= t; s++) {
      row[s] = Math.exp(row[s] - max);
      denom += row[s];
    }
    const inv = replay ? stats[2 * r + 1] : Math.fround(1 / denom);
    for (let s = 0; s <= t; s++) row[s] *= inv;
    row.fill(0, t + 1);
    if (!replay) stats.set([max, inv], 2 * r);
  }
}

export function emulatedAttentionBf16(gemm: Kernels['gemm']): AttentionBf16 {
  return {
    attentionForwardBf16(q, k, v, out, stats, saved, B, T, H, D, scale) {
      const n = B * T * H * D, rows = B * H * T, TD = T * D, TT = T * T;
      check('attentionForwardBf16', B, T, H, D, [['q', q, n], ['k', k, n], ['v', v, n], ['out', out, n], ['stats', stats, 2 * rows], ['saved', saved, Math.ceil((3 * n) / 2)]]);
      if (n === 0) return;
      const qkv = acquire(3 * n, false), P = acquire(rows * T, false);
      try {
        [q, k, v].forEach((x, i) => toHeadMajor(x, qkv.subarray(i * n, (i + 1) * n), B, T, H, D));
        roundBf16(qkv, qkv, 3 * n);
        toBf16Packed(qkv, saved, 3 * n);
        const [qh, kh, vh] = [0, 1, 2].map((i) => qkv.subarray(i * n, (i + 1) * n));
        probabilities(gemm, qh, kh, P, stats, false, B * H, T, D, scale);
        roundBf16(P, P, rows * T);
        for (let b = 0; b < B; b++) {
          gemm(false, false, T, D, T, 1, P.subarray(b * H * TT), T, TT, vh.subarray(b * H * TD), D, TD, 0, out.subarray(b * T * H * D), H * D, D, H);
        }
      } finally {
        release(qkv);
        release(P);
      }
    },

    attentionBackwardBf16(dout, saved, stats, dq, dk, dv, B, T, H, D, scale, accumulate) {
      const n = B * T * H * D, rows = B * H * T, TD = T * D, TT = T * T, BH = B * H;
      check('attentionBackwardBf16', B, T, H, D, [['dout', dout, n], ['saved', saved, Math.ceil((3 * n) / 2)], ['stats', stats, 2 * rows], ['dq', dq, n], ['dk', dk, n], ['dv', dv, n]]);
      if (n === 0 || (!dq && !dk && !dv)) return;
      const qkv = acquire(3 * n, false), g = acquire(n, false), grad = acquire(n, false), P = acquire(rows * T, false), sq = acquire(rows * T, false);
      try {
        widenBf16(saved, qkv, 3 * n);
        const [qh, kh, vh] = [0, 1, 2].map((i) => qkv.subarray(i * n, (i + 1) * n));
        toHeadMajor(dout, g, B, T, H, D);
        roundBf16(g, g, n);
        probabilities(gemm, qh, kh, P, stats, true, BH, T, D, scale);
        if (dv) {
          roundBf16(P, sq, rows * T);
          gemm(true, false, T, D, T, 1, sq, T, TT, g, D, TD, 0, grad, D, TD, BH);
          toActivations(grad, dv, B, T, H, D, accumulate);
        }
        if (!dq && !dk) return;
        gemm(false, true, T, T, D, 1, g, D, TD, vh, D, TD, 0, sq, T, TT, BH);
        for (let r = 0; r < rows; r++) {
          const t = r % T, ds = sq.subarray(r * T, (r + 1) * T), p = P.subarray(r * T, (r + 1) * T);
          let dot = 0;
          for (let s = 0; s <= t; s++) dot += ds[s] * p[s];
          const fdot = Math.fround(dot);
          for (let s = 0; s <= t; s++) ds[s] = Math.fround(p[s] * Math.fround(ds[s] - fdot)) * scale;
          ds.fill(0, t + 1);
        }
        roundBf16(sq, sq, rows * T);
        if (dq) {
          gemm(false, false, T, D, T, 1, sq, T, TT, kh, D, TD, 0, grad, D, TD, BH);
          toActivations(grad, dq, B, T, H, D, accumulate);
        }
        if (dk) {
          gemm(true, false, T, D, T, 1, sq, T, TT, qh, D, TD, 0, grad, D, TD, BH);
          toActivations(grad, dk, B, T, H, D, accumulate);
        }
      } finally {
        for (const a of [qkv, g, grad, P, sq]) release(a);
      }
    },
  };
}
