/* Read-only memory maps of files (mapfile.c), for the token cache's reads (src/data/token-dataset.ts). */
#ifndef RELORA_MAPFILE_H
#define RELORA_MAPFILE_H

#include <stddef.h>
#include <stdint.h>

/* A mapped region: `data` points at the requested offset inside the page-aligned mapping `base`. */
typedef struct {
  void *base;
  size_t base_len;
  void *data;
} relora_mapping;

/*
 * Maps bytes [offset, offset + length) of `path` read-only. Returns 0 and fills *out, or returns an
 * errno value (EINVAL when the range lies outside the file or length is 0) and leaves *out unset.
 * The file descriptor is closed before returning: the mapping alone keeps the pages reachable.
 */
int relora_map_file(const char *path, int64_t offset, int64_t length, relora_mapping *out);

void relora_unmap_file(const relora_mapping *m);

#endif
