/*
 * Module entry: exports one function per `Kernels` method (bindings.h) plus build facts (blas,
 * lapack) and thread control. All kernels share libgomp's thread pool, which oneDNN (built with the OpenMP
 * runtime on Debian) uses too, so setThreads governs everything and only one pool ever exists.
 */
#include <node_api.h>
#include <omp.h>
#include <pthread.h>
#include <signal.h>

#include "../kernels/kernels.h"
#include "args.h"
#include "bindings.h"
#include "mapfile_bindings.h"
#include "mpi_bindings.h"

#ifdef RELORA_HAVE_LAPACK
#define LAPACK_FOUND true
#else
#define LAPACK_FOUND false
#endif

static napi_value get_threads(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  napi_create_int32(env, omp_get_max_threads(), &out);
  return out;
}

static napi_value set_threads(napi_env env, napi_callback_info info) {
  const char *k = "setThreads";
  napi_value a[1];
  int64_t n;
  if (!args_get(env, info, k, 1, a) || !arg_size(env, a[0], k, "n", &n)) return NULL;
  if (n < 1 || n > 4096) {
    throw_error(env, k, "n must be an integer in [1, 4096], got %lld", (long long)n);
    return NULL;
  }
  omp_set_num_threads((int)n);
  return NULL;
}

/*
 * Asynchronous signals wait while native code runs. oneDNN's JIT SGEMM kernels point the stack
 * pointer into a heap workspace while they run (uxlfoundation/oneDNN#4845, fixed upstream after
 * the version Debian ships): a signal handler invoked on such a thread pushes its frame into the
 * heap and corrupts it (glibc aborts later with "corrupted size vs. prev_size", or the process
 * segfaults). So every binding runs with the asynchronous signals blocked on the calling thread;
 * one that arrives meanwhile is delivered as soon as the call returns. OpenMP (and OpenBLAS)
 * worker threads are created inside such calls, or by init below, so they inherit the blocked
 * mask for life and never run a handler. Synchronous signals stay unblocked: a crash still reports.
 */
static sigset_t async_signals;

static void init_async_signals(void) {
  sigfillset(&async_signals);
  const int synchronous[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS};
  for (size_t i = 0; i < sizeof synchronous / sizeof synchronous[0]; i++) sigdelset(&async_signals, synchronous[i]);
}

/* Calls the binding stored as the property's data with asynchronous signals blocked. */
static napi_value with_signals_blocked(napi_env env, napi_callback_info info) {
  void *binding = NULL;
  if (napi_get_cb_info(env, info, NULL, NULL, NULL, &binding) != napi_ok || !binding) return NULL;
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &async_signals, &previous);
  napi_value out = ((napi_callback)binding)(env, info);
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
  return out;
}

/* Starts the OpenMP thread pool with asynchronous signals blocked, so its threads inherit that. */
static void start_thread_pool(void) {
  sigset_t previous;
  pthread_sigmask(SIG_BLOCK, &async_signals, &previous);
#pragma omp parallel
  {
    (void)0;
  }
  pthread_sigmask(SIG_SETMASK, &previous, NULL);
}

#define FN(js, c) {js, NULL, with_signals_blocked, NULL, NULL, NULL, napi_enumerable, (void *)(c)}

static napi_value init(napi_env env, napi_value exports) {
  init_async_signals();
  start_thread_pool();
  napi_value blas, lapack, name;
  napi_create_string_utf8(env, relora_blas_name(), NAPI_AUTO_LENGTH, &blas);
  napi_create_string_utf8(env, "native", NAPI_AUTO_LENGTH, &name);
  napi_get_boolean(env, LAPACK_FOUND, &lapack);
  napi_property_descriptor props[] = {
      {"name", NULL, NULL, NULL, NULL, name, napi_enumerable, NULL},
      {"blas", NULL, NULL, NULL, NULL, blas, napi_enumerable, NULL},
      {"lapack", NULL, NULL, NULL, NULL, lapack, napi_enumerable, NULL},
      FN("getThreads", get_threads),
      FN("setThreads", set_threads),
      FN("gemm", napi_gemm),
      FN("gemmBuiltin", napi_gemm_builtin),
      FN("benchGemmDirect", napi_bench_gemm_direct),
      FN("svdValues", napi_svd_values),
      FN("lapackAvailable", napi_lapack_available),
      FN("add", napi_add),
      FN("mul", napi_mul),
      FN("scale", napi_scale),
      FN("axpy", napi_axpy),
      FN("addScalar", napi_add_scalar),
      FN("sum", napi_sum),
      FN("sumSquares", napi_sum_squares),
      FN("fill", napi_fill),
      FN("embeddingForward", napi_embedding_forward),
      FN("embeddingBackward", napi_embedding_backward),
      FN("rmsnormForward", napi_rmsnorm_forward),
      FN("rmsnormBackward", napi_rmsnorm_backward),
      FN("ropeForward", napi_rope_forward),
      FN("ropeBackward", napi_rope_backward),
      FN("attentionForward", napi_attention_forward),
      FN("attentionBackward", napi_attention_backward),
      FN("attentionForwardBf16", napi_attention_forward_bf16),
      FN("attentionBackwardBf16", napi_attention_backward_bf16),
      FN("siluForward", napi_silu_forward),
      FN("siluBackward", napi_silu_backward),
      FN("swigluForward", napi_swiglu_forward),
      FN("swigluBackward", napi_swiglu_backward),
      FN("dropoutMask", napi_dropout_mask),
      FN("crossEntropyForward", napi_cross_entropy_forward),
      FN("crossEntropyBackward", napi_cross_entropy_backward),
      FN("adamwStep", napi_adamw_step),
      FN("dropoutApply", napi_dropout_apply),
      FN("dropoutApplyBf16", napi_dropout_apply_bf16),
      FN("dropoutBackwardAdd", napi_dropout_backward_add),
      FN("gemmBf16", napi_gemm_bf16),
      FN("gemmBf16ToBf16", napi_gemm_bf16_to_bf16),
      FN("crossEntropyBackwardWrite", napi_cross_entropy_backward_write),
      FN("crossEntropyFused", napi_cross_entropy_fused),
      FN("toBf16", napi_to_bf16),
      FN("toBf16Rows", napi_to_bf16_rows),
      FN("bf16Available", napi_bf16_available),
      FN("bf16Isa", napi_bf16_isa),
      FN("mpiInit", napi_mpi_init),
      FN("mpiFinalize", napi_mpi_finalize),
      FN("mpiAbort", napi_mpi_abort),
      FN("mpiAllreduceSum", napi_mpi_allreduce_sum),
      FN("mpiAllreduceF64", napi_mpi_allreduce_f64),
      FN("mpiIallreduceSum", napi_mpi_iallreduce_sum),
      FN("mpiIbarrier", napi_mpi_ibarrier),
      FN("mpiTest", napi_mpi_test),
      FN("mpiWait", napi_mpi_wait),
      FN("mpiBcast", napi_mpi_bcast),
      FN("mpiAllgatherBytes", napi_mpi_allgather_bytes),
      FN("mpiReduceSum", napi_mpi_reduce_sum),
      FN("mpiBcastF32", napi_mpi_bcast_f32),
      FN("mpiSendF32", napi_mpi_send),
      FN("mpiRecvF32", napi_mpi_recv),
      FN("mapFile", napi_map_file),
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
