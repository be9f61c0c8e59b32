/*
 * Dropout masks from the counter-based hash shared with src/engine/rng.ts, so every backend
 * draws the same masks: mask[i] = hash32(key, i) >= threshold ? scale : 0. Besides the mask
 * itself, the mask applied (out = x ∘ mask) and its backward (dx += g ∘ mask) without a mask
 * buffer, as the LoRA op uses them.
 */
#include <math.h>
#include <stdint.h>

#include "hash.h"
#include "kernels.h"
#include "simd.h"

void relora_dropout_mask(float *mask, int64_t n, uint32_t key, double threshold, float scale) {
  /* Compare as doubles, exactly like JS (threshold may be 2^32 - 1, or not an integer at all). */
  RELORA_PAR_SIMD_FOR(i, n, mask[i] = (double)hash32(key, (uint32_t)i) >= threshold ? scale : 0.0f);
}

/* "hash >= threshold" (threshold a double, as in JS) as an integer test: hash >= ceil(threshold).
 * Returns 0 when nothing is kept (threshold above 2^32 - 1). */
static int keep_bound(double threshold, uint32_t *bound) {
  double c = ceil(threshold);
  if (!(c <= 4294967295.0)) return 0;
  *bound = c <= 0 ? 0u : (uint32_t)c;
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

static void run_spans(drop_span_fn fn, const float *a, float *b, int64_t n, uint32_t key, uint32_t bound, float s) {
  if (n < RELORA_PAR_MIN) {
    fn(a, b, 0, n, key, bound, s);
    return;
  }
#pragma omp parallel for
  for (int64_t i = 0; i < n; i += RELORA_SPAN) fn(a, b, i, i + RELORA_SPAN < n ? i + RELORA_SPAN : n, key, bound, s);
}

void relora_dropout_apply(const float *x, float *out, int64_t n, uint32_t key, double threshold, float scale) {
  uint32_t bound;
  /* Nothing kept: the keep-all bound, with every value times 0. */
  if (!keep_bound(threshold, &bound)) run_spans(dropout_apply_span, x, out, n, key, 0u, 0.0f);
  else run_spans(dropout_apply_span, x, out, n, key, bound, scale);
}

RELORA_CLONES static void dropout_apply_bf16_span(const float *x, uint16_t *out, int64_t i0, int64_t i1, uint32_t key,
                                                  uint32_t bound, float s) {
#pragma omp simd
  for (int64_t i = i0; i < i1; i++) out[i] = relora_bf16_of(hash32(key, (uint32_t)i) >= bound ? x[i] * s : 0.0f);
}

void relora_dropout_apply_bf16(const float *x, uint16_t *out, int64_t n, uint32_t key, double threshold, float scale) {
  uint32_t bound;
  float s = scale;
  if (!keep_bound(threshold, &bound)) bound = 0u, s = 0.0f;
  if (n < RELORA_PAR_MIN) {
    dropout_apply_bf16_span(x, out, 0, n, key, bound, s);
    return;
  }
#pragma omp parallel for
  for (int64_t i = 0; i < n; i += RELORA_SPAN) dropout_apply_bf16_span(x, out, i, i + RELORA_SPAN < n ? i + RELORA_SPAN : n, key, bound, s);
}

void relora_dropout_backward_add(const float *g, float *dx, int64_t n, uint32_t key, double threshold, float scale) {
  uint32_t bound;
  if (keep_bound(threshold, &bound)) run_spans(dropout_backward_add_span, g, dx, n, key, bound, scale);
}
