// gguf_experts.hpp — llama.cpp's stacked experts, shared by the model plugins' GGUF mappers: the experts of one
// projection as one [experts, rows, cols] tensor (expert e at index e; ggml's ne = {cols, rows, experts}) and back.
#ifndef CKHOST_PLUGINS_COMMON_GGUF_EXPERTS_HPP
#define CKHOST_PLUGINS_COMMON_GGUF_EXPERTS_HPP

#include <string>
#include <vector>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "model_check.hpp"

namespace ckh::plugins::model {

// Stacks `experts` 2-D tensors (expert e from expert_of(e)) into one [experts, rows, cols] expression.
template <class F>
ckh_expr stack_experts(ckh::sdk::Builder &b, int64_t experts, F expert_of) {
  std::vector<ckh_expr> parts;
  parts.reserve(static_cast<size_t>(experts));
  for (int64_t e = 0; e < experts; ++e) {
    const ckh_expr x = expert_of(e);
    const std::vector<int64_t> s = shape_of(b.info(x));
    if (s.size() != 2) ckh::sdk::fail(CKH_E_FORMAT, "expert " + std::to_string(e) + ": shape " + shape_str(s) + " is not 2-D");
    parts.push_back(b.reshape(x, {1, s[0], s[1]}));
  }
  return b.concat(parts, 0);
}

// Calls out(e, x_e) with each expert's [rows, cols] slice of stacked tensor `x` (named `name` in messages), which must
// hold `experts` experts.
template <class F>
void unstack_experts(ckh::sdk::Builder &b, ckh_expr x, const std::string &name, int64_t experts, F out) {
  const std::vector<int64_t> s = shape_of(b.info(x));
  if (s.size() != 3 || s[0] != experts)
    ckh::sdk::fail(CKH_E_FORMAT, "GGUF: tensor '" + name + "' has shape " + shape_str(s) + ", expected " + std::to_string(experts) +
                                     " stacked experts");
  for (int64_t e = 0; e < experts; ++e) out(e, b.reshape(b.slice(x, 0, e, 1), {s[1], s[2]}));
}

}  // namespace ckh::plugins::model

#endif  // CKHOST_PLUGINS_COMMON_GGUF_EXPERTS_HPP
