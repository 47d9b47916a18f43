// mcore_mapper.cpp — Llama family HF <-> Megatron-Core names and layouts (global, unsharded tensors;
// the TP/PP split is Megatron knowledge and lives in the megatron format plugin).
//
//   q/k/v -> linear_qkv: per query group g: [q heads of g (H/G heads); k_g; v_g]   (GQA interleave)
//   gate/up -> linear_fc1 = [gate; up]
//   MoE layers (Mixtral, Qwen3-MoE): post_attention_layernorm -> pre_mlp_layernorm (a module of its own
//            in both specs), gate -> mlp.router.weight, expert e (global index, whatever the EP layout:
//            the writer renumbers per EP rank) -> mlp.experts.local_experts.<e>.linear_fc1 = [w1; w3] and
//            linear_fc2 = w2 (SequentialMLP), or mlp.experts.linear_fc{1,2}.weight<e> (TEGroupedMLP,
//            --moe-grouped-gemm); annotated expert e, group ETP.
//   TE spec: the norms before attention and MLP are fused into linear_qkv / linear_fc1
//            (layer_norm_weight); local spec: input_layernorm / pre_mlp_layernorm.
// Facts: ../shared/research/megatron.md §2a, §2c, §2d, §2f.
#include "mcore_mapper.hpp"

#include <cmath>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "gqa_qkv.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace ckh::llama {

namespace {

std::string spec_of(const json &opts) {
  const std::string s = opts.value("megatron_spec", std::string("te"));
  if (s != "te" && s != "local" && s != "legacy")
    fail(CKH_E_INVALID_ARG, "--megatron-spec must be te, local or legacy, not '" + s + "'");
  return s;
}

// Parameter names of each Megatron naming convention (layer-relative names after the prefix).
struct Names {
  std::string embed, final_norm, output, layers, input_norm, qkv, proj, q_norm, k_norm, post_norm, fc1, fc2;
};
Names names_for(const std::string &spec) {
  if (spec == "legacy")
    return {"language_model.embedding.word_embeddings.weight", "language_model.encoder.final_norm.weight",
            "language_model.output_layer.weight", "language_model.encoder.layers.", "input_norm.weight",
            "self_attention.query_key_value", "self_attention.dense", "", "", "post_attention_norm.weight",
            "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"};
  const bool te = spec == "te";
  return {"embedding.word_embeddings.weight", "decoder.final_layernorm.weight", "output_layer.weight", "decoder.layers.",
          te ? "self_attention.linear_qkv.layer_norm_weight" : "input_layernorm.weight", "self_attention.linear_qkv",
          "self_attention.linear_proj", "self_attention.q_layernorm.weight", "self_attention.k_layernorm.weight",
          te ? "mlp.linear_fc1.layer_norm_weight" : "pre_mlp_layernorm.weight", "mlp.linear_fc1", "mlp.linear_fc2"};
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
  if (c.rope_type == "llama3") {
    // Megatron-Core's apply_rope_scaling takes the factor and uses low 1, high 4, original 8192.
    if (c.rope_low_freq_factor != 1.0 || c.rope_high_freq_factor != 4.0 || c.rope_original_max_pos != 8192)
      fail(CKH_E_UNSUPPORTED, "config.json: llama3 rope scaling with low_freq_factor " + std::to_string(c.rope_low_freq_factor) +
                                  ", high_freq_factor " + std::to_string(c.rope_high_freq_factor) +
                                  ", original_max_position_embeddings " + std::to_string(c.rope_original_max_pos) +
                                  " has no Megatron args (Megatron-Core fixes them at 1, 4 and 8192)");
    a["use_rope_scaling"] = true;
    a["rope_scaling_factor"] = c.rope_factor;
  } else if (c.rope_type == "linear") {
    a["seq_len_interpolation_factor"] = c.rope_factor;
  }
  a["vocab_size"] = c.vocab;
  a["tokenizer_type"] = "HuggingFaceTokenizer";
  a["transformer_impl"] = spec == "te" ? "transformer_engine" : "local";
  a["use_mcore_models"] = spec != "legacy";
  a["use_legacy_models"] = spec == "legacy";
  a["bf16"] = c.dtype == CKH_DT_BF16;
  a["fp16"] = c.dtype == CKH_DT_F16;
  a["attention_dropout"] = 0.0;
  a["hidden_dropout"] = 0.0;
  a["apply_query_key_layer_scaling"] = false;
  a["ckpt_format"] = "torch";
  if (c.experts > 0) {
    // Megatron-Core MoE args (transformer_config.py names). Routing: HF softmax -> top-k -> renormalise
    // equals Megatron's top-k of the logits -> softmax (moe_router_pre_softmax false); without the
    // renormalisation (Qwen3-MoE norm_topk_prob false) it is softmax first, then top-k.
    a["num_experts"] = c.experts;
    a["moe_ffn_hidden_size"] = c.moe_ffn;
    a["moe_router_topk"] = c.experts_per_tok;
    a["moe_router_pre_softmax"] = !c.norm_topk;
    a["moe_router_score_function"] = "softmax";
    a["moe_router_load_balancing_type"] = "aux_loss";
    a["moe_aux_loss_coeff"] = cfg.value("router_aux_loss_coef", 0.0);
    a["moe_token_dispatcher_type"] = "alltoall";
    a["moe_grouped_gemm"] = false;
    a["moe_shared_expert_intermediate_size"] = c.shared_ffn > 0 ? json(c.shared_ffn) : json(nullptr);
    if (c.shared_ffn > 0) a["moe_shared_expert_gate"] = true;  // Qwen2-MoE: sigmoid(shared_expert_gate(x))
    bool all = true;
    json freq = json::array();
    for (int64_t l = 0; l < c.layers; ++l) {
      all = all && c.is_moe(l);
      freq.push_back(c.is_moe(l) ? 1 : 0);
    }
    a["moe_layer_freq"] = all ? json(1) : freq;
  }
  if (c.model_type == "minicpm") {
    // Kept as run-time scalars, as the MiniCPM Megatron forks expect (weights unchanged).
    a["scale_emb"] = c.scale_emb;
    a["dim_model_base"] = c.dim_model_base;
    a["scale_depth"] = c.scale_depth;
  }
  return a;
}

ckh_tensor_annot_t annot_of(int32_t role, int32_t layer, int32_t parallel, int32_t kind) {
  ckh_tensor_annot_t a = ckh::sdk::annot(role, layer);
  a.parallel = parallel;
  a.group = CKH_GROUP_TP;
  a.kind = kind;
  return a;
}

}  // namespace

