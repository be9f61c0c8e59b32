/* SiLU and SwiGLU, forward and backward. */
#include <math.h>
#include <stdint.h>

#include "args.h"
#include "fast_exp.h"
#include "kernels.h"
#include "simd.h"

static inline float sigmoidf(float x) { return 1.0f / (1.0f + relora_expf(-x)); }
static inline float siluf(float x) { return x / (1.0f + relora_expf(-x)); }
static inline float silu_gradf(float x) {
  float s = sigmoidf(x);
  return s * (1.0f + x * (1.0f - s));
}

/* Parses `count` arrays then n; arrays flagged in `nullable` may be null. */
static int act_args(napi_env env, napi_callback_info info, const char *k, int count, const char *const *names,
                    unsigned nullable, float **p, int64_t *n) {
  napi_value a[6];
  if (!args_get(env, info, k, (size_t)count + 1, a) || !arg_size(env, a[count], k, "n", n)) return 0;
  for (int i = 0; i < count; i++) {
    size_t len;
    int ok = (nullable >> i) & 1u ? arg_f32_or_null(env, a[i], k, names[i], &p[i], &len)
                                  : arg_f32(env, a[i], k, names[i], &p[i], &len);
    if (!ok || (p[i] && !require_len(env, k, names[i], len, *n, "n"))) return 0;
  }
  return 1;
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
RELORA_CLONES static void swiglu_backward_span(const float *g, const float *gate, const float *up, float *dgate,
                                               float *dup, int64_t n) {
  if (dgate && dup) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) {
      float x = gate[i], s = sigmoidf(x);
      dgate[i] += g[i] * up[i] * (s * (1.0f + x * (1.0f - s)));
      dup[i] += g[i] * (x * s);
    }
  } else if (dgate) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dgate[i] += g[i] * up[i] * silu_gradf(gate[i]);
  } else if (dup) {
#pragma omp simd
    for (int64_t i = 0; i < n; i++) dup[i] += g[i] * siluf(gate[i]);
  }
}

/* Small inputs call the span function directly: an OpenMP region costs more than they do. */
#define SPAN_LEN(b) ((n - (b)) < RELORA_SPAN ? (n - (b)) : RELORA_SPAN)

napi_value napi_silu_forward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"x", "out"};
  float *p[2];
  int64_t n;
  if (!act_args(env, info, "siluForward", 2, names, 0, p, &n)) return NULL;
  if (n < RELORA_PAR_MIN) {
    silu_span(p[0], p[1], n);
    return NULL;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) silu_span(p[0] + b, p[1] + b, SPAN_LEN(b));
  return NULL;
}

napi_value napi_silu_backward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"dout", "x", "dx"};
  float *p[3];
  int64_t n;
  if (!act_args(env, info, "siluBackward", 3, names, 0, p, &n)) return NULL;
  if (n < RELORA_PAR_MIN) {
    silu_backward_span(p[0], p[1], p[2], n);
    return NULL;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) silu_backward_span(p[0] + b, p[1] + b, p[2] + b, SPAN_LEN(b));
  return NULL;
}

napi_value napi_swiglu_forward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"gate", "up", "out"};
  float *p[3];
  int64_t n;
  if (!act_args(env, info, "swigluForward", 3, names, 0, p, &n)) return NULL;
  if (n < RELORA_PAR_MIN) {
    swiglu_span(p[0], p[1], p[2], n);
    return NULL;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) swiglu_span(p[0] + b, p[1] + b, p[2] + b, SPAN_LEN(b));
  return NULL;
}

napi_value napi_swiglu_backward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"dout", "gate", "up", "dGate", "dUp"};
  float *p[5];
  int64_t n;
  if (!act_args(env, info, "swigluBackward", 5, names, (1u << 3) | (1u << 4), p, &n)) return NULL;
  float *dgate = p[3], *dup = p[4];
  if (!dgate && !dup) return NULL;
  if (n < RELORA_PAR_MIN) {
    swiglu_backward_span(p[0], p[1], p[2], dgate, dup, n);
    return NULL;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) {
    swiglu_backward_span(p[0] + b, p[1] + b, p[2] + b, dgate ? dgate + b : NULL, dup ? dup + b : NULL, SPAN_LEN(b));
  }
  return NULL;
}
