// fuzz_imatrix.cpp — libFuzzer target: any bytes as a legacy imatrix.dat; parse() and looks_like() must return or
// throw std::runtime_error, never crash, hang or read outside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <stdexcept>

#include "imatrix_dat.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  auto read = [&](uint64_t off, uint64_t len, void *dst) {
    if (off > size || len > size - off) return false;
    std::memcpy(dst, data + off, static_cast<size_t>(len));
    return true;
  };
  (void)ckh::imatrix::looks_like(read, size);
  try {
    (void)ckh::imatrix::parse(read, size);
  } catch (const std::runtime_error &) {
  }
  return 0;
}
