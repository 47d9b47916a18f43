// mm_mapper.hpp — Qwen2-VL / Qwen2.5-VL / Qwen3-VL HF <-> MindSpeed-MM names and fused layouts (mm_mapper.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::qwen_vl {
void map_hf_to_mm(const nlohmann::json &meta, ckh::sdk::Builder &b);
// The inverse: MindSpeed-MM's global tensors (a reader merged TP and renumbered each tower) -> HF names.
void map_mm_to_hf(const nlohmann::json &meta, ckh::sdk::Builder &b);
// How the reader merges the TP shards of linear_fc1: gated ([gate; up] halves) except the towers named.
std::string mm_reader_hints(const nlohmann::json &meta);
// The same for Qwen3-VL / Qwen3-VL-MoE (Qwen3VLMegatronConverter's names; mm_mapper3.cpp).
void map_hf_to_mm3(const nlohmann::json &meta, ckh::sdk::Builder &b);
void map_mm_to_hf3(const nlohmann::json &meta, ckh::sdk::Builder &b);
std::string mm_reader_hints3(const nlohmann::json &meta);
}  // namespace ckh::qwen_vl
