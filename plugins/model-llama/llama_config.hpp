// llama_config.hpp — the Llama family (Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5, Qwen3, MiniCPM) as
// described by an HF config.json, and the canonical (HF) tensors it implies. Shared by the mappers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_types.h>

namespace ckh::llama {

struct Config {
  std::string model_type;
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
  bool tied = false;
  bool qkv_bias = false;   // Qwen2, or Llama attention_bias
  bool o_bias = false;     // Llama attention_bias
  bool mlp_bias = false;
  bool qk_norm = false;    // Qwen3
  ckh_dtype dtype = CKH_DT_BF16;
  double rms_eps = 1e-6, rope_theta = 10000.0;
  // MiniCPM scalars (1 / hidden when absent).
  double scale_emb = 1.0, scale_depth = 1.0, dim_model_base = 0.0;
};

// Parses and validates; throws std::invalid_argument with a one-line reason naming the field.
Config parse_config(const nlohmann::json &cfg);

// True when the config is one this plugin knows (by model_type or architectures); 0-100 score.
int score(const nlohmann::json &cfg);

struct Canonical {
  std::string name;
  std::vector<int64_t> shape;
  int32_t role = CKH_ROLE_OTHER;
  int32_t layer = -1;
  int32_t init = CKH_INIT_NORMAL;
};

// Every HF tensor of the model, in HF's order.
std::vector<Canonical> canonical_tensors(const Config &c);

}  // namespace ckh::llama
