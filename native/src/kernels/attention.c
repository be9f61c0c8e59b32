/*
 * Causal multi-head attention on [B, T, H, D] activations, one (batch, head) pair at a time.
 * Each pair is a strided T×D matrix (row stride H*D), so the products go straight to SGEMM with
 * lda = H*D and nothing is copied. Query rows are processed in blocks of ROW_BLOCK so the causal
 * structure skips most of the upper triangle: block [t0, t1) only needs keys [0, t1).
 * Pairs run in parallel (their SGEMM calls then run single-threaded inside the team).
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "fast_exp.h"
#include "kernels.h"
#include "simd.h"

/* 64 measured best at T = 256, D = 64 (llama_60m): 25% less attention time than one 256-row block,
 * which computed the whole upper triangle; 32-row blocks lose it again to per-call overhead. */
#define ROW_BLOCK 64

/* Whether to spread (b, h) pairs over threads, or leave the threads to each SGEMM. */
static int pairs_in_parallel(int64_t pairs) { return pairs >= omp_get_max_threads(); }

/* Softmax over s <= t of each row in [t0, t1) of the scaled scores P (row stride T), zeroing s > t. */
RELORA_CLONES static void causal_softmax_rows(float *P, int64_t T, int64_t t0, int64_t t1) {
  for (int64_t t = t0; t < t1; t++) {
    float *row = P + t * T;
    float max = -INFINITY;
#pragma omp simd reduction(max : max)
    for (int64_t s = 0; s <= t; s++) max = row[s] > max ? row[s] : max;
    /* Separate exp and sum loops: fused, GCC 12 left the loop scalar. */
#pragma omp simd
    for (int64_t s = 0; s <= t; s++) row[s] = relora_expf(row[s] - max);
    double denom = 0.0;
#pragma omp simd reduction(+ : denom)
    for (int64_t s = 0; s <= t; s++) denom += row[s];
    float inv = (float)(1.0 / denom);
#pragma omp simd
    for (int64_t s = 0; s <= t; s++) row[s] *= inv;
    for (int64_t s = t + 1; s < T; s++) row[s] = 0.0f;
  }
}

int relora_attention_forward(const float *q, const float *k, const float *v, float *out, float *probs, int64_t B,
                             int64_t T, int64_t H, int64_t D, float scale) {
  const int64_t HD = H * D, pairs = B * H;
  int status = 0;
#pragma omp parallel for schedule(dynamic) if (pairs_in_parallel(pairs))
  for (int64_t bh = 0; bh < pairs; bh++) {
    int64_t b = bh / H, h = bh % H;
    const float *qb = q + b * T * HD + h * D, *kb = k + b * T * HD + h * D, *vb = v + b * T * HD + h * D;
    float *ob = out + b * T * HD + h * D, *P = probs + bh * T * T;
    for (int64_t t0 = 0; t0 < T; t0 += ROW_BLOCK) {
      int64_t t1 = t0 + ROW_BLOCK < T ? t0 + ROW_BLOCK : T, rows = t1 - t0;
      int st = relora_sgemm(0, 1, rows, t1, D, scale, qb + t0 * HD, HD, kb, HD, 0.0f, P + t0 * T, T);
      causal_softmax_rows(P, T, t0, t1);
      st |= relora_sgemm(0, 0, rows, D, t1, 1.0f, P + t0 * T, T, vb, HD, 0.0f, ob + t0 * HD, HD);
      if (st) {
#pragma omp atomic write
        status = st;
      }
    }
  }
  return status;
}

int relora_attention_backward(const float *dout, const float *q, const float *k, const float *v, const float *probs,
                              float *dq, float *dk, float *dv, int64_t B, int64_t T, int64_t H, int64_t D, float scale) {
  const int64_t HD = H * D, pairs = B * H;
  if (pairs == 0 || T == 0 || D == 0 || (!dq && !dk && !dv)) return 0;
  int need_ds = dq || dk;
  int par = pairs_in_parallel(pairs);
  /* One ROW_BLOCK×T scratch block of dS per thread. */
  int64_t scratch_rows = T < ROW_BLOCK ? T : ROW_BLOCK;
  int threads = par ? omp_get_max_threads() : 1;
  float *scratch = need_ds ? malloc((size_t)threads * (size_t)(scratch_rows * T) * sizeof(float)) : NULL;
  if (need_ds && !scratch) return RELORA_ENOMEM;
  int status = 0;
#pragma omp parallel for schedule(dynamic) if (par)
  for (int64_t bh = 0; bh < pairs; bh++) {
    int64_t b = bh / H, h = bh % H, base = b * T * HD + h * D;
    const float *gb = dout + base, *qb = q + base, *kb = k + base, *vb = v + base, *P = probs + bh * T * T;
    float *dS = need_ds ? scratch + (int64_t)(par ? omp_get_thread_num() : 0) * scratch_rows * T : NULL;
    int st = 0;
    for (int64_t t0 = 0; t0 < T; t0 += ROW_BLOCK) {
      int64_t t1 = t0 + ROW_BLOCK < T ? t0 + ROW_BLOCK : T, rows = t1 - t0;
      const float *Pb = P + t0 * T;
      /* dv[0:t1] += P[t0:t1, 0:t1]ᵀ · dout[t0:t1] */
      if (dv) st |= relora_sgemm(1, 0, t1, D, rows, 1.0f, Pb, T, gb + t0 * HD, HD, 1.0f, dv + base, HD);
      if (!need_ds) continue;
      /* dP = dout · vᵀ, then dS = scale * P ∘ (dP − rowsum(dP ∘ P)), zero above the diagonal. */
      st |= relora_sgemm(0, 1, rows, t1, D, 1.0f, gb + t0 * HD, HD, vb, HD, 0.0f, dS, T);
      for (int64_t t = t0; t < t1; t++) {
        float *ds = dS + (t - t0) * T;
        const float *p = P + t * T;
        double dot = 0.0;
#pragma omp simd reduction(+ : dot)
        for (int64_t s = 0; s <= t; s++) dot += (double)ds[s] * (double)p[s];
        float fdot = (float)dot;
#pragma omp simd
        for (int64_t s = 0; s <= t; s++) ds[s] = p[s] * (ds[s] - fdot) * scale;
        for (int64_t s = t + 1; s < t1; s++) ds[s] = 0.0f;
      }
      /* dq[t0:t1] += dS · k[0:t1];  dk[0:t1] += dSᵀ · q[t0:t1] */
      if (dq) st |= relora_sgemm(0, 0, rows, D, t1, 1.0f, dS, T, kb, HD, 1.0f, dq + base + t0 * HD, HD);
      if (dk) st |= relora_sgemm(1, 0, t1, D, rows, 1.0f, dS, T, qb + t0 * HD, HD, 1.0f, dk + base, HD);
    }
    if (st) {
#pragma omp atomic write
      status = st;
    }
  }
  free(scratch);
  return status;
}
