/* Open MPI opened at run time (mpi.c); every call but open/error/init requires a successful init. */
#ifndef RELORA_MPI_H
#define RELORA_MPI_H

#include <stddef.h>

int relora_mpi_open(void);
const char *relora_mpi_error(void);
int relora_mpi_init(int *rank, int *size);
void relora_mpi_finalize(void);
void relora_mpi_abort(int code);
void relora_mpi_allreduce_f32_sum(float *x, size_t n);
void relora_mpi_allreduce_f64(double *x, size_t n, int max);
int relora_mpi_iallreduce_f32_sum(float *x, size_t n);
int relora_mpi_ibarrier(void);
int relora_mpi_test(int slot);
void relora_mpi_wait(int slot);
void relora_mpi_bcast(void *x, size_t bytes);
void relora_mpi_allgather_bytes(const void *mine, size_t bytes, void *all);
void relora_mpi_reduce_scatter_f32_sum(const float *x, float *slice, size_t slice_len);
void relora_mpi_allgather_f32(const float *slice, size_t slice_len, float *all);

#endif
