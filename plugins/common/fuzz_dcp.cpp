// libFuzzer target: DCP .metadata parsing (pickle evaluator + Metadata walk + chunk checks) on
// arbitrary bytes.
#include <stdexcept>

#include "dcp.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  try {
    const ckh::torchfmt::DcpMetadata m = ckh::torchfmt::parse_dcp_metadata(data, size);
    for (const auto &e : m.entries)
      if (!e.is_bytes) ckh::torchfmt::check_dcp_chunks(e);
  } catch (const std::runtime_error &) {
  }
  return 0;
}
