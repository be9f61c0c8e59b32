/* The addon's JS entry points, one per `Kernels` method (see src/engine/backends/kernels.ts). */
#ifndef RELORA_KERNELS_H
#define RELORA_KERNELS_H

#include <node_api.h>

/* Element counts below this run on one thread: forking the pool costs more than it saves. */
#define RELORA_PAR_MIN 32768

napi_value napi_gemm(napi_env env, napi_callback_info info);
napi_value napi_gemm_builtin(napi_env env, napi_callback_info info);
napi_value napi_bench_gemm_direct(napi_env env, napi_callback_info info);

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

#endif
