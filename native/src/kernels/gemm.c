/*
 * SGEMM, the primitive every product in the addon goes through: one matrix through oneDNN (or
 * the built-in kernel, gemm_builtin.c), a batch of them, and a timing of the library itself.
 */
#include <stddef.h>
#include <stdlib.h>
#include <time.h>

#include "kernels.h"

#ifdef RELORA_USE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

/* Products smaller than this (multiply-adds) run one per thread instead of one at a time
 * with every thread on each: the library's own threading does not pay at this size. */
#define SMALL_PRODUCT (128.0 * 128.0 * 128.0)

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
  return relora_builtin_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
}

/* Elements spanned by a rows×cols matrix with row stride ld. */
static int64_t footprint(int64_t rows, int64_t cols, int64_t ld) {
  return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}

int relora_gemm_batched(relora_sgemm_fn sgemm, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, int64_t strideA, const float *B, int64_t ldb, int64_t strideB,
                        float beta, float *C, int64_t ldc, int64_t strideC, int64_t batch) {
  /* Batches whose C blocks overlap must run in order (e.g. stride 0 accumulating with beta 1). */
  int independent = batch > 1 && strideC >= footprint(M, N, ldc);
  int per_thread = independent && (double)M * (double)N * (double)K < SMALL_PRODUCT;
  int status = 0;
  if (per_thread) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t b = 0; b < batch; b++) {
      int st = sgemm(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta, C + b * strideC, ldc);
      if (st) {
#pragma omp atomic write
        status = st;
      }
    }
  } else {
    for (int64_t b = 0; b < batch && !status; b++) {
      status = sgemm(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta, C + b * strideC, ldc);
    }
  }
  return status;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 64-byte aligned floats (aligned_alloc needs a size that is a multiple of the alignment). */
static float *alloc_floats(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

/* The yardstick for the overhead of calling gemm from JS: the library call itself, timed in C. */
double relora_bench_gemm_direct(int transA, int transB, int64_t M, int64_t N, int64_t K, int64_t reps) {
  size_t nA = (size_t)(M * K), nB = (size_t)(K * N), nC = (size_t)(M * N);
  float *A = alloc_floats(nA), *B = alloc_floats(nB), *C = alloc_floats(nC);
  if (!A || !B || !C) {
    free(A);
    free(B);
    free(C);
    return RELORA_ENOMEM;
  }
  /* Deterministic values in [-1, 1): the data never affects speed, but NaN/denormals would. */
  for (size_t i = 0; i < nA; i++) A[i] = (float)((i * 2654435761u) % 2048u) / 1024.0f - 1.0f;
  for (size_t i = 0; i < nB; i++) B[i] = (float)((i * 40503u + 7u) % 2048u) / 1024.0f - 1.0f;
  for (size_t i = 0; i < nC; i++) C[i] = 0.0f;
  int64_t lda = transA ? M : K, ldb = transB ? K : N;
  double t0 = 0;
  int status = 0;
  for (int64_t r = -1; r < reps && !status; r++) {
    if (r == 0) t0 = now_seconds(); /* rep -1 is the warm-up */
#ifdef RELORA_USE_ONEDNN
    status = dnnl_sgemm(transA ? 'T' : 'N', transB ? 'T' : 'N', M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N) != dnnl_success;
#else
    status = relora_builtin_sgemm(transA, transB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
#endif
  }
  double elapsed = now_seconds() - t0;
  free(A);
  free(B);
  free(C);
  if (status) return -1;
  return 2.0 * (double)M * (double)N * (double)K * (double)reps / elapsed / 1e9;
}
