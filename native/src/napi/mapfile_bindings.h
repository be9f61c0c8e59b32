/* The file-map entry point (mapfile.c), registered in addon.c. */
#ifndef RELORA_NAPI_MAPFILE_H
#define RELORA_NAPI_MAPFILE_H

#include <node_api.h>

napi_value napi_map_file(napi_env env, napi_callback_info info);

#endif
