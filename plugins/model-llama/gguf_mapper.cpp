// gguf_mapper.cpp — the Llama family's dense members in llama.cpp's GGUF names and metadata (convert_hf_to_gguf.py's
// LlamaModel / Qwen2Model / Qwen3Model, gguf-py's tensor map):
//   model.embed_tokens -> token_embd, model.layers.N.{input_layernorm -> attn_norm, self_attn.{q,k,v,o}_proj ->
//   attn_{q,k,v,output}, self_attn.{q,k}_norm -> attn_{q,k}_norm, post_attention_layernorm -> ffn_norm,
//   mlp.{gate,up,down}_proj -> ffn_{gate,up,down}} as blk.N.*, model.norm -> output_norm, lm_head -> output.
// For the llama architecture (Llama, Mistral) the q and k rows are permuted as llama.cpp's converter does: within
// each head, HF's [first halves of the rotary pairs; second halves] becomes interleaved pairs
// (reshape [heads, 2, head_dim / 2, hidden], swap the middle axes). The metadata: general.architecture, general.name,
// <arch>.{context_length, embedding_length, block_count, feed_forward_length, attention.head_count,
// attention.head_count_kv, attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, vocab_size} and,
// where the head width is not hidden / heads, attention.key_length / value_length; linear RoPE scaling as
// rope.scaling.type / factor.
#include "gguf_mapper.hpp"

#include <map>
#include <string>
#include <vector>

#include "llama_config.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace ckh::llama {

namespace {

json kv(const std::string &key, const char *type, json value) { return {{"key", key}, {"type", type}, {"value", std::move(value)}}; }

// llama.cpp's permute(): [rows, hidden] with `heads` heads of head_dim rows; within each head HF's halves
// [first of each rotary pair; second] become interleaved pairs (reshape [heads, 2, head_dim / 2], swap the last
// two), or (`inverse`) back (reshape [heads, head_dim / 2, 2], swap).
ckh_expr rotary_rows(ckh::sdk::Builder &b, ckh_expr e, int64_t heads, int64_t head_dim, int64_t cols, bool weight, bool inverse) {
  std::vector<int64_t> split = inverse ? std::vector<int64_t>{heads, head_dim / 2, 2} : std::vector<int64_t>{heads, 2, head_dim / 2};
  std::vector<int64_t> back = {heads * head_dim};
  std::vector<uint32_t> perm = {0, 2, 1};
  if (weight) {
    split.push_back(cols);
    back.push_back(cols);
    perm.push_back(3);
  }
  return b.reshape(b.permute(b.reshape(e, split), perm), back);
}

}  // namespace

