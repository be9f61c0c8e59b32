/*
 * Built-in SGEMM used when oneDNN is not available at build time. Classic GotoBLAS structure:
 * op(A) and op(B) are packed into contiguous MR-row / NR-column panels (so transposes cost only
 * the packing), and a register-blocked MR×NR micro-kernel written with GCC vector extensions
 * does the arithmetic. On x86-64 GCC the block kernel is compiled twice (AVX2+FMA and baseline)
 * and picked at load time, so the addon stays portable without assuming -march=native.
 */
#include "kernels.h"
#include "simd.h"

#include <stdlib.h>
#include <string.h>

#define MR 6
#define NR 16
#define KC 256
#define MC 96   /* rows of C per task: a multiple of MR */
#define NB 64   /* columns of C per task: a multiple of NR */
#define NC 1024 /* columns of packed B kept at once (KC*NC floats ≈ 1 MB, fits L2) */

/* Below this many multiply-adds, thread start-up costs more than it saves. */
#define PARALLEL_MIN_FLOPS (64.0 * 64.0 * 64.0)

typedef float v8 __attribute__((vector_size(32)));
typedef float v8u __attribute__((vector_size(32), aligned(4)));

static inline float op_a(int transA, const float *A, int64_t lda, int64_t i, int64_t k) {
  return transA ? A[k * lda + i] : A[i * lda + k];
}

static inline float op_b(int transB, const float *B, int64_t ldb, int64_t k, int64_t j) {
  return transB ? B[j * ldb + k] : B[k * ldb + j];
}

/* Panel p holds rows [p*MR, p*MR+MR) of alpha*op(A)[:, pc:pc+kc], k-major, zero padded. */
static void pack_a_panel(int transA, const float *A, int64_t lda, int64_t M, int64_t pc, int64_t kc,
                         float alpha, int64_t p, float *dst) {
  int64_t i0 = p * MR;
  for (int64_t k = 0; k < kc; k++) {
    for (int64_t i = 0; i < MR; i++) {
      dst[k * MR + i] = i0 + i < M ? alpha * op_a(transA, A, lda, i0 + i, pc + k) : 0.0f;
    }
  }
}

/* Panel q holds columns [jc+q*NR, +NR) of op(B)[pc:pc+kc, :], k-major, zero padded. */
static void pack_b_panel(int transB, const float *B, int64_t ldb, int64_t N, int64_t pc, int64_t kc,
                         int64_t jc, int64_t q, float *dst) {
  int64_t j0 = jc + q * NR;
  for (int64_t k = 0; k < kc; k++) {
    for (int64_t j = 0; j < NR; j++) {
      dst[k * NR + j] = j0 + j < N ? op_b(transB, B, ldb, pc + k, j0 + j) : 0.0f;
    }
  }
}

/* C[0:mr, 0:nr] += a_panel · b_panel over kc steps. */
static inline __attribute__((always_inline)) void micro_kernel(int64_t kc, const float *a, const float *b,
                                                               float *C, int64_t ldc, int64_t mr, int64_t nr) {
  v8 c[MR][2];
  for (int i = 0; i < MR; i++) c[i][0] = c[i][1] = (v8){0};
  for (int64_t k = 0; k < kc; k++) {
    v8 b0 = *(const v8 *)(b + k * NR);
    v8 b1 = *(const v8 *)(b + k * NR + 8);
    for (int i = 0; i < MR; i++) {
      float ai = a[k * MR + i];
      c[i][0] += ai * b0;
      c[i][1] += ai * b1;
    }
  }
  if (mr == MR && nr == NR) {
    for (int i = 0; i < MR; i++) {
      *(v8u *)(C + i * ldc) += c[i][0];
      *(v8u *)(C + i * ldc + 8) += c[i][1];
    }
  } else {
    float tile[MR][NR];
    for (int i = 0; i < MR; i++) {
      memcpy(&tile[i][0], &c[i][0], sizeof(v8));
      memcpy(&tile[i][8], &c[i][1], sizeof(v8));
    }
    for (int64_t i = 0; i < mr; i++)
      for (int64_t j = 0; j < nr; j++) C[i * ldc + j] += tile[i][j];
  }
}

