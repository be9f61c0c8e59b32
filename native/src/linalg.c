/*
 * Singular values through LAPACK's dgesdd (OpenBLAS ships it as liblapack.so.3 on Debian).
 * LAPACK is opened lazily with dlopen on the first call, not linked: the addon builds and loads
 * without it, and OpenBLAS's own thread pool is held to one thread so it never competes with
 * libgomp's (this is a rare, small call: the rank diagnostic at ReLoRA merges).
 *
 * svdValues(a: Float32Array | Float64Array, m, n) -> Float64Array of min(m, n) values, descending.
 * A row-major m×n matrix is the column-major n×m Aᵀ, which has the same singular values.
 */
#include <dlfcn.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "kernels.h"

typedef void (*dgesdd_fn)(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s, double *u,
                          const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork, int *iwork, int *info);
typedef void (*set_threads_fn)(int);

static dgesdd_fn dgesdd_ptr = NULL;
static int lapack_tried = 0;
static char lapack_error[256] = "";

static dgesdd_fn lapack(void) {
  if (lapack_tried) return dgesdd_ptr;
  lapack_tried = 1;
  const char *names[] = {"liblapack.so.3", "libopenblas.so.0", "liblapack.so"};
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !dgesdd_ptr; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    set_threads_fn st = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    if (st) st(1);
    dgesdd_ptr = (dgesdd_fn)dlsym(h, "dgesdd_");
  }
  if (!dgesdd_ptr) strncpy(lapack_error, "no LAPACK library with dgesdd_ found (install libopenblas-dev or liblapack3)", sizeof lapack_error - 1);
  return dgesdd_ptr;
}

napi_value napi_lapack_available(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_get_boolean(env, lapack() != NULL, &out);
  return out;
}

napi_value napi_svd_values(napi_env env, napi_callback_info info) {
  const char *k = "svdValues";
  napi_value a[3];
  if (!args_get(env, info, k, 3, a)) return NULL;
  int64_t m, n;
  if (!arg_size(env, a[1], k, "m", &m) || !arg_size(env, a[2], k, "n", &n)) return NULL;
  if (m < 1 || n < 1 || m > 1 << 20 || n > 1 << 20) return (void)throw_error(env, k, "m and n must be in [1, 2^20], got %lld and %lld", (long long)m, (long long)n), NULL;
  bool is_typed = false;
  napi_is_typedarray(env, a[0], &is_typed);
  if (!is_typed) return (void)throw_error(env, k, "a must be a Float32Array or Float64Array"), NULL;
  napi_typedarray_type type;
  size_t len;
  void *data;
  napi_get_typedarray_info(env, a[0], &type, &len, &data, NULL, NULL);
  if (type != napi_float32_array && type != napi_float64_array) return (void)throw_error(env, k, "a must be a Float32Array or Float64Array"), NULL;
  if ((int64_t)len != m * n) return (void)throw_error(env, k, "a has %zu elements, m*n = %lld", len, (long long)(m * n)), NULL;
  dgesdd_fn f = lapack();
  if (!f) return (void)throw_error(env, k, "%s", lapack_error), NULL;

  size_t count = (size_t)(m * n);
  double *x = malloc(count * sizeof(double));
  int mn = (int)(m < n ? m : n);
  int *iwork = malloc((size_t)8 * (size_t)mn * sizeof(int));
  napi_value out_buf, out;
  double *s;
  if (!x || !iwork || napi_create_arraybuffer(env, (size_t)mn * sizeof(double), (void **)&s, &out_buf) != napi_ok) {
    free(x);
    free(iwork);
    return (void)throw_error(env, k, "could not allocate memory for a %lld x %lld matrix", (long long)m, (long long)n), NULL;
  }
  for (size_t i = 0; i < count; i++) {
    double v = type == napi_float32_array ? (double)((float *)data)[i] : ((double *)data)[i];
    if (!isfinite(v)) {
      free(x);
      free(iwork);
      return (void)throw_error(env, k, "entry (%lld, %lld) is not finite", (long long)(i / (size_t)n), (long long)(i % (size_t)n)), NULL;
    }
    x[i] = v;
  }
  /* Column-major view: M = n rows, N = m columns, lda = n. */
  int M = (int)n, N = (int)m, lda = (int)n, one = 1, info_ = 0, lwork = -1;
  double dummy = 0, query = 0;
  f("N", &M, &N, x, &lda, s, &dummy, &one, &dummy, &one, &query, &lwork, iwork, &info_);
  lwork = info_ == 0 ? (int)query + 1 : 0;
  double *work = info_ == 0 ? malloc((size_t)lwork * sizeof(double)) : NULL;
  if (work) f("N", &M, &N, x, &lda, s, &dummy, &one, &dummy, &one, work, &lwork, iwork, &info_);
  free(work);
  free(x);
  free(iwork);
  if (!work && info_ == 0) return (void)throw_error(env, k, "could not allocate the LAPACK workspace"), NULL;
  if (info_ != 0) return (void)throw_error(env, k, "LAPACK dgesdd failed (info = %d)", info_), NULL;
  napi_create_typedarray(env, napi_float64_array, (size_t)mn, out_buf, 0, &out);
  return out;
}
