// config_fields.hpp — typed, bounded reads of HF config.json fields for model plugins. Every failure
// throws std::invalid_argument with a one-line reason that names the field ("config.json: 'hidden_size'
// must be positive, got 0"). Sizes are kept in int32 range so products of two sizes cannot overflow int64.
#pragma once
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_types.h>

namespace ckh::plugins::config {

constexpr int64_t kMaxDim = std::numeric_limits<int32_t>::max();

[[noreturn]] inline void bad(const std::string &msg) { throw std::invalid_argument("config.json: " + msg); }

inline bool present(const nlohmann::json &c, const char *key) { return c.is_object() && c.contains(key) && !c[key].is_null(); }

// A positive integer no larger than kMaxDim.
inline int64_t need_int(const nlohmann::json &c, const char *key) {
  if (!present(c, key)) bad(std::string("'") + key + "' is missing");
  const nlohmann::json &v = c[key];
  if (!v.is_number_integer()) bad(std::string("'") + key + "' must be an integer, got " + v.dump());
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kMaxDim))
    bad(std::string("'") + key + "' is too large: " + v.dump());
  const int64_t n = v.get<int64_t>();
  if (n <= 0) bad(std::string("'") + key + "' must be positive, got " + std::to_string(n));
  if (n > kMaxDim) bad(std::string("'") + key + "' is too large: " + std::to_string(n));
  return n;
}

inline int64_t opt_int(const nlohmann::json &c, const char *key, int64_t def) { return present(c, key) ? need_int(c, key) : def; }

// A non-negative integer no larger than kMaxDim (counts that may be 0, e.g. first_k_dense_replace).
inline int64_t opt_count(const nlohmann::json &c, const char *key, int64_t def) {
  if (!present(c, key)) return def;
  const nlohmann::json &v = c[key];
  if (!v.is_number_integer() || (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(kMaxDim)) ||
      v.get<int64_t>() < 0 || v.get<int64_t>() > kMaxDim)
    bad(std::string("'") + key + "' must be a count from 0 to " + std::to_string(kMaxDim) + ", got " + v.dump());
  return v.get<int64_t>();
}

inline bool opt_bool(const nlohmann::json &c, const char *key, bool def) {
  if (!present(c, key)) return def;
  if (!c[key].is_boolean()) bad(std::string("'") + key + "' must be true or false, got " + c[key].dump());
  return c[key].get<bool>();
}

inline double opt_num(const nlohmann::json &c, const char *key, double def) {
  if (!present(c, key)) return def;
  if (!c[key].is_number()) bad(std::string("'") + key + "' must be a number, got " + c[key].dump());
  return c[key].get<double>();
}

inline std::string opt_str(const nlohmann::json &c, const char *key, const std::string &def) {
  if (!present(c, key)) return def;
  if (!c[key].is_string()) bad(std::string("'") + key + "' must be a string, got " + c[key].dump());
  return c[key].get<std::string>();
}

// The model's dtype: "torch_dtype" (or "dtype", transformers >= 4.56), "torch."-prefixed or not;
// bfloat16 when absent. Only bfloat16, float16 and float32 are model dtypes.
inline ckh_dtype model_dtype(const nlohmann::json &c) {
  const char *key = present(c, "torch_dtype") ? "torch_dtype" : "dtype";
  std::string dt = opt_str(c, key, "bfloat16");
  if (dt.rfind("torch.", 0) == 0) dt = dt.substr(6);
  if (dt == "bfloat16") return CKH_DT_BF16;
  if (dt == "float16") return CKH_DT_F16;
  if (dt == "float32") return CKH_DT_F32;
  bad(std::string(key) + " '" + dt + "' is not bfloat16, float16 or float32");
}

}  // namespace ckh::plugins::config
