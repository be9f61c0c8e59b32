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
#include <string.h>

#include "fast_exp.h"
#include "kernels.h"
#include "simd.h"

/* 64 measured best at T = 256, D = 64 (llama_60m): 25% less attention time than one 256-row block,
 * which computed the whole upper triangle; 32-row blocks lose it again to per-call overhead. */
#define ROW_BLOCK 64

/* Whether to spread (b, h) pairs over threads, or leave the threads to each SGEMM. */
static int pairs_in_parallel(int64_t pairs) { return pairs >= omp_get_max_threads(); }

/* The row loops of the softmax and its backward, each its own cloned function: GCC 12 vectorised
 * them one by one, but left the body that held them all (max, exp, sum, scale) mostly scalar —
 * 2.6× slower. n = t + 1 entries of a causal row. */
RELORA_CLONES static float row_max(const float *row, int64_t n) {
  float max = -INFINITY;
#pragma omp simd reduction(max : max)
  for (int64_t s = 0; s < n; s++) max = row[s] > max ? row[s] : max;
  return max;
}

RELORA_CLONES static void row_exp_minus(float *row, int64_t n, float max) {
#pragma omp simd
  for (int64_t s = 0; s < n; s++) row[s] = relora_expf(row[s] - max);
}

RELORA_CLONES static double row_sum(const float *row, int64_t n) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t s = 0; s < n; s++) sum += row[s];
  return sum;
}

RELORA_CLONES static double row_dot(const float *a, const float *b, int64_t n) {
  double dot = 0.0;
#pragma omp simd reduction(+ : dot)
  for (int64_t s = 0; s < n; s++) dot += (double)a[s] * (double)b[s];
  return dot;
}

RELORA_CLONES static void row_scale(float *row, int64_t n, float scale) {
#pragma omp simd
  for (int64_t s = 0; s < n; s++) row[s] *= scale;
}

RELORA_CLONES static void row_softmax_grad(float *ds, const float *p, int64_t n, float dot, float scale) {
#pragma omp simd
  for (int64_t s = 0; s < n; s++) ds[s] = p[s] * (ds[s] - dot) * scale;
}

RELORA_CLONES double relora_exp_minus_sum(float *x, int64_t n, float max) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t s = 0; s < n; s++) {
    float e = relora_expf(x[s] - max);
    x[s] = e;
    sum += e;
  }
  return sum;
}

/* p[s] = bf16(e[s] · inv) for s < n, and 0 on [n, T). */
RELORA_CLONES static void row_scale_to_bf16(const float *e, int64_t n, int64_t T, float inv, uint16_t *p) {
#pragma omp simd
  for (int64_t s = 0; s < n; s++) p[s] = relora_bf16_of(e[s] * inv);
  memset(p + n, 0, (size_t)(T - n) * sizeof *p);
}

/* row[s] = exp(row[s] − max) · inv for s < n — the forward's e[s] · inv, bit for bit — and, when pb
 * is given, pb[s] = bf16 of it, 0 on [n, T). */
RELORA_CLONES static void row_replay(float *row, int64_t n, int64_t T, float max, float inv, uint16_t *pb) {
  if (!pb) {
#pragma omp simd
    for (int64_t s = 0; s < n; s++) row[s] = relora_expf(row[s] - max) * inv;
    return;
  }
#pragma omp simd
  for (int64_t s = 0; s < n; s++) {
    float p = relora_expf(row[s] - max) * inv;
    row[s] = p;
    pb[s] = relora_bf16_of(p);
  }
  memset(pb + n, 0, (size_t)(T - n) * sizeof *pb);
}

/* dsb[s] = bf16(p[s] · (dp[s] − dot) · scale) for s < n, 0 on [n, T). */
RELORA_CLONES static void row_softmax_grad_to_bf16(const float *dp, const float *p, int64_t n, int64_t T, float dot,
                                                   float scale, uint16_t *dsb) {
#pragma omp simd
  for (int64_t s = 0; s < n; s++) dsb[s] = relora_bf16_of(p[s] * (dp[s] - dot) * scale);
  memset(dsb + n, 0, (size_t)(T - n) * sizeof *dsb);
}

