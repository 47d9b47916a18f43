// gguf_mapper.hpp — DeepSeek-V2 / V3 (multi-latent attention, routed and shared experts, dense first layers) <->
// llama.cpp's GGUF architecture deepseek2 (gguf_mapper.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::deepseek {
// HF (deepseek_v2 / deepseek_v3) -> GGUF names, layout and key-values, as llama.cpp's convert_hf_to_gguf.py
// DeepseekV2Model writes them; MTP layers are left out as it leaves them.
void map_hf_to_gguf(const nlohmann::json &meta, ckh::sdk::Builder &b);
// 90 for an HF config this mapper claims (deepseek_v2, deepseek_v3; glm4_moe to refuse it by name), else 0.
int score_to_gguf(const nlohmann::json &cfg) noexcept;
// A deepseek2 GGUF back to HF names (kv_b_proj rebuilt from attn_k_b / attn_v_b) and a DeepSeek-V3 or V2 config.
void map_gguf_to_hf(const nlohmann::json &meta, ckh::sdk::Builder &b);
// 90 for a GGUF of architecture deepseek2, else 0. Never throws.
int score_gguf(const nlohmann::json &meta) noexcept;
}  // namespace ckh::deepseek
