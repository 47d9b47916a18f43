// qwen3_vl.cpp — see qwen3_vl.hpp.
#include "qwen3_vl.hpp"

#include <algorithm>

#include "config_fields.hpp"

using nlohmann::json;
namespace cf = ckh::plugins::config;

namespace ckh::qwen_vl {

namespace {
const char *const kTypes3[] = {"qwen3_vl", "qwen3_vl_moe"};
const char *const kArchs3[] = {"Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration"};

std::vector<int64_t> int_list(const json &c, const char *key) {
  std::vector<int64_t> r;
  if (!cf::present(c, key)) return r;
  if (!c[key].is_array()) cf::bad(std::string("'") + key + "' must be a list of integers");
  for (const auto &x : c[key]) {
    if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() > cf::kMaxDim)
      cf::bad(std::string("'") + key + "' must be a list of non-negative integers, got " + c[key].dump());
    r.push_back(x.get<int64_t>());
  }
  return r;
}
}  // namespace

bool is_qwen3_vl(const json &cfg) noexcept { return ckh::plugins::model::score_by_name(cfg, kTypes3, kArchs3) > 0; }

bool Config3::moe_layer(int64_t l) const {
  return moe && experts > 0 && std::find(mlp_only.begin(), mlp_only.end(), l) == mlp_only.end() && (l + 1) % sparse_step == 0;
}

Config3 parse_config3(const json &cfg) {
  if (!cfg.is_object()) cf::bad("not an object");
  Config3 c;
  const std::string mt = cf::opt_str(cfg, "model_type", "");
  bool moe_arch = false;
  if (cfg.contains("architectures") && cfg["architectures"].is_array())
    for (const auto &a : cfg["architectures"]) moe_arch = moe_arch || (a.is_string() && a.get<std::string>() == kArchs3[1]);
  c.moe = mt == "qwen3_vl_moe" || (mt.empty() && moe_arch);
  if (!cf::present(cfg, "text_config") || !cfg["text_config"].is_object()) cf::bad("'text_config' is missing");
  const json &t = cfg["text_config"];
  c.hidden = cf::need_int(t, "hidden_size");
  c.layers = cf::need_int(t, "num_hidden_layers");
  c.heads = cf::need_int(t, "num_attention_heads");
  c.kv_heads = cf::opt_int(t, "num_key_value_heads", c.heads);
  c.vocab = cf::need_int(t, "vocab_size");
  c.head_dim = cf::opt_int(t, "head_dim", c.hidden / c.heads);
  if (c.heads % c.kv_heads)
    cf::bad("num_attention_heads " + std::to_string(c.heads) + " is not a multiple of num_key_value_heads " + std::to_string(c.kv_heads));
  c.attn_bias = cf::opt_bool(t, "attention_bias", false);
  c.inter = cf::opt_int(t, "intermediate_size", 0);
  if (c.moe) {
    c.experts = cf::present(t, "num_experts") ? cf::need_int(t, "num_experts") : cf::need_int(t, "num_local_experts");
    c.moe_inter = cf::need_int(t, "moe_intermediate_size");
    c.sparse_step = cf::opt_int(t, "decoder_sparse_step", 1);
    c.mlp_only = int_list(t, "mlp_only_layers");
  }
  bool any_dense = !c.moe;
  for (int64_t l = 0; l < c.layers && !any_dense; ++l) any_dense = !c.moe_layer(l);
  if (any_dense && c.inter <= 0) cf::bad("'intermediate_size' is missing");
  c.tied = cf::opt_bool(cfg, "tie_word_embeddings", false);
  if (!cf::present(cfg, "vision_config") || !cfg["vision_config"].is_object()) cf::bad("'vision_config' is missing");
  const json &v = cfg["vision_config"];
  c.v_width = cf::need_int(v, "hidden_size");
  c.v_depth = cf::need_int(v, "depth");
  c.v_heads = cf::need_int(v, "num_heads");
  c.v_inter = cf::need_int(v, "intermediate_size");
  c.v_out = cf::opt_int(v, "out_hidden_size", c.hidden);
  c.in_ch = cf::opt_int(v, "in_channels", 3);
  c.patch = cf::opt_int(v, "patch_size", 16);
  c.t_patch = cf::opt_int(v, "temporal_patch_size", 2);
  c.merge = cf::opt_int(v, "spatial_merge_size", 2);
  c.v_pos = cf::need_int(v, "num_position_embeddings");
  c.deepstack = int_list(v, "deepstack_visual_indexes");
  if (c.v_width % c.v_heads)
    cf::bad("vision hidden_size " + std::to_string(c.v_width) + " is not a multiple of vision_config 'num_heads' " + std::to_string(c.v_heads));
  if (c.v_out != c.hidden)
    cf::bad("the vision merger's output width " + std::to_string(c.v_out) + " differs from the text hidden_size " + std::to_string(c.hidden));
  for (int64_t i : c.deepstack)
    if (i >= c.v_depth) cf::bad("deepstack_visual_indexes names block " + std::to_string(i) + " of " + std::to_string(c.v_depth));
  c.dtype = cf::model_dtype(cf::present(cfg, "torch_dtype") || cf::present(cfg, "dtype") ? cfg : t);
  return c;
}

