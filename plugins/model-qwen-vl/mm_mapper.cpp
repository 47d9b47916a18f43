// mm_mapper.cpp — Qwen2-VL / Qwen2.5-VL in MindSpeed-MM's names (checkpoint/vlm_model/converters/qwen2vl.py
// and qwen2_5vl.py, default non-canonical mode):
//   visual.patch_embed.proj            -> image_encoder.encoder.patch_embed.proj
//   visual.blocks.N.norm1 / norm2      -> image_encoder.encoder.blocks.layers.N.input_layernorm / pre_mlp_layernorm
//   visual.blocks.N.attn.qkv           -> ...self_attention.linear_qkv, [Q; K; V] regrouped per head [q_h; k_h; v_h]
//   visual.blocks.N.attn.proj          -> ...self_attention.linear_proj
//   visual.blocks.N.mlp gate/up + down -> ...mlp.linear_fc1 = [gate; up] (Qwen2-VL: fc1) and linear_fc2
//   visual.merger.ln_q / mlp.0 / mlp.2 -> image_encoder.projector.layernorm / encoder.linear_fc1 / encoder.linear_fc2
//   model.embed_tokens                 -> text_decoder.embedding.word_embeddings
//   model.layers.N.*                   -> text_decoder.decoder.layers.N.* (q/k/v fused per query group, [gate; up])
//   model.norm, lm_head                -> text_decoder.decoder.final_layernorm, text_decoder.output_layer
// Every tensor carries its TP split (MindSpeed-MM's split_by_tp: dim 0 for qkv, fc1 and the embeddings, dim 1 for
// linear_proj and fc2, [gate; up] halves split separately, the rest replicated) and its pipeline place: the tower is
// stack 1 (patch embedding with its first layer, projector with its last), the decoder stack 0.
#include "mm_mapper.hpp"

#include <string>
#include <vector>

#include "gqa_qkv.hpp"
#include "vit_qkv.hpp"
#include "qwen_vl_config.hpp"

using nlohmann::json;

