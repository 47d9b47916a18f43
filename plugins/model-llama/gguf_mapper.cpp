// gguf_mapper.cpp — the Llama family in llama.cpp's GGUF names and metadata (convert_hf_to_gguf.py's LlamaModel, which
// takes Llama, Mistral and Mixtral; Qwen2Model / Qwen3Model; Qwen2MoeModel / Qwen3MoeModel; gguf-py's tensor map):
//   model.embed_tokens -> token_embd, model.layers.N.{input_layernorm -> attn_norm, self_attn.{q,k,v,o}_proj ->
//   attn_{q,k,v,output}, self_attn.{q,k}_norm -> attn_{q,k}_norm, post_attention_layernorm -> ffn_norm,
//   mlp.{gate,up,down}_proj -> ffn_{gate,up,down}} as blk.N.*, model.norm -> output_norm, lm_head -> output.
// MoE layers: the router (block_sparse_moe.gate / mlp.gate) -> ffn_gate_inp (F32, as the converter keeps routers), the
// experts' projections stacked into ffn_{gate,up,down}_exps [experts, rows, cols] (Mixtral's w1 / w3 / w2 are gate /
// up / down), Qwen2-MoE's shared expert -> ffn_{gate,up,down}_shexp and its gate -> ffn_gate_inp_shexp. Mixtral is
// the llama architecture with experts; Qwen2-MoE / Qwen3-MoE are qwen2moe / qwen3moe, which llama.cpp runs with MoE in
// every layer (a dense layer is refused).
// For the llama architecture (Llama, Mistral, Mixtral) the q and k rows are permuted as llama.cpp's converter does:
// within each head, HF's [first halves of the rotary pairs; second halves] becomes interleaved pairs
// (reshape [heads, 2, head_dim / 2, hidden], swap the middle axes). The metadata: general.architecture, general.name,
// general.quantization_version, <arch>.{context_length, embedding_length, block_count, feed_forward_length,
// attention.head_count, attention.head_count_kv, attention.layer_norm_rms_epsilon, rope.freq_base, vocab_size},
// rope.dimension_count (llama), attention.key_length / value_length where config.json states head_dim or the head
// width is not hidden / heads (as the converter), the expert counts and widths, linear RoPE scaling as
// rope.scaling.type / factor, and Llama 3's as the rope_freqs tensor (meta["gguf_extra_tensors"], stored by the writer).
#include "gguf_mapper.hpp"

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "gguf_experts.hpp"
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

