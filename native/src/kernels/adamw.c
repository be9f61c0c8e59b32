/* AdamW parameter update (PyTorch's formulation). */
#include <math.h>
#include <stdint.h>

#include "kernels.h"

void relora_adamw_step(float *p, const float *g, float *m, float *v, int64_t n, double lr, double b1, double b2,
                       double eps, double wd, double bc1, double bc2) {
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
}
