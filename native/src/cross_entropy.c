/* Fused log-softmax + negative log-likelihood over the rows of [rows, V] logits. */
#include <math.h>
#include <stdint.h>

#include "args.h"
#include "fast_exp.h"
#include "kernels.h"
#include "simd.h"

/* log(sum(exp(x[0..V)))), shifted by the row maximum so nothing overflows. */
RELORA_CLONES static double row_logsumexp(const float *x, int64_t V) {
  float max = -INFINITY;
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < V; j++) max = x[j] > max ? x[j] : max;
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < V; j++) s += (double)relora_expf(x[j] - max);
  return (double)max + log(s);
}

/* d[j] += gs * softmax(x)[j], with the row's log-sum-exp from the forward pass. */
RELORA_CLONES static void row_softmax_grad(const float *x, float lse, float gs, float *d, int64_t V) {
#pragma omp simd
  for (int64_t j = 0; j < V; j++) d[j] += gs * relora_expf(x[j] - lse);
}

/* d[j] = gs * softmax(x)[j]: the same, written into a buffer that holds garbage. */
RELORA_CLONES static void row_softmax_grad_write(const float *x, float lse, float gs, float *d, int64_t V) {
#pragma omp simd
  for (int64_t j = 0; j < V; j++) d[j] = gs * relora_expf(x[j] - lse);
}

/* Parses the arguments both passes share and rejects bad targets before anything is written. */
static int xent_args(napi_env env, napi_value *a, const char *k, float **logits, int32_t **targets,
                     int64_t *rows, int64_t *V, int64_t *ignore, int rows_i, int v_i, int ignore_i) {
  size_t nl, nt;
  int64_t n;
  if (!arg_f32(env, a[0], k, "logits", logits, &nl) || !arg_i32(env, a[1], k, "targets", targets, &nt) ||
      !arg_size(env, a[rows_i], k, "rows", rows) || !arg_size(env, a[v_i], k, "V", V) ||
      !arg_int(env, a[ignore_i], k, "ignoreIndex", ignore) || !mul_size(env, k, *rows, *V, &n) ||
      !require_len(env, k, "logits", nl, n, "rows*V") || !require_len(env, k, "targets", nt, *rows, "rows")) {
    return 0;
  }
  for (int64_t r = 0; r < *rows; r++) {
    int32_t t = (*targets)[r];
    if (t != *ignore && (t < 0 || (int64_t)t >= *V)) {
      return throw_error(env, k, "target %d at row %lld is outside [0, %lld) and is not the ignore index %lld",
                         t, (long long)r, (long long)*V, (long long)*ignore);
    }
  }
  return 1;
}

napi_value napi_cross_entropy_forward(napi_env env, napi_callback_info info) {
  const char *k = "crossEntropyForward";
  napi_value a[7];
  float *logits, *losses, *lse;
  int32_t *targets;
  size_t nlosses, nlse;
  int64_t rows, V, ignore;
  if (!args_get(env, info, k, 7, a) || !xent_args(env, a, k, &logits, &targets, &rows, &V, &ignore, 4, 5, 6) ||
      !arg_f32(env, a[2], k, "losses", &losses, &nlosses) || !arg_f32(env, a[3], k, "lse", &lse, &nlse) ||
      !require_len(env, k, "losses", nlosses, rows, "rows") || !require_len(env, k, "lse", nlse, rows, "rows")) {
    return NULL;
  }
  int64_t count = 0;
#pragma omp parallel for reduction(+ : count) if (rows * V >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    double l = row_logsumexp(logits + r * V, V);
    lse[r] = (float)l;
    int32_t t = targets[r];
    if (t == ignore) {
      losses[r] = 0.0f;
    } else {
      losses[r] = (float)(l - (double)logits[r * V + t]);
      count++;
    }
  }
  napi_value out;
  napi_create_double(env, (double)count, &out);
  return out;
}

/* write = 0: dLogits += gradient (the Kernels contract); write = 1: dLogits = gradient, ignored rows
 * zeroed, so a fresh buffer needs no clearing pass (crossEntropyBackwardWrite, a fused kernel). */
static napi_value xent_backward(napi_env env, napi_callback_info info, const char *k, int write) {
  napi_value a[8];
  float *logits, *lse, *dlogits;
  int32_t *targets;
  size_t nlse, nd;
  int64_t rows, V, ignore;
  double grad_scale;
  if (!args_get(env, info, k, 8, a) || !xent_args(env, a, k, &logits, &targets, &rows, &V, &ignore, 4, 5, 6) ||
      !arg_f32(env, a[2], k, "lse", &lse, &nlse) || !arg_f32(env, a[3], k, "dLogits", &dlogits, &nd) ||
      !arg_double(env, a[7], k, "gradScale", &grad_scale) || !require_len(env, k, "lse", nlse, rows, "rows") ||
      !require_len(env, k, "dLogits", nd, rows * V, "rows*V")) {
    return NULL;
  }
  float gs = (float)grad_scale;
#pragma omp parallel for if (rows * V >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int32_t t = targets[r];
    float *d = dlogits + r * V;
    if (t == ignore) {
      if (write) for (int64_t j = 0; j < V; j++) d[j] = 0.0f;
      continue;
    }
    if (write) row_softmax_grad_write(logits + r * V, lse[r], gs, d, V);
    else row_softmax_grad(logits + r * V, lse[r], gs, d, V);
    d[t] -= gs;
  }
  return NULL;
}

napi_value napi_cross_entropy_backward(napi_env env, napi_callback_info info) {
  return xent_backward(env, info, "crossEntropyBackward", 0);
}

napi_value napi_cross_entropy_backward_write(napi_env env, napi_callback_info info) {
  return xent_backward(env, info, "crossEntropyBackwardWrite", 1);
}
