/* AdamW parameter update (PyTorch's formulation). */
#include <math.h>
#include <stdint.h>

#include "args.h"
#include "kernels.h"

napi_value napi_adamw_step(napi_env env, napi_callback_info info) {
  const char *k = "adamwStep";
  napi_value a[12];
  float *p, *g, *m, *v;
  size_t np, ng, nm, nv;
  int64_t n;
  double lr, b1, b2, eps, wd, bc1, bc2;
  if (!args_get(env, info, k, 12, a) || !arg_f32(env, a[0], k, "param", &p, &np) ||
      !arg_f32(env, a[1], k, "grad", &g, &ng) || !arg_f32(env, a[2], k, "m", &m, &nm) ||
      !arg_f32(env, a[3], k, "v", &v, &nv) || !arg_size(env, a[4], k, "n", &n) ||
      !arg_double(env, a[5], k, "lr", &lr) || !arg_double(env, a[6], k, "beta1", &b1) ||
      !arg_double(env, a[7], k, "beta2", &b2) || !arg_double(env, a[8], k, "eps", &eps) ||
      !arg_double(env, a[9], k, "weightDecay", &wd) || !arg_double(env, a[10], k, "bc1", &bc1) ||
      !arg_double(env, a[11], k, "bc2", &bc2) || !require_len(env, k, "param", np, n, "n") ||
      !require_len(env, k, "grad", ng, n, "n") || !require_len(env, k, "m", nm, n, "n") ||
      !require_len(env, k, "v", nv, n, "n")) {
    return NULL;
  }
  /* Per-step constants in double, then the element loop in float like PyTorch's fp32 kernel. */
  float decay = (float)(1.0 - lr * wd), step = (float)(lr / bc1), inv_bc2_sqrt = (float)(1.0 / sqrt(bc2));
  float fb1 = (float)b1, fb2 = (float)b2, c1 = (float)(1.0 - b1), c2 = (float)(1.0 - b2), feps = (float)eps;
  RELORA_PAR_SIMD_FOR(i, n, {
    float gi = g[i];
    float mi = fb1 * m[i] + c1 * gi;
    float vi = fb2 * v[i] + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step * (mi / (sqrtf(vi) * inv_bc2_sqrt + feps));
  });
  return NULL;
}
