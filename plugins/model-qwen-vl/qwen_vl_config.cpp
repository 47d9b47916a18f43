// qwen_vl_config.cpp — see qwen_vl_config.hpp.
#include "qwen_vl_config.hpp"

#include "config_fields.hpp"

using nlohmann::json;
namespace cf = ckh::plugins::config;

namespace ckh::qwen_vl {

namespace {
const char *const kTypes[] = {"qwen2_vl", "qwen2_5_vl"};
const char *const kArchs[] = {"Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration"};
const char *const kAllTypes[] = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl", "qwen3_vl_moe"};
const char *const kAllArchs[] = {"Qwen2VLForConditionalGeneration", "Qwen2_5_VLForConditionalGeneration",
                                 "Qwen3VLForConditionalGeneration", "Qwen3VLMoeForConditionalGeneration"};
}  // namespace

int score(const json &cfg) noexcept { return ckh::plugins::model::score_by_name(cfg, kAllTypes, kAllArchs); }

Config parse_config(const json &cfg) {
  if (!cfg.is_object()) cf::bad("not an object");
  Config c;
  const std::string mt = cf::opt_str(cfg, "model_type", "");
  bool arch25 = false;
  if (cfg.contains("architectures") && cfg["architectures"].is_array())
    for (const auto &a : cfg["architectures"]) arch25 = arch25 || (a.is_string() && a.get<std::string>() == kArchs[1]);
  c.v25 = mt == "qwen2_5_vl" || (mt.empty() && arch25);
  // transformers >= 4.5x nests the decoder's fields in text_config; older configs keep them at the top.
  const json &t = cf::present(cfg, "text_config") && cfg["text_config"].is_object() ? cfg["text_config"] : cfg;
  c.hidden = cf::need_int(t, "hidden_size");
  c.inter = cf::need_int(t, "intermediate_size");
  c.layers = cf::need_int(t, "num_hidden_layers");
  c.heads = cf::need_int(t, "num_attention_heads");
  c.kv_heads = cf::opt_int(t, "num_key_value_heads", c.heads);
  c.vocab = cf::need_int(t, "vocab_size");
  if (c.hidden % c.heads) cf::bad("hidden_size " + std::to_string(c.hidden) + " is not a multiple of num_attention_heads " + std::to_string(c.heads));
  if (c.heads % c.kv_heads)
    cf::bad("num_attention_heads " + std::to_string(c.heads) + " is not a multiple of num_key_value_heads " + std::to_string(c.kv_heads));
  c.head_dim = c.hidden / c.heads;
  c.tied = cf::opt_bool(cfg, "tie_word_embeddings", cf::opt_bool(t, "tie_word_embeddings", false));
  if (!cf::present(cfg, "vision_config") || !cfg["vision_config"].is_object()) cf::bad("'vision_config' is missing");
  const json &v = cfg["vision_config"];
  c.v_depth = cf::need_int(v, "depth");
  c.v_heads = cf::need_int(v, "num_heads");
  c.in_ch = cf::present(v, "in_channels") ? cf::need_int(v, "in_channels") : cf::opt_int(v, "in_chans", 3);
  c.patch = cf::opt_int(v, "patch_size", 14);
  c.t_patch = cf::opt_int(v, "temporal_patch_size", 2);
  c.merge = cf::opt_int(v, "spatial_merge_size", 2);
  if (c.v25) {  // width hidden_size, SwiGLU intermediate_size, merger output out_hidden_size
    c.v_width = cf::need_int(v, "hidden_size");
    c.v_inter = cf::need_int(v, "intermediate_size");
    c.v_out = cf::opt_int(v, "out_hidden_size", c.hidden);
  } else {  // width embed_dim, MLP mlp_ratio x width, merger output hidden_size
    c.v_width = cf::need_int(v, "embed_dim");
    const double ratio = cf::opt_num(v, "mlp_ratio", 4.0);
    const double inter = ratio * static_cast<double>(c.v_width);
    if (!(ratio > 0) || inter != static_cast<double>(static_cast<int64_t>(inter)) || inter > static_cast<double>(cf::kMaxDim))
      cf::bad("vision_config 'mlp_ratio' " + std::to_string(ratio) + " does not give a whole MLP width");
    c.v_inter = static_cast<int64_t>(inter);
    c.v_out = cf::opt_int(v, "hidden_size", c.hidden);
  }
  if (c.v_width % c.v_heads)
    cf::bad("vision width " + std::to_string(c.v_width) + " is not a multiple of vision_config 'num_heads' " + std::to_string(c.v_heads));
  if (c.v_out != c.hidden)
    cf::bad("the vision merger's output width " + std::to_string(c.v_out) + " differs from the text hidden_size " +
            std::to_string(c.hidden));
  c.dtype = cf::model_dtype(cfg);
  return c;
}

std::vector<Canonical> canonical_tensors(const Config &c) {
  std::vector<Canonical> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, int32_t role, int32_t layer, int32_t stack, int32_t kind,
                 int32_t init = CKH_INIT_NORMAL) {
    out.push_back({std::move(name), std::move(shape), role, layer, stack, init, kind});
  };
  const int64_t W = c.v_width, M = c.v_width * c.merge * c.merge;
  // Vision tower (stack 1): patch embedding first, blocks, then the merger (its projector into the text width).
  add("visual.patch_embed.proj.weight", {W, c.in_ch, c.t_patch, c.patch, c.patch}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER);
  for (int64_t l = 0; l < c.v_depth; ++l) {
    const std::string p = "visual.blocks." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    for (const char *n : {"norm1", "norm2"}) {
      add(p + n + ".weight", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_NORM, CKH_INIT_ONES);
      if (!c.v25) add(p + n + ".bias", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_NORM, CKH_INIT_ZEROS);
    }
    add(p + "attn.qkv.weight", {3 * W, W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_ATTN_QKV);
    add(p + "attn.qkv.bias", {3 * W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_ATTN_QKV, CKH_INIT_ZEROS);
    add(p + "attn.proj.weight", {W, W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_ATTN_OUT);
    add(p + "attn.proj.bias", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_ATTN_OUT, CKH_INIT_ZEROS);
    if (c.v25) {
      add(p + "mlp.gate_proj.weight", {c.v_inter, W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_GATE);
      add(p + "mlp.gate_proj.bias", {c.v_inter}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_GATE, CKH_INIT_ZEROS);
      add(p + "mlp.up_proj.weight", {c.v_inter, W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_UP);
      add(p + "mlp.up_proj.bias", {c.v_inter}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_UP, CKH_INIT_ZEROS);
      add(p + "mlp.down_proj.weight", {W, c.v_inter}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_DOWN);
      add(p + "mlp.down_proj.bias", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_DOWN, CKH_INIT_ZEROS);
    } else {
      add(p + "mlp.fc1.weight", {c.v_inter, W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_UP);
      add(p + "mlp.fc1.bias", {c.v_inter}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_UP, CKH_INIT_ZEROS);
      add(p + "mlp.fc2.weight", {W, c.v_inter}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_DOWN);
      add(p + "mlp.fc2.bias", {W}, CKH_ROLE_LAYER, L, 1, CKH_KIND_FFN_DOWN, CKH_INIT_ZEROS);
    }
  }
  add("visual.merger.ln_q.weight", {W}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_NORM, CKH_INIT_ONES);
  if (!c.v25) add("visual.merger.ln_q.bias", {W}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_NORM, CKH_INIT_ZEROS);
  add("visual.merger.mlp.0.weight", {M, M}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER);
  add("visual.merger.mlp.0.bias", {M}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
  add("visual.merger.mlp.2.weight", {c.v_out, M}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER);
  add("visual.merger.mlp.2.bias", {c.v_out}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
  // Text decoder (stack 0): Qwen2 with q/k/v biases.
  const int64_t H = c.hidden, q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  add("model.embed_tokens.weight", {c.vocab, H}, CKH_ROLE_EMBEDDING, -1, 0, CKH_KIND_EMBEDDING);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    add(p + "input_layernorm.weight", {H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_NORM, CKH_INIT_ONES);
    add(p + "self_attn.q_proj.weight", {q, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_Q);
    add(p + "self_attn.q_proj.bias", {q}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_Q, CKH_INIT_ZEROS);
    add(p + "self_attn.k_proj.weight", {kv, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_K);
    add(p + "self_attn.k_proj.bias", {kv}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_K, CKH_INIT_ZEROS);
    add(p + "self_attn.v_proj.weight", {kv, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_V);
    add(p + "self_attn.v_proj.bias", {kv}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_V, CKH_INIT_ZEROS);
    add(p + "self_attn.o_proj.weight", {H, q}, CKH_ROLE_LAYER, L, 0, CKH_KIND_ATTN_OUT);
    add(p + "post_attention_layernorm.weight", {H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_NORM, CKH_INIT_ONES);
    add(p + "mlp.gate_proj.weight", {c.inter, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_FFN_GATE);
    add(p + "mlp.up_proj.weight", {c.inter, H}, CKH_ROLE_LAYER, L, 0, CKH_KIND_FFN_UP);
    add(p + "mlp.down_proj.weight", {H, c.inter}, CKH_ROLE_LAYER, L, 0, CKH_KIND_FFN_DOWN);
  }
  add("model.norm.weight", {H}, CKH_ROLE_FINAL_NORM, -1, 0, CKH_KIND_NORM, CKH_INIT_ONES);
  if (!c.tied) add("lm_head.weight", {c.vocab, H}, CKH_ROLE_OUTPUT, -1, 0, CKH_KIND_OUTPUT);
  return out;
}

}  // namespace ckh::qwen_vl
