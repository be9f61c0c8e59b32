/* Bindings for the GEMM kernels: batched fp32 GEMM, the bf16 products, the in-C benchmark. */
#include <stdint.h>

#include "../kernels/kernels.h"
#include "args.h"
#include "bindings.h"

/* Elements spanned by a rows×cols matrix with row stride ld. */
static double span(int64_t rows, int64_t cols, int64_t ld) {
  return rows == 0 || cols == 0 ? 0 : (double)(rows - 1) * (double)ld + (double)cols;
}

/* Validates one operand of a batched product. */
static int check_operand(napi_env env, const char *k, const char *name, size_t len, int64_t rows, int64_t cols,
                         int64_t ld, int64_t stride, int64_t batch, int used) {
  if (ld < cols) {
    return throw_error(env, k, "leading dimension of %s is %lld but its rows have %lld columns",
                       name, (long long)ld, (long long)cols);
  }
  double one = span(rows, cols, ld);
  if (!used || batch == 0 || one == 0) return 1;
  double need = (double)(batch - 1) * (double)stride + one;
  if ((double)len < need) {
    return throw_error(env, k, "%s has %zu elements but a %lld×%lld matrix with leading dimension %lld "
                       "and batch stride %lld over %lld batches needs %.0f",
                       name, len, (long long)rows, (long long)cols, (long long)ld, (long long)stride,
                       (long long)batch, need);
  }
  return 1;
}

/* gemm(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch) */
static napi_value gemm_entry(napi_env env, napi_callback_info info, const char *k, relora_sgemm_fn sgemm) {
  napi_value a[17];
  int transA, transB;
  int64_t M, N, K, lda, sA, ldb, sB, ldc, sC, batch;
  double alpha, beta;
  float *A, *B, *C;
  size_t nA, nB, nC;
  if (!args_get(env, info, k, 17, a) || !arg_bool(env, a[0], k, "transA", &transA) ||
      !arg_bool(env, a[1], k, "transB", &transB) || !arg_size(env, a[2], k, "M", &M) ||
      !arg_size(env, a[3], k, "N", &N) || !arg_size(env, a[4], k, "K", &K) ||
      !arg_double(env, a[5], k, "alpha", &alpha) || !arg_f32(env, a[6], k, "A", &A, &nA) ||
      !arg_size(env, a[7], k, "lda", &lda) || !arg_size(env, a[8], k, "strideA", &sA) ||
      !arg_f32(env, a[9], k, "B", &B, &nB) || !arg_size(env, a[10], k, "ldb", &ldb) ||
      !arg_size(env, a[11], k, "strideB", &sB) || !arg_double(env, a[12], k, "beta", &beta) ||
      !arg_f32(env, a[13], k, "C", &C, &nC) || !arg_size(env, a[14], k, "ldc", &ldc) ||
      !arg_size(env, a[15], k, "strideC", &sC) || !arg_size(env, a[16], k, "batch", &batch)) {
    return NULL;
  }
  /* Nothing to compute: like the js reference, accept any leading dimensions. */
  if (M == 0 || N == 0 || batch == 0) return NULL;
  if (!check_operand(env, k, "A", nA, transA ? K : M, transA ? M : K, lda, sA, batch, K > 0) ||
      !check_operand(env, k, "B", nB, transB ? N : K, transB ? K : N, ldb, sB, batch, K > 0) ||
      !check_operand(env, k, "C", nC, M, N, ldc, sC, batch, 1)) {
    return NULL;
  }
  int status = relora_gemm_batched(sgemm, transA, transB, M, N, K, (float)alpha, A, lda, sA, B, ldb, sB, (float)beta,
                                   C, ldc, sC, batch);
  if (status) throw_error(env, k, "%s sgemm failed with status %d", relora_blas_name(), status);
  return NULL;
}

napi_value napi_gemm(napi_env env, napi_callback_info info) { return gemm_entry(env, info, "gemm", relora_sgemm); }

/* Always the built-in kernel, whatever the build uses: lets tests cover the fallback everywhere. */
napi_value napi_gemm_builtin(napi_env env, napi_callback_info info) {
  return gemm_entry(env, info, "gemmBuiltin", relora_builtin_sgemm);
}