/* Causal softmax of score row t (row[0..t]; row[t+1..T) zeroed), in place: row = exp(row − max) · inv.
 * stats, when given, gets {max, inv}. */
void relora_causal_softmax_row(float *row, int64_t t, int64_t T, float *stats) {
  float max = row_max(row, t + 1);
  row_exp_minus(row, t + 1, max);
  float inv = (float)(1.0 / row_sum(row, t + 1));
  row_scale(row, t + 1, inv);
  memset(row + t + 1, 0, (size_t)(T - t - 1) * sizeof(float));
  if (stats) stats[0] = max, stats[1] = inv;
}

/* The bf16 variants below run their loops over row t's first `width` entries, a whole number of
 * 16-float vectors past the diagonal, with the scores there set to −∞ (so P is 0 there): a row's
 * last, partial vector then takes the vector loop rather than a scalar remainder, which cost more
 * than the rest of the row. */
static int64_t vector_width(int64_t t, int64_t T) {
  int64_t w = (t / 16 + 1) * 16;
  return w < T ? w : T;
}

static void mask_above_diagonal(float *row, int64_t t, int64_t width) {
  for (int64_t s = t + 1; s < width; s++) row[s] = -INFINITY;
}

/* The bf16 kernel's forward softmax of score row t: stats gets {max, inv}, p gets bf16(P) over the
 * whole row (zero above the diagonal); row is left holding exp(row − max), which P would be after
 * one more pass that only the rounding needed. */
void relora_causal_softmax_row_bf16(float *row, int64_t t, int64_t T, float *stats, uint16_t *p) {
  const int64_t width = vector_width(t, T);
  mask_above_diagonal(row, t, width);
  float max = row_max(row, width);
  float inv = (float)(1.0 / relora_exp_minus_sum(row, width, max));
  row_scale_to_bf16(row, width, T, inv, p);
  stats[0] = max, stats[1] = inv;
}

/* P's row t again from the same scores and its stats, bit for bit: row[0..t] = P (0 a little way
 * past the diagonal, the rest left as it was), and with pb, bf16(P) over the whole row. */
void relora_causal_softmax_replay(float *row, int64_t t, int64_t T, const float *stats, uint16_t *pb) {
  const int64_t width = vector_width(t, T);
  mask_above_diagonal(row, t, width);
  row_replay(row, width, T, stats[0], stats[1], pb);
}

/* Softmax's backward for query row t: ds[s] = scale · p[s] · (ds[s] − Σ_s' ds[s']·p[s']) over s <= t,
 * where ds holds dP on entry; zeroes ds[t+1 .. end). */
void relora_causal_softmax_grad_row(float *ds, const float *p, int64_t t, int64_t end, float scale) {
  row_softmax_grad(ds, p, t + 1, (float)row_dot(ds, p, t + 1), scale);
  memset(ds + t + 1, 0, (size_t)(end - t - 1) * sizeof(float));
}

/* The same backward with the result rounded: dsb = bf16(dS) over the whole row (zero above the
 * diagonal), from dP and the replay's P of row t. */
void relora_causal_softmax_grad_row_bf16(const float *dp, const float *p, int64_t t, int64_t T, float scale, uint16_t *dsb) {
  /* p is replay's row: 0 up to the vector width past the diagonal, where dP is finite (g·vᵀ). */
  const int64_t width = vector_width(t, T);
  row_softmax_grad_to_bf16(dp, p, width, T, (float)row_dot(dp, p, width), scale, dsb);
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
      for (int64_t t = t0; t < t1; t++) relora_causal_softmax_row(P + t * T, t, T, NULL);
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
      for (int64_t t = t0; t < t1; t++) relora_causal_softmax_grad_row(dS + (t - t0) * T, P + t * T, t, t1, scale);
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
