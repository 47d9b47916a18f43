// internvl_model.cpp — InternVL's tensors under its namings (see internvl_model.hpp): the canonical list, each
// naming read into it, and the model written in each naming.
#include "internvl_model.hpp"

#include <algorithm>
#include <map>

#include "gqa_qkv.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace ckh::internvl {

const char *naming_name(Naming n) {
  switch (n) {
    case Naming::Hf: return "hf";
    case Naming::HfInMemory: return "hf (transformers in-memory names)";
    case Naming::Custom: return "custom";
    case Naming::CustomInternLM2: return "custom-internlm2";
    case Naming::Mm: return "mindspeed-mm";
  }
  return "?";
}

std::vector<Tensor> canonical_tensors(const Config &c) {
  std::vector<Tensor> out;
  auto add = [&](std::string name, std::vector<int64_t> shape, int32_t role, int32_t layer, int32_t stack, int32_t kind,
                 int32_t init = CKH_INIT_NORMAL) { out.push_back({std::move(name), std::move(shape), role, layer, stack, init, kind}); };
  const int64_t W = c.v_width, I = c.v_inter;
  const std::string e = "vision_tower.embeddings.";
  add(e + "cls_token", {1, 1, W}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER);
  if (c.v_mask_token) add(e + "mask_token", {1, 1, W}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER);
  add(e + "patch_embeddings.projection.weight", {W, c.v_channels, c.v_patch_h, c.v_patch_w}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER);
  add(e + "patch_embeddings.projection.bias", {W}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
  if (c.v_abs_pos) add(e + "position_embeddings", {1, c.v_positions(), W}, CKH_ROLE_EMBEDDING, -1, 1, CKH_KIND_OTHER);
  for (int64_t l = 0; l < c.v_layers; ++l) {
    const std::string p = "vision_tower.encoder.layer." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    const auto lay = [&](const std::string &n, std::vector<int64_t> s, int32_t kind, int32_t init = CKH_INIT_NORMAL) {
      add(p + n, std::move(s), CKH_ROLE_LAYER, L, 1, kind, init);
    };
    for (const char *x : {"q", "k", "v"}) {
      const int32_t kind = x[0] == 'q' ? CKH_KIND_ATTN_Q : x[0] == 'k' ? CKH_KIND_ATTN_K : CKH_KIND_ATTN_V;
      lay(std::string("attention.") + x + "_proj.weight", {W, W}, kind);
      if (c.v_qkv_bias) lay(std::string("attention.") + x + "_proj.bias", {W}, kind, CKH_INIT_ZEROS);
    }
    lay("attention.projection_layer.weight", {W, W}, CKH_KIND_ATTN_OUT);
    lay("attention.projection_layer.bias", {W}, CKH_KIND_ATTN_OUT, CKH_INIT_ZEROS);
    if (c.v_qk_norm) {
      lay("attention.q_norm.weight", {W}, CKH_KIND_NORM, CKH_INIT_ONES);
      lay("attention.k_norm.weight", {W}, CKH_KIND_NORM, CKH_INIT_ONES);
    }
    for (const char *n : {"layernorm_before", "layernorm_after"}) {
      lay(std::string(n) + ".weight", {W}, CKH_KIND_NORM, CKH_INIT_ONES);
      if (!c.v_rms) lay(std::string(n) + ".bias", {W}, CKH_KIND_NORM, CKH_INIT_ZEROS);
    }
    lay("lambda_1", {W}, CKH_KIND_OTHER, CKH_INIT_ONES);
    lay("lambda_2", {W}, CKH_KIND_OTHER, CKH_INIT_ONES);
    lay("mlp.fc1.weight", {I, W}, CKH_KIND_FFN_UP);
    lay("mlp.fc1.bias", {I}, CKH_KIND_FFN_UP, CKH_INIT_ZEROS);
    lay("mlp.fc2.weight", {W, I}, CKH_KIND_FFN_DOWN);
    lay("mlp.fc2.bias", {W}, CKH_KIND_FFN_DOWN, CKH_INIT_ZEROS);
  }
  if (!c.v_mean_pool) {
    add("vision_tower.layernorm.weight", {W}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_NORM, CKH_INIT_ONES);
    add("vision_tower.layernorm.bias", {W}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_NORM, CKH_INIT_ZEROS);
  }
  const int64_t P = c.proj_width(), H = c.hidden;
  add("multi_modal_projector.layer_norm.weight", {P}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_NORM, CKH_INIT_ONES);
  add("multi_modal_projector.layer_norm.bias", {P}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_NORM, CKH_INIT_ZEROS);
  add("multi_modal_projector.linear_1.weight", {H, P}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER);
  add("multi_modal_projector.linear_1.bias", {H}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
  add("multi_modal_projector.linear_2.weight", {H, H}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER);
  add("multi_modal_projector.linear_2.bias", {H}, CKH_ROLE_OUTPUT, -1, 1, CKH_KIND_OTHER, CKH_INIT_ZEROS);
  // Language model (stack 0).
  const int64_t q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  add("language_model.model.embed_tokens.weight", {c.vocab, H}, CKH_ROLE_EMBEDDING, -1, 0, CKH_KIND_EMBEDDING);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "language_model.model.layers." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    const auto lay = [&](const std::string &n, std::vector<int64_t> s, int32_t kind, int32_t init = CKH_INIT_NORMAL) {
      add(p + n, std::move(s), CKH_ROLE_LAYER, L, 0, kind, init);
    };
    lay("input_layernorm.weight", {H}, CKH_KIND_NORM, CKH_INIT_ONES);
    lay("self_attn.q_proj.weight", {q, H}, CKH_KIND_ATTN_Q);
    if (c.qkv_bias) lay("self_attn.q_proj.bias", {q}, CKH_KIND_ATTN_Q, CKH_INIT_ZEROS);
    lay("self_attn.k_proj.weight", {kv, H}, CKH_KIND_ATTN_K);
    if (c.qkv_bias) lay("self_attn.k_proj.bias", {kv}, CKH_KIND_ATTN_K, CKH_INIT_ZEROS);
    lay("self_attn.v_proj.weight", {kv, H}, CKH_KIND_ATTN_V);
    if (c.qkv_bias) lay("self_attn.v_proj.bias", {kv}, CKH_KIND_ATTN_V, CKH_INIT_ZEROS);
    lay("self_attn.o_proj.weight", {H, q}, CKH_KIND_ATTN_OUT);
    if (c.o_bias) lay("self_attn.o_proj.bias", {H}, CKH_KIND_ATTN_OUT, CKH_INIT_ZEROS);
    if (c.qk_norm) {
      lay("self_attn.q_norm.weight", {c.head_dim}, CKH_KIND_NORM, CKH_INIT_ONES);
      lay("self_attn.k_norm.weight", {c.head_dim}, CKH_KIND_NORM, CKH_INIT_ONES);
    }
    lay("post_attention_layernorm.weight", {H}, CKH_KIND_NORM, CKH_INIT_ONES);
    if (c.moe_layer(l)) {
      lay("mlp.gate.weight", {c.experts, H}, CKH_KIND_ROUTER);
      for (int64_t e = 0; e < c.experts; ++e) {
        const std::string x = "mlp.experts." + std::to_string(e) + ".";
        lay(x + "gate_proj.weight", {c.moe_inter, H}, CKH_KIND_FFN_GATE);
        lay(x + "up_proj.weight", {c.moe_inter, H}, CKH_KIND_FFN_UP);
        lay(x + "down_proj.weight", {H, c.moe_inter}, CKH_KIND_FFN_DOWN);
        for (size_t k = out.size() - 3; k < out.size(); ++k) out[k].expert = static_cast<int32_t>(e);
      }
    } else {
      lay("mlp.gate_proj.weight", {c.inter, H}, CKH_KIND_FFN_GATE);
      lay("mlp.up_proj.weight", {c.inter, H}, CKH_KIND_FFN_UP);
      lay("mlp.down_proj.weight", {H, c.inter}, CKH_KIND_FFN_DOWN);
    }
  }
  add("language_model.model.norm.weight", {H}, CKH_ROLE_FINAL_NORM, -1, 0, CKH_KIND_NORM, CKH_INIT_ONES);
  if (!c.tied) add("language_model.lm_head.weight", {c.vocab, H}, CKH_ROLE_OUTPUT, -1, 0, CKH_KIND_OUTPUT);
  return out;
}

namespace {

// The parts of a canonical name: vision layer "<rest>" of layer L, LLM layer "<rest>" of layer L, or top-level.
struct Parts {
  enum { Top, Vision, Text } where = Top;
  int64_t layer = -1;
  std::string rest;  // after "...layer(s).L."
};
Parts parts_of(const std::string &n) {
  Parts p;
  for (const auto &[prefix, where] : {std::pair<std::string, int>{"vision_tower.encoder.layer.", 1}, {"language_model.model.layers.", 2}})
    if (n.rfind(prefix, 0) == 0) {
      const size_t dot = n.find('.', prefix.size());
      p.where = where == 1 ? Parts::Vision : Parts::Text;
      p.layer = std::stoll(n.substr(prefix.size(), dot - prefix.size()));
      p.rest = n.substr(dot + 1);
    }
  if (p.where == Parts::Top) p.rest = n;
  return p;
}

// 1:1 renames of each naming (the fused tensors are handled apart).
const std::map<std::string, std::string> kCustomTop = {
    {"vision_tower.embeddings.cls_token", "vision_model.embeddings.class_embedding"},
    {"vision_tower.embeddings.patch_embeddings.projection.weight", "vision_model.embeddings.patch_embedding.weight"},
    {"vision_tower.embeddings.patch_embeddings.projection.bias", "vision_model.embeddings.patch_embedding.bias"},
    {"vision_tower.embeddings.position_embeddings", "vision_model.embeddings.position_embedding"},
    {"multi_modal_projector.layer_norm.weight", "mlp1.0.weight"},
    {"multi_modal_projector.layer_norm.bias", "mlp1.0.bias"},
    {"multi_modal_projector.linear_1.weight", "mlp1.1.weight"},
    {"multi_modal_projector.linear_1.bias", "mlp1.1.bias"},
    {"multi_modal_projector.linear_2.weight", "mlp1.3.weight"},
    {"multi_modal_projector.linear_2.bias", "mlp1.3.bias"}};
const std::map<std::string, std::string> kCustomVisionLayer = {
    {"attention.projection_layer.weight", "attn.proj.weight"}, {"attention.projection_layer.bias", "attn.proj.bias"},
    {"attention.q_norm.weight", "attn.q_norm.weight"},         {"attention.k_norm.weight", "attn.k_norm.weight"},
    {"layernorm_before.weight", "norm1.weight"},               {"layernorm_before.bias", "norm1.bias"},
    {"layernorm_after.weight", "norm2.weight"},                {"layernorm_after.bias", "norm2.bias"},
    {"lambda_1", "ls1"},                                       {"lambda_2", "ls2"},
    {"mlp.fc1.weight", "mlp.fc1.weight"},                      {"mlp.fc1.bias", "mlp.fc1.bias"},
    {"mlp.fc2.weight", "mlp.fc2.weight"},                      {"mlp.fc2.bias", "mlp.fc2.bias"}};
const std::map<std::string, std::string> kInternLM2Layer = {
    {"input_layernorm.weight", "attention_norm.weight"},     {"post_attention_layernorm.weight", "ffn_norm.weight"},
    {"self_attn.o_proj.weight", "attention.wo.weight"},      {"self_attn.o_proj.bias", "attention.wo.bias"},
    {"mlp.gate_proj.weight", "feed_forward.w1.weight"},      {"mlp.up_proj.weight", "feed_forward.w3.weight"},
    {"mlp.down_proj.weight", "feed_forward.w2.weight"}};
const std::map<std::string, std::string> kMmTop = {
    {"vision_tower.embeddings.cls_token", "image_encoder.encoder.embeddings.class_embedding"},
    {"vision_tower.embeddings.patch_embeddings.projection.weight", "image_encoder.encoder.embeddings.patch_embedding.weight"},
    {"vision_tower.embeddings.patch_embeddings.projection.bias", "image_encoder.encoder.embeddings.patch_embedding.bias"},
    {"vision_tower.embeddings.position_embeddings", "image_encoder.encoder.embeddings.position_embedding"},
    {"multi_modal_projector.layer_norm.weight", "image_encoder.projector.norm.weight"},
    {"multi_modal_projector.layer_norm.bias", "image_encoder.projector.norm.bias"},
    {"multi_modal_projector.linear_1.weight", "image_encoder.projector.linear_fc1.weight"},
    {"multi_modal_projector.linear_1.bias", "image_encoder.projector.linear_fc1.bias"},
    {"multi_modal_projector.linear_2.weight", "image_encoder.projector.linear_fc2.weight"},
    {"multi_modal_projector.linear_2.bias", "image_encoder.projector.linear_fc2.bias"},
    {"language_model.model.embed_tokens.weight", "text_decoder.embedding.word_embeddings.weight"},
    {"language_model.model.norm.weight", "text_decoder.decoder.final_layernorm.weight"},
    {"language_model.lm_head.weight", "text_decoder.output_layer.weight"}};
const std::map<std::string, std::string> kMmVisionLayer = {
    {"attention.projection_layer.weight", "self_attention.linear_proj.weight"},
    {"attention.projection_layer.bias", "self_attention.linear_proj.bias"},
    {"attention.q_norm.weight", "self_attention.q_layernorm.weight"},
    {"attention.k_norm.weight", "self_attention.k_layernorm.weight"},
    {"layernorm_before.weight", "input_layernorm.weight"},
    {"layernorm_before.bias", "input_layernorm.bias"},
    {"layernorm_after.weight", "pre_mlp_layernorm.weight"},
    {"layernorm_after.bias", "pre_mlp_layernorm.bias"},
    {"lambda_1", "ls1"},
    {"lambda_2", "ls2"},
    {"mlp.fc1.weight", "mlp.linear_fc1.weight"},
    {"mlp.fc1.bias", "mlp.linear_fc1.bias"},
    {"mlp.fc2.weight", "mlp.linear_fc2.weight"},
    {"mlp.fc2.bias", "mlp.linear_fc2.bias"}};
const std::map<std::string, std::string> kMmTextLayer = {{"input_layernorm.weight", "input_layernorm.weight"},
                                                         {"post_attention_layernorm.weight", "pre_mlp_layernorm.weight"},
                                                         {"self_attn.o_proj.weight", "self_attention.linear_proj.weight"},
                                                         {"self_attn.o_proj.bias", "self_attention.linear_proj.bias"},
                                                         {"mlp.down_proj.weight", "mlp.linear_fc2.weight"}};

const std::string kCustomVisionPrefix = "vision_model.encoder.layers.";
const std::string kMmVisionPrefix = "image_encoder.encoder.encoder.layers.";
const std::string kMmTextPrefix = "text_decoder.decoder.layers.";

// The name of a 1:1-renamed canonical tensor in naming n ("" when the naming fuses it with others).
std::string renamed(const std::string &canon, Naming n) {
  const Parts p = parts_of(canon);
  const std::string L = std::to_string(p.layer) + ".";
  auto lookup = [](const std::map<std::string, std::string> &m, const std::string &k) {
    auto it = m.find(k);
    return it == m.end() ? std::string() : it->second;
  };
  switch (n) {
    case Naming::Hf: return canon;
    case Naming::HfInMemory:
      if (canon == "language_model.lm_head.weight") return "lm_head.weight";
      if (canon.rfind("language_model.model.", 0) == 0) return "model.language_model." + canon.substr(21);
      return "model." + canon;
    case Naming::Custom:
    case Naming::CustomInternLM2:
      if (p.where == Parts::Vision) {
        const std::string r = lookup(kCustomVisionLayer, p.rest);
        return r.empty() ? r : kCustomVisionPrefix + L + r;
      }
      if (p.where == Parts::Top && p.rest.rfind("language_model.", 0) != 0) return lookup(kCustomTop, canon);
      if (n == Naming::Custom) return canon;
      if (p.where == Parts::Text) {
        const std::string r = lookup(kInternLM2Layer, p.rest);
        return r.empty() ? r : "language_model.model.layers." + L + r;
      }
      if (canon == "language_model.model.embed_tokens.weight") return "language_model.model.tok_embeddings.weight";
      if (canon == "language_model.lm_head.weight") return "language_model.output.weight";
      return canon;  // language_model.model.norm.weight
    case Naming::Mm:
      if (p.where == Parts::Vision) {
        const std::string r = lookup(kMmVisionLayer, p.rest);
        return r.empty() ? r : kMmVisionPrefix + L + r;
      }
      if (p.where == Parts::Text) {
        const std::string r = lookup(kMmTextLayer, p.rest);
        return r.empty() ? r : kMmTextPrefix + L + r;
      }
      return lookup(kMmTop, canon);
  }
  return "";
}

ckh_tensor_annot_t annot_of(const Tensor &t, int32_t parallel = CKH_PARALLEL_UNSTATED, const char *extra = nullptr) {
  ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
  a.init = t.init;
  a.kind = t.kind;
  a.stack = t.stack;
  a.parallel = parallel;
  a.extra_json = extra;
  a.expert = t.expert;
  return a;
}

// MindSpeed-MM's merged experts of layer `base` ("language_model.model.layers.L."): the two names.
std::string merged_name(const std::string &base, bool gate_up) { return base + (gate_up ? "mlp.experts.gate_up_proj" : "mlp.experts.down_proj"); }

std::vector<int64_t> shape_in(const ckh::sdk::Builder &b, const std::string &n) {
  const int64_t i = b.find(n);
  return i < 0 ? std::vector<int64_t>() : ckh::plugins::model::shape_of(b.input_info(static_cast<uint64_t>(i)));
}

}  // namespace

Naming detect_naming(const ckh::sdk::Builder &b) {
  if (b.has("vision_tower.embeddings.cls_token")) return Naming::Hf;
  if (b.has("model.vision_tower.embeddings.cls_token")) return Naming::HfInMemory;
  if (b.has("image_encoder.encoder.embeddings.class_embedding")) return Naming::Mm;
  if (b.has("vision_model.embeddings.class_embedding"))
    return b.has("language_model.model.tok_embeddings.weight") ? Naming::CustomInternLM2 : Naming::Custom;
  fail(CKH_E_FORMAT, "InternVL: the checkpoint has none of vision_tower.embeddings.cls_token (transformers), "
                     "vision_model.embeddings.class_embedding (InternVL chat) or image_encoder.encoder.embeddings.class_embedding "
                     "(MindSpeed-MM)");
}

std::vector<Value> read_canonical(ckh::sdk::Builder &b, const Config &c, Naming n) {
  if (n == Naming::CustomInternLM2 && c.llm == "qwen2")
    fail(CKH_E_FORMAT, "InternVL: InternLM2 tensor names (tok_embeddings, attention.wqkv) with a Qwen2 llm_config");
  const std::vector<Tensor> ts = canonical_tensors(c);
  std::vector<std::string> missing;
  // Each source tensor once: its expected shape checked, its expression made.
  std::map<std::string, ckh_expr> got;
  auto src = [&](const std::string &name, const std::vector<int64_t> &want) -> bool {
    if (got.count(name)) return true;
    const int64_t i = b.find(name);
    if (i < 0) {
      if (std::find(missing.begin(), missing.end(), name) == missing.end()) missing.push_back(name);
      return false;
    }
    ckh::plugins::model::check_shape(name, shape_in(b, name), want);
    got[name] = b.input(name);
    return true;
  };
  const int64_t W = c.v_width, H = c.hidden;
  const ckh::plugins::gqa::Dims d{c.heads, c.kv_heads, c.head_dim, H};
  const int64_t fused_rows = (c.heads + 2 * c.kv_heads) * c.head_dim;
  if (n == Naming::Mm && c.llm.rfind("qwen3", 0) == 0)
    fail(CKH_E_UNSUPPORTED, "InternVL with a " + c.llm + " language model (InternVL3.5) in MindSpeed-MM's Megatron layout: its "
                            "InternVLConverter has no such branch (MindSpeed-MM trains InternVL3.5 with FSDP2: --to dcp --dcp-layout mindspeed)");
  std::vector<Value> out;
  for (const Tensor &t : ts) {
    const Parts p = parts_of(t.name);
    const std::string L = std::to_string(p.layer) + ".";
    if (t.expert >= 0 && n != Naming::Mm) {
      // Per expert, or stacked as MindSpeed-MM's ExpertMergeDcpConverter does ([E, H, 2I] / [E, I, H], or viewed 2-D).
      const std::string base = t.name.substr(0, t.name.size() - p.rest.size());
      const bool down = p.rest.find(".down_proj.") != std::string::npos, gate = p.rest.find(".gate_proj.") != std::string::npos;
      const std::string m = merged_name(base, !down);
      if (b.find(t.name) < 0 && b.find(m) >= 0) {
        const int64_t E = c.experts, I = c.moe_inter, H = c.hidden;
        const std::vector<int64_t> s3 = down ? std::vector<int64_t>{E, I, H} : std::vector<int64_t>{E, H, 2 * I};
        const std::vector<int64_t> have = shape_in(b, m), s2 = {s3[0] * s3[1], s3[2]};
        if (have != s3 && have != s2)
          fail(CKH_E_FORMAT, "tensor '" + m + "': config.json implies shape " + ckh::plugins::model::shape_str(s3) + " (or " +
                                 ckh::plugins::model::shape_str(s2) + " viewed 2-D), checkpoint has " + ckh::plugins::model::shape_str(have));
        if (!got.count(m)) got[m] = b.permute(b.reshape(b.input(m), s3), {0, 2, 1});  // [E, 2I, H] / [E, H, I]
        const ckh_expr one_e = b.slice(got[m], 0, t.expert, 1);
        const ckh_expr x = down ? one_e : b.slice(one_e, 1, gate ? 0 : I, I);
        out.push_back({t, b.reshape(x, t.shape)});
        continue;
      }
    }
    const std::string one = renamed(t.name, n);
    if (!one.empty()) {
      if (src(one, t.shape)) out.push_back({t, got[one]});
      continue;
    }
    // Fused in this naming: the vision q/k/v as [Q; K; V], the LLM's q/k/v per query group (InternLM2's wqkv,
    // MindSpeed-MM's linear_qkv), MindSpeed-MM's [gate; up].
    const bool w = t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
    const std::string s = w ? "weight" : "bias";
    if (p.where == Parts::Vision) {
      const std::string fused = (n == Naming::Mm ? kMmVisionPrefix + L + "self_attention.linear_qkv." : kCustomVisionPrefix + L + "attn.qkv.") + s;
      if (!src(fused, w ? std::vector<int64_t>{3 * W, W} : std::vector<int64_t>{3 * W})) continue;
      const int64_t k = p.rest[10] == 'q' ? 0 : p.rest[10] == 'k' ? 1 : 2;  // "attention.<x>_proj.*"
      out.push_back({t, b.slice(got[fused], 0, k * W, W)});
      continue;
    }
    if (p.where == Parts::Text && p.rest.rfind("self_attn.", 0) == 0) {
      const std::string fused = n == Naming::Mm ? kMmTextPrefix + L + "self_attention.linear_qkv." + s
                                                : "language_model.model.layers." + L + "attention.wqkv." + s;
      if (!src(fused, w ? std::vector<int64_t>{fused_rows, H} : std::vector<int64_t>{fused_rows})) continue;
      const auto qkv = ckh::plugins::gqa::split(b, got[fused], d, w);
      const char x = p.rest[10];
      out.push_back({t, x == 'q' ? qkv.q : x == 'k' ? qkv.k : qkv.v});
      continue;
    }
    if (n == Naming::Mm && p.where == Parts::Text && (p.rest == "mlp.gate_proj.weight" || p.rest == "mlp.up_proj.weight")) {
      const std::string fused = kMmTextPrefix + L + "mlp.linear_fc1.weight";
      if (!src(fused, {2 * c.inter, H})) continue;
      out.push_back({t, b.slice(got[fused], 0, p.rest == "mlp.gate_proj.weight" ? 0 : c.inter, c.inter)});
      continue;
    }
    fail(CKH_E_INTERNAL, "InternVL: no " + std::string(naming_name(n)) + " name for " + t.name);
  }
  ckh::plugins::model::check_missing(missing);
  return out;
}

void write_named(ckh::sdk::Builder &b, const Config &c, Naming n, const std::vector<Value> &v, bool merged_experts) {
  if (merged_experts && c.experts == 0) fail(CKH_E_INVALID_ARG, "--internvl-experts merged: this InternVL has no MoE layers");
  if (n == Naming::CustomInternLM2 && c.llm == "qwen2")
    fail(CKH_E_INVALID_ARG, "--internvl-names custom-internlm2: InternLM2 names need a llama language model, this one is qwen2");
  const ckh::plugins::gqa::Dims d{c.heads, c.kv_heads, c.head_dim, c.hidden};
  std::map<std::string, const Value *> by;
  for (const Value &x : v) by[x.t.name] = &x;
  for (const Value &x : v) {
    const Parts p = parts_of(x.t.name);
    const std::string L = std::to_string(p.layer) + ".";
    if (merged_experts && x.t.expert >= 0) {
      // At expert 0's gate: the layer's stacks, [E, H, 2I] = stack_e([gate_e; up_e]^T) and [E, I, H] = stack_e(down_e^T).
      if (x.t.expert != 0 || p.rest.find(".gate_proj.") == std::string::npos) continue;
      const std::string base = x.t.name.substr(0, x.t.name.size() - p.rest.size());
      const int64_t E = c.experts, I = c.moe_inter, H = c.hidden;
      std::vector<ckh_expr> gu, dn;
      for (int64_t e = 0; e < E; ++e) {
        const std::string ex = base + "mlp.experts." + std::to_string(e) + ".";
        gu.push_back(by.at(ex + "gate_proj.weight")->e);
        gu.push_back(by.at(ex + "up_proj.weight")->e);
        dn.push_back(by.at(ex + "down_proj.weight")->e);
      }
      Tensor t = x.t;
      t.expert = -1;
      t.kind = CKH_KIND_FFN_GATE_UP;
      t.shape = {E, H, 2 * I};
      ckh_tensor_annot_t a = annot_of(t);
      b.emit(merged_name(base, true), b.permute(b.reshape(b.concat(gu, 0), {E, 2 * I, H}), {0, 2, 1}), &a);
      t.kind = CKH_KIND_FFN_DOWN;
      t.shape = {E, I, H};
      a = annot_of(t);
      b.emit(merged_name(base, false), b.permute(b.reshape(b.concat(dn, 0), {E, H, I}), {0, 2, 1}), &a);
      continue;
    }
    const std::string one = renamed(x.t.name, n);
    if (!one.empty()) {
      const ckh_tensor_annot_t a = annot_of(x.t);
      b.emit(one, x.e, &a);
      continue;
    }
    // Fused tensors, emitted at their first part (q).
    if (p.rest.find("q_proj.") == std::string::npos) continue;
    const bool w = p.rest.size() > 7 && p.rest.compare(p.rest.size() - 7, 7, ".weight") == 0;
    const std::string s = w ? "weight" : "bias";
    const std::string base = x.t.name.substr(0, x.t.name.size() - p.rest.size());
    const std::string pre = p.where == Parts::Vision ? base + "attention." : base + "self_attn.";
    const ckh_expr q = by.at(pre + "q_proj." + s)->e, k = by.at(pre + "k_proj." + s)->e, vv = by.at(pre + "v_proj." + s)->e;
    Tensor t = x.t;
    t.kind = CKH_KIND_ATTN_QKV;
    const ckh_tensor_annot_t a = annot_of(t);
    if (p.where == Parts::Vision) b.emit(kCustomVisionPrefix + L + "attn.qkv." + s, b.concat({q, k, vv}, 0), &a);
    else b.emit("language_model.model.layers." + L + "attention.wqkv." + s, ckh::plugins::gqa::fuse(b, q, k, vv, d, w), &a);
  }
}

void write_mm(ckh::sdk::Builder &b, const Config &c, const std::vector<Value> &v) {
  if (c.llm.rfind("qwen3", 0) == 0)
    fail(CKH_E_UNSUPPORTED, "InternVL with a " + c.llm + " language model (InternVL3.5) in MindSpeed-MM's Megatron layout: its "
                            "InternVLConverter has no such branch (MindSpeed-MM trains InternVL3.5 with FSDP2: --to dcp --dcp-layout mindspeed)");
  if (!c.v_mean_pool || c.v_mask_token || !c.v_abs_pos)
    fail(CKH_E_UNSUPPORTED, "InternVL: a vision tower with a final layernorm, a mask token or no absolute position embedding has no "
                            "MindSpeed-MM names");
  const int32_t COL = CKH_PARALLEL_COLUMN, ROW = CKH_PARALLEL_ROW, REP = CKH_PARALLEL_REPLICATED, GLU = CKH_PARALLEL_SWIGLU;
  const int64_t hd = c.v_width / c.v_heads;
  // MindSpeed-MM's InternVL TP rules (create_internvl_tp_patterns): the ViT's [Q; K; V] split per head within
  // each third, and its linear_proj per head on dim 1, the first (heads % TP) ranks taking one head more
  // (UnalignedRowSplit / UnalignedColSplit: InternViT-6B has 25 heads); the vocabulary split likewise
  // (UnalignedEmbeddingSplit); everything else even, or replicated.
  const std::string qkv_split = R"({"split_parts":3,"split_unit":)" + std::to_string(hd) + R"(,"split_uneven":true})";
  const std::string proj_split = R"({"split_unit":)" + std::to_string(hd) + R"(,"split_uneven":true})";
  static const char *const kUnevenVocab = R"({"split_uneven":true})";
  const ckh::plugins::gqa::Dims d{c.heads, c.kv_heads, c.head_dim, c.hidden};
  std::map<std::string, const Value *> by;
  for (const Value &x : v) by[x.t.name] = &x;
  for (const Value &x : v) {
    const Parts p = parts_of(x.t.name);
    const std::string L = std::to_string(p.layer) + ".";
    const std::string one = renamed(x.t.name, Naming::Mm);
    auto emit = [&](const std::string &name, ckh_expr e, int32_t parallel, const char *extra = nullptr, int32_t kind = -1) {
      Tensor t = x.t;
      if (kind >= 0) t.kind = kind;
      const ckh_tensor_annot_t a = annot_of(t, parallel, extra);
      b.emit(name, e, &a);
    };
    if (!one.empty()) {
      int32_t par = REP;
      const char *extra = nullptr;
      if (x.t.kind == CKH_KIND_EMBEDDING || x.t.kind == CKH_KIND_OUTPUT) {
        par = CKH_PARALLEL_VOCAB;
        extra = kUnevenVocab;
      } else if (p.where == Parts::Vision && p.rest == "attention.projection_layer.weight") {
        par = ROW;
        extra = proj_split.c_str();
      } else if (p.where == Parts::Vision && (p.rest == "mlp.fc1.weight" || p.rest == "mlp.fc1.bias")) {
        par = COL;
      } else if ((p.where == Parts::Vision && p.rest == "mlp.fc2.weight") ||
                 (p.where == Parts::Text && (p.rest == "self_attn.o_proj.weight" || p.rest == "mlp.down_proj.weight"))) {
        par = ROW;
      }
      emit(one, x.e, par, extra);
      continue;
    }
    const bool w = p.rest.size() > 7 && p.rest.compare(p.rest.size() - 7, 7, ".weight") == 0;
    const std::string s = w ? "weight" : "bias";
    const std::string base = x.t.name.substr(0, x.t.name.size() - p.rest.size());
    if (p.where == Parts::Vision && p.rest.find("q_proj.") != std::string::npos) {
      const std::string pre = base + "attention.";
      emit(kMmVisionPrefix + L + "self_attention.linear_qkv." + s,
           b.concat({x.e, by.at(pre + "k_proj." + s)->e, by.at(pre + "v_proj." + s)->e}, 0), COL, qkv_split.c_str(), CKH_KIND_ATTN_QKV);
    } else if (p.where == Parts::Text && p.rest.find("q_proj.") != std::string::npos) {
      const std::string pre = base + "self_attn.";
      emit(kMmTextPrefix + L + "self_attention.linear_qkv." + s,
           ckh::plugins::gqa::fuse(b, x.e, by.at(pre + "k_proj." + s)->e, by.at(pre + "v_proj." + s)->e, d, w), COL, nullptr,
           CKH_KIND_ATTN_QKV);
    } else if (p.where == Parts::Text && p.rest == "mlp.gate_proj.weight") {
      emit(kMmTextPrefix + L + "mlp.linear_fc1.weight", b.concat({x.e, by.at(base + "mlp.up_proj.weight")->e}, 0), GLU, nullptr,
           CKH_KIND_FFN_GATE_UP);
    }
  }
}

std::string mm_reader_hints() {
  // Every linear_fc1 of the LLM is [gate; up]; the ViT's and the projector's are plain. The ViT's linear_qkv
  // shards are each [Q_r; K_r; V_r]: thirds of every shard make the global [Q; K; V].
  return json{{"gated_mlp", true},
              {"ungated_prefixes", {"image_encoder."}},
              {"replicated_prefixes", {"image_encoder.projector."}},
              {"split_parts", {{{"prefix", kMmVisionPrefix}, {"contains", ".self_attention.linear_qkv."}, {"parts", 3}}}}}
      .dump();
}

}  // namespace ckh::internvl
