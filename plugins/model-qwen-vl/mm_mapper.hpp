// mm_mapper.hpp — Qwen2-VL / Qwen2.5-VL HF -> MindSpeed-MM names and fused layouts (mm_mapper.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::qwen_vl {
void map_hf_to_mm(const nlohmann::json &meta, ckh::sdk::Builder &b);
}  // namespace ckh::qwen_vl
