/* Bindings for the training kernels: dropout masks, the cross-entropy loss, the AdamW step. */
#include <stdint.h>

#include "../kernels/hash.h"
#include "../kernels/kernels.h"
#include "args.h"
#include "bindings.h"

/* ---- dropout ---- */

napi_value napi_dropout_mask(napi_env env, napi_callback_info info) {
  const char *k = "dropoutMask";
  napi_value a[5];
  float *mask;
  size_t nmask;
  int64_t n;
  double key, threshold, scale;
  if (args_get(env, info, k, 5, a) && arg_f32(env, a[0], k, "mask", &mask, &nmask) && arg_size(env, a[1], k, "n", &n) &&
      arg_double(env, a[2], k, "key", &key) && arg_double(env, a[3], k, "threshold", &threshold) &&
      arg_double(env, a[4], k, "scale", &scale) && require_len(env, k, "mask", nmask, n, "n")) {
    relora_dropout_mask(mask, n, to_uint32(key), threshold, (float)scale);
  }
  return NULL;
}

typedef void (*dropout_fn)(const float *, float *, int64_t, uint32_t, double, float);
typedef void (*dropout_bf16_fn)(const float *, uint16_t *, int64_t, uint32_t, double, float);

/* (a, b, n, key, threshold, scale) with a holding at least n elements and b n, or with `packed`
 * ceil(n/2) (packed bf16); calls fn, or with `packed` fn_bf16. */
static napi_value dropout_entry(napi_env env, napi_callback_info info, const char *k, const char *na, const char *nb,
                                dropout_fn fn, dropout_bf16_fn fn_bf16) {
  napi_value a[6];
  float *pa, *pb;
  size_t la, lb;
  int64_t n;
  double key, threshold, scale;
  const int packed = fn_bf16 != NULL;
  if (args_get(env, info, k, 6, a) && arg_f32(env, a[0], k, na, &pa, &la) && arg_f32(env, a[1], k, nb, &pb, &lb) &&
      arg_size(env, a[2], k, "n", &n) && arg_double(env, a[3], k, "key", &key) &&
      arg_double(env, a[4], k, "threshold", &threshold) && arg_double(env, a[5], k, "scale", &scale) &&
      require_len(env, k, na, la, n, "n") && require_len(env, k, nb, lb, packed ? (n + 1) / 2 : n, packed ? "ceil(n/2)" : "n")) {
    if (packed) fn_bf16(pa, (uint16_t *)pb, n, to_uint32(key), threshold, (float)scale);
    else fn(pa, pb, n, to_uint32(key), threshold, (float)scale);
  }
  return NULL;
}

/* dropoutApply(x, out, n, key, threshold, scale): out = x ∘ dropoutMask(key, threshold, scale). */
napi_value napi_dropout_apply(napi_env env, napi_callback_info info) {
  return dropout_entry(env, info, "dropoutApply", "x", "out", relora_dropout_apply, NULL);
}

/* dropoutApplyBf16(x, out, n, key, threshold, scale): out (packed bf16) = bf16(x ∘ mask). */
napi_value napi_dropout_apply_bf16(napi_env env, napi_callback_info info) {
  return dropout_entry(env, info, "dropoutApplyBf16", "x", "out", NULL, relora_dropout_apply_bf16);
}

/* dropoutBackwardAdd(g, dx, n, key, threshold, scale): dx += g ∘ dropoutMask(key, threshold, scale). */
napi_value napi_dropout_backward_add(napi_env env, napi_callback_info info) {
  return dropout_entry(env, info, "dropoutBackwardAdd", "g", "dx", relora_dropout_backward_add, NULL);
}

/* ---- cross-entropy ---- */

/* Parses what both passes share — (logits, targets, ..., rows, V, ignoreIndex) at a[0], a[1],
 * a[at..at+2] (a[4..6] for the separate passes) — and rejects bad targets before anything is written. */
