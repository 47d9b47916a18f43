// header.hpp — bounded, dependency-free parser of a safetensors header (the libFuzzer target).
//
// File layout: u64 little-endian N | N bytes of UTF-8 JSON | data section. The JSON is an object
// mapping tensor names to {"dtype": S, "shape": [..], "data_offsets": [begin, end]} (offsets relative
// to the data section), plus an optional "__metadata__" object of string -> string.
//
// The parser is hand-written (no JSON library) so that it can see what general JSON libraries hide —
// duplicate keys — and so that every length, count, number and nesting level it handles is bounded.
// Every check answers with a one-line message naming the tensor and expected vs actual values; the
// caller prefixes the file name.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <ckhost/ckh_types.h>

namespace ckh::st {

constexpr uint64_t kMaxHeader = 100ull << 20;  // same limit as the reference implementation
constexpr int kMaxDepth = 64;                  // nesting allowed inside ignored (unknown) entry fields

struct Entry {
  std::string name;
  ckh_dtype dtype = CKH_DT_INVALID;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data section; end - begin == numel * dtype size
};

struct Header {
  uint64_t header_len = 0;                     // N
  uint64_t data_start = 0;                     // 8 + N: file offset of the data section
  uint64_t data_size = 0;                      // file size - data_start
  std::vector<Entry> entries;                  // in the order of their keys in the JSON
  std::map<std::string, std::string> metadata; // "__metadata__"
};

// Reads the header length from the first 8 bytes and checks it against kMaxHeader and the file size.
// Returns false with a one-line reason (without the file name) on failure.
bool parse_length(const uint8_t *first8, uint64_t file_size, uint64_t &len, std::string &err);

// Parses and validates the `len` header bytes of a file of `file_size` bytes (`len` as returned by
// parse_length): JSON syntax and UTF-8, duplicate names, dtypes, shapes (<= CKH_MAX_DIMS non-negative
// dims), byte sizes (overflow-checked), data_offsets inside the data section, no overlaps, metadata.
bool parse_header(const char *json, uint64_t len, uint64_t file_size, Header &out, std::string &err);

// Both steps on the first `avail` bytes of a file of `file_size` bytes (bytes past file_size are
// ignored). Fails when fewer than 8 + N bytes are available.
bool parse(const uint8_t *data, size_t avail, uint64_t file_size, Header &out, std::string &err);

ckh_dtype dtype_from_string(std::string_view s);  // CKH_DT_INVALID if unknown
const char *dtype_to_string(ckh_dtype d);          // nullptr if safetensors cannot store it

// "[a, b, c]"
std::string shape_str(const std::vector<int64_t> &shape);
// 'name' for messages: control bytes escaped as \xNN, long names shortened, always one line.
std::string quote(std::string_view name);

}  // namespace ckh::st
