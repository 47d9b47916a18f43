// header.hpp — bounded, dependency-light parser of a safetensors header (the libFuzzer target).
//
// File layout: u64 little-endian N | N bytes of JSON | data. The JSON is an object mapping tensor
// names to {"dtype": S, "shape": [..], "data_offsets": [begin, end]} (offsets relative to the data
// section) plus an optional "__metadata__" string->string object.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ckhost/ckh_types.h>

namespace ckh::st {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the reference implementation's limit

struct Entry {
  std::string name;
  ckh_dtype dtype = CKH_DT_INVALID;
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // relative to the data section
};

struct Header {
  uint64_t header_len = 0;
  uint64_t data_start = 0;  // 8 + header_len
  std::vector<Entry> entries;  // in file order of their JSON keys
  std::map<std::string, std::string> metadata;
};

// Reads the header length from the first 8 bytes and checks it against the file size.
// Returns false with a one-line reason (without the file name) on failure.
bool parse_length(const uint8_t *first8, uint64_t file_size, uint64_t &len, std::string &err);

// Parses and validates `len` header bytes (JSON) for a file of `file_size` bytes: dtypes, shapes,
// byte sizes (overflow-checked), bounds, overlaps, duplicate names, metadata.
bool parse_header(const char *json, uint64_t len, uint64_t file_size, Header &out, std::string &err);

ckh_dtype dtype_from_string(const std::string &s);  // CKH_DT_INVALID if unknown
const char *dtype_to_string(ckh_dtype d);           // nullptr if safetensors cannot store it

}  // namespace ckh::st
