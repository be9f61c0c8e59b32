/* Rotary position embedding ("rotate half" layout) on [B, T, H, D] activations. */
#include <stdint.h>

#include "args.h"
#include "kernels.h"

/* Shared argument checks; `names` are the input and output array names. */
static int rope_args(napi_env env, napi_callback_info info, const char *k, const char *in_name, const char *out_name,
                     float **x, float **cs, float **sn, float **out, int64_t *dims) {
  napi_value a[8];
  size_t nx, nc, ns, nout;
  int64_t n, half_t;
  if (!args_get(env, info, k, 8, a) || !arg_f32(env, a[0], k, in_name, x, &nx) ||
      !arg_f32(env, a[1], k, "cos", cs, &nc) || !arg_f32(env, a[2], k, "sin", sn, &ns) ||
      !arg_f32(env, a[3], k, out_name, out, &nout) || !arg_size(env, a[4], k, "B", &dims[0]) ||
      !arg_size(env, a[5], k, "T", &dims[1]) || !arg_size(env, a[6], k, "H", &dims[2]) ||
      !arg_size(env, a[7], k, "D", &dims[3])) {
    return 0;
  }
  if (dims[3] % 2 != 0) return throw_error(env, k, "head dimension D=%lld must be even", (long long)dims[3]);
  return mul_size(env, k, dims[0], dims[1], &n) && mul_size(env, k, n, dims[2], &n) &&
         mul_size(env, k, n, dims[3], &n) && mul_size(env, k, dims[1], dims[3] / 2, &half_t) &&
         require_len(env, k, in_name, nx, n, "B*T*H*D") && require_len(env, k, out_name, nout, n, "B*T*H*D") &&
         require_len(env, k, "cos", nc, half_t, "T*D/2") && require_len(env, k, "sin", ns, half_t, "T*D/2");
}

static napi_value rope(napi_env env, napi_callback_info info, int backward) {
  const char *k = backward ? "ropeBackward" : "ropeForward";
  float *x, *cs, *sn, *out;
  int64_t d[4];
  if (!rope_args(env, info, k, backward ? "dout" : "x", backward ? "dx" : "out", &x, &cs, &sn, &out, d)) return NULL;
  int64_t B = d[0], T = d[1], H = d[2], D = d[3], half = D / 2, heads = B * T * H;
#pragma omp parallel for if (heads * D >= RELORA_PAR_MIN)
  for (int64_t row = 0; row < heads; row++) {
    int64_t t = (row / H) % T;
    const float *c = cs + t * half, *s = sn + t * half, *x1 = x + row * D, *x2 = x1 + half;
    float *o1 = out + row * D, *o2 = o1 + half;
    if (backward) {
      for (int64_t i = 0; i < half; i++) {
        float d1 = x1[i], d2 = x2[i];
        o1[i] += d1 * c[i] + d2 * s[i];
        o2[i] += d2 * c[i] - d1 * s[i];
      }
    } else {
      for (int64_t i = 0; i < half; i++) {
        float v1 = x1[i], v2 = x2[i];
        o1[i] = v1 * c[i] - v2 * s[i];
        o2[i] = v2 * c[i] + v1 * s[i];
      }
    }
  }
  return NULL;
}

napi_value napi_rope_forward(napi_env env, napi_callback_info info) { return rope(env, info, 0); }
napi_value napi_rope_backward(napi_env env, napi_callback_info info) { return rope(env, info, 1); }
