/*
 * Open MPI, opened lazily with dlopen when a process started by mpirun (or srun) asks for it:
 * the addon builds, loads and runs without any MPI installed, as for LAPACK (linalg.c). Only
 * the calls data-parallel training needs are bound (src/parallel/mpi.ts uses them).
 *
 * No mpi.h is included (it is absent where OpenMPI is not installed), so the few types and
 * constants are Open MPI's ABI, spelt out: handles are pointers to predefined global objects
 * (MPI_COMM_WORLD is &ompi_mpi_comm_world, MPI_FLOAT is &ompi_mpi_float, ...), found with
 * dlsym. libmpi is opened RTLD_GLOBAL because its plugins (loaded by MPI_Init) resolve their
 * symbols against it. Errors keep MPI's default handler, MPI_ERRORS_ARE_FATAL: a failed
 * collective ends the job rather than returning.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mpi_lazy.h"

typedef void *mpi_handle;
typedef int (*init_thread_fn)(int *, char ***, int, int *);
typedef int (*int_fn)(int *);
typedef int (*comm_int_fn)(mpi_handle, int *);
typedef int (*allreduce_fn)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle);
typedef int (*iallreduce_fn)(const void *, void *, int, mpi_handle, mpi_handle, mpi_handle, mpi_handle *);
typedef int (*bcast_fn)(void *, int, mpi_handle, int, mpi_handle);
typedef int (*allgather_fn)(const void *, int, mpi_handle, void *, int, mpi_handle, mpi_handle);
typedef int (*reduce_fn)(const void *, void *, int, mpi_handle, mpi_handle, int, mpi_handle);
typedef int (*send_fn)(const void *, int, mpi_handle, int, int, mpi_handle);
typedef int (*recv_fn)(void *, int, mpi_handle, int, int, mpi_handle, void *);
typedef int (*ibarrier_fn)(mpi_handle, mpi_handle *);
typedef int (*test_fn)(mpi_handle *, int *, void *);
typedef int (*wait_fn)(mpi_handle *, void *);
typedef int (*abort_fn)(mpi_handle, int);
typedef int (*void_fn)(void);

static struct {
  init_thread_fn init_thread;
  int_fn initialized, finalized;
  comm_int_fn comm_rank, comm_size;
  allreduce_fn allreduce;
  iallreduce_fn iallreduce;
  bcast_fn bcast;
  allgather_fn allgather;
  reduce_fn reduce;
  send_fn send;
  recv_fn recv;
  ibarrier_fn ibarrier;
  test_fn test;
  wait_fn wait;
  abort_fn abort;
  void_fn finalize;
  mpi_handle comm_world, type_float, type_double, type_byte, op_sum, op_max;
} mpi;

static int opened = 0;
static char open_error[512] = "";

#define MPI_THREAD_FUNNELED 1
#define MPI_IN_PLACE ((void *)1)
#define MAX_REQUESTS 256

static mpi_handle requests[MAX_REQUESTS];

/* Calls count elements at a time in chunks below 2^31 (MPI counts are int). */
#define CHUNK ((size_t)1 << 30)

static void *need(void *lib, const char *name, int *missing) {
  void *p = dlsym(lib, name);
  if (!p && !*missing) {
    snprintf(open_error, sizeof open_error, "the MPI library has no symbol %s (only Open MPI is supported)", name);
    *missing = 1;
  }
  return p;
}

int relora_mpi_open(void) {
  if (opened) return opened > 0;
  const char *names[] = {"libmpi.so.40", "libmpi.so"};
  void *lib = NULL;
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !lib; i++) lib = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
  if (!lib) {
    snprintf(open_error, sizeof open_error, "could not open Open MPI's libmpi.so.40 (%s); install openmpi-bin and libopenmpi-dev (Debian) or the equivalent", dlerror());
    opened = -1;
    return 0;
  }
  int missing = 0;
  mpi.init_thread = (init_thread_fn)need(lib, "MPI_Init_thread", &missing);
  mpi.initialized = (int_fn)need(lib, "MPI_Initialized", &missing);
  mpi.finalized = (int_fn)need(lib, "MPI_Finalized", &missing);
  mpi.comm_rank = (comm_int_fn)need(lib, "MPI_Comm_rank", &missing);
  mpi.comm_size = (comm_int_fn)need(lib, "MPI_Comm_size", &missing);
  mpi.allreduce = (allreduce_fn)need(lib, "MPI_Allreduce", &missing);
  mpi.iallreduce = (iallreduce_fn)need(lib, "MPI_Iallreduce", &missing);
  mpi.bcast = (bcast_fn)need(lib, "MPI_Bcast", &missing);
  mpi.allgather = (allgather_fn)need(lib, "MPI_Allgather", &missing);
  mpi.reduce = (reduce_fn)need(lib, "MPI_Reduce", &missing);
  mpi.send = (send_fn)need(lib, "MPI_Send", &missing);
  mpi.recv = (recv_fn)need(lib, "MPI_Recv", &missing);
  mpi.ibarrier = (ibarrier_fn)need(lib, "MPI_Ibarrier", &missing);
  mpi.test = (test_fn)need(lib, "MPI_Test", &missing);
  mpi.wait = (wait_fn)need(lib, "MPI_Wait", &missing);
  mpi.abort = (abort_fn)need(lib, "MPI_Abort", &missing);
  mpi.finalize = (void_fn)need(lib, "MPI_Finalize", &missing);
  mpi.comm_world = need(lib, "ompi_mpi_comm_world", &missing);
  mpi.type_float = need(lib, "ompi_mpi_float", &missing);
  mpi.type_double = need(lib, "ompi_mpi_double", &missing);
  mpi.type_byte = need(lib, "ompi_mpi_byte", &missing);
  mpi.op_sum = need(lib, "ompi_mpi_op_sum", &missing);
  mpi.op_max = need(lib, "ompi_mpi_op_max", &missing);
  opened = missing ? -1 : 1;
  return opened > 0;
}

