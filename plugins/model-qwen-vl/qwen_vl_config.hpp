// qwen_vl_config.hpp — Qwen2-VL and Qwen2.5-VL: the HF config read into sizes, and the tensor list the
// config implies, in the names transformers' save_pretrained writes (visual.*, model.*, lm_head). The
// vision tower is annotation stack 1 (its own pipeline distribution), the text decoder stack 0.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_check.hpp"

#include <ckhost/ckh_types.h>

namespace ckh::qwen_vl {

struct Config {
  bool v25 = false;  // qwen2_5_vl: RMSNorm, gated (SwiGLU) vision MLP; qwen2_vl: LayerNorm, fc1/fc2
  // text decoder (Qwen2)
  int64_t hidden = 0, inter = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  bool tied = false;
  // vision tower
  int64_t v_width = 0, v_depth = 0, v_heads = 0, v_inter = 0, v_out = 0, in_ch = 3, patch = 14, t_patch = 2, merge = 2;
  ckh_dtype dtype = CKH_DT_BF16;
};

// Throws std::invalid_argument naming the config field.
Config parse_config(const nlohmann::json &cfg);
// 90 for model_type qwen2_vl / qwen2_5_vl / qwen3_vl / qwen3_vl_moe, 80 for their architectures, else 0.
int score(const nlohmann::json &cfg) noexcept;

struct Canonical {
  std::string name;
  std::vector<int64_t> shape;
  int32_t role = CKH_ROLE_OTHER;
  int32_t layer = -1;
  int32_t stack = 0;
  int32_t init = CKH_INIT_NORMAL;
  int32_t kind = CKH_KIND_UNSTATED;
};
std::vector<Canonical> canonical_tensors(const Config &c);

using ckh::plugins::model::shape_str;  // "[2048, 5632]"

}  // namespace ckh::qwen_vl
