/*
 * Argument parsing for the N-API entry points. Every helper either fills its output and returns 1,
 * or throws a JS Error (message prefixed with the kernel name) and returns 0, so call sites read
 * as `if (!arg_size(...)) return NULL;` and never touch memory after a failed check.
 */
#ifndef RELORA_ARGS_H
#define RELORA_ARGS_H

#include <node_api.h>
#include <stddef.h>
#include <stdint.h>

/* Fetches exactly `expected` arguments into argv (missing ones are an error). */
int args_get(napi_env env, napi_callback_info info, const char *kernel, size_t expected, napi_value *argv);

/* A Float32Array (view offset already applied); `len` receives its element count. */
int arg_f32(napi_env env, napi_value v, const char *kernel, const char *name, float **data, size_t *len);
/* Like arg_f32, but null/undefined yields data = NULL, len = 0 (a gradient that is not needed). */
int arg_f32_or_null(napi_env env, napi_value v, const char *kernel, const char *name, float **data, size_t *len);
int arg_i32(napi_env env, napi_value v, const char *kernel, const char *name, int32_t **data, size_t *len);

/* A non-negative integer below 2^53 (sizes, strides, leading dimensions). */
int arg_size(napi_env env, napi_value v, const char *kernel, const char *name, int64_t *out);
/* Any integer-valued number in the int32 range (ignore indices may be negative). */
int arg_int(napi_env env, napi_value v, const char *kernel, const char *name, int64_t *out);
int arg_bool(napi_env env, napi_value v, const char *kernel, const char *name, int *out);
int arg_double(napi_env env, napi_value v, const char *kernel, const char *name, double *out);

/* Throws unless `have` >= `need`; `what` describes how `need` was derived, e.g. "rows*dim". */
int require_len(napi_env env, const char *kernel, const char *name, size_t have, int64_t need, const char *what);

/* Throws a formatted Error "<kernel>: <message>"; always returns 0 so it can end a check. */
int throw_error(napi_env env, const char *kernel, const char *fmt, ...);

/* Products of sizes that must not overflow: sets *out and returns 1, or throws and returns 0. */
int mul_size(napi_env env, const char *kernel, int64_t a, int64_t b, int64_t *out);

#endif
