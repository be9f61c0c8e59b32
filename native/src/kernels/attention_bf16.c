/*
 * Causal attention in bf16 mixed precision, as PyTorch's CPU autocast runs softmax(q·kᵀ·scale)·v:
 * the products take bf16 operands on oneDNN (AMX or AVX512-BF16) and accumulate in fp32; the
 * softmax and its gradient stay fp32. Rounded to bf16 on the way into a product: q, k, v, the
 * probabilities P, the upstream gradient, and the scores' gradient dS.
 *
 * P is not kept: the forward keeps each query row's softmax max and 1/sum (8 bytes a row, where P
 * takes 4·T), and the backward computes q·kᵀ again and replays the softmax from them, bit for bit —
 * as flash attention does. A batch element's scores then stay in cache from product to softmax to
 * product, where a stored P (16 MB a llama_60m layer) went to memory and came back cold.
 *
 * Unlike the fp32 kernel (attention.c), which skips the causal upper triangle in row blocks, each
 * product covers a head's whole T×T square (P and dS are zero above the diagonal) in one batched
 * call per batch element: oneDNN's AMX kernels take dense batches only (row blocks of a head fell
 * back to a 5× slower kernel), and twice the FLOPs on AMX still cost less than the triangle in fp32
 * SGEMM (BENCHMARKS.md, "Attention's products on AMX"). q, k, v and the gradient
 * are repacked head-major [B, H, T, D] while they are rounded, so every operand's batch is dense;
 * outputs and gradients land straight in the [B, T, H, D] activations through strides.
 *
 * Called from the JS thread only (never inside an OpenMP region): the scratch below is shared.
 */
#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"

/* Grow-only scratch (8 MB for a llama_60m layer's backward): fresh pages every call cost more than
 * the products. */
static void *scratch = NULL;
static size_t scratch_bytes = 0;

static void *scratch_of(size_t bytes) {
  if (bytes > scratch_bytes) {
    free(scratch);
    scratch = malloc(bytes);
    scratch_bytes = scratch ? bytes : 0;
  }
  return scratch;
}

/* dst[b][h][t][:] = bf16(src[b][t][h][:]). */
static void pack_head_major(const float *src, uint16_t *dst, int64_t B, int64_t T, int64_t H, int64_t D) {
  const int64_t rows = B * T;
#pragma omp parallel for if (rows * H * D >= RELORA_PAR_MIN)
  for (int64_t bt = 0; bt < rows; bt++) {
    int64_t b = bt / T, t = bt % T;
    for (int64_t h = 0; h < H; h++) {
      relora_to_bf16_span((const uint32_t *)(src + (bt * H + h) * D), dst + ((b * H + h) * T + t) * D, D);
    }
  }
}

/* The products run one batch element (all its heads) at a time, each right after the softmax that
 * feeds it. Whole batch elements, because oneDNN's AMX kernels take a strided grid only when it is
 * a permutation of a dense one: a slice of the heads fell back to a 5× slower kernel. */

/* The batch grid of one batch element's heads: head-major operands [H, T, D], activations
 * [T, H, D], scores [H, T, T] (the outer dimension has one entry). */
#define HEAD_MAJOR(T, H, D) {(H) * (T) * (D), (T) * (D)}
#define ACTIVATIONS(T, H, D) {(T) * (H) * (D), (D)}
#define SCORES(T, H) {(H) * (T) * (T), (T) * (T)}

/* P of batch element b (H·T·T): S = scale · q·kᵀ, then each row's softmax — in the forward (`keep`
 * given) its stats written to keep and bf16(P) to pb, S left as scratch; in the backward replayed
 * from `replay` into S (on and below the diagonal) and, when pb is given, bf16(P) into pb. */
static int probabilities(const uint16_t *qh, const uint16_t *kh, float *keep, const float *replay, float *S,
                         uint16_t *pb, int64_t b, int64_t T, int64_t H, int64_t D, float scale) {
  const int64_t head = b * H * T * D, rows = H * T;
  relora_bf16_batch scores = {1, H, HEAD_MAJOR(T, H, D), HEAD_MAJOR(T, H, D), SCORES(T, H)};
  int st = relora_gemm_bf16_batched(0, 1, T, T, D, scale, qh + head, D, kh + head, D, 0.0f, S, T, &scores);
  if (st) return st;
  const int64_t first = b * rows * 2; /* this batch element's first row's stats */
#pragma omp parallel for if (rows * T >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    if (replay) relora_causal_softmax_replay(S + r * T, r % T, T, replay + first + 2 * r, pb ? pb + r * T : NULL);
    else relora_causal_softmax_row_bf16(S + r * T, r % T, T, keep + first + 2 * r, pb + r * T);
  }
  return 0;
}

