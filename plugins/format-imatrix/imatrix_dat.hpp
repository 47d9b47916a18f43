// imatrix_dat.hpp — the legacy importance-matrix file of llama.cpp's llama-imatrix (imatrix.dat, before its GGUF
// output): a bounded parser of untrusted bytes. Layout (little-endian), as common/imatrix-loader.cpp reads it:
//   i32 n_entries (>= 1), then per entry: i32 name length, the name's bytes, i32 ncall, i32 nval (>= 1),
//   nval x f32 sums; then optionally i32 chunk count, i32 dataset-name length and its bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace ckh::imatrix {

struct Entry {
  std::string name;
  int32_t ncall = 0;
  uint64_t ncall_offset = 0;  // file offset of the i32 ncall
  int64_t nval = 0;
  uint64_t sums_offset = 0;   // file offset of the nval f32 sums
};

struct File {
  std::vector<Entry> entries;
  int64_t chunk_count = -1;      // -1: not stated
  std::string dataset;
};

// Reads len bytes at off into dst; false when the range is not in the file.
using ReadFn = std::function<bool(uint64_t off, uint64_t len, void *dst)>;

// Parses a file of `size` bytes. Every length and count is checked against the bytes left; names are 1 to 1024
// bytes without NUL and unique. Throws std::runtime_error with what is wrong and at which byte.
File parse(const ReadFn &read, uint64_t size);

// A cheap check for probe(): the entry count and the first name are plausible.
bool looks_like(const ReadFn &read, uint64_t size);

}  // namespace ckh::imatrix
