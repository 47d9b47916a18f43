// deepseek_config.cpp — see deepseek_config.hpp.
#include "deepseek_config.hpp"

#include <algorithm>
#include <stdexcept>

#include "config_fields.hpp"

namespace ckh::deepseek {

namespace {

using nlohmann::json;
using namespace ckh::plugins::config;

const char *const kArchs[] = {"DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM", "Glm4MoeForCausalLM", "DeepseekV32ForCausalLM",
                              "GlmMoeDsaForCausalLM"};

void parse_rope(const json &cfg, Config &c) {
  // transformers >= 5: "rope_parameters"; the released configs: "rope_theta" + "rope_scaling".
  const bool v5 = present(cfg, "rope_parameters");
  if (v5 && !cfg["rope_parameters"].is_object()) bad("'rope_parameters' must be an object, got " + cfg["rope_parameters"].dump());
  const json none = json::object();
  const json &rp = v5 ? cfg["rope_parameters"] : none;
  c.rope_theta = present(rp, "rope_theta") ? opt_num(rp, "rope_theta", c.rope_theta) : opt_num(cfg, "rope_theta", c.rope_theta);
  if (!(c.rope_theta > 0)) bad("rope_theta must be positive");
  const json *rs = &rp;
  if (!v5 && present(cfg, "rope_scaling")) {
    if (!cfg["rope_scaling"].is_object()) bad("'rope_scaling' must be an object or null, got " + cfg["rope_scaling"].dump());
    rs = &cfg["rope_scaling"];
  }
  c.rope_type = opt_str(*rs, present(*rs, "rope_type") ? "rope_type" : "type", "default");
  if (c.rope_type == "default") return;
  if (c.rope_type != "yarn") bad("rope type '" + c.rope_type + "' is not supported for DeepSeek (default and yarn are)");
  c.rope_factor = opt_num(*rs, "factor", 1.0);
  c.rope_original_max_pos = opt_int(*rs, "original_max_position_embeddings", c.rope_original_max_pos);
  c.beta_fast = opt_num(*rs, "beta_fast", c.beta_fast);
  c.beta_slow = opt_num(*rs, "beta_slow", c.beta_slow);
  c.mscale = opt_num(*rs, "mscale", c.mscale);
  c.mscale_all_dim = opt_num(*rs, "mscale_all_dim", c.mscale_all_dim);
  if (!(c.rope_factor > 0)) bad("yarn factor must be positive");
}

void parse_gqa(const json &cfg, int64_t kvh, Config &c);
void parse_mla(const json &cfg, Config &c);
void parse_moe(const json &cfg, bool v3, bool glm, bool dsa, Config &c);
void parse_dsa(const json &cfg, Config &c);

}  // namespace

const std::vector<std::string> &model_types() {
  static const std::vector<std::string> t = {"deepseek_v2", "deepseek_v3", "glm4_moe", "deepseek_v32", "glm_moe_dsa"};
  return t;
}

int score(const json &cfg) noexcept {
  try {
    if (!cfg.is_object()) return 0;
    if (cfg.contains("model_type") && cfg["model_type"].is_string()) {
      const std::string mt = cfg["model_type"].get<std::string>();
      for (const auto &t : model_types())
        if (mt == t) {
          (void)parse_config(cfg);  // a partial config (no layer list) is not claimed: the checkpoint stays model-less
          return 90;
        }
      return 0;
    }
    if (cfg.contains("architectures") && cfg["architectures"].is_array())
      for (const auto &a : cfg["architectures"])
        if (a.is_string())
          for (const char *k : kArchs)
            if (a.get<std::string>() == k) return 80;
  } catch (...) {
  }
  return 0;
}

Config parse_config(const json &cfg) {
  if (!cfg.is_object()) throw std::invalid_argument("config.json is missing or not a JSON object");
  Config c;
  c.model_type = opt_str(cfg, "model_type", "");
  if (c.model_type.empty()) {
    c.model_type = "deepseek_v3";
    if (present(cfg, "architectures") && cfg["architectures"].is_array())
      for (const auto &a : cfg["architectures"])
        if (a == "DeepseekV2ForCausalLM") c.model_type = "deepseek_v2";
  }
  const auto &known = model_types();
  if (std::find(known.begin(), known.end(), c.model_type) == known.end())
    bad("model_type '" + c.model_type + "' is not deepseek_v2, deepseek_v3, glm4_moe, deepseek_v32 or glm_moe_dsa");
  const bool glm = c.model_type == "glm4_moe";
  // DeepSeek-V3.2 and GLM-5: DeepSeek-V3 with the sparse-attention indexer.
  const bool dsa = c.model_type == "deepseek_v32" || c.model_type == "glm_moe_dsa";
  // The V3 router (sigmoid, e_score_correction_bias, group top-2) is GLM-4.5's, V3.2's and GLM-5's too.
  const bool v3 = c.model_type == "deepseek_v3" || glm || dsa;
  c.hidden = need_int(cfg, "hidden_size");
  c.layers = need_int(cfg, "num_hidden_layers");
  c.heads = need_int(cfg, "num_attention_heads");
  const int64_t kvh = opt_int(cfg, "num_key_value_heads", c.heads);
  c.vocab = need_int(cfg, "vocab_size");
  c.ffn = need_int(cfg, "intermediate_size");
  if (glm) {
    parse_gqa(cfg, kvh, c);
  } else {
    if (kvh != c.heads)
      bad("num_key_value_heads " + std::to_string(kvh) + " differs from num_attention_heads " + std::to_string(c.heads) +
          ": MLA has one latent per token, not key/value head groups");
    parse_mla(cfg, c);
  }
  if (opt_bool(cfg, "mlp_bias", false)) bad("mlp_bias true is not supported");
  const std::string act = opt_str(cfg, "hidden_act", "silu");
  if (act != "silu") bad("hidden_act '" + act + "' is not supported (silu is)");
  parse_moe(cfg, v3, glm, dsa, c);
  if (dsa) parse_dsa(cfg, c);
  c.mtp = v3 ? opt_count(cfg, "num_nextn_predict_layers", glm ? 1 : 0) : 0;  // Glm4MoeConfig: num_mtp_layers 1
  c.tied = opt_bool(cfg, "tie_word_embeddings", false);
  c.max_pos = opt_int(cfg, "max_position_embeddings", 4096);
  c.dtype = ckh::plugins::config::model_dtype(cfg);
  c.rms_eps = opt_num(cfg, "rms_norm_eps", c.rms_eps);
  parse_rope(cfg, c);
  if (glm) {
    if (c.rope_type != "default") bad("GLM-4.5 rope type '" + c.rope_type + "' is not supported (default is)");
    // transformers Glm4MoeRotaryEmbedding: rotary dim int(head_dim * partial_rotary_factor), rotate_half
    // over the first dims of each head; partial_rotary_factor in rope_parameters (transformers 5) or at
    // the top level (the released configs), 0.5 when absent (Glm4MoeConfig's default).
    const json &rp = present(cfg, "rope_parameters") ? cfg["rope_parameters"] : cfg;
    c.partial_rotary = present(rp, "partial_rotary_factor") ? opt_num(rp, "partial_rotary_factor", 0.5)
                                                            : opt_num(cfg, "partial_rotary_factor", 0.5);
    if (!(c.partial_rotary > 0 && c.partial_rotary <= 1)) bad("partial_rotary_factor must be in (0, 1]");
    const int64_t rot = static_cast<int64_t>(static_cast<double>(c.head_dim) * c.partial_rotary);
    if (rot % 2 != 0 || rot == 0)
      bad("head_dim " + std::to_string(c.head_dim) + " * partial_rotary_factor gives rotary dim " + std::to_string(rot) +
          ", which must be even and positive");
  }
  return c;
}

namespace {

void parse_gqa(const json &cfg, int64_t kvh, Config &c) {
  c.mla = false;
  c.kv_heads = kvh;
  if (c.heads % c.kv_heads != 0)
    bad("num_attention_heads " + std::to_string(c.heads) + " is not a multiple of num_key_value_heads " + std::to_string(c.kv_heads));
  if (present(cfg, "head_dim")) {
    c.head_dim = need_int(cfg, "head_dim");
  } else {
    if (c.hidden % c.heads != 0)
      bad("hidden_size " + std::to_string(c.hidden) + " is not a multiple of num_attention_heads " + std::to_string(c.heads) +
          " (and head_dim is not given)");
    c.head_dim = c.hidden / c.heads;
  }
  if (c.heads * c.head_dim > kMaxDim) bad("num_attention_heads * head_dim is too large");
  c.qkv_bias = opt_bool(cfg, "attention_bias", false);  // Glm4MoeAttention: q/k/v only, o_proj has none
  c.qk_norm = opt_bool(cfg, "use_qk_norm", false);
}

void parse_mla(const json &cfg, Config &c) {
  c.q_lora = opt_count(cfg, "q_lora_rank", 0);
  c.kv_lora = need_int(cfg, "kv_lora_rank");
  c.nope = need_int(cfg, "qk_nope_head_dim");
  c.rope = need_int(cfg, "qk_rope_head_dim");
  c.v = need_int(cfg, "v_head_dim");
  if (c.rope % 2 != 0) bad("qk_rope_head_dim " + std::to_string(c.rope) + " is odd");
  if (c.heads * (c.nope + c.rope + c.v) > kMaxDim) bad("num_attention_heads * head dims is too large");
  if (opt_bool(cfg, "attention_bias", false)) bad("attention_bias true (biased q_a_proj) is not supported");
}

void parse_moe(const json &cfg, bool v3, bool glm, bool dsa, Config &c) {
  // Experts: "n_routed_experts" in the released configs; transformers 5 writes it back so, V2 also
  // answers to "num_experts".
  const char *ek = present(cfg, "n_routed_experts") ? "n_routed_experts" : present(cfg, "num_local_experts") ? "num_local_experts" : "num_experts";
  c.experts = opt_count(cfg, ek, 0);
  if (c.experts > 0) {
    c.moe_ffn = need_int(cfg, "moe_intermediate_size");
    c.shared = opt_count(cfg, "n_shared_experts", glm || dsa ? 1 : 0);
    // Glm4MoeMoE always builds its shared expert (moe_intermediate_size * n_shared_experts rows).
    if (glm && c.shared == 0) bad("n_shared_experts 0: GLM-4.5's MoE layers always have a shared expert");
    c.topk = need_int(cfg, "num_experts_per_tok");
    // DeepseekV32Config / GlmMoeDsaConfig default to 3 dense layers first.
    c.first_dense = opt_count(cfg, "first_k_dense_replace", glm ? 1 : dsa ? 3 : 0);
    c.moe_freq = opt_int(cfg, "moe_layer_freq", 1);
    c.n_group = opt_int(cfg, "n_group", 1);
    c.topk_group = opt_int(cfg, "topk_group", 1);
    c.routed_scaling = opt_num(cfg, "routed_scaling_factor", 1.0);
    // GLM-4.5 has neither field: its Glm4MoeTopkRouter is DeepSeek-V3's noaux_tc sigmoid router.
    c.topk_method = glm ? "noaux_tc" : opt_str(cfg, "topk_method", v3 ? "noaux_tc" : "greedy");
    c.scoring = glm ? "sigmoid" : opt_str(cfg, "scoring_func", v3 ? "sigmoid" : "softmax");
    if (glm && present(cfg, "moe_layer_freq")) bad("'moe_layer_freq' is not a GLM-4.5 field (MoE from first_k_dense_replace on)");
    if (c.topk > c.experts) bad("num_experts_per_tok " + std::to_string(c.topk) + " exceeds the " + std::to_string(c.experts) + " experts");
    if (c.experts % c.n_group != 0) bad("n_group " + std::to_string(c.n_group) + " does not divide the " + std::to_string(c.experts) + " experts");
    if (c.topk_group > c.n_group) bad("topk_group " + std::to_string(c.topk_group) + " exceeds n_group " + std::to_string(c.n_group));
    if (v3) {
      // transformers' DeepseekV3TopkRouter: sigmoid scores, e_score_correction_bias for the choice only.
      if (c.scoring != "sigmoid") bad("DeepSeek-V3 scoring_func '" + c.scoring + "' is not supported (sigmoid is)");
      if (c.topk_method != "noaux_tc") bad("DeepSeek-V3 topk_method '" + c.topk_method + "' is not supported (noaux_tc is)");
      c.norm_topk = opt_bool(cfg, "norm_topk_prob", true);
      c.expert_bias = true;
    } else {
      if (c.scoring != "softmax") bad("DeepSeek-V2 scoring_func '" + c.scoring + "' is not supported (softmax is)");
      if (c.topk_method != "greedy" && c.topk_method != "group_limited_greedy")
        bad("DeepSeek-V2 topk_method '" + c.topk_method + "' is not supported (greedy and group_limited_greedy are)");
      c.norm_topk = false;  // transformers' DeepseekV2TopkRouter never renormalises
    }
  }
}

// transformers 5.24 DeepseekV32Config / GlmMoeDsaConfig: the indexer (index_n_heads heads of index_head_dim;
// wq_b reads the q_lora latent, so q_lora_rank must be set), mlp_layer_types ("dense" / "sparse" per layer,
// what the decoder layers are built from; first_k_dense_replace when absent) and, for GLM-5, indexer_types
// ("full" layers run an indexer, "shared" ones reuse the previous full layer's choice and have none; when
// absent, from index_topk_pattern or index_topk_freq / index_skip_topk_offset as GlmMoeDsaConfig derives it).
void parse_dsa(const json &cfg, Config &c) {
  c.dsa = true;
  c.index_heads = opt_int(cfg, "index_n_heads", c.model_type == "glm_moe_dsa" ? 32 : 64);
  c.index_head_dim = opt_int(cfg, "index_head_dim", 128);
  if (c.index_heads <= 0 || c.index_head_dim <= 0) bad("index_n_heads and index_head_dim must be positive");
  if (c.index_heads * c.index_head_dim > kMaxDim) bad("index_n_heads * index_head_dim is too large");
  if (c.q_lora <= 0) bad("q_lora_rank must be set for " + c.model_type + " (the indexer's wq_b reads the query latent)");
  if (c.index_head_dim < c.rope) bad("index_head_dim " + std::to_string(c.index_head_dim) + " is below qk_rope_head_dim " + std::to_string(c.rope));
  const size_t n = static_cast<size_t>(c.layers);
  if (present(cfg, "mlp_layer_types")) {
    const json &t = cfg["mlp_layer_types"];
    if (!t.is_array() || t.size() != n)
      bad("'mlp_layer_types' must be a list of " + std::to_string(c.layers) + " \"dense\" / \"sparse\" entries, got " + t.dump().substr(0, 80));
    c.moe_layers.assign(n, false);
    for (size_t l = 0; l < n; ++l) {
      if (t[l] == "sparse") c.moe_layers[l] = true;
      else if (t[l] != "dense") bad("'mlp_layer_types' holds " + t[l].dump() + " at layer " + std::to_string(l) + " (\"dense\" or \"sparse\")");
    }
    if (c.experts == 0)
      for (size_t l = 0; l < n; ++l)
        if (c.moe_layers[l]) bad("'mlp_layer_types' marks layer " + std::to_string(l) + " sparse, but the model has no routed experts");
  }
  c.indexer.assign(n, true);
  if (c.model_type != "glm_moe_dsa") return;
  if (present(cfg, "indexer_types")) {
    const json &t = cfg["indexer_types"];
    if (!t.is_array() || t.size() != n)
      bad("'indexer_types' must be a list of " + std::to_string(c.layers) + " \"full\" / \"shared\" entries, got " + t.dump().substr(0, 80));
    for (size_t l = 0; l < n; ++l) {
      if (t[l] == "shared") c.indexer[l] = false;
      else if (t[l] != "full") bad("'indexer_types' holds " + t[l].dump() + " at layer " + std::to_string(l) + " (\"full\" or \"shared\")");
    }
  } else if (present(cfg, "index_topk_pattern")) {
    const json &t = cfg["index_topk_pattern"];
    const bool str = t.is_string();
    if (!(str || t.is_array()) || (str ? t.get<std::string>().size() : t.size()) != n)
      bad("'index_topk_pattern' must give one of F / S (or \"full\" / \"shared\") per layer, " + std::to_string(c.layers) + " in all");
    for (size_t l = 0; l < n; ++l) {
      const std::string v = str ? std::string(1, t.get<std::string>()[l]) : t[l].is_string() ? t[l].get<std::string>() : "";
      if (v == "S" || v == "shared") c.indexer[l] = false;
      else if (v != "F" && v != "full") bad("'index_topk_pattern' holds an entry that is not F / S at layer " + std::to_string(l));
    }
  } else {
    const int64_t freq = std::max<int64_t>(opt_int(cfg, "index_topk_freq", 1), 1);
    const int64_t offset = opt_int(cfg, "index_skip_topk_offset", 2);
    for (size_t l = 0; l < n; ++l) c.indexer[l] = std::max<int64_t>(static_cast<int64_t>(l) - offset + 1, 0) % freq == 0;
  }
  if (!c.indexer.empty() && !c.indexer[0]) bad("layer 0 is an indexer_types \"shared\" layer, with no earlier full layer to share from");
}

}  // namespace

void layer_tensors(const Config &c, int64_t l, bool moe, std::vector<Canonical> &v) {
  const std::string p = "model.layers." + std::to_string(l) + ".";
  const int32_t L = static_cast<int32_t>(l);
  auto add = [&](const std::string &n, std::vector<int64_t> s, int32_t init, int32_t expert = -1, ckh_dtype dt = CKH_DT_INVALID) {
    v.push_back({p + n, std::move(s), CKH_ROLE_LAYER, L, init, kind_of(p + n), expert, dt == CKH_DT_INVALID ? c.dtype : dt});
  };
  const int64_t h = c.hidden, H = c.heads;
  add("input_layernorm.weight", {h}, CKH_INIT_ONES);
  if (!c.mla) {
    const int64_t q = H * c.head_dim, kv = c.kv_heads * c.head_dim;
    add("self_attn.q_proj.weight", {q, h}, CKH_INIT_NORMAL);
    if (c.qkv_bias) add("self_attn.q_proj.bias", {q}, CKH_INIT_ZEROS);
    add("self_attn.k_proj.weight", {kv, h}, CKH_INIT_NORMAL);
    if (c.qkv_bias) add("self_attn.k_proj.bias", {kv}, CKH_INIT_ZEROS);
    add("self_attn.v_proj.weight", {kv, h}, CKH_INIT_NORMAL);
    if (c.qkv_bias) add("self_attn.v_proj.bias", {kv}, CKH_INIT_ZEROS);
    add("self_attn.o_proj.weight", {h, q}, CKH_INIT_NORMAL);
    if (c.qk_norm) {
      add("self_attn.q_norm.weight", {c.head_dim}, CKH_INIT_ONES);
      add("self_attn.k_norm.weight", {c.head_dim}, CKH_INIT_ONES);
    }
  } else if (c.q_lora > 0) {
    add("self_attn.q_a_proj.weight", {c.q_lora, h}, CKH_INIT_NORMAL);
    add("self_attn.q_a_layernorm.weight", {c.q_lora}, CKH_INIT_ONES);
    add("self_attn.q_b_proj.weight", {H * c.q_head(), c.q_lora}, CKH_INIT_NORMAL);
  } else {
    add("self_attn.q_proj.weight", {H * c.q_head(), h}, CKH_INIT_NORMAL);
  }
  if (c.mla) {
    add("self_attn.kv_a_proj_with_mqa.weight", {c.kv_lora + c.rope, h}, CKH_INIT_NORMAL);
    add("self_attn.kv_a_layernorm.weight", {c.kv_lora}, CKH_INIT_ONES);
    add("self_attn.kv_b_proj.weight", {H * (c.nope + c.v), c.kv_lora}, CKH_INIT_NORMAL);
    add("self_attn.o_proj.weight", {h, H * c.v}, CKH_INIT_NORMAL);
  }
  if (c.has_indexer(l)) {
    // transformers DeepseekV32Indexer: wq_b [heads * dim, q_lora], wk [dim, hidden], k_norm a LayerNorm (weight
    // and bias), weights_proj [heads, hidden] (kept in float32 by transformers, _keep_in_fp32_modules).
    add("self_attn.indexer.wq_b.weight", {c.index_heads * c.index_head_dim, c.q_lora}, CKH_INIT_NORMAL);
    add("self_attn.indexer.wk.weight", {c.index_head_dim, h}, CKH_INIT_NORMAL);
    add("self_attn.indexer.k_norm.weight", {c.index_head_dim}, CKH_INIT_ONES);
    add("self_attn.indexer.k_norm.bias", {c.index_head_dim}, CKH_INIT_ZEROS);
    add("self_attn.indexer.weights_proj.weight", {c.index_heads, h}, CKH_INIT_NORMAL, -1, CKH_DT_F32);
  }
  add("post_attention_layernorm.weight", {h}, CKH_INIT_ONES);
  if (!moe) {
    add("mlp.gate_proj.weight", {c.ffn, h}, CKH_INIT_NORMAL);
    add("mlp.up_proj.weight", {c.ffn, h}, CKH_INIT_NORMAL);
    add("mlp.down_proj.weight", {h, c.ffn}, CKH_INIT_NORMAL);
    return;
  }
  // transformers keeps the router in float32 (_keep_in_fp32_modules_strict).
  add("mlp.gate.weight", {c.experts, h}, CKH_INIT_NORMAL, -1, CKH_DT_F32);
  if (c.expert_bias) add("mlp.gate.e_score_correction_bias", {c.experts}, CKH_INIT_ZEROS, -1, CKH_DT_F32);
  for (int64_t e = 0; e < c.experts; ++e) {
    const std::string x = "mlp.experts." + std::to_string(e) + ".";
    const int32_t E = static_cast<int32_t>(e);
    add(x + "gate_proj.weight", {c.moe_ffn, h}, CKH_INIT_NORMAL, E);
    add(x + "up_proj.weight", {c.moe_ffn, h}, CKH_INIT_NORMAL, E);
    add(x + "down_proj.weight", {h, c.moe_ffn}, CKH_INIT_NORMAL, E);
  }
  if (c.shared > 0) {
    const int64_t sf = c.moe_ffn * c.shared;
    add("mlp.shared_experts.gate_proj.weight", {sf, h}, CKH_INIT_NORMAL);
    add("mlp.shared_experts.up_proj.weight", {sf, h}, CKH_INIT_NORMAL);
    add("mlp.shared_experts.down_proj.weight", {h, sf}, CKH_INIT_NORMAL);
  }
}

std::vector<Canonical> canonical_tensors(const Config &c, bool with_mtp) {
  std::vector<Canonical> v;
  v.push_back({"model.embed_tokens.weight", {c.vocab, c.hidden}, CKH_ROLE_EMBEDDING, -1, CKH_INIT_NORMAL, CKH_KIND_EMBEDDING, -1, c.dtype});
  for (int64_t l = 0; l < c.layers; ++l) layer_tensors(c, l, c.is_moe(l), v);
  v.push_back({"model.norm.weight", {c.hidden}, CKH_ROLE_FINAL_NORM, -1, CKH_INIT_ONES, CKH_KIND_NORM, -1, c.dtype});
  if (!c.tied) v.push_back({"lm_head.weight", {c.vocab, c.hidden}, CKH_ROLE_OUTPUT, -1, CKH_INIT_NORMAL, CKH_KIND_OUTPUT, -1, c.dtype});
  if (with_mtp)
    for (int64_t k = 0; k < c.mtp; ++k) {
      // The released layout: a whole decoder layer (MoE, as the last layers are) plus the MTP parts,
      // with copies of the embedding and the LM head.
      const int64_t l = c.layers + k;
      const std::string p = "model.layers." + std::to_string(l) + ".";
      const size_t first = v.size();
      auto add = [&](const std::string &n, std::vector<int64_t> s, int32_t init, int32_t kind) {
        v.push_back({p + n, std::move(s), CKH_ROLE_MTP, static_cast<int32_t>(k), init, kind, -1, c.dtype});
      };
      add("embed_tokens.weight", {c.vocab, c.hidden}, CKH_INIT_NORMAL, CKH_KIND_EMBEDDING);
      add("enorm.weight", {c.hidden}, CKH_INIT_ONES, CKH_KIND_NORM);
      add("hnorm.weight", {c.hidden}, CKH_INIT_ONES, CKH_KIND_NORM);
      add("eh_proj.weight", {c.hidden, 2 * c.hidden}, CKH_INIT_NORMAL, CKH_KIND_OTHER);
      layer_tensors(c, l, c.experts > 0, v);
      add("shared_head.norm.weight", {c.hidden}, CKH_INIT_ONES, CKH_KIND_NORM);
      add("shared_head.head.weight", {c.vocab, c.hidden}, CKH_INIT_NORMAL, CKH_KIND_OUTPUT);
      for (size_t i = first; i < v.size(); ++i) {
        v[i].role = CKH_ROLE_MTP;
        v[i].layer = static_cast<int32_t>(k);
      }
    }
  return v;
}

int32_t kind_of(const std::string &n) {
  auto has = [&](const char *p) { return n.find(p) != std::string::npos; };
  if (n == "model.embed_tokens.weight" || has(".embed_tokens.")) return CKH_KIND_EMBEDDING;
  if (n == "lm_head.weight" || has(".shared_head.head.")) return CKH_KIND_OUTPUT;
  if (has("norm.")) return CKH_KIND_NORM;
  if (has(".self_attn.q_a_proj.") || has(".self_attn.q_b_proj.") || has(".self_attn.q_proj.")) return CKH_KIND_ATTN_Q;
  if (has(".self_attn.kv_a_proj_with_mqa.") || has(".self_attn.kv_b_proj.") || has(".self_attn.k_proj.")) return CKH_KIND_ATTN_K;
  if (has(".self_attn.v_proj.")) return CKH_KIND_ATTN_V;
  if (has(".self_attn.o_proj.")) return CKH_KIND_ATTN_OUT;
  if (has(".mlp.gate.")) return CKH_KIND_ROUTER;
  if (has(".gate_proj.")) return CKH_KIND_FFN_GATE;
  if (has(".up_proj.")) return CKH_KIND_FFN_UP;
  if (has(".down_proj.")) return CKH_KIND_FFN_DOWN;
  return CKH_KIND_OTHER;
}

}  // namespace ckh::deepseek
