/* SiLU and SwiGLU, forward and backward. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "fast_exp.h"
#include "kernels.h"
#include "simd.h"

static inline float sigmoidf(float x) { return 1.0f / (1.0f + relora_expf(-x)); }
static inline float siluf(float x) { return x / (1.0f + relora_expf(-x)); }
static inline float silu_gradf(float x) {
  float s = sigmoidf(x);
  return s * (1.0f + x * (1.0f - s));
}

/* The element loops, one cloned function each (see simd.h); spans are contiguous ranges. */
RELORA_CLONES static void silu_span(const float *x, float *out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) out[i] = siluf(x[i]);
}

RELORA_CLONES static void silu_backward_span(const float *g, const float *x, float *dx, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dx[i] += g[i] * silu_gradf(x[i]);
}

RELORA_CLONES static void swiglu_span(const float *gate, const float *up, float *out, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) out[i] = siluf(gate[i]) * up[i];
}

/* Either gradient may be null; one loop per combination keeps each branch-free. */
/* acc = 0 writes the gradients instead of adding to them: 0 + the same term, without reading them. */
RELORA_CLONES static void swiglu_backward_span(const float *g, const float *gate, const float *up, float *dgate,
                                               float *dup, int64_t n, int acc) {
  if (dgate && dup) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
      float x = gate[i], s = sigmoidf(x);
      dgate[i] = (acc ? dgate[i] : 0.0f) + g[i] * up[i] * (s * (1.0f + x * (1.0f - s)));
      dup[i] = (acc ? dup[i] : 0.0f) + g[i] * (x * s);
    }
  } else if (dgate) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dgate[i] = (acc ? dgate[i] : 0.0f) + g[i] * up[i] * silu_gradf(gate[i]);
  } else if (dup) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dup[i] = (acc ? dup[i] : 0.0f) + g[i] * siluf(gate[i]);
  }
}

/* Small inputs call the span function directly: an OpenMP region costs more than they do. */
#define SPAN_LEN(b) ((n - (b)) < RELORA_SPAN ? (n - (b)) : RELORA_SPAN)

void relora_silu_forward(const float *x, float *out, int64_t n) {
  if (n < RELORA_PAR_MIN) {
    silu_span(x, out, n);
    return;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) silu_span(x + b, out + b, SPAN_LEN(b));
}

void relora_silu_backward(const float *dout, const float *x, float *dx, int64_t n) {
  if (n < RELORA_PAR_MIN) {
    silu_backward_span(dout, x, dx, n);
    return;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) silu_backward_span(dout + b, x + b, dx + b, SPAN_LEN(b));
}

void relora_swiglu_forward(const float *gate, const float *up, float *out, int64_t n) {
  if (n < RELORA_PAR_MIN) {
    swiglu_span(gate, up, out, n);
    return;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) swiglu_span(gate + b, up + b, out + b, SPAN_LEN(b));
}

void relora_swiglu_backward(const float *dout, const float *gate, const float *up, float *dgate, float *dup, int64_t n,
                            int accumulate) {
  if (!dgate && !dup) return;
  if (n < RELORA_PAR_MIN) {
    swiglu_backward_span(dout, gate, up, dgate, dup, n, accumulate);
    return;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) {
    swiglu_backward_span(dout + b, gate + b, up + b, dgate ? dgate + b : NULL, dup ? dup + b : NULL, SPAN_LEN(b), accumulate);
  }
}
