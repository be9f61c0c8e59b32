/*
 * Single-matrix row-major SGEMM, the primitive every product in the addon goes through:
 *   C = alpha * op(A) · op(B) + beta * C,  op(A) M×K, op(B) K×N, C M×N.
 * A is M×K (lda >= K) or, transposed, K×M (lda >= M); likewise B. When beta == 0, C is not read.
 * Built against oneDNN (dnnl_sgemm) when RELORA_USE_ONEDNN is defined, otherwise the built-in
 * blocked kernel. Callers validate sizes; these functions trust them.
 */
#ifndef RELORA_GEMM_H
#define RELORA_GEMM_H

#include <stdint.h>

/* Returns 0 on success, or the library's non-zero status code. */
int relora_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc);

/* The built-in blocked GEMM (always compiled; the fallback when oneDNN is absent). */
void relora_builtin_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                          const float *A, int64_t lda, const float *B, int64_t ldb,
                          float beta, float *C, int64_t ldc);

/* "onednn" or "builtin". */
const char *relora_blas_name(void);

#endif
