// quant_pairs.cpp — see quant_pairs.hpp.
#include "quant_pairs.hpp"

#include <map>
#include <unordered_map>

#include <nlohmann/json.hpp>

namespace ckh::plugins {

namespace {
bool is_codes(ckh_dtype dt) { return dt == CKH_DT_F8_E4M3FN || dt == CKH_DT_F8_E5M2; }
bool ends_with(const std::string &s, const std::string &t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
}  // namespace

std::vector<std::string> quant_annotations(const std::vector<std::string> &names, const std::vector<ckh_dtype> &dtypes,
                                           const nlohmann::json &config) {
  nlohmann::json block;
  if (config.is_object() && config.contains("quantization_config") && config["quantization_config"].is_object()) {
    const auto &wb = config["quantization_config"].value("weight_block_size", nlohmann::json());
    if (wb.is_array() && wb.size() == 2 && wb[0].is_number_integer() && wb[1].is_number_integer() &&
        wb[0].get<int64_t>() > 0 && wb[1].get<int64_t>() > 0)
      block = wb;
  }
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < names.size(); ++i) index.emplace(names[i], i);
  std::map<size_t, std::vector<std::string>> scales_of;  // codes index -> scale names
  std::map<size_t, std::string> codes_of;                // scale index -> codes name
  for (size_t i = 0; i < names.size(); ++i) {
    if (!is_codes(dtypes[i])) continue;
    const std::string &x = names[i];
    std::vector<std::string> cands = {x + "_scale_inv", x + "_scale"};
    if (ends_with(x, ".weight")) cands.push_back(x.substr(0, x.size() - 6) + "input_scale");
    for (const auto &c : cands) {
      auto it = index.find(c);
      if (it == index.end() || is_codes(dtypes[it->second])) continue;
      scales_of[i].push_back(c);
      codes_of[it->second] = x;
    }
    scales_of.emplace(i, std::vector<std::string>{});
  }
  std::vector<std::string> out(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    nlohmann::json q;
    if (auto it = scales_of.find(i); it != scales_of.end()) {
      q = {{"role", "codes"}, {"scales", it->second}};
      if (!block.is_null()) q["block"] = block;
    } else if (auto c = codes_of.find(i); c != codes_of.end()) {
      q = {{"role", "scale"}, {"of", c->second}};
    } else if (dtypes[i] == CKH_DT_F8_E8M0) {
      q = {{"role", "scale"}};
    } else {
      continue;
    }
    out[i] = nlohmann::json{{"quant", q}}.dump();
  }
  return out;
}

}  // namespace ckh::plugins
