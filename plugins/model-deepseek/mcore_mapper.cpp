// mcore_mapper.cpp — DeepSeek-V2/V3 HF <-> Megatron-Core (global, unsharded tensors; the TP/PP/EP split
// is Megatron knowledge and lives in the megatron and torch-dist format plugins).
//
// Every MLA tensor maps one to one (the per-head row orders are the same on both sides; Megatron-Core's
// MLA reorders the interleaved rope dimensions at run time as transformers' rope_interleave does):
//   q_a_proj -> self_attention.linear_q_down_proj      q_b_proj -> linear_q_up_proj   (q_proj -> linear_q_proj)
//   kv_a_proj_with_mqa -> linear_kv_down_proj          kv_b_proj -> linear_kv_up_proj   o_proj -> linear_proj
//   q_a_layernorm / kv_a_layernorm -> linear_q_up_proj.layer_norm_weight / linear_kv_up_proj.layer_norm_weight
//       (TE spec, fused) or q_layernorm / kv_layernorm (local spec)
//   input_layernorm stays a module of its own in both specs (both down projections read it).
// Down projections: TELinear "duplicated" (replicated over TP) in the TE spec, ColumnParallelLinear (rows
// split over TP, gathered at run time) in the local spec (multi_latent_attention.py, gpt_layer_specs.py of
// Megatron-Core 0.16.1).
// Dense layers (before first_k_dense_replace): gate/up -> mlp.linear_fc1, down -> linear_fc2, the norm
// fused into linear_fc1 (TE) or pre_mlp_layernorm (local). MoE layers: pre_mlp_layernorm in both specs,
// gate -> mlp.router.weight, e_score_correction_bias -> mlp.router.expert_bias, experts by global index
// (SequentialMLP or TEGroupedMLP names), shared_experts -> mlp.shared_experts.linear_fc1/fc2.
// GLM-4.5 (glm4_moe) has grouped-query attention instead of MLA: q/k/v (+ biases) -> self_attention.linear_qkv
// in Megatron-Core's per-group order (gqa_qkv.hpp), o_proj -> linear_proj, q_norm / k_norm ->
// self_attention.q_layernorm / k_layernorm (per head, as Megatron-Core's qk_layernorm), input_layernorm
// fused into linear_qkv (TE) or input_layernorm (local); partial rotary -> rotary_percent with
// rotary_interleaved false (both sides rotate the first rotary dims of each head by halves). The MoE
// layers, the router and the MTP layers are DeepSeek-V3's.
// MTP layer k (HF model.layers.<num_hidden_layers + k>): enorm, hnorm, eh_proj (column-parallel),
// shared_head.norm -> final_layernorm, the decoder layer -> mtp.layers.k.transformer_layer.*; its
// embed_tokens / shared_head.head copies are Megatron-Core's shared embedding and output layer.
#include "mcore_mapper.hpp"

#include <cmath>
#include <stdexcept>

#include "gqa_qkv.hpp"
#include "option_decls.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace ckh::deepseek {

