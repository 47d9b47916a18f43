// options.hpp — reading writer/reader options from the options JSON the host passes (CLI flags with
// '-' turned into '_').
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

namespace ckh::plugins {

// Integer option `key` (a JSON integer or a decimal string), `def` when absent. Throws ckh::sdk::Error
// naming the flag as typed ("--dist-files must be >= 1") when it is not an integer or is below `lo`.
int64_t int_option(const nlohmann::json &o, const char *key, int64_t def, int64_t lo);

}  // namespace ckh::plugins