std::vector<Canonical> canonical_tensors3(const Config3 &c) {
  std::vector<Canonical> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, int32_t role, int32_t layer, int32_t stack, int32_t kind,
                 int32_t init = CKH_INIT_NORMAL) { out.push_back({std::move(name), std::move(shape), role, layer, stack, init, kind}); };
  const int64_t W = c.v_width, M = c.v_width * c.merge * c.merge;
  const std::string v = "model.visual.";
  add(v + "patch_embed.proj.weight", {W, c.in_ch, c.t_patch, c.patch, c.patch}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER);
  add(v + "patch_embed.proj.bias", {W}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
  add(v + "pos_embed.weight", {c.v_pos, W}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER);
  for (int64_t l = 0; l < c.v_depth; ++l) {
    const std::string p = v + "blocks." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    for (const char *n : {"norm1", "norm2"}) {
      add(p + n + ".weight", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_NORM, CKH_INIT_ONES);
      add(p + n + ".bias", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_NORM, CKH_INIT_ZEROS);
    }
    add(p + "attn.qkv.weight", {3 * W, W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_ATTN_QKV);
    add(p + "attn.qkv.bias", {3 * W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_ATTN_QKV, CKH_INIT_ZEROS);
    add(p + "attn.proj.weight", {W, W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_ATTN_OUT);
    add(p + "attn.proj.bias", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_ATTN_OUT, CKH_INIT_ZEROS);
    add(p + "mlp.linear_fc1.weight", {c.v_inter, W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_UP);
    add(p + "mlp.linear_fc1.bias", {c.v_inter}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_UP, CKH_INIT_ZEROS);
    add(p + "mlp.linear_fc2.weight", {W, c.v_inter}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_DOWN);
    add(p + "mlp.linear_fc2.bias", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_DOWN, CKH_INIT_ZEROS);
  }
  auto merger = [&](const std::string &p, int64_t norm_width) {
    add(p + "norm.weight", {norm_width}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_NORM, CKH_INIT_ONES);
    add(p + "norm.bias", {norm_width}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_NORM, CKH_INIT_ZEROS);
    add(p + "linear_fc1.weight", {M, M}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER);
    add(p + "linear_fc1.bias", {M}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
    add(p + "linear_fc2.weight", {c.v_out, M}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER);
    add(p + "linear_fc2.bias", {c.v_out}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
  };
  merger(v + "merger.", W);
  for (size_t k = 0; k < c.deepstack.size(); ++k) merger(v + "deepstack_merger_list." + std::to_string(k) + ".", M);
  // Text decoder (stack 0): Qwen3 with per-head q/k norms; MoE layers with a router and fused experts.
  const int64_t H = c.hidden, q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  const std::string t = "model.language_model.";
  add(t + "embed_tokens.weight", {c.vocab, H}, CKH_ROLE_EMBEDDING, -1, 0, CKH_KIND_EMBEDDING);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = t + "layers." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    add(p + "input_layernorm.weight", {H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_NORM, CKH_INIT_ONES);
    const std::pair<const char *, int32_t> qkv[] = {{"q", CKH_KIND_ATTN_Q}, {"k", CKH_KIND_ATTN_K}, {"v", CKH_KIND_ATTN_V}};
    for (const auto &[n, kind] : qkv) {
      const int64_t rows = n[0] == 'q' ? q : kv;
      add(p + "self_attn." + n + "_proj.weight", {rows, H}, CKH_ROLE_LAYER, L, 0, kind);
      if (c.attn_bias) add(p + "self_attn." + n + "_proj.bias", {rows}, CKH_ROLE_LAYER, L, 0, kind, CKH_INIT_ZEROS);
    }
    add(p + "self_attn.o_proj.weight", {H, q}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_OUT);
    if (c.attn_bias) add(p + "self_attn.o_proj.bias", {H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_OUT, CKH_INIT_ZEROS);
    add(p + "self_attn.q_norm.weight", {c.head_dim}, CKH_ROLE_LAYER, L, 0, CKH_KIND_NORM, CKH_INIT_ONES);
    add(p + "self_attn.k_norm.weight", {c.head_dim}, CKH_ROLE_LAYER, L, 0, CKH_KIND_NORM, CKH_INIT_ONES);
    add(p + "post_attention_layernorm.weight", {H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_NORM, CKH_INIT_ONES);
    if (c.moe_layer(l)) {
      add(p + "mlp.gate.weight", {c.experts, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ROUTER);
      add(p + "mlp.experts.gate_up_proj", {c.experts, 2 * c.moe_inter, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_FFN_GATE_UP);
      add(p + "mlp.experts.down_proj", {c.experts, H, c.moe_inter}, CKH_ROLE_LAYER, L, 0, CKH_KIND_FFN_DOWN);
    } else {
      add(p + "mlp.gate_proj.weight", {c.inter, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_FFN_GATE);
      add(p + "mlp.up_proj.weight", {c.inter, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_FFN_UP);
      add(p + "mlp.down_proj.weight", {H, c.inter}, CKH_ROLE_LAYER, L, 0, CKH_KIND_FFN_DOWN);
    }
  }
  add(t + "norm.weight", {H}, CKH_ROLE_FINAL_NORM, -1, 0, CKH_KIND_NORM, CKH_INIT_ONES);
  if (!c.tied) add("lm_head.weight", {c.vocab, H}, CKH_ROLE_OUTPUT, -1, 0, CKH_KIND_OUTPUT);
  return out;
}

std::vector<int64_t> released_expert_shape(const std::string &name, const std::vector<int64_t> &s) {
  const bool fused = (name.size() > 25 && name.compare(name.size() - 25, 25, ".mlp.experts.gate_up_proj") == 0) ||
                     (name.size() > 22 && name.compare(name.size() - 22, 22, ".mlp.experts.down_proj") == 0);
  if (!fused || s.size() != 3) return {};
  return {s[0], s[2], s[1]};
}

}  // namespace ckh::qwen_vl
