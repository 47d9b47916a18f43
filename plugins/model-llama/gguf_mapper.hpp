// gguf_mapper.hpp — Llama family HF -> llama.cpp GGUF names, Q/K row order and metadata (gguf_mapper.cpp).
#pragma once
#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::llama {
void map_hf_to_gguf(const nlohmann::json &meta, ckh::sdk::Builder &b);
}  // namespace ckh::llama
