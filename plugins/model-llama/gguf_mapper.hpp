// gguf_mapper.hpp — Llama family (dense and MoE) HF <-> llama.cpp GGUF names, Q/K row order and metadata (gguf_mapper.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::llama {
void map_hf_to_gguf(const nlohmann::json &meta, ckh::sdk::Builder &b);
// A GGUF of architecture llama (with experts: Mixtral), qwen2, qwen3, qwen2moe or qwen3moe back to HF names, layout
// (q/k rows un-permuted, stacked experts split) and config.json.
void map_gguf_to_hf(const nlohmann::json &meta, ckh::sdk::Builder &b);
// 90 for such a GGUF's metadata, else 0. Never throws.
int score_gguf(const nlohmann::json &meta) noexcept;
}  // namespace ckh::llama
