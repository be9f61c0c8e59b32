/* Dropout masks from the counter-based hash shared with src/engine/rng.ts. */
#include <math.h>
#include <stdint.h>

#include "args.h"
#include "kernels.h"

/* Bit-for-bit the `hash32` of src/engine/rng.ts (Wellons' lowbias32 of counter*golden ^ key). */
static inline uint32_t hash32(uint32_t key, uint32_t counter) {
  uint32_t x = (counter * 0x9e3779b1u) ^ key;
  x ^= x >> 16;
  x *= 0x7feb352du;
  x ^= x >> 15;
  x *= 0x846ca68bu;
  x ^= x >> 16;
  return x;
}

/* JavaScript's ToUint32 (what `^ key` and `>>> 0` do to a number). */
static uint32_t to_uint32(double d) {
  if (!isfinite(d)) return 0;
  double t = fmod(trunc(d), 4294967296.0);
  if (t < 0) t += 4294967296.0;
  return (uint32_t)t;
}

napi_value napi_dropout_mask(napi_env env, napi_callback_info info) {
  const char *k = "dropoutMask";
  napi_value a[5];
  float *mask;
  size_t nmask;
  int64_t n;
  double key, threshold, scale;
  if (!args_get(env, info, k, 5, a) || !arg_f32(env, a[0], k, "mask", &mask, &nmask) ||
      !arg_size(env, a[1], k, "n", &n) || !arg_double(env, a[2], k, "key", &key) ||
      !arg_double(env, a[3], k, "threshold", &threshold) || !arg_double(env, a[4], k, "scale", &scale) ||
      !require_len(env, k, "mask", nmask, n, "n")) {
    return NULL;
  }
  uint32_t ukey = to_uint32(key);
  float keep = (float)scale;
  /* Compare as doubles, exactly like JS (threshold may be 2^32 - 1, or not an integer at all). */
  RELORA_PAR_SIMD_FOR(i, n, mask[i] = (double)hash32(ukey, (uint32_t)i) >= threshold ? keep : 0.0f);
  return NULL;
}
