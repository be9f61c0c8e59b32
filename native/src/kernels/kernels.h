/*
 * Every kernel of the addon as a plain C function on pointers and sizes: the math only. The
 * N-API bindings (../napi/) parse and validate the JS arguments, then call these; nothing here
 * knows about JavaScript. Each function's contract is the `Kernels` method of the same name in
 * src/engine/backends/kernels.ts (the js backend, src/engine/backends/js.ts, is its readable
 * reference): forward kernels write their outputs, backward kernels accumulate (+=) into
 * gradients, and a NULL gradient pointer means "not needed".
 *
 * Callers guarantee the sizes: every array holds what its dimensions say. Functions that can
 * fail return a status: 0 on success, a negative RELORA_E* code, or a positive code from the
 * GEMM library.
 */
#ifndef RELORA_KERNELS_H
#define RELORA_KERNELS_H

#include <stdint.h>
#include <string.h>

/* Far below LAPACK's negative info values (-i: argument i was illegal). */
#define RELORA_OK 0
#define RELORA_ENOMEM (-1000)    /* scratch memory could not be allocated */
#define RELORA_ENOBF16 (-1001)   /* built without oneDNN: no bf16 matmul */
#define RELORA_ENOLAPACK (-1002) /* no LAPACK library with dgesdd could be opened */

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

/* ---- GEMM (gemm.c, gemm_builtin.c) ----
 * Row-major single-matrix SGEMM: C = alpha * op(A) · op(B) + beta * C, op(A) M×K, op(B) K×N.
 * A is M×K (lda >= K) or, transposed, K×M (lda >= M); likewise B. When beta == 0, C is not read.
 * oneDNN's dnnl_sgemm when built with RELORA_USE_ONEDNN, else the built-in blocked kernel. */
typedef int (*relora_sgemm_fn)(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                               const float *A, int64_t lda, const float *B, int64_t ldb,
                               float beta, float *C, int64_t ldc);
int relora_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                 const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* The built-in kernel (always compiled; the fallback when oneDNN is absent). Never fails. */
int relora_builtin_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* "onednn" or "builtin". */
const char *relora_blas_name(void);
/* `batch` products through `sgemm`, operand b starting at b * stride (stride 0 broadcasts). */
int relora_gemm_batched(relora_sgemm_fn sgemm, int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, int64_t strideA, const float *B, int64_t ldb, int64_t strideB,
                        float beta, float *C, int64_t ldc, int64_t strideC, int64_t batch);
/* GFLOP/s of the library's own SGEMM on C-allocated buffers (one warm-up, then `reps` calls);
 * negative on failure (RELORA_ENOMEM, or -1 when the library call failed). */
double relora_bench_gemm_direct(int transA, int transB, int64_t M, int64_t N, int64_t K, int64_t reps);

