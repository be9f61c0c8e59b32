/*
 * The addon's JS entry points, one per `Kernels` method (src/engine/backends/kernels.ts) plus
 * the diagnostics that only the native backend has. Each parses and checks its arguments
 * (args.h), then calls the kernel of the same name in ../kernels/.
 */
#ifndef RELORA_BINDINGS_H
#define RELORA_BINDINGS_H

#include <node_api.h>

/* gemm.c */
napi_value napi_gemm(napi_env env, napi_callback_info info);
napi_value napi_gemm_builtin(napi_env env, napi_callback_info info);
napi_value napi_bench_gemm_direct(napi_env env, napi_callback_info info);
napi_value napi_gemm_bf16(napi_env env, napi_callback_info info);
napi_value napi_gemm_bf16_to_bf16(napi_env env, napi_callback_info info);
napi_value napi_to_bf16(napi_env env, napi_callback_info info);
napi_value napi_to_bf16_rows(napi_env env, napi_callback_info info);
napi_value napi_dropout_apply_bf16(napi_env env, napi_callback_info info);
napi_value napi_bf16_available(napi_env env, napi_callback_info info);
napi_value napi_bf16_isa(napi_env env, napi_callback_info info);

/* elementwise.c */
napi_value napi_add(napi_env env, napi_callback_info info);
napi_value napi_mul(napi_env env, napi_callback_info info);
napi_value napi_scale(napi_env env, napi_callback_info info);
napi_value napi_axpy(napi_env env, napi_callback_info info);
napi_value napi_add_scalar(napi_env env, napi_callback_info info);
napi_value napi_sum(napi_env env, napi_callback_info info);
napi_value napi_sum_squares(napi_env env, napi_callback_info info);
napi_value napi_fill(napi_env env, napi_callback_info info);

/* layers.c */
napi_value napi_embedding_forward(napi_env env, napi_callback_info info);
napi_value napi_embedding_backward(napi_env env, napi_callback_info info);
napi_value napi_rmsnorm_forward(napi_env env, napi_callback_info info);
napi_value napi_rmsnorm_backward(napi_env env, napi_callback_info info);
napi_value napi_rope_forward(napi_env env, napi_callback_info info);
napi_value napi_rope_backward(napi_env env, napi_callback_info info);
napi_value napi_attention_forward(napi_env env, napi_callback_info info);
napi_value napi_attention_backward(napi_env env, napi_callback_info info);
napi_value napi_attention_forward_bf16(napi_env env, napi_callback_info info);
napi_value napi_attention_backward_bf16(napi_env env, napi_callback_info info);
napi_value napi_silu_forward(napi_env env, napi_callback_info info);
napi_value napi_silu_backward(napi_env env, napi_callback_info info);
napi_value napi_swiglu_forward(napi_env env, napi_callback_info info);
napi_value napi_swiglu_backward(napi_env env, napi_callback_info info);

/* training.c: dropout, loss, optimizer */
napi_value napi_dropout_mask(napi_env env, napi_callback_info info);
napi_value napi_dropout_apply(napi_env env, napi_callback_info info);
napi_value napi_dropout_backward_add(napi_env env, napi_callback_info info);
napi_value napi_cross_entropy_forward(napi_env env, napi_callback_info info);
napi_value napi_cross_entropy_backward(napi_env env, napi_callback_info info);
napi_value napi_cross_entropy_backward_write(napi_env env, napi_callback_info info);
napi_value napi_cross_entropy_fused(napi_env env, napi_callback_info info);
napi_value napi_adamw_step(napi_env env, napi_callback_info info);

/* linalg.c */
napi_value napi_svd_values(napi_env env, napi_callback_info info);
napi_value napi_lapack_available(napi_env env, napi_callback_info info);

#endif