namespace {

std::string spec_of(const json &opts, const Config &c) {
  const std::string s = opts.value("megatron_spec", std::string("te"));
  if (s == "legacy")
    fail(CKH_E_UNSUPPORTED, std::string("--megatron-spec legacy: legacy Megatron models have no ") +
                                (c.mla ? "multi-latent attention" : "MoE layers (model_type " + c.model_type + ")") + "; use te or local");
  if (s != "te" && s != "local") fail(CKH_E_INVALID_ARG, "--megatron-spec must be te or local, not '" + s + "'");
  return s;
}

// Megatron-Core's group-limited routing scores a group by the sum of its top (topk / group_topk)
// expert scores (moe_utils.group_limited_topk); transformers' DeepSeek-V3 by the sum of its top 2 and
// DeepSeek-V2's group_limited_greedy by its top 1. They choose the same groups when the numbers agree,
// or when grouping chooses nothing (one group, or every group).
void check_routing(const Config &c) {
  if (c.experts == 0 || c.n_group <= 1 || c.topk_group >= c.n_group) return;
  const bool v3 = c.model_type != "deepseek_v2";  // DeepSeek-V3 and GLM-4.5 score a group by its top 2
  if (c.topk_method == "greedy") return;
  const int64_t hf_top = v3 ? 2 : 1;
  if (c.topk % c.topk_group != 0 || c.topk / c.topk_group != hf_top)
    fail(CKH_E_UNSUPPORTED, "config.json: num_experts_per_tok " + std::to_string(c.topk) + " with topk_group " +
                                std::to_string(c.topk_group) + " of n_group " + std::to_string(c.n_group) +
                                ": Megatron-Core scores a group by the sum of its top " +
                                std::to_string(c.topk_group ? c.topk / c.topk_group : 0) + " experts, " + c.model_type + " by its top " +
                                std::to_string(hf_top) + ", so the converted model would route differently");
}

json args_from_config(const Config &c, const json &cfg, const std::string &spec, int64_t mtp_layers) {
  check_routing(c);
  if (c.experts > 0 && c.scoring == "sigmoid" && !c.norm_topk && c.topk > 1)
    fail(CKH_E_UNSUPPORTED, "config.json: norm_topk_prob false with sigmoid scores: Megatron-Core always renormalises "
                            "the top-k sigmoid scores, so the converted model would weight experts differently");
  json a;
  a["num_layers"] = c.layers;
  a["hidden_size"] = c.hidden;
  a["ffn_hidden_size"] = c.ffn;
  a["num_attention_heads"] = c.heads;
  if (c.mla) {
    a["group_query_attention"] = false;
    a["num_query_groups"] = c.heads;
    a["kv_channels"] = c.q_head();
    a["multi_latent_attention"] = true;
    a["q_lora_rank"] = c.q_lora > 0 ? json(c.q_lora) : json(nullptr);
    a["kv_lora_rank"] = c.kv_lora;
    a["qk_head_dim"] = c.nope;
    a["qk_pos_emb_head_dim"] = c.rope;
    a["v_head_dim"] = c.v;
    a["qk_layernorm"] = true;  // the q/kv latent norms (Megatron-Core's MLA specs build them only then)
  } else {
    a["group_query_attention"] = c.kv_heads != c.heads;
    a["num_query_groups"] = c.kv_heads;
    a["kv_channels"] = c.head_dim;
    a["multi_latent_attention"] = false;
    a["qk_layernorm"] = c.qk_norm;
  }
  a["max_position_embeddings"] = c.max_pos;
  a["seq_length"] = c.max_pos;
  a["swiglu"] = true;
  a["normalization"] = "RMSNorm";
  a["norm_epsilon"] = c.rms_eps;
  a["add_bias_linear"] = false;
  a["disable_bias_linear"] = true;
  a["add_qkv_bias"] = c.qkv_bias;
  a["untie_embeddings_and_output_weights"] = !c.tied;
  a["position_embedding_type"] = "rope";
  a["rotary_base"] = c.rope_theta;
  a["rotary_percent"] = c.mla ? 1.0 : c.partial_rotary;
  a["rotary_interleaved"] = false;
  a["use_rope_scaling"] = false;
  if (c.rope_type == "yarn") {  // MLA only: GLM-4.5 takes default RoPE (parse_config)
    // MLATransformerConfig's YaRN fields (Megatron-LM --rope-type yarn --rotary-scaling-factor ...).
    a["rope_type"] = "yarn";
    a["rotary_scaling_factor"] = c.rope_factor;
    a["original_max_position_embeddings"] = c.rope_original_max_pos;
    a["beta_fast"] = c.beta_fast;
    a["beta_slow"] = c.beta_slow;
    a["mscale"] = c.mscale;
    a["mscale_all_dim"] = c.mscale_all_dim;
  } else {
    a["rope_type"] = "rope";
    a["rotary_scaling_factor"] = 1.0;
    a["mscale"] = 1.0;
    a["mscale_all_dim"] = 0.0;
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
  if (c.experts > 0) {
    a["num_experts"] = c.experts;
    a["moe_ffn_hidden_size"] = c.moe_ffn;
    a["moe_router_topk"] = c.topk;
    a["moe_router_score_function"] = c.scoring;
    // V2: softmax over every expert, then top-k, no renormalisation; V3: sigmoid, bias for the choice.
    a["moe_router_pre_softmax"] = c.scoring == "softmax";
    a["moe_router_enable_expert_bias"] = c.expert_bias;
    a["moe_router_topk_scaling_factor"] = c.routed_scaling != 1.0 ? json(c.routed_scaling) : json(nullptr);
    const bool grouped = c.n_group > 1 && c.topk_group < c.n_group && c.topk_method != "greedy";
    a["moe_router_num_groups"] = grouped ? json(c.n_group) : json(nullptr);
    a["moe_router_group_topk"] = grouped ? json(c.topk_group) : json(nullptr);
    a["moe_router_dtype"] = "fp32";
    a["moe_router_load_balancing_type"] = c.expert_bias ? "seq_aux_loss" : "aux_loss";
    a["moe_aux_loss_coeff"] = cfg.value("aux_loss_alpha", 0.0);
    a["moe_token_dispatcher_type"] = "alltoall";
    a["moe_grouped_gemm"] = false;
    a["moe_shared_expert_intermediate_size"] = c.shared > 0 ? json(c.shared * c.moe_ffn) : json(nullptr);
    a["moe_shared_expert_overlap"] = false;
    json freq = json::array();
    bool all = true;
    for (int64_t l = 0; l < c.layers; ++l) {
      freq.push_back(c.is_moe(l) ? 1 : 0);
      all = all && c.is_moe(l);
    }
    a["moe_layer_freq"] = all ? json(1) : freq;
  }
  a["mtp_num_layers"] = mtp_layers > 0 ? json(mtp_layers) : json(nullptr);
  return a;
}

ckh_tensor_annot_t annot_of(int32_t role, int32_t layer, int32_t parallel, int32_t kind, int32_t expert = -1) {
  ckh_tensor_annot_t a = ckh::sdk::annot(role, layer);
  a.parallel = parallel;
  a.group = CKH_GROUP_TP;
  a.kind = kind;
  if (expert >= 0) {
    a.expert = expert;
    a.group = CKH_GROUP_ETP;
  }
  return a;
}

Config parse_or_fail(const json &cfg) {
  try {
    return parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
}

// Megatron-Core names of one layer, relative to its prefix ("decoder.layers.L." or
// "mtp.layers.k.transformer_layer.").
struct LayerNames {
  bool te;
  bool mla = true;
  // MLA keeps input_layernorm a module of its own in both specs; GQA's TE spec fuses it into linear_qkv.
  std::string input_norm() const { return te && !mla ? "self_attention.linear_qkv.layer_norm_weight" : "input_layernorm.weight"; }
  std::string q_norm() const { return te ? "self_attention.linear_q_up_proj.layer_norm_weight" : "self_attention.q_layernorm.weight"; }
  std::string kv_norm() const { return te ? "self_attention.linear_kv_up_proj.layer_norm_weight" : "self_attention.kv_layernorm.weight"; }
  std::string dense_norm() const { return te ? "mlp.linear_fc1.layer_norm_weight" : "pre_mlp_layernorm.weight"; }
};

int64_t count_mtp_hf(const Config &c, const ckh::sdk::Builder &b) {
  int64_t k = 0;
  while (k < c.mtp && b.has("model.layers." + std::to_string(c.layers + k) + ".eh_proj.weight")) ++k;
  return k;
}

}  // namespace

void map_hf_to_mcore(const json &opts0, const json &meta, ckh::sdk::Builder &b) {
  const json cfg = meta.value("config", json());
  // GLM-5 (transformers 5.24 glm_moe_dsa, GlmMoeDsaIndexer): its DeepSeek sparse attention indexer puts the
  // rope dims first with interleaved RoPE and skips the indexer in indexer_types "shared" layers;
  // Megatron-Core 0.16.1's experimental DSAIndexer (experimental_attention_variant/dsa.py) puts them last
  // and has an indexer in every layer.
  if (cfg.is_object() && cfg.value("model_type", std::string()) == "glm_moe_dsa")
    fail(CKH_E_UNSUPPORTED, "config.json: model_type glm_moe_dsa (GLM-5): its DeepSeek sparse attention indexer "
                            "(self_attn.indexer.*: rope dims first, interleaved, no indexer in indexer_types 'shared' layers) "
                            "has no Megatron-Core 0.16.1 equivalent (DSAIndexer: rope dims last, an indexer in every layer)");
  json opts = opts0;
  if (!opts.contains("megatron_spec") && meta.value("megatron_source_spec", std::string()) == "local")
    opts["megatron_spec"] = "local";
  const Config c = parse_or_fail(cfg);
  const std::string spec = spec_of(opts, c);
  const LayerNames nm{spec == "te", c.mla};
  const ckh::plugins::gqa::Dims dims{c.heads, c.kv_heads, c.head_dim, c.hidden};
  const bool grouped = opts.value("moe_grouped_gemm", false);
  if (grouped && c.experts == 0)
    fail(CKH_E_INVALID_ARG, "--moe-grouped-gemm applies to MoE models, this " + c.model_type + " model has no experts");
  const int64_t mtp = count_mtp_hf(c, b);
  const int32_t down = spec == "te" ? CKH_PARALLEL_REPLICATED : CKH_PARALLEL_COLUMN;

  // One decoder layer (HF prefix p) under Megatron prefix m; role/layer place it.
  auto layer = [&](const std::string &p, const std::string &m, bool moe, int32_t role, int32_t L) {
    auto emit = [&](const std::string &name, ckh_expr e, int32_t par, int32_t kind, int32_t expert = -1) {
      const ckh_tensor_annot_t a = annot_of(role, L, par, kind, expert);
      b.emit(m + name, e, &a);
    };
    auto in = [&](const std::string &n) { return b.input(p + n); };
    emit(nm.input_norm(), in("input_layernorm.weight"), CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
    if (!c.mla) {
      auto fused = [&](const char *suffix) {
        const std::string s = suffix;
        return ckh::plugins::gqa::fuse(b, in("self_attn.q_proj." + s), in("self_attn.k_proj." + s), in("self_attn.v_proj." + s), dims,
                                       s == "weight");
      };
      emit("self_attention.linear_qkv.weight", fused("weight"), CKH_PARALLEL_COLUMN, CKH_KIND_ATTN_QKV);
      if (c.qkv_bias) emit("self_attention.linear_qkv.bias", fused("bias"), CKH_PARALLEL_COLUMN, CKH_KIND_ATTN_QKV);
      emit("self_attention.linear_proj.weight", in("self_attn.o_proj.weight"), CKH_PARALLEL_ROW, CKH_KIND_ATTN_OUT);
      if (c.qk_norm) {
        emit("self_attention.q_layernorm.weight", in("self_attn.q_norm.weight"), CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
        emit("self_attention.k_layernorm.weight", in("self_attn.k_norm.weight"), CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
      }
    } else if (c.q_lora > 0) {
      emit("self_attention.linear_q_down_proj.weight", in("self_attn.q_a_proj.weight"), down, CKH_KIND_ATTN_Q);
      emit(nm.q_norm(), in("self_attn.q_a_layernorm.weight"), CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
      emit("self_attention.linear_q_up_proj.weight", in("self_attn.q_b_proj.weight"), CKH_PARALLEL_COLUMN, CKH_KIND_ATTN_Q);
    } else {
      emit("self_attention.linear_q_proj.weight", in("self_attn.q_proj.weight"), CKH_PARALLEL_COLUMN, CKH_KIND_ATTN_Q);
    }
    if (c.mla) {
      emit("self_attention.linear_kv_down_proj.weight", in("self_attn.kv_a_proj_with_mqa.weight"), down, CKH_KIND_ATTN_K);
      emit(nm.kv_norm(), in("self_attn.kv_a_layernorm.weight"), CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
      emit("self_attention.linear_kv_up_proj.weight", in("self_attn.kv_b_proj.weight"), CKH_PARALLEL_COLUMN, CKH_KIND_ATTN_K);
      emit("self_attention.linear_proj.weight", in("self_attn.o_proj.weight"), CKH_PARALLEL_ROW, CKH_KIND_ATTN_OUT);
    }
    if (!moe) {
      emit(nm.dense_norm(), in("post_attention_layernorm.weight"), CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
      emit("mlp.linear_fc1.weight", b.concat({in("mlp.gate_proj.weight"), in("mlp.up_proj.weight")}, 0), CKH_PARALLEL_SWIGLU,
           CKH_KIND_FFN_GATE_UP);
      emit("mlp.linear_fc2.weight", in("mlp.down_proj.weight"), CKH_PARALLEL_ROW, CKH_KIND_FFN_DOWN);
      return;
    }
    emit("pre_mlp_layernorm.weight", in("post_attention_layernorm.weight"), CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
    emit("mlp.router.weight", in("mlp.gate.weight"), CKH_PARALLEL_REPLICATED, CKH_KIND_ROUTER);
    if (c.expert_bias)
      emit("mlp.router.expert_bias", in("mlp.gate.e_score_correction_bias"), CKH_PARALLEL_REPLICATED, CKH_KIND_ROUTER);
    for (int64_t e = 0; e < c.experts; ++e) {
      const std::string x = "mlp.experts." + std::to_string(e) + ".", E = std::to_string(e);
      const std::string fc1 = grouped ? "mlp.experts.linear_fc1.weight" + E : "mlp.experts.local_experts." + E + ".linear_fc1.weight";
      const std::string fc2 = grouped ? "mlp.experts.linear_fc2.weight" + E : "mlp.experts.local_experts." + E + ".linear_fc2.weight";
      emit(fc1, b.concat({in(x + "gate_proj.weight"), in(x + "up_proj.weight")}, 0), CKH_PARALLEL_SWIGLU, CKH_KIND_FFN_GATE_UP,
           static_cast<int32_t>(e));
      emit(fc2, in(x + "down_proj.weight"), CKH_PARALLEL_ROW, CKH_KIND_FFN_DOWN, static_cast<int32_t>(e));
    }
    if (c.shared > 0) {
      emit("mlp.shared_experts.linear_fc1.weight",
           b.concat({in("mlp.shared_experts.gate_proj.weight"), in("mlp.shared_experts.up_proj.weight")}, 0), CKH_PARALLEL_SWIGLU,
           CKH_KIND_FFN_GATE_UP);
      emit("mlp.shared_experts.linear_fc2.weight", in("mlp.shared_experts.down_proj.weight"), CKH_PARALLEL_ROW, CKH_KIND_FFN_DOWN);
    }
  };

  {
    const ckh_tensor_annot_t a = annot_of(CKH_ROLE_EMBEDDING, -1, CKH_PARALLEL_VOCAB, CKH_KIND_EMBEDDING);
    b.emit("embedding.word_embeddings.weight", b.input("model.embed_tokens.weight"), &a);
  }
  for (int64_t l = 0; l < c.layers; ++l)
    layer("model.layers." + std::to_string(l) + ".", "decoder.layers." + std::to_string(l) + ".", c.is_moe(l), CKH_ROLE_LAYER,
          static_cast<int32_t>(l));
  {
    const ckh_tensor_annot_t a = annot_of(CKH_ROLE_FINAL_NORM, -1, CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
    b.emit("decoder.final_layernorm.weight", b.input("model.norm.weight"), &a);
  }
  if (!c.tied) {
    const ckh_tensor_annot_t a = annot_of(CKH_ROLE_OUTPUT, -1, CKH_PARALLEL_VOCAB, CKH_KIND_OUTPUT);
    b.emit("output_layer.weight", b.input("lm_head.weight"), &a);
  }
  for (int64_t k = 0; k < mtp; ++k) {
    const std::string p = "model.layers." + std::to_string(c.layers + k) + ".", m = "mtp.layers." + std::to_string(k) + ".";
    const int32_t K = static_cast<int32_t>(k);
    auto emit = [&](const std::string &name, const std::string &hf, int32_t par, int32_t kind) {
      const ckh_tensor_annot_t a = annot_of(CKH_ROLE_MTP, K, par, kind);
      b.emit(m + name, b.input(p + hf), &a);
    };
    emit("enorm.weight", "enorm.weight", CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
    emit("hnorm.weight", "hnorm.weight", CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
    emit("eh_proj.weight", "eh_proj.weight", CKH_PARALLEL_COLUMN, CKH_KIND_OTHER);
    layer(p, m + "transformer_layer.", c.experts > 0, CKH_ROLE_MTP, K);
    emit("final_layernorm.weight", "shared_head.norm.weight", CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
    // Megatron-Core's MTP layers use the model's embedding and output layer.
    for (const char *copy : {"embed_tokens.weight", "shared_head.head.weight"})
      if (b.has(p + copy))
        b.ignore(p + copy, std::string("the MTP layer's copy of the ") + (copy[0] == 'e' ? "embedding" : "LM head") +
                               " (Megatron-Core shares the model's own)");
  }

  json out = meta;
  out["layout"] = "megatron";
  json args = args_from_config(c, cfg, spec, mtp);
  if (grouped) args["moe_grouped_gemm"] = true;
  if (meta.contains("megatron_args") && meta["megatron_args"].is_object()) {
    json merged = meta["megatron_args"];
    for (auto it = args.begin(); it != args.end(); ++it) merged[it.key()] = it.value();
    args = merged;
  }
  out.erase("megatron_args");
  out["args"] = args;
  out["megatron_spec"] = spec;
  b.set_metadata(out.dump());
}

namespace {

int64_t arg_int(const json &a, const char *k, int64_t def = -1) {
  return a.contains(k) && a[k].is_number_integer() ? a[k].get<int64_t>() : def;
}

// An HF config.json for Megatron args of an MLA model (when the checkpoint kept none).
json config_from_args(const json &a) {
  auto num = [&](const char *k) {
    const int64_t v = arg_int(a, k);
    if (v <= 0) fail(CKH_E_FORMAT, std::string("Megatron args lack ") + k + " (give --hf-config with the HF config.json)");
    return v;
  };
  json c;
  const bool sigmoid = a.value("moe_router_score_function", std::string("softmax")) == "sigmoid";
  const int64_t E = arg_int(a, "num_experts", 0);
  const bool mla = a.value("multi_latent_attention", false);
  if (mla) {
    c["model_type"] = E > 0 && !sigmoid ? "deepseek_v2" : "deepseek_v3";
    c["architectures"] = {E > 0 && !sigmoid ? "DeepseekV2ForCausalLM" : "DeepseekV3ForCausalLM"};
    c["num_attention_heads"] = num("num_attention_heads");
    c["num_key_value_heads"] = num("num_attention_heads");
    c["q_lora_rank"] = arg_int(a, "q_lora_rank") > 0 ? json(arg_int(a, "q_lora_rank")) : json(nullptr);
    c["kv_lora_rank"] = num("kv_lora_rank");
    c["qk_nope_head_dim"] = num("qk_head_dim");
    c["qk_rope_head_dim"] = num("qk_pos_emb_head_dim");
    c["v_head_dim"] = num("v_head_dim");
    c["attention_bias"] = false;
  } else {
    // Grouped-query attention with the DeepSeek-V3 router and shared experts: GLM-4.5 (score_mcore claims
    // no other such args).
    if (E == 0 || !sigmoid || !a.value("moe_router_enable_expert_bias", false) || arg_int(a, "moe_shared_expert_intermediate_size", 0) <= 0)
      fail(CKH_E_UNSUPPORTED, "Megatron args without multi_latent_attention are read as GLM-4.5 (sigmoid router with expert "
                              "bias, shared experts); these args differ (give --hf-config with the model's config.json)");
    c["model_type"] = "glm4_moe";
    c["architectures"] = {"Glm4MoeForCausalLM"};
    const int64_t heads = num("num_attention_heads");
    c["num_attention_heads"] = heads;
    c["num_key_value_heads"] = a.value("group_query_attention", false) ? num("num_query_groups") : heads;
    c["head_dim"] = arg_int(a, "kv_channels") > 0 ? arg_int(a, "kv_channels") : num("hidden_size") / heads;
    c["attention_bias"] = a.value("add_qkv_bias", false);
    c["use_qk_norm"] = a.value("qk_layernorm", false);
  }
  c["hidden_size"] = num("hidden_size");
  c["intermediate_size"] = num("ffn_hidden_size");
  c["num_hidden_layers"] = num("num_layers");
  c["vocab_size"] = num("vocab_size");
  c["max_position_embeddings"] = a.value("max_position_embeddings", int64_t{4096});
  c["rms_norm_eps"] = a.value("norm_epsilon", 1e-6);
  c["tie_word_embeddings"] = !a.value("untie_embeddings_and_output_weights", true);
  json rope = {{"rope_theta", a.value("rotary_base", 10000.0)}, {"rope_type", "default"}};
  if (a.value("rope_type", std::string("rope")) == "yarn")
    rope = {{"rope_theta", a.value("rotary_base", 10000.0)}, {"rope_type", "yarn"}, {"factor", a.value("rotary_scaling_factor", 1.0)},
            {"original_max_position_embeddings", a.value("original_max_position_embeddings", int64_t{4096})},
            {"beta_fast", a.value("beta_fast", 32.0)}, {"beta_slow", a.value("beta_slow", 1.0)},
            {"mscale", a.value("mscale", 1.0)}, {"mscale_all_dim", a.value("mscale_all_dim", 0.0)}};
  if (!mla) {
    if (a.value("rope_type", std::string("rope")) != "rope" || a.value("use_rope_scaling", false))
      fail(CKH_E_UNSUPPORTED, "Megatron args: GLM-4.5 has plain RoPE, these args scale it");
    rope["partial_rotary_factor"] = a.value("rotary_percent", 1.0);
  }
  c["rope_parameters"] = rope;
  if (E > 0) {
    const int64_t moe_ffn = arg_int(a, "moe_ffn_hidden_size", num("ffn_hidden_size"));
    c["n_routed_experts"] = E;
    c["moe_intermediate_size"] = moe_ffn;
    const int64_t shared = arg_int(a, "moe_shared_expert_intermediate_size", 0);
    if (shared % moe_ffn != 0)
      fail(CKH_E_FORMAT, "Megatron args.moe_shared_expert_intermediate_size " + std::to_string(shared) +
                             " is not a multiple of moe_ffn_hidden_size " + std::to_string(moe_ffn));
    c["n_shared_experts"] = shared / moe_ffn;
    c["num_experts_per_tok"] = arg_int(a, "moe_router_topk", 2);
    // moe_layer_freq: 1, or a list with the dense layers first (first_k_dense_replace).
    const json freq = a.value("moe_layer_freq", json(1));
    int64_t first = 0;
    if (freq.is_array()) {
      while (first < static_cast<int64_t>(freq.size()) && freq[static_cast<size_t>(first)] == 0) ++first;
      for (size_t l = static_cast<size_t>(first); l < freq.size(); ++l)
        if (freq[l] != 1)
          fail(CKH_E_UNSUPPORTED, "Megatron args.moe_layer_freq " + freq.dump() + ": DeepSeek has its dense layers first, then only MoE layers");
    } else if (!(freq.is_number_integer() && freq.get<int64_t>() == 1)) {
      fail(CKH_E_UNSUPPORTED, "Megatron args.moe_layer_freq = " + freq.dump() + ": only 1 or a per-layer list is supported");
    }
    c["first_k_dense_replace"] = first;
    if (mla) c["moe_layer_freq"] = 1;  // not a GLM-4.5 field
    const int64_t groups = arg_int(a, "moe_router_num_groups", 1), gtop = arg_int(a, "moe_router_group_topk", 1);
    c["n_group"] = groups;
    c["topk_group"] = gtop;
    c["routed_scaling_factor"] = a.contains("moe_router_topk_scaling_factor") && a["moe_router_topk_scaling_factor"].is_number()
                                     ? a["moe_router_topk_scaling_factor"].get<double>()
                                     : 1.0;
    if (!mla) {
      c["norm_topk_prob"] = true;  // Megatron-Core renormalises sigmoid top-k scores
    } else if (sigmoid) {
      c["topk_method"] = "noaux_tc";
      c["scoring_func"] = "sigmoid";
      c["norm_topk_prob"] = true;
    } else {
      if (!a.value("moe_router_pre_softmax", false))
        fail(CKH_E_UNSUPPORTED, "Megatron MLA args with softmax routing but moe_router_pre_softmax false (renormalised top-k) "
                                "match no DeepSeek release (give --hf-config with the model's config.json)");
      c["topk_method"] = groups > 1 ? "group_limited_greedy" : "greedy";
      c["scoring_func"] = "softmax";
    }
  }
  c["num_nextn_predict_layers"] = arg_int(a, "mtp_num_layers", 0);
  c["hidden_act"] = "silu";
  c["torch_dtype"] = a.value("bf16", false) ? "bfloat16" : a.value("fp16", false) ? "float16" : "float32";
  return c;
}

}  // namespace

int32_t score_mcore(const json &meta) {
  if (!meta.is_object() || !meta.contains("args") || !meta["args"].is_object()) return 0;
  const json &a = meta["args"];
  if (!a.value("multi_latent_attention", false)) {
    // GQA: GLM-4.5 only, recognised by its kept config or by its DeepSeek-V3 router with shared experts.
    const bool glm_router = arg_int(a, "num_experts", 0) > 0 && a.value("moe_router_enable_expert_bias", false) &&
                            a.value("moe_router_score_function", std::string()) == "sigmoid" &&
                            arg_int(a, "moe_shared_expert_intermediate_size", 0) > 0 && !a.value("moe_shared_expert_gate", false);
    if (!glm_router) return 0;
    if (meta.contains("config") && meta["config"].is_object())
      return meta["config"].value("model_type", std::string()) == "glm4_moe" ? score(meta["config"]) : 0;
    return 85;
  }
  if (meta.contains("config") && meta["config"].is_object()) return score(meta["config"]);
  return 85;
}

void map_mcore_to_hf(const json &opts, const json &meta, ckh::sdk::Builder &b) {
  (void)opts;
  const json &args = meta.value("args", json::object());
  const bool have_cfg = meta.contains("config") && meta["config"].is_object();
  const json cfg = have_cfg ? meta["config"] : config_from_args(args);
  const Config c = parse_or_fail(cfg);
  std::vector<std::pair<const char *, int64_t>> checks = {{"num_layers", c.layers}, {"hidden_size", c.hidden},
                                                          {"num_attention_heads", c.heads}, {"ffn_hidden_size", c.ffn},
                                                          {"num_experts", c.experts}};
  if (c.mla) {
    checks.insert(checks.end(), {{"kv_lora_rank", c.kv_lora}, {"qk_pos_emb_head_dim", c.rope}, {"v_head_dim", c.v}});
  } else {
    checks.insert(checks.end(), {{"num_query_groups", c.kv_heads}, {"kv_channels", c.head_dim}});
    if (args.contains("multi_latent_attention") && args["multi_latent_attention"] == true)
      fail(CKH_E_FORMAT, "Megatron args.multi_latent_attention is true but config.json is model_type " + c.model_type +
                             " (grouped-query attention)");
  }
  for (auto [k, v] : checks)
    if (args.contains(k) && args[k].is_number_integer() && args[k].get<int64_t>() != v)
      fail(CKH_E_FORMAT, std::string("Megatron args.") + k + " = " + args[k].dump() + " but config.json implies " + std::to_string(v));
  const bool te = c.mla ? b.has("decoder.layers.0.self_attention.linear_kv_up_proj.layer_norm_weight")
                        : b.has("decoder.layers.0.self_attention.linear_qkv.layer_norm_weight");
  const LayerNames nm{te, c.mla};
  const ckh::plugins::gqa::Dims dims{c.heads, c.kv_heads, c.head_dim, c.hidden};
  const std::string impl = args.value("transformer_impl", std::string());
  const std::string source_spec = impl == "local" ? "local" : impl == "transformer_engine" ? "te" : te ? "te" : "local";

  auto layer = [&](const std::string &m, const std::string &p, bool moe, int32_t role, int32_t L) {
    auto emit = [&](const std::string &hf, ckh_expr e) {
      ckh_tensor_annot_t a = ckh::sdk::annot(role, L);
      a.kind = kind_of(p + hf);
      b.emit(p + hf, e, &a);
    };
    auto in = [&](const std::string &n) { return b.input(m + n); };
    // TE-spec dense layers fuse the MLP norm into linear_fc1; an MoE layer keeps pre_mlp_layernorm.
    // torch_dist files of either spec may name them either way, so the name that exists is taken.
    auto either = [&](const std::string &a1, const std::string &a2) { return b.has(m + a1) ? in(a1) : in(a2); };
    emit("input_layernorm.weight", c.mla ? in("input_layernorm.weight")
                                         : either(nm.input_norm(), LayerNames{!te, false}.input_norm()));
    if (!c.mla) {
      auto unfuse = [&](const char *suffix) {
        const std::string s = suffix;
        const auto parts = ckh::plugins::gqa::split(b, in("self_attention.linear_qkv." + s), dims, s == "weight");
        emit("self_attn.q_proj." + s, parts.q);
        emit("self_attn.k_proj." + s, parts.k);
        emit("self_attn.v_proj." + s, parts.v);
      };
      unfuse("weight");
      if (c.qkv_bias) unfuse("bias");
      emit("self_attn.o_proj.weight", in("self_attention.linear_proj.weight"));
      if (c.qk_norm) {
        emit("self_attn.q_norm.weight", in("self_attention.q_layernorm.weight"));
        emit("self_attn.k_norm.weight", in("self_attention.k_layernorm.weight"));
      }
    } else if (c.q_lora > 0) {
      emit("self_attn.q_a_proj.weight", in("self_attention.linear_q_down_proj.weight"));
      emit("self_attn.q_a_layernorm.weight", either(nm.q_norm(), LayerNames{!te}.q_norm()));
      emit("self_attn.q_b_proj.weight", in("self_attention.linear_q_up_proj.weight"));
    } else {
      emit("self_attn.q_proj.weight", in("self_attention.linear_q_proj.weight"));
    }
    if (c.mla) {
      emit("self_attn.kv_a_proj_with_mqa.weight", in("self_attention.linear_kv_down_proj.weight"));
      emit("self_attn.kv_a_layernorm.weight", either(nm.kv_norm(), LayerNames{!te}.kv_norm()));
      emit("self_attn.kv_b_proj.weight", in("self_attention.linear_kv_up_proj.weight"));
      emit("self_attn.o_proj.weight", in("self_attention.linear_proj.weight"));
    }
    if (!moe) {
      emit("post_attention_layernorm.weight", either("mlp.linear_fc1.layer_norm_weight", "pre_mlp_layernorm.weight"));
      const ckh_expr fc1 = in("mlp.linear_fc1.weight");
      emit("mlp.gate_proj.weight", b.slice(fc1, 0, 0, c.ffn));
      emit("mlp.up_proj.weight", b.slice(fc1, 0, c.ffn, c.ffn));
      emit("mlp.down_proj.weight", in("mlp.linear_fc2.weight"));
      return;
    }
    emit("post_attention_layernorm.weight", either("pre_mlp_layernorm.weight", "mlp.linear_fc1.layer_norm_weight"));
    emit("mlp.gate.weight", in("mlp.router.weight"));
    if (c.expert_bias) emit("mlp.gate.e_score_correction_bias", in("mlp.router.expert_bias"));
    for (int64_t e = 0; e < c.experts; ++e) {
      const std::string E = std::to_string(e), x = "mlp.experts." + E + ".";
      const std::string seq = "mlp.experts.local_experts." + E + ".linear_fc1.weight";
      const bool grouped = !b.has(m + seq) && b.has(m + "mlp.experts.linear_fc1.weight" + E);
      const ckh_expr fc1 = in(grouped ? "mlp.experts.linear_fc1.weight" + E : seq);
      const ckh_expr fc2 = in(grouped ? "mlp.experts.linear_fc2.weight" + E : "mlp.experts.local_experts." + E + ".linear_fc2.weight");
      emit(x + "gate_proj.weight", b.slice(fc1, 0, 0, c.moe_ffn));
      emit(x + "up_proj.weight", b.slice(fc1, 0, c.moe_ffn, c.moe_ffn));
      emit(x + "down_proj.weight", fc2);
    }
    if (c.shared > 0) {
      const int64_t sf = c.shared * c.moe_ffn;
      const ckh_expr fc1 = in("mlp.shared_experts.linear_fc1.weight");
      emit("mlp.shared_experts.gate_proj.weight", b.slice(fc1, 0, 0, sf));
      emit("mlp.shared_experts.up_proj.weight", b.slice(fc1, 0, sf, sf));
      emit("mlp.shared_experts.down_proj.weight", in("mlp.shared_experts.linear_fc2.weight"));
    }
  };
  auto vocab_rows = [&](const std::string &name) {
    const ckh_expr e = b.input(name);
    const int64_t rows = b.info(e).shape[0];
    if (rows < c.vocab)
      fail(CKH_E_FORMAT, "tensor '" + name + "' has " + std::to_string(rows) + " rows, vocab_size is " + std::to_string(c.vocab));
    return rows == c.vocab ? e : b.slice(e, 0, 0, c.vocab);
  };
  auto emit_top = [&](const std::string &hf, ckh_expr e, int32_t role, int32_t L = -1) {
    ckh_tensor_annot_t a = ckh::sdk::annot(role, L);
    a.kind = kind_of(hf);
    b.emit(hf, e, &a);
  };
  const ckh_expr embed = vocab_rows("embedding.word_embeddings.weight");
  emit_top("model.embed_tokens.weight", embed, CKH_ROLE_EMBEDDING);
  for (int64_t l = 0; l < c.layers; ++l)
    layer("decoder.layers." + std::to_string(l) + ".", "model.layers." + std::to_string(l) + ".", c.is_moe(l), CKH_ROLE_LAYER,
          static_cast<int32_t>(l));
  emit_top("model.norm.weight", b.input("decoder.final_layernorm.weight"), CKH_ROLE_FINAL_NORM);
  const ckh_expr head = c.tied ? embed : vocab_rows("output_layer.weight");
  if (!c.tied) emit_top("lm_head.weight", head, CKH_ROLE_OUTPUT);
  // MTP layers, in the released checkpoints' layout (with copies of the embedding and the LM head).
  int64_t mtp = 0;
  while (b.has("mtp.layers." + std::to_string(mtp) + ".enorm.weight")) ++mtp;
  if (mtp > c.mtp)
    fail(CKH_E_FORMAT, "the checkpoint has " + std::to_string(mtp) + " MTP layers, config.json num_nextn_predict_layers is " +
                           std::to_string(c.mtp));
  for (int64_t k = 0; k < mtp; ++k) {
    const std::string m = "mtp.layers." + std::to_string(k) + ".", p = "model.layers." + std::to_string(c.layers + k) + ".";
    const int32_t K = static_cast<int32_t>(k);
    emit_top(p + "embed_tokens.weight", embed, CKH_ROLE_MTP, K);
    emit_top(p + "enorm.weight", b.input(m + "enorm.weight"), CKH_ROLE_MTP, K);
    emit_top(p + "hnorm.weight", b.input(m + "hnorm.weight"), CKH_ROLE_MTP, K);
    emit_top(p + "eh_proj.weight", b.input(m + "eh_proj.weight"), CKH_ROLE_MTP, K);
    layer(m + "transformer_layer.", p, c.experts > 0, CKH_ROLE_MTP, K);
    emit_top(p + "shared_head.norm.weight", b.input(m + "final_layernorm.weight"), CKH_ROLE_MTP, K);
    emit_top(p + "shared_head.head.weight", head, CKH_ROLE_MTP, K);
  }
  json out = meta;
  out["layout"] = "hf";
  out["config"] = cfg;  // num_nextn_predict_layers as the model has it, whether or not MTP weights travel
  out["config_modified"] = !have_cfg;
  out["megatron_args"] = args;
  out["megatron_source_spec"] = source_spec;
  out.erase("args");
  b.set_metadata(out.dump());
}

}  // namespace ckh::deepseek
