#include "args.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>

/* Largest integer a double holds exactly; sizes beyond it cannot come from JS anyway. */
#define MAX_SAFE 9007199254740991.0

int throw_error(napi_env env, const char *kernel, const char *fmt, ...) {
  char msg[512];
  int used = snprintf(msg, sizeof msg, "%s: ", kernel);
  if (used < 0 || (size_t)used >= sizeof msg) used = 0;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg + used, sizeof msg - (size_t)used, fmt, ap);
  va_end(ap);
  /* An exception may already be pending (from a failed N-API call); keep the first one. */
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, NULL, msg);
  return 0;
}

int args_get(napi_env env, napi_callback_info info, const char *kernel, size_t expected, napi_value *argv) {
  size_t argc = expected;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {
    return throw_error(env, kernel, "could not read arguments");
  }
  if (argc < expected) {
    return throw_error(env, kernel, "expected %zu arguments, got %zu", expected, argc);
  }
  return 1;
}

static int typed_array(napi_env env, napi_value v, const char *kernel, const char *name,
                       napi_typedarray_type want, const char *want_name, void **data, size_t *len) {
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  napi_typedarray_type type;
  if (is_ta && napi_get_typedarray_info(env, v, &type, len, data, NULL, NULL) == napi_ok && type == want) {
    return 1;
  }
  return throw_error(env, kernel, "%s must be %s", name, want_name);
}

int arg_f32(napi_env env, napi_value v, const char *kernel, const char *name, float **data, size_t *len) {
  return typed_array(env, v, kernel, name, napi_float32_array, "a Float32Array", (void **)data, len);
}

int arg_f32_or_null(napi_env env, napi_value v, const char *kernel, const char *name, float **data, size_t *len) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) == napi_ok && (t == napi_null || t == napi_undefined)) {
    *data = NULL;
    *len = 0;
    return 1;
  }
  return typed_array(env, v, kernel, name, napi_float32_array, "a Float32Array or null", (void **)data, len);
}

int arg_i32(napi_env env, napi_value v, const char *kernel, const char *name, int32_t **data, size_t *len) {
  return typed_array(env, v, kernel, name, napi_int32_array, "an Int32Array", (void **)data, len);
}

int arg_double(napi_env env, napi_value v, const char *kernel, const char *name, double *out) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    return throw_error(env, kernel, "%s must be a number", name);
  }
  return 1;
}

int arg_size(napi_env env, napi_value v, const char *kernel, const char *name, int64_t *out) {
  double d;
  if (!arg_double(env, v, kernel, name, &d)) return 0;
  if (!(d >= 0 && d <= MAX_SAFE) || floor(d) != d) {
    return throw_error(env, kernel, "%s must be a non-negative integer, got %g", name, d);
  }
  *out = (int64_t)d;
  return 1;
}

int arg_int(napi_env env, napi_value v, const char *kernel, const char *name, int64_t *out) {
  double d;
  if (!arg_double(env, v, kernel, name, &d)) return 0;
  if (!(d >= -2147483648.0 && d <= 2147483647.0) || floor(d) != d) {
    return throw_error(env, kernel, "%s must be an integer in the int32 range, got %g", name, d);
  }
  *out = (int64_t)d;
  return 1;
}

int arg_bool(napi_env env, napi_value v, const char *kernel, const char *name, int *out) {
  bool b;
  if (napi_get_value_bool(env, v, &b) != napi_ok) {
    return throw_error(env, kernel, "%s must be a boolean", name);
  }
  *out = b ? 1 : 0;
  return 1;
}

int require_len(napi_env env, const char *kernel, const char *name, size_t have, int64_t need, const char *what) {
  if ((double)have < (double)need) {
    return throw_error(env, kernel, "%s has %zu elements but %s needs %lld", name, have, what, (long long)need);
  }
  return 1;
}

int mul_size(napi_env env, const char *kernel, int64_t a, int64_t b, int64_t *out) {
  if (a != 0 && (double)a * (double)b > MAX_SAFE) {
    return throw_error(env, kernel, "size product %lld*%lld is too large", (long long)a, (long long)b);
  }
  *out = a * b;
  return 1;
}
