// libFuzzer target: the symbolic pickle evaluator (and the JSON walk) on arbitrary bytes.
#include <stdexcept>

#include "torch_load.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ckh::torchfmt::PickleLimits lim;
  lim.max_values = 1u << 20;
  lim.max_memo = 1u << 16;
  try {
    auto p = ckh::torchfmt::unpickle(data, size, lim);
    (void)ckh::torchfmt::to_json(p->root, 1u << 16);
  } catch (const std::runtime_error &) {
  }
  return 0;
}
