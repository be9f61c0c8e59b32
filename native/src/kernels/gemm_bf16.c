/*
 * bfloat16 products for the frozen weights of LoRA layers (LoraLinearOptions.frozenBf16), the bulk of a
 * ReLoRA step: toBf16 rounds fp32 to bf16 (nearest even), and gemmBf16 computes
 * C = alpha·op(A)·op(B) + beta·C from bf16 A and B into fp32 C (fp32 accumulation) with oneDNN's
 * matmul primitive, which runs on AMX or AVX512-BF16 where the CPU has them.
 *
 * The N-API binding passes bf16 arrays as Float32Arrays holding two values per element.
 * Builds without oneDNN have no bf16 matmul: relora_gemm_bf16 returns RELORA_ENOBF16.
 *
 * Creating a primitive costs far more than running a small one, so primitives are cached by
 * shape, layout, alpha and beta; each entry keeps its memory objects and only swaps pointers.
 * Called from the JS thread only (never inside an OpenMP region).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "simd.h"

#ifdef RELORA_USE_ONEDNN
#include <oneapi/dnnl/dnnl.h>

typedef struct {
  int used;
  int transA, transB, c_bf16;
  int64_t M, N, K, lda, ldb, ldc;
  float alpha, beta;
  relora_bf16_batch batch; /* all zeros for a single matrix */
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

/* Row-major rows×cols matrix with row stride ld, or its transpose stored cols×rows; with a batch,
 * batch->outer × batch->inner of them, matrix (i, j) at i·stride[0] + j·stride[1]. */
static dnnl_status_t matrix_desc(dnnl_memory_desc_t *md, int64_t rows, int64_t cols, int64_t ld, int trans,
                                 dnnl_data_type_t dt, const relora_bf16_batch *batch, const int64_t *stride) {
  if (!batch->outer) {
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t strides = {trans ? 1 : ld, trans ? ld : 1};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dt, strides);
  }
  dnnl_dims_t dims = {batch->outer, batch->inner, rows, cols};
  dnnl_dims_t strides = {stride[0], stride[1], trans ? 1 : ld, trans ? ld : 1};
  return dnnl_memory_desc_init_by_strides(md, 4, dims, dt, strides);
}

/* oneDNN 2.6 on AMX always dispatches dense matrices to its brgemm kernel and strided ones to its
 * older gemm:jit, yet gemm:jit is faster for two kinds of product (BENCHMARKS.md, "Tenth session"):
 * - a transposed A, the weight gradients gᵀ·x: 1376×512×2048 1.94 vs 2.64 ms, the head's
 *   32100×512×512 accumulated into (beta 1) 12.6 vs 16.3 ms. Written afresh (beta 0) with a short
 *   reduction it is slower (23 vs 14 ms: it seems to clear C first), so that case stays on brgemm;
 * - a long reduction into a wide output (K > N ≥ 256): the head's g·W, 512×512×32100, 10.9 vs
 *   13.0 ms; 2048×512×1376 1.84 vs 1.97 ms.
 * Skinny outputs (LoRA's rank-r products) and short reductions stay on brgemm, which wins those.
 * A fixed rule, not a timing, so every run takes the same kernels and rounds the same way. */
static int prefers_gemm_jit(const bf16_entry *e) {
  if (e->batch.outer || relora_bf16_isa() != RELORA_BF16_AMX) return 0;
  if (e->transA) return e->beta != 0.0f || e->K >= 1024;
  return e->K > e->N && e->N >= 256;
}

/* The gemm:jit implementation of desc, or oneDNN's own choice when it offers none. */
static dnnl_status_t create_gemm_jit(dnnl_primitive_desc_t *pd, const dnnl_matmul_desc_t *desc, dnnl_primitive_attr_t attr) {
  dnnl_primitive_desc_iterator_t it;
  dnnl_status_t st = dnnl_primitive_desc_iterator_create(&it, desc, attr, engine, NULL);
  if (st != dnnl_success) return st;
  do {
    dnnl_primitive_desc_t cand = dnnl_primitive_desc_iterator_fetch(it);
    const char *impl = NULL;
    if (cand) dnnl_primitive_desc_query(cand, dnnl_query_impl_info_str, 0, &impl);
    if (impl && strncmp(impl, "gemm:jit", 8) == 0) {
      *pd = cand;
      dnnl_primitive_desc_iterator_destroy(it);
      return dnnl_success;
    }
    if (cand) dnnl_primitive_desc_destroy(cand);
  } while (dnnl_primitive_desc_iterator_next(it) == dnnl_success);
  dnnl_primitive_desc_iterator_destroy(it);
  return dnnl_primitive_desc_create(pd, desc, attr, engine, NULL);
}

