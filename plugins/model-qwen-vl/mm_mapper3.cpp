// mm_mapper3.cpp — Qwen3-VL / Qwen3-VL-MoE in MindSpeed-MM's Megatron names (checkpoint/vlm_model/converters/
// qwen3vl_megatron.py, Qwen3VLMegatronConverter):
//   model.visual.patch_embed.proj / pos_embed   -> image_encoder.encoder.patch_embed.proj / pos_embed (the tower's first stage)
//   model.visual.blocks.N.{norm1, norm2}         -> image_encoder.encoder.blocks.layers.N.{input_layernorm, pre_mlp_layernorm}
//   model.visual.blocks.N.attn.qkv              -> ...self_attention.linear_qkv, [Q; K; V] regrouped per head
//   model.visual.blocks.N.attn.proj / mlp.linear_fc1/2 -> ...self_attention.linear_proj / mlp.linear_fc1/2
//   model.visual.deepstack_merger_list.K.*       -> image_encoder.encoder.blocks.layers.<deepstack_visual_indexes[K]>.
//                                                   deepstack_layer.{layernorm, encoder.linear_fc1/2} (inside that block)
//   model.visual.merger.{norm, linear_fc1/2}     -> image_encoder.projector.{layernorm, encoder.linear_fc1/2} (last stage)
//   model.language_model.*                       -> text_decoder.* (q/k/v fused per query group, q_norm/k_norm ->
//                                                   self_attention.q_layernorm/k_layernorm, [gate; up], mlp.gate -> mlp.router,
//                                                   fused experts -> mlp.experts.local_experts.E.linear_fc1 = gate_up[E]^T
//                                                   ([gate; up] rows) and linear_fc2 = down[E]^T, in the released orientation)
// TP splits as qwen3_vl_tp_patterns: dim 0 for qkv, fc1 (deepstack and projector too) and the embeddings, dim 1 for
// linear_proj and fc2, [gate; up] halves for the decoder's fc1 and every expert's, the rest replicated.
#include "mm_mapper.hpp"

#include <string>
#include <vector>

#include "gqa_qkv.hpp"
#include "vit_qkv.hpp"
#include "qwen3_vl.hpp"

using nlohmann::json;

