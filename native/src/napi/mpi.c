/*
 * Bindings for data-parallel training over MPI (src/parallel/mpi.ts). MPI is opened only when
 * mpiInit is called (kernels/mpi.c). Buffers are typed arrays reduced in place; a non-blocking
 * operation returns a request slot for mpiTest/mpiWait, and the caller keeps its buffer alive.
 */
#include "../kernels/mpi_lazy.h"
#include "args.h"
#include "mpi_bindings.h"

static int started = 0;

static int need_started(napi_env env, const char *k) {
  if (!started) throw_error(env, k, "MPI is not initialised (call mpiInit first)");
  return started;
}

/* Any typed array: its data and its length in bytes. */
static int arg_bytes(napi_env env, napi_value v, const char *k, const char *name, void **data, size_t *bytes) {
  bool is_typed = false;
  napi_typedarray_type type;
  size_t len;
  napi_value buf;
  size_t offset;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, v, &type, &len, data, &buf, &offset) != napi_ok) {
    return throw_error(env, k, "%s must be a typed array", name);
  }
  size_t width = type == napi_float64_array || type == napi_bigint64_array || type == napi_biguint64_array ? 8
                 : type == napi_float32_array || type == napi_int32_array || type == napi_uint32_array ? 4
                 : type == napi_int16_array || type == napi_uint16_array ? 2 : 1;
  *bytes = len * width;
  return 1;
}

static int arg_f64(napi_env env, napi_value v, const char *k, const char *name, double **data, size_t *len) {
  bool is_typed = false;
  napi_typedarray_type type;
  napi_is_typedarray(env, v, &is_typed);
  if (!is_typed || napi_get_typedarray_info(env, v, &type, len, (void **)data, NULL, NULL) != napi_ok || type != napi_float64_array) {
    return throw_error(env, k, "%s must be a Float64Array", name);
  }
  return 1;
}

napi_value napi_mpi_init(napi_env env, napi_callback_info info) {
  (void)info;
  int rank = 0, size = 1;
  if (relora_mpi_init(&rank, &size) != 0) {
    throw_error(env, "mpiInit", "%s", relora_mpi_error());
    return NULL;
  }
  started = 1;
  napi_value out, r, s;
  napi_create_array_with_length(env, 2, &out);
  napi_create_int32(env, rank, &r);
  napi_create_int32(env, size, &s);
  napi_set_element(env, out, 0, r);
  napi_set_element(env, out, 1, s);
  return out;
}

napi_value napi_mpi_finalize(napi_env env, napi_callback_info info) {
  (void)env;
  (void)info;
  if (started) relora_mpi_finalize();
  started = 0;
  return NULL;
}

napi_value napi_mpi_abort(napi_env env, napi_callback_info info) {
  napi_value a[1];
  int64_t code;
  if (!args_get(env, info, "mpiAbort", 1, a) || !arg_int(env, a[0], "mpiAbort", "code", &code)) return NULL;
  if (started) relora_mpi_abort((int)code);
  return NULL;
}

napi_value napi_mpi_allreduce_sum(napi_env env, napi_callback_info info) {
  const char *k = "mpiAllreduceSum";
  napi_value a[1];
  float *x;
  size_t n;
  if (!args_get(env, info, k, 1, a) || !arg_f32(env, a[0], k, "x", &x, &n) || !need_started(env, k)) return NULL;
  relora_mpi_allreduce_f32_sum(x, n);
  return NULL;
}

napi_value napi_mpi_allreduce_f64(napi_env env, napi_callback_info info) {
  const char *k = "mpiAllreduceF64";
  napi_value a[2];
  double *x;
  size_t n;
  int max;
  if (!args_get(env, info, k, 2, a) || !arg_f64(env, a[0], k, "x", &x, &n) || !arg_bool(env, a[1], k, "max", &max) ||
      !need_started(env, k)) {
    return NULL;
  }
  relora_mpi_allreduce_f64(x, n, max);
  return NULL;
}

static napi_value slot_value(napi_env env, const char *k, int slot) {
  if (slot < 0) {
    throw_error(env, k, "too many MPI requests in flight (or a buffer of 2^31 elements or more)");
    return NULL;
  }
  napi_value out;
  napi_create_int32(env, slot, &out);
  return out;
}

napi_value napi_mpi_iallreduce_sum(napi_env env, napi_callback_info info) {
  const char *k = "mpiIallreduceSum";
  napi_value a[1];
  float *x;
  size_t n;
  if (!args_get(env, info, k, 1, a) || !arg_f32(env, a[0], k, "x", &x, &n) || !need_started(env, k)) return NULL;
  return slot_value(env, k, relora_mpi_iallreduce_f32_sum(x, n));
}

