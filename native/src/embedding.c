/* Token embedding lookup and its scatter-add gradient. */
#include <stdint.h>
#include <string.h>

#include "args.h"
#include "kernels.h"

#define COL_CHUNK 64

/* Parses (a0: Float32Array, ids, a2: Float32Array, nIds, vocab, dim) and checks every id. */
static int embedding_args(napi_env env, napi_callback_info info, const char *k, const char *name0,
                          const char *name2, float **p0, int32_t **ids, float **p2, int64_t *dims, int rows_first) {
  napi_value a[6];
  size_t n0, nids, n2;
  int64_t table, act;
  if (!args_get(env, info, k, 6, a) || !arg_f32(env, a[0], k, name0, p0, &n0) ||
      !arg_i32(env, a[1], k, "ids", ids, &nids) || !arg_f32(env, a[2], k, name2, p2, &n2) ||
      !arg_size(env, a[3], k, "nIds", &dims[0]) || !arg_size(env, a[4], k, "vocab", &dims[1]) ||
      !arg_size(env, a[5], k, "dim", &dims[2]) || !mul_size(env, k, dims[1], dims[2], &table) ||
      !mul_size(env, k, dims[0], dims[2], &act) || !require_len(env, k, "ids", nids, dims[0], "nIds")) {
    return 0;
  }
  /* Forward reads the table (a0) and writes activations (a2); backward the other way round. */
  if (!require_len(env, k, name0, n0, rows_first ? act : table, rows_first ? "nIds*dim" : "vocab*dim") ||
      !require_len(env, k, name2, n2, rows_first ? table : act, rows_first ? "vocab*dim" : "nIds*dim")) {
    return 0;
  }
  for (int64_t r = 0; r < dims[0]; r++) {
    int32_t id = (*ids)[r];
    if (id < 0 || (int64_t)id >= dims[1]) {
      return throw_error(env, k, "token id %d at position %lld is outside [0, %lld)", id, (long long)r,
                         (long long)dims[1]);
    }
  }
  return 1;
}

napi_value napi_embedding_forward(napi_env env, napi_callback_info info) {
  const char *k = "embeddingForward";
  float *weight, *out;
  int32_t *ids;
  int64_t d[3];
  if (!embedding_args(env, info, k, "weight", "out", &weight, &ids, &out, d, 0)) return NULL;
  int64_t nIds = d[0], dim = d[2];
#pragma omp parallel for if (nIds * dim >= RELORA_PAR_MIN)
  for (int64_t r = 0; r < nIds; r++) {
    memcpy(out + r * dim, weight + (int64_t)ids[r] * dim, (size_t)dim * sizeof(float));
  }
  return NULL;
}

napi_value napi_embedding_backward(napi_env env, napi_callback_info info) {
  const char *k = "embeddingBackward";
  float *dout, *dw;
  int32_t *ids;
  int64_t d[3];
  if (!embedding_args(env, info, k, "dout", "dWeight", &dout, &ids, &dw, d, 1)) return NULL;
  int64_t nIds = d[0], dim = d[2];
  /* Repeated ids make rows collide, so threads split columns instead of rows. */
  int64_t chunks = (dim + COL_CHUNK - 1) / COL_CHUNK;
#pragma omp parallel for if (nIds * dim >= RELORA_PAR_MIN)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t j0 = c * COL_CHUNK, j1 = j0 + COL_CHUNK < dim ? j0 + COL_CHUNK : dim;
    for (int64_t r = 0; r < nIds; r++) {
      float *w = dw + (int64_t)ids[r] * dim;
      const float *g = dout + r * dim;
      for (int64_t j = j0; j < j1; j++) w[j] += g[j];
    }
  }
  return NULL;
}
