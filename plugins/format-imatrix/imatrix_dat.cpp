// imatrix_dat.cpp — see imatrix_dat.hpp.
#include "imatrix_dat.hpp"

#include <algorithm>
#include <set>
#include <stdexcept>

namespace ckh::imatrix {

namespace {

constexpr int32_t kMaxName = 1024;

struct Cursor {
  const ReadFn &read;
  uint64_t size, pos = 0;
  int32_t i32(const char *what) {
    int32_t v;
    if (size - pos < 4 || !read(pos, 4, &v))
      throw std::runtime_error(std::string("truncated at byte ") + std::to_string(pos) + " (reading " + what + ")");
    pos += 4;
    return v;
  }
};

}  // namespace

File parse(const ReadFn &read, uint64_t size) {
  Cursor c{read, size};
  File f;
  const int32_t n = c.i32("the entry count");
  if (n < 1) throw std::runtime_error("entry count " + std::to_string(n) + " (at least 1)");
  // Each entry takes at least 4 + 1 + 4 + 4 + 4 bytes.
  if (static_cast<uint64_t>(n) > (size - 4) / 17)
    throw std::runtime_error("entry count " + std::to_string(n) + " does not fit in " + std::to_string(size) + " bytes");
  std::set<std::string> seen;
  for (int32_t i = 0; i < n; ++i) {
    Entry e;
    const uint64_t at = c.pos;
    const int32_t len = c.i32("a name length");
    if (len < 1 || len > kMaxName)
      throw std::runtime_error("entry " + std::to_string(i) + " at byte " + std::to_string(at) + ": name length " + std::to_string(len) +
                               " (1 to " + std::to_string(kMaxName) + ")");
    if (size - c.pos < static_cast<uint64_t>(len)) throw std::runtime_error("entry " + std::to_string(i) + ": name past the end");
    e.name.resize(static_cast<size_t>(len));
    if (!read(c.pos, static_cast<uint64_t>(len), e.name.data())) throw std::runtime_error("entry " + std::to_string(i) + ": name unreadable");
    if (e.name.find('\0') != std::string::npos) throw std::runtime_error("entry " + std::to_string(i) + ": name holds a NUL byte");
    c.pos += static_cast<uint64_t>(len);
    if (!seen.insert(e.name).second) throw std::runtime_error("entry '" + e.name + "' appears twice");
    e.ncall_offset = c.pos;
    e.ncall = c.i32("ncall");
    const int32_t nval = c.i32("nval");
    if (nval < 1) throw std::runtime_error("entry '" + e.name + "': " + std::to_string(nval) + " values (at least 1)");
    e.nval = nval;
    e.sums_offset = c.pos;
    if ((size - c.pos) / 4 < static_cast<uint64_t>(nval))
      throw std::runtime_error("entry '" + e.name + "': " + std::to_string(nval) + " values run past the end of the file");
    c.pos += 4 * static_cast<uint64_t>(nval);
    f.entries.push_back(std::move(e));
  }
  // Optional trailer (llama.cpp reads it when bytes follow and ignores what it cannot read).
  if (size - c.pos >= 4) {
    f.chunk_count = c.i32("the chunk count");
    if (size - c.pos >= 4) {
      const int32_t len = c.i32("the dataset name length");
      if (len > 0 && static_cast<uint64_t>(len) <= size - c.pos && len <= (1 << 20)) {
        f.dataset.resize(static_cast<size_t>(len));
        if (!read(c.pos, static_cast<uint64_t>(len), f.dataset.data())) f.dataset.clear();
        const size_t nul = f.dataset.find('\0');
        if (nul != std::string::npos) f.dataset.resize(nul);
      }
    }
  }
  return f;
}

bool looks_like(const ReadFn &read, uint64_t size) {
  // The entry count and the first name only: a file that starts like one is opened, and open() names what is wrong.
  int32_t h[2];
  if (size < 9 || !read(0, 8, h)) return false;
  if (h[0] < 1 || static_cast<uint64_t>(h[0]) > (size - 4) / 17 || h[1] < 1 || h[1] > kMaxName) return false;
  const uint64_t n = std::min<uint64_t>(static_cast<uint64_t>(h[1]), size - 8);
  std::string name(static_cast<size_t>(n), '\0');
  if (n == 0 || !read(8, n, name.data())) return false;
  for (char ch : name)
    if (static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f) return false;
  return true;
}

}  // namespace ckh::imatrix
