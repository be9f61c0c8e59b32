/*
 * Read-only file maps. mmap needs a page-aligned file offset, so the map starts at the page that
 * holds `offset` and `data` skips the difference. MAP_SHARED with PROT_READ: pages come from the
 * page cache, so a file read by several processes is held in memory once.
 */
#include "mapfile.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int relora_map_file(const char *path, int64_t offset, int64_t length, relora_mapping *out) {
  if (offset < 0 || length <= 0) return EINVAL;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return err;
  }
  /* Touching a mapped page past the end of the file raises SIGBUS, so the range must be in it. */
  if (offset + length > (int64_t)st.st_size) {
    close(fd);
    return EINVAL;
  }
  int64_t page = (int64_t)sysconf(_SC_PAGESIZE);
  int64_t start = offset - offset % page;
  size_t len = (size_t)(offset + length - start);
  void *base = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, (off_t)start);
  int err = base == MAP_FAILED ? errno : 0;
  close(fd);
  if (err) return err;
  out->base = base;
  out->base_len = len;
  out->data = (char *)base + (offset - start);
  return 0;
}

void relora_unmap_file(const relora_mapping *m) {
  munmap(m->base, m->base_len);
}
