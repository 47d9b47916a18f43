// mcore_mapper.cpp — Llama family HF <-> Megatron-Core names and layouts (global, unsharded tensors;
// the TP/PP split is Megatron knowledge and lives in the megatron format plugin).
//
//   q/k/v -> linear_qkv: per query group g: [q heads of g (H/G heads); k_g; v_g]   (GQA interleave)
//   gate/up -> linear_fc1 = [gate; up]
//   TE spec: the norms before attention and MLP are fused into linear_qkv / linear_fc1
//            (layer_norm_weight); local spec: input_layernorm / pre_mlp_layernorm.
// Facts: ../shared/research/megatron.md §2a, §2c, §2d, §2f.
#include "mcore_mapper.hpp"

#include <cmath>
#include <stdexcept>

#include <nlohmann/json.hpp>

using nlohmann::json;
using ckh::sdk::fail;

namespace ckh::llama {

namespace {

std::string spec_of(const json &opts) {
  const std::string s = opts.value("megatron_spec", std::string("te"));
  if (s != "te" && s != "local")
    fail(CKH_E_UNSUPPORTED, "--megatron-spec '" + s + "' is not supported yet (te or local)");
  return s;
}

json args_from_config(const Config &c, const json &cfg, const std::string &spec) {
  json a;
  a["num_layers"] = c.layers;
  a["hidden_size"] = c.hidden;
  a["ffn_hidden_size"] = c.ffn;
  a["num_attention_heads"] = c.heads;
  a["group_query_attention"] = c.kv_heads != c.heads;
  a["num_query_groups"] = c.kv_heads;
  a["kv_channels"] = c.head_dim;
  const int64_t maxpos = cfg.value("max_position_embeddings", int64_t{4096});
  a["max_position_embeddings"] = maxpos;
  a["seq_length"] = maxpos;
  a["swiglu"] = true;
  a["normalization"] = "RMSNorm";
  a["norm_epsilon"] = c.rms_eps;
  const bool bias = c.o_bias || c.mlp_bias;
  a["add_bias_linear"] = bias;
  a["disable_bias_linear"] = !bias;
  a["add_qkv_bias"] = c.qkv_bias;
  a["qk_layernorm"] = c.qk_norm;
  a["untie_embeddings_and_output_weights"] = !c.tied;
  a["position_embedding_type"] = "rope";
  a["rotary_base"] = c.rope_theta;
  a["rotary_percent"] = 1.0;
  a["rotary_interleaved"] = false;
  a["use_rope_scaling"] = false;
  if (cfg.contains("rope_scaling") && cfg["rope_scaling"].is_object()) {
    const auto &rs = cfg["rope_scaling"];
    const std::string type = rs.value("rope_type", rs.value("type", std::string()));
    if (type == "llama3") {
      a["use_rope_scaling"] = true;
      a["rope_scaling_factor"] = rs.value("factor", 8.0);
    } else if (type == "linear") {
      a["seq_len_interpolation_factor"] = rs.value("factor", 1.0);
    }
  }
  a["vocab_size"] = c.vocab;
  a["tokenizer_type"] = "HuggingFaceTokenizer";
  a["transformer_impl"] = spec == "te" ? "transformer_engine" : "local";
  a["use_mcore_models"] = true;
  a["use_legacy_models"] = false;
  a["bf16"] = c.dtype == CKH_DT_BF16;
  a["fp16"] = c.dtype == CKH_DT_F16;
  a["attention_dropout"] = 0.0;
  a["hidden_dropout"] = 0.0;
  a["apply_query_key_layer_scaling"] = false;
  a["ckpt_format"] = "torch";
  if (c.model_type == "minicpm") {
    // Kept as run-time scalars, as the MiniCPM Megatron forks expect (weights unchanged).
    a["scale_emb"] = c.scale_emb;
    a["dim_model_base"] = c.dim_model_base;
    a["scale_depth"] = c.scale_depth;
  }
  return a;
}

ckh_tensor_annot_t annot_of(int32_t role, int32_t layer, int32_t parallel) {
  ckh_tensor_annot_t a = ckh::sdk::annot(role, layer);
  a.parallel = parallel;
  return a;
}

}  // namespace

void map_hf_to_mcore(const json &opts, const json &meta, ckh::sdk::Builder &b) {
  const json cfg = meta.value("config", json());
  Config c;
  try {
    c = parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
  const std::string spec = spec_of(opts);
  const bool te = spec == "te";
  const int64_t H = c.heads, G = c.kv_heads, d = c.head_dim, h = c.hidden, P = H / G;

  auto emit = [&](const std::string &name, ckh_expr e, int32_t role, int32_t layer, int32_t par) {
    const ckh_tensor_annot_t a = annot_of(role, layer, par);
    b.emit(name, e, &a);
  };
  // [q; k; v] -> per group [q_g (P heads); k_g; v_g], for weights ([rows, h]) and biases ([rows]).
  auto qkv = [&](const std::string &p, const std::string &suffix) {
    const bool w = suffix == "weight";
    auto grp = [&](const std::string &n, int64_t rows_per_group) {
      std::vector<int64_t> shape = {G, rows_per_group};
      if (w) shape.push_back(h);
      return b.reshape(b.input(p + "self_attn." + n + "." + suffix), shape);
    };
    ckh_expr cat = b.concat({grp("q_proj", P * d), grp("k_proj", d), grp("v_proj", d)}, 1);
    std::vector<int64_t> out = {G * (P + 2) * d};
    if (w) out.push_back(h);
    return b.reshape(cat, out);
  };

  emit("embedding.word_embeddings.weight", b.input("model.embed_tokens.weight"), CKH_ROLE_EMBEDDING, -1,
       CKH_PARALLEL_VOCAB);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string m = "decoder.layers." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    emit(te ? m + "self_attention.linear_qkv.layer_norm_weight" : m + "input_layernorm.weight",
         b.input(p + "input_layernorm.weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
    emit(m + "self_attention.linear_qkv.weight", qkv(p, "weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_COLUMN);
    if (c.qkv_bias) emit(m + "self_attention.linear_qkv.bias", qkv(p, "bias"), CKH_ROLE_LAYER, L, CKH_PARALLEL_COLUMN);
    emit(m + "self_attention.linear_proj.weight", b.input(p + "self_attn.o_proj.weight"), CKH_ROLE_LAYER, L,
         CKH_PARALLEL_ROW);
    if (c.o_bias)
      emit(m + "self_attention.linear_proj.bias", b.input(p + "self_attn.o_proj.bias"), CKH_ROLE_LAYER, L,
           CKH_PARALLEL_REPLICATED);
    if (c.qk_norm) {
      emit(m + "self_attention.q_layernorm.weight", b.input(p + "self_attn.q_norm.weight"), CKH_ROLE_LAYER, L,
           CKH_PARALLEL_REPLICATED);
      emit(m + "self_attention.k_layernorm.weight", b.input(p + "self_attn.k_norm.weight"), CKH_ROLE_LAYER, L,
           CKH_PARALLEL_REPLICATED);
    }
    emit(te ? m + "mlp.linear_fc1.layer_norm_weight" : m + "pre_mlp_layernorm.weight",
         b.input(p + "post_attention_layernorm.weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
    emit(m + "mlp.linear_fc1.weight",
         b.concat({b.input(p + "mlp.gate_proj.weight"), b.input(p + "mlp.up_proj.weight")}, 0), CKH_ROLE_LAYER, L,
         CKH_PARALLEL_SWIGLU);
    if (c.mlp_bias)
      emit(m + "mlp.linear_fc1.bias", b.concat({b.input(p + "mlp.gate_proj.bias"), b.input(p + "mlp.up_proj.bias")}, 0),
           CKH_ROLE_LAYER, L, CKH_PARALLEL_SWIGLU);
    emit(m + "mlp.linear_fc2.weight", b.input(p + "mlp.down_proj.weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_ROW);
    if (c.mlp_bias)
      emit(m + "mlp.linear_fc2.bias", b.input(p + "mlp.down_proj.bias"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
  }
  emit("decoder.final_layernorm.weight", b.input("model.norm.weight"), CKH_ROLE_FINAL_NORM, -1, CKH_PARALLEL_REPLICATED);
  if (!c.tied) emit("output_layer.weight", b.input("lm_head.weight"), CKH_ROLE_OUTPUT, -1, CKH_PARALLEL_VOCAB);

  json out = meta;
  out["layout"] = "megatron";
  out["args"] = args_from_config(c, cfg, spec);
  out["megatron_spec"] = spec;
  b.set_metadata(out.dump());
}

}  // namespace ckh::llama
