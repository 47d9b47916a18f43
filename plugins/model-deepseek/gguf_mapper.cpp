// gguf_mapper.cpp — DeepSeek-V2 / V3 in llama.cpp's GGUF architecture deepseek2 (convert_hf_to_gguf.py
// DeepseekV2Model, gguf-py's tensor map, src/models/deepseek2.cpp for what llama.cpp loads):
//   model.embed_tokens -> token_embd, model.norm -> output_norm, lm_head -> output; per layer N as blk.N.*:
//   input_layernorm -> attn_norm, self_attn.{q_a_proj -> attn_q_a, q_a_layernorm -> attn_q_a_norm, q_b_proj -> attn_q_b
//   (or q_proj -> attn_q without query compression), kv_a_proj_with_mqa -> attn_kv_a_mqa, kv_a_layernorm ->
//   attn_kv_a_norm, o_proj -> attn_output}, post_attention_layernorm -> ffn_norm;
//   kv_b_proj [heads * (nope + v), kv_lora] is split per head for MLA's absorbed form: attn_k_b = the nope rows
//   transposed, [heads, kv_lora, nope], and attn_v_b = the v rows, [heads, v, kv_lora] (the unsplit attn_kv_b is
//   not written, as this converter version writes it no more);
//   dense layers (the first first_k_dense_replace): mlp.{gate,up,down}_proj -> ffn_{gate,up,down};
//   MoE layers: mlp.gate -> ffn_gate_inp (F32, as the converter keeps routers), mlp.gate.e_score_correction_bias ->
//   exp_probs_b.bias, the routed experts stacked into ffn_{gate,up,down}_exps [experts, rows, cols] (expert e at
//   index e), mlp.shared_experts.* -> ffn_{gate,up,down}_shexp.
// The MTP layers of the released checkpoints (model.layers.<num_hidden_layers + k>) are left out, as the converter
// leaves them. Key-values: MLA as MQA (head_count_kv 1, key_length kv_lora + rope, value_length kv_lora, and the
// per-head key_length_mla / value_length_mla), the ranks, leading_dense_block_count, the expert counts and sizes,
// expert_weights_scale (routed_scaling_factor), expert_weights_norm, expert_gating_func (softmax 1 for V2, sigmoid 2
// for V3, stated even where config.json leaves scoring_func to the class default), the expert groups, and YaRN.
#include "gguf_mapper.hpp"

#include <map>
#include <string>
#include <vector>

#include "deepseek_config.hpp"
#include "gguf_experts.hpp"
#include "model_check.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace ckh::deepseek {

namespace {

json kv(const std::string &key, const char *type, json value) { return {{"key", key}, {"type", type}, {"value", std::move(value)}}; }

bool has_key(const json &j, const char *k) { return j.is_object() && j.contains(k) && !j[k].is_null(); }

// The RoPE scaling object of config.json: transformers 5's rope_parameters, or the released rope_scaling.
json rope_object(const json &cfg) {
  if (has_key(cfg, "rope_parameters") && cfg["rope_parameters"].is_object()) return cfg["rope_parameters"];
  if (has_key(cfg, "rope_scaling") && cfg["rope_scaling"].is_object()) return cfg["rope_scaling"];
  return json::object();
}

const char *const kArch = "deepseek2";

}  // namespace

int score_to_gguf(const json &cfg) noexcept {
  try {
    if (cfg.is_object() && cfg.value("model_type", std::string()) == "glm4_moe") return 90;  // refused by name below
    return score(cfg);
  } catch (...) {
    return 0;
  }
}

