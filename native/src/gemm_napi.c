/* JS entry points for batched GEMM and the in-C GEMM benchmark. */
#include "kernels.h"

#include <stdlib.h>
#include <time.h>

#include "args.h"
#include "gemm.h"

#ifdef RELORA_USE_ONEDNN
#include <oneapi/dnnl/dnnl.h>
#endif

/* Products smaller than this (multiply-adds) run one per thread instead of one at a time
 * with every thread on each: the library's own threading does not pay at this size. */
#define SMALL_PRODUCT (128.0 * 128.0 * 128.0)

/* Elements spanned by a rows×cols matrix with row stride ld. */
static int64_t footprint(int64_t rows, int64_t cols, int64_t ld) {
  return rows == 0 || cols == 0 ? 0 : (rows - 1) * ld + cols;
}

/* Validates one operand; *span receives its per-batch footprint. */
static int check_operand(napi_env env, const char *k, const char *name, size_t len, int64_t rows, int64_t cols,
                         int64_t ld, int64_t stride, int64_t batch, int used, int64_t *span) {
  if (ld < cols) {
    return throw_error(env, k, "leading dimension of %s is %lld but its rows have %lld columns",
                       name, (long long)ld, (long long)cols);
  }
  *span = footprint(rows, cols, ld);
  if (!used || batch == 0 || *span == 0) return 1;
  double need = (double)(batch - 1) * (double)stride + (double)*span;
  if ((double)len < need) {
    return throw_error(env, k, "%s has %zu elements but a %lld×%lld matrix with leading dimension %lld "
                       "and batch stride %lld over %lld batches needs %.0f",
                       name, len, (long long)rows, (long long)cols, (long long)ld, (long long)stride,
                       (long long)batch, need);
  }
  return 1;
}

/* The built-in kernel behind relora_sgemm's interface (it handles K = 0 and alpha = 0 itself). */
static int builtin_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb,
                         float beta, float *C, int64_t ldc) {
  relora_builtin_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  return 0;
}

typedef int (*sgemm_fn)(int, int, int64_t, int64_t, int64_t, float, const float *, int64_t, const float *,
                        int64_t, float, float *, int64_t);

static napi_value gemm_entry(napi_env env, napi_callback_info info, const char *k, sgemm_fn sgemm) {
  napi_value a[17];
  if (!args_get(env, info, k, 17, a)) return NULL;
  int transA, transB;
  int64_t M, N, K, lda, sA, ldb, sB, ldc, sC, batch;
  double alpha, beta;
  float *A, *B, *C;
  size_t nA, nB, nC;
  if (!arg_bool(env, a[0], k, "transA", &transA) || !arg_bool(env, a[1], k, "transB", &transB) ||
      !arg_size(env, a[2], k, "M", &M) || !arg_size(env, a[3], k, "N", &N) || !arg_size(env, a[4], k, "K", &K) ||
      !arg_double(env, a[5], k, "alpha", &alpha) ||
      !arg_f32(env, a[6], k, "A", &A, &nA) || !arg_size(env, a[7], k, "lda", &lda) ||
      !arg_size(env, a[8], k, "strideA", &sA) ||
      !arg_f32(env, a[9], k, "B", &B, &nB) || !arg_size(env, a[10], k, "ldb", &ldb) ||
      !arg_size(env, a[11], k, "strideB", &sB) ||
      !arg_double(env, a[12], k, "beta", &beta) ||
      !arg_f32(env, a[13], k, "C", &C, &nC) || !arg_size(env, a[14], k, "ldc", &ldc) ||
      !arg_size(env, a[15], k, "strideC", &sC) || !arg_size(env, a[16], k, "batch", &batch)) {
    return NULL;
  }
  /* Nothing to compute: like the js reference, accept any leading dimensions. */
  if (M == 0 || N == 0 || batch == 0) return NULL;
  int64_t spanA, spanB, spanC;
  if (!check_operand(env, k, "A", nA, transA ? K : M, transA ? M : K, lda, sA, batch, K > 0, &spanA) ||
      !check_operand(env, k, "B", nB, transB ? N : K, transB ? K : N, ldb, sB, batch, K > 0, &spanB) ||
      !check_operand(env, k, "C", nC, M, N, ldc, sC, batch, 1, &spanC)) {
    return NULL;
  }

  /* Batches whose C blocks overlap must run in order (e.g. stride 0 accumulating with beta 1). */
  int independent = batch > 1 && sC >= spanC;
  int per_thread = independent && (double)M * (double)N * (double)K < SMALL_PRODUCT;
  int status = 0;
  if (per_thread) {
#pragma omp parallel for schedule(dynamic)
    for (int64_t b = 0; b < batch; b++) {
      int st = sgemm(transA, transB, M, N, K, (float)alpha, A + b * sA, lda, B + b * sB, ldb,
                            (float)beta, C + b * sC, ldc);
      if (st) {
#pragma omp atomic write
        status = st;
      }
    }
  } else {
    for (int64_t b = 0; b < batch && !status; b++) {
      status = sgemm(transA, transB, M, N, K, (float)alpha, A + b * sA, lda, B + b * sB, ldb,
                            (float)beta, C + b * sC, ldc);
    }
  }
  if (status) throw_error(env, k, "%s sgemm failed with status %d", relora_blas_name(), status);
  return NULL;
}