/* benchGemmDirect(transA, transB, M, N, K, reps) -> GFLOP/s of the library call itself. */
napi_value napi_bench_gemm_direct(napi_env env, napi_callback_info info) {
  const char *k = "benchGemmDirect";
  napi_value a[6];
  int transA, transB;
  int64_t M, N, K, reps;
  if (!args_get(env, info, k, 6, a) || !arg_bool(env, a[0], k, "transA", &transA) ||
      !arg_bool(env, a[1], k, "transB", &transB) || !arg_size(env, a[2], k, "M", &M) ||
      !arg_size(env, a[3], k, "N", &N) || !arg_size(env, a[4], k, "K", &K) || !arg_size(env, a[5], k, "reps", &reps)) {
    return NULL;
  }
  if (M < 1 || N < 1 || K < 1 || reps < 1) {
    throw_error(env, k, "M, N, K and reps must be at least 1");
    return NULL;
  }
  double gflops = relora_bench_gemm_direct(transA, transB, M, N, K, reps);
  if (gflops == RELORA_ENOMEM) {
    throw_error(env, k, "could not allocate %.0f floats", (double)M * K + (double)K * N + (double)M * N);
    return NULL;
  }
  if (gflops < 0) {
    throw_error(env, k, "sgemm failed");
    return NULL;
  }
  napi_value out;
  napi_create_double(env, gflops, &out);
  return out;
}

/* gemmBf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): A and B packed bf16,
 * two values per float element, C fp32; gemmBf16ToBf16(transA, transB, M, N, K, alpha, A, lda, B,
 * ldb, C, ldc): the same with beta 0 and C packed bf16. */
static napi_value gemm_bf16_entry(napi_env env, napi_callback_info info, const char *k, int c_bf16) {
  napi_value a[13];
  int transA, transB;
  int64_t M, N, K, lda, ldb, ldc;
  double alpha, beta = 0.0;
  float *A, *B, *C;
  size_t nA, nB, nC;
  /* Without beta the arguments after ldb sit one place earlier. */
  const int c = c_bf16 ? 10 : 11;
  if (!args_get(env, info, k, c_bf16 ? 12 : 13, a) || !arg_bool(env, a[0], k, "transA", &transA) ||
      !arg_bool(env, a[1], k, "transB", &transB) || !arg_size(env, a[2], k, "M", &M) ||
      !arg_size(env, a[3], k, "N", &N) || !arg_size(env, a[4], k, "K", &K) ||
      !arg_double(env, a[5], k, "alpha", &alpha) || !arg_f32(env, a[6], k, "A", &A, &nA) ||
      !arg_size(env, a[7], k, "lda", &lda) || !arg_f32(env, a[8], k, "B", &B, &nB) ||
      !arg_size(env, a[9], k, "ldb", &ldb) || (!c_bf16 && !arg_double(env, a[10], k, "beta", &beta)) ||
      !arg_f32(env, a[c], k, "C", &C, &nC) || !arg_size(env, a[c + 1], k, "ldc", &ldc)) {
    return NULL;
  }
  if (M == 0 || N == 0) return NULL;
  int64_t aRows = transA ? K : M, aCols = transA ? M : K, bRows = transB ? N : K, bCols = transB ? K : N;
  if (lda < aCols || ldb < bCols || ldc < N) {
    throw_error(env, k, "a leading dimension is smaller than its row (lda %lld, ldb %lld, ldc %lld)", (long long)lda,
                (long long)ldb, (long long)ldc);
    return NULL;
  }
  if (K > 0 && (2.0 * (double)nA < span(aRows, aCols, lda) || 2.0 * (double)nB < span(bRows, bCols, ldb))) {
    throw_error(env, k, "A (%zu floats) or B (%zu floats) is too small for its bf16 shape", nA, nB);
    return NULL;
  }
  if ((c_bf16 ? 2.0 : 1.0) * (double)nC < span(M, N, ldc)) {
    throw_error(env, k, "C has %zu floats, too few for %lld×%lld %s values with ldc %lld", nC, (long long)M, (long long)N,
                c_bf16 ? "packed bf16" : "fp32", (long long)ldc);
    return NULL;
  }
  int st = c_bf16 ? relora_gemm_bf16_to_bf16(transA, transB, M, N, K, (float)alpha, (const uint16_t *)A, lda,
                                             (const uint16_t *)B, ldb, (uint16_t *)C, ldc)
                  : relora_gemm_bf16(transA, transB, M, N, K, (float)alpha, (const uint16_t *)A, lda, (const uint16_t *)B,
                                     ldb, (float)beta, C, ldc);
  if (st == RELORA_ENOBF16) throw_error(env, k, "this build has no oneDNN; bf16 products are unavailable");
  else if (st) throw_error(env, k, "oneDNN bf16 matmul failed with status %d", st);
  return NULL;
}