void map_hf_to_gguf(const json &meta, ckh::sdk::Builder &b) {
  const json cfg = meta.value("config", json::object());
  Config c;
  try {
    c = parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
  if (!c.mla) fail(CKH_E_UNSUPPORTED, "GGUF from model_type '" + c.model_type + "' is not supported yet (deepseek_v2 and deepseek_v3 are)");
  if (c.experts == 0) fail(CKH_E_UNSUPPORTED, "GGUF of a DeepSeek model without routed experts is not supported");
  if (c.moe_freq != 1)
    fail(CKH_E_UNSUPPORTED, "GGUF: moe_layer_freq " + std::to_string(c.moe_freq) + ": llama.cpp's deepseek2 has MoE in every layer after the first_k_dense_replace dense ones");
  if (c.first_dense > c.layers)
    fail(CKH_E_FORMAT, "config.json: first_k_dense_replace " + std::to_string(c.first_dense) + " exceeds num_hidden_layers " + std::to_string(c.layers));
  const int64_t H = c.hidden, heads = c.heads;
  auto in = [&](const std::string &n) {
    if (!b.has(n)) fail(CKH_E_FORMAT, "tensor '" + n + "' is missing");
    return b.input(n);
  };
  auto emit = [&](const std::string &name, ckh_expr e, int32_t role, int32_t layer, int32_t kind) {
    ckh_tensor_annot_t a = ckh::sdk::annot(role, layer);
    a.kind = kind;
    b.emit(name, e, &a);
  };
  auto f32 = [&](ckh_expr e) {
    const ckh_dtype dt = b.info(e).dtype;
    return dt == CKH_DT_F16 || dt == CKH_DT_BF16 ? b.cast(e, CKH_DT_F32) : e;
  };
  emit("token_embd.weight", in("model.embed_tokens.weight"), CKH_ROLE_EMBEDDING, -1, CKH_KIND_EMBEDDING);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    auto lay = [&](const std::string &gn, const std::string &hn, int32_t kind) { emit(g + gn, in(h + hn), CKH_ROLE_LAYER, L, kind); };
    lay("attn_norm.weight", "input_layernorm.weight", CKH_KIND_NORM);
    if (c.q_lora > 0) {
      lay("attn_q_a.weight", "self_attn.q_a_proj.weight", CKH_KIND_ATTN_Q);
      lay("attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight", CKH_KIND_NORM);
      lay("attn_q_b.weight", "self_attn.q_b_proj.weight", CKH_KIND_ATTN_Q);
    } else {
      lay("attn_q.weight", "self_attn.q_proj.weight", CKH_KIND_ATTN_Q);
    }
    lay("attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight", CKH_KIND_ATTN_K);
    lay("attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight", CKH_KIND_NORM);
    // kv_b_proj rows per head: [nope rows of k; v rows]. k_b is the nope block transposed, v_b the v block.
    const ckh_expr kvb = b.reshape(in(h + "self_attn.kv_b_proj.weight"), {heads, c.nope + c.v, c.kv_lora});
    emit(g + "attn_k_b.weight", b.permute(b.slice(kvb, 1, 0, c.nope), {0, 2, 1}), CKH_ROLE_LAYER, L, CKH_KIND_ATTN_K);
    emit(g + "attn_v_b.weight", b.slice(kvb, 1, c.nope, c.v), CKH_ROLE_LAYER, L, CKH_KIND_ATTN_V);
    lay("attn_output.weight", "self_attn.o_proj.weight", CKH_KIND_ATTN_OUT);
    lay("ffn_norm.weight", "post_attention_layernorm.weight", CKH_KIND_NORM);
    if (!c.is_moe(l)) {
      lay("ffn_gate.weight", "mlp.gate_proj.weight", CKH_KIND_FFN_GATE);
      lay("ffn_up.weight", "mlp.up_proj.weight", CKH_KIND_FFN_UP);
      lay("ffn_down.weight", "mlp.down_proj.weight", CKH_KIND_FFN_DOWN);
      continue;
    }
    emit(g + "ffn_gate_inp.weight", f32(in(h + "mlp.gate.weight")), CKH_ROLE_LAYER, L, CKH_KIND_ROUTER);
    if (c.expert_bias) emit(g + "exp_probs_b.bias", f32(in(h + "mlp.gate.e_score_correction_bias")), CKH_ROLE_LAYER, L, CKH_KIND_ROUTER);
    const char *const proj[3][2] = {{"ffn_gate_exps", "gate_proj"}, {"ffn_up_exps", "up_proj"}, {"ffn_down_exps", "down_proj"}};
    const int32_t kinds[3] = {CKH_KIND_FFN_GATE, CKH_KIND_FFN_UP, CKH_KIND_FFN_DOWN};
    for (int p = 0; p < 3; ++p)
      emit(g + proj[p][0] + ".weight", ckh::plugins::model::stack_experts(b, c.experts, [&](int64_t e) {
             return in(h + "mlp.experts." + std::to_string(e) + "." + proj[p][1] + ".weight");
           }),
           CKH_ROLE_LAYER, L, kinds[p]);
    if (c.shared > 0) {
      lay("ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight", CKH_KIND_FFN_GATE);
      lay("ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight", CKH_KIND_FFN_UP);
      lay("ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight", CKH_KIND_FFN_DOWN);
    }
  }
  emit("output_norm.weight", in("model.norm.weight"), CKH_ROLE_FINAL_NORM, -1, CKH_KIND_NORM);
  if (!c.tied) emit("output.weight", in("lm_head.weight"), CKH_ROLE_OUTPUT, -1, CKH_KIND_OUTPUT);
  else if (b.has("lm_head.weight")) b.ignore("lm_head.weight", "tie_word_embeddings: llama.cpp uses token_embd");
  // Inputs left: the MTP layers (and the rotary buffers) are not part of llama.cpp's deepseek2.
  const std::string mtp_prefix = "model.layers.";
  for (uint64_t i = 0; i < b.input_count(); ++i) {
    const std::string n = b.input_info(i).name;
    if (n.find("rotary_emb.inv_freq") != std::string::npos) {
      b.ignore(n, "rotary inv_freq buffer (recomputed from rope_theta)");
      continue;
    }
    if (n.compare(0, mtp_prefix.size(), mtp_prefix) != 0) continue;
    const size_t dot = n.find('.', mtp_prefix.size());
    const std::string num = n.substr(mtp_prefix.size(), dot == std::string::npos ? std::string::npos : dot - mtp_prefix.size());
    if (num.empty() || num.size() > 9 || num.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoll(num) >= c.layers) b.ignore(n, "MTP layer: llama.cpp's converter leaves it out of deepseek2");
  }

  std::string name = cfg.value("_name_or_path", std::string());
  if (const size_t slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
  if (name.empty()) name = kArch;
  const std::string a = kArch;
  json kvs = json::array();
  kvs.push_back(kv("general.architecture", "string", a));
  kvs.push_back(kv("general.type", "string", "model"));
  kvs.push_back(kv("general.name", "string", name));
  kvs.push_back(kv("general.quantization_version", "u32", 2));
  kvs.push_back(kv(a + ".block_count", "u32", c.layers));
  kvs.push_back(kv(a + ".context_length", "u32", c.max_pos));
  kvs.push_back(kv(a + ".embedding_length", "u32", H));
  kvs.push_back(kv(a + ".feed_forward_length", "u32", c.ffn));
  kvs.push_back(kv(a + ".attention.head_count", "u32", heads));
  kvs.push_back(kv(a + ".attention.head_count_kv", "u32", 1));  // MLA runs as MQA over the latent
  kvs.push_back(kv(a + ".rope.freq_base", "f32", c.rope_theta));
  kvs.push_back(kv(a + ".attention.layer_norm_rms_epsilon", "f32", c.rms_eps));
  kvs.push_back(kv(a + ".expert_count", "u32", c.experts));
  kvs.push_back(kv(a + ".expert_used_count", "u32", c.topk));
  if (has_key(cfg, "n_group")) kvs.push_back(kv(a + ".expert_group_count", "u32", c.n_group));
  if (has_key(cfg, "topk_group")) kvs.push_back(kv(a + ".expert_group_used_count", "u32", c.topk_group));
  kvs.push_back(kv(a + ".expert_gating_func", "u32", c.scoring == "sigmoid" ? 2 : 1));
  kvs.push_back(kv(a + ".attention.key_length", "u32", c.kv_lora + c.rope));
  kvs.push_back(kv(a + ".attention.value_length", "u32", c.kv_lora));
  kvs.push_back(kv(a + ".leading_dense_block_count", "u32", c.first_dense));
  kvs.push_back(kv(a + ".vocab_size", "u32", c.vocab));
  if (c.q_lora > 0) kvs.push_back(kv(a + ".attention.q_lora_rank", "u32", c.q_lora));
  kvs.push_back(kv(a + ".attention.kv_lora_rank", "u32", c.kv_lora));
  kvs.push_back(kv(a + ".attention.key_length_mla", "u32", c.nope + c.rope));
  kvs.push_back(kv(a + ".attention.value_length_mla", "u32", c.v));
  kvs.push_back(kv(a + ".expert_feed_forward_length", "u32", c.moe_ffn));
  kvs.push_back(kv(a + ".expert_shared_count", "u32", c.shared));
  if (has_key(cfg, "routed_scaling_factor")) kvs.push_back(kv(a + ".expert_weights_scale", "f32", c.routed_scaling));
  if (c.norm_topk) kvs.push_back(kv(a + ".expert_weights_norm", "bool", true));
  kvs.push_back(kv(a + ".rope.dimension_count", "u32", c.rope));
  if (c.rope_type == "yarn") {
    // The converter's YaRN keys: type, factor, original context, the betas and factors config.json states, and
    // mscale_all_dim as yarn_log_multiplier times 10 (llama.cpp divides it by 0.1 again for deepseek2).
    const json rs = rope_object(cfg);
    kvs.push_back(kv(a + ".rope.scaling.type", "string", "yarn"));
    kvs.push_back(kv(a + ".rope.scaling.factor", "f32", c.rope_factor));
    kvs.push_back(kv(a + ".rope.scaling.original_context_length", "u32", c.rope_original_max_pos));
    if (has_key(rs, "extrapolation_factor")) kvs.push_back(kv(a + ".rope.scaling.yarn_ext_factor", "f32", rs["extrapolation_factor"]));
    if (has_key(rs, "attention_factor")) kvs.push_back(kv(a + ".rope.scaling.yarn_attn_factor", "f32", rs["attention_factor"]));
    else if (has_key(rs, "attn_factor")) kvs.push_back(kv(a + ".rope.scaling.yarn_attn_factor", "f32", rs["attn_factor"]));
    if (has_key(rs, "beta_fast")) kvs.push_back(kv(a + ".rope.scaling.yarn_beta_fast", "f32", c.beta_fast));
    if (has_key(rs, "beta_slow")) kvs.push_back(kv(a + ".rope.scaling.yarn_beta_slow", "f32", c.beta_slow));
    if (has_key(rs, "mscale_all_dim")) kvs.push_back(kv(a + ".rope.scaling.yarn_log_multiplier", "f32", 0.1 * c.mscale_all_dim));
  }
  json out = meta;
  out["layout"] = "gguf";
  out["gguf_kv"] = kvs;
  b.set_metadata(out.dump());
}

namespace {

std::map<std::string, json> kv_map(const json &meta) {
  std::map<std::string, json> m;
  if (meta.contains("gguf_kv") && meta["gguf_kv"].is_array())
    for (const auto &e : meta["gguf_kv"])
      if (e.is_object() && e.contains("key") && e["key"].is_string() && e.contains("value")) m[e["key"].get<std::string>()] = e["value"];
  return m;
}

}  // namespace

int score_gguf(const json &meta) noexcept {
  try {
    const auto m = kv_map(meta);
    const auto it = m.find("general.architecture");
    return it != m.end() && it->second == kArch ? 90 : 0;
  } catch (...) {
    return 0;
  }
}

void map_gguf_to_hf(const json &meta, ckh::sdk::Builder &b) {
  const auto m = kv_map(meta);
  const std::string a = kArch;
  auto num = [&](const std::string &k, bool required, double def = 0) -> double {
    const auto it = m.find(a + "." + k);
    if (it == m.end() || !it->second.is_number()) {
      if (required) fail(CKH_E_FORMAT, "GGUF: '" + a + "." + k + "' is missing");
      return def;
    }
    return it->second.get<double>();
  };
  auto count = [&](const std::string &k, bool required, int64_t def, int64_t lo, int64_t hi) -> int64_t {
    const double v = num(k, required, static_cast<double>(def));
    if (!(v >= static_cast<double>(lo) && v <= static_cast<double>(hi)))
      fail(CKH_E_FORMAT, "GGUF: '" + a + "." + k + "' " + std::to_string(v) + " is not in " + std::to_string(lo) + ".." + std::to_string(hi));
    return static_cast<int64_t>(v);
  };
  constexpr int64_t kBig = int64_t{1} << 24;
  const int64_t H = count("embedding_length", true, 0, 1, kBig), layers = count("block_count", true, 0, 1, 1 << 16);
  const int64_t heads = count("attention.head_count", true, 0, 1, 1 << 16);
  const int64_t kv_lora = count("attention.kv_lora_rank", true, 0, 1, kBig), q_lora = count("attention.q_lora_rank", false, 0, 0, kBig);
  const int64_t rope = count("rope.dimension_count", true, 0, 2, kBig);
  const int64_t qk = count("attention.key_length_mla", true, 0, rope + 1, kBig), v = count("attention.value_length_mla", true, 0, 1, kBig);
  const int64_t experts = count("expert_count", true, 0, 1, 1 << 16), used = count("expert_used_count", true, 0, 1, experts);
  const int64_t dense = count("leading_dense_block_count", false, 0, 0, layers), shared = count("expert_shared_count", false, 0, 0, 1 << 16);
  const int64_t gating = count("expert_gating_func", false, 1, 1, 2);
  const int64_t groups = count("expert_group_count", false, 1, 1, experts), groups_used = count("expert_group_used_count", false, 1, 1, groups);
  if (m.count(a + ".rope.scaling.type")) fail(CKH_E_UNSUPPORTED, "GGUF: deepseek2 with rope.scaling.type " + m.at(a + ".rope.scaling.type").dump() + " is not read back yet");
  const int64_t nope = qk - rope;
  // V3 (sigmoid router with the expert bias) or V2 (softmax).
  const bool v3 = gating == 2;
  const int64_t emb_i = b.find("token_embd.weight");
  if (emb_i < 0) fail(CKH_E_FORMAT, "GGUF: tensor 'token_embd.weight' is missing");
  const ckh_tensor_info_t ei = b.input_info(static_cast<uint64_t>(emb_i));
  const bool tied = !b.has("output.weight");
  json cfg = {{"architectures", {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"}},
              {"model_type", v3 ? "deepseek_v3" : "deepseek_v2"},
              {"hidden_size", H},
              {"intermediate_size", count("feed_forward_length", true, 0, 1, kBig)},
              {"moe_intermediate_size", count("expert_feed_forward_length", true, 0, 1, kBig)},
              {"num_hidden_layers", layers},
              {"num_attention_heads", heads},
              {"num_key_value_heads", heads},
              {"n_routed_experts", experts},
              {"num_experts_per_tok", used},
              {"n_shared_experts", shared},
              {"first_k_dense_replace", dense},
              {"moe_layer_freq", 1},
              {"q_lora_rank", q_lora > 0 ? json(q_lora) : json()},
              {"kv_lora_rank", kv_lora},
              {"qk_nope_head_dim", nope},
              {"qk_rope_head_dim", rope},
              {"v_head_dim", v},
              {"n_group", groups},
              {"topk_group", groups_used},
              {"routed_scaling_factor", num("expert_weights_scale", false, 1.0)},
              {"norm_topk_prob", m.count(a + ".expert_weights_norm") && m.at(a + ".expert_weights_norm") == true},
              {"scoring_func", v3 ? "sigmoid" : "softmax"},
              {"topk_method", v3 ? "noaux_tc" : groups > 1 ? "group_limited_greedy" : "greedy"},
              {"rms_norm_eps", num("attention.layer_norm_rms_epsilon", true)},
              {"rope_theta", num("rope.freq_base", false, 10000.0)},
              {"max_position_embeddings", count("context_length", false, 4096, 1, int64_t{1} << 40)},
              {"vocab_size", ei.ndim == 2 ? ei.shape[0] : 0},
              {"tie_word_embeddings", tied},
              {"attention_bias", false},
              {"hidden_act", "silu"},
              {"torch_dtype", ei.dtype == CKH_DT_F16 ? "float16" : ei.dtype == CKH_DT_BF16 ? "bfloat16" : "float32"}};
  if (v3) {
    cfg["num_nextn_predict_layers"] = 0;  // the GGUF holds no MTP layer
    cfg["rope_interleave"] = true;
  }
  auto out = [&](const std::string &n, ckh_expr e) { b.emit(n, e); };
  out("model.embed_tokens.weight", b.input("token_embd.weight"));
  for (int64_t l = 0; l < layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    auto in = [&](const std::string &n) {
      if (!b.has(g + n)) fail(CKH_E_FORMAT, "GGUF: tensor '" + g + n + "' is missing");
      return b.input(g + n);
    };
    auto shape_is = [&](const std::string &n, ckh_expr e, const std::vector<int64_t> &want) {
      const std::vector<int64_t> s = ckh::plugins::model::shape_of(b.info(e));
      if (s != want)
        fail(CKH_E_FORMAT, "GGUF: tensor '" + g + n + "' has shape " + ckh::plugins::model::shape_str(s) + ", the key-values imply " +
                               ckh::plugins::model::shape_str(want));
      return e;
    };
    out(h + "input_layernorm.weight", in("attn_norm.weight"));
    if (q_lora > 0) {
      out(h + "self_attn.q_a_proj.weight", in("attn_q_a.weight"));
      out(h + "self_attn.q_a_layernorm.weight", in("attn_q_a_norm.weight"));
      out(h + "self_attn.q_b_proj.weight", in("attn_q_b.weight"));
    } else {
      out(h + "self_attn.q_proj.weight", in("attn_q.weight"));
    }
    out(h + "self_attn.kv_a_proj_with_mqa.weight", in("attn_kv_a_mqa.weight"));
    out(h + "self_attn.kv_a_layernorm.weight", in("attn_kv_a_norm.weight"));
    const ckh_expr kb = shape_is("attn_k_b.weight", in("attn_k_b.weight"), {heads, kv_lora, nope});
    const ckh_expr vb = shape_is("attn_v_b.weight", in("attn_v_b.weight"), {heads, v, kv_lora});
    out(h + "self_attn.kv_b_proj.weight", b.reshape(b.concat({b.permute(kb, {0, 2, 1}), vb}, 1), {heads * (nope + v), kv_lora}));
    out(h + "self_attn.o_proj.weight", in("attn_output.weight"));
    out(h + "post_attention_layernorm.weight", in("ffn_norm.weight"));
    if (l < dense) {
      out(h + "mlp.gate_proj.weight", in("ffn_gate.weight"));
      out(h + "mlp.up_proj.weight", in("ffn_up.weight"));
      out(h + "mlp.down_proj.weight", in("ffn_down.weight"));
      continue;
    }
    out(h + "mlp.gate.weight", in("ffn_gate_inp.weight"));
    if (v3) out(h + "mlp.gate.e_score_correction_bias", in("exp_probs_b.bias"));
    const char *const proj[3][2] = {{"ffn_gate_exps", "gate_proj"}, {"ffn_up_exps", "up_proj"}, {"ffn_down_exps", "down_proj"}};
    for (const auto &p : proj)
      ckh::plugins::model::unstack_experts(b, in(std::string(p[0]) + ".weight"), g + p[0] + ".weight", experts, [&](int64_t e, ckh_expr x) {
        out(h + "mlp.experts." + std::to_string(e) + "." + p[1] + ".weight", x);
      });
    if (shared > 0) {
      out(h + "mlp.shared_experts.gate_proj.weight", in("ffn_gate_shexp.weight"));
      out(h + "mlp.shared_experts.up_proj.weight", in("ffn_up_shexp.weight"));
      out(h + "mlp.shared_experts.down_proj.weight", in("ffn_down_shexp.weight"));
    }
  }
  out("model.norm.weight", b.input("output_norm.weight"));
  if (!tied) out("lm_head.weight", b.input("output.weight"));
  json o = meta;
  o["config"] = cfg;
  o["config_modified"] = true;
  o["layout"] = "hf";
  b.set_metadata(o.dump());
}

}  // namespace ckh::deepseek