namespace {

// The GGUF architecture of an HF model_type (convert_hf_to_gguf.py: LlamaModel takes Llama, Mistral and Mixtral;
// Qwen2MoeModel / Qwen3MoeModel), or "".
std::string gguf_arch(const std::string &mt) {
  if (mt == "llama" || mt == "mistral" || mt == "mixtral") return "llama";
  if (mt == "qwen2" || mt == "qwen3") return mt;
  if (mt == "qwen2_moe") return "qwen2moe";
  if (mt == "qwen3_moe") return "qwen3moe";
  return "";
}

// llama.cpp's rope_freqs for Llama 3's RoPE scaling (convert_hf_to_gguf.py LlamaModel.generate_extra_tensors): per
// rotary pair i of head_dim, the divisor of its frequency 1 / base^(2i / head_dim): 1 where the wavelength 2 pi / freq
// is below original_max_position_embeddings / high_freq_factor, `factor` above original / low_freq_factor, and
// 1 / ((1 - s) / factor + s) between, with s = (original / wavelength - low) / (high - low). Computed in float32
// step by step as torch does there (reciprocal then product for a scalar divided by a tensor).
std::vector<float> llama3_rope_factors(const LlamaConfig &c) {
  const float dim = static_cast<float>(c.head_dim), base = static_cast<float>(c.rope_theta);
  const float factor = static_cast<float>(c.rope_factor), low = static_cast<float>(c.rope_low_freq_factor),
              high = static_cast<float>(c.rope_high_freq_factor), old = static_cast<float>(c.rope_original_max_pos);
  const float low_wavelen = static_cast<float>(static_cast<double>(c.rope_original_max_pos) / c.rope_low_freq_factor);
  const float high_wavelen = static_cast<float>(static_cast<double>(c.rope_original_max_pos) / c.rope_high_freq_factor);
  const float two_pi = static_cast<float>(2.0 * 3.14159265358979323846);
  std::vector<float> out;
  for (int64_t i = 0; i < c.head_dim / 2; ++i) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(2 * i) / dim);
    const float wavelen = (1.0f / freq) * two_pi;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(factor);
    } else {
      const float smooth = ((1.0f / wavelen) * old - low) / static_cast<float>(c.rope_high_freq_factor - c.rope_low_freq_factor);
      out.push_back(1.0f / ((1.0f - smooth) / factor + smooth));
    }
  }
  (void)high;
  return out;
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
  const std::string arch = gguf_arch(c.model_type);
  if (arch.empty())
    fail(CKH_E_UNSUPPORTED, "GGUF from model_type '" + c.model_type +
                                "' is not supported yet (llama, mistral, mixtral, qwen2, qwen3, qwen2_moe and qwen3_moe are)");
  const bool moe = c.experts > 0;
  if ((arch == "qwen2moe" || arch == "qwen3moe"))
    for (int64_t l = 0; l < c.layers; ++l)
      if (!c.is_moe(l))
        fail(CKH_E_UNSUPPORTED, "GGUF: layer " + std::to_string(l) + " of this " + c.model_type + " model is dense (mlp_only_layers / decoder_sparse_step); llama.cpp's " +
                                    arch + " has MoE in every layer");
  if (c.rope_type != "default" && c.rope_type != "linear" && c.rope_type != "llama3")
    fail(CKH_E_UNSUPPORTED, "GGUF with " + c.rope_type + " RoPE scaling is not supported yet");
  if (c.mlp_bias) fail(CKH_E_UNSUPPORTED, "GGUF of a Llama with mlp_bias is not supported");
  // llama.cpp's qwen3moe always renormalises the chosen experts' weights and qwen2moe never does.
  if (arch == "qwen3moe" && !c.norm_topk)
    ckh::sdk::log(CKH_LOG_WARN, "gguf: norm_topk_prob is false, but llama.cpp's qwen3moe renormalises the top-k routing weights");
  if (arch == "qwen2moe" && c.norm_topk)
    ckh::sdk::log(CKH_LOG_WARN, "gguf: norm_topk_prob is true, but llama.cpp's qwen2moe does not renormalise the top-k routing weights");
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
  // llama.cpp's converter keeps routers (ffn_gate_inp, ffn_gate_inp_shexp) in F32 whatever the file type.
  auto f32 = [&](ckh_expr e) {
    const ckh_dtype dt = b.info(e).dtype;
    return dt == CKH_DT_F16 || dt == CKH_DT_BF16 ? b.cast(e, CKH_DT_F32) : e;
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
    if (!c.is_moe(l)) {
      emit(g + "ffn_gate.weight", in(h + "mlp.gate_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_GATE);
      emit(g + "ffn_up.weight", in(h + "mlp.up_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_UP);
      emit(g + "ffn_down.weight", in(h + "mlp.down_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_DOWN);
      continue;
    }
    // MoE: the router, and each projection of the experts stacked into one [experts, rows, cols] tensor (expert e
    // at index e; ggml's ne = {cols, rows, experts}). Mixtral's experts are w1 (gate), w3 (up), w2 (down).
    const bool w123 = c.w123();
    const std::string m = h + (w123 ? "block_sparse_moe." : "mlp.");
    emit(g + "ffn_gate_inp.weight", f32(in(m + "gate.weight")), CKH_ROLE_LAYER, L, CKH_KIND_ROUTER);
    const char *const proj[3][3] = {{"ffn_gate_exps", "w1", "gate_proj"}, {"ffn_up_exps", "w3", "up_proj"}, {"ffn_down_exps", "w2", "down_proj"}};
    const int32_t kinds[3] = {CKH_KIND_FFN_GATE, CKH_KIND_FFN_UP, CKH_KIND_FFN_DOWN};
    for (int p = 0; p < 3; ++p)
      emit(g + proj[p][0] + ".weight", ckh::plugins::model::stack_experts(b, c.experts, [&](int64_t e) {
             return in(m + "experts." + std::to_string(e) + "." + (w123 ? proj[p][1] : proj[p][2]) + ".weight");
           }),
           CKH_ROLE_LAYER, L, kinds[p]);
    if (c.shared_ffn > 0) {
      emit(g + "ffn_gate_inp_shexp.weight", f32(in(m + "shared_expert_gate.weight")), CKH_ROLE_LAYER, L, CKH_KIND_ROUTER);
      emit(g + "ffn_gate_shexp.weight", in(m + "shared_expert.gate_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_GATE);
      emit(g + "ffn_up_shexp.weight", in(m + "shared_expert.up_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_UP);
      emit(g + "ffn_down_shexp.weight", in(m + "shared_expert.down_proj.weight"), CKH_ROLE_LAYER, L, CKH_KIND_FFN_DOWN);
    }
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
  kvs.push_back(kv("general.quantization_version", "u32", 2));
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
  kvs.push_back(kv(arch + ".vocab_size", "u32", c.vocab));  // the converter: llama only; the GGUF writer pads the vocabulary to it
  // As the converter: the head width whenever config.json states head_dim (and where it is not hidden / heads).
  if (hd * c.heads != H || (cfg.contains("head_dim") && cfg["head_dim"].is_number_integer())) {
    kvs.push_back(kv(arch + ".attention.key_length", "u32", hd));
    kvs.push_back(kv(arch + ".attention.value_length", "u32", hd));
  }
  if (moe) {
    kvs.push_back(kv(arch + ".expert_count", "u32", c.experts));
    kvs.push_back(kv(arch + ".expert_used_count", "u32", c.experts_per_tok));
    if (arch != "llama") kvs.push_back(kv(arch + ".expert_feed_forward_length", "u32", c.moe_ffn));
    if (c.shared_ffn > 0) kvs.push_back(kv(arch + ".expert_shared_feed_forward_length", "u32", c.shared_ffn));
  }
  if (c.rope_type == "linear") {
    kvs.push_back(kv(arch + ".rope.scaling.type", "string", "linear"));
    kvs.push_back(kv(arch + ".rope.scaling.factor", "f32", c.rope_factor));
  }
  json out = meta;
  out["layout"] = "gguf";
  out["gguf_kv"] = kvs;
  if (c.rope_type == "llama3") {
    // llama.cpp keeps Llama 3's frequency scaling as a tensor the converter computes (no key-values): the GGUF
    // writer stores these values as rope_freqs.weight (F32).
    const std::vector<float> f = llama3_rope_factors(c);
    json vals = json::array();
    for (float v : f) vals.push_back(static_cast<double>(v));
    out["gguf_extra_tensors"] = json::array({{{"name", "rope_freqs.weight"}, {"dtype", "f32"}, {"shape", {static_cast<int64_t>(f.size())}}, {"values", vals}}});
  }
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

const char *const kArchs[][2] = {{"llama", "LlamaForCausalLM"},
                                 {"qwen2", "Qwen2ForCausalLM"},
                                 {"qwen3", "Qwen3ForCausalLM"},
                                 {"qwen2moe", "Qwen2MoeForCausalLM"},
                                 {"qwen3moe", "Qwen3MoeForCausalLM"}};

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
  if (!hf_arch) fail(CKH_E_UNSUPPORTED, "GGUF architecture '" + arch + "' is not read yet (llama, qwen2, qwen3, qwen2moe and qwen3moe are)");
  auto num = [&](const std::string &k, bool required, double def = 0) -> double {
    const auto it = m.find(arch + "." + k);
    if (it == m.end() || !it->second.is_number()) {
      if (required) fail(CKH_E_FORMAT, "GGUF: '" + arch + "." + k + "' is missing");
      return def;
    }
    const double v = it->second.get<double>();
    // Counts become int64: a value past 2^53 (or not finite) is refused before any cast.
    if (!std::isfinite(v) || std::fabs(v) > 9.0e15) fail(CKH_E_FORMAT, "GGUF: '" + arch + "." + k + "' " + it->second.dump() + " is out of range");
    return v;
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
  if (hd <= 0 || hd % 2 || hd * heads > (int64_t{1} << 24)) fail(CKH_E_FORMAT, "GGUF: head width " + std::to_string(hd) + " is not a positive even size");
  // MoE: expert_count experts per layer (Mixtral as llama with experts, Qwen2-MoE with a shared expert, Qwen3-MoE).
  const int64_t experts = static_cast<int64_t>(num("expert_count", false, 0));
  if (experts < 0 || experts > (1 << 16)) fail(CKH_E_FORMAT, "GGUF: '" + arch + ".expert_count' " + std::to_string(experts) + " is out of range");
  if ((arch == "qwen2moe" || arch == "qwen3moe") && experts == 0) fail(CKH_E_FORMAT, "GGUF: '" + arch + ".expert_count' is missing");
  if (experts > 0 && arch != "llama" && arch != "qwen2moe" && arch != "qwen3moe")
    fail(CKH_E_UNSUPPORTED, "GGUF: experts in a " + arch + " file are not read");
  if (m.count(arch + ".rope.scaling.type") && m.at(arch + ".rope.scaling.type") != "linear")
    fail(CKH_E_UNSUPPORTED, "GGUF: rope.scaling.type " + m.at(arch + ".rope.scaling.type").dump() + " is not read yet (linear is)");
  if (b.has("rope_freqs.weight")) fail(CKH_E_UNSUPPORTED, "GGUF: rope_freqs.weight (Llama 3 RoPE scaling) is not read back yet");
  const std::string mt = arch == "llama" ? (experts > 0 ? "mixtral" : "llama") : arch == "qwen2moe" ? "qwen2_moe" : arch == "qwen3moe" ? "qwen3_moe" : arch;
  const std::vector<int64_t> emb = shape("token_embd.weight");
  const bool tied = !b.has("output.weight"), bias = b.has("blk.0.attn_q.bias");
  json cfg = {{"architectures", {experts > 0 && arch == "llama" ? "MixtralForCausalLM" : hf_arch}},
              {"model_type", mt},
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
  if (mt == "llama") cfg["attention_bias"] = bias;
  if (arch != "llama") cfg["use_sliding_window"] = false;
  if (experts > 0) {
    const int64_t used = static_cast<int64_t>(num("expert_used_count", true));
    if (used <= 0 || used > experts) fail(CKH_E_FORMAT, "GGUF: '" + arch + ".expert_used_count' " + std::to_string(used) + " is not in 1.." + std::to_string(experts));
    cfg["num_experts_per_tok"] = used;
    if (mt == "mixtral") {
      cfg["num_local_experts"] = experts;
    } else {
      cfg["num_experts"] = experts;
      cfg["moe_intermediate_size"] = static_cast<int64_t>(num("expert_feed_forward_length", true));
      cfg["decoder_sparse_step"] = 1;
      cfg["mlp_only_layers"] = json::array();
      cfg["norm_topk_prob"] = arch == "qwen3moe";  // what llama.cpp computes: qwen3moe renormalises, qwen2moe does not
    }
    if (arch == "qwen2moe") cfg["shared_expert_intermediate_size"] = static_cast<int64_t>(num("expert_shared_feed_forward_length", true));
  }
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
    if (arch == "qwen3" || arch == "qwen3moe") {
      out(h + "self_attn.q_norm.weight", in("attn_q_norm.weight"));
      out(h + "self_attn.k_norm.weight", in("attn_k_norm.weight"));
    }
    out(h + "post_attention_layernorm.weight", in("ffn_norm.weight"));
    if (experts == 0) {
      out(h + "mlp.gate_proj.weight", in("ffn_gate.weight"));
      out(h + "mlp.up_proj.weight", in("ffn_up.weight"));
      out(h + "mlp.down_proj.weight", in("ffn_down.weight"));
      continue;
    }
    // The stacked experts [experts, rows, cols] back to one [rows, cols] tensor per expert.
    const bool w123 = mt == "mixtral";
    const std::string mo = h + (w123 ? "block_sparse_moe." : "mlp.");
    out(mo + "gate.weight", in("ffn_gate_inp.weight"));
    const char *const proj[3][3] = {{"ffn_gate_exps", "w1", "gate_proj"}, {"ffn_up_exps", "w3", "up_proj"}, {"ffn_down_exps", "w2", "down_proj"}};
    for (const auto &p : proj)
      ckh::plugins::model::unstack_experts(b, in(std::string(p[0]) + ".weight"), g + p[0] + ".weight", experts, [&](int64_t e, ckh_expr x) {
        out(mo + "experts." + std::to_string(e) + "." + (w123 ? p[1] : p[2]) + ".weight", x);
      });
    if (arch == "qwen2moe") {
      out(mo + "shared_expert_gate.weight", in("ffn_gate_inp_shexp.weight"));
      out(mo + "shared_expert.gate_proj.weight", in("ffn_gate_shexp.weight"));
      out(mo + "shared_expert.up_proj.weight", in("ffn_up_shexp.weight"));
      out(mo + "shared_expert.down_proj.weight", in("ffn_down_shexp.weight"));
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

}  // namespace ckh::llama