napi_value napi_gemm_bf16(napi_env env, napi_callback_info info) {
  return gemm_bf16_entry(env, info, "gemmBf16", 0);
}

napi_value napi_gemm_bf16_to_bf16(napi_env env, napi_callback_info info) {
  return gemm_bf16_entry(env, info, "gemmBf16ToBf16", 1);
}

/* (src, dst, n) of the two rounding kernels: src holds n floats, dst packed ? ceil(n/2) : n. */
/* toBf16(src, dst, n): dst (packed, ceil(n/2) floats) = bf16(src[0..n)). */
napi_value napi_to_bf16(napi_env env, napi_callback_info info) {
  const char *k = "toBf16";
  napi_value a[3];
  float *src, *dst;
  size_t ns, nd;
  int64_t n;
  if (args_get(env, info, k, 3, a) && arg_f32(env, a[0], k, "src", &src, &ns) && arg_f32(env, a[1], k, "dst", &dst, &nd) &&
      arg_size(env, a[2], k, "n", &n) && require_len(env, k, "src", ns, n, "n") &&
      require_len(env, k, "dst", nd, (n + 1) / 2, "ceil(n/2)")) {
    relora_to_bf16(src, (uint16_t *)dst, n);
  }
  return NULL;
}

/* toBf16Rows(src, dst, rows, cols, ld): dst's bf16 row r, from bf16 value r·ld on = bf16(src row r). */
napi_value napi_to_bf16_rows(napi_env env, napi_callback_info info) {
  const char *k = "toBf16Rows";
  napi_value a[5];
  float *src, *dst;
  size_t ns, nd;
  int64_t rows, cols, ld, n, span;
  if (!args_get(env, info, k, 5, a) || !arg_f32(env, a[0], k, "src", &src, &ns) || !arg_f32(env, a[1], k, "dst", &dst, &nd) ||
      !arg_size(env, a[2], k, "rows", &rows) || !arg_size(env, a[3], k, "cols", &cols) || !arg_size(env, a[4], k, "ld", &ld)) {
    return NULL;
  }
  if (ld < cols) {
    throw_error(env, k, "ld = %lld is less than cols = %lld", (long long)ld, (long long)cols);
    return NULL;
  }
  if (!mul_size(env, k, rows, cols, &n) || !mul_size(env, k, rows > 0 ? rows - 1 : 0, ld, &span)) return NULL;
  span = rows > 0 ? span + cols : 0;
  if (require_len(env, k, "src", ns, n, "rows*cols") && require_len(env, k, "dst", nd, (span + 1) / 2, "ceil(((rows-1)*ld+cols)/2)")) {
    relora_to_bf16_rows(src, (uint16_t *)dst, rows, cols, ld);
  }
  return NULL;
}

/* bf16Available(): whether gemmBf16 works here (oneDNN present and able to run a bf16 matmul). */
napi_value napi_bf16_available(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_get_boolean(env, relora_bf16_available(), &out);
  return out;
}

/* bf16Isa(): "amx", "avx512_bf16" or "none" — the bf16 instructions oneDNN detected on this CPU. */
napi_value napi_bf16_isa(napi_env env, napi_callback_info info) {
  (void)info;
  static const char *names[] = {"none", "avx512_bf16", "amx"};
  napi_value out;
  napi_create_string_utf8(env, names[relora_bf16_isa()], NAPI_AUTO_LENGTH, &out);
  return out;
}