const char *relora_mpi_error(void) { return open_error; }

int relora_mpi_init(int *rank, int *size) {
  if (!relora_mpi_open()) return -1;
  int done = 0, provided = 0;
  mpi.initialized(&done);
  if (!done) mpi.init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
  mpi.comm_rank(mpi.comm_world, rank);
  mpi.comm_size(mpi.comm_world, size);
  return 0;
}

void relora_mpi_finalize(void) {
  int init = 0, fin = 0;
  if (opened <= 0) return;
  mpi.initialized(&init);
  mpi.finalized(&fin);
  if (init && !fin) mpi.finalize();
}

void relora_mpi_abort(int code) {
  if (opened > 0) mpi.abort(mpi.comm_world, code);
}

void relora_mpi_allreduce_f32_sum(float *x, size_t n) {
  for (size_t i = 0; i < n; i += CHUNK) {
    size_t c = n - i < CHUNK ? n - i : CHUNK;
    mpi.allreduce(MPI_IN_PLACE, x + i, (int)c, mpi.type_float, mpi.op_sum, mpi.comm_world);
  }
}

void relora_mpi_allreduce_f64(double *x, size_t n, int max) {
  mpi.allreduce(MPI_IN_PLACE, x, (int)n, mpi.type_double, max ? mpi.op_max : mpi.op_sum, mpi.comm_world);
}

static int free_slot(void) {
  for (int i = 0; i < MAX_REQUESTS; i++) if (!requests[i]) return i;
  return -1;
}

int relora_mpi_iallreduce_f32_sum(float *x, size_t n) {
  int slot = free_slot();
  if (slot < 0 || n >= ((size_t)1 << 31)) return -1;
  mpi.iallreduce(MPI_IN_PLACE, x, (int)n, mpi.type_float, mpi.op_sum, mpi.comm_world, &requests[slot]);
  return slot;
}

int relora_mpi_ibarrier(void) {
  int slot = free_slot();
  if (slot < 0) return -1;
  mpi.ibarrier(mpi.comm_world, &requests[slot]);
  return slot;
}

int relora_mpi_test(int slot) {
  if (slot < 0 || slot >= MAX_REQUESTS || !requests[slot]) return 1;
  int flag = 0;
  mpi.test(&requests[slot], &flag, NULL);
  if (flag) requests[slot] = NULL;
  return flag;
}

void relora_mpi_wait(int slot) {
  if (slot < 0 || slot >= MAX_REQUESTS || !requests[slot]) return;
  mpi.wait(&requests[slot], NULL);
  requests[slot] = NULL;
}

void relora_mpi_bcast(void *x, size_t bytes) {
  for (size_t i = 0; i < bytes; i += CHUNK) {
    size_t c = bytes - i < CHUNK ? bytes - i : CHUNK;
    mpi.bcast((char *)x + i, (int)c, mpi.type_byte, 0, mpi.comm_world);
  }
}

void relora_mpi_allgather_bytes(const void *mine, size_t bytes, void *all) {
  mpi.allgather(mine, (int)bytes, mpi.type_byte, all, (int)bytes, mpi.type_byte, mpi.comm_world);
}

/* The sum over the ranks lands in root's x (the others' x are left as they were). Blocking: Open
 * MPI's tuned (segmented, pipelined) algorithms; its non-blocking MPI_Ireduce/MPI_Ibcast (libnbc)
 * measured several times slower here on buffers of megabytes. */
void relora_mpi_reduce_f32_sum(float *x, size_t n, int root) {
  int rank = 0;
  mpi.comm_rank(mpi.comm_world, &rank);
  for (size_t i = 0; i < n; i += CHUNK) {
    int c = (int)(n - i < CHUNK ? n - i : CHUNK);
    mpi.reduce(rank == root ? MPI_IN_PLACE : x + i, rank == root ? x + i : NULL, c, mpi.type_float, mpi.op_sum, root, mpi.comm_world);
  }
}

void relora_mpi_bcast_f32(float *x, size_t n, int root) {
  for (size_t i = 0; i < n; i += CHUNK) mpi.bcast(x + i, (int)(n - i < CHUNK ? n - i : CHUNK), mpi.type_float, root, mpi.comm_world);
}

/* Point to point, for what only one rank needs (rank 0 gathering state to write it). */
void relora_mpi_send_f32(const float *x, size_t n, int to) {
  for (size_t i = 0; i < n; i += CHUNK) mpi.send(x + i, (int)(n - i < CHUNK ? n - i : CHUNK), mpi.type_float, to, 0, mpi.comm_world);
}

void relora_mpi_recv_f32(float *x, size_t n, int from) {
  for (size_t i = 0; i < n; i += CHUNK) mpi.recv(x + i, (int)(n - i < CHUNK ? n - i : CHUNK), mpi.type_float, from, 0, mpi.comm_world, NULL);
}
