#include "gemm.h"

#include <stddef.h>

#ifdef RELORA_USE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

const char *relora_blas_name(void) {
#ifdef RELORA_USE_ONEDNN
  return "onednn";
#else
  return "builtin";
#endif
}

/* C = beta * C over an M×N block, writing zeros (never reading) when beta == 0. */
static void scale_c(int64_t M, int64_t N, float beta, float *C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++) {
    float *row = C + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < N; j++) row[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < N; j++) row[j] *= beta;
    }
  }
}

int relora_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc) {
  if (M == 0 || N == 0) return 0;
  /* No product to form: libraries disagree on these degenerate cases, so handle them here. */
  if (K == 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, ldc);
    return 0;
  }
#ifdef RELORA_USE_ONEDNN
  dnnl_status_t st = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, alpha,
                                A, lda, B, ldb, beta, C, ldc);
  return st == dnnl_success ? 0 : (int)st;
#else
  relora_builtin_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  return 0;
#endif
}