/* ---- bfloat16 (gemm_bf16.c): bf16 values are uint16_t, round to nearest even ---- */
void relora_to_bf16(const float *src, uint16_t *dst, int64_t n);
/* Row r of the rows×cols matrix src into dst + r·ld (ld >= cols); the values between rows are not written. */
void relora_to_bf16_rows(const float *src, uint16_t *dst, int64_t rows, int64_t cols, int64_t ld);
/* Round to nearest even, keeping NaNs NaN (a payload in the low bits only would round to Inf). */
static inline uint16_t relora_bf16_round(uint32_t u) {
  if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
  return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
/* relora_bf16_round of an fp32 value. */
static inline uint16_t relora_bf16_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return relora_bf16_round(u);
}
/* relora_to_bf16 of one span on the calling thread. */
void relora_to_bf16_span(const uint32_t *src, uint16_t *dst, int64_t n);
/* The fp32 bits of n bf16 values (exact), on the calling thread. */
void relora_widen_bf16_span(const uint16_t *src, uint32_t *dst, int64_t n);
/* relora_sgemm's contract with bf16 A and B and fp32 accumulation; RELORA_ENOBF16 without oneDNN. */
int relora_gemm_bf16(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                     const uint16_t *A, int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* relora_gemm_bf16 with beta = 0 and C packed bf16: the fp32 sums rounded as relora_to_bf16 rounds
 * (half the bytes to write, and to read back, for a product only ever used rounded). */
int relora_gemm_bf16_to_bf16(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                             int64_t lda, const uint16_t *B, int64_t ldb, uint16_t *C, int64_t ldc);
/* A grid of outer × inner matrices: matrix (i, j) of A starts at A + i·a[0] + j·a[1] (elements), so
 * one call covers [B, H] heads whatever the layout. */
typedef struct {
  int64_t outer, inner;
  int64_t a[2], b[2], c[2];
} relora_bf16_batch;
/* relora_gemm_bf16 for every matrix of the grid in one oneDNN call (K > 0, alpha != 0). */
int relora_gemm_bf16_batched(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t *A,
                             int64_t lda, const uint16_t *B, int64_t ldb, float beta, float *C, int64_t ldc,
                             const relora_bf16_batch *batch);
/* Whether relora_gemm_bf16 runs on bf16 hardware here (the CPU has it, and a small product works). */
int relora_bf16_available(void);
/* The bf16 instructions oneDNN detects at run time: */
#define RELORA_BF16_NONE 0
#define RELORA_BF16_AVX512 1 /* AVX512-BF16 */
#define RELORA_BF16_AMX 2    /* AMX-BF16 tiles (and AVX512-BF16) */
int relora_bf16_isa(void);

/* ---- elementwise.c ---- */
void relora_add(const float *a, const float *b, float *out, int64_t n);
void relora_mul(const float *a, const float *b, float *out, int64_t n);
void relora_scale(const float *a, float s, float *out, int64_t n);
void relora_axpy(float alpha, const float *x, float *y, int64_t n);
void relora_add_scalar(float *out, float value, int64_t n);
void relora_fill(float *out, float value, int64_t n);
double relora_sum(const float *x, int64_t n);
double relora_sum_squares(const float *x, int64_t n);

/* ---- embedding.c: ids already checked to lie in [0, vocab) ---- */
void relora_embedding_forward(const float *weight, const int32_t *ids, float *out, int64_t n_ids, int64_t dim);
void relora_embedding_backward(const float *dout, const int32_t *ids, float *dweight, int64_t n_ids, int64_t dim);

/* ---- rmsnorm.c ---- */
void relora_rmsnorm_forward(const float *x, const float *weight, float *out, float *rstd, int64_t rows, int64_t dim,
                            double eps);
void relora_rmsnorm_backward(const float *dout, const float *x, const float *weight, const float *rstd, float *dx,
                             float *dweight, int64_t rows, int64_t dim);

/* ---- rope.c: [B, T, H, D] activations, cos/sin tables [T, D/2], D even ---- */
void relora_rope_forward(const float *x, const float *cos, const float *sin, float *out, int64_t B, int64_t T,
                         int64_t H, int64_t D);
void relora_rope_backward(const float *dout, const float *cos, const float *sin, float *dx, int64_t B, int64_t T,
                          int64_t H, int64_t D);

/* ---- attention.c: q, k, v [B, T, H, D], probs [B, H, T, T] ---- */
int relora_attention_forward(const float *q, const float *k, const float *v, float *out, float *probs, int64_t B,
                             int64_t T, int64_t H, int64_t D, float scale);
int relora_attention_backward(const float *dout, const float *q, const float *k, const float *v, const float *probs,
                              float *dq, float *dk, float *dv, int64_t B, int64_t T, int64_t H, int64_t D, float scale);

/* The causal softmax of score row t of one head (attention.c), in place, optionally keeping
 * {max, 1/sum} in stats, and its backward for row t (ds = dP in, scale·dS out, zeroed on (t, end)).
 * The bf16 kernel's variants write their results rounded to bf16 (zero above the diagonal): the
 * forward keeping stats, the replay making P again from them bit for bit, the backward's dS. */
/* x[j] = exp(x[j] − max) in place for j < n; returns their sum, in double (softmax's denominator). */
double relora_exp_minus_sum(float *x, int64_t n, float max);
void relora_causal_softmax_row(float *row, int64_t t, int64_t T, float *stats);
void relora_causal_softmax_grad_row(float *ds, const float *p, int64_t t, int64_t end, float scale);
void relora_causal_softmax_row_bf16(float *row, int64_t t, int64_t T, float *stats, uint16_t *p);
void relora_causal_softmax_replay(float *row, int64_t t, int64_t T, const float *stats, uint16_t *pb);
void relora_causal_softmax_grad_row_bf16(const float *dp, const float *p, int64_t t, int64_t T, float scale, uint16_t *dsb);

/* ---- attention_bf16.c: bf16 mixed precision; saved = q, k, v as bf16 [3][B][H][T][D], stats = each
 * query row's softmax {max, 1/sum} [B][H][T][2] (backward recomputes P from them) ---- */
int relora_attention_forward_bf16(const float *q, const float *k, const float *v, float *out, float *stats,
                                  uint16_t *saved, int64_t B, int64_t T, int64_t H, int64_t D, float scale);
int relora_attention_backward_bf16(const float *dout, const uint16_t *saved, const float *stats, float *dq, float *dk,
                                   float *dv, int64_t B, int64_t T, int64_t H, int64_t D, float scale, int accumulate);

/* ---- activations.c ---- */
void relora_silu_forward(const float *x, float *out, int64_t n);
void relora_silu_backward(const float *dout, const float *x, float *dx, int64_t n);
void relora_swiglu_forward(const float *gate, const float *up, float *out, int64_t n);
/* accumulate = 0 writes dgate and dup instead of adding to them. */
void relora_swiglu_backward(const float *dout, const float *gate, const float *up, float *dgate, float *dup, int64_t n,
                            int accumulate);

/* ---- dropout.c: mask[i] = hash32(key, i) >= threshold ? scale : 0 (threshold compared as a double) ---- */
void relora_dropout_mask(float *mask, int64_t n, uint32_t key, double threshold, float scale);
void relora_dropout_apply(const float *x, float *out, int64_t n, uint32_t key, double threshold, float scale);
void relora_dropout_backward_add(const float *g, float *dx, int64_t n, uint32_t key, double threshold, float scale);
/* relora_dropout_apply with out packed bf16, rounded as relora_to_bf16 rounds. */
void relora_dropout_apply_bf16(const float *x, uint16_t *out, int64_t n, uint32_t key, double threshold, float scale);

/* ---- cross_entropy.c: logits [rows, V]; targets checked to be in [0, V) or the ignore index ---- */
/* Returns the number of rows whose target is not the ignore index. */
int64_t relora_cross_entropy_forward(const float *logits, const int32_t *targets, float *losses, float *lse,
                                     int64_t rows, int64_t V, int64_t ignore_index);
void relora_cross_entropy_backward(const float *logits, const int32_t *targets, const float *lse, float *dlogits,
                                   int64_t rows, int64_t V, int64_t ignore_index, float grad_scale);
/* Writes dlogits (ignored rows zeroed) instead of adding to it; dlogits may be logits. */
void relora_cross_entropy_backward_write(const float *logits, const int32_t *targets, const float *lse, float *dlogits,
                                         int64_t rows, int64_t V, int64_t ignore_index, float grad_scale);
/* Forward and backward_write in one visit per row, the row still in cache for the second: losses,
 * lse and dlogits = grad_scale * (softmax - onehot) as the two calls would write them; logits and
 * dlogits either fp32 (dlogits may be logits itself) or, with bf16, both packed bf16: the logits
 * widened exactly, losses and lse as forward gives them, and the gradient from the exps of the
 * row's sum, bf16(e_j · k − grad_scale·[j = t]) with e_j = exp(x_j − max), k = grad_scale / Σe
 * (fp32) — each exp computed once. */
int64_t relora_cross_entropy_fused(const void *logits, const int32_t *targets, float *losses, float *lse, void *dlogits,
                                   int64_t rows, int64_t V, int64_t ignore_index, float grad_scale, int bf16);

/* ---- adamw.c: the gradient taken as grad[i] * grad_scale (a clipping factor), rounded to float ---- */
void relora_adamw_step(float *param, const float *grad, float *m, float *v, int64_t n, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double bc1, double bc2, float grad_scale);

/* ---- linalg.c: singular values through LAPACK, opened at run time ---- */
int relora_lapack_available(void);
/* Why relora_lapack_available() is false. */
const char *relora_lapack_error(void);
/* s[0..min(m, n)) = singular values (descending) of the row-major m×n matrix a, which is
 * destroyed. Returns 0, RELORA_ENOMEM, RELORA_ENOLAPACK, or LAPACK's non-zero info. */
int relora_svd_values(double *a, int64_t m, int64_t n, double *s);

#endif
