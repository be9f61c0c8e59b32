/*
 * bfloat16 products for the frozen weights of LoRA layers (LoraOptions.frozenBf16), the bulk of a
 * ReLoRA step: toBf16 rounds fp32 to bf16 (nearest even), and gemmBf16 computes
 * C = alpha·op(A)·op(B) + beta·C from bf16 A and B into fp32 C (fp32 accumulation) with oneDNN's
 * matmul primitive, which runs on AMX or AVX512-BF16 where the CPU has them.
 *
 * bf16 arrays travel as Float32Arrays holding two bf16 values per element (so they come from
 * the same buffer pool); a bf16 matrix of n values needs ceil(n / 2) floats. gemmBf16 needs
 * oneDNN; builds without it report `false` from bf16Available and throw.
 *
 * Creating a primitive costs far more than running a small one, so primitives are cached by
 * shape, layout, alpha and beta; each entry keeps its memory objects and only swaps pointers.
 * Called from the JS thread only (never inside an OpenMP region).
 */
#include "kernels.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "gemm.h"
#include "simd.h"

#ifdef RELORA_USE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

typedef struct {
  int used;
  int transA, transB;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  dnnl_primitive_t prim;
  dnnl_memory_t a, b, c;
} bf16_entry;

#define CACHE_SIZE 128
static bf16_entry cache[CACHE_SIZE];
static int next_victim = 0;
static dnnl_engine_t engine = NULL;
static dnnl_stream_t stream = NULL;

static void release(bf16_entry *e) {
  if (!e->used) return;
  dnnl_primitive_destroy(e->prim);
  dnnl_memory_destroy(e->a);
  dnnl_memory_destroy(e->b);
  dnnl_memory_destroy(e->c);
  e->used = 0;
}

/* Row-major rows×cols matrix with row stride ld, or its transpose stored cols×rows. */
static dnnl_status_t matrix_desc(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t ld, int trans,
                                 dnnl_data_type_t dt) {
  dnnl_dims_t dims = {rows, cols};
  dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
  return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
}

static dnnl_status_t build(bf16_entry *e) {
  dnnl_status_t st;
  if (!engine) {
    if ((st = dnnl_engine_create(&engine, dnnl_cpu, 0)) != dnnl_success) return st;
    if ((st = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags)) != dnnl_success) return st;
  }
  dnnl_memory_desc_t a, b, c;
  if ((st = matrix_desc(&a, e->M, e->K, e->lda, e->transA, dnnl_bf16)) != dnnl_success ||
      (st = matrix_desc(&b, e->K, e->N, e->ldb, e->transB, dnnl_bf16)) != dnnl_success ||
      (st = matrix_desc(&c, e->M, e->N, e->ldc, 0, dnnl_f32)) != dnnl_success) {
    return st;
  }
  dnnl_matmul_desc_t desc;
  if ((st = dnnl_matmul_desc_init(&desc, &a, &b, NULL, &c)) != dnnl_success) return st;
  dnnl_primitive_attr_t attr;
  if ((st = dnnl_primitive_attr_create(&attr)) != dnnl_success) return st;
  dnnl_post_ops_t ops = NULL;
  st = dnnl_success;
  if (e->alpha != 1.0f) st = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &e->alpha);
  if (st == dnnl_success && e->beta != 0.0f) {
    st = dnnl_post_ops_create(&ops);
    if (st == dnnl_success) st = dnnl_post_ops_append_sum(ops, e->beta);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, ops);
  }
  dnnl_primitive_desc_t pd = NULL;
  if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
  if (st == dnnl_success) st = dnnl_primitive_create(&e->prim, pd);
  if (pd) dnnl_primitive_desc_destroy(pd);
  if (ops) dnnl_post_ops_destroy(ops);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success) return st;
  /* Placeholder handles; every call sets the real pointers. */
  if ((st = dnnl_memory_create(&e->a, &a, engine, DNNL_MEMORY_NONE)) != dnnl_success ||
      (st = dnnl_memory_create(&e->b, &b, engine, DNNL_MEMORY_NONE)) != dnnl_success ||
      (st = dnnl_memory_create(&e->c, &c, engine, DNNL_MEMORY_NONE)) != dnnl_success) {
    return st;
  }
  e->used = 1;
  return dnnl_success;
}

static int bf16_gemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, int64_t lda,
                     const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  bf16_entry *e = NULL;
  for (int i = 0; i < CACHE_SIZE && !e; i++) {
    bf16_entry *c = &cache[i];
    if (c->used && c->transA == transA && c->transB == transB && c->M == M && c->N == N && c->K == K &&
        c->lda == lda && c->ldb == ldb && c->ldc == ldc && c->alpha == alpha && c->beta == beta) {
      e = c;
    }
  }
  if (!e) {
    e = &cache[next_victim];
    next_victim = (next_victim + 1) % CACHE_SIZE;
    release(e);
    *e = (bf16_entry){0, transA, transB, M, N, K, lda, ldb, ldc, alpha, beta, NULL, NULL, NULL, NULL};
    dnnl_status_t st = build(e);
    if (st != dnnl_success) {
      release(e);
      return (int)st;
    }
  }
  dnnl_memory_set_data_handle(e->a, (void *)A);
  dnnl_memory_set_data_handle(e->b, (void *)B);
  dnnl_memory_set_data_handle(e->c, C);
  dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
  dnnl_status_t st = dnnl_primitive_execute(e->prim, stream, 3, args);
  if (st == dnnl_success) st = dnnl_stream_wait(stream);
  return (int)st;
}
#endif

