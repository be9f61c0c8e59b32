/* Vector arithmetic and reductions over flat float arrays. */
#include <stdint.h>

#include "kernels.h"
#include "simd.h"

void relora_add(const float *a, const float *b, float *out, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] = a[i] + b[i]); }

void relora_mul(const float *a, const float *b, float *out, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] = a[i] * b[i]); }

void relora_scale(const float *a, float s, float *out, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] = a[i] * s); }

void relora_axpy(float alpha, const float *x, float *y, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, y[i] += alpha * x[i]); }

void relora_add_scalar(float *out, float value, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] += value); }

void relora_fill(float *out, float value, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] = value); }

RELORA_CLONES static double sum_span(const float *x, int64_t n, int squares) {
  double acc = 0.0;
  if (squares) {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; i++) acc += (double)x[i] * (double)x[i];
  } else {
#pragma omp simd reduction(+ : acc)
    for (int64_t i = 0; i < n; i++) acc += (double)x[i];
  }
  return acc;
}

/* Float64 sums of spans of RELORA_PAR_MIN elements, added across threads. */
static double reduce(const float *x, int64_t n, int squares) {
  if (n < RELORA_PAR_MIN) return sum_span(x, n, squares);
  double acc = 0.0;
#pragma omp parallel for reduction(+ : acc)
  for (int64_t b = 0; b < n; b += RELORA_PAR_MIN) acc += sum_span(x + b, n - b < RELORA_PAR_MIN ? n - b : RELORA_PAR_MIN, squares);
  return acc;
}

double relora_sum(const float *x, int64_t n) { return reduce(x, n, 0); }

double relora_sum_squares(const float *x, int64_t n) { return reduce(x, n, 1); }
