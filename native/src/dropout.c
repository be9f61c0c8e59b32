/* Dropout masks from the counter-based hash shared with src/engine/rng.ts. */
#include <math.h>
#include <stdint.h>

#include "args.h"
#include "hash.h"
#include "kernels.h"

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
