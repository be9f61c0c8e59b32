/* AdamW parameter update (PyTorch's formulation). */
#include <math.h>
#include <stdint.h>

#include "kernels.h"
#include "simd.h"

typedef struct {
  float decay, step, inv_bc2_sqrt, b1, b2, c1, c2, eps, grad_scale;
} adamw_consts;

RELORA_CLONES RELORA_NO_CONTRACT static void adamw_span(float *p, const float *g, float *m, float *v, int64_t n, adamw_consts k) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) {
    float gi = g[i] * k.grad_scale;
    float mi = k.b1 * m[i] + k.c1 * gi;
    float vi = k.b2 * v[i] + k.c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * k.decay - k.step * (mi / (sqrtf(vi) * k.inv_bc2_sqrt + k.eps));
  }
}

void relora_adamw_step(float *p, const float *g, float *m, float *v, int64_t n, double lr, double b1, double b2,
                       double eps, double wd, double bc1, double bc2, float grad_scale) {
  /* Per-step constants in double, then the element loop in float like PyTorch's fp32 kernel. */
  adamw_consts k = {(float)(1.0 - lr * wd), (float)(lr / bc1), (float)(1.0 / sqrt(bc2)), (float)b1, (float)b2,
                    (float)(1.0 - b1), (float)(1.0 - b2), (float)eps, grad_scale};
  if (n < RELORA_PAR_MIN) {
    adamw_span(p, g, m, v, n, k);
    return;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) {
    int64_t len = n - b < RELORA_SPAN ? n - b : RELORA_SPAN;
    adamw_span(p + b, g + b, m + b, v + b, len, k);
  }
}