namespace ckh::qwen_vl {

namespace {

ckh_tensor_annot_t annot3(int32_t role, int32_t layer, int32_t stack, int32_t parallel, int32_t kind, const char *extra = nullptr,
                          int32_t expert = -1) {
  ckh_tensor_annot_t a = ckh::sdk::annot(role, layer);
  a.stack = stack;
  a.parallel = parallel;
  a.kind = kind;
  a.extra_json = extra;
  if (expert >= 0) {
    a.expert = expert;
    a.group = CKH_GROUP_ETP;  // whole experts per EP rank, split inside over TP (MindSpeed-MM's ETP = TP)
  }
  return a;
}

Config3 config3_or_fail(const json &meta, const char *hint) {
  try {
    return parse_config3(meta.value("config", json::object()));
  } catch (const std::invalid_argument &e) {
    ckh::sdk::fail(CKH_E_FORMAT, std::string(e.what()) + hint);
  }
}

const char *const kNeedConfig = " (a MindSpeed-MM checkpoint needs the model's HF config.json: its hf/ directory or --hf-config)";

// Orientation of a checkpoint's fused experts: transformers 5's [E, 2I, H] (true) or the released [E, H, 2I] (false).
bool experts_canonical(const ckh::sdk::Builder &b, const Config3 &c, const std::string &name, bool gate_up) {
  const std::vector<int64_t> have = ckh::plugins::model::shape_of(b.input_info(static_cast<uint64_t>(b.find(name))));
  const int64_t E = c.experts, H = c.hidden, F = gate_up ? 2 * c.moe_inter : c.moe_inter;
  const std::vector<int64_t> canon = gate_up ? std::vector<int64_t>{E, F, H} : std::vector<int64_t>{E, H, F};
  const std::vector<int64_t> released = {canon[0], canon[2], canon[1]};
  if (canon == released)
    ckh::sdk::fail(CKH_E_UNSUPPORTED, "tensor '" + name + "' " + ckh::plugins::model::shape_str(have) +
                                          ": its two orientations have the same shape, so which one the file holds cannot be told");
  if (have == canon) return true;
  if (have == released) return false;
  ckh::sdk::fail(CKH_E_FORMAT, "tensor '" + name + "': config.json implies shape " + ckh::plugins::model::shape_str(canon) + " or " +
                                   ckh::plugins::model::shape_str(released) + ", checkpoint has " + ckh::plugins::model::shape_str(have));
}

}  // namespace

void map_hf_to_mm3(const json &meta, ckh::sdk::Builder &b) {
  const Config3 c = config3_or_fail(meta, "");
  if (c.attn_bias) ckh::sdk::fail(CKH_E_UNSUPPORTED, "Qwen3-VL with attention_bias: Qwen3VLMegatronConverter fuses no q/k/v biases");
  auto in = [&](const std::string &n) { return b.input(n); };
  auto emit = [&](const std::string &name, ckh_expr e, const ckh_tensor_annot_t &a) { b.emit(name, e, &a); };
  const int32_t COL = CKH_PARALLEL_COLUMN, ROW = CKH_PARALLEL_ROW, REP = CKH_PARALLEL_REPLICATED, GLU = CKH_PARALLEL_SWIGLU;
  const int64_t W = c.v_width, hd = W / c.v_heads;
  const std::string unit = "{\"split_unit\":" + std::to_string(3 * hd) + "}";
  const std::string v = "model.visual.", ie = "image_encoder.encoder.";
  const auto first = [&](int32_t kind) { return annot3(CKH_ROLE_EMBEDDING, -1, 1, REP, kind); };
  for (const char *s : {"weight", "bias"}) emit(ie + "patch_embed.proj." + s, in(v + "patch_embed.proj." + s), first(CKH_KIND_OTHER));
  emit(ie + "pos_embed.weight", in(v + "pos_embed.weight"), first(CKH_KIND_OTHER));
  for (int64_t l = 0; l < c.v_depth; ++l) {
    const std::string h = v + "blocks." + std::to_string(l) + ".", m = ie + "blocks.layers." + std::to_string(l) + ".";
    const auto lay = [&](int32_t par, int32_t kind, const char *extra = nullptr) {
      return annot3(CKH_ROLE_LAYER, static_cast<int32_t>(l), 1, par, kind, extra);
    };
    for (const char *s : {"weight", "bias"}) {
      emit(m + "input_layernorm." + s, in(h + "norm1." + s), lay(REP, CKH_KIND_NORM));
      emit(m + "pre_mlp_layernorm." + s, in(h + "norm2." + s), lay(REP, CKH_KIND_NORM));
    }
    emit(m + "self_attention.linear_qkv.weight",
         qkv_per_head(b, in(h + "attn.qkv.weight"), c.v_heads, W, true),
         lay(COL, CKH_KIND_ATTN_QKV, unit.c_str()));
    emit(m + "self_attention.linear_qkv.bias", qkv_per_head(b, in(h + "attn.qkv.bias"), c.v_heads, W, false),
         lay(COL, CKH_KIND_ATTN_QKV, unit.c_str()));
    emit(m + "self_attention.linear_proj.weight", in(h + "attn.proj.weight"), lay(ROW, CKH_KIND_ATTN_OUT));
    emit(m + "self_attention.linear_proj.bias", in(h + "attn.proj.bias"), lay(REP, CKH_KIND_ATTN_OUT));
    for (const char *s : {"weight", "bias"}) emit(m + "mlp.linear_fc1." + s, in(h + "mlp.linear_fc1." + s), lay(COL, CKH_KIND_FFN_UP));
    emit(m + "mlp.linear_fc2.weight", in(h + "mlp.linear_fc2.weight"), lay(ROW, CKH_KIND_FFN_DOWN));
    emit(m + "mlp.linear_fc2.bias", in(h + "mlp.linear_fc2.bias"), lay(REP, CKH_KIND_FFN_DOWN));
  }
  // Deepstack mergers inside the block whose output they take: they follow its pipeline place.
  for (size_t k = 0; k < c.deepstack.size(); ++k) {
    const int32_t L = static_cast<int32_t>(c.deepstack[k]);
    const std::string h = v + "deepstack_merger_list." + std::to_string(k) + ".";
    const std::string m = ie + "blocks.layers." + std::to_string(L) + ".deepstack_layer.";
    const auto lay = [&](int32_t par, int32_t kind) { return annot3(CKH_ROLE_LAYER, L, 1, par, kind); };
    for (const char *s : {"weight", "bias"}) {
      emit(m + "layernorm." + s, in(h + "norm." + s), lay(REP, CKH_KIND_NORM));
      emit(m + "encoder.linear_fc1." + s, in(h + "linear_fc1." + s), lay(COL, CKH_KIND_OTHER));
    }
    emit(m + "encoder.linear_fc2.weight", in(h + "linear_fc2.weight"), lay(ROW, CKH_KIND_OTHER));
    emit(m + "encoder.linear_fc2.bias", in(h + "linear_fc2.bias"), lay(REP, CKH_KIND_OTHER));
  }
  const auto proj = [&](int32_t par, int32_t kind) { return annot3(CKH_ROLE_OUTPUT, -1, 1, par, kind); };
  for (const char *s : {"weight", "bias"}) {
    emit(std::string("image_encoder.projector.layernorm.") + s, in(v + "merger.norm." + s), proj(REP, CKH_KIND_NORM));
    emit(std::string("image_encoder.projector.encoder.linear_fc1.") + s, in(v + "merger.linear_fc1." + s), proj(COL, CKH_KIND_OTHER));
  }
  emit("image_encoder.projector.encoder.linear_fc2.weight", in(v + "merger.linear_fc2.weight"), proj(ROW, CKH_KIND_OTHER));
  emit("image_encoder.projector.encoder.linear_fc2.bias", in(v + "merger.linear_fc2.bias"), proj(REP, CKH_KIND_OTHER));

  // Text decoder (Qwen3 / Qwen3-MoE).
  const std::string t = "model.language_model.", td = "text_decoder.decoder.layers.";
  const ckh::plugins::gqa::Dims d{c.heads, c.kv_heads, c.head_dim, c.hidden};
  emit("text_decoder.embedding.word_embeddings.weight", in(t + "embed_tokens.weight"),
       annot3(CKH_ROLE_EMBEDDING, -1, 0, CKH_PARALLEL_VOCAB, CKH_KIND_EMBEDDING));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string h = t + "layers." + std::to_string(l) + ".", m = td + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    const auto lay = [&](int32_t par, int32_t kind, int32_t expert = -1) { return annot3(CKH_ROLE_LAYER, L, 0, par, kind, nullptr, expert); };
    emit(m + "input_layernorm.weight", in(h + "input_layernorm.weight"), lay(REP, CKH_KIND_NORM));
    emit(m + "self_attention.linear_qkv.weight",
         ckh::plugins::gqa::fuse(b, in(h + "self_attn.q_proj.weight"), in(h + "self_attn.k_proj.weight"), in(h + "self_attn.v_proj.weight"), d, true),
         lay(COL, CKH_KIND_ATTN_QKV));
    emit(m + "self_attention.linear_proj.weight", in(h + "self_attn.o_proj.weight"), lay(ROW, CKH_KIND_ATTN_OUT));
    emit(m + "self_attention.q_layernorm.weight", in(h + "self_attn.q_norm.weight"), lay(REP, CKH_KIND_NORM));
    emit(m + "self_attention.k_layernorm.weight", in(h + "self_attn.k_norm.weight"), lay(REP, CKH_KIND_NORM));
    emit(m + "pre_mlp_layernorm.weight", in(h + "post_attention_layernorm.weight"), lay(REP, CKH_KIND_NORM));
    if (c.moe_layer(l)) {
      emit(m + "mlp.router.weight", in(h + "mlp.gate.weight"), lay(REP, CKH_KIND_ROUTER));
      const std::string gu = h + "mlp.experts.gate_up_proj", dn = h + "mlp.experts.down_proj";
      // Per expert [2I, H] ([gate; up] rows) and [H, I], whichever orientation the file holds.
      const bool gu_canon = experts_canonical(b, c, gu, true), dn_canon = experts_canonical(b, c, dn, false);
      const ckh_expr gux = gu_canon ? in(gu) : b.permute(in(gu), {0, 2, 1});
      const ckh_expr dnx = dn_canon ? in(dn) : b.permute(in(dn), {0, 2, 1});
      for (int64_t e = 0; e < c.experts; ++e) {
        const std::string x = m + "mlp.experts.local_experts." + std::to_string(e) + ".";
        const int32_t E = static_cast<int32_t>(e);
        emit(x + "linear_fc1.weight", b.reshape(b.slice(gux, 0, e, 1), {2 * c.moe_inter, c.hidden}), lay(GLU, CKH_KIND_FFN_GATE_UP, E));
        emit(x + "linear_fc2.weight", b.reshape(b.slice(dnx, 0, e, 1), {c.hidden, c.moe_inter}), lay(ROW, CKH_KIND_FFN_DOWN, E));
      }
    } else {
      emit(m + "mlp.linear_fc1.weight", b.concat({in(h + "mlp.gate_proj.weight"), in(h + "mlp.up_proj.weight")}, 0),
           lay(GLU, CKH_KIND_FFN_GATE_UP));
      emit(m + "mlp.linear_fc2.weight", in(h + "mlp.down_proj.weight"), lay(ROW, CKH_KIND_FFN_DOWN));
    }
  }
  emit("text_decoder.decoder.final_layernorm.weight", in(t + "norm.weight"), annot3(CKH_ROLE_FINAL_NORM, -1, 0, REP, CKH_KIND_NORM));
  if (!c.tied)
    emit("text_decoder.output_layer.weight", in("lm_head.weight"), annot3(CKH_ROLE_OUTPUT, -1, 0, CKH_PARALLEL_VOCAB, CKH_KIND_OUTPUT));
  else if (b.find("lm_head.weight") >= 0)
    b.ignore("lm_head.weight", "tie_word_embeddings: the output layer is the word embedding");
  json out = meta;
  out["layout"] = "mindspeed-mm";
  out["args"] = {{"num_layers", c.layers},
                 {"num_attention_heads", c.heads},
                 {"num_query_groups", c.kv_heads},
                 {"hidden_size", c.hidden},
                 {"untie_embeddings_and_output_weights", !c.tied}};
  if (c.moe) out["args"]["num_experts"] = c.experts;
  b.set_metadata(out.dump());
}

