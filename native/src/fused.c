/*
 * Fused kernels outside the `Kernels` interface, used by the ops when the native backend is
 * active (see fusedKernels in src/engine/backends/native.ts); the js backend composes the same
 * results from Kernels methods. Each saves a temporary buffer and passes over memory.
 */
#include <math.h>
#include <stdint.h>

#include "args.h"
#include "hash.h"
#include "kernels.h"
#include "simd.h"

/* "hash >= threshold" (threshold a double, as in JS) as an integer test: hash >= ceil(threshold).
 * Returns 0 when nothing is kept (threshold above 2^32 - 1). */
static int keep_bound(double threshold, uint32_t *bound) {
  double c = ceil(threshold);
  if (!(c <= 4294967295.0)) return 0;
  *bound = c <= 0 ? 0u : (uint32_t)c;
  return 1;
}

typedef struct {
  float *a, *b;
  int64_t n;
  uint32_t key, bound;
  int any;
  float scale;
} drop_args;

/* (a, b, n, key, threshold, scale) with a and b holding at least n elements. */
static int parse_drop(napi_env env, napi_callback_info info, const char *k, const char *na, const char *nb, drop_args *d) {
  napi_value a[6];
  size_t la, lb;
  double key, threshold, scale;
  if (!args_get(env, info, k, 6, a) || !arg_f32(env, a[0], k, na, &d->a, &la) || !arg_f32(env, a[1], k, nb, &d->b, &lb) ||
      !arg_size(env, a[2], k, "n", &d->n) || !arg_double(env, a[3], k, "key", &key) ||
      !arg_double(env, a[4], k, "threshold", &threshold) || !arg_double(env, a[5], k, "scale", &scale) ||
      !require_len(env, k, na, la, d->n, "n") || !require_len(env, k, nb, lb, d->n, "n")) {
    return 0;
  }
  d->key = to_uint32(key);
  d->any = keep_bound(threshold, &d->bound);
  d->scale = (float)scale;
  return 1;
}

/* Element i's mask value is a function of i itself, so spans take absolute indices [i0, i1). */
RELORA_CLONES static void dropout_apply_span(const float *x, float *out, int64_t i0, int64_t i1, uint32_t key,
                                             uint32_t bound, float s) {
#pragma omp simd
  for (int64_t i = i0; i < i1; i++) out[i] = hash32(key, (uint32_t)i) >= bound ? x[i] * s : 0.0f;
}

RELORA_CLONES static void dropout_backward_add_span(const float *g, float *dx, int64_t i0, int64_t i1, uint32_t key,
                                                    uint32_t bound, float s) {
#pragma omp simd
  for (int64_t i = i0; i < i1; i++) dx[i] += hash32(key, (uint32_t)i) >= bound ? g[i] * s : 0.0f;
}

typedef void (*drop_span_fn)(const float *, float *, int64_t, int64_t, uint32_t, uint32_t, float);

static void run_spans(drop_span_fn fn, const drop_args *d, float s) {
  const int64_t n = d->n;
  if (n < RELORA_PAR_MIN) {
    fn(d->a, d->b, 0, n, d->key, d->bound, s);
    return;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) fn(d->a, d->b, b, b + RELORA_SPAN < n ? b + RELORA_SPAN : n, d->key, d->bound, s);
}

/* dropoutApply(x, out, n, key, threshold, scale): out = x ∘ dropoutMask(key, threshold, scale). */
napi_value napi_dropout_apply(napi_env env, napi_callback_info info) {
  drop_args d;
  if (!parse_drop(env, info, "dropoutApply", "x", "out", &d)) return NULL;
  if (!d.any) d.bound = 0; /* keep-all bound, but every value times 0 */
  run_spans(dropout_apply_span, &d, d.any ? d.scale : 0.0f);
  return NULL;
}

/* dropoutBackwardAdd(g, dx, n, key, threshold, scale): dx += g ∘ dropoutMask(key, threshold, scale). */
napi_value napi_dropout_backward_add(napi_env env, napi_callback_info info) {
  drop_args d;
  if (!parse_drop(env, info, "dropoutBackwardAdd", "g", "dx", &d)) return NULL;
  if (!d.any) return NULL;
  run_spans(dropout_backward_add_span, &d, d.scale);
  return NULL;
}
