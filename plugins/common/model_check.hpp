// model_check.hpp — what every model plugin's HF completeness check says, said once: the config from a
// stage's metadata, shapes as text, a shape mismatch and the list of missing tensors as one-line errors
// (thrown as ckh::sdk::Error, so a mapper's guard hands them to the host).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::plugins::model {

// metadata_json's "config" (the HF config.json), or null.
inline nlohmann::json config_of(const char *metadata_json) {
  nlohmann::json m = nlohmann::json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
  if (m.is_discarded() || !m.is_object() || !m.contains("config")) return nlohmann::json();
  return m["config"];
}

// "[2048, 5632]"
inline std::string shape_str(const std::vector<int64_t> &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

inline std::vector<int64_t> shape_of(const ckh_tensor_info_t &info) { return {info.shape, info.shape + info.ndim}; }

// Refuses tensor `name` of shape `have` where the config implies `want`.
inline void check_shape(const std::string &name, const std::vector<int64_t> &have, const std::vector<int64_t> &want) {
  if (have != want)
    ckh::sdk::fail(CKH_E_FORMAT, "tensor '" + name + "': config.json implies shape " + shape_str(want) + ", checkpoint has " +
                                     shape_str(have));
}

// Refuses a checkpoint without `missing` (no-op when empty): the first five by name, then the count.
inline void check_missing(const std::vector<std::string> &missing) {
  if (missing.empty()) return;
  constexpr size_t kShow = 5;
  std::string list;
  for (size_t k = 0; k < missing.size() && k < kShow; ++k) list += (k ? ", " : "") + missing[k];
  if (missing.size() > kShow) list += " (and " + std::to_string(missing.size() - kShow) + " more)";
  ckh::sdk::fail(CKH_E_FORMAT, "checkpoint is missing " + std::to_string(missing.size()) +
                                   (missing.size() == 1 ? " tensor" : " tensors") + " that config.json implies: " + list);
}

}  // namespace ckh::plugins::model
