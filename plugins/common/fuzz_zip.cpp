// libFuzzer target: the zip reader on arbitrary bytes.
#include <cstring>
#include <stdexcept>

#include "torch_load.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ckh::torchfmt::ReadAt rd = [&](uint64_t off, uint64_t len, void *dst) {
    if (off > size || len > size - off) return false;
    std::memcpy(dst, data + off, len);
    return true;
  };
  try {
    for (const auto &e : ckh::torchfmt::read_zip(rd, 0, size))
      if (e.data_offset > size || e.size > size - e.data_offset) __builtin_trap();
  } catch (const std::runtime_error &) {
  }
  return 0;
}
