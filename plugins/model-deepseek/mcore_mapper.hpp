// mcore_mapper.hpp — DeepSeek-V2/V3 HF <-> Megatron-Core mapping (see mcore_mapper.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "deepseek_config.hpp"

namespace ckh::deepseek {

// Global Megatron-Core tensors for an HF DeepSeek checkpoint, metadata "layout": "megatron" and "args".
// Options: "megatron_spec": "te" (default) | "local"; "moe_grouped_gemm".
void map_hf_to_mcore(const nlohmann::json &opts, const nlohmann::json &meta, ckh::sdk::Builder &b);
// Megatron-Core (global tensors from a Megatron reader) -> HF; the config from the metadata or the args.
void map_mcore_to_hf(const nlohmann::json &opts, const nlohmann::json &meta, ckh::sdk::Builder &b);
int32_t score_mcore(const nlohmann::json &meta);

}  // namespace ckh::deepseek
