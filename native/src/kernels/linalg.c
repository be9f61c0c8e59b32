/*
 * Singular values through LAPACK's dgesdd (OpenBLAS ships it as liblapack.so.3 on Debian).
 * LAPACK is opened lazily with dlopen on the first call, not linked: the addon builds and loads
 * without it. OpenBLAS is kept to one thread so it never competes with libgomp's pool (this is a
 * rare, small call: the rank diagnostic at ReLoRA merges): told so through its environment while
 * it loads, so its pthread build starts no worker threads at all — threads that would otherwise
 * idle until exit and then be torn down by its destructor while the process exits.
 *
 * A row-major m×n matrix is the column-major n×m Aᵀ, which has the same singular values.
 */
#include <dlfcn.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

/* dgesdd_ as gfortran compiles it: after the 14 arguments comes the hidden length of the
 * character argument JOBZ. Leaving it out is not harmless: gfortran may use the stack slot it
 * expects there, which then belongs to the caller. */
typedef void (*dgesdd_fn)(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
                          double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork,
                          int *iwork, int *info, size_t jobz_len);
typedef void (*set_threads_fn)(int);

static dgesdd_fn dgesdd_ptr = NULL;
static int lapack_tried = 0;
static char lapack_error[256] = "";

static dgesdd_fn lapack(void) {
  if (lapack_tried) return dgesdd_ptr;
  lapack_tried = 1;
  const char *names[] = {"liblapack.so.3", "libopenblas.so.0", "liblapack.so"};
  /* Read by OpenBLAS's constructor; removed again so child processes do not inherit it. */
  int set_here = getenv("OPENBLAS_NUM_THREADS") == NULL;
  if (set_here) setenv("OPENBLAS_NUM_THREADS", "1", 1);
  for (size_t i = 0; i < sizeof names / sizeof names[0] && !dgesdd_ptr; i++) {
    void *h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) continue;
    set_threads_fn st = (set_threads_fn)dlsym(h, "openblas_set_num_threads");
    if (st) st(1);
    dgesdd_ptr = (dgesdd_fn)dlsym(h, "dgesdd_");
  }
  if (set_here) unsetenv("OPENBLAS_NUM_THREADS");
  if (!dgesdd_ptr) {
    strncpy(lapack_error, "no LAPACK library with dgesdd_ found (install libopenblas-dev or liblapack3)",
            sizeof lapack_error - 1);
  }
  return dgesdd_ptr;
}

int relora_lapack_available(void) { return lapack() != NULL; }

const char *relora_lapack_error(void) { return lapack_error; }

int relora_svd_values(double *a, int64_t m, int64_t n, double *s) {
  dgesdd_fn f = lapack();
  if (!f) return RELORA_ENOLAPACK;
  /* Column-major view: M = n rows, N = m columns, lda = n. */
  int M = (int)n, N = (int)m, lda = (int)n, one = 1, info = 0, lwork = -1;
  int mn = M < N ? M : N, mx = M < N ? N : M;
  int *iwork = malloc((size_t)8 * (size_t)mn * sizeof(int));
  if (!iwork) return RELORA_ENOMEM;
  double dummy = 0, query = 0;
  f("N", &M, &N, a, &lda, s, &dummy, &one, &dummy, &one, &query, &lwork, iwork, &info, 1);
  if (info != 0) {
    free(iwork);
    return info;
  }
  /* Never less than LAPACK's documented minimum for JOBZ = 'N' (3·mn + max(mx, 7·mn)): some
   * LAPACK versions answered the workspace query with less than they then used. */
  double minimum = 3.0 * mn + (mx > 7 * mn ? mx : 7.0 * mn);
  double want = (query > minimum ? query : minimum) + 1;
  if (want > 2147483647.0) {
    free(iwork);
    return RELORA_ENOMEM;
  }
  lwork = (int)want;
  double *work = malloc((size_t)lwork * sizeof(double));
  if (!work) {
    free(iwork);
    return RELORA_ENOMEM;
  }
  f("N", &M, &N, a, &lda, s, &dummy, &one, &dummy, &one, work, &lwork, iwork, &info, 1);
  free(work);
  free(iwork);
  return info;
}
