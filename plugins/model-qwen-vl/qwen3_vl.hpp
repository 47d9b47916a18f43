// qwen3_vl.hpp — Qwen3-VL and Qwen3-VL-MoE (transformers' Qwen3VLForConditionalGeneration /
// Qwen3VLMoeForConditionalGeneration): the config read into sizes, and the tensor list it implies under the names
// those checkpoints use on disk (model.visual.*, model.language_model.*, lm_head):
//   model.visual.patch_embed.proj (Conv3d with bias), pos_embed (learned, num_position_embeddings rows),
//   blocks.N.{norm1, norm2, attn.qkv, attn.proj, mlp.linear_fc1, mlp.linear_fc2} (LayerNorm, all with biases),
//   merger.{norm (the tower's width), linear_fc1, linear_fc2}, deepstack_merger_list.K.{norm (post-shuffle width),
//   linear_fc1, linear_fc2} for each of deepstack_visual_indexes;
//   model.language_model.{embed_tokens, layers.N.{input_layernorm, self_attn.{q,k,v,o}_proj, self_attn.{q,k}_norm
//   (per head), post_attention_layernorm, mlp.{gate,up,down}_proj | mlp.gate + mlp.experts.{gate_up_proj,
//   down_proj} (fused [E, 2I, H] / [E, H, I] as transformers 5 saves them; the released [E, H, 2I] / [E, I, H]
//   is read too)}, norm}, lm_head unless tied.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "qwen_vl_config.hpp"

namespace ckh::qwen_vl {

struct Config3 {
  bool moe = false;
  int64_t hidden = 0, inter = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  bool attn_bias = false, tied = false;
  int64_t experts = 0, moe_inter = 0, sparse_step = 1;
  std::vector<int64_t> mlp_only;
  int64_t v_width = 0, v_depth = 0, v_heads = 0, v_inter = 0, v_out = 0, in_ch = 3, patch = 16, t_patch = 2, merge = 2, v_pos = 0;
  std::vector<int64_t> deepstack;
  ckh_dtype dtype = CKH_DT_BF16;
  bool moe_layer(int64_t l) const;
};

bool is_qwen3_vl(const nlohmann::json &cfg) noexcept;
// Throws std::invalid_argument naming the config field.
Config3 parse_config3(const nlohmann::json &cfg);
// The fused experts: the canonical shape and the one the released checkpoints store (both are read).
std::vector<Canonical> canonical_tensors3(const Config3 &c);
// The released (transposed) shape of a fused expert tensor, or {} when `name` is none.
std::vector<int64_t> released_expert_shape(const std::string &name, const std::vector<int64_t> &canonical_shape);

}  // namespace ckh::qwen_vl
