/* The counter-based hash shared with src/engine/rng.ts (dropout masks must match bit for bit). */
#ifndef RELORA_HASH_H
#define RELORA_HASH_H

#include <math.h>
#include <stdint.h>

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
static inline uint32_t to_uint32(double d) {
  if (!isfinite(d)) return 0;
  double t = fmod(trunc(d), 4294967296.0);
  if (t < 0) t += 4294967296.0;
  return (uint32_t)t;
}

#endif