std::string mm_reader_hints3(const json &meta) {
  const Config3 c = config3_or_fail(meta, kNeedConfig);
  (void)c;
  return json{{"gated_mlp", true}, {"ungated_prefixes", {"image_encoder."}}}.dump();
}

// MindSpeed-MM names -> transformers 5's (the fused experts stacked in its orientation [E, 2I, H] / [E, H, I]).
void map_mm_to_hf3(const json &meta, ckh::sdk::Builder &b) {
  const Config3 c = config3_or_fail(meta, kNeedConfig);
  auto in = [&](const std::string &n) {
    if (b.find(n) < 0) ckh::sdk::fail(CKH_E_FORMAT, "MindSpeed-MM checkpoint: tensor '" + n + "' is missing");
    return b.input(n);
  };
  auto out = [&](const std::string &n, ckh_expr e) { b.emit(n, e); };
  const int64_t W = c.v_width;
  const std::string v = "model.visual.", ie = "image_encoder.encoder.";
  for (const char *s : {"weight", "bias"}) out(v + "patch_embed.proj." + s, in(ie + "patch_embed.proj." + s));
  out(v + "pos_embed.weight", in(ie + "pos_embed.weight"));
  for (int64_t l = 0; l < c.v_depth; ++l) {
    const std::string h = v + "blocks." + std::to_string(l) + ".", m = ie + "blocks.layers." + std::to_string(l) + ".";
    for (const char *s : {"weight", "bias"}) {
      out(h + "norm1." + s, in(m + "input_layernorm." + s));
      out(h + "norm2." + s, in(m + "pre_mlp_layernorm." + s));
      out(h + "mlp.linear_fc1." + s, in(m + "mlp.linear_fc1." + s));
      out(h + "mlp.linear_fc2." + s, in(m + "mlp.linear_fc2." + s));
      out(h + "attn.proj." + s, in(m + "self_attention.linear_proj." + s));
    }
    out(h + "attn.qkv.weight",
        qkv_from_per_head(b, in(m + "self_attention.linear_qkv.weight"), c.v_heads, W, true));
    out(h + "attn.qkv.bias", qkv_from_per_head(b, in(m + "self_attention.linear_qkv.bias"), c.v_heads, W, false));
  }
  for (size_t k = 0; k < c.deepstack.size(); ++k) {
    const std::string h = v + "deepstack_merger_list." + std::to_string(k) + ".";
    const std::string m = ie + "blocks.layers." + std::to_string(c.deepstack[k]) + ".deepstack_layer.";
    for (const char *s : {"weight", "bias"}) {
      out(h + "norm." + s, in(m + "layernorm." + s));
      out(h + "linear_fc1." + s, in(m + "encoder.linear_fc1." + s));
      out(h + "linear_fc2." + s, in(m + "encoder.linear_fc2." + s));
    }
  }
  for (const char *s : {"weight", "bias"}) {
    out(v + "merger.norm." + s, in(std::string("image_encoder.projector.layernorm.") + s));
    out(v + "merger.linear_fc1." + s, in(std::string("image_encoder.projector.encoder.linear_fc1.") + s));
    out(v + "merger.linear_fc2." + s, in(std::string("image_encoder.projector.encoder.linear_fc2.") + s));
  }
  const std::string t = "model.language_model.", td = "text_decoder.decoder.layers.";
  const ckh::plugins::gqa::Dims d{c.heads, c.kv_heads, c.head_dim, c.hidden};
  out(t + "embed_tokens.weight", in("text_decoder.embedding.word_embeddings.weight"));
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string h = t + "layers." + std::to_string(l) + ".", m = td + std::to_string(l) + ".";
    out(h + "input_layernorm.weight", in(m + "input_layernorm.weight"));
    const auto p = ckh::plugins::gqa::split(b, in(m + "self_attention.linear_qkv.weight"), d, true);
    out(h + "self_attn.q_proj.weight", p.q);
    out(h + "self_attn.k_proj.weight", p.k);
    out(h + "self_attn.v_proj.weight", p.v);
    out(h + "self_attn.o_proj.weight", in(m + "self_attention.linear_proj.weight"));
    out(h + "self_attn.q_norm.weight", in(m + "self_attention.q_layernorm.weight"));
    out(h + "self_attn.k_norm.weight", in(m + "self_attention.k_layernorm.weight"));
    out(h + "post_attention_layernorm.weight", in(m + "pre_mlp_layernorm.weight"));
    if (c.moe_layer(l)) {
      out(h + "mlp.gate.weight", in(m + "mlp.router.weight"));
      std::vector<ckh_expr> fc1, fc2;
      for (int64_t e = 0; e < c.experts; ++e) {
        const std::string x = m + "mlp.experts.local_experts." + std::to_string(e) + ".";
        fc1.push_back(in(x + "linear_fc1.weight"));
        fc2.push_back(in(x + "linear_fc2.weight"));
      }
      out(h + "mlp.experts.gate_up_proj", b.reshape(b.concat(fc1, 0), {c.experts, 2 * c.moe_inter, c.hidden}));
      out(h + "mlp.experts.down_proj", b.reshape(b.concat(fc2, 0), {c.experts, c.hidden, c.moe_inter}));
    } else {
      const ckh_expr fc1 = in(m + "mlp.linear_fc1.weight");
      out(h + "mlp.gate_proj.weight", b.slice(fc1, 0, 0, c.inter));
      out(h + "mlp.up_proj.weight", b.slice(fc1, 0, c.inter, c.inter));
      out(h + "mlp.down_proj.weight", in(m + "mlp.linear_fc2.weight"));
    }
  }
  out(t + "norm.weight", in("text_decoder.decoder.final_layernorm.weight"));
  if (!c.tied) out("lm_head.weight", in("text_decoder.output_layer.weight"));
  else if (b.find("text_decoder.output_layer.weight") >= 0)
    b.ignore("text_decoder.output_layer.weight", "tie_word_embeddings: the last stage's copy of the word embedding");
  json o = meta;
  o["layout"] = "hf";
  o.erase("args");
  b.set_metadata(o.dump());
}

}  // namespace ckh::qwen_vl
