// gguf_read.hpp — a bounded parser of a GGUF v2/v3 file's header, key-values and tensor infos (untrusted bytes:
// every length, count, dimension and offset is checked against the file before use; fuzzed by fuzz_gguf).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ckh::gguf {

struct TensorInfo {
  std::string name;
  uint32_t type = 0;          // ggml_type
  std::vector<uint64_t> ne;   // innermost first
  uint64_t offset = 0;        // from the data section's start
  uint64_t bytes = 0;         // of its data
};

struct File {
  uint32_t version = 0;
  uint64_t alignment = 32;
  uint64_t data_start = 0;    // absolute
  nlohmann::json kv = nlohmann::json::array();  // [{"key", "type", "value"[, "item"]}] as gguf_kv.hpp writes them
  std::vector<TensorInfo> tensors;
};

// Reads `len` bytes at `offset` into `dst`; false when they are not there.
using ReadAt = std::function<bool(uint64_t offset, uint64_t len, void *dst)>;

// Parses the file of `size` bytes. Throws std::runtime_error with a one-line reason (what, where, expected vs
// found) on anything malformed, and on a ggml type it has no byte size for.
File parse(const ReadAt &read, uint64_t size);

// Bytes per row-major run of `n` elements of ggml type `t` (block types: whole blocks), or 0 when unknown.
uint64_t type_bytes(uint32_t t, uint64_t n);

}  // namespace ckh::gguf
