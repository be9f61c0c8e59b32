/* Vector arithmetic and reductions over flat float arrays. */
#include <stdint.h>

#include "kernels.h"

void relora_add(const float *a, const float *b, float *out, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] = a[i] + b[i]); }

void relora_mul(const float *a, const float *b, float *out, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] = a[i] * b[i]); }

void relora_scale(const float *a, float s, float *out, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] = a[i] * s); }

void relora_axpy(float alpha, const float *x, float *y, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, y[i] += alpha * x[i]); }

void relora_add_scalar(float *out, float value, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] += value); }

void relora_fill(float *out, float value, int64_t n) { RELORA_PAR_SIMD_FOR(i, n, out[i] = value); }

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

/* Float64 sums of spans of RELORA_PAR_MIN elements, added across threads. */
static double reduce(const float *x, int64_t n, double (*span)(const float *, int64_t)) {
  if (n < RELORA_PAR_MIN) return span(x, n);
  double acc = 0.0;
#pragma omp parallel for reduction(+ : acc)
  for (int64_t b = 0; b < n; b += RELORA_PAR_MIN) acc += span(x + b, n - b < RELORA_PAR_MIN ? n - b : RELORA_PAR_MIN);
  return acc;
}

double relora_sum(const float *x, int64_t n) { return reduce(x, n, sum_span); }

double relora_sum_squares(const float *x, int64_t n) { return reduce(x, n, sum_squares_span); }
