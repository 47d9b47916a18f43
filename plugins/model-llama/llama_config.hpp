// llama_config.hpp — the Llama family (Llama 2/3/3.1/3.2, Mistral, Qwen2/2.5, Qwen3, MiniCPM, and the
// MoE members Mixtral, Qwen2-MoE, Qwen3-MoE, MiniMax-M2 and Qwen3-Next, whose HF names are checked against
// transformers 5.24) as
// described by an HF config.json, and the canonical (HF) tensors it implies. Shared by every mapper
// of the plugin (hf -> hf check, HF <-> Megatron); plain C++, no host needed (unit-tested directly).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_check.hpp"

#include <ckhost/ckh_types.h>

namespace ckh::llama {

struct LlamaConfig {
  std::string model_type;  // "llama" when config.json has none
  int64_t hidden = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
  bool tied = false;       // tie_word_embeddings (default false; MiniCPM: true)
  bool qkv_bias = false;   // Qwen2 always, or Llama attention_bias
  bool o_bias = false;     // Llama attention_bias
  bool mlp_bias = false;   // Llama mlp_bias
  bool qk_norm = false;    // Qwen3: q_norm / k_norm of [head_dim]
  ckh_dtype dtype = CKH_DT_BF16;  // torch_dtype (or "dtype"); bfloat16 when absent
  double rms_eps = 1e-6, rope_theta = 10000.0;
  // RoPE variant: "default", "linear" or "llama3" (transformers 5 "rope_parameters", or the older
  // top-level "rope_theta" + "rope_scaling"); other variants are refused (no silent plain RoPE).
  std::string rope_type = "default";
  double rope_factor = 1.0;
  double rope_low_freq_factor = 1.0, rope_high_freq_factor = 4.0;
  int64_t rope_original_max_pos = 8192;
  // MiniCPM scalars (dim_model_base = hidden when absent).
  double scale_emb = 1.0, scale_depth = 1.0, dim_model_base = 0.0;
  // MoE (mixtral: every layer; qwen3_moe: layers by decoder_sparse_step and mlp_only_layers). 0 = dense.
  int64_t experts = 0, experts_per_tok = 0, moe_ffn = 0;
  std::vector<bool> moe_layer;  // per layer, when experts > 0
  int64_t shared_ffn = 0;       // Qwen2-MoE shared expert (sigmoid-gated by shared_expert_gate); 0 = none
  bool norm_topk = true;        // renormalise the top-k routing weights (Mixtral always; Qwen3-MoE norm_topk_prob)
  // MiniMax-M2: sigmoid router with block_sparse_moe.e_score_correction_bias, and q_norm / k_norm over all
  // heads at once ([heads * head_dim] / [kv_heads * head_dim], transformers MiniMaxM2Attention).
  bool expert_bias = false;
  bool qk_norm_all_heads = false;
  double partial_rotary = 1.0;  // rope_parameters.partial_rotary_factor (MiniMax-M2: rotary_dim / head_dim)
  // Expert names w1 (gate) / w2 (down) / w3 (up) under block_sparse_moe (Mixtral, MiniMax-M2).
  // Qwen3-Next (transformers Qwen3NextDecoderLayer): Gated DeltaNet linear attention (linear_attn.*) in the layers
  // layer_types calls "linear_attention", gated full attention (q_proj gives query and gate: 2 * heads * head_dim
  // rows) in the "full_attention" ones; zero-centred RMSNorms (weight + 1, initialised to 0); the shared expert of
  // Qwen2-MoE; MTP layers under mtp.* in the release.
  std::vector<bool> linear_layer;  // per layer, Qwen3-Next only
  int64_t lin_k_heads = 0, lin_v_heads = 0, lin_k_dim = 0, lin_v_dim = 0, lin_conv = 0;
  bool gated_q = false;
  bool zero_centered_norm = false;
  bool w123() const { return model_type == "mixtral" || model_type == "minimax_m2"; }
  bool is_linear(int64_t layer) const {
    return !linear_layer.empty() && layer >= 0 && layer < static_cast<int64_t>(linear_layer.size()) && linear_layer[static_cast<size_t>(layer)];
  }
  bool is_moe(int64_t layer) const { return experts > 0 && moe_layer[static_cast<size_t>(layer)]; }
};
using Config = LlamaConfig;

// The model types this plugin knows (also its mappers' "model_types" capability).
const std::vector<std::string> &model_types();

// Parses and validates; throws std::invalid_argument with a one-line reason naming the field, e.g.
// "config.json: num_attention_heads 32 is not a multiple of num_key_value_heads 5".
LlamaConfig parse_config(const nlohmann::json &cfg);

// How well the config fits this plugin: 90 by model_type, 80 by architectures, else 0. Never throws.
int score(const nlohmann::json &cfg) noexcept;

struct Canonical {
  std::string name;
  std::vector<int64_t> shape;
  int32_t role = CKH_ROLE_OTHER;
  int32_t layer = -1;
  int32_t init = CKH_INIT_NORMAL;
  int32_t kind = CKH_KIND_UNSTATED;
  int32_t expert = -1;  // global expert index of an expert weight
};

// CKH_KIND_* of an HF tensor name of the family ("model.layers.3.self_attn.k_proj.weight" ->
// CKH_KIND_ATTN_K); CKH_KIND_OTHER for a name the family does not have.
int32_t kind_of(const std::string &hf_name);

// Every HF tensor of the model, in HF's order (the order of the modules in the PyTorch model).
std::vector<Canonical> canonical_tensors(const LlamaConfig &c);

// Qwen3-Next's MTP block as released (transformers does not model it; vLLM's Qwen3NextMTP loads it): mtp.fc
// [hidden, 2 * hidden], mtp.pre_fc_norm_embedding / pre_fc_norm_hidden / norm [hidden], and `n` full-attention
// MoE decoder layers mtp.layers.<k>.*; role CKH_ROLE_MTP, layer k (0 for the block's own tensors). Empty for
// other model types.
std::vector<Canonical> mtp_tensors(const LlamaConfig &c, int64_t n);

// Number of elements of the whole model (sum over canonical_tensors).
int64_t parameter_count(const LlamaConfig &c);

using ckh::plugins::model::shape_str;  // "[2048, 5632]"

}  // namespace ckh::llama
