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

/* dropoutApply(x, out, n, key, threshold, scale): out = x ∘ dropoutMask(key, threshold, scale). */
napi_value napi_dropout_apply(napi_env env, napi_callback_info info) {
  drop_args d;
  if (!parse_drop(env, info, "dropoutApply", "x", "out", &d)) return NULL;
  const float *x = d.a;
  float *out = d.b;
  const uint32_t key = d.key, bound = d.bound;
  const float s = d.any ? d.scale : 0.0f;
  RELORA_PAR_SIMD_FOR(i, d.n, out[i] = hash32(key, (uint32_t)i) >= bound ? x[i] * s : 0.0f);
  return NULL;
}

/* dropoutBackwardAdd(g, dx, n, key, threshold, scale): dx += g ∘ dropoutMask(key, threshold, scale). */
napi_value napi_dropout_backward_add(napi_env env, napi_callback_info info) {
  drop_args d;
  if (!parse_drop(env, info, "dropoutBackwardAdd", "g", "dx", &d)) return NULL;
  if (!d.any) return NULL;
  const float *g = d.a;
  float *dx = d.b;
  const uint32_t key = d.key, bound = d.bound;
  const float s = d.scale;
  RELORA_PAR_SIMD_FOR(i, d.n, dx[i] += hash32(key, (uint32_t)i) >= bound ? g[i] * s : 0.0f);
  return NULL;
}