/* One task: rows [m0, m1) × packed-B columns [n0, n1) (relative to jc) of C. */
RELORA_CLONES
static void block_kernel(int64_t kc, const float *Ap, const float *Bp, float *C, int64_t ldc,
                         int64_t M, int64_t nc, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  for (int64_t j = n0; j < n1; j += NR) {
    const float *b = Bp + (j / NR) * kc * NR;
    int64_t nr = nc - j < NR ? nc - j : NR;
    for (int64_t i = m0; i < m1; i += MR) {
      const float *a = Ap + (i / MR) * kc * MR;
      int64_t mr = M - i < MR ? M - i : MR;
      micro_kernel(kc, a, b, C + i * ldc + j, ldc, mr, nr);
    }
  }
}

/* 64-byte aligned room for n floats (aligned_alloc needs a multiple of the alignment). */
static float *alloc_panels(size_t n) { return aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64); }

static void naive_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                        const float *A, int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t k = 0; k < K; k++) {
      float a = alpha * op_a(transA, A, lda, i, k);
      for (int64_t j = 0; j < N; j++) C[i * ldc + j] += a * op_b(transB, B, ldb, k, j);
    }
}

int relora_builtin_sgemm(int transA, int transB, int64_t M, int64_t N, int64_t K, float alpha,
                         const float *A, int64_t lda, const float *B, int64_t ldb,
                         float beta, float *C, int64_t ldc) {
  if (M <= 0 || N <= 0) return 0;
  int parallel = (double)M * (double)N * (double)K >= PARALLEL_MIN_FLOPS;

#pragma omp parallel for if (parallel)
  for (int64_t i = 0; i < M; i++) {
    float *row = C + i * ldc;
    if (beta == 0.0f) {
      for (int64_t j = 0; j < N; j++) row[j] = 0.0f;
    } else if (beta != 1.0f) {
      for (int64_t j = 0; j < N; j++) row[j] *= beta;
    }
  }
  if (K <= 0 || alpha == 0.0f) return 0;

  int64_t a_panels = (M + MR - 1) / MR;
  int64_t kc_max = K < KC ? K : KC;
  int64_t nc_max = N < NC ? N : NC;
  int64_t b_panels_max = (nc_max + NR - 1) / NR;
  float *Ap = alloc_panels((size_t)(a_panels * MR * kc_max));
  float *Bp = alloc_panels((size_t)(b_panels_max * NR * kc_max));
  if (!Ap || !Bp) {
    free(Ap);
    free(Bp);
    naive_sgemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, C, ldc);
    return 0;
  }

#pragma omp parallel if (parallel)
  for (int64_t pc = 0; pc < K; pc += KC) {
    int64_t kc = K - pc < KC ? K - pc : KC;
#pragma omp for
    for (int64_t p = 0; p < a_panels; p++) pack_a_panel(transA, A, lda, M, pc, kc, alpha, p, Ap + p * kc * MR);
    for (int64_t jc = 0; jc < N; jc += NC) {
      int64_t nc = N - jc < NC ? N - jc : NC;
      int64_t b_panels = (nc + NR - 1) / NR;
#pragma omp for
      for (int64_t q = 0; q < b_panels; q++) pack_b_panel(transB, B, ldb, N, pc, kc, jc, q, Bp + q * kc * NR);
      int64_t m_tasks = (M + MC - 1) / MC;
      int64_t n_tasks = (nc + NB - 1) / NB;
#pragma omp for collapse(2) schedule(dynamic)
      for (int64_t mt = 0; mt < m_tasks; mt++) {
        for (int64_t nt = 0; nt < n_tasks; nt++) {
          int64_t m1 = (mt + 1) * MC < M ? (mt + 1) * MC : M;
          int64_t n1 = (nt + 1) * NB < nc ? (nt + 1) * NB : nc;
          block_kernel(kc, Ap, Bp, C + jc, ldc, M, nc, mt * MC, m1, nt * NB, n1);
        }
      }
    }
  }
  free(Ap);
  free(Bp);
  return 0;
}
