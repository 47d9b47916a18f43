// libFuzzer target for the safetensors header parser.
//
// Input: 8 bytes little-endian E, then the first bytes of a "file". The file's size is claimed to be
// (bytes given) + E (saturating), so the fuzzer explores headers whose data section lies beyond what
// the parser sees, exactly as the reader calls it (it reads only the header, then passes the size).
// Accepted headers are re-checked here independently; any violated invariant aborts.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "header.hpp"

namespace {
[[noreturn]] void violated() { __builtin_trap(); }
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 8) return 0;
  uint64_t extra = 0;
  for (int i = 7; i >= 0; --i) extra = (extra << 8) | data[i];
  const uint8_t *file = data + 8;
  const size_t avail = size - 8;
  const uint64_t file_size = extra > UINT64_MAX - avail ? UINT64_MAX : avail + extra;

  ckh::st::Header h;
  std::string err;
  const bool ok = ckh::st::parse(file, avail, file_size, h, err);
  if (!ok) {
    if (err.empty() || err.find('\n') != std::string::npos || err.find('\r') != std::string::npos) violated();
    if (!h.entries.empty()) violated();
    return 0;
  }
  if (h.data_start != 8 + h.header_len || h.data_start > file_size || h.data_size != file_size - h.data_start)
    violated();
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  std::vector<std::string> names;
  for (const auto &e : h.entries) {
    names.push_back(e.name);
    if (e.name.empty() || e.name == "__metadata__" || e.shape.size() > CKH_MAX_DIMS) violated();
    const uint32_t es = ckh_dtype_size(e.dtype);
    if (es == 0 || !ckh::st::dtype_to_string(e.dtype)) violated();
    unsigned __int128 n = es;
    for (int64_t d : e.shape) {
      if (d < 0) violated();
      n *= static_cast<uint64_t>(d);
    }
    if (e.begin > e.end || e.end > h.data_size || n != e.end - e.begin) violated();
    if (e.end > e.begin) spans.emplace_back(e.begin, e.end);
  }
  std::sort(names.begin(), names.end());
  if (std::adjacent_find(names.begin(), names.end()) != names.end()) violated();
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) violated();
  return 0;
}