/* logits: rows*V floats, or with packed rows*V packed bf16 values. */
static int xent_args_at(napi_env env, napi_value *a, int at, const char *k, float **logits, int packed,
                        int32_t **targets, int64_t *rows, int64_t *V, int64_t *ignore) {
  size_t nl, nt;
  int64_t n;
  if (!arg_f32(env, a[0], k, "logits", logits, &nl) || !arg_i32(env, a[1], k, "targets", targets, &nt) ||
      !arg_size(env, a[at], k, "rows", rows) || !arg_size(env, a[at + 1], k, "V", V) ||
      !arg_int(env, a[at + 2], k, "ignoreIndex", ignore) || !mul_size(env, k, *rows, *V, &n) ||
      !require_len(env, k, "logits", nl, packed ? (n + 1) / 2 : n, packed ? "ceil(rows*V/2)" : "rows*V") || !require_len(env, k, "targets", nt, *rows, "rows")) {
    return 0;
  }
  for (int64_t r = 0; r < *rows; r++) {
    int32_t t = (*targets)[r];
    if (t != *ignore && (t < 0 || (int64_t)t >= *V)) {
      return throw_error(env, k, "target %d at row %lld is outside [0, %lld) and is not the ignore index %lld",
                         t, (long long)r, (long long)*V, (long long)*ignore);
    }
  }
  return 1;
}

static int xent_args(napi_env env, napi_value *a, const char *k, float **logits, int32_t **targets, int64_t *rows,
                     int64_t *V, int64_t *ignore) {
  return xent_args_at(env, a, 4, k, logits, 0, targets, rows, V, ignore);
}

/* crossEntropyForward(logits, targets, losses, lse, rows, V, ignoreIndex) -> non-ignored rows. */
napi_value napi_cross_entropy_forward(napi_env env, napi_callback_info info) {
  const char *k = "crossEntropyForward";
  napi_value a[7], out;
  float *logits, *losses, *lse;
  int32_t *targets;
  size_t nlosses, nlse;
  int64_t rows, V, ignore;
  if (!args_get(env, info, k, 7, a) || !xent_args(env, a, k, &logits, &targets, &rows, &V, &ignore) ||
      !arg_f32(env, a[2], k, "losses", &losses, &nlosses) || !arg_f32(env, a[3], k, "lse", &lse, &nlse) ||
      !require_len(env, k, "losses", nlosses, rows, "rows") || !require_len(env, k, "lse", nlse, rows, "rows")) {
    return NULL;
  }
  int64_t count = relora_cross_entropy_forward(logits, targets, losses, lse, rows, V, ignore);
  napi_create_double(env, (double)count, &out);
  return out;
}

typedef void (*xent_backward_fn)(const float *, const int32_t *, const float *, float *, int64_t, int64_t, int64_t, float);

/* (logits, targets, lse, dLogits, rows, V, ignoreIndex, gradScale) */
static napi_value xent_backward(napi_env env, napi_callback_info info, const char *k, xent_backward_fn fn) {
  napi_value a[8];
  float *logits, *lse, *dlogits;
  int32_t *targets;
  size_t nlse, nd;
  int64_t rows, V, ignore;
  double grad_scale;
  if (args_get(env, info, k, 8, a) && xent_args(env, a, k, &logits, &targets, &rows, &V, &ignore) &&
      arg_f32(env, a[2], k, "lse", &lse, &nlse) && arg_f32(env, a[3], k, "dLogits", &dlogits, &nd) &&
      arg_double(env, a[7], k, "gradScale", &grad_scale) && require_len(env, k, "lse", nlse, rows, "rows") &&
      require_len(env, k, "dLogits", nd, rows * V, "rows*V")) {
    fn(logits, targets, lse, dlogits, rows, V, ignore, (float)grad_scale);
  }
  return NULL;
}

napi_value napi_cross_entropy_backward(napi_env env, napi_callback_info info) {
  return xent_backward(env, info, "crossEntropyBackward", relora_cross_entropy_backward);
}

