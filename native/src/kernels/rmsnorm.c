/* RMSNorm over the rows of a [rows, dim] matrix: y = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps). */
#include <math.h>
#include <stdint.h>

#include "kernels.h"
#include "simd.h"

/* Columns of dWeight one thread owns in the backward pass (no two threads share a column). */
#define COL_CHUNK 64

RELORA_CLONES static void forward_row(const float *xr, const float *w, float *yr, float *rs_out, int64_t dim, double eps) {
  double ss = 0.0;
#pragma omp simd reduction(+ : ss)
  for (int64_t j = 0; j < dim; j++) ss += (double)xr[j] * (double)xr[j];
  float rs = (float)(1.0 / sqrt(ss / (double)dim + eps));
  *rs_out = rs;
#pragma omp simd
  for (int64_t j = 0; j < dim; j++) yr[j] = xr[j] * rs * w[j];
}

/* y = x*rs*w  =>  dx = rs*(g*w) - x*rs^3*mean(g*w*x) */
RELORA_CLONES RELORA_NO_CONTRACT static void dx_row(const float *g, const float *xr, const float *w, float rs, float *dxr, int64_t dim) {
  double dot = 0.0;
#pragma omp simd reduction(+ : dot)
  for (int64_t j = 0; j < dim; j++) dot += (double)g[j] * (double)w[j] * (double)xr[j];
  float c = (float)((double)rs * rs * rs * dot / (double)dim);
#pragma omp simd
  for (int64_t j = 0; j < dim; j++) dxr[j] += rs * g[j] * w[j] - c * xr[j];
}

RELORA_CLONES RELORA_NO_CONTRACT static void dw_columns(const float *dout, const float *x, const float *rstd, float *dw, int64_t rows, int64_t dim,
                                     int64_t j0, int64_t j1) {
  for (int64_t r = 0; r < rows; r++) {
    const float *g = dout + r * dim, *xr = x + r * dim;
    float rs = rstd[r];
#pragma omp simd
    for (int64_t j = j0; j < j1; j++) dw[j] += g[j] * xr[j] * rs;
  }
}

void relora_rmsnorm_forward(const float *x, const float *w, float *out, float *rstd, int64_t rows, int64_t dim,
                            double eps) {
#pragma omp parallel for if (rows * dim >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) forward_row(x + r * dim, w, out + r * dim, rstd + r, dim, eps);
}

void relora_rmsnorm_backward(const float *dout, const float *x, const float *w, const float *rstd, float *dx,
                             float *dw, int64_t rows, int64_t dim) {
  int64_t n = rows * dim;
  if (dx) {
#pragma omp parallel for if (n >= RELORA_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) dx_row(dout + r * dim, x + r * dim, w, rstd[r], dx + r * dim, dim);
  }
  if (dw) {
    int64_t chunks = (dim + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel for if (n >= RELORA_PAR_MIN)
    for (int64_t c = 0; c < chunks; c++) {
      int64_t j0 = c * COL_CHUNK, j1 = j0 + COL_CHUNK < dim ? j0 + COL_CHUNK : dim;
      dw_columns(dout, x, rstd, dw, rows, dim, j0, j1);
    }
  }
}
