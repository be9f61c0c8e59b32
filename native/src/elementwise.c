/* Vector arithmetic and reductions over flat Float32Arrays. */
#include <stdint.h>

#include "args.h"
#include "kernels.h"

/* Parses (x0, ..., n) where every listed array must hold at least n elements. */
static int vec_args(napi_env env, napi_value *a, const char *k, int narrays, const char *const *names,
                    float **ptrs, int n_index, int64_t *n) {
  if (!arg_size(env, a[n_index], k, "n", n)) return 0;
  for (int i = 0; i < narrays; i++) {
    size_t len;
    if (!arg_f32(env, a[i], k, names[i], &ptrs[i], &len) || !require_len(env, k, names[i], len, *n, "n")) return 0;
  }
  return 1;
}

static napi_value binary_op(napi_env env, napi_callback_info info, const char *k, int is_mul) {
  napi_value a[4];
  float *p[3];
  int64_t n;
  static const char *const names[] = {"a", "b", "out"};
  if (!args_get(env, info, k, 4, a) || !vec_args(env, a, k, 3, names, p, 3, &n)) return NULL;
  const float *x = p[0], *y = p[1];
  float *out = p[2];
  if (is_mul) {
    RELORA_PAR_SIMD_FOR(i, n, out[i] = x[i] * y[i]);
  } else {
    RELORA_PAR_SIMD_FOR(i, n, out[i] = x[i] + y[i]);
  }
  return NULL;
}

napi_value napi_add(napi_env env, napi_callback_info info) { return binary_op(env, info, "add", 0); }
napi_value napi_mul(napi_env env, napi_callback_info info) { return binary_op(env, info, "mul", 1); }

napi_value napi_scale(napi_env env, napi_callback_info info) {
  const char *k = "scale";
  napi_value a[4];
  float *x, *out;
  size_t nx, nout;
  int64_t n;
  double s;
  if (!args_get(env, info, k, 4, a) || !arg_f32(env, a[0], k, "a", &x, &nx) ||
      !arg_double(env, a[1], k, "s", &s) || !arg_f32(env, a[2], k, "out", &out, &nout) ||
      !arg_size(env, a[3], k, "n", &n) || !require_len(env, k, "a", nx, n, "n") ||
      !require_len(env, k, "out", nout, n, "n")) {
    return NULL;
  }
  float sf = (float)s;
  RELORA_PAR_SIMD_FOR(i, n, out[i] = x[i] * sf);
  return NULL;
}

napi_value napi_axpy(napi_env env, napi_callback_info info) {
  const char *k = "axpy";
  napi_value a[4];
  float *x, *y;
  size_t nx, ny;
  int64_t n;
  double alpha;
  if (!args_get(env, info, k, 4, a) || !arg_double(env, a[0], k, "alpha", &alpha) ||
      !arg_f32(env, a[1], k, "x", &x, &nx) || !arg_f32(env, a[2], k, "y", &y, &ny) ||
      !arg_size(env, a[3], k, "n", &n) || !require_len(env, k, "x", nx, n, "n") ||
      !require_len(env, k, "y", ny, n, "n")) {
    return NULL;
  }
  float af = (float)alpha;
  RELORA_PAR_SIMD_FOR(i, n, y[i] += af * x[i]);
  return NULL;
}

napi_value napi_add_scalar(napi_env env, napi_callback_info info) {
  const char *k = "addScalar";
  napi_value a[3];
  float *out;
  size_t nout;
  int64_t n;
  double value;
  if (!args_get(env, info, k, 3, a) || !arg_f32(env, a[0], k, "out", &out, &nout) ||
      !arg_double(env, a[1], k, "value", &value) || !arg_size(env, a[2], k, "n", &n) ||
      !require_len(env, k, "out", nout, n, "n")) {
    return NULL;
  }
  float v = (float)value;
  RELORA_PAR_SIMD_FOR(i, n, out[i] += v);
  return NULL;
}

napi_value napi_fill(napi_env env, napi_callback_info info) {
  const char *k = "fill";
  napi_value a[3];
  float *out;
  size_t nout;
  int64_t n;
  double value;
  if (!args_get(env, info, k, 3, a) || !arg_f32(env, a[0], k, "out", &out, &nout) ||
      !arg_double(env, a[1], k, "value", &value) || !arg_size(env, a[2], k, "n", &n) ||
      !require_len(env, k, "out", nout, n, "n")) {
    return NULL;
  }
  float v = (float)value;
  RELORA_PAR_SIMD_FOR(i, n, out[i] = v);
  return NULL;
}

static double sum_span(const float *x, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; i++) acc += (double)x[i];
  return acc;
}

static double sum_squares_span(const float *x, int64_t n) {
  double acc = 0.0;
#pragma omp simd reduction(+ : acc)
  for (int64_t i = 0; i < n; i++) acc += (double)x[i] * (double)x[i];
  return acc;
}

static napi_value reduce(napi_env env, napi_callback_info info, const char *k, int squares) {
  napi_value a[2];
  float *x;
  size_t nx;
  int64_t n;
  if (!args_get(env, info, k, 2, a) || !arg_f32(env, a[0], k, "x", &x, &nx) ||
      !arg_size(env, a[1], k, "n", &n) || !require_len(env, k, "x", nx, n, "n")) {
    return NULL;
  }
  double acc = 0.0;
  if (n < RELORA_PAR_MIN) {
    acc = squares ? sum_squares_span(x, n) : sum_span(x, n);
  } else {
#pragma omp parallel for reduction(+ : acc)
    for (int64_t b = 0; b < n; b += RELORA_PAR_MIN) {
      int64_t len = n - b < RELORA_PAR_MIN ? n - b : RELORA_PAR_MIN;
      acc += squares ? sum_squares_span(x + b, len) : sum_span(x + b, len);
    }
  }
  napi_value out;
  napi_create_double(env, acc, &out);
  return out;
}

napi_value napi_sum(napi_env env, napi_callback_info info) { return reduce(env, info, "sum", 0); }
napi_value napi_sum_squares(napi_env env, napi_callback_info info) { return reduce(env, info, "sumSquares", 1); }
