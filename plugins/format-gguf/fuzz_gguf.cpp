// fuzz_gguf.cpp — libFuzzer target: any bytes as a GGUF file; parse() must return or throw std::runtime_error,
// never crash, hang or read outside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "gguf_read.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto read = [&](uint64_t off, uint64_t len, void *dst) {
    if (off > size || len > size - off) return false;
    std::memcpy(dst, data + off, static_cast<size_t>(len));
    return true;
  };
  try {
    (void)ckh::gguf::parse(read, size);
  } catch (const std::runtime_error &) {
  }
  return 0;
}