namespace ckh::qwen_vl {

namespace {

ckh_tensor_annot_t annot(int32_t role, int32_t layer, int32_t stack, int32_t parallel, int32_t kind,
                         const char *extra = nullptr) {
  ckh_tensor_annot_t a = ckh::sdk::annot(role, layer);
  a.stack = stack;
  a.parallel = parallel;
  a.kind = kind;
  a.extra_json = extra;
  return a;
}

}  // namespace

void map_hf_to_mm(const json &meta, ckh::sdk::Builder &b) {
  const json cfg = meta.value("config", json::object());
  Config c;
  try {
    c = parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    ckh::sdk::fail(CKH_E_FORMAT, e.what());
  }
  auto in = [&](const std::string &n) { return b.input(n); };
  auto emit = [&](const std::string &name, ckh_expr e, const ckh_tensor_annot_t &a) { b.emit(name, e, &a); };
  const int32_t COL = CKH_PARALLEL_COLUMN, ROW = CKH_PARALLEL_ROW, REP = CKH_PARALLEL_REPLICATED, GLU = CKH_PARALLEL_SWIGLU;

  // Vision tower. The fused qkv is regrouped per head, so a TP part must hold whole heads: the writer
  // checks the split unit (3 x head_dim rows) stated with it.
  const int64_t W = c.v_width, hd = W / c.v_heads;
  const std::string unit = "{\"split_unit\":" + std::to_string(3 * hd) + "}";
  emit("image_encoder.encoder.patch_embed.proj.weight", in("visual.patch_embed.proj.weight"),
       annot(CKH_ROLE_EMBEDDING, -1, 1, REP, CKH_KIND_OTHER));
  for (int64_t l = 0; l < c.v_depth; ++l) {
    const std::string h = "visual.blocks." + std::to_string(l) + ".";
    const std::string m = "image_encoder.encoder.blocks.layers." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    const auto lay = [&](int32_t parallel, int32_t kind, const char *extra = nullptr) {
      return annot(CKH_ROLE_LAYER, L, 1, parallel, kind, extra);
    };
    const std::vector<std::string> norm_parts = c.v25 ? std::vector<std::string>{"weight"} : std::vector<std::string>{"weight", "bias"};
    for (const std::string &s : norm_parts) {
      emit(m + "input_layernorm." + s, in(h + "norm1." + s), lay(REP, CKH_KIND_NORM));
      emit(m + "pre_mlp_layernorm." + s, in(h + "norm2." + s), lay(REP, CKH_KIND_NORM));
    }
    // [Q; K; V] (each W rows) -> per head [q_h; k_h; v_h]: view [3, heads, hd(, W)], swap the first two axes.
    const ckh_expr qw = qkv_per_head(b, in(h + "attn.qkv.weight"), c.v_heads, W, true);
    const ckh_expr qb = qkv_per_head(b, in(h + "attn.qkv.bias"), c.v_heads, W, false);
    emit(m + "self_attention.linear_qkv.weight", qw, lay(COL, CKH_KIND_ATTN_QKV, unit.c_str()));
    emit(m + "self_attention.linear_qkv.bias", qb, lay(COL, CKH_KIND_ATTN_QKV, unit.c_str()));
    emit(m + "self_attention.linear_proj.weight", in(h + "attn.proj.weight"), lay(ROW, CKH_KIND_ATTN_OUT));
    emit(m + "self_attention.linear_proj.bias", in(h + "attn.proj.bias"), lay(REP, CKH_KIND_ATTN_OUT));
    if (c.v25) {
      for (const char *s : {"weight", "bias"})
        emit(m + "mlp.linear_fc1." + s, b.concat({in(h + "mlp.gate_proj." + s), in(h + "mlp.up_proj." + s)}, 0),
             lay(GLU, CKH_KIND_FFN_GATE_UP));
      emit(m + "mlp.linear_fc2.weight", in(h + "mlp.down_proj.weight"), lay(ROW, CKH_KIND_FFN_DOWN));
      emit(m + "mlp.linear_fc2.bias", in(h + "mlp.down_proj.bias"), lay(REP, CKH_KIND_FFN_DOWN));
    } else {
      emit(m + "mlp.linear_fc1.weight", in(h + "mlp.fc1.weight"), lay(COL, CKH_KIND_FFN_UP));
      emit(m + "mlp.linear_fc1.bias", in(h + "mlp.fc1.bias"), lay(COL, CKH_KIND_FFN_UP));
      emit(m + "mlp.linear_fc2.weight", in(h + "mlp.fc2.weight"), lay(ROW, CKH_KIND_FFN_DOWN));
      emit(m + "mlp.linear_fc2.bias", in(h + "mlp.fc2.bias"), lay(REP, CKH_KIND_FFN_DOWN));
    }
  }
  const auto proj = [&](int32_t parallel, int32_t kind) { return annot(CKH_ROLE_OUTPUT, -1, 1, parallel, kind); };
  emit("image_encoder.projector.layernorm.weight", in("visual.merger.ln_q.weight"), proj(REP, CKH_KIND_NORM));
  if (!c.v25) emit("image_encoder.projector.layernorm.bias", in("visual.merger.ln_q.bias"), proj(REP, CKH_KIND_NORM));
  emit("image_encoder.projector.encoder.linear_fc1.weight", in("visual.merger.mlp.0.weight"), proj(COL, CKH_KIND_OTHER));
  emit("image_encoder.projector.encoder.linear_fc1.bias", in("visual.merger.mlp.0.bias"), proj(COL, CKH_KIND_OTHER));
  emit("image_encoder.projector.encoder.linear_fc2.weight", in("visual.merger.mlp.2.weight"), proj(ROW, CKH_KIND_OTHER));
  emit("image_encoder.projector.encoder.linear_fc2.bias", in("visual.merger.mlp.2.bias"), proj(REP, CKH_KIND_OTHER));

  // Text decoder (Qwen2): q/k/v fused per query group as Megatron-Core does.
  const ckh::plugins::gqa::Dims d{c.heads, c.kv_heads, c.head_dim, c.hidden};
  emit("text_decoder.embedding.word_embeddings.weight", in("model.embed_tokens.weight"),
       annot(CKH_ROLE_EMBEDDING, -1, 0, CKH_PARALLEL_VOCAB, CKH_KIND_EMBEDDING));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".";
    const std::string m = "text_decoder.decoder.layers." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    const auto lay = [&](int32_t parallel, int32_t kind) { return annot(CKH_ROLE_LAYER, L, 0, parallel, kind); };
    emit(m + "input_layernorm.weight", in(h + "input_layernorm.weight"), lay(REP, CKH_KIND_NORM));
    const std::string a = h + "self_attn.";
    emit(m + "self_attention.linear_qkv.weight",
         ckh::plugins::gqa::fuse(b, in(a + "q_proj.weight"), in(a + "k_proj.weight"), in(a + "v_proj.weight"), d, true),
         lay(COL, CKH_KIND_ATTN_QKV));
    emit(m + "self_attention.linear_qkv.bias",
         ckh::plugins::gqa::fuse(b, in(a + "q_proj.bias"), in(a + "k_proj.bias"), in(a + "v_proj.bias"), d, false),
         lay(COL, CKH_KIND_ATTN_QKV));
    emit(m + "self_attention.linear_proj.weight", in(a + "o_proj.weight"), lay(ROW, CKH_KIND_ATTN_OUT));
    emit(m + "pre_mlp_layernorm.weight", in(h + "post_attention_layernorm.weight"), lay(REP, CKH_KIND_NORM));
    emit(m + "mlp.linear_fc1.weight", b.concat({in(h + "mlp.gate_proj.weight"), in(h + "mlp.up_proj.weight")}, 0),
         lay(GLU, CKH_KIND_FFN_GATE_UP));
    emit(m + "mlp.linear_fc2.weight", in(h + "mlp.down_proj.weight"), lay(ROW, CKH_KIND_FFN_DOWN));
  }
  emit("text_decoder.decoder.final_layernorm.weight", in("model.norm.weight"),
       annot(CKH_ROLE_FINAL_NORM, -1, 0, REP, CKH_KIND_NORM));
  if (!c.tied)
    emit("text_decoder.output_layer.weight", in("lm_head.weight"), annot(CKH_ROLE_OUTPUT, -1, 0, CKH_PARALLEL_VOCAB, CKH_KIND_OUTPUT));
  else if (b.find("lm_head.weight") >= 0)
    b.ignore("lm_head.weight", "tie_word_embeddings: the output layer is the word embedding");

