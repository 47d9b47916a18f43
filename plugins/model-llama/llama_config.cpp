// llama_config.cpp — see llama_config.hpp.
#include "llama_config.hpp"

#include "config_fields.hpp"

#include <limits>
#include <stdexcept>

namespace ckh::llama {

namespace {

using nlohmann::json;

const char *const kArchs[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                              "MiniCPMForCausalLM", "MixtralForCausalLM", "Qwen2MoeForCausalLM", "Qwen3MoeForCausalLM",
                              "MiniMaxM2ForCausalLM", "Qwen3NextForCausalLM"};
using ckh::plugins::config::bad;
using ckh::plugins::config::kMaxDim;
using ckh::plugins::config::need_int;
using ckh::plugins::config::opt_bool;
using ckh::plugins::config::opt_int;
using ckh::plugins::config::opt_num;
using ckh::plugins::config::opt_str;
using ckh::plugins::config::present;

// transformers >= 5 writes "rope_parameters": {"rope_theta", "rope_type", "factor", ...}; older
// releases a top-level "rope_theta" and an optional "rope_scaling" object of the same fields.
void parse_rope(const json &cfg, LlamaConfig &c) {
  const bool v5 = present(cfg, "rope_parameters");
  if (v5 && !cfg["rope_parameters"].is_object()) bad("'rope_parameters' must be an object, got " + cfg["rope_parameters"].dump());
  const json none = json::object();
  const json &rp = v5 ? cfg["rope_parameters"] : none;
  if (present(rp, "rope_theta")) c.rope_theta = opt_num(rp, "rope_theta", c.rope_theta);
  else c.rope_theta = opt_num(cfg, "rope_theta", c.rope_theta);
  if (!(c.rope_theta > 0)) bad("rope_theta must be positive");
  const json *rs = &rp;
  if (!v5 && present(cfg, "rope_scaling")) {
    if (!cfg["rope_scaling"].is_object()) bad("'rope_scaling' must be an object or null, got " + cfg["rope_scaling"].dump());
    rs = &cfg["rope_scaling"];
  }
  const char *tkey = present(*rs, "rope_type") ? "rope_type" : "type";
  c.rope_type = opt_str(*rs, tkey, "default");
  if (c.rope_type == "default") return;
  if (c.rope_type != "linear" && c.rope_type != "llama3")
    bad("rope type '" + c.rope_type + "' is not supported (default, linear and llama3 are)");
  c.rope_factor = opt_num(*rs, "factor", c.rope_type == "llama3" ? 8.0 : 1.0);
  if (!(c.rope_factor > 0)) bad("rope factor must be positive");
  if (c.rope_type == "llama3") {
    c.rope_low_freq_factor = opt_num(*rs, "low_freq_factor", c.rope_low_freq_factor);
    c.rope_high_freq_factor = opt_num(*rs, "high_freq_factor", c.rope_high_freq_factor);
    c.rope_original_max_pos = opt_int(*rs, "original_max_position_embeddings", c.rope_original_max_pos);
  }
}

}  // namespace

const std::vector<std::string> &model_types() {
  static const std::vector<std::string> t = {"llama", "mistral", "qwen2", "qwen3", "minicpm", "mixtral", "qwen2_moe", "qwen3_moe",
                                                "minimax_m2", "qwen3_next"};
  return t;
}

int score(const json &cfg) noexcept { return ckh::plugins::model::score_by_name(cfg, model_types(), kArchs); }

LlamaConfig parse_config(const json &cfg) {
  if (!cfg.is_object()) throw std::invalid_argument("config.json is missing or not a JSON object");
  LlamaConfig c;
  c.model_type = opt_str(cfg, "model_type", "llama");
  c.hidden = need_int(cfg, "hidden_size");
  c.layers = need_int(cfg, "num_hidden_layers");
  c.heads = need_int(cfg, "num_attention_heads");
  c.kv_heads = opt_int(cfg, "num_key_value_heads", c.heads);
  c.ffn = need_int(cfg, "intermediate_size");
  c.vocab = need_int(cfg, "vocab_size");
  if (c.heads % c.kv_heads != 0)
    bad("num_attention_heads " + std::to_string(c.heads) + " is not a multiple of num_key_value_heads " +
        std::to_string(c.kv_heads));
  if (present(cfg, "head_dim")) {
    c.head_dim = need_int(cfg, "head_dim");
  } else {
    if (c.hidden % c.heads != 0)
      bad("hidden_size " + std::to_string(c.hidden) + " is not a multiple of num_attention_heads " +
          std::to_string(c.heads) + " (and head_dim is not given)");
    c.head_dim = c.hidden / c.heads;
  }
  if (c.heads * c.head_dim > kMaxDim)
    bad("num_attention_heads * head_dim = " + std::to_string(c.heads * c.head_dim) + " is too large");

  const bool minicpm = c.model_type == "minicpm";
  c.tied = opt_bool(cfg, "tie_word_embeddings", minicpm);
  const bool attn_bias = opt_bool(cfg, "attention_bias", false);
  const bool qwen2 = c.model_type == "qwen2" || c.model_type == "qwen2_moe";
  c.qkv_bias = qwen2 || attn_bias;
  // Qwen2 has q/k/v biases but no o_proj bias; Llama's attention_bias adds all four.
  c.o_bias = attn_bias && !qwen2;
  c.mlp_bias = opt_bool(cfg, "mlp_bias", false);
  const bool next = c.model_type == "qwen3_next";
  c.qk_norm = c.model_type == "qwen3" || c.model_type == "qwen3_moe" || next;
  if (c.model_type == "mixtral") {
    c.experts = need_int(cfg, "num_local_experts");
    c.experts_per_tok = need_int(cfg, "num_experts_per_tok");
    c.moe_ffn = c.ffn;
    c.moe_layer.assign(static_cast<size_t>(c.layers), true);
  } else if (c.model_type == "minimax_m2") {
    // transformers MiniMaxM2SparseMoeBlock: every layer, experts as wide as intermediate_size, sigmoid
    // scores + e_score_correction_bias for the choice, the chosen sigmoid scores renormalised.
    c.experts = need_int(cfg, present(cfg, "num_local_experts") ? "num_local_experts" : "num_experts");
    c.experts_per_tok = need_int(cfg, "num_experts_per_tok");
    c.moe_ffn = c.ffn;
    c.moe_layer.assign(static_cast<size_t>(c.layers), true);
    c.expert_bias = true;
    c.qk_norm = true;
    c.qk_norm_all_heads = true;
    const json &rp = present(cfg, "rope_parameters") ? cfg["rope_parameters"] : cfg;
    if (present(rp, "partial_rotary_factor")) c.partial_rotary = opt_num(rp, "partial_rotary_factor", 1.0);
    else if (present(cfg, "rotary_dim")) c.partial_rotary = static_cast<double>(need_int(cfg, "rotary_dim")) / static_cast<double>(c.head_dim);
    if (!(c.partial_rotary > 0 && c.partial_rotary <= 1)) bad("partial_rotary_factor must be in (0, 1]");
  } else if (c.model_type == "qwen3_moe" || c.model_type == "qwen2_moe" || next) {
    // transformers' Qwen3MoeDecoderLayer: MoE where layer not in mlp_only_layers and (layer + 1) % step == 0.
    // Hub configs say "num_experts"; transformers 5 writes it back as "num_local_experts".
    c.experts = need_int(cfg, present(cfg, "num_experts") ? "num_experts" : "num_local_experts");
    c.experts_per_tok = need_int(cfg, "num_experts_per_tok");
    c.moe_ffn = need_int(cfg, "moe_intermediate_size");
    c.norm_topk = opt_bool(cfg, "norm_topk_prob", next);  // Qwen2MoeConfig's and Qwen3MoeConfig's default false, Qwen3NextConfig's true
    // Qwen2-MoE, Qwen3-Next: a shared expert beside the routed ones (transformers Qwen2MoeSparseMoeBlock,
    // Qwen3NextSparseMoeBlock), gated by sigmoid(shared_expert_gate).
    if (c.model_type == "qwen2_moe" || next) c.shared_ffn = need_int(cfg, "shared_expert_intermediate_size");
    const int64_t step = opt_int(cfg, "decoder_sparse_step", 1);
    std::vector<bool> dense(static_cast<size_t>(c.layers), false);
    if (present(cfg, "mlp_only_layers")) {
      if (!cfg["mlp_only_layers"].is_array()) bad("'mlp_only_layers' must be a list of layer indices");
      for (const json &l : cfg["mlp_only_layers"]) {
        if (!l.is_number_integer() || l.get<int64_t>() < 0 || l.get<int64_t>() >= c.layers)
          bad("'mlp_only_layers' holds " + l.dump() + ", not a layer index below " + std::to_string(c.layers));
        dense[static_cast<size_t>(l.get<int64_t>())] = true;
      }
    }
    c.moe_layer.resize(static_cast<size_t>(c.layers));
    for (int64_t l = 0; l < c.layers; ++l) c.moe_layer[static_cast<size_t>(l)] = !dense[static_cast<size_t>(l)] && (l + 1) % step == 0;
  }
  if (next) {
    // transformers Qwen3NextConfig: layer_types, else "linear_attention" unless (i + 1) % full_attention_interval == 0.
    c.gated_q = true;
    c.zero_centered_norm = true;
    c.lin_k_heads = need_int(cfg, "linear_num_key_heads");
    c.lin_v_heads = need_int(cfg, "linear_num_value_heads");
    c.lin_k_dim = need_int(cfg, "linear_key_head_dim");
    c.lin_v_dim = need_int(cfg, "linear_value_head_dim");
    c.lin_conv = opt_int(cfg, "linear_conv_kernel_dim", 4);
    if (c.lin_v_heads % c.lin_k_heads != 0)
      bad("linear_num_value_heads " + std::to_string(c.lin_v_heads) + " is not a multiple of linear_num_key_heads " + std::to_string(c.lin_k_heads));
    if (c.lin_k_heads * c.lin_k_dim > kMaxDim || c.lin_v_heads * c.lin_v_dim > kMaxDim || c.lin_conv > 1024)
      bad("the linear attention dimensions are too large");
    const size_t n = static_cast<size_t>(c.layers);
    c.linear_layer.assign(n, false);
    if (present(cfg, "layer_types")) {
      const json &t = cfg["layer_types"];
      if (!t.is_array() || t.size() != n)
        bad("'layer_types' must be a list of " + std::to_string(c.layers) + " \"linear_attention\" / \"full_attention\" entries");
      for (size_t l = 0; l < n; ++l) {
        if (t[l] == "linear_attention") c.linear_layer[l] = true;
        else if (t[l] != "full_attention")
          bad("'layer_types' holds " + t[l].dump() + " at layer " + std::to_string(l) + " (\"linear_attention\" or \"full_attention\")");
      }
    } else {
      const int64_t every = opt_int(cfg, "full_attention_interval", 4);
      if (every <= 0) bad("full_attention_interval must be positive");
      for (size_t l = 0; l < n; ++l) c.linear_layer[l] = (static_cast<int64_t>(l) + 1) % every != 0;
    }
    const json &rp = present(cfg, "rope_parameters") ? cfg["rope_parameters"] : cfg;
    c.partial_rotary = present(rp, "partial_rotary_factor") ? opt_num(rp, "partial_rotary_factor", 0.25) : opt_num(cfg, "partial_rotary_factor", 0.25);
    if (!(c.partial_rotary > 0 && c.partial_rotary <= 1)) bad("partial_rotary_factor must be in (0, 1]");
  }
  if (c.experts > 0 && c.experts_per_tok > c.experts)
    bad("num_experts_per_tok " + std::to_string(c.experts_per_tok) + " exceeds the " + std::to_string(c.experts) + " experts");

  c.dtype = ckh::plugins::config::model_dtype(cfg);

  c.rms_eps = opt_num(cfg, "rms_norm_eps", c.rms_eps);
  parse_rope(cfg, c);
  if (minicpm) {
    c.scale_emb = opt_num(cfg, "scale_emb", 1.0);
    c.scale_depth = opt_num(cfg, "scale_depth", 1.0);
    c.dim_model_base = opt_num(cfg, "dim_model_base", static_cast<double>(c.hidden));
  }
  return c;
}

namespace {

// The tensors of one decoder layer under prefix p ("model.layers.<l>." or Qwen3-Next's "mtp.layers.<k>."), with
// role / layer L, linear or full attention, MoE or dense.
void layer_tensors(const LlamaConfig &c, const std::string &p, int32_t role, int32_t L, bool linear, bool sparse, std::vector<Canonical> &v) {
  auto add = [&](std::string name, std::vector<int64_t> shape, int32_t init, int32_t expert = -1) {
    const int32_t kind = kind_of(name);
    v.push_back({std::move(name), std::move(shape), role, L, init, kind, expert});
  };
  const int64_t q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  const int64_t qrows = c.gated_q ? 2 * q : q;  // Qwen3-Next: query and its output gate, per head
  const int32_t norm_init = c.zero_centered_norm ? CKH_INIT_ZEROS : CKH_INIT_ONES;
  {
    auto w = [&](const std::string &n, std::vector<int64_t> s) { add(p + n, std::move(s), CKH_INIT_NORMAL); };
    auto bias = [&](const std::string &n, int64_t s) { add(p + n, {s}, CKH_INIT_ZEROS); };
    auto norm = [&](const std::string &n, int64_t s) { add(p + n, {s}, norm_init); };
    norm("input_layernorm.weight", c.hidden);
    if (linear) {
      // transformers Qwen3NextGatedDeltaNet: conv1d over q, k, v channels (depthwise, no bias), in_proj_qkvz /
      // in_proj_ba, dt_bias and A_log per value head, a gated RMSNorm (plain weight, ones) over a value head.
      const int64_t kd = c.lin_k_heads * c.lin_k_dim, vd = c.lin_v_heads * c.lin_v_dim;
      add(p + "linear_attn.conv1d.weight", {2 * kd + vd, 1, c.lin_conv}, CKH_INIT_NORMAL);
      add(p + "linear_attn.dt_bias", {c.lin_v_heads}, CKH_INIT_ONES);
      add(p + "linear_attn.A_log", {c.lin_v_heads}, CKH_INIT_NORMAL);
      w("linear_attn.in_proj_qkvz.weight", {2 * kd + 2 * vd, c.hidden});
      w("linear_attn.in_proj_ba.weight", {2 * c.lin_v_heads, c.hidden});
      add(p + "linear_attn.norm.weight", {c.lin_v_dim}, CKH_INIT_ONES);
      w("linear_attn.out_proj.weight", {c.hidden, vd});
    } else {
      w("self_attn.q_proj.weight", {qrows, c.hidden});
      if (c.qkv_bias) bias("self_attn.q_proj.bias", qrows);
      w("self_attn.k_proj.weight", {kv, c.hidden});
      if (c.qkv_bias) bias("self_attn.k_proj.bias", kv);
      w("self_attn.v_proj.weight", {kv, c.hidden});
      if (c.qkv_bias) bias("self_attn.v_proj.bias", kv);
      w("self_attn.o_proj.weight", {c.hidden, q});
      if (c.o_bias) bias("self_attn.o_proj.bias", c.hidden);
      if (c.qk_norm) {
        norm("self_attn.q_norm.weight", c.qk_norm_all_heads ? q : c.head_dim);
        norm("self_attn.k_norm.weight", c.qk_norm_all_heads ? kv : c.head_dim);
      }
    }
    norm("post_attention_layernorm.weight", c.hidden);
  }
  {
    auto w = [&](const std::string &n, std::vector<int64_t> s) { add(p + n, std::move(s), CKH_INIT_NORMAL); };
    auto bias = [&](const std::string &n, int64_t s) { add(p + n, {s}, CKH_INIT_ZEROS); };
    if (sparse) {
      // HF names as save_pretrained writes them (transformers 5 fuses experts in memory only).
      const bool mix = c.w123();
      const std::string moe = mix ? "block_sparse_moe." : "mlp.";
      w(moe + "gate.weight", {c.experts, c.hidden});
      if (c.expert_bias) bias(moe + "e_score_correction_bias", c.experts);
      for (int64_t e = 0; e < c.experts; ++e) {
        const std::string x = p + moe + "experts." + std::to_string(e) + ".";
        const int32_t E = static_cast<int32_t>(e);
        add(x + (mix ? "w1.weight" : "gate_proj.weight"), {c.moe_ffn, c.hidden}, CKH_INIT_NORMAL, E);
        add(x + (mix ? "w2.weight" : "down_proj.weight"), {c.hidden, c.moe_ffn}, CKH_INIT_NORMAL, E);
        add(x + (mix ? "w3.weight" : "up_proj.weight"), {c.moe_ffn, c.hidden}, CKH_INIT_NORMAL, E);
      }
      if (c.shared_ffn > 0) {
        w("mlp.shared_expert.gate_proj.weight", {c.shared_ffn, c.hidden});
        w("mlp.shared_expert.up_proj.weight", {c.shared_ffn, c.hidden});
        w("mlp.shared_expert.down_proj.weight", {c.hidden, c.shared_ffn});
        w("mlp.shared_expert_gate.weight", {1, c.hidden});
      }
      return;
    }
    w("mlp.gate_proj.weight", {c.ffn, c.hidden});
    if (c.mlp_bias) bias("mlp.gate_proj.bias", c.ffn);
    w("mlp.up_proj.weight", {c.ffn, c.hidden});
    if (c.mlp_bias) bias("mlp.up_proj.bias", c.ffn);
    w("mlp.down_proj.weight", {c.hidden, c.ffn});
    if (c.mlp_bias) bias("mlp.down_proj.bias", c.hidden);
  }
}

}  // namespace

std::vector<Canonical> canonical_tensors(const LlamaConfig &c) {
  std::vector<Canonical> v;
  v.reserve(static_cast<size_t>(3 + c.layers * 16));
  auto add = [&](std::string name, std::vector<int64_t> shape, int32_t role, int32_t init) {
    const int32_t kind = kind_of(name);
    v.push_back({std::move(name), std::move(shape), role, -1, init, kind, -1});
  };
  add("model.embed_tokens.weight", {c.vocab, c.hidden}, CKH_ROLE_EMBEDDING, CKH_INIT_NORMAL);
  for (int64_t l = 0; l < c.layers; ++l)
    layer_tensors(c, "model.layers." + std::to_string(l) + ".", CKH_ROLE_LAYER, static_cast<int32_t>(l), c.is_linear(l), c.is_moe(l), v);
  add("model.norm.weight", {c.hidden}, CKH_ROLE_FINAL_NORM, c.zero_centered_norm ? CKH_INIT_ZEROS : CKH_INIT_ONES);
  if (!c.tied) add("lm_head.weight", {c.vocab, c.hidden}, CKH_ROLE_OUTPUT, CKH_INIT_NORMAL);
  return v;
}

std::vector<Canonical> mtp_tensors(const LlamaConfig &c, int64_t n) {
  std::vector<Canonical> v;
  if (c.model_type != "qwen3_next" || n <= 0) return v;
  auto add = [&](std::string name, std::vector<int64_t> shape, int32_t init) {
    const int32_t kind = kind_of(name);
    v.push_back({std::move(name), std::move(shape), CKH_ROLE_MTP, 0, init, kind, -1});
  };
  // vLLM Qwen3NextMultiTokenPredictor: fc (2 * hidden -> hidden), zero-centred norms, full-attention MoE layers.
  add("mtp.fc.weight", {c.hidden, 2 * c.hidden}, CKH_INIT_NORMAL);
  add("mtp.pre_fc_norm_embedding.weight", {c.hidden}, CKH_INIT_ZEROS);
  add("mtp.pre_fc_norm_hidden.weight", {c.hidden}, CKH_INIT_ZEROS);
  for (int64_t k = 0; k < n; ++k)
    layer_tensors(c, "mtp.layers." + std::to_string(k) + ".", CKH_ROLE_MTP, static_cast<int32_t>(k), false, c.experts > 0, v);
  add("mtp.norm.weight", {c.hidden}, CKH_INIT_ZEROS);
  return v;
}

int32_t kind_of(const std::string &n) {
  auto has = [&](const char *p) { return n.find(p) != std::string::npos; };
  if (n == "model.embed_tokens.weight") return CKH_KIND_EMBEDDING;
  if (n == "lm_head.weight") return CKH_KIND_OUTPUT;
  if (has("norm.")) return CKH_KIND_NORM;  // input/post_attention layernorms, q/k norms, model.norm
  if (has(".self_attn.q_proj.")) return CKH_KIND_ATTN_Q;
  if (has(".self_attn.k_proj.")) return CKH_KIND_ATTN_K;
  if (has(".self_attn.v_proj.")) return CKH_KIND_ATTN_V;
  if (has(".self_attn.o_proj.") || has(".linear_attn.out_proj.")) return CKH_KIND_ATTN_OUT;
  if (has(".block_sparse_moe.gate.") || has(".mlp.gate.") || has(".mlp.shared_expert_gate.") || has(".e_score_correction_bias"))
    return CKH_KIND_ROUTER;
  if (has(".mlp.gate_proj.") || has(".shared_expert.gate_proj.") || (has(".experts.") && (has(".gate_proj.") || has(".w1."))))
    return CKH_KIND_FFN_GATE;
  if (has(".mlp.up_proj.") || has(".shared_expert.up_proj.") || (has(".experts.") && (has(".up_proj.") || has(".w3."))))
    return CKH_KIND_FFN_UP;
  if (has(".mlp.down_proj.") || has(".shared_expert.down_proj.") || (has(".experts.") && (has(".down_proj.") || has(".w2."))))
    return CKH_KIND_FFN_DOWN;
  return CKH_KIND_OTHER;
}

int64_t parameter_count(const LlamaConfig &c) {
  int64_t n = 0;
  for (const auto &t : canonical_tensors(c)) {
    int64_t p = 1;
    for (int64_t d : t.shape) p *= d;  // two int32-bounded factors: no overflow
    if (__builtin_add_overflow(n, p, &n)) throw std::overflow_error("parameter count overflows int64");
  }
  return n;
}

}  // namespace ckh::llama
