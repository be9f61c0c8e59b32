/* Bindings for vector arithmetic and reductions over flat Float32Arrays. */
#include <stdint.h>

#include "../kernels/kernels.h"
#include "args.h"
#include "bindings.h"

/* (a, b, out, n): two inputs and an output of at least n elements each. */
static int binary_args(napi_env env, napi_callback_info info, const char *k, float **x, float **y, float **out,
                       int64_t *n) {
  napi_value a[4];
  size_t nx, ny, nout;
  return args_get(env, info, k, 4, a) && arg_f32(env, a[0], k, "a", x, &nx) && arg_f32(env, a[1], k, "b", y, &ny) &&
         arg_f32(env, a[2], k, "out", out, &nout) && arg_size(env, a[3], k, "n", n) &&
         require_len(env, k, "a", nx, *n, "n") && require_len(env, k, "b", ny, *n, "n") &&
         require_len(env, k, "out", nout, *n, "n");
}

napi_value napi_add(napi_env env, napi_callback_info info) {
  float *x, *y, *out;
  int64_t n;
  if (binary_args(env, info, "add", &x, &y, &out, &n)) relora_add(x, y, out, n);
  return NULL;
}

napi_value napi_mul(napi_env env, napi_callback_info info) {
  float *x, *y, *out;
  int64_t n;
  if (binary_args(env, info, "mul", &x, &y, &out, &n)) relora_mul(x, y, out, n);
  return NULL;
}

napi_value napi_scale(napi_env env, napi_callback_info info) {
  const char *k = "scale";
  napi_value a[4];
  float *x, *out;
  size_t nx, nout;
  int64_t n;
  double s;
  if (args_get(env, info, k, 4, a) && arg_f32(env, a[0], k, "a", &x, &nx) && arg_double(env, a[1], k, "s", &s) &&
      arg_f32(env, a[2], k, "out", &out, &nout) && arg_size(env, a[3], k, "n", &n) &&
      require_len(env, k, "a", nx, n, "n") && require_len(env, k, "out", nout, n, "n")) {
    relora_scale(x, (float)s, out, n);
  }
  return NULL;
}

napi_value napi_axpy(napi_env env, napi_callback_info info) {
  const char *k = "axpy";
  napi_value a[4];
  float *x, *y;
  size_t nx, ny;
  int64_t n;
  double alpha;
  if (args_get(env, info, k, 4, a) && arg_double(env, a[0], k, "alpha", &alpha) &&
      arg_f32(env, a[1], k, "x", &x, &nx) && arg_f32(env, a[2], k, "y", &y, &ny) && arg_size(env, a[3], k, "n", &n) &&
      require_len(env, k, "x", nx, n, "n") && require_len(env, k, "y", ny, n, "n")) {
    relora_axpy((float)alpha, x, y, n);
  }
  return NULL;
}

/* (out, value, n), shared by addScalar and fill. */
static int out_value_args(napi_env env, napi_callback_info info, const char *k, float **out, float *value, int64_t *n) {
  napi_value a[3];
  size_t nout;
  double v;
  if (!args_get(env, info, k, 3, a) || !arg_f32(env, a[0], k, "out", out, &nout) ||
      !arg_double(env, a[1], k, "value", &v) || !arg_size(env, a[2], k, "n", n) ||
      !require_len(env, k, "out", nout, *n, "n")) {
    return 0;
  }
  *value = (float)v;
  return 1;
}

napi_value napi_add_scalar(napi_env env, napi_callback_info info) {
  float *out, v;
  int64_t n;
  if (out_value_args(env, info, "addScalar", &out, &v, &n)) relora_add_scalar(out, v, n);
  return NULL;
}

napi_value napi_fill(napi_env env, napi_callback_info info) {
  float *out, v;
  int64_t n;
  if (out_value_args(env, info, "fill", &out, &v, &n)) relora_fill(out, v, n);
  return NULL;
}

/* (x, n) -> a float64 reduction of x[0..n). */
static napi_value reduce_entry(napi_env env, napi_callback_info info, const char *k, double (*reduce)(const float *, int64_t)) {
  napi_value a[2], out;
  float *x;
  size_t nx;
  int64_t n;
  if (!args_get(env, info, k, 2, a) || !arg_f32(env, a[0], k, "x", &x, &nx) || !arg_size(env, a[1], k, "n", &n) ||
      !require_len(env, k, "x", nx, n, "n")) {
    return NULL;
  }
  napi_create_double(env, reduce(x, n), &out);
  return out;
}

napi_value napi_sum(napi_env env, napi_callback_info info) { return reduce_entry(env, info, "sum", relora_sum); }

napi_value napi_sum_squares(napi_env env, napi_callback_info info) {
  return reduce_entry(env, info, "sumSquares", relora_sum_squares);
}
