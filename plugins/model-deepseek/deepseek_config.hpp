// deepseek_config.hpp — the DeepSeek-style MoE family (routed + shared experts, dense first layers, MTP
// layers): DeepSeek-V2, V2-Lite, V3, V3.1 with Multi-Latent Attention (HF model_type deepseek_v2 /
// deepseek_v3), and GLM-4.5 / 4.6 (glm4_moe: the DeepSeek-V3 router, shared experts and MTP layout
// beside grouped-query attention with q/k/v biases, optional per-head q/k norms and partial rotary) as
// described by an HF config.json, and the canonical HF tensors it implies. DeepSeek-V3.2 (deepseek_v32) and
// GLM-5 (glm_moe_dsa) are DeepSeek-V3 (MLA, the V3 router, shared experts, MTP) plus DeepSeek Sparse Attention:
// a lightning indexer per layer (self_attn.indexer.{wq_b,wk,k_norm,weights_proj}; transformers 5.24
// DeepseekV32Indexer), which GLM-5 leaves out of its indexer_types "shared" layers. Names checked against transformers 5.24 save_pretrained and, for the MTP layers
// (which transformers does not model), the layout of the released DeepSeek-V3 checkpoints:
// model.layers.<num_hidden_layers + k>.{embed_tokens,enorm,hnorm,eh_proj,shared_head.norm,shared_head.head}
// beside a full decoder layer. Plain C++ (unit-tested directly).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_check.hpp"

#include <ckhost/ckh_types.h>

namespace ckh::deepseek {

struct Config {
  std::string model_type;  // deepseek_v2 | deepseek_v3 | glm4_moe | deepseek_v32 | glm_moe_dsa
  // DeepSeek Sparse Attention (deepseek_v32, glm_moe_dsa): the indexer's heads and head dim, and which decoder
  // layers have one (all for deepseek_v32; GLM-5: indexer_types "full"). MTP layers have one too.
  bool dsa = false;
  int64_t index_heads = 0, index_head_dim = 0;
  std::vector<bool> indexer;
  // Per decoder layer MoE (true) or dense, when the config lists mlp_layer_types; else first_k_dense_replace.
  std::vector<bool> moe_layers;
  // Attention: multi-latent (DeepSeek) or grouped-query (GLM-4.5: q_proj/k_proj/v_proj, o_proj).
  bool mla = true;
  int64_t kv_heads = 0, head_dim = 0;  // GQA only
  bool qkv_bias = false, qk_norm = false;  // GQA: attention_bias (q/k/v, not o_proj), use_qk_norm ([head_dim])
  double partial_rotary = 1.0;         // GQA: rope_parameters.partial_rotary_factor (GLM default 0.5)
  int64_t hidden = 0, layers = 0, heads = 0, vocab = 0, ffn = 0;
  // MLA: q_lora 0 = no query compression (V2-Lite: q_proj).
  int64_t q_lora = 0, kv_lora = 0, nope = 0, rope = 0, v = 0;
  // MoE: routed experts, per-expert ffn, shared experts (their ffn is moe_ffn * shared), dense layers first.
  int64_t experts = 0, moe_ffn = 0, shared = 0, topk = 0, first_dense = 0, moe_freq = 1;
  int64_t n_group = 1, topk_group = 1;
  std::string scoring = "softmax";     // V3: sigmoid (+ e_score_correction_bias); V2: softmax
  std::string topk_method = "greedy";  // V2: greedy | group_limited_greedy; V3: noaux_tc
  bool norm_topk = false;              // V3 renormalises the top-k weights; V2 never does
  double routed_scaling = 1.0;
  bool expert_bias = false;            // V3: mlp.gate.e_score_correction_bias
  int64_t mtp = 0;                     // num_nextn_predict_layers (V3); present in a checkpoint or not
  bool tied = false;
  ckh_dtype dtype = CKH_DT_BF16;
  double rms_eps = 1e-6, rope_theta = 10000.0;
  // RoPE: "default" or "yarn" (factor, original_max_position_embeddings, beta_fast, beta_slow, mscale,
  // mscale_all_dim); others are refused.
  std::string rope_type = "default";
  double rope_factor = 1.0, beta_fast = 32.0, beta_slow = 1.0, mscale = 1.0, mscale_all_dim = 0.0;
  int64_t rope_original_max_pos = 4096;
  int64_t max_pos = 4096;
  bool is_moe(int64_t layer) const {
    if (experts > 0 && !moe_layers.empty() && layer >= 0 && layer < static_cast<int64_t>(moe_layers.size()))
      return moe_layers[static_cast<size_t>(layer)];
    return experts > 0 && layer >= first_dense && layer % moe_freq == 0;
  }
  // Layer l (an MTP layer when l >= layers) has a sparse-attention indexer.
  bool has_indexer(int64_t l) const {
    if (!dsa) return false;
    if (l >= 0 && l < static_cast<int64_t>(indexer.size())) return indexer[static_cast<size_t>(l)];
    return true;
  }
  int64_t q_head() const { return nope + rope; }
};

const std::vector<std::string> &model_types();

// Parses and validates; throws std::invalid_argument with a one-line reason naming the field.
Config parse_config(const nlohmann::json &cfg);

// 90 by model_type, 80 by architectures, else 0. Never throws.
int score(const nlohmann::json &cfg) noexcept;

struct Canonical {
  std::string name;
  std::vector<int64_t> shape;
  int32_t role = CKH_ROLE_OTHER;
  int32_t layer = -1;
  int32_t init = CKH_INIT_NORMAL;
  int32_t kind = CKH_KIND_UNSTATED;
  int32_t expert = -1;
  ckh_dtype dtype = CKH_DT_F32;  // the tensor's own dtype (routers stay float32, see canonical_tensors)
};

int32_t kind_of(const std::string &hf_name);

// Every HF tensor transformers' DeepseekV2/V3ForCausalLM has, in its order; with `with_mtp`, also the
// c.mtp MTP layers of the released checkpoints (model.layers.<layers + k>.*).
std::vector<Canonical> canonical_tensors(const Config &c, bool with_mtp = false);

// The HF tensors of a decoder layer (or MTP layer) index `l` with the MoE/dense choice `moe`.
void layer_tensors(const Config &c, int64_t l, bool moe, std::vector<Canonical> &out);

using ckh::plugins::model::shape_str;  // "[2048, 5632]"

}  // namespace ckh::deepseek
