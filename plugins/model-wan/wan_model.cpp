// wan_model.cpp — Wan DiT configs and tensor list (see wan_model.hpp).
#include "wan_model.hpp"

#include <stdexcept>

#include "config_fields.hpp"

namespace ckh::wan {

using nlohmann::json;
using namespace ckh::plugins::config;

int score(const json &cfg) noexcept {
  try {
    if (!cfg.is_object() || !cfg.contains("_class_name") || !cfg["_class_name"].is_string()) return 0;
    const std::string k = cfg["_class_name"].get<std::string>();
    if (k == "WanTransformer3DModel" || k == "WanModel") return 90;
  } catch (...) {
  }
  return 0;
}

namespace {

void read_patch(const json &cfg, WanConfig &c) {
  if (!present(cfg, "patch_size")) return;
  const json &p = cfg["patch_size"];
  if (!p.is_array() || p.size() != 3) bad("'patch_size' must be a list of 3 integers, got " + p.dump());
  for (size_t i = 0; i < 3; ++i) {
    if (!p[i].is_number_integer() || p[i].get<int64_t>() <= 0 || p[i].get<int64_t>() > 64)
      bad("'patch_size' must be a list of 3 positive integers, got " + p.dump());
    c.patch[i] = p[i].get<int64_t>();
  }
}

void check(const WanConfig &c) {
  if (c.dim % c.heads) bad("the width " + std::to_string(c.dim) + " is not a multiple of the " + std::to_string(c.heads) + " heads");
}

}  // namespace

WanConfig parse_diffusers_config(const json &cfg) {
  if (!cfg.is_object()) bad("not a JSON object");
  WanConfig c;
  c.heads = need_int(cfg, "num_attention_heads");
  const int64_t hd = need_int(cfg, "attention_head_dim");
  c.dim = c.heads * hd;
  if (c.dim > kMaxDim) bad("num_attention_heads x attention_head_dim is too large");
  c.in_ch = need_int(cfg, "in_channels");
  c.out_ch = opt_int(cfg, "out_channels", c.in_ch);
  c.text_dim = need_int(cfg, "text_dim");
  c.freq_dim = need_int(cfg, "freq_dim");
  c.ffn = need_int(cfg, "ffn_dim");
  c.layers = need_int(cfg, "num_layers");
  c.cross_attn_norm = opt_bool(cfg, "cross_attn_norm", true);
  // diffusers' WanAttention always has norm_q/norm_k (RMSNorm across heads) whatever qk_norm says.
  if (present(cfg, "qk_norm") && opt_str(cfg, "qk_norm", "") != "rms_norm_across_heads")
    bad("qk_norm '" + opt_str(cfg, "qk_norm", "") + "' is not supported (Wan uses \"rms_norm_across_heads\")");
  c.eps = opt_num(cfg, "eps", 1e-6);
  c.image_dim = opt_int(cfg, "image_dim", 0);
  c.added_kv = opt_int(cfg, "added_kv_proj_dim", 0);
  c.pos_embed_len = opt_int(cfg, "pos_embed_seq_len", 0);
  c.rope_max_seq_len = opt_int(cfg, "rope_max_seq_len", 1024);
  if (c.pos_embed_len && !c.image_dim) bad("'pos_embed_seq_len' needs 'image_dim'");
  read_patch(cfg, c);
  c.dtype = model_dtype(cfg);
  check(c);
  return c;
}

WanConfig parse_original_config(const json &cfg, const std::function<std::vector<int64_t>(const std::string &)> &shape_of) {
  if (!cfg.is_object()) bad("not a JSON object");
  WanConfig c;
  c.dim = need_int(cfg, "dim");
  c.heads = need_int(cfg, "num_heads");
  c.layers = need_int(cfg, "num_layers");
  c.ffn = need_int(cfg, "ffn_dim");
  c.freq_dim = opt_int(cfg, "freq_dim", 256);
  c.in_ch = need_int(cfg, "in_dim");
  c.out_ch = opt_int(cfg, "out_dim", c.in_ch);
  c.eps = opt_num(cfg, "eps", 1e-6);
  const std::string mt = opt_str(cfg, "model_type", "t2v");
  if (mt != "t2v" && mt != "i2v" && mt != "flf2v" && mt != "ti2v")
    bad("model_type '" + mt + "' is not supported (t2v, i2v, flf2v or ti2v; VACE and S2V have more modules)");
  // What WanModel's config.json leaves out is in the tensors.
  const auto pe = shape_of("patch_embedding.weight");
  if (pe.size() == 5)
    for (size_t i = 0; i < 3; ++i) c.patch[i] = pe[2 + i];
  else
    read_patch(cfg, c);
  const auto te = shape_of("text_embedding.0.weight");
  c.text_dim = te.size() == 2 ? te[1] : opt_int(cfg, "text_dim", 4096);
  if (!opt_bool(cfg, "qk_norm", true))
    bad("qk_norm false: a Wan model without q/k norms has no diffusers form (WanAttention always has them)");
  // The CLIP image embedder: Wan 2.1 I2V/FLF2V have one (Wan 2.2 I2V has none), so the tensors decide;
  // without tensors (a config alone) the model_type does.
  const auto ie = shape_of("img_emb.proj.0.weight");
  const bool any_tensor = !pe.empty();
  c.cross_attn_norm = any_tensor ? !shape_of("blocks.0.norm3.weight").empty() : opt_bool(cfg, "cross_attn_norm", true);
  if (any_tensor ? !ie.empty() : (mt == "i2v" || mt == "flf2v")) {
    c.image_dim = ie.size() == 1 ? ie[0] : 1280;  // MLPProj(1280, dim) in the original code
    c.added_kv = c.dim;                            // k_img, v_img: Linear(dim, dim)
    const auto ep = shape_of("img_emb.emb_pos");
    if (ep.size() == 3) c.pos_embed_len = ep[1];
    else if (!any_tensor && mt == "flf2v") c.pos_embed_len = 257 * 2;
  }
  c.dtype = model_dtype(cfg);
  check(c);
  return c;
}

json original_config(const WanConfig &c, const json &src) {
  if (c.rope_max_seq_len != 1024)
    bad("rope_max_seq_len " + std::to_string(c.rope_max_seq_len) + ": the original Wan model fixes it at 1024");
  if (c.added_kv && c.added_kv != c.dim)
    bad("added_kv_proj_dim " + std::to_string(c.added_kv) + ": the original Wan model's k_img/v_img take the width " +
        std::to_string(c.dim));
  if (!c.cross_attn_norm)
    bad("cross_attn_norm false: the original Wan config cannot state it (WanModel leaves it out of config.json and "
        "defaults to true)");
  if (c.image_dim && !c.added_kv) bad("'image_dim' without 'added_kv_proj_dim' has no original Wan form");
  json o = json::object();
  o["_class_name"] = "WanModel";
  if (src.is_object() && src.contains("_diffusers_version")) o["_diffusers_version"] = src["_diffusers_version"];
  o["model_type"] = c.pos_embed_len ? "flf2v" : c.image_dim ? "i2v" : "t2v";
  o["dim"] = c.dim;
  o["eps"] = c.eps;
  o["ffn_dim"] = c.ffn;
  o["freq_dim"] = c.freq_dim;
  o["in_dim"] = c.in_ch;
  o["num_heads"] = c.heads;
  o["num_layers"] = c.layers;
  o["out_dim"] = c.out_ch;
  o["text_len"] = src.is_object() && src.contains("text_len") ? src["text_len"] : json(512);
  // WanModel leaves text_dim, patch_size, qk_norm and cross_attn_norm out of its config.json
  // (ignore_for_config), as the released files do: the tensors state them.
  for (const char *k : {"torch_dtype", "dtype"})
    if (src.is_object() && src.contains(k)) o[k] = src[k];
  return o;
}

json diffusers_config(const WanConfig &c, const json &src) {
  json o = json::object();
  o["_class_name"] = "WanTransformer3DModel";
  if (src.is_object() && src.contains("_diffusers_version")) o["_diffusers_version"] = src["_diffusers_version"];
  o["added_kv_proj_dim"] = c.added_kv ? json(c.added_kv) : json(nullptr);
  o["attention_head_dim"] = c.dim / c.heads;
  o["cross_attn_norm"] = c.cross_attn_norm;
  o["eps"] = c.eps;
  o["ffn_dim"] = c.ffn;
  o["freq_dim"] = c.freq_dim;
  o["image_dim"] = c.image_dim ? json(c.image_dim) : json(nullptr);
  o["in_channels"] = c.in_ch;
  o["num_attention_heads"] = c.heads;
  o["num_layers"] = c.layers;
  o["out_channels"] = c.out_ch;
  o["patch_size"] = {c.patch[0], c.patch[1], c.patch[2]};
  o["pos_embed_seq_len"] = c.pos_embed_len ? json(c.pos_embed_len) : json(nullptr);
  o["qk_norm"] = "rms_norm_across_heads";
  o["rope_max_seq_len"] = c.rope_max_seq_len;
  o["text_dim"] = c.text_dim;
  for (const char *k : {"torch_dtype", "dtype"})
    if (src.is_object() && src.contains(k)) o[k] = src[k];
  return o;
}

std::vector<Tensor> tensors(const WanConfig &c) {
  std::vector<Tensor> out;
  const int64_t d = c.dim;
  auto add = [&](std::string df, std::string og, std::vector<int64_t> shape, int32_t role, int32_t layer, int32_t kind,
                 int32_t init = CKH_INIT_NORMAL) {
    Tensor t;
    t.diffusers = std::move(df);
    t.original = std::move(og);
    t.shape = std::move(shape);
    t.role = role;
    t.layer = layer;
    t.kind = kind;
    t.init = init;
    out.push_back(std::move(t));
  };
  // A linear layer: weight [o, i] and bias [o].
  auto linear = [&](const std::string &df, const std::string &og, int64_t o, int64_t i, int32_t role, int32_t layer,
                    int32_t kind) {
    add(df + ".weight", og + ".weight", {o, i}, role, layer, kind);
    add(df + ".bias", og + ".bias", {o}, role, layer, kind, CKH_INIT_ZEROS);
  };
  auto norm = [&](const std::string &df, const std::string &og, int64_t n, bool bias, int32_t role, int32_t layer) {
    add(df + ".weight", og + ".weight", {n}, role, layer, CKH_KIND_NORM, CKH_INIT_ONES);
    if (bias) add(df + ".bias", og + ".bias", {n}, role, layer, CKH_KIND_NORM, CKH_INIT_ZEROS);
  };
  const int32_t E = CKH_ROLE_EMBEDDING, L = CKH_ROLE_LAYER, O = CKH_ROLE_OUTPUT;
  // The input side (MindSpeed-MM puts all of these on pipeline stage 0).
  add("patch_embedding.weight", "patch_embedding.weight", {d, c.in_ch, c.patch[0], c.patch[1], c.patch[2]}, E, -1, CKH_KIND_OTHER);
  add("patch_embedding.bias", "patch_embedding.bias", {d}, E, -1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
  linear("condition_embedder.time_embedder.linear_1", "time_embedding.0", d, c.freq_dim, E, -1, CKH_KIND_OTHER);
  linear("condition_embedder.time_embedder.linear_2", "time_embedding.2", d, d, E, -1, CKH_KIND_OTHER);
  linear("condition_embedder.time_proj", "time_projection.1", 6 * d, d, E, -1, CKH_KIND_OTHER);
  linear("condition_embedder.text_embedder.linear_1", "text_embedding.0", d, c.text_dim, E, -1, CKH_KIND_OTHER);
  linear("condition_embedder.text_embedder.linear_2", "text_embedding.2", d, d, E, -1, CKH_KIND_OTHER);
  if (c.image_dim) {
    const std::string ie = "condition_embedder.image_embedder.";
    norm(ie + "norm1", "img_emb.proj.0", c.image_dim, true, E, -1);
    linear(ie + "ff.net.0.proj", "img_emb.proj.1", c.image_dim, c.image_dim, E, -1, CKH_KIND_OTHER);
    linear(ie + "ff.net.2", "img_emb.proj.3", d, c.image_dim, E, -1, CKH_KIND_OTHER);
    norm(ie + "norm2", "img_emb.proj.4", d, true, E, -1);
    if (c.pos_embed_len) add(ie + "pos_embed", "img_emb.emb_pos", {1, c.pos_embed_len, c.image_dim}, E, -1, CKH_KIND_OTHER);
  }
  for (int64_t n = 0; n < c.layers; ++n) {
    const int32_t l = static_cast<int32_t>(n);
    const std::string p = "blocks." + std::to_string(n) + ".";
    for (int a = 1; a <= 2; ++a) {
      const std::string df = p + "attn" + std::to_string(a) + ".", og = p + (a == 1 ? "self_attn." : "cross_attn.");
      linear(df + "to_q", og + "q", d, d, L, l, CKH_KIND_ATTN_Q);
      linear(df + "to_k", og + "k", d, d, L, l, CKH_KIND_ATTN_K);
      linear(df + "to_v", og + "v", d, d, L, l, CKH_KIND_ATTN_V);
      linear(df + "to_out.0", og + "o", d, d, L, l, CKH_KIND_ATTN_OUT);
      norm(df + "norm_q", og + "norm_q", d, false, L, l);
      norm(df + "norm_k", og + "norm_k", d, false, L, l);
      if (a == 2 && c.added_kv) {
        linear(df + "add_k_proj", og + "k_img", d, c.added_kv, L, l, CKH_KIND_ATTN_K);
        linear(df + "add_v_proj", og + "v_img", d, c.added_kv, L, l, CKH_KIND_ATTN_V);
        norm(df + "norm_added_k", og + "norm_k_img", d, false, L, l);
      }
    }
    // The trap: diffusers' norm2 (before the cross-attention) is original norm3. norm1 and the
    // FFN's norm (diffusers norm3, original norm2) have no weights.
    if (c.cross_attn_norm) norm(p + "norm2", p + "norm3", d, true, L, l);
    linear(p + "ffn.net.0.proj", p + "ffn.0", c.ffn, d, L, l, CKH_KIND_FFN_UP);
    linear(p + "ffn.net.2", p + "ffn.2", d, c.ffn, L, l, CKH_KIND_FFN_DOWN);
    add(p + "scale_shift_table", p + "modulation", {1, 6, d}, L, l, CKH_KIND_OTHER);
  }
  add("scale_shift_table", "head.modulation", {1, 2, d}, O, -1, CKH_KIND_OTHER);
  linear("proj_out", "head.head", c.out_ch * c.patch[0] * c.patch[1] * c.patch[2], d, O, -1, CKH_KIND_OTHER);
  return out;
}

}  // namespace ckh::wan
