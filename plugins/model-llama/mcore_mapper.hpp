// mcore_mapper.hpp — Llama family HF -> Megatron-Core mapping (see mcore_mapper.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "llama_config.hpp"

namespace ckh::llama {

// Emits the global (unsharded, globally layer-numbered) Megatron-Core tensors for an HF Llama-family
// checkpoint and sets metadata "layout": "megatron", "args": the Megatron args translated from
// config.json. Options: "megatron_spec": "te" (default) | "local".
void map_hf_to_mcore(const nlohmann::json &opts, const nlohmann::json &meta, ckh::sdk::Builder &b);

// Megatron-Core (global tensors from the megatron reader, with "args" in the metadata) -> HF. The HF
// config comes from the metadata "config" (kept with the checkpoint or --hf-config) or from args.
void map_mcore_to_hf(const nlohmann::json &opts, const nlohmann::json &meta, ckh::sdk::Builder &b);
int32_t score_mcore(const nlohmann::json &meta);

}  // namespace ckh::llama
