/*
 * expf that the compiler can vectorise (libm's expf is an opaque call, which left softmax,
 * cross-entropy and SiLU scalar and made exp their bottleneck). Cephes' polynomial on
 * [-ln2/2, ln2/2] after range reduction; within 2 ulp of expf over the whole float range,
 * with IEEE behaviour at the edges: exp(-inf) = 0, exp(+inf) = inf, NaN stays NaN.
 * Branch-free so `#pragma omp simd` loops over it vectorise.
 */
#ifndef RELORA_FAST_EXP_H
#define RELORA_FAST_EXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#pragma omp declare simd notinbranch
static inline float relora_expf(float x) {
  const float hi = 88.72283935546875f, lo = -87.3365447504f;
  float xc = x > hi ? hi : x;
  xc = xc < lo ? lo : xc;
  /* n = round(x / ln2) via the 1.5*2^23 trick (no floorf call, so SSE2 vectorises it). */
  const float shifter = 12582912.0f;
  float n = (xc * 1.44269504088896341f + shifter) - shifter;
  float r = xc - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * z + r + 1.0f;
  /* p * 2^n, split as 2^(n - n/2) * 2^(n/2) so n = 128 (x near hi) does not overflow the exponent. */
  int32_t ni = (int32_t)n, h = ni / 2;
  int32_t b1 = (h + 127) << 23, b2 = (ni - h + 127) << 23;
  float s1, s2;
  memcpy(&s1, &b1, sizeof s1);
  memcpy(&s2, &b2, sizeof s2);
  float y = p * s1 * s2;
  y = x > hi ? INFINITY : y;
  y = x < lo ? 0.0f : y;
  return x != x ? x : y;
}

#endif