napi_value napi_cross_entropy_backward_write(napi_env env, napi_callback_info info) {
  return xent_backward(env, info, "crossEntropyBackwardWrite", relora_cross_entropy_backward_write);
}

/* crossEntropyFused(logits, targets, losses, lse, dLogits, rows, V, ignoreIndex, gradScale, bf16)
 * -> non-ignored rows; logits and dLogits hold rows*V floats, or with bf16 rows*V packed bf16 values. */
napi_value napi_cross_entropy_fused(napi_env env, napi_callback_info info) {
  const char *k = "crossEntropyFused";
  napi_value a[10], out;
  float *logits, *losses, *lse, *dlogits;
  int32_t *targets;
  size_t nlosses, nlse, nd;
  int64_t rows, V, ignore;
  double grad_scale;
  int bf16;
  if (!args_get(env, info, k, 10, a) || !arg_bool(env, a[9], k, "bf16", &bf16) ||
      !xent_args_at(env, a, 5, k, &logits, bf16, &targets, &rows, &V, &ignore) ||
      !arg_f32(env, a[2], k, "losses", &losses, &nlosses) || !arg_f32(env, a[3], k, "lse", &lse, &nlse) ||
      !arg_f32(env, a[4], k, "dLogits", &dlogits, &nd) || !arg_double(env, a[8], k, "gradScale", &grad_scale) ||
      !require_len(env, k, "losses", nlosses, rows, "rows") ||
      !require_len(env, k, "lse", nlse, rows, "rows") ||
      !require_len(env, k, "dLogits", nd, bf16 ? (rows * V + 1) / 2 : rows * V, bf16 ? "ceil(rows*V/2)" : "rows*V")) {
    return NULL;
  }
  if (bf16 && dlogits != logits && (const void *)dlogits < (const void *)(logits + (rows * V + 1) / 2) &&
      (const void *)logits < (const void *)(dlogits + nd)) {
    throw_error(env, k, "a bf16 dLogits must be the logits themselves or not overlap them");
    return NULL;
  }
  int64_t count = relora_cross_entropy_fused(logits, targets, losses, lse, dlogits, rows, V, ignore, (float)grad_scale, bf16);
  if (count == RELORA_ENOMEM) {
    throw_error(env, k, "could not allocate scratch memory");
    return NULL;
  }
  napi_create_double(env, (double)count, &out);
  return out;
}

/* ---- AdamW ---- */

/* adamwStep(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, bc1, bc2, gradScale) */
napi_value napi_adamw_step(napi_env env, napi_callback_info info) {
  const char *k = "adamwStep";
  napi_value a[13];
  float *p, *g, *m, *v;
  size_t np, ng, nm, nv;
  int64_t n;
  double lr, b1, b2, eps, wd, bc1, bc2, gs;
  if (args_get(env, info, k, 13, a) && arg_f32(env, a[0], k, "param", &p, &np) &&
      arg_f32(env, a[1], k, "grad", &g, &ng) && arg_f32(env, a[2], k, "m", &m, &nm) &&
      arg_f32(env, a[3], k, "v", &v, &nv) && arg_size(env, a[4], k, "n", &n) && arg_double(env, a[5], k, "lr", &lr) &&
      arg_double(env, a[6], k, "beta1", &b1) && arg_double(env, a[7], k, "beta2", &b2) &&
      arg_double(env, a[8], k, "eps", &eps) && arg_double(env, a[9], k, "weightDecay", &wd) &&
      arg_double(env, a[10], k, "bc1", &bc1) && arg_double(env, a[11], k, "bc2", &bc2) &&
      arg_double(env, a[12], k, "gradScale", &gs) &&
      require_len(env, k, "param", np, n, "n") && require_len(env, k, "grad", ng, n, "n") &&
      require_len(env, k, "m", nm, n, "n") && require_len(env, k, "v", nv, n, "n")) {
    relora_adamw_step(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2, (float)gs);
  }
  return NULL;
}
