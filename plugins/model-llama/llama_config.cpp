// llama_config.cpp — see llama_config.hpp.
#include "llama_config.hpp"

#include <stdexcept>

namespace ckh::llama {

namespace {
const char *const kTypes[] = {"llama", "mistral", "qwen2", "qwen3", "minicpm"};
const char *const kArchs[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                              "MiniCPMForCausalLM"};

int64_t need_int(const nlohmann::json &c, const char *key) {
  if (!c.contains(key) || !c[key].is_number_integer())
    throw std::invalid_argument(std::string("config.json: '") + key + "' is missing or not an integer");
  const int64_t v = c[key].get<int64_t>();
  if (v <= 0) throw std::invalid_argument(std::string("config.json: '") + key + "' must be positive, got " + std::to_string(v));
  return v;
}
}  // namespace

int score(const nlohmann::json &cfg) {
  if (!cfg.is_object()) return 0;
  const std::string mt = cfg.value("model_type", std::string());
  for (const char *t : kTypes)
    if (mt == t) return 90;
  if (cfg.contains("architectures") && cfg["architectures"].is_array())
    for (const auto &a : cfg["architectures"])
      for (const char *k : kArchs)
        if (a.is_string() && a.get<std::string>() == k) return 80;
  return 0;
}

Config parse_config(const nlohmann::json &cfg) {
  if (!cfg.is_object()) throw std::invalid_argument("config.json is missing or not an object");
  Config c;
  c.model_type = cfg.value("model_type", std::string("llama"));
  c.hidden = need_int(cfg, "hidden_size");
  c.layers = need_int(cfg, "num_hidden_layers");
  c.heads = need_int(cfg, "num_attention_heads");
  c.kv_heads = cfg.contains("num_key_value_heads") && !cfg["num_key_value_heads"].is_null()
                   ? need_int(cfg, "num_key_value_heads")
                   : c.heads;
  c.head_dim = cfg.contains("head_dim") && !cfg["head_dim"].is_null() ? need_int(cfg, "head_dim") : c.hidden / c.heads;
  c.ffn = need_int(cfg, "intermediate_size");
  c.vocab = need_int(cfg, "vocab_size");
  if (c.heads % c.kv_heads != 0)
    throw std::invalid_argument("config.json: num_attention_heads " + std::to_string(c.heads) +
                                " is not a multiple of num_key_value_heads " + std::to_string(c.kv_heads));
  if (!cfg.contains("head_dim") && c.hidden % c.heads != 0)
    throw std::invalid_argument("config.json: hidden_size " + std::to_string(c.hidden) + " is not a multiple of " +
                                "num_attention_heads " + std::to_string(c.heads) + " (and head_dim is not given)");
  const bool minicpm = c.model_type == "minicpm";
  c.tied = cfg.value("tie_word_embeddings", minicpm);
  const bool attn_bias = cfg.value("attention_bias", false);
  c.qkv_bias = c.model_type == "qwen2" || attn_bias;
  c.o_bias = attn_bias;
  c.mlp_bias = cfg.value("mlp_bias", false);
  c.qk_norm = c.model_type == "qwen3";
  const std::string dt = cfg.contains("torch_dtype") && cfg["torch_dtype"].is_string() ? cfg["torch_dtype"].get<std::string>()
                                                                                         : std::string("bfloat16");
  if (dt == "bfloat16") c.dtype = CKH_DT_BF16;
  else if (dt == "float16") c.dtype = CKH_DT_F16;
  else if (dt == "float32") c.dtype = CKH_DT_F32;
  else throw std::invalid_argument("config.json: torch_dtype '" + dt + "' is not bfloat16, float16 or float32");
  if (cfg.contains("rms_norm_eps") && cfg["rms_norm_eps"].is_number()) c.rms_eps = cfg["rms_norm_eps"].get<double>();
  if (cfg.contains("rope_theta") && cfg["rope_theta"].is_number()) c.rope_theta = cfg["rope_theta"].get<double>();
  if (minicpm) {
    c.scale_emb = cfg.value("scale_emb", 1.0);
    c.scale_depth = cfg.value("scale_depth", 1.0);
    c.dim_model_base = cfg.value("dim_model_base", static_cast<double>(c.hidden));
  }
  return c;
}

std::vector<Canonical> canonical_tensors(const Config &c) {
  std::vector<Canonical> v;
  auto add = [&](std::string name, std::vector<int64_t> shape, int32_t role, int32_t layer, int32_t init) {
    v.push_back({std::move(name), std::move(shape), role, layer, init});
  };
  const int64_t q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  add("model.embed_tokens.weight", {c.vocab, c.hidden}, CKH_ROLE_EMBEDDING, -1, CKH_INIT_NORMAL);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    add(p + "input_layernorm.weight", {c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_ONES);
    add(p + "self_attn.q_proj.weight", {q, c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_NORMAL);
    if (c.qkv_bias) add(p + "self_attn.q_proj.bias", {q}, CKH_ROLE_LAYER, L, CKH_INIT_ZEROS);
    add(p + "self_attn.k_proj.weight", {kv, c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_NORMAL);
    if (c.qkv_bias) add(p + "self_attn.k_proj.bias", {kv}, CKH_ROLE_LAYER, L, CKH_INIT_ZEROS);
    add(p + "self_attn.v_proj.weight", {kv, c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_NORMAL);
    if (c.qkv_bias) add(p + "self_attn.v_proj.bias", {kv}, CKH_ROLE_LAYER, L, CKH_INIT_ZEROS);
    add(p + "self_attn.o_proj.weight", {c.hidden, q}, CKH_ROLE_LAYER, L, CKH_INIT_NORMAL);
    if (c.o_bias) add(p + "self_attn.o_proj.bias", {c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_ZEROS);
    if (c.qk_norm) {
      add(p + "self_attn.q_norm.weight", {c.head_dim}, CKH_ROLE_LAYER, L, CKH_INIT_ONES);
      add(p + "self_attn.k_norm.weight", {c.head_dim}, CKH_ROLE_LAYER, L, CKH_INIT_ONES);
    }
    add(p + "post_attention_layernorm.weight", {c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_ONES);
    add(p + "mlp.gate_proj.weight", {c.ffn, c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_NORMAL);
    if (c.mlp_bias) add(p + "mlp.gate_proj.bias", {c.ffn}, CKH_ROLE_LAYER, L, CKH_INIT_ZEROS);
    add(p + "mlp.up_proj.weight", {c.ffn, c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_NORMAL);
    if (c.mlp_bias) add(p + "mlp.up_proj.bias", {c.ffn}, CKH_ROLE_LAYER, L, CKH_INIT_ZEROS);
    add(p + "mlp.down_proj.weight", {c.hidden, c.ffn}, CKH_ROLE_LAYER, L, CKH_INIT_NORMAL);
    if (c.mlp_bias) add(p + "mlp.down_proj.bias", {c.hidden}, CKH_ROLE_LAYER, L, CKH_INIT_ZEROS);
  }
  add("model.norm.weight", {c.hidden}, CKH_ROLE_FINAL_NORM, -1, CKH_INIT_ONES);
  if (!c.tied) add("lm_head.weight", {c.vocab, c.hidden}, CKH_ROLE_OUTPUT, -1, CKH_INIT_NORMAL);
  return v;
}

}  // namespace ckh::llama
