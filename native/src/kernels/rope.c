/* Rotary position embedding ("rotate half" layout) on [B, T, H, D] activations, tables [T, D/2]. */
#include <stdint.h>

#include "kernels.h"
#include "simd.h"

RELORA_CLONES RELORA_NO_CONTRACT static void rotate(const float *x1, const float *x2, const float *c, const float *s, float *o1, float *o2,
                                 int64_t half) {
#pragma omp simd
  for (int64_t i = 0; i < half; i++) {
    float v1 = x1[i], v2 = x2[i];
    o1[i] = v1 * c[i] - v2 * s[i];
    o2[i] = v2 * c[i] + v1 * s[i];
  }
}

RELORA_CLONES RELORA_NO_CONTRACT static void rotate_back_add(const float *d1, const float *d2, const float *c, const float *s, float *o1,
                                          float *o2, int64_t half) {
#pragma omp simd
  for (int64_t i = 0; i < half; i++) {
    float g1 = d1[i], g2 = d2[i];
    o1[i] += g1 * c[i] + g2 * s[i];
    o2[i] += g2 * c[i] - g1 * s[i];
  }
}

/* out1 = x1*c - x2*s ; out2 = x2*c + x1*s, with x1, x2 the two halves of each head. */
void relora_rope_forward(const float *x, const float *cos, const float *sin, float *out, int64_t B, int64_t T,
                         int64_t H, int64_t D) {
  int64_t half = D / 2, heads = B * T * H;
#pragma omp parallel for if (heads * D >= RELORA_PAR_MIN)
  for (int64_t row = 0; row < heads; row++) {
    int64_t t = (row / H) % T;
    const float *c = cos + t * half, *s = sin + t * half, *x1 = x + row * D, *x2 = x1 + half;
    float *o1 = out + row * D, *o2 = o1 + half;
    rotate(x1, x2, c, s, o1, o2, half);
  }
}

/* The inverse rotation, accumulated: dx1 += d1*c + d2*s ; dx2 += d2*c - d1*s. */
void relora_rope_backward(const float *dout, const float *cos, const float *sin, float *dx, int64_t B, int64_t T,
                          int64_t H, int64_t D) {
  int64_t half = D / 2, heads = B * T * H;
#pragma omp parallel for if (heads * D >= RELORA_PAR_MIN)
  for (int64_t row = 0; row < heads; row++) {
    int64_t t = (row / H) % T;
    const float *c = cos + t * half, *s = sin + t * half, *d1 = dout + row * D, *d2 = d1 + half;
    float *o1 = dx + row * D, *o2 = o1 + half;
    rotate_back_add(d1, d2, c, s, o1, o2, half);
  }
}
