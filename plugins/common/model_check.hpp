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

// Hands one tensor of a model's canonical list to a mapper's `canonical` sink; throws on a failed sink.
inline void sink_tensor(ckh_tensor_sink_fn sink, void *ctx, const std::string &name, ckh_dtype dtype,
                        const std::vector<int64_t> &shape, const ckh_tensor_annot_t &annot) {
  ckh_tensor_info_t info{};
  info.struct_size = sizeof info;
  info.name = name.c_str();
  info.dtype = dtype;
  info.ndim = static_cast<uint32_t>(shape.size());
  for (size_t d = 0; d < shape.size() && d < CKH_MAX_DIMS; ++d) info.shape[d] = shape[d];
  const ckh_status s = sink(ctx, &info, &annot);
  if (s != CKH_OK) throw ckh::sdk::Error(s, "sink failed", true);
}

// A family's claim on a config: 90 for one of its model_types, 80 for one of its architectures, else 0.
// `model_types` and `architectures`: any ranges of names (C strings or std::string).
template <class Types, class Archs>
int score_by_name(const nlohmann::json &cfg, const Types &model_types, const Archs &architectures) noexcept {
  try {
    if (!cfg.is_object()) return 0;
    if (cfg.contains("model_type") && cfg["model_type"].is_string())
      for (const auto &t : model_types)
        if (cfg["model_type"].get<std::string>() == t) return 90;
    if (cfg.contains("architectures") && cfg["architectures"].is_array())
      for (const auto &a : cfg["architectures"])
        if (a.is_string())
          for (const auto &k : architectures)
            if (a.get<std::string>() == k) return 80;
  } catch (...) {
  }
  return 0;
}

}  // namespace ckh::plugins::model
