/* Fused log-softmax + negative log-likelihood over the rows of [rows, V] logits. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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

/* The bf16 row: x = the widened logits (into the scratch row); returns their max. */
RELORA_CLONES static float row_widen_max(const uint16_t *src, float *x, int64_t V) {
  float max = -INFINITY;
#pragma omp simd reduction(max : max)
  for (int64_t j = 0; j < V; j++) {
    uint32_t u = (uint32_t)src[j] << 16;
    float v;
    memcpy(&v, &u, sizeof v);
    x[j] = v;
    max = v > max ? v : max;
  }
  return max;
}

/* d[j] = bf16(e[j] · k). */
RELORA_CLONES static void row_scale_to_bf16(const float *e, float k, uint16_t *d, int64_t V) {
#pragma omp simd
  for (int64_t j = 0; j < V; j++) d[j] = relora_bf16_of(e[j] * k);
}

int64_t relora_cross_entropy_fused(const void *logits, const int32_t *targets, float *losses, float *lse, void *dlogits,
                                   int64_t rows, int64_t V, int64_t ignore_index, float grad_scale, int bf16) {
  int64_t count = 0;
  int failed = 0;
#pragma omp parallel reduction(+ : count) if (rows * V >= RELORA_PAR_MIN)
  {
    /* bf16: each row is widened into a scratch row (in cache) and holds its exps from there on. */
    float *row = bf16 ? malloc((size_t)V * sizeof(float)) : NULL;
    if (bf16 && !row) {
#pragma omp atomic write
      failed = 1;
    }
#pragma omp for
    for (int64_t r = 0; r < rows; r++) {
      int32_t t = targets[r];
      int ignored = t == ignore_index;
      count += !ignored;
      if (!bf16) {
        const float *x = (const float *)logits + r * V;
        float *d = (float *)dlogits + r * V;
        double l = row_logsumexp(x, V);
        float lf = (float)l;
        lse[r] = lf;
        losses[r] = ignored ? 0.0f : (float)(l - (double)x[t]);
        if (ignored) {
          for (int64_t j = 0; j < V; j++) d[j] = 0.0f;
        } else {
          row_softmax_grad_write(x, lf, grad_scale, d, V);
          d[t] -= grad_scale;
        }
        continue;
      }
      if (!row) continue;
      /* The loss and lse as row_logsumexp gives them; the gradient from the sum's own terms,
       * gs·exp(x − max)/sum, so each exp is computed once (the fp32 path computes it again from
       * lse, as crossEntropyBackwardWrite does). */
      uint16_t *d = (uint16_t *)dlogits + r * V;
      float max = row_widen_max((const uint16_t *)logits + r * V, row, V);
      float xt = ignored ? 0.0f : row[t];
      double s = relora_exp_minus_sum(row, V, max), l = (double)max + log(s);
      lse[r] = (float)l;
      losses[r] = ignored ? 0.0f : (float)(l - (double)xt);
      if (ignored) {
        memset(d, 0, (size_t)V * sizeof *d);
      } else {
        float k = (float)((double)grad_scale / s);
        row_scale_to_bf16(row, k, d, V);
        float pt = row[t] * k;
        d[t] = relora_bf16_of(pt - grad_scale);
      }
    }
    free(row);
  }
  return failed ? RELORA_ENOMEM : count;
}
