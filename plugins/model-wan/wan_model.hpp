// wan_model.hpp — the Wan 2.1/2.2 DiT (text/image-to-video transformer): its configuration, read from a
// diffusers WanTransformer3DModel config.json or an original Wan (WanModel) config.json, and its
// tensors under both namings:
//   diffusers  condition_embedder.*, blocks.N.attn1.to_q, ..., blocks.N.norm2 (cross-attention norm),
//              scale_shift_table, proj_out
//   original   text_embedding.0, time_embedding.0, blocks.N.self_attn.q, ..., blocks.N.norm3 (the
//              same cross-attention norm: diffusers' norm2 is original norm3), head.modulation, head.head
// (the original names are those of Wan-Video/Wan2.1 wan/modules/model.py; the pairing is the one of
// diffusers' scripts/convert_wan_to_diffusers.py and MindSpeed-MM's WanConverter).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_check.hpp"

#include <ckhost/ckh.h>

namespace ckh::wan {

enum class Naming { Diffusers, Original };

struct WanConfig {
  int64_t dim = 0, heads = 0, layers = 0, ffn = 0, freq_dim = 0, text_dim = 0, in_ch = 0, out_ch = 0;
  int64_t patch[3] = {1, 2, 2};
  bool cross_attn_norm = true;
  double eps = 1e-6;
  int64_t image_dim = 0;      // 0: no image embedder (T2V)
  int64_t added_kv = 0;       // 0: no k_img/v_img (T2V)
  int64_t pos_embed_len = 0;  // 0: no image position embedding (only FLF2V has one)
  int64_t rope_max_seq_len = 1024;
  ckh_dtype dtype = CKH_DT_BF16;
};

// "WanTransformer3DModel" or "WanModel" in _class_name: 90; anything else 0. Never throws.
int score(const nlohmann::json &cfg) noexcept;

// A diffusers WanTransformer3DModel config. Throws std::invalid_argument naming the field.
WanConfig parse_diffusers_config(const nlohmann::json &cfg);

// An original Wan config (dim, num_heads, num_layers, ffn_dim, freq_dim, in_dim, out_dim, eps,
// model_type). What it does not state (text_dim, patch_size, the image embedder's width and
// cross_attn_norm) is taken from the tensors: `shape_of(name)` returns a tensor's shape, or {} when the
// checkpoint has no such tensor.
WanConfig parse_original_config(const nlohmann::json &cfg,
                                const std::function<std::vector<int64_t>(const std::string &)> &shape_of);

// The config.json of the other naming: original (WanModel) from a diffusers config, or diffusers
// (WanTransformer3DModel) from any. Throws std::invalid_argument when the original form cannot state
// the model (a rope_max_seq_len other than 1024, an added_kv_proj_dim other than the width, ...).
nlohmann::json original_config(const WanConfig &c, const nlohmann::json &src);
nlohmann::json diffusers_config(const WanConfig &c, const nlohmann::json &src);

struct Tensor {
  std::string diffusers, original;
  std::vector<int64_t> shape;
  int32_t role = CKH_ROLE_OTHER;
  int32_t layer = -1;
  int32_t init = CKH_INIT_NORMAL;
  int32_t kind = CKH_KIND_OTHER;
  const std::string &name(Naming n) const { return n == Naming::Diffusers ? diffusers : original; }
};

// Every tensor of the model, in diffusers' module order.
std::vector<Tensor> tensors(const WanConfig &c);

using ckh::plugins::model::shape_str;  // "[2048, 5632]"

}  // namespace ckh::wan