/* Elements of a bf16 rows×cols matrix with row stride ld. */
static double bf16_span(int64_t rows, int64_t cols, int64_t ld) { return rows == 0 || cols == 0 ? 0 : (double)(rows - 1) * ld + cols; }

/* gemmBf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc): A, B packed bf16. */
napi_value napi_gemm_bf16(napi_env env, napi_callback_info info) {
  const char *k = "gemmBf16";
  napi_value a[13];
  int transA, transB;
  int64_t M, N, K, lda, ldb, ldc;
  double alpha, beta;
  float *A, *B, *C;
  size_t nA, nB, nC;
  if (!args_get(env, info, k, 13, a) || !arg_bool(env, a[0], k, "transA", &transA) ||
      !arg_bool(env, a[1], k, "transB", &transB) || !arg_size(env, a[2], k, "M", &M) ||
      !arg_size(env, a[3], k, "N", &N) || !arg_size(env, a[4], k, "K", &K) ||
      !arg_double(env, a[5], k, "alpha", &alpha) || !arg_f32(env, a[6], k, "A", &A, &nA) ||
      !arg_size(env, a[7], k, "lda", &lda) || !arg_f32(env, a[8], k, "B", &B, &nB) ||
      !arg_size(env, a[9], k, "ldb", &ldb) || !arg_double(env, a[10], k, "beta", &beta) ||
      !arg_f32(env, a[11], k, "C", &C, &nC) || !arg_size(env, a[12], k, "ldc", &ldc)) {
    return NULL;
  }
  if (M == 0 || N == 0) return NULL;
  int64_t aRows = transA ? K : M, aCols = transA ? M : K, bRows = transB ? N : K, bCols = transB ? K : N;
  if (lda < aCols || ldb < bCols || ldc < N) {
    throw_error(env, k, "a leading dimension is smaller than its row (lda %lld, ldb %lld, ldc %lld)", (long long)lda,
                (long long)ldb, (long long)ldc);
    return NULL;
  }
  /* Two bf16 values per float element. */
  if (K > 0 && (2.0 * (double)nA < bf16_span(aRows, aCols, lda) || 2.0 * (double)nB < bf16_span(bRows, bCols, ldb))) {
    throw_error(env, k, "A (%zu floats) or B (%zu floats) is too small for its bf16 shape", nA, nB);
    return NULL;
  }
  if ((double)nC < bf16_span(M, N, ldc)) {
    throw_error(env, k, "C has %zu elements, too few for %lld×%lld with ldc %lld", nC, (long long)M, (long long)N, (long long)ldc);
    return NULL;
  }
#ifdef RELORA_USE_ONEDNN
  int st;
  if (K == 0 || alpha == 0.0) {
    st = relora_sgemm(transA, transB, M, N, 0, 1.0f, NULL, 1, NULL, 1, (float)beta, C, ldc);
  } else {
    st = bf16_gemm(transA, transB, M, N, K, (float)alpha, (const uint16_t *)A, lda, (const uint16_t *)B, ldb, (float)beta, C, ldc);
  }
  if (st) throw_error(env, k, "oneDNN bf16 matmul failed with status %d", st);
#else
  (void)A;
  (void)B;
  throw_error(env, k, "this build has no oneDNN; bf16 products are unavailable");
#endif
  return NULL;
}

/* Round to nearest even, keeping NaNs NaN (a payload in the low bits only would round to Inf). */
static inline uint16_t bf16_round(uint32_t u) {
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

RELORA_CLONES static void to_bf16_span(const uint32_t *src, uint16_t *dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dst[i] = bf16_round(src[i]);
}

/* toBf16(src, dst, n): dst (packed, ceil(n/2) floats) = bf16(src[0..n)). */
napi_value napi_to_bf16(napi_env env, napi_callback_info info) {
  const char *k = "toBf16";
  napi_value a[3];
  float *src, *dst;
  size_t ns, nd;
  int64_t n;
  if (!args_get(env, info, k, 3, a) || !arg_f32(env, a[0], k, "src", &src, &ns) || !arg_f32(env, a[1], k, "dst", &dst, &nd) ||
      !arg_size(env, a[2], k, "n", &n) || !require_len(env, k, "src", ns, n, "n") ||
      !require_len(env, k, "dst", nd, (n + 1) / 2, "ceil(n/2)")) {
    return NULL;
  }
  const uint32_t *s = (const uint32_t *)src;
  uint16_t *d = (uint16_t *)dst;
  if (n < RELORA_PAR_MIN) {
    to_bf16_span(s, d, n);
    return NULL;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) to_bf16_span(s + b, d + b, n - b < RELORA_SPAN ? n - b : RELORA_SPAN);
  return NULL;
}

/* bf16Available(): whether gemmBf16 works here (oneDNN present and able to build a bf16 matmul
 * for this CPU; tried once on a small product). */
napi_value napi_bf16_available(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
#ifdef RELORA_USE_ONEDNN
  static int known = -1;
  if (known < 0) {
    static uint16_t a[16 * 16], b[16 * 16];
    static float c[16 * 16];
    known = bf16_gemm(0, 0, 16, 16, 16, 1.0f, a, 16, b, 16, 0.0f, c, 16) == 0;
  }
  napi_get_boolean(env, known, &out);
#else
  napi_get_boolean(env, false, &out);
#endif
  return out;
}