static dnnl_status_t build(bf16_entry *e) {
  dnnl_status_t st;
  if (!engine) {
    if ((st = dnnl_engine_create(&engine, dnnl_cpu, 0)) != dnnl_success) return st;
    if ((st = dnnl_stream_create(&stream, engine, dnnl_stream_default_flags)) != dnnl_success) return st;
  }
  dnnl_memory_desc_t a, b, c;
  const relora_bf16_batch *bt = &e->batch;
  if ((st = matrix_desc(&a, e->M, e->K, e->lda, e->transA, dnnl_bf16, bt, bt->a)) != dnnl_success ||
      (st = matrix_desc(&b, e->K, e->N, e->ldb, e->transB, dnnl_bf16, bt, bt->b)) != dnnl_success ||
      (st = matrix_desc(&c, e->M, e->N, e->ldc, 0, e->c_bf16 ? dnnl_bf16 : dnnl_f32, bt, bt->c)) != dnnl_success) {
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
  if (st == dnnl_success) st = prefers_gemm_jit(e) ? create_gemm_jit(&pd, &desc, attr) : dnnl_primitive_desc_create(&pd, &desc, attr, engine, NULL);
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

/* C is fp32, or with c_bf16 packed bf16: the fp32 sums rounded to nearest even as relora_to_bf16 rounds. */
static int onednn_gemm_bf16(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A, int64_t lda,
                     const uint16_t *B, int64_t ldb, float beta, void *C, int c_bf16, int64_t ldc, const relora_bf16_batch *batch) {
  bf16_entry *e = NULL;
  for (int i = 0; i < CACHE_SIZE && !e; i++) {
    bf16_entry *c = &cache[i];
    if (c->used && c->transA == transA && c->transB == transB && c->c_bf16 == c_bf16 && c->M == M && c->N == N && c->K == K &&
        c->lda == lda && c->ldb == ldb && c->ldc == ldc && c->alpha == alpha && c->beta == beta &&
        memcmp(&c->batch, batch, sizeof *batch) == 0) {
      e = c;
    }
  }
  if (!e) {
    e = &cache[next_victim];
    next_victim = (next_victim + 1) % CACHE_SIZE;
    release(e);
    *e = (bf16_entry){0, transA, transB, c_bf16, M, N, K, lda, ldb, ldc, alpha, beta, *batch, NULL, NULL, NULL, NULL};
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

static const relora_bf16_batch single = {0};

int relora_gemm_bf16(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                     const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc) {
  if (M == 0 || N == 0) return 0;
#ifdef RELORA_USE_ONEDNN
  /* No product: a zero-sized primitive is an error in oneDNN, and SGEMM handles beta alone. */
  if (K == 0 || alpha == 0.0f) return relora_sgemm(transA, transB, M, N, 0, 1.0f, NULL, 1, NULL, 1, beta, C, ldc);
  return onednn_gemm_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, 0, ldc, &single);
#else
  (void)transA, (void)transB, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
  return RELORA_ENOBF16;
#endif
}

int relora_gemm_bf16_to_bf16(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                             int64_t lda, const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc) {
  if (M == 0 || N == 0) return 0;
#ifdef RELORA_USE_ONEDNN
  if (K == 0 || alpha == 0.0f) {
    for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof *C);
    return 0;
  }
  return onednn_gemm_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, 0.0f, C, 1, ldc, &single);
#else
  (void)transA, (void)transB, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)C, (void)ldc;
  return RELORA_ENOBF16;
#endif
}

int relora_gemm_bf16_batched(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                             int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc,
                             const relora_bf16_batch *batch) {
  if (M == 0 || N == 0 || batch->outer == 0 || batch->inner == 0) return 0;
#ifdef RELORA_USE_ONEDNN
  return onednn_gemm_bf16(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, 0, ldc, batch);
#else
  (void)transA, (void)transB, (void)K, (void)alpha, (void)A, (void)lda, (void)B, (void)ldb, (void)beta, (void)C, (void)ldc;
  return RELORA_ENOBF16;
#endif
}

RELORA_CLONES void relora_to_bf16_span(const uint32_t *src, uint16_t *dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dst[i] = relora_bf16_round(src[i]);
}

RELORA_CLONES void relora_widen_bf16_span(const uint16_t *src, uint32_t *dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; i++) dst[i] = (uint32_t)src[i] << 16;
}

void relora_to_bf16_rows(const float *src, uint16_t *dst, int64_t rows, int64_t cols, int64_t ld) {
  const uint32_t *bits = (const uint32_t *)src;
#pragma omp parallel for if (rows * cols >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) relora_to_bf16_span(bits + r * cols, dst + r * ld, cols);
}

void relora_to_bf16(const float *src, uint16_t *dst, int64_t n) {
  const uint32_t *bits = (const uint32_t *)src;
  if (n < RELORA_PAR_MIN) {
    relora_to_bf16_span(bits, dst, n);
    return;
  }
#pragma omp parallel for
  for (int64_t b = 0; b < n; b += RELORA_SPAN) relora_to_bf16_span(bits + b, dst + b, n - b < RELORA_SPAN ? n - b : RELORA_SPAN);
}

/* The bf16 hardware oneDNN dispatches to, from its run-time CPU detection (never assumed): AMX
 * tiles, AVX512-BF16 dot products, or none (oneDNN would then emulate bf16 on AVX-512, slower
 * than our own fp32 emulation, so relora_bf16_available reports no). */
int relora_bf16_isa(void) {
#ifdef RELORA_USE_ONEDNN
  dnnl_cpu_isa_t isa = dnnl_get_effective_cpu_isa();
  if ((isa & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx) return RELORA_BF16_AMX;
  if ((isa & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16) return RELORA_BF16_AVX512;
#endif
  return RELORA_BF16_NONE;
}

int relora_bf16_available(void) {
#ifdef RELORA_USE_ONEDNN
  static int known = -1;
  if (known < 0) {
    static uint16_t a[16 * 16], b[16 * 16];
    static float c[16 * 16];
    known = relora_bf16_isa() != RELORA_BF16_NONE && onednn_gemm_bf16(0, 0, 16, 16, 16, 1.0f, a, 16, b, 16, 0.0f, c, 0, 16, &single) == 0;
  }
  return known;
#else
  return 0;
#endif
}