void map_hf_to_gguf(const json &meta, ckh::sdk::Builder &b) {
  const json cfg = meta.value("config", json::object());
  LlamaConfig c;
  try {
    c = parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
  std::string arch;
  if (c.model_type == "llama" || c.model_type == "mistral") arch = "llama";
  else if (c.model_type == "qwen2" || c.model_type == "qwen3") arch = c.model_type;
  else
    fail(CKH_E_UNSUPPORTED, "GGUF from model_type '" + c.model_type + "' is not supported yet (llama, mistral, qwen2 and qwen3 are)");
  if (c.experts > 0) fail(CKH_E_UNSUPPORTED, "GGUF of MoE models is not supported yet");
  if (c.rope_type != "default" && c.rope_type != "linear")
    fail(CKH_E_UNSUPPORTED, "GGUF with " + c.rope_type + " RoPE scaling is not supported yet (llama.cpp keeps llama3's as a rope_freqs tensor)");
  if (c.mlp_bias) fail(CKH_E_UNSUPPORTED, "GGUF of a Llama with mlp_bias is not supported");
  const bool permute = arch == "llama";
  const int64_t H = c.hidden, hd = c.head_dim;
  auto in = [&](const std::string &n) {
    if (!b.has(n)) fail(CKH_E_FORMAT, "tensor '" + n + "' is missing");
    return b.input(n);
  };
  auto emit = [&](const std::string &name, ckh_expr e, int32_t role, int32_t layer, int32_t kind) {
    ckh_tensor_annot_t a = ckh::sdk::annot(role, layer);
    a.kind = kind;
    b.emit(name, e, &a);
  };
  emit("token_embd.weight", in("model.embed_tokens.weight"), CKH_ROLE_EMBEDDING, -1, CKH_KIND_EMBEDDING);
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string h = "model.layers." + std::to_string(l) + ".", g = "blk." + std::to_string(l) + ".";
    const int32_t L = static_cast<int32_t>(l);
    emit(g + "attn_norm.weight", in(h + "input_layernorm.weight"), CKH_ROLE_LAYER, L, CKH_KIND_NORM);
    for (const char *s : {"weight", "bias"}) {
      const bool w = s[0] == 'w';
      if (!w && !c.qkv_bias) continue;
      ckh_expr q = in(h + "self_attn.q_proj." + s), k = in(h + "self_attn.k_proj." + s);
      if (permute) {
        q = rotary_rows(b, q, c.heads, hd, H, w, false);
        k = rotary_rows(b, k, c.kv_heads, hd, H, w, false);
      }
      emit(g + "attn_q." + s, q, CKH_ROLE_LAYER, L, CKH_KIND_ATTN_Q);
      emit(g + "attn_k." + s, k, CKH_ROLE_LAYER, L, CKH_KIND_ATTN_K);
      emit(g + "attn_v." + s, in(h + "self_attn.v_proj." + s), CKH_ROLE_LAYER, L, CKH_KIND_ATTN_V);
    }
    emit(g + "attn_output.weight", in(h + "self_attn.o_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_ATTN_OUT);
    if (c.o_bias) emit(g + "attn_output.bias", in(h + "self_attn.o_proj.bias"), CKH_ROLE_LAYER, L, CKH_KIND_ATTN_OUT);
    if (c.qk_norm) {
      emit(g + "attn_q_norm.weight", in(h + "self_attn.q_norm.weight"), CKH_ROLE_LAYER, L, CKH_KIND_NORM);
      emit(g + "attn_k_norm.weight", in(h + "self_attn.k_norm.weight"), CKH_ROLE_LAYER, L, CKH_KIND_NORM);
    }
    emit(g + "ffn_norm.weight", in(h + "post_attention_layernorm.weight"), CKH_ROLE_LAYER, L, CKH_KIND_NORM);
    emit(g + "ffn_gate.weight", in(h + "mlp.gate_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_GATE);
    emit(g + "ffn_up.weight", in(h + "mlp.up_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_UP);
    emit(g + "ffn_down.weight", in(h + "mlp.down_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_DOWN);
  }
  emit("output_norm.weight", in("model.norm.weight"), CKH_ROLE_FINAL_NORM, -1, CKH_KIND_NORM);
  if (!c.tied) emit("output.weight", in("lm_head.weight"), CKH_ROLE_OUTPUT, -1, CKH_KIND_OUTPUT);
  else if (b.has("lm_head.weight")) b.ignore("lm_head.weight", "tie_word_embeddings: llama.cpp uses token_embd");
  for (uint64_t i = 0; i < b.input_count(); ++i) {
    const std::string n = b.input_info(i).name;
    if (n.find("rotary_emb.inv_freq") != std::string::npos) b.ignore(n, "rotary inv_freq buffer (recomputed from rope_theta)");
  }

  std::string name = cfg.value("_name_or_path", std::string());
  if (const size_t slash = name.rfind('/'); slash != std::string::npos) name = name.substr(slash + 1);
  if (name.empty()) name = arch;
  json kvs = json::array();
  kvs.push_back(kv("general.architecture", "string", arch));
  kvs.push_back(kv("general.type", "string", "model"));
  kvs.push_back(kv("general.name", "string", name));
  const json mpe = cfg.value("max_position_embeddings", json());
  const int64_t ctx = mpe.is_number_integer() ? mpe.get<int64_t>() : 4096;
  kvs.push_back(kv(arch + ".context_length", "u32", ctx));
  kvs.push_back(kv(arch + ".embedding_length", "u32", H));
  kvs.push_back(kv(arch + ".block_count", "u32", c.layers));
  kvs.push_back(kv(arch + ".feed_forward_length", "u32", c.ffn));
  kvs.push_back(kv(arch + ".attention.head_count", "u32", c.heads));
  kvs.push_back(kv(arch + ".attention.head_count_kv", "u32", c.kv_heads));
  kvs.push_back(kv(arch + ".attention.layer_norm_rms_epsilon", "f32", c.rms_eps));
  kvs.push_back(kv(arch + ".rope.freq_base", "f32", c.rope_theta));
  if (arch == "llama") kvs.push_back(kv(arch + ".rope.dimension_count", "u32", hd));
  kvs.push_back(kv(arch + ".vocab_size", "u32", c.vocab));
  if (hd * c.heads != H) {
    kvs.push_back(kv(arch + ".attention.key_length", "u32", hd));
    kvs.push_back(kv(arch + ".attention.value_length", "u32", hd));
  }
  if (c.rope_type == "linear") {
    kvs.push_back(kv(arch + ".rope.scaling.type", "string", "linear"));
    kvs.push_back(kv(arch + ".rope.scaling.factor", "f32", c.rope_factor));
  }
  json out = meta;
  out["layout"] = "gguf";
  out["gguf_kv"] = kvs;
  b.set_metadata(out.dump());
}

namespace {

// The GGUF key-values as key -> value.
std::map<std::string, json> kv_map(const json &meta) {
  std::map<std::string, json> m;
  if (meta.contains("gguf_kv") && meta["gguf_kv"].is_array())
    for (const auto &e : meta["gguf_kv"])
      if (e.is_object() && e.contains("key") && e["key"].is_string() && e.contains("value")) m[e["key"].get<std::string>()] = e["value"];
  return m;
}

const char *const kArchs[][2] = {{"llama", "LlamaForCausalLM"}, {"qwen2", "Qwen2ForCausalLM"}, {"qwen3", "Qwen3ForCausalLM"}};

}  // namespace

int score_gguf(const json &meta) noexcept {
  try {
    const auto m = kv_map(meta);
    const auto it = m.find("general.architecture");
    if (it == m.end() || !it->second.is_string()) return 0;
    for (const auto &a : kArchs)
      if (it->second.get<std::string>() == a[0]) return 90;
  } catch (...) {
  }
  return 0;
}

void map_gguf_to_hf(const json &meta, ckh::sdk::Builder &b) {
  const auto m = kv_map(meta);
  const std::string arch = m.count("general.architecture") && m.at("general.architecture").is_string() ? m.at("general.architecture").get<std::string>() : "";
  const char *hf_arch = nullptr;
  for (const auto &a : kArchs)
    if (arch == a[0]) hf_arch = a[1];
  if (!hf_arch) fail(CKH_E_UNSUPPORTED, "GGUF architecture '" + arch + "' is not read yet (llama, qwen2 and qwen3 are)");
  auto num = [&](const std::string &k, bool required, double def = 0) -> double {
    const auto it = m.find(arch + "." + k);
    if (it == m.end() || !it->second.is_number()) {
      if (required) fail(CKH_E_FORMAT, "GGUF: '" + arch + "." + k + "' is missing");
      return def;
    }
    return it->second.get<double>();
  };
  auto shape = [&](const std::string &n) -> std::vector<int64_t> {
    const int64_t i = b.find(n);
    if (i < 0) fail(CKH_E_FORMAT, "GGUF: tensor '" + n + "' is missing");
    return ckh::plugins::model::shape_of(b.input_info(static_cast<uint64_t>(i)));
  };
  const int64_t H = static_cast<int64_t>(num("embedding_length", true)), layers = static_cast<int64_t>(num("block_count", true));
  const int64_t heads = static_cast<int64_t>(num("attention.head_count", true));
  const int64_t kvh = static_cast<int64_t>(num("attention.head_count_kv", false, static_cast<double>(heads)));
  if (H <= 0 || layers <= 0 || heads <= 0 || kvh <= 0 || heads % kvh) fail(CKH_E_FORMAT, "GGUF: inconsistent head counts or sizes");
  const int64_t hd = static_cast<int64_t>(num("attention.key_length", false, arch == "llama" ? num("rope.dimension_count", false, static_cast<double>(H / heads))
                                                                                             : static_cast<double>(H / heads)));
  const std::vector<int64_t> emb = shape("token_embd.weight");
  const bool tied = !b.has("output.weight"), bias = b.has("blk.0.attn_q.bias");
  json cfg = {{"architectures", {hf_arch}},
              {"model_type", arch},
              {"hidden_size", H},
              {"intermediate_size", static_cast<int64_t>(num("feed_forward_length", true))},
              {"num_hidden_layers", layers},
              {"num_attention_heads", heads},
              {"num_key_value_heads", kvh},
              {"head_dim", hd},
              {"rms_norm_eps", num("attention.layer_norm_rms_epsilon", true)},
              {"rope_theta", num("rope.freq_base", false, 10000.0)},
              {"max_position_embeddings", static_cast<int64_t>(num("context_length", false, 4096))},
              {"vocab_size", emb.empty() ? 0 : emb[0]},
              {"tie_word_embeddings", tied},
              {"hidden_act", "silu"}};
  if (arch == "llama") cfg["attention_bias"] = bias;
  if (arch != "llama") cfg["use_sliding_window"] = false;
  if (m.count(arch + ".rope.scaling.type") && m.at(arch + ".rope.scaling.type") == "linear")
    cfg["rope_scaling"] = {{"rope_type", "linear"}, {"factor", num("rope.scaling.factor", true)}};
  const ckh_tensor_info_t ei = b.input_info(static_cast<uint64_t>(b.find("token_embd.weight")));
  cfg["torch_dtype"] = ei.dtype == CKH_DT_F16 ? "float16" : ei.dtype == CKH_DT_BF16 ? "bfloat16" : "float32";
  auto out = [&](const std::string &n, ckh_expr e) { b.emit(n, e); };
  out("model.embed_tokens.weight", b.input("token_embd.weight"));
  for (int64_t l = 0; l < layers; ++l) {
    const std::string g = "blk." + std::to_string(l) + ".", h = "model.layers." + std::to_string(l) + ".";
    auto in = [&](const std::string &n) {
      if (!b.has(g + n)) fail(CKH_E_FORMAT, "GGUF: tensor '" + g + n + "' is missing");
      return b.input(g + n);
    };
    out(h + "input_layernorm.weight", in("attn_norm.weight"));
    for (const char *s : {"weight", "bias"}) {
      const bool w = s[0] == 'w';
      if (!w && !bias) continue;
      ckh_expr q = in(std::string("attn_q.") + s), k = in(std::string("attn_k.") + s);
      if (arch == "llama") {
        q = rotary_rows(b, q, heads, hd, H, w, true);  // llama.cpp's permute() undone
        k = rotary_rows(b, k, kvh, hd, H, w, true);
      }
      out(h + "self_attn.q_proj." + s, q);
      out(h + "self_attn.k_proj." + s, k);
      out(h + "self_attn.v_proj." + s, in(std::string("attn_v.") + s));
    }
    out(h + "self_attn.o_proj.weight", in("attn_output.weight"));
    if (b.has(g + "attn_output.bias")) out(h + "self_attn.o_proj.bias", in("attn_output.bias"));
    if (arch == "qwen3") {
      out(h + "self_attn.q_norm.weight", in("attn_q_norm.weight"));
      out(h + "self_attn.k_norm.weight", in("attn_k_norm.weight"));
    }
    out(h + "post_attention_layernorm.weight", in("ffn_norm.weight"));
    out(h + "mlp.gate_proj.weight", in("ffn_gate.weight"));
    out(h + "mlp.up_proj.weight", in("ffn_up.weight"));
    out(h + "mlp.down_proj.weight", in("ffn_down.weight"));
  }
  out("model.norm.weight", b.input("output_norm.weight"));
  if (!tied) out("lm_head.weight", b.input("output.weight"));
  json o = meta;
  o["config"] = cfg;
  o["config_modified"] = true;
  o["layout"] = "hf";
  b.set_metadata(o.dump());
}

}  // namespace ckh::llama
