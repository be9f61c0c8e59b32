/*
 * Runtime CPU dispatch for the vectorised loops. The addon is built for baseline x86-64 (SSE2)
 * so one binary runs everywhere; functions marked RELORA_CLONES are compiled again for
 * x86-64-v4 (AVX-512) and x86-64-v3 (AVX2 + FMA) and the loader picks the best copy for the CPU
 * (GCC target_clones). Other compilers and architectures get the single portable copy.
 */
#ifndef RELORA_SIMD_H
#define RELORA_SIMD_H

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && __GNUC__ >= 11
#define RELORA_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), noinline))
#else
#define RELORA_CLONES __attribute__((noinline))
#endif

/* No fused multiply-add where the portable copy has none: a cloned loop then gives bit for bit the
 * portable copy's values (AdamW, RMSNorm's backward and rope keep fp32 training reproducible
 * across CPUs). Reductions in double may still sum in another order. */
#if defined(__GNUC__) && !defined(__clang__)
#define RELORA_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define RELORA_NO_CONTRACT
#endif

/* Elements per call of a cloned span function inside a parallel loop. */
#define RELORA_SPAN 8192

#endif
