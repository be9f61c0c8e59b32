/*
 * mapFile(path, offset, length): bytes [offset, offset + length) of a file as an ArrayBuffer over
 * a read-only memory map. The buffer owns the map: when it is garbage-collected the finalizer
 * unmaps it. Writing into it faults (PROT_READ), so callers only read through views of it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../kernels/mapfile.h"
#include "args.h"
#include "mapfile_bindings.h"

static void unmap_finalizer(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  relora_mapping *m = hint;
  relora_unmap_file(m);
  free(m);
}

napi_value napi_map_file(napi_env env, napi_callback_info info) {
  const char *k = "mapFile";
  napi_value a[3];
  int64_t offset, length;
  if (!args_get(env, info, k, 3, a) || !arg_size(env, a[1], k, "offset", &offset) || !arg_size(env, a[2], k, "length", &length)) return NULL;
  size_t path_len = 0;
  if (napi_get_value_string_utf8(env, a[0], NULL, 0, &path_len) != napi_ok) {
    throw_error(env, k, "path must be a string");
    return NULL;
  }
  char *path = malloc(path_len + 1);
  relora_mapping *m = malloc(sizeof *m);
  if (!path || !m) {
    free(path);
    free(m);
    throw_error(env, k, "out of memory");
    return NULL;
  }
  napi_get_value_string_utf8(env, a[0], path, path_len + 1, &path_len);
  int err = length == 0 ? EINVAL : relora_map_file(path, offset, length, m);
  if (err) {
    if (err == EINVAL) {
      throw_error(env, k, "%s: cannot map bytes [%lld, %lld) (empty, or past the end of the file)", path, (long long)offset, (long long)(offset + length));
    } else {
      throw_error(env, k, "%s: %s", path, strerror(err));
    }
    free(path);
    free(m);
    return NULL;
  }
  free(path);
  napi_value out;
  if (napi_create_external_arraybuffer(env, m->data, (size_t)length, unmap_finalizer, m, &out) != napi_ok) {
    relora_unmap_file(m);
    free(m);
    throw_error(env, k, "cannot wrap the mapped file in an ArrayBuffer");
    return NULL;
  }
  return out;
}
