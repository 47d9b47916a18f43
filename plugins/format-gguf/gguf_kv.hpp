// gguf_kv.hpp — GGUF v3 byte layout (ggml's gguf.c / gguf-py's constants): the header, typed key-value pairs and
// tensor infos, as little-endian bytes. The key-values come as JSON from a model mapper:
//   [{"key": "llama.block_count", "type": "u32", "value": 32}, {"key": "tokenizer.ggml.tokens", "type": "array",
//     "item": "string", "value": ["<s>", ...]}, ...]
// with types u8 i8 u16 i16 u32 i32 u64 i64 f32 f64 bool string, and array (of one item type).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ckh::gguf {

constexpr uint32_t kMagic = 0x46554747u;  // "GGUF"
constexpr uint32_t kVersion = 3;
constexpr uint64_t kDefaultAlignment = 32;

// GGUF value types (gguf_type).
enum ValueType : uint32_t { U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12 };

// ggml tensor types this writer stores (ggml_type).
enum TensorType : uint32_t {
  GGML_F32 = 0, GGML_F16 = 1, GGML_Q4_0 = 2, GGML_Q4_1 = 3, GGML_Q5_0 = 6, GGML_Q5_1 = 7, GGML_Q8_0 = 8,
  GGML_Q2_K = 10, GGML_Q3_K = 11, GGML_Q4_K = 12, GGML_Q5_K = 13, GGML_Q6_K = 14, GGML_BF16 = 30
};

// Appends little-endian values and GGUF strings to a byte buffer.
struct Bytes {
  std::string b;
  template <class T>
  void put(T v) {
    for (size_t i = 0; i < sizeof(T); ++i) b.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
  }
  void f32(float v);
  void f64(double v);
  void str(const std::string &s);
};

// One typed key-value pair appended to `out`. Throws std::invalid_argument naming the key on a bad entry.
void put_kv(Bytes &out, const nlohmann::json &entry);

}  // namespace ckh::gguf