napi_value napi_gemm(napi_env env, napi_callback_info info) { return gemm_entry(env, info, "gemm", relora_sgemm); }

/* Always the built-in kernel, whatever the build uses: lets tests cover the fallback everywhere. */
napi_value napi_gemm_builtin(napi_env env, napi_callback_info info) {
  return gemm_entry(env, info, "gemmBuiltin", builtin_sgemm);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* benchGemmDirect(transA, transB, M, N, K, reps) -> GFLOP/s of the library call itself, timed
 * in C on C-allocated buffers: the yardstick for the JS-facing wrapper's overhead. */
napi_value napi_bench_gemm_direct(napi_env env, napi_callback_info info) {
  const char *k = "benchGemmDirect";
  napi_value a[6];
  if (!args_get(env, info, k, 6, a)) return NULL;
  int transA, transB;
  int64_t M, N, K, reps;
  if (!arg_bool(env, a[0], k, "transA", &transA) || !arg_bool(env, a[1], k, "transB", &transB) ||
      !arg_size(env, a[2], k, "M", &M) || !arg_size(env, a[3], k, "N", &N) || !arg_size(env, a[4], k, "K", &K) ||
      !arg_size(env, a[5], k, "reps", &reps)) {
    return NULL;
  }
  if (M < 1 || N < 1 || K < 1 || reps < 1) {
    throw_error(env, k, "M, N, K and reps must be at least 1");
    return NULL;
  }
  size_t nA = (size_t)(M * K), nB = (size_t)(K * N), nC = (size_t)(M * N);
  float *A = aligned_alloc(64, (nA * sizeof(float) + 63) / 64 * 64);
  float *B = aligned_alloc(64, (nB * sizeof(float) + 63) / 64 * 64);
  float *C = aligned_alloc(64, (nC * sizeof(float) + 63) / 64 * 64);
  if (!A || !B || !C) {
    free(A);
    free(B);
    free(C);
    throw_error(env, k, "could not allocate %zu floats", nA + nB + nC);
    return NULL;
  }
  /* Deterministic values in [-1, 1): the data never affects speed, but NaN/denormals would. */
  for (size_t i = 0; i < nA; i++) A[i] = (float)((i * 2654435761u) % 2048u) / 1024.0f - 1.0f;
  for (size_t i = 0; i < nB; i++) B[i] = (float)((i * 40503u + 7u) % 2048u) / 1024.0f - 1.0f;
  for (size_t i = 0; i < nC; i++) C[i] = 0.0f;
  int64_t lda = transA ? M : K, ldb = transB ? K : N;
  char ta = transA ? 'T' : 'N', tb = transB ? 'T' : 'N';
  double t0 = 0;
  int status = 0;
  for (int64_t r = -1; r < reps && !status; r++) {
    if (r == 0) t0 = now_seconds(); /* rep -1 is the warm-up */
#ifdef RELORA_USE_ONEDNN
    status = dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N) != dnnl_success;
#else
    (void)ta;
    (void)tb;
    relora_builtin_sgemm(transA, transB, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, N);
#endif
  }
  double elapsed = now_seconds() - t0;
  free(A);
  free(B);
  free(C);
  if (status) {
    throw_error(env, k, "sgemm failed");
    return NULL;
  }
  napi_value out;
  napi_create_double(env, 2.0 * (double)M * (double)N * (double)K * (double)reps / elapsed / 1e9, &out);
  return out;
}
