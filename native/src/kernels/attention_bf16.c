/*
 * Causal attention in bf16 mixed precision, as PyTorch's CPU autocast runs softmax(q·kᵀ·scale)·v:
 * the products take bf16 operands on oneDNN (AMX or AVX512-BF16) and accumulate in fp32; the
 * softmax and its gradient stay fp32. Rounded to bf16 on the way into a product: q, k, v, the
 * probabilities P, the upstream gradient, and the scores' gradient dS.
 *
 * Unlike the fp32 kernel (attention.c), which skips the causal upper triangle in row blocks, each
 * product covers a head's whole T×T square (P and dS are zero above the diagonal) in one batched
 * call over every (batch, head): oneDNN's AMX kernels want dense batched matrices, and at T = 256
 * they do the square several times faster than SGEMM does the triangle. q, k, v and the gradient
 * are repacked head-major [B, H, T, D] while they are rounded, so every operand's batch is dense;
 * outputs and gradients land straight in the [B, T, H, D] activations through strides.
 *
 * Called from the JS thread only (never inside an OpenMP region): the scratch below is shared.
 */
#include <stdint.h>
#include <stdlib.h>

#include "kernels.h"

/* Grow-only scratch: a llama_60m layer needs 26 MB per call, and fresh pages every call cost more
 * than the products. */
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
 * feeds it, so a head's scores are still in cache (the whole [B, H, T, T] square at once was
 * memory-bound). Whole batch elements, because oneDNN's AMX kernels take a strided grid only
 * when it is a permutation of a dense one: a slice of the heads fell back to a 5× slower kernel. */
/* The batch grid of one batch element's heads: head-major operands [H, T, D], activations
 * [T, H, D], scores [H, T, T] (the outer dimension has one entry). */
#define HEAD_MAJOR(T, H, D) {(H) * (T) * (D), (T) * (D)}
#define ACTIVATIONS(T, H, D) {(T) * (H) * (D), (D)}
#define SCORES(T, H) {(H) * (T) * (T), (T) * (T)}

int relora_attention_forward_bf16(const float *q, const float *k, const float *v, float *out, float *probs,
                                  uint16_t *saved, int64_t B, int64_t T, int64_t H, int64_t D, float scale) {
  const int64_t n = B * T * H * D, HD = H * D, TT = T * T, rows = H * T;
  if (n == 0) return 0;
  uint16_t *qh = saved, *kh = saved + n, *vh = saved + 2 * n;
  uint16_t *pb = scratch_of((size_t)(H * TT) * sizeof(uint16_t));
  if (!pb) return RELORA_ENOMEM;
  pack_head_major(q, qh, B, T, H, D);
  pack_head_major(k, kh, B, T, H, D);
  pack_head_major(v, vh, B, T, H, D);
  relora_bf16_batch scores = {1, H, HEAD_MAJOR(T, H, D), HEAD_MAJOR(T, H, D), SCORES(T, H)};
  relora_bf16_batch values = {1, H, SCORES(T, H), HEAD_MAJOR(T, H, D), ACTIVATIONS(T, H, D)};
  int st = 0;
  for (int64_t b = 0; b < B && !st; b++) {
    float *P = probs + b * H * TT;
    const int64_t head = b * H * T * D;
    /* S = scale · q·kᵀ, in place of P */
    st = relora_gemm_bf16_batched(0, 1, T, T, D, scale, qh + head, D, kh + head, D, 0.0f, P, T, &scores);
    if (st) break;
#pragma omp parallel for if (rows * T >= RELORA_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
      relora_causal_softmax_rows(P + (r / T) * TT, T, r % T, r % T + 1);
      relora_to_bf16_span((const uint32_t *)(P + r * T), pb + r * T, T);
    }
    /* out = bf16(P)·v */
    st = relora_gemm_bf16_batched(0, 0, T, D, T, 1.0f, pb, T, vh + head, D, 0.0f, out + b * T * HD, HD, &values);
  }
  return st;
}

int relora_attention_backward_bf16(const float *dout, const uint16_t *saved, const float *probs, float *dq, float *dk,
                                   float *dv, int64_t B, int64_t T, int64_t H, int64_t D, float scale) {
  const int64_t n = B * T * H * D, HD = H * D, TT = T * T, rows = H * T;
  if (n == 0 || (!dq && !dk && !dv)) return 0;
  const uint16_t *qh = saved, *kh = saved + n, *vh = saved + 2 * n;
  const int need_ds = dq || dk;
  /* bf16 gradient (n); one batch element's bf16 P and bf16 dS (H·T·T each); its fp32 dP (H·T·T) */
  uint16_t *gh = scratch_of((size_t)(n + 2 * H * TT) * sizeof(uint16_t) + (size_t)(H * TT) * sizeof(float));
  if (!gh) return RELORA_ENOMEM;
  uint16_t *pb = gh + n, *dsb = pb + H * TT;
  float *dP = (float *)(dsb + H * TT);
  pack_head_major(dout, gh, B, T, H, D);
  relora_bf16_batch to_grad = {1, H, SCORES(T, H), HEAD_MAJOR(T, H, D), ACTIVATIONS(T, H, D)};
  relora_bf16_batch scores = {1, H, HEAD_MAJOR(T, H, D), HEAD_MAJOR(T, H, D), SCORES(T, H)};
  int st = 0;
  for (int64_t b = 0; b < B && !st; b++) {
    const float *P = probs + b * H * TT;
    const int64_t head = b * H * T * D, act = b * T * HD;
    /* dP = g·vᵀ */
    if (need_ds) st = relora_gemm_bf16_batched(0, 1, T, T, D, 1.0f, gh + head, D, vh + head, D, 0.0f, dP, T, &scores);
    if (st) break;
    /* One pass over P: its bf16 copy, and dS = scale · P ∘ (dP − rowsum(dP ∘ P)) rounded to bf16 */
#pragma omp parallel for if (rows * T >= RELORA_PAR_MIN)
    for (int64_t r = 0; r < rows; r++) {
      if (dv) relora_to_bf16_span((const uint32_t *)(P + r * T), pb + r * T, T);
      if (!need_ds) continue;
      relora_causal_softmax_grad_row(dP + r * T, P + r * T, r % T, T, scale);
      relora_to_bf16_span((const uint32_t *)(dP + r * T), dsb + r * T, T);
    }
    /* dv += bf16(P)ᵀ·g ;  dq += bf16(dS)·k ;  dk += bf16(dS)ᵀ·q */
    if (dv) st = relora_gemm_bf16_batched(1, 0, T, D, T, 1.0f, pb, T, gh + head, D, 1.0f, dv + act, HD, &to_grad);
    if (!st && dq) st = relora_gemm_bf16_batched(0, 0, T, D, T, 1.0f, dsb, T, kh + head, D, 1.0f, dq + act, HD, &to_grad);
    if (!st && dk) st = relora_gemm_bf16_batched(1, 0, T, D, T, 1.0f, dsb, T, qh + head, D, 1.0f, dk + act, HD, &to_grad);
  }
  return st;
}
