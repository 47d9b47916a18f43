// fd_read.hpp — positioned reads of an open file descriptor, for the bounded parsers of untrusted files (zip, GGUF,
// imatrix.dat): read(offset, len, dst) fills dst with pread until done and returns false on EOF or error.
#ifndef CKHOST_PLUGINS_COMMON_FD_READ_HPP
#define CKHOST_PLUGINS_COMMON_FD_READ_HPP

#include <sys/types.h>
#include <unistd.h>

#include <cstdint>
#include <functional>

namespace ckh::plugins {

inline std::function<bool(uint64_t, uint64_t, void *)> fd_read_at(int fd) {
  return [fd](uint64_t off, uint64_t len, void *dst) {
    char *p = static_cast<char *>(dst);
    while (len) {
      const ssize_t n = ::pread(fd, p, len, static_cast<off_t>(off));
      if (n <= 0) return false;
      p += n;
      off += static_cast<uint64_t>(n);
      len -= static_cast<uint64_t>(n);
    }
    return true;
  };
}

}  // namespace ckh::plugins

#endif  // CKHOST_PLUGINS_COMMON_FD_READ_HPP