napi_value napi_mpi_ibarrier(napi_env env, napi_callback_info info) {
  (void)info;
  if (!need_started(env, "mpiIbarrier")) return NULL;
  return slot_value(env, "mpiIbarrier", relora_mpi_ibarrier());
}

napi_value napi_mpi_test(napi_env env, napi_callback_info info) {
  const char *k = "mpiTest";
  napi_value a[1], out;
  int64_t slot;
  if (!args_get(env, info, k, 1, a) || !arg_int(env, a[0], k, "request", &slot) || !need_started(env, k)) return NULL;
  napi_get_boolean(env, relora_mpi_test((int)slot), &out);
  return out;
}

napi_value napi_mpi_wait(napi_env env, napi_callback_info info) {
  const char *k = "mpiWait";
  napi_value a[1];
  int64_t slot;
  if (!args_get(env, info, k, 1, a) || !arg_int(env, a[0], k, "request", &slot) || !need_started(env, k)) return NULL;
  relora_mpi_wait((int)slot);
  return NULL;
}

napi_value napi_mpi_bcast(napi_env env, napi_callback_info info) {
  const char *k = "mpiBcast";
  napi_value a[1];
  void *x = NULL;
  size_t bytes = 0;
  if (!args_get(env, info, k, 1, a) || !arg_bytes(env, a[0], k, "x", &x, &bytes) || !need_started(env, k)) return NULL;
  relora_mpi_bcast(x, bytes);
  return NULL;
}

napi_value napi_mpi_allgather_bytes(napi_env env, napi_callback_info info) {
  const char *k = "mpiAllgatherBytes";
  napi_value a[2];
  void *mine = NULL, *all = NULL;
  size_t mine_bytes = 0, all_bytes = 0;
  if (!args_get(env, info, k, 2, a) || !arg_bytes(env, a[0], k, "mine", &mine, &mine_bytes) ||
      !arg_bytes(env, a[1], k, "all", &all, &all_bytes) || !need_started(env, k)) {
    return NULL;
  }
  if (mine_bytes == 0 || all_bytes % mine_bytes != 0) {
    throw_error(env, k, "all (%zu bytes) must hold a whole number of copies of mine (%zu bytes)", all_bytes, mine_bytes);
    return NULL;
  }
  relora_mpi_allgather_bytes(mine, mine_bytes, all);
  return NULL;
}

/* A Float32Array and a rank (root, destination or source) of an operation; returns 1, or throws and returns 0. */
static int args_f32_and_rank(napi_env env, napi_callback_info info, const char *k, float **x, size_t *n, int *rank) {
  napi_value a[2];
  int64_t r;
  if (!args_get(env, info, k, 2, a) || !arg_f32(env, a[0], k, "x", x, n) || !arg_int(env, a[1], k, "rank", &r) || !need_started(env, k)) return 0;
  if (r < 0 || r >= (1 << 30)) return throw_error(env, k, "rank must be a process index, got %lld", (long long)r);
  *rank = (int)r;
  return 1;
}

/* A blocking operation on a Float32Array with a root rank. */
static napi_value run_rooted(napi_env env, napi_callback_info info, const char *k, void (*op)(float *, size_t, int)) {
  float *x;
  size_t n;
  int root = 0;
  if (args_f32_and_rank(env, info, k, &x, &n, &root)) op(x, n, root);
  return NULL;
}

napi_value napi_mpi_reduce_sum(napi_env env, napi_callback_info info) {
  return run_rooted(env, info, "mpiReduceSum", relora_mpi_reduce_f32_sum);
}

napi_value napi_mpi_bcast_f32(napi_env env, napi_callback_info info) {
  return run_rooted(env, info, "mpiBcastF32", relora_mpi_bcast_f32);
}

napi_value napi_mpi_send(napi_env env, napi_callback_info info) {
  float *x;
  size_t n;
  int to = 0;
  if (args_f32_and_rank(env, info, "mpiSendF32", &x, &n, &to)) relora_mpi_send_f32(x, n, to);
  return NULL;
}

napi_value napi_mpi_recv(napi_env env, napi_callback_info info) {
  float *x;
  size_t n;
  int from = 0;
  if (args_f32_and_rank(env, info, "mpiRecvF32", &x, &n, &from)) relora_mpi_recv_f32(x, n, from);
  return NULL;
}