  // What the rank layout needs to know of the model (the writer places and splits; it names no model).
  json out = meta;
  out["layout"] = "mindspeed-mm";
  out["args"] = {{"num_layers", c.layers},
                 {"num_attention_heads", c.heads},
                 {"num_query_groups", c.kv_heads},
                 {"hidden_size", c.hidden},
                 {"untie_embeddings_and_output_weights", !c.tied}};
  b.set_metadata(out.dump());
}

std::string mm_reader_hints(const json &meta) {
  Config c;
  try {
    c = parse_config(meta.value("config", json::object()));
  } catch (const std::invalid_argument &e) {
    ckh::sdk::fail(CKH_E_FORMAT, std::string(e.what()) + " (a MindSpeed-MM checkpoint needs the model's HF config.json: its "
                                                        "hf/ directory or --hf-config)");
  }
  json ungated = json::array({"image_encoder.projector."});
  if (!c.v25) ungated.push_back("image_encoder.encoder.");  // Qwen2-VL's ViT MLP is fc1/fc2
  return json{{"gated_mlp", true}, {"ungated_prefixes", ungated}}.dump();
}

void map_mm_to_hf(const json &meta, ckh::sdk::Builder &b) {
  const json cfg = meta.value("config", json::object());
  Config c;
  try {
    c = parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    ckh::sdk::fail(CKH_E_FORMAT, std::string(e.what()) + " (a MindSpeed-MM checkpoint needs the model's HF config.json: its "
                                                        "hf/ directory or --hf-config)");
  }
  auto in = [&](const std::string &n) {
    if (b.find(n) < 0) ckh::sdk::fail(CKH_E_FORMAT, "MindSpeed-MM checkpoint: tensor '" + n + "' is missing");
    return b.input(n);
  };
  auto out = [&](const std::string &n, ckh_expr e) { b.emit(n, e); };
  auto half = [&](ckh_expr e, int64_t rows, bool second) { return b.slice(e, 0, second ? rows : 0, rows); };
  const int64_t W = c.v_width;
  out("visual.patch_embed.proj.weight", in("image_encoder.encoder.patch_embed.proj.weight"));
  for (int64_t l = 0; l < c.v_depth; ++l) {
    const std::string h = "visual.blocks." + std::to_string(l) + ".";
    const std::string m = "image_encoder.encoder.blocks.layers." + std::to_string(l) + ".";
    const std::vector<std::string> norm_parts = c.v25 ? std::vector<std::string>{"weight"} : std::vector<std::string>{"weight", "bias"};
    for (const std::string &s : norm_parts) {
      out(h + "norm1." + s, in(m + "input_layernorm." + s));
      out(h + "norm2." + s, in(m + "pre_mlp_layernorm." + s));
    }
    // per head [q_h; k_h; v_h] -> [Q; K; V]
    out(h + "attn.qkv.weight",
        qkv_from_per_head(b, in(m + "self_attention.linear_qkv.weight"), c.v_heads, W, true));
    out(h + "attn.qkv.bias",
        qkv_from_per_head(b, in(m + "self_attention.linear_qkv.bias"), c.v_heads, W, false));
    out(h + "attn.proj.weight", in(m + "self_attention.linear_proj.weight"));
    out(h + "attn.proj.bias", in(m + "self_attention.linear_proj.bias"));
    if (c.v25) {
      for (const char *s : {"weight", "bias"}) {
        const ckh_expr fc1 = in(m + "mlp.linear_fc1." + s);
        out(h + "mlp.gate_proj." + s, half(fc1, c.v_inter, false));
        out(h + "mlp.up_proj." + s, half(fc1, c.v_inter, true));
        out(h + "mlp.down_proj." + s, in(m + "mlp.linear_fc2." + s));
      }
    } else {
      for (const char *s : {"weight", "bias"}) {
        out(h + "mlp.fc1." + s, in(m + "mlp.linear_fc1." + s));
        out(h + "mlp.fc2." + s, in(m + "mlp.linear_fc2." + s));
      }
    }
  }
  out("visual.merger.ln_q.weight", in("image_encoder.projector.layernorm.weight"));
  if (!c.v25) out("visual.merger.ln_q.bias", in("image_encoder.projector.layernorm.bias"));
  for (const char *s : {"weight", "bias"}) {
    out(std::string("visual.merger.mlp.0.") + s, in(std::string("image_encoder.projector.encoder.linear_fc1.") + s));
    out(std::string("visual.merger.mlp.2.") + s, in(std::string("image_encoder.projector.encoder.linear_fc2.") + s));
  }
  const ckh::plugins::gqa::Dims d{c.heads, c.kv_heads, c.head_dim, c.hidden};
  out("model.embed_tokens.weight", in("text_decoder.embedding.word_embeddings.weight"));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".";
    const std::string m = "text_decoder.decoder.layers." + std::to_string(l) + ".";
    out(h + "input_layernorm.weight", in(m + "input_layernorm.weight"));
    for (const char *s : {"weight", "bias"}) {
      const auto p = ckh::plugins::gqa::split(b, in(m + "self_attention.linear_qkv." + s), d, std::string(s) == "weight");
      out(h + "self_attn.q_proj." + s, p.q);
      out(h + "self_attn.k_proj." + s, p.k);
      out(h + "self_attn.v_proj." + s, p.v);
    }
    out(h + "self_attn.o_proj.weight", in(m + "self_attention.linear_proj.weight"));
    out(h + "post_attention_layernorm.weight", in(m + "pre_mlp_layernorm.weight"));
    const ckh_expr fc1 = in(m + "mlp.linear_fc1.weight");
    out(h + "mlp.gate_proj.weight", half(fc1, c.inter, false));
    out(h + "mlp.up_proj.weight", half(fc1, c.inter, true));
    out(h + "mlp.down_proj.weight", in(m + "mlp.linear_fc2.weight"));
  }
  out("model.norm.weight", in("text_decoder.decoder.final_layernorm.weight"));
  if (!c.tied) out("lm_head.weight", in("text_decoder.output_layer.weight"));
  else if (b.find("text_decoder.output_layer.weight") >= 0)
    b.ignore("text_decoder.output_layer.weight", "tie_word_embeddings: the last stage's copy of the word embedding");
  json o = meta;
  o["layout"] = "hf";
  o.erase("args");
  b.set_metadata(o.dump());
}

}  // namespace ckh::qwen_vl
