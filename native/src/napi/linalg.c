/*
 * Bindings for the LAPACK-backed diagnostics.
 * svdValues(a: Float32Array | Float64Array, m, n) -> Float64Array of min(m, n) values, descending.
 */
#include <math.h>
#include <stdlib.h>

#include "../kernels/kernels.h"
#include "args.h"
#include "bindings.h"

napi_value napi_lapack_available(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_get_boolean(env, relora_lapack_available(), &out);
  return out;
}

/* A row-major m×n float64 copy of a Float32Array or Float64Array, or NULL after throwing
 * (wrong type or size, a non-finite entry, no memory). */
static double *finite_copy(napi_env env, const char *k, napi_value arr, int64_t m, int64_t n) {
  bool is_typed = false;
  napi_typedarray_type type;
  size_t len;
  void *data;
  napi_is_typedarray(env, arr, &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, arr, &type, &len, &data, NULL, NULL) != napi_ok ||
      (type != napi_float32_array && type != napi_float64_array)) {
    throw_error(env, k, "a must be a Float32Array or Float64Array");
    return NULL;
  }
  if ((int64_t)len != m * n) {
    throw_error(env, k, "a has %zu elements, m*n = %lld", len, (long long)(m * n));
    return NULL;
  }
  double *x = malloc(len * sizeof(double));
  if (!x) {
    throw_error(env, k, "could not allocate memory for a %lld x %lld matrix", (long long)m, (long long)n);
    return NULL;
  }
  for (size_t i = 0; i < len; i++) {
    double v = type == napi_float32_array ? (double)((float *)data)[i] : ((double *)data)[i];
    if (!isfinite(v)) {
      free(x);
      throw_error(env, k, "entry (%lld, %lld) is not finite", (long long)(i / (size_t)n), (long long)(i % (size_t)n));
      return NULL;
    }
    x[i] = v;
  }
  return x;
}

napi_value napi_svd_values(napi_env env, napi_callback_info info) {
  const char *k = "svdValues";
  napi_value a[3], out_buf, out;
  int64_t m, n;
  if (!args_get(env, info, k, 3, a) || !arg_size(env, a[1], k, "m", &m) || !arg_size(env, a[2], k, "n", &n)) return NULL;
  if (m < 1 || n < 1 || m > 1 << 20 || n > 1 << 20) {
    throw_error(env, k, "m and n must be in [1, 2^20], got %lld and %lld", (long long)m, (long long)n);
    return NULL;
  }
  size_t mn = (size_t)(m < n ? m : n);
  double *s;
  if (napi_create_arraybuffer(env, mn * sizeof(double), (void **)&s, &out_buf) != napi_ok) {
    throw_error(env, k, "could not allocate %zu singular values", mn);
    return NULL;
  }
  double *x = finite_copy(env, k, a[0], m, n);
  if (!x) return NULL;
  int status = relora_svd_values(x, m, n, s);
  free(x);
  if (status == RELORA_ENOLAPACK) throw_error(env, k, "%s", relora_lapack_error());
  else if (status == RELORA_ENOMEM) throw_error(env, k, "could not allocate the LAPACK workspace");
  else if (status) throw_error(env, k, "LAPACK dgesdd failed (info = %d)", status);
  if (status) return NULL;
  napi_create_typedarray(env, napi_float64_array, mn, out_buf, 0, &out);
  return out;
}
