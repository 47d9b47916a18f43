// libFuzzer target: the safetensors header parser on arbitrary bytes, as if they were a whole file.
#include <cstdint>
#include <string>

#include "header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint64_t len = 0;
  std::string err;
  if (size < 8 || !ckh::st::parse_length(data, size, len, err)) return 0;
  ckh::st::Header h;
  if (ckh::st::parse_header(reinterpret_cast<const char *>(data + 8), len, size, h, err)) {
    // Invariants of an accepted header.
    for (const auto &e : h.entries)
      if (e.end > size - h.data_start || e.begin > e.end) __builtin_trap();
  }
  return 0;
}
