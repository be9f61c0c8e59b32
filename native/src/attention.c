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

#include "args.h"
#include "fast_exp.h"
#include "gemm.h"
#include "kernels.h"
#include "simd.h"

/* 64 measured best at T = 256, D = 64 (llama_60m): 25% less attention time than one 256-row block,
 * which computed the whole upper triangle; 32-row blocks lose it again to per-call overhead. */
#define ROW_BLOCK 64

typedef struct {
  int64_t B, T, H, D;
  float scale;
} attn_dims;

static int attention_dims(napi_env env, napi_value *a, const char *k, int first, attn_dims *d, int64_t *n,
                          int64_t *np) {
  double scale;
  int64_t bh;
  if (!arg_size(env, a[first], k, "B", &d->B) || !arg_size(env, a[first + 1], k, "T", &d->T) ||
      !arg_size(env, a[first + 2], k, "H", &d->H) || !arg_size(env, a[first + 3], k, "D", &d->D) ||
      !arg_double(env, a[first + 4], k, "scale", &scale) || !mul_size(env, k, d->B, d->T, n) ||
      !mul_size(env, k, *n, d->H, n) || !mul_size(env, k, *n, d->D, n) || !mul_size(env, k, d->B, d->H, &bh) ||
      !mul_size(env, k, bh, d->T, np) || !mul_size(env, k, *np, d->T, np)) {
    return 0;
  }
  d->scale = (float)scale;
  return 1;
}

/* Whether to spread (b, h) pairs over threads, or leave the threads to each SGEMM. */
static int pairs_in_parallel(const attn_dims *d) { return d->B * d->H >= omp_get_max_threads(); }

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

napi_value napi_attention_forward(napi_env env, napi_callback_info info) {
  const char *k = "attentionForward";
  napi_value a[10];
  float *q, *kk, *v, *out, *probs;
  size_t nq, nk, nv, nout, nprobs;
  attn_dims d;
  int64_t n, np;
  if (!args_get(env, info, k, 10, a) || !arg_f32(env, a[0], k, "q", &q, &nq) ||
      !arg_f32(env, a[1], k, "k", &kk, &nk) || !arg_f32(env, a[2], k, "v", &v, &nv) ||
      !arg_f32(env, a[3], k, "out", &out, &nout) || !arg_f32(env, a[4], k, "probs", &probs, &nprobs) ||
      !attention_dims(env, a, k, 5, &d, &n, &np) || !require_len(env, k, "q", nq, n, "B*T*H*D") ||
      !require_len(env, k, "k", nk, n, "B*T*H*D") || !require_len(env, k, "v", nv, n, "B*T*H*D") ||
      !require_len(env, k, "out", nout, n, "B*T*H*D") || !require_len(env, k, "probs", nprobs, np, "B*H*T*T")) {
    return NULL;
  }
  const int64_t T = d.T, H = d.H, D = d.D, HD = H * D, pairs = d.B * H;
  int status = 0;
#pragma omp parallel for schedule(dynamic) if (pairs_in_parallel(&d))
  for (int64_t bh = 0; bh < pairs; bh++) {
    int64_t b = bh / H, h = bh % H;
    const float *qb = q + b * T * HD + h * D, *kb = kk + b * T * HD + h * D, *vb = v + b * T * HD + h * D;
    float *ob = out + b * T * HD + h * D, *P = probs + bh * T * T;
    for (int64_t t0 = 0; t0 < T; t0 += ROW_BLOCK) {
      int64_t t1 = t0 + ROW_BLOCK < T ? t0 + ROW_BLOCK : T, rows = t1 - t0;
      int st = relora_sgemm(0, 1, rows, t1, D, d.scale, qb + t0 * HD, HD, kb, HD, 0.0f, P + t0 * T, T);
      causal_softmax_rows(P, T, t0, t1);
      st |= relora_sgemm(0, 0, rows, D, t1, 1.0f, P + t0 * T, T, vb, HD, 0.0f, ob + t0 * HD, HD);
      if (st) {
#pragma omp atomic write
        status = st;
      }
    }
  }
  if (status) throw_error(env, k, "%s sgemm failed with status %d", relora_blas_name(), status);
  return NULL;
}

napi_value napi_attention_backward(napi_env env, napi_callback_info info) {
  const char *k = "attentionBackward";
  napi_value a[13];
  float *dout, *q, *kk, *v, *probs, *dq, *dk, *dv;
  size_t ndout, nq, nk, nv, nprobs, ndq, ndk, ndv;
  attn_dims d;
  int64_t n, np;
  if (!args_get(env, info, k, 13, a) || !arg_f32(env, a[0], k, "dout", &dout, &ndout) ||
      !arg_f32(env, a[1], k, "q", &q, &nq) || !arg_f32(env, a[2], k, "k", &kk, &nk) ||
      !arg_f32(env, a[3], k, "v", &v, &nv) || !arg_f32(env, a[4], k, "probs", &probs, &nprobs) ||
      !arg_f32_or_null(env, a[5], k, "dq", &dq, &ndq) || !arg_f32_or_null(env, a[6], k, "dk", &dk, &ndk) ||
      !arg_f32_or_null(env, a[7], k, "dv", &dv, &ndv) || !attention_dims(env, a, k, 8, &d, &n, &np) ||
      !require_len(env, k, "dout", ndout, n, "B*T*H*D") || !require_len(env, k, "q", nq, n, "B*T*H*D") ||
      !require_len(env, k, "k", nk, n, "B*T*H*D") || !require_len(env, k, "v", nv, n, "B*T*H*D") ||
      !require_len(env, k, "probs", nprobs, np, "B*H*T*T") ||
      (dq && !require_len(env, k, "dq", ndq, n, "B*T*H*D")) ||
      (dk && !require_len(env, k, "dk", ndk, n, "B*T*H*D")) ||
      (dv && !require_len(env, k, "dv", ndv, n, "B*T*H*D"))) {
    return NULL;
  }
  const int64_t T = d.T, H = d.H, D = d.D, HD = H * D, pairs = d.B * H;
  if (pairs == 0 || T == 0 || D == 0 || (!dq && !dk && !dv)) return NULL;
  int need_ds = dq || dk;
  int par = pairs_in_parallel(&d);
  /* One ROW_BLOCK×T scratch block of dS per thread. */
  int64_t scratch_rows = T < ROW_BLOCK ? T : ROW_BLOCK;
  int threads = par ? omp_get_max_threads() : 1;
  float *scratch = need_ds ? malloc((size_t)threads * (size_t)(scratch_rows * T) * sizeof(float)) : NULL;
  if (need_ds && !scratch) {
    throw_error(env, k, "could not allocate %lld floats of scratch", (long long)(threads * scratch_rows * T));
    return NULL;
  }
  int status = 0;
#pragma omp parallel for schedule(dynamic) if (par)
  for (int64_t bh = 0; bh < pairs; bh++) {
    int64_t b = bh / H, h = bh % H, base = b * T * HD + h * D;
    const float *gb = dout + base, *qb = q + base, *kb = kk + base, *vb = v + base, *P = probs + bh * T * T;
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
        for (int64_t s = 0; s <= t; s++) ds[s] = p[s] * (ds[s] - fdot) * d.scale;
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
  if (status) throw_error(env, k, "%s sgemm failed with status %d", relora_blas_name(), status);
  return NULL;
}
