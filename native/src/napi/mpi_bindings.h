/* The MPI entry points (mpi.c), registered in addon.c. */
#ifndef RELORA_NAPI_MPI_H
#define RELORA_NAPI_MPI_H

#include <node_api.h>

napi_value napi_mpi_init(napi_env env, napi_callback_info info);
napi_value napi_mpi_finalize(napi_env env, napi_callback_info info);
napi_value napi_mpi_abort(napi_env env, napi_callback_info info);
napi_value napi_mpi_allreduce_sum(napi_env env, napi_callback_info info);
napi_value napi_mpi_allreduce_f64(napi_env env, napi_callback_info info);
napi_value napi_mpi_iallreduce_sum(napi_env env, napi_callback_info info);
napi_value napi_mpi_ibarrier(napi_env env, napi_callback_info info);
napi_value napi_mpi_test(napi_env env, napi_callback_info info);
napi_value napi_mpi_wait(napi_env env, napi_callback_info info);
napi_value napi_mpi_bcast(napi_env env, napi_callback_info info);
napi_value napi_mpi_allgather_bytes(napi_env env, napi_callback_info info);
napi_value napi_mpi_reduce_sum(napi_env env, napi_callback_info info);
napi_value napi_mpi_bcast_f32(napi_env env, napi_callback_info info);
napi_value napi_mpi_send(napi_env env, napi_callback_info info);
napi_value napi_mpi_recv(napi_env env, napi_callback_info info);

#endif
