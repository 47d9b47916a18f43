// options.cpp — see options.hpp.
#include "options.hpp"
#include "writer_glue.hpp"

#include <algorithm>
#include <string>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::plugins {

int64_t int_option(const nlohmann::json &o, const char *key, int64_t def, int64_t lo) {
  if (!o.contains(key)) return def;
  std::string flag = std::string("--") + key;  // as the user typed it
  std::replace(flag.begin(), flag.end(), '_', '-');
  const nlohmann::json &v = o[key];
  int64_t x = 0;
  if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_string()) {
    try {
      size_t used = 0;
      x = std::stoll(v.get<std::string>(), &used);
      if (used != v.get<std::string>().size()) throw std::invalid_argument("trailing characters");
    } catch (...) {
      ckh::sdk::fail(CKH_E_INVALID_ARG, flag + " must be an integer");
    }
  } else {
    ckh::sdk::fail(CKH_E_INVALID_ARG, flag + " must be an integer");
  }
  if (x < lo) ckh::sdk::fail(CKH_E_INVALID_ARG, flag + " must be >= " + std::to_string(lo));
  return x;
}

nlohmann::json parse_json_object(const char *text, const char *what) {
  nlohmann::json j = nlohmann::json::parse(text && *text ? text : "{}", nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) ckh::sdk::fail(CKH_E_INVALID_ARG, std::string(what) + ": not a JSON object");
  return j;
}

}  // namespace ckh::plugins