int relora_attention_forward_bf16(const float *q, const float *k, const float *v, float *out, float *stats,
                                  uint16_t *saved, int64_t B, int64_t T, int64_t H, int64_t D, float scale) {
  const int64_t n = B * T * H * D, HD = H * D, TT = T * T;
  if (n == 0) return 0;
  uint16_t *qh = saved, *kh = saved + n, *vh = saved + 2 * n;
  /* one batch element's fp32 scores and bf16 P (H·T·T each) */
  float *S = scratch_of((size_t)(H * TT) * (sizeof(float) + sizeof(uint16_t)));
  if (!S) return RELORA_ENOMEM;
  uint16_t *pb = (uint16_t *)(S + H * TT);
  pack_head_major(q, qh, B, T, H, D);
  pack_head_major(k, kh, B, T, H, D);
  pack_head_major(v, vh, B, T, H, D);
  relora_bf16_batch values = {1, H, SCORES(T, H), HEAD_MAJOR(T, H, D), ACTIVATIONS(T, H, D)};
  int st = 0;
  for (int64_t b = 0; b < B && !st; b++) {
    st = probabilities(qh, kh, stats, NULL, S, pb, b, T, H, D, scale);
    /* out = bf16(P)·v */
    if (!st) st = relora_gemm_bf16_batched(0, 0, T, D, T, 1.0f, pb, T, vh + b * H * T * D, D, 0.0f, out + b * T * HD, HD, &values);
  }
  return st;
}

int relora_attention_backward_bf16(const float *dout, const uint16_t *saved, const float *stats, float *dq, float *dk,
                                   float *dv, int64_t B, int64_t T, int64_t H, int64_t D, float scale, int accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  const int64_t n = B * T * H * D, HD = H * D, TT = T * T, rows = H * T;
  if (n == 0 || (!dq && !dk && !dv)) return 0;
  const uint16_t *qh = saved, *kh = saved + n, *vh = saved + 2 * n;
  const int need_ds = dq || dk;
  /* bf16 gradient (n); one batch element's fp32 P and dP, bf16 P and dS (H·T·T each) */
  uint16_t *gh = scratch_of((size_t)(n + (n & 1)) * sizeof(uint16_t) + (size_t)(H * TT) * (2 * sizeof(float) + 2 * sizeof(uint16_t)));
  if (!gh) return RELORA_ENOMEM;
  float *P = (float *)(gh + n + (n & 1)), *dP = P + H * TT;
  uint16_t *pb = (uint16_t *)(dP + H * TT), *dsb = pb + H * TT;
  pack_head_major(dout, gh, B, T, H, D);
  relora_bf16_batch to_grad = {1, H, SCORES(T, H), HEAD_MAJOR(T, H, D), ACTIVATIONS(T, H, D)};
  relora_bf16_batch scores = {1, H, HEAD_MAJOR(T, H, D), HEAD_MAJOR(T, H, D), SCORES(T, H)};
  int st = 0;
  for (int64_t b = 0; b < B && !st; b++) {
    const int64_t head = b * H * T * D, act = b * T * HD;
    st = probabilities(qh, kh, NULL, stats, P, dv ? pb : NULL, b, T, H, D, scale);
    /* dP = g·vᵀ, then dS = scale · P ∘ (dP − rowsum(dP ∘ P)), rounded to bf16 */
    if (!st && need_ds) {
      st = relora_gemm_bf16_batched(0, 1, T, T, D, 1.0f, gh + head, D, vh + head, D, 0.0f, dP, T, &scores);
      if (!st) {
#pragma omp parallel for if (rows * T >= RELORA_PAR_MIN)
        for (int64_t r = 0; r < rows; r++) relora_causal_softmax_grad_row_bf16(dP + r * T, P + r * T, r % T, T, scale, dsb + r * T);
      }
    }
    /* dv (+)= bf16(P)ᵀ·g ;  dq (+)= bf16(dS)·k ;  dk (+)= bf16(dS)ᵀ·q */
    if (!st && dv) st = relora_gemm_bf16_batched(1, 0, T, D, T, 1.0f, pb, T, gh + head, D, beta, dv + act, HD, &to_grad);
    if (!st && dq) st = relora_gemm_bf16_batched(0, 0, T, D, T, 1.0f, dsb, T, kh + head, D, beta, dq + act, HD, &to_grad);
    if (!st && dk) st = relora_gemm_bf16_batched(1, 0, T, D, T, 1.0f, dsb, T, qh + head, D, beta, dk + act, HD, &to_grad);
  }
  return st;
}
