/* Bindings for the transformer layers' kernels: embedding, RMSNorm, RoPE, attention, SiLU/SwiGLU. */
#include <stddef.h>
#include <stdint.h>

#include "../kernels/kernels.h"
#include "args.h"
#include "bindings.h"

/* ---- embedding ---- */

/* Parses (a0, ids, a2, nIds, vocab, dim) and checks every id before anything is written.
 * Forward reads the table (a0) and writes activations (a2); backward the other way round. */
static int embedding_args(napi_env env, napi_callback_info info, const char *k, const char *name0,
                          const char *name2, float **p0, int32_t **ids, float **p2, int64_t *dims, int rows_first) {
  napi_value a[6];
  size_t n0, nids, n2;
  int64_t table, act;
  if (!args_get(env, info, k, 6, a) || !arg_f32(env, a[0], k, name0, p0, &n0) ||
      !arg_i32(env, a[1], k, "ids", ids, &nids) || !arg_f32(env, a[2], k, name2, p2, &n2) ||
      !arg_size(env, a[3], k, "nIds", &dims[0]) || !arg_size(env, a[4], k, "vocab", &dims[1]) ||
      !arg_size(env, a[5], k, "dim", &dims[2]) || !mul_size(env, k, dims[1], dims[2], &table) ||
      !mul_size(env, k, dims[0], dims[2], &act) || !require_len(env, k, "ids", nids, dims[0], "nIds") ||
      !require_len(env, k, name0, n0, rows_first ? act : table, rows_first ? "nIds*dim" : "vocab*dim") ||
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
  float *weight, *out;
  int32_t *ids;
  int64_t d[3];
  if (embedding_args(env, info, "embeddingForward", "weight", "out", &weight, &ids, &out, d, 0)) {
    relora_embedding_forward(weight, ids, out, d[0], d[2]);
  }
  return NULL;
}

napi_value napi_embedding_backward(napi_env env, napi_callback_info info) {
  float *dout, *dw;
  int32_t *ids;
  int64_t d[3];
  if (embedding_args(env, info, "embeddingBackward", "dout", "dWeight", &dout, &ids, &dw, d, 1)) {
    relora_embedding_backward(dout, ids, dw, d[0], d[2]);
  }
  return NULL;
}

/* ---- RMSNorm ---- */

napi_value napi_rmsnorm_forward(napi_env env, napi_callback_info info) {
  const char *k = "rmsnormForward";
  napi_value a[7];
  float *x, *w, *out, *rstd;
  size_t nx, nw, nout, nr;
  int64_t rows, dim, n;
  double eps;
  if (args_get(env, info, k, 7, a) && arg_f32(env, a[0], k, "x", &x, &nx) && arg_f32(env, a[1], k, "weight", &w, &nw) &&
      arg_f32(env, a[2], k, "out", &out, &nout) && arg_f32(env, a[3], k, "rstd", &rstd, &nr) &&
      arg_size(env, a[4], k, "rows", &rows) && arg_size(env, a[5], k, "dim", &dim) &&
      arg_double(env, a[6], k, "eps", &eps) && mul_size(env, k, rows, dim, &n) &&
      require_len(env, k, "x", nx, n, "rows*dim") && require_len(env, k, "weight", nw, dim, "dim") &&
      require_len(env, k, "out", nout, n, "rows*dim") && require_len(env, k, "rstd", nr, rows, "rows")) {
    relora_rmsnorm_forward(x, w, out, rstd, rows, dim, eps);
  }
  return NULL;
}

napi_value napi_rmsnorm_backward(napi_env env, napi_callback_info info) {
  const char *k = "rmsnormBackward";
  napi_value a[8];
  float *dout, *x, *w, *rstd, *dx, *dw;
  size_t ndout, nx, nw, nr, ndx, ndw;
  int64_t rows, dim, n;
  if (args_get(env, info, k, 8, a) && arg_f32(env, a[0], k, "dout", &dout, &ndout) &&
      arg_f32(env, a[1], k, "x", &x, &nx) && arg_f32(env, a[2], k, "weight", &w, &nw) &&
      arg_f32(env, a[3], k, "rstd", &rstd, &nr) && arg_f32_or_null(env, a[4], k, "dx", &dx, &ndx) &&
      arg_f32_or_null(env, a[5], k, "dWeight", &dw, &ndw) && arg_size(env, a[6], k, "rows", &rows) &&
      arg_size(env, a[7], k, "dim", &dim) && mul_size(env, k, rows, dim, &n) &&
      require_len(env, k, "dout", ndout, n, "rows*dim") && require_len(env, k, "x", nx, n, "rows*dim") &&
      require_len(env, k, "weight", nw, dim, "dim") && require_len(env, k, "rstd", nr, rows, "rows") &&
      (!dx || require_len(env, k, "dx", ndx, n, "rows*dim")) &&
      (!dw || require_len(env, k, "dWeight", ndw, dim, "dim"))) {
    relora_rmsnorm_backward(dout, x, w, rstd, dx, dw, rows, dim);
  }
  return NULL;
}

/* ---- RoPE ---- */

/* (in, cos, sin, out, B, T, H, D) with D even; `in_name`/`out_name` name the two activations. */
static int rope_args(napi_env env, napi_callback_info info, const char *k, const char *in_name, const char *out_name,
                     float **x, float **cs, float **sn, float **out, int64_t *dims) {
  napi_value a[8];
  size_t nx, nc, ns, nout;
  int64_t n, half_t;
  if (!args_get(env, info, k, 8, a) || !arg_f32(env, a[0], k, in_name, x, &nx) ||
      !arg_f32(env, a[1], k, "cos", cs, &nc) || !arg_f32(env, a[2], k, "sin", sn, &ns) ||
      !arg_f32(env, a[3], k, out_name, out, &nout) || !arg_size(env, a[4], k, "B", &dims[0]) ||
      !arg_size(env, a[5], k, "T", &dims[1]) || !arg_size(env, a[6], k, "H", &dims[2]) ||
      !arg_size(env, a[7], k, "D", &dims[3])) {
    return 0;
  }
  if (dims[3] % 2 != 0) return throw_error(env, k, "head dimension D=%lld must be even", (long long)dims[3]);
  return mul_size(env, k, dims[0], dims[1], &n) && mul_size(env, k, n, dims[2], &n) &&
         mul_size(env, k, n, dims[3], &n) && mul_size(env, k, dims[1], dims[3] / 2, &half_t) &&
         require_len(env, k, in_name, nx, n, "B*T*H*D") && require_len(env, k, out_name, nout, n, "B*T*H*D") &&
         require_len(env, k, "cos", nc, half_t, "T*D/2") && require_len(env, k, "sin", ns, half_t, "T*D/2");
}

napi_value napi_rope_forward(napi_env env, napi_callback_info info) {
  float *x, *cs, *sn, *out;
  int64_t d[4];
  if (rope_args(env, info, "ropeForward", "x", "out", &x, &cs, &sn, &out, d)) {
    relora_rope_forward(x, cs, sn, out, d[0], d[1], d[2], d[3]);
  }
  return NULL;
}

napi_value napi_rope_backward(napi_env env, napi_callback_info info) {
  float *dout, *cs, *sn, *dx;
  int64_t d[4];
  if (rope_args(env, info, "ropeBackward", "dout", "dx", &dout, &cs, &sn, &dx, d)) {
    relora_rope_backward(dout, cs, sn, dx, d[0], d[1], d[2], d[3]);
  }
  return NULL;
}

/* ---- attention ---- */

typedef struct {
  int64_t B, T, H, D;
  float scale;
  int64_t n;     /* B*T*H*D, the size of q, k, v and their gradients */
  int64_t probs; /* B*H*T*T */
} attn_dims;

/* (B, T, H, D, scale) starting at argument `first`. */
static int attention_dims(napi_env env, napi_value *a, const char *k, int first, attn_dims *d) {
  double scale;
  int64_t bh;
  if (!arg_size(env, a[first], k, "B", &d->B) || !arg_size(env, a[first + 1], k, "T", &d->T) ||
      !arg_size(env, a[first + 2], k, "H", &d->H) || !arg_size(env, a[first + 3], k, "D", &d->D) ||
      !arg_double(env, a[first + 4], k, "scale", &scale) || !mul_size(env, k, d->B, d->T, &d->n) ||
      !mul_size(env, k, d->n, d->H, &d->n) || !mul_size(env, k, d->n, d->D, &d->n) ||
      !mul_size(env, k, d->B, d->H, &bh) || !mul_size(env, k, bh, d->T, &d->probs) ||
      !mul_size(env, k, d->probs, d->T, &d->probs)) {
    return 0;
  }
  d->scale = (float)scale;
  return 1;
}

static void attention_status(napi_env env, const char *k, int status) {
  if (status == RELORA_ENOMEM) throw_error(env, k, "could not allocate scratch memory");
  else if (status) throw_error(env, k, "%s sgemm failed with status %d", relora_blas_name(), status);
}

napi_value napi_attention_forward(napi_env env, napi_callback_info info) {
  const char *k = "attentionForward";
  napi_value a[10];
  float *q, *kk, *v, *out, *probs;
  size_t nq, nk, nv, nout, nprobs;
  attn_dims d;
  if (args_get(env, info, k, 10, a) && arg_f32(env, a[0], k, "q", &q, &nq) && arg_f32(env, a[1], k, "k", &kk, &nk) &&
      arg_f32(env, a[2], k, "v", &v, &nv) && arg_f32(env, a[3], k, "out", &out, &nout) &&
      arg_f32(env, a[4], k, "probs", &probs, &nprobs) && attention_dims(env, a, k, 5, &d) &&
      require_len(env, k, "q", nq, d.n, "B*T*H*D") && require_len(env, k, "k", nk, d.n, "B*T*H*D") &&
      require_len(env, k, "v", nv, d.n, "B*T*H*D") && require_len(env, k, "out", nout, d.n, "B*T*H*D") &&
      require_len(env, k, "probs", nprobs, d.probs, "B*H*T*T")) {
    attention_status(env, k, relora_attention_forward(q, kk, v, out, probs, d.B, d.T, d.H, d.D, d.scale));
  }
  return NULL;
}

napi_value napi_attention_backward(napi_env env, napi_callback_info info) {
  const char *k = "attentionBackward";
  napi_value a[13];
  float *dout, *q, *kk, *v, *probs, *dq, *dk, *dv;
  size_t ndout, nq, nk, nv, nprobs, ndq, ndk, ndv;
  attn_dims d;
  if (args_get(env, info, k, 13, a) && arg_f32(env, a[0], k, "dout", &dout, &ndout) &&
      arg_f32(env, a[1], k, "q", &q, &nq) && arg_f32(env, a[2], k, "k", &kk, &nk) &&
      arg_f32(env, a[3], k, "v", &v, &nv) && arg_f32(env, a[4], k, "probs", &probs, &nprobs) &&
      arg_f32_or_null(env, a[5], k, "dq", &dq, &ndq) && arg_f32_or_null(env, a[6], k, "dk", &dk, &ndk) &&
      arg_f32_or_null(env, a[7], k, "dv", &dv, &ndv) && attention_dims(env, a, k, 8, &d) &&
      require_len(env, k, "dout", ndout, d.n, "B*T*H*D") && require_len(env, k, "q", nq, d.n, "B*T*H*D") &&
      require_len(env, k, "k", nk, d.n, "B*T*H*D") && require_len(env, k, "v", nv, d.n, "B*T*H*D") &&
      require_len(env, k, "probs", nprobs, d.probs, "B*H*T*T") &&
      (!dq || require_len(env, k, "dq", ndq, d.n, "B*T*H*D")) &&
      (!dk || require_len(env, k, "dk", ndk, d.n, "B*T*H*D")) &&
      (!dv || require_len(env, k, "dv", ndv, d.n, "B*T*H*D"))) {
    attention_status(env, k, relora_attention_backward(dout, q, kk, v, probs, dq, dk, dv, d.B, d.T, d.H, d.D, d.scale));
  }
  return NULL;
}

/* bf16 (attention_bf16.c): `saved` holds q, k, v rounded to bf16, packed two per float; `stats` two
 * floats per query row. */
static int bf16_lens(napi_env env, const char *k, size_t saved, size_t stats, const attn_dims *d) {
  int64_t values, rows;
  return mul_size(env, k, d->n, 3, &values) && require_len(env, k, "saved", saved, (values + 1) / 2, "ceil(3*B*T*H*D / 2)") &&
         mul_size(env, k, d->B, d->H, &rows) && mul_size(env, k, rows, d->T, &rows) && mul_size(env, k, rows, 2, &rows) &&
         require_len(env, k, "stats", stats, rows, "B*H*T*2");
}

static void attention_bf16_status(napi_env env, const char *k, int status) {
  if (status == RELORA_ENOMEM) throw_error(env, k, "could not allocate scratch memory");
  else if (status == RELORA_ENOBF16) throw_error(env, k, "this build has no oneDNN, so no bf16 matmul");
  else if (status) throw_error(env, k, "oneDNN bf16 matmul failed with status %d", status);
}

napi_value napi_attention_forward_bf16(napi_env env, napi_callback_info info) {
  const char *k = "attentionForwardBf16";
  napi_value a[11];
  float *q, *kk, *v, *out, *stats, *saved;
  size_t nq, nk, nv, nout, nstats, nsaved;
  attn_dims d;
  if (args_get(env, info, k, 11, a) && arg_f32(env, a[0], k, "q", &q, &nq) && arg_f32(env, a[1], k, "k", &kk, &nk) &&
      arg_f32(env, a[2], k, "v", &v, &nv) && arg_f32(env, a[3], k, "out", &out, &nout) &&
      arg_f32(env, a[4], k, "stats", &stats, &nstats) && arg_f32(env, a[5], k, "saved", &saved, &nsaved) &&
      attention_dims(env, a, k, 6, &d) && require_len(env, k, "q", nq, d.n, "B*T*H*D") &&
      require_len(env, k, "k", nk, d.n, "B*T*H*D") && require_len(env, k, "v", nv, d.n, "B*T*H*D") &&
      require_len(env, k, "out", nout, d.n, "B*T*H*D") && bf16_lens(env, k, nsaved, nstats, &d)) {
    attention_bf16_status(env, k, relora_attention_forward_bf16(q, kk, v, out, stats, (uint16_t *)saved, d.B, d.T, d.H, d.D, d.scale));
  }
  return NULL;
}

napi_value napi_attention_backward_bf16(napi_env env, napi_callback_info info) {
  const char *k = "attentionBackwardBf16";
  napi_value a[12];
  int accumulate;
  float *dout, *saved, *stats, *dq, *dk, *dv;
  size_t ndout, nsaved, nstats, ndq, ndk, ndv;
  attn_dims d;
  if (args_get(env, info, k, 12, a) && arg_f32(env, a[0], k, "dout", &dout, &ndout) &&
      arg_f32(env, a[1], k, "saved", &saved, &nsaved) && arg_f32(env, a[2], k, "stats", &stats, &nstats) &&
      arg_f32_or_null(env, a[3], k, "dq", &dq, &ndq) && arg_f32_or_null(env, a[4], k, "dk", &dk, &ndk) &&
      arg_f32_or_null(env, a[5], k, "dv", &dv, &ndv) && attention_dims(env, a, k, 6, &d) &&
      require_len(env, k, "dout", ndout, d.n, "B*T*H*D") && bf16_lens(env, k, nsaved, nstats, &d) &&
      (!dq || require_len(env, k, "dq", ndq, d.n, "B*T*H*D")) &&
      (!dk || require_len(env, k, "dk", ndk, d.n, "B*T*H*D")) &&
      (!dv || require_len(env, k, "dv", ndv, d.n, "B*T*H*D")) && arg_bool(env, a[11], k, "accumulate", &accumulate)) {
    attention_bf16_status(env, k, relora_attention_backward_bf16(dout, (const uint16_t *)saved, stats, dq, dk, dv, d.B, d.T, d.H, d.D, d.scale, accumulate));
  }
  return NULL;
}

/* ---- SiLU and SwiGLU ---- */

/* Parses `count` arrays then n; arrays flagged in `nullable` may be null. */
static int act_args(napi_env env, napi_callback_info info, const char *k, int count, const char *const *names,
                    unsigned nullable, float **p, int64_t *n) {
  napi_value a[6];
  if (!args_get(env, info, k, (size_t)count + 1, a) || !arg_size(env, a[count], k, "n", n)) return 0;
  for (int i = 0; i < count; i++) {
    size_t len;
    int ok = (nullable >> i) & 1u ? arg_f32_or_null(env, a[i], k, names[i], &p[i], &len)
                                  : arg_f32(env, a[i], k, names[i], &p[i], &len);
    if (!ok || (p[i] && !require_len(env, k, names[i], len, *n, "n"))) return 0;
  }
  return 1;
}

napi_value napi_silu_forward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"x", "out"};
  float *p[2];
  int64_t n;
  if (act_args(env, info, "siluForward", 2, names, 0, p, &n)) relora_silu_forward(p[0], p[1], n);
  return NULL;
}

napi_value napi_silu_backward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"dout", "x", "dx"};
  float *p[3];
  int64_t n;
  if (act_args(env, info, "siluBackward", 3, names, 0, p, &n)) relora_silu_backward(p[0], p[1], p[2], n);
  return NULL;
}

napi_value napi_swiglu_forward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"gate", "up", "out"};
  float *p[3];
  int64_t n;
  if (act_args(env, info, "swigluForward", 3, names, 0, p, &n)) relora_swiglu_forward(p[0], p[1], p[2], n);
  return NULL;
}

napi_value napi_swiglu_backward(napi_env env, napi_callback_info info) {
  static const char *const names[] = {"dout", "gate", "up", "dGate", "dUp"};
  float *p[5];
  int64_t n;
  napi_value a[7];
  int accumulate;
  if (act_args(env, info, "swigluBackward", 5, names, (1u << 3) | (1u << 4), p, &n) &&
      args_get(env, info, "swigluBackward", 7, a) && arg_bool(env, a[6], "swigluBackward", "accumulate", &accumulate)) {
    relora_swiglu_backward(p[0], p[1], p[2], p[3], p[4], n, accumulate);
  }
  return NULL;
}
