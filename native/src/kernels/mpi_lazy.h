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
void relora_mpi_reduce_f32_sum(float *x, size_t n, int root);
void relora_mpi_bcast_f32(float *x, size_t n, int root);
void relora_mpi_send_f32(const float *x, size_t n, int to);
void relora_mpi_recv_f32(float *x, size_t n, int from);

#endif
