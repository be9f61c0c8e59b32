/* Fused log-softmax + negative log-likelihood over the rows of [rows, V] logits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

#include "fast_exp.h"
#include "kernels.h"
#include "simd.h"

/* log(sum(exp(x[0..V)))), shifted by the row maximum so nothing overflows. */
RELORA_CLONES static double row_logsumexp(const float *x, int64_t V) {
  float max = -INFINITY;
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < V; j++) max = x[j] > max ? x[j] : max;
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < V; j++) s += (double)relora_expf(x[j] - max);
  return (double)max + log(s);
}

/* d[j] += gs * softmax(x)[j], with the row's log-sum-exp from the forward pass. */
RELORA_CLONES static void row_softmax_grad(const float *x, float lse, float gs, float *d, int64_t V) {
#pragma omp simd
  for (int64_t j = 0; j < V; j++) d[j] += gs * relora_expf(x[j] - lse);
}

/* d[j] = gs * softmax(x)[j]: the same, written into a buffer that holds garbage. */
RELORA_CLONES static void row_softmax_grad_write(const float *x, float lse, float gs, float *d, int64_t V) {
#pragma omp simd
  for (int64_t j = 0; j < V; j++) d[j] = gs * relora_expf(x[j] - lse);
}

int64_t relora_cross_entropy_forward(const float *logits, const int32_t *targets, float *losses, float *lse,
                                     int64_t rows, int64_t V, int64_t ignore_index) {
  int64_t count = 0;
#pragma omp parallel for reduction(+ : count) if (rows * V >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    double l = row_logsumexp(logits + r * V, V);
    lse[r] = (float)l;
    int32_t t = targets[r];
    if (t == ignore_index) {
      losses[r] = 0.0f;
    } else {
      losses[r] = (float)(l - (double)logits[r * V + t]);
      count++;
    }
  }
  return count;
}

/* dlogits[r] (+)= gs * (softmax(logits[r]) - onehot(target)): write = 0 adds, write = 1 overwrites. */
static void backward_rows(const float *logits, const int32_t *targets, const float *lse, float *dlogits, int64_t rows,
                          int64_t V, int64_t ignore_index, float gs, int write) {
#pragma omp parallel for if (rows * V >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < rows; r++) {
    int32_t t = targets[r];
    float *d = dlogits + r * V;
    if (t == ignore_index) {
      if (write) for (int64_t j = 0; j < V; j++) d[j] = 0.0f;
      continue;
    }
    if (write) row_softmax_grad_write(logits + r * V, lse[r], gs, d, V);
    else row_softmax_grad(logits + r * V, lse[r], gs, d, V);
    d[t] -= gs;
  }
}

void relora_cross_entropy_backward(const float *logits, const int32_t *targets, const float *lse, float *dlogits,
                                   int64_t rows, int64_t V, int64_t ignore_index, float grad_scale) {
  backward_rows(logits, targets, lse, dlogits, rows, V, ignore_index, grad_scale, 0);
}

void relora_cross_entropy_backward_write(const float *logits, const int32_t *targets, const float *lse, float *dlogits,
                                         int64_t rows, int64_t V, int64_t ignore_index, float grad_scale) {
  backward_rows(logits, targets, lse, dlogits, rows, V, ignore_index, grad_scale, 1);
}

int64_t relora_cross_entropy_fused(const void *logits, const int32_t *targets, float *losses, float *lse, void *dlogits,
                                   int64_t rows, int64_t V, int64_t ignore_index, float grad_scale, int bf16) {
  int64_t count = 0;
  int failed = 0;
#pragma omp parallel reduction(+ : count) if (rows * V >= RELORA_PAR_MIN)
  {
    /* bf16: each row is widened into a scratch row (in cache), its fp32 gradient written over it
     * and rounded from there: the values widen, forward, backward_write, relora_to_bf16 would give. */
    float *row = bf16 ? malloc((size_t)V * sizeof(float)) : NULL;
    if (bf16 && !row) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for
    for (int64_t r = 0; r < rows; r++) {
      if (bf16 && !row) continue;
      const float *x = bf16 ? row : (const float *)logits + r * V;
      if (bf16) relora_widen_bf16_span((const uint16_t *)logits + r * V, (uint32_t *)row, V);
      double l = row_logsumexp(x, V);
      float lf = (float)l;
      lse[r] = lf;
      int32_t t = targets[r];
      int ignored = t == ignore_index;
      losses[r] = ignored ? 0.0f : (float)(l - (double)x[t]);
      count += !ignored;
      float *d = bf16 ? row : (float *)dlogits + r * V;
      if (ignored) {
        for (int64_t j = 0; j < V; j++) d[j] = 0.0f;
      } else {
        row_softmax_grad_write(x, lf, grad_scale, d, V);
        d[t] -= grad_scale;
      }
      if (bf16) relora_to_bf16_span((const uint32_t *)row, (uint16_t *)dlogits + r * V, V);
    }
    free(row);
  }
  return failed ? RELORA_ENOMEM : count;
}