void map_hf_to_mcore(const json &opts0, const json &meta, ckh::sdk::Builder &b) {
  const json cfg = meta.value("config", json());
  // A Megatron -> Megatron resplit keeps the source's Megatron-Core spec (te or local) unless
  // --megatron-spec says otherwise; legacy sources move to Megatron-Core names (te) by default.
  json opts = opts0;
  if (!opts.contains("megatron_spec") && meta.value("megatron_source_spec", std::string()) == "local")
    opts["megatron_spec"] = "local";
  Config c;
  try {
    c = parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
  if (c.qk_norm_all_heads)
    fail(CKH_E_UNSUPPORTED, "config.json: model_type " + c.model_type + ": self_attn.q_norm / k_norm have " +
                                std::to_string(c.heads * c.head_dim) + " / " + std::to_string(c.kv_heads * c.head_dim) +
                                " weights and normalise across all heads at once; Megatron-Core 0.16.1's qk_layernorm "
                                "normalises each head of head_dim " + std::to_string(c.head_dim) +
                                " on its own, so the converted model would compute differently");
  const std::string spec = spec_of(opts);
  const Names nm = names_for(spec);
  if (spec == "legacy" && c.experts > 0)
    fail(CKH_E_UNSUPPORTED, "model_type " + c.model_type + ": legacy Megatron models have no MoE layers here (legacy "
                                "SwitchMLP is not supported): use --megatron-spec te or local");
  const bool grouped = opts.value("moe_grouped_gemm", false);
  if (grouped && c.experts == 0)
    fail(CKH_E_INVALID_ARG, "--moe-grouped-gemm applies to MoE models, model_type " + c.model_type + " has no experts");
  if (spec == "legacy" && c.qk_norm)
    fail(CKH_E_UNSUPPORTED, "legacy Megatron models have no q/k layernorm (" + c.model_type + "): use --megatron-spec te or local");
  const int64_t H = c.heads, G = c.kv_heads, d = c.head_dim, h = c.hidden;
  // --minicpm-fold: scale_emb into the embedding, 1/(hidden/dim_model_base) into an untied output
  // layer, scale_depth/sqrt(layers) into linear_proj and linear_fc2, for stock Megatron-Core.
  const bool fold = c.model_type == "minicpm" && opts.value("minicpm_fold", false);
  if (opts.value("minicpm_fold", false) && c.model_type != "minicpm")
    fail(CKH_E_INVALID_ARG, "--minicpm-fold applies to MiniCPM models, this is model_type " + c.model_type);
  const double depth = fold ? c.scale_depth / std::sqrt(static_cast<double>(c.layers)) : 1.0;
  auto scaled = [&](ckh_expr e, double f) { return fold && f != 1.0 ? b.scale(e, f) : e; };

  // Kinds by the Megatron module the tensor belongs to.
  auto kind_for = [&](const std::string &name) -> int32_t {
    auto has = [&](const std::string &p) { return !p.empty() && name.find(p) != std::string::npos; };
    if (name == nm.embed) return CKH_KIND_EMBEDDING;
    if (name == nm.output) return CKH_KIND_OUTPUT;
    if (has(nm.input_norm) || has(nm.post_norm) || has(nm.q_norm) || has(nm.k_norm) || name == nm.final_norm)
      return CKH_KIND_NORM;
    if (has(nm.qkv + ".")) return CKH_KIND_ATTN_QKV;
    if (has(nm.proj + ".")) return CKH_KIND_ATTN_OUT;
    if (has(nm.fc1 + ".")) return CKH_KIND_FFN_GATE_UP;
    if (has(nm.fc2 + ".")) return CKH_KIND_FFN_DOWN;
    return CKH_KIND_OTHER;
  };
  auto emit = [&](const std::string &name, ckh_expr e, int32_t role, int32_t layer, int32_t par, int32_t kind = -1,
                  int32_t expert = -1) {
    ckh_tensor_annot_t a = annot_of(role, layer, par, kind >= 0 ? kind : kind_for(name));
    if (expert >= 0) {
      a.expert = expert;
      a.group = CKH_GROUP_ETP;  // whole experts per EP rank, split inside the expert over ETP ranks
    }
    b.emit(name, e, &a);
  };
  // [q; k; v] -> per group [q_g (P heads); k_g; v_g], for weights ([rows, h]) and biases ([rows]).
  const ckh::plugins::gqa::Dims dims{H, G, d, h};
  auto qkv = [&](const std::string &p, const std::string &suffix) {
    auto in = [&](const char *n) { return b.input(p + "self_attn." + n + "." + suffix); };
    return ckh::plugins::gqa::fuse(b, in("q_proj"), in("k_proj"), in("v_proj"), dims, suffix == "weight");
  };

  emit(nm.embed, scaled(b.input("model.embed_tokens.weight"), c.scale_emb), CKH_ROLE_EMBEDDING, -1, CKH_PARALLEL_VOCAB);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string m = nm.layers + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    emit(m + nm.input_norm, b.input(p + "input_layernorm.weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
    emit(m + nm.qkv + ".weight", qkv(p, "weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_COLUMN);
    if (c.qkv_bias) emit(m + nm.qkv + ".bias", qkv(p, "bias"), CKH_ROLE_LAYER, L, CKH_PARALLEL_COLUMN);
    emit(m + nm.proj + ".weight", scaled(b.input(p + "self_attn.o_proj.weight"), depth), CKH_ROLE_LAYER, L,
         CKH_PARALLEL_ROW);
    if (c.o_bias)
      emit(m + nm.proj + ".bias", b.input(p + "self_attn.o_proj.bias"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
    if (c.qk_norm) {
      emit(m + nm.q_norm, b.input(p + "self_attn.q_norm.weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
      emit(m + nm.k_norm, b.input(p + "self_attn.k_norm.weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
    }
    if (c.is_moe(l)) {
      const bool mix = c.w123();
      const std::string moe = p + (mix ? "block_sparse_moe." : "mlp.");
      emit(m + "pre_mlp_layernorm.weight", b.input(p + "post_attention_layernorm.weight"), CKH_ROLE_LAYER, L,
           CKH_PARALLEL_REPLICATED, CKH_KIND_NORM);
      emit(m + "mlp.router.weight", b.input(moe + "gate.weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED,
           CKH_KIND_ROUTER);
      for (int64_t e = 0; e < c.experts; ++e) {
        const std::string x = moe + "experts." + std::to_string(e) + ".";
        const std::string E = std::to_string(e);
        const std::string fc1 = grouped ? m + "mlp.experts.linear_fc1.weight" + E : m + "mlp.experts.local_experts." + E + ".linear_fc1.weight";
        const std::string fc2 = grouped ? m + "mlp.experts.linear_fc2.weight" + E : m + "mlp.experts.local_experts." + E + ".linear_fc2.weight";
        emit(fc1, b.concat({b.input(x + (mix ? "w1.weight" : "gate_proj.weight")), b.input(x + (mix ? "w3.weight" : "up_proj.weight"))}, 0),
             CKH_ROLE_LAYER, L, CKH_PARALLEL_SWIGLU, CKH_KIND_FFN_GATE_UP, static_cast<int32_t>(e));
        emit(fc2, b.input(x + (mix ? "w2.weight" : "down_proj.weight")), CKH_ROLE_LAYER, L, CKH_PARALLEL_ROW,
             CKH_KIND_FFN_DOWN, static_cast<int32_t>(e));
      }
      if (c.shared_ffn > 0) {  // split over TP like a dense MLP (Megatron-Core SharedExpertMLP)
        const std::string se = moe + "shared_expert.";
        emit(m + "mlp.shared_experts.linear_fc1.weight",
             b.concat({b.input(se + "gate_proj.weight"), b.input(se + "up_proj.weight")}, 0), CKH_ROLE_LAYER, L,
             CKH_PARALLEL_SWIGLU, CKH_KIND_FFN_GATE_UP);
        emit(m + "mlp.shared_experts.linear_fc2.weight", b.input(se + "down_proj.weight"), CKH_ROLE_LAYER, L,
             CKH_PARALLEL_ROW, CKH_KIND_FFN_DOWN);
        emit(m + "mlp.shared_experts.gate_weight", b.input(moe + "shared_expert_gate.weight"), CKH_ROLE_LAYER, L,
             CKH_PARALLEL_REPLICATED, CKH_KIND_ROUTER);
      }
      continue;
    }
    emit(m + nm.post_norm, b.input(p + "post_attention_layernorm.weight"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
    emit(m + nm.fc1 + ".weight",
         b.concat({b.input(p + "mlp.gate_proj.weight"), b.input(p + "mlp.up_proj.weight")}, 0), CKH_ROLE_LAYER, L,
         CKH_PARALLEL_SWIGLU);
    if (c.mlp_bias)
      emit(m + nm.fc1 + ".bias", b.concat({b.input(p + "mlp.gate_proj.bias"), b.input(p + "mlp.up_proj.bias")}, 0),
           CKH_ROLE_LAYER, L, CKH_PARALLEL_SWIGLU);
    emit(m + nm.fc2 + ".weight", scaled(b.input(p + "mlp.down_proj.weight"), depth), CKH_ROLE_LAYER, L, CKH_PARALLEL_ROW);
    if (c.mlp_bias)
      emit(m + nm.fc2 + ".bias", b.input(p + "mlp.down_proj.bias"), CKH_ROLE_LAYER, L, CKH_PARALLEL_REPLICATED);
  }
  emit(nm.final_norm, b.input("model.norm.weight"), CKH_ROLE_FINAL_NORM, -1, CKH_PARALLEL_REPLICATED);
  if (fold) {
    const std::string head = c.tied ? "model.embed_tokens.weight" : "lm_head.weight";
    emit(nm.output, b.scale(b.input(head), c.dim_model_base / static_cast<double>(c.hidden)), CKH_ROLE_OUTPUT, -1,
         CKH_PARALLEL_VOCAB);
  } else if (!c.tied) {
    emit(nm.output, b.input("lm_head.weight"), CKH_ROLE_OUTPUT, -1, CKH_PARALLEL_VOCAB);
  }

  json out = meta;
  out["layout"] = "megatron";
  json args = args_from_config(c, cfg, spec);
  if (grouped) args["moe_grouped_gemm"] = true;
  if (meta.contains("megatron_args") && meta["megatron_args"].is_object()) {
    json merged = meta["megatron_args"];
    for (auto it = args.begin(); it != args.end(); ++it) merged[it.key()] = it.value();
    args = merged;
  }
  if (fold) {
    for (const char *k : {"scale_emb", "dim_model_base", "scale_depth"}) args.erase(k);
    args["untie_embeddings_and_output_weights"] = true;
    args["minicpm_folded"] = {{"scale_emb", c.scale_emb}, {"dim_model_base", c.dim_model_base}, {"scale_depth", c.scale_depth}};
  }
  out.erase("megatron_args");
  out["args"] = args;
  out["megatron_spec"] = spec;
  b.set_metadata(out.dump());
}

}  // namespace ckh::llama

namespace ckh::llama {

namespace {

// The HF config.json a Megatron args Namespace implies (used when no HF config was kept).
json config_from_args(const json &a) {
  auto num = [&](const char *k) -> int64_t {
    if (!a.contains(k) || !a[k].is_number_integer()) fail(CKH_E_FORMAT, std::string("Megatron args lack '") + k +
                                                                            "' (give --hf-config with the HF config.json)");
    return a[k].get<int64_t>();
  };
  const int64_t heads = num("num_attention_heads");
  const bool gqa = a.value("group_query_attention", false);
  const int64_t groups = gqa ? num("num_query_groups") : heads;
  const bool qkv_bias = a.value("add_qkv_bias", false), qk_norm = a.value("qk_layernorm", false);
  json c;
  c["model_type"] = qk_norm ? "qwen3" : qkv_bias ? "qwen2" : "llama";
  c["architectures"] = {qk_norm ? "Qwen3ForCausalLM" : qkv_bias ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  c["hidden_size"] = num("hidden_size");
  c["intermediate_size"] = num("ffn_hidden_size");
  c["num_hidden_layers"] = num("num_layers");
  c["num_attention_heads"] = heads;
  c["num_key_value_heads"] = groups;
  if (a.contains("kv_channels") && a["kv_channels"].is_number_integer()) c["head_dim"] = a["kv_channels"];
  if (!a.contains("vocab_size") || !a["vocab_size"].is_number_integer())
    fail(CKH_E_FORMAT, "Megatron args lack the true vocab_size (give --hf-config with the HF config.json)");
  c["vocab_size"] = a["vocab_size"];
  c["max_position_embeddings"] = a.value("max_position_embeddings", int64_t{4096});
  c["rms_norm_eps"] = a.value("norm_epsilon", 1e-5);
  c["rope_theta"] = a.value("rotary_base", 10000.0);
  if (a.value("use_rope_scaling", false)) {
    c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", a.value("rope_scaling_factor", 8.0)}, {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  } else if (a.contains("seq_len_interpolation_factor") && a["seq_len_interpolation_factor"].is_number()) {
    c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", a["seq_len_interpolation_factor"]}};
  }
  c["tie_word_embeddings"] = !a.value("untie_embeddings_and_output_weights", true);
  if (a.contains("num_experts") && a["num_experts"].is_number_integer() && a["num_experts"].get<int64_t>() > 0) {
    // Mixtral (every layer MoE, experts as wide as ffn_hidden_size, renormalised top-k) or Qwen3-MoE
    // (q/k layernorm; dense layers from a moe_layer_freq list).
    const int64_t E = a["num_experts"].get<int64_t>();
    const int64_t moe_ffn = a.contains("moe_ffn_hidden_size") && a["moe_ffn_hidden_size"].is_number_integer()
                                ? a["moe_ffn_hidden_size"].get<int64_t>()
                                : num("ffn_hidden_size");
    json dense = json::array();
    const json freq = a.value("moe_layer_freq", json(1));
    if (freq.is_array()) {
      if (static_cast<int64_t>(freq.size()) != num("num_layers"))
        fail(CKH_E_FORMAT, "Megatron args.moe_layer_freq has " + std::to_string(freq.size()) + " entries, args.num_layers is " +
                               std::to_string(num("num_layers")));
      for (size_t l = 0; l < freq.size(); ++l)
        if (freq[l] == 0) dense.push_back(static_cast<int64_t>(l));
    } else if (!(freq.is_number_integer() && freq.get<int64_t>() == 1)) {
      fail(CKH_E_UNSUPPORTED, "Megatron args.moe_layer_freq = " + freq.dump() + ": only 1 or a per-layer list is supported");
    }
    const bool pre_softmax = a.value("moe_router_pre_softmax", false);
    const int64_t topk = a.contains("moe_router_topk") && a["moe_router_topk"].is_number_integer() ? a["moe_router_topk"].get<int64_t>() : 2;
    const bool shared = a.contains("moe_shared_expert_intermediate_size") && a["moe_shared_expert_intermediate_size"].is_number_integer();
    if (shared) {
      if (qk_norm || !qkv_bias || !a.value("moe_shared_expert_gate", false))
        fail(CKH_E_UNSUPPORTED, "Megatron MoE args with shared experts are read as Qwen2-MoE (gated shared expert, q/k/v "
                                "biases, no q/k layernorm); these args differ (give --hf-config with the model's config.json)");
      c["model_type"] = "qwen2_moe";
      c["architectures"] = {"Qwen2MoeForCausalLM"};
      c["num_experts"] = E;
      c["moe_intermediate_size"] = moe_ffn;
      c["shared_expert_intermediate_size"] = a["moe_shared_expert_intermediate_size"];
      c["norm_topk_prob"] = !pre_softmax;
      c["decoder_sparse_step"] = 1;
      c["mlp_only_layers"] = dense;
      c["use_sliding_window"] = false;
    } else if (qk_norm) {
      c["model_type"] = "qwen3_moe";
      c["architectures"] = {"Qwen3MoeForCausalLM"};
      c["num_experts"] = E;
      c["moe_intermediate_size"] = moe_ffn;
      c["norm_topk_prob"] = !pre_softmax;
      c["decoder_sparse_step"] = 1;
      c["mlp_only_layers"] = dense;
    } else {
      if (!dense.empty() || moe_ffn != num("ffn_hidden_size") || pre_softmax)
        fail(CKH_E_UNSUPPORTED, "Megatron MoE args without q/k layernorm are read as Mixtral, which has MoE in every layer, "
                                "experts as wide as ffn_hidden_size and renormalised top-k routing; these args differ "
                                "(give --hf-config with the model's config.json)");
      c["model_type"] = "mixtral";
      c["architectures"] = {"MixtralForCausalLM"};
      c["num_local_experts"] = E;
    }
    c["num_experts_per_tok"] = topk;
  }
  c["attention_bias"] = false;
  c["hidden_act"] = "silu";
  c["torch_dtype"] = a.value("bf16", false) ? "bfloat16" : a.value("fp16", false) ? "float16" : "float32";
  return c;
}

}  // namespace

int32_t score_mcore(const json &meta) {
  if (!meta.is_object() || !meta.contains("args") || !meta["args"].is_object()) return 0;
  const json &a = meta["args"];
  if (a.value("multi_latent_attention", false)) return 0;  // MLA: the DeepSeek plugin's
  // MoE: Mixtral / Qwen3-MoE only (no shared experts, no MLA); a checkpoint of another MoE family is
  // never claimed, so its experts are not dropped.
  const bool moe = a.contains("num_experts") && a["num_experts"].is_number_integer() && a["num_experts"].get<int64_t>() > 0;
  // Sigmoid routers with an expert bias (GLM-4.5: the DeepSeek plugin's) are none of this plugin's MoE models.
  if (moe && (a.value("moe_router_enable_expert_bias", false) || a.value("moe_router_score_function", std::string("softmax")) != "softmax"))
    return 0;
  const bool shared = a.contains("moe_shared_expert_intermediate_size") && !a["moe_shared_expert_intermediate_size"].is_null();
  // Shared experts only as Qwen2-MoE has them: gated, with q/k/v biases and no q/k norm.
  if (moe && (a.value("multi_latent_attention", false) ||
              (shared && !(a.value("moe_shared_expert_gate", false) && a.value("add_qkv_bias", false) &&
                           !a.value("qk_layernorm", false)))))
    return 0;
  if (meta.contains("config") && meta["config"].is_object()) {
    const json &cfg = meta["config"];
    Config c;
    try {
      c = parse_config(cfg);
    } catch (const std::exception &) {
      return 0;
    }
    if ((c.experts > 0) != moe) return 0;  // the kept config.json is not this checkpoint's model
    return score(cfg);
  }
  const bool llama_like = a.value("swiglu", false) && a.value("normalization", std::string()) == "RMSNorm" &&
                          a.value("position_embedding_type", std::string("rope")) == "rope";
  return llama_like ? 70 : 0;
}

void map_mcore_to_hf(const json &opts, const json &meta, ckh::sdk::Builder &b) {
  (void)opts;
  const json &args = meta.value("args", json::object());
  const bool have_cfg = meta.contains("config") && meta["config"].is_object();
  const json cfg = have_cfg ? meta["config"] : config_from_args(args);
  Config c;
  try {
    c = parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
  if (c.experts > 0 && args.contains("num_experts") && args["num_experts"].is_number_integer() &&
      args["num_experts"].get<int64_t>() != c.experts)
    fail(CKH_E_FORMAT, "Megatron args.num_experts = " + args["num_experts"].dump() + " but config.json implies " +
                           std::to_string(c.experts));
  // The checkpoint must be the model the config describes.
  for (auto [k, v] : {std::pair<const char *, int64_t>{"num_layers", c.layers}, {"hidden_size", c.hidden},
                      {"num_attention_heads", c.heads}, {"ffn_hidden_size", c.ffn}})
    if (args.contains(k) && args[k].is_number_integer() && args[k].get<int64_t>() != v)
      fail(CKH_E_FORMAT, std::string("Megatron args.") + k + " = " + args[k].dump() + " but config.json implies " +
                             std::to_string(v));
  const std::string by_names = b.has("language_model.embedding.word_embeddings.weight")                ? "legacy"
                               : b.has("decoder.layers.0.self_attention.linear_qkv.layer_norm_weight") ? "te"
                                                                                                         : "local";
  const Names nm = names_for(by_names);
  // The spec the checkpoint was trained with: args.transformer_impl (torch_dist files of the local spec
  // carry the TE names of their norms), else the names.
  const std::string impl = args.value("transformer_impl", std::string());
  const std::string source_spec = by_names == "legacy" ? "legacy" : impl == "local" ? "local" : impl == "transformer_engine" ? "te" : by_names;
  const int64_t H = c.heads, G = c.kv_heads, d = c.head_dim, h = c.hidden;
  // A MiniCPM checkpoint folded for stock Megatron (--minicpm-fold) is unfolded; exact up to rounding.
  const bool folded = args.contains("minicpm_folded") && args["minicpm_folded"].is_object();
  double emb_f = 1.0, depth_f = 1.0, head_f = 1.0;
  if (folded) {
    const json &f = args["minicpm_folded"];
    emb_f = 1.0 / f.value("scale_emb", 1.0);
    depth_f = std::sqrt(static_cast<double>(c.layers)) / f.value("scale_depth", 1.0);
    head_f = static_cast<double>(c.hidden) / f.value("dim_model_base", static_cast<double>(c.hidden));
  }
  auto unscale = [&](ckh_expr e, double f) { return folded && f != 1.0 ? b.scale(e, f) : e; };

  auto emit = [&](const std::string &name, ckh_expr e, int32_t role, int32_t layer) {
    ckh_tensor_annot_t a = ckh::sdk::annot(role, layer);
    a.kind = kind_of(name);
    b.emit(name, e, &a);
  };
  const ckh::plugins::gqa::Dims dims{H, G, d, h};
  auto unqkv = [&](const std::string &m, const std::string &suffix, const std::string &p) {
    const auto parts = ckh::plugins::gqa::split(b, b.input(m + nm.qkv + "." + suffix), dims, suffix == "weight");
    emit(p + "self_attn.q_proj." + suffix, parts.q, CKH_ROLE_LAYER, -1);
    emit(p + "self_attn.k_proj." + suffix, parts.k, CKH_ROLE_LAYER, -1);
    emit(p + "self_attn.v_proj." + suffix, parts.v, CKH_ROLE_LAYER, -1);
  };
  auto vocab_rows = [&](const std::string &name) {
    const ckh_expr e = b.input(name);
    const int64_t rows = b.info(e).shape[0];
    if (rows < c.vocab) fail(CKH_E_FORMAT, "tensor '" + name + "' has " + std::to_string(rows) + " rows, vocab_size is " +
                                               std::to_string(c.vocab));
    return rows == c.vocab ? e : b.slice(e, 0, 0, c.vocab);
  };
  emit("model.embed_tokens.weight", unscale(vocab_rows(nm.embed), emb_f), CKH_ROLE_EMBEDDING, -1);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const std::string m = nm.layers + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    emit(p + "input_layernorm.weight", b.input(m + nm.input_norm), CKH_ROLE_LAYER, L);
    unqkv(m, "weight", p);
    if (c.qkv_bias) unqkv(m, "bias", p);
    emit(p + "self_attn.o_proj.weight", unscale(b.input(m + nm.proj + ".weight"), depth_f), CKH_ROLE_LAYER, L);
    if (c.o_bias) emit(p + "self_attn.o_proj.bias", b.input(m + nm.proj + ".bias"), CKH_ROLE_LAYER, L);
    if (c.qk_norm) {
      emit(p + "self_attn.q_norm.weight", b.input(m + nm.q_norm), CKH_ROLE_LAYER, L);
      emit(p + "self_attn.k_norm.weight", b.input(m + nm.k_norm), CKH_ROLE_LAYER, L);
    }
    if (c.is_moe(l)) {
      const bool mix = c.w123();
      const std::string moe = p + (mix ? "block_sparse_moe." : "mlp.");
      // torch_dist files of the local spec keep an MoE layer's pre_mlp_layernorm under the fused name.
      const std::string pre = b.has(m + "pre_mlp_layernorm.weight") ? m + "pre_mlp_layernorm.weight" : m + "mlp.linear_fc1.layer_norm_weight";
      emit(p + "post_attention_layernorm.weight", b.input(pre), CKH_ROLE_LAYER, L);
      emit(moe + "gate.weight", b.input(m + "mlp.router.weight"), CKH_ROLE_LAYER, L);
      for (int64_t e = 0; e < c.experts; ++e) {
        const std::string E = std::to_string(e), x = moe + "experts." + E + ".";
        const std::string seq = m + "mlp.experts.local_experts." + E + ".linear_fc1.weight";
        const bool grouped = !b.has(seq) && b.has(m + "mlp.experts.linear_fc1.weight" + E);
        const ckh_expr fc1 = b.input(grouped ? m + "mlp.experts.linear_fc1.weight" + E : seq);
        const ckh_expr fc2 =
            b.input(grouped ? m + "mlp.experts.linear_fc2.weight" + E : m + "mlp.experts.local_experts." + E + ".linear_fc2.weight");
        emit(x + (mix ? "w1.weight" : "gate_proj.weight"), b.slice(fc1, 0, 0, c.moe_ffn), CKH_ROLE_LAYER, L);
        emit(x + (mix ? "w2.weight" : "down_proj.weight"), fc2, CKH_ROLE_LAYER, L);
        emit(x + (mix ? "w3.weight" : "up_proj.weight"), b.slice(fc1, 0, c.moe_ffn, c.moe_ffn), CKH_ROLE_LAYER, L);
      }
      if (c.shared_ffn > 0) {
        const ckh_expr fc1 = b.input(m + "mlp.shared_experts.linear_fc1.weight");
        emit(moe + "shared_expert.gate_proj.weight", b.slice(fc1, 0, 0, c.shared_ffn), CKH_ROLE_LAYER, L);
        emit(moe + "shared_expert.up_proj.weight", b.slice(fc1, 0, c.shared_ffn, c.shared_ffn), CKH_ROLE_LAYER, L);
        emit(moe + "shared_expert.down_proj.weight", b.input(m + "mlp.shared_experts.linear_fc2.weight"), CKH_ROLE_LAYER, L);
        emit(moe + "shared_expert_gate.weight", b.input(m + "mlp.shared_experts.gate_weight"), CKH_ROLE_LAYER, L);
      }
      continue;
    }
    emit(p + "post_attention_layernorm.weight", b.input(m + nm.post_norm), CKH_ROLE_LAYER, L);
    const ckh_expr fc1 = b.input(m + nm.fc1 + ".weight");
    emit(p + "mlp.gate_proj.weight", b.slice(fc1, 0, 0, c.ffn), CKH_ROLE_LAYER, L);
    emit(p + "mlp.up_proj.weight", b.slice(fc1, 0, c.ffn, c.ffn), CKH_ROLE_LAYER, L);
    if (c.mlp_bias) {
      const ckh_expr fb = b.input(m + nm.fc1 + ".bias");
      emit(p + "mlp.gate_proj.bias", b.slice(fb, 0, 0, c.ffn), CKH_ROLE_LAYER, L);
      emit(p + "mlp.up_proj.bias", b.slice(fb, 0, c.ffn, c.ffn), CKH_ROLE_LAYER, L);
    }
    emit(p + "mlp.down_proj.weight", unscale(b.input(m + nm.fc2 + ".weight"), depth_f), CKH_ROLE_LAYER, L);
    if (c.mlp_bias) emit(p + "mlp.down_proj.bias", b.input(m + nm.fc2 + ".bias"), CKH_ROLE_LAYER, L);
  }
  emit("model.norm.weight", b.input(nm.final_norm), CKH_ROLE_FINAL_NORM, -1);
  if (!c.tied) emit("lm_head.weight", unscale(vocab_rows(nm.output), head_f), CKH_ROLE_OUTPUT, -1);
  else if (folded && b.has(nm.output)) b.ignore(nm.output, "folded copy of the tied embedding");
  json out = meta;
  out["layout"] = "hf";
  out["config"] = cfg;
  out["config_modified"] = !have_cfg;
  out["megatron_args"] = args;  // lets a Megatron -> Megatron resplit keep the training args
  out["megatron_source_spec"] = source_spec;  // ... and its layer spec
  out.erase("args");
  b.set_metadata(out.dump());
}

}  // namespace ckh::llama
