/* The addon's JS entry points, one per `Kernels` method (see src/engine/backends/kernels.ts). */
#ifndef RELORA_KERNELS_H
#define RELORA_KERNELS_H

#include <node_api.h>

/* Element counts below this run on one thread: forking the pool costs more than it saves. */
#define RELORA_PAR_MIN 32768

/*
 * for (int64_t i = 0; i < n; i++) { body } — vectorised, and on every thread when n is large.
 * Small loops skip the OpenMP region entirely: entering one costs about half a microsecond even
 * with an if() clause that keeps it on one thread, which dominated small kernel calls.
 */
#define RELORA_PAR_SIMD_FOR(i, n, ...)                                      \
  do {                                                                      \
    if ((n) >= RELORA_PAR_MIN) {                                            \
      _Pragma("omp parallel for simd") for (int64_t i = 0; i < (n); i++) {  \
        __VA_ARGS__;                                                        \
      }                                                                     \
    } else {                                                                \
      _Pragma("omp simd") for (int64_t i = 0; i < (n); i++) { __VA_ARGS__; } \
    }                                                                       \
  } while (0)

napi_value napi_gemm(napi_env env, napi_callback_info info);
napi_value napi_gemm_builtin(napi_env env, napi_callback_info info);
napi_value napi_bench_gemm_direct(napi_env env, napi_callback_info info);
napi_value napi_svd_values(napi_env env, napi_callback_info info);
napi_value napi_lapack_available(napi_env env, napi_callback_info info);

napi_value napi_add(napi_env env, napi_callback_info info);
napi_value napi_mul(napi_env env, napi_callback_info info);
napi_value napi_scale(napi_env env, napi_callback_info info);
napi_value napi_axpy(napi_env env, napi_callback_info info);
napi_value napi_add_scalar(napi_env env, napi_callback_info info);
napi_value napi_sum(napi_env env, napi_callback_info info);
napi_value napi_sum_squares(napi_env env, napi_callback_info info);
napi_value napi_fill(napi_env env, napi_callback_info info);

napi_value napi_embedding_forward(napi_env env, napi_callback_info info);
napi_value napi_embedding_backward(napi_env env, napi_callback_info info);

napi_value napi_rmsnorm_forward(napi_env env, napi_callback_info info);
napi_value napi_rmsnorm_backward(napi_env env, napi_callback_info info);

napi_value napi_rope_forward(napi_env env, napi_callback_info info);
napi_value napi_rope_backward(napi_env env, napi_callback_info info);

napi_value napi_attention_forward(napi_env env, napi_callback_info info);
napi_value napi_attention_backward(napi_env env, napi_callback_info info);

napi_value napi_silu_forward(napi_env env, napi_callback_info info);
napi_value napi_silu_backward(napi_env env, napi_callback_info info);
napi_value napi_swiglu_forward(napi_env env, napi_callback_info info);
napi_value napi_swiglu_backward(napi_env env, napi_callback_info info);

napi_value napi_dropout_mask(napi_env env, napi_callback_info info);

napi_value napi_cross_entropy_forward(napi_env env, napi_callback_info info);
napi_value napi_cross_entropy_backward(napi_env env, napi_callback_info info);

napi_value napi_adamw_step(napi_env env, napi_callback_info info);

/* Fused kernels outside the Kernels interface (fused.c). */
napi_value napi_dropout_apply(napi_env env, napi_callback_info info);
napi_value napi_dropout_backward_add(napi_env env, napi_callback_info info);
napi_value napi_gemm_bf16(napi_env env, napi_callback_info info);
napi_value napi_cross_entropy_backward_write(napi_env env, napi_callback_info info);
napi_value napi_to_bf16(napi_env env, napi_callback_info info);
napi_value napi_bf16_available(napi_env env, napi_callback_info info);

#endif
