/* Token embedding lookup and its scatter-add gradient. */
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* Columns of dWeight one thread owns in the backward pass. */
#define COL_CHUNK 64

void relora_embedding_forward(const float *weight, const int32_t *ids, float *out, int64_t n_ids, int64_t dim) {
#pragma omp parallel for if (n_ids * dim >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < n_ids; r++) {
    memcpy(out + r * dim, weight + (int64_t)ids[r] * dim, (size_t)dim * sizeof(float));
  }
}

void relora_embedding_backward(const float *dout, const int32_t *ids, float *dweight, int64_t n_ids, int64_t dim) {
  /* Repeated ids make rows collide, so threads split columns instead of rows. */
  int64_t chunks = (dim + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel for if (n_ids * dim >= RELORA_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t j0 = c * COL_CHUNK, j1 = j0 + COL_CHUNK < dim ? j0 + COL_CHUNK : dim;
    for (int64_t r = 0; r < n_ids; r++) {
      float *w = dweight + (int64_t)ids[r] * dim;
      const float *g = dout + r * dim;
      for (int64_t j = j0; j < j1; j++) w[j] += g[j];
    }
  }
}
