/* RMSNorm over the rows of a [rows, dim] matrix. */
#include <math.h>
#include <stdint.h>

#include "args.h"
#include "kernels.h"

/* Columns of dWeight one thread owns in the backward pass (no two threads share a column). */
#define COL_CHUNK 64

napi_value napi_rmsnorm_forward(napi_env env, napi_callback_info info) {
  const char *k = "rmsnormForward";
  napi_value a[7];
  float *x, *w, *out, *rstd;
  size_t nx, nw, nout, nr;
  int64_t rows, dim, n;
  double eps;
  if (!args_get(env, info, k, 7, a) || !arg_f32(env, a[0], k, "x", &x, &nx) ||
      !arg_f32(env, a[1], k, "weight", &w, &nw) || !arg_f32(env, a[2], k, "out", &out, &nout) ||
      !arg_f32(env, a[3], k, "rstd", &rstd, &nr) || !arg_size(env, a[4], k, "rows", &rows) ||
      !arg_size(env, a[5], k, "dim", &dim) || !arg_double(env, a[6], k, "eps", &eps) ||
      !mul_size(env, k, rows, dim, &n) || !require_len(env, k, "x", nx, n, "rows*dim") ||
      !require_len(env, k, "weight", nw, dim, "dim") || !require_len(env, k, "out", nout, n, "rows*dim") ||
      !require_len(env, k, "rstd", nr, rows, "rows")) {
    return NULL;
  }
#pragma omp parallel for if (n >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    const float *xr = x + r * dim;
    float *yr = out + r * dim;
    double ss = 0.0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < dim; j++) ss += (double)xr[j] * (double)xr[j];
    float rs = (float)(1.0 / sqrt(ss / (double)dim + eps));
    rstd[r] = rs;
    for (int64_t j = 0; j < dim; j++) yr[j] = xr[j] * rs * w[j];
  }
  return NULL;
}

napi_value napi_rmsnorm_backward(napi_env env, napi_callback_info info) {
  const char *k = "rmsnormBackward";
  napi_value a[8];
  float *dout, *x, *w, *rstd, *dx, *dw;
  size_t ndout, nx, nw, nr, ndx, ndw;
  int64_t rows, dim, n;
  if (!args_get(env, info, k, 8, a) || !arg_f32(env, a[0], k, "dout", &dout, &ndout) ||
      !arg_f32(env, a[1], k, "x", &x, &nx) || !arg_f32(env, a[2], k, "weight", &w, &nw) ||
      !arg_f32(env, a[3], k, "rstd", &rstd, &nr) || !arg_f32_or_null(env, a[4], k, "dx", &dx, &ndx) ||
      !arg_f32_or_null(env, a[5], k, "dWeight", &dw, &ndw) || !arg_size(env, a[6], k, "rows", &rows) ||
      !arg_size(env, a[7], k, "dim", &dim) || !mul_size(env, k, rows, dim, &n) ||
      !require_len(env, k, "dout", ndout, n, "rows*dim") || !require_len(env, k, "x", nx, n, "rows*dim") ||
      !require_len(env, k, "weight", nw, dim, "dim") || !require_len(env, k, "rstd", nr, rows, "rows") ||
      (dx && !require_len(env, k, "dx", ndx, n, "rows*dim")) ||
      (dw && !require_len(env, k, "dWeight", ndw, dim, "dim"))) {
    return NULL;
  }
  if (dx) {
    /* y = x*rs*w  =>  dx = rs*(g*w) - x*rs^3*mean(g*w*x) */
#pragma omp parallel for if (n >= RELORA_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
      const float *g = dout + r * dim, *xr = x + r * dim;
      float *dxr = dx + r * dim;
      float rs = rstd[r];
      double dot = 0.0;
#pragma omp simd reduction(+ : dot)
      for (int64_t j = 0; j < dim; j++) dot += (double)g[j] * (double)w[j] * (double)xr[j];
      float c = (float)((double)rs * rs * rs * dot / (double)dim);
      for (int64_t j = 0; j < dim; j++) dxr[j] += rs * g[j] * w[j] - c * xr[j];
    }
  }
  if (dw) {
    int64_t chunks = (dim + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel for if (n >= RELORA_PAR_MIN)
    for (int64_t c = 0; c < chunks; c++) {
      int64_t j0 = c * COL_CHUNK, j1 = j0 + COL_CHUNK < dim ? j0 + COL_CHUNK : dim;
      for (int64_t r = 0; r < rows; r++) {
        const float *g = dout + r * dim, *xr = x + r * dim;
        float rs = rstd[r];
        for (int64_t j = j0; j < j1; j++) dw[j] += g[j] * xr[j] * rs;
      }
    }
  }
  return NULL;
}
