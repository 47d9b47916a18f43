// plugin.cpp — the Llama family model plugin: canonical tensor list, the HF completeness check
// (mapper "llama", hf -> hf) and HF -> Megatron-Core (mapper "llama.hf-to-mcore", mcore_mapper.cpp). Qwen3-Next
// (linear attention) has the HF check only: Megatron refuses it by name here, GGUF in gguf_mapper.cpp.
#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "model_check.hpp"

#include "option_decls.hpp"
#include "gguf_mapper.hpp"
#include "llama_config.hpp"
#include "mcore_mapper.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace {

using ckh::plugins::model::config_of;

ckh::llama::LlamaConfig parse_or_fail(const json &cfg) {
  try {
    return ckh::llama::parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
}

// model.layers.<digits>.self_attn.rotary_emb.inv_freq
bool is_rotary_inv_freq(const std::string &n) {
  static const std::string pre = "model.layers.", suf = ".self_attn.rotary_emb.inv_freq";
  if (n.size() <= pre.size() + suf.size() || n.compare(0, pre.size(), pre) != 0 ||
      n.compare(n.size() - suf.size(), suf.size(), suf) != 0)
    return false;
  const std::string mid = n.substr(pre.size(), n.size() - pre.size() - suf.size());
  return std::all_of(mid.begin(), mid.end(), [](char ch) { return ch >= '0' && ch <= '9'; });
}

// The tensor whose quantization scale this input is (reader annotation {"quant":{"role":"scale","of":X}}),
// or "".
std::string scale_of(const ckh_tensor_annot_t &a) {
  if (!a.extra_json) return {};
  const json j = json::parse(a.extra_json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("quant") || !j["quant"].is_object()) return {};
  const json &q = j["quant"];
  if (q.value("role", std::string()) != "scale" || !q.contains("of") || !q["of"].is_string()) return {};
  return q["of"].get<std::string>();
}

int32_t probe(const ckh_mapper_class_t *, const char *metadata_json) {
  try {
    return ckh::llama::score(config_of(metadata_json));
  } catch (...) {
    return 0;
  }
}

// hf -> hf: every tensor the config implies must be present with its shape and is passed through
// unchanged (the checkpoint's dtype is kept); known leftovers are ignored; anything else stays unused
// so the host reports it as an unexpected tensor.
ckh_status map_hf(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json cfg = config_of(metadata_json);
    const ckh::llama::LlamaConfig c = parse_or_fail(cfg);
    // Qwen3-Next's MTP block (mtp.*) travels when the checkpoint has it (the release does, transformers' do not):
    // as many layers as mtp.layers.<k> has, at most 64.
    int64_t mtp = 0;
    if (c.model_type == "qwen3_next" && b.has("mtp.fc.weight"))
      while (mtp < 64 && b.has("mtp.layers." + std::to_string(mtp) + ".input_layernorm.weight")) ++mtp;
    std::vector<ckh::llama::Canonical> tensors = ckh::llama::canonical_tensors(c);
    for (auto &t : ckh::llama::mtp_tensors(c, mtp)) tensors.push_back(std::move(t));
    std::vector<std::string> missing;
    for (const auto &t : tensors) {
      const int64_t i = b.find(t.name);
      if (i < 0) {
        missing.push_back(t.name);
        continue;
      }
      const ckh_tensor_info_t info = b.input_info(static_cast<uint64_t>(i));
      const std::vector<int64_t> have = ckh::plugins::model::shape_of(info);
      ckh::plugins::model::check_shape(t.name, have, t.shape);
      ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
      a.init = t.init;
      a.expert = t.expert;
      a.kind = t.kind;
      a.parallel = CKH_PARALLEL_UNSTATED;
      b.emit(t.name, b.input(t.name), &a);
    }
    ckh::plugins::model::check_missing(missing);
    const std::vector<int64_t> embed_shape = {c.vocab, c.hidden};
    std::map<std::string, ckh::llama::Canonical> by_name;
    for (const auto &t : tensors) by_name.emplace(t.name, t);
    for (uint64_t i = 0; i < b.input_count(); ++i) {
      const ckh_tensor_info_t info = b.input_info(i);
      const std::string n = info.name ? info.name : "";
      // The scales of quantized weights (the reader pairs them) travel with their weight, unchanged.
      const std::string of = scale_of(b.input_annot(i));
      if (!of.empty() && by_name.count(of)) {
        const auto &w = by_name.at(of);
        ckh_tensor_annot_t a = ckh::sdk::annot(w.role, w.layer);
        a.kind = w.kind;
        a.parallel = CKH_PARALLEL_UNSTATED;
        b.emit(n, b.input(n), &a);
        continue;
      }
      if (is_rotary_inv_freq(n)) {
        b.ignore(n, "rotary inv_freq buffer (recomputed from rope_theta)");
      } else if (n == "lm_head.weight" && c.tied &&
                 std::vector<int64_t>(info.shape, info.shape + info.ndim) == embed_shape) {
        b.ignore(n, "tie_word_embeddings: the output layer is model.embed_tokens.weight");
      }
    }
  });
}

ckh_status canonical(const ckh_mapper_class_t *, const char *config_json, void *ctx, ckh_tensor_sink_fn sink) {
  return ckh::sdk::guard([&] {
    const json cfg = json::parse(config_json ? config_json : "", nullptr, false);
    const ckh::llama::Config c = parse_or_fail(cfg);
    for (const auto &t : ckh::llama::canonical_tensors(c)) {
      ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
      a.init = t.init;
      a.expert = t.expert;
      a.kind = t.kind;
      ckh::plugins::model::sink_tensor(sink, ctx, t.name, c.dtype, t.shape, a);
    }
  });
}

ckh_status map_to_mcore(const ckh_mapper_class_t *, const char *options_json, const char *metadata_json,
                        ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json opts = json::parse(options_json ? options_json : "{}", nullptr, false);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    const json cfg = meta.is_object() ? meta.value("config", json()) : json();
    if (cfg.is_object() && cfg.value("model_type", std::string()) == "qwen3_next")
      fail(CKH_E_UNSUPPORTED, "config.json: model_type qwen3_next (Qwen3-Next): Megatron is not supported for it (its Gated DeltaNet "
                              "linear attention, linear_attn.*, and gated q_proj have no mapping there); HF and kt-amx are");
    ckh::llama::map_hf_to_mcore(opts.is_discarded() ? json::object() : opts, meta, b);
  });
}

int32_t probe_mcore(const ckh_mapper_class_t *, const char *metadata_json) {
  try {
    return ckh::llama::score_mcore(json::parse(metadata_json ? metadata_json : "{}", nullptr, false));
  } catch (...) {
    return 0;
  }
}

ckh_status map_from_mcore(const ckh_mapper_class_t *, const char *options_json, const char *metadata_json,
                          ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json opts = json::parse(options_json ? options_json : "{}", nullptr, false);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    ckh::llama::map_mcore_to_hf(opts.is_discarded() ? json::object() : opts, meta, b);
  });
}

// Phase two of a Megatron reader's open: every family of this plugin has a gated (SwiGLU) MLP, so a
// tensor-parallel linear_fc1 holds [gate_r; up_r] per rank, whatever the checkpoint's args say.
ckh_status hints_mcore(const ckh_mapper_class_t *, const char *, const char *, void *ctx, ckh_text_sink_fn sink) {
  return sink(ctx, R"({"gated_mlp": true})");
}

ckh_status map_to_gguf(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    ckh::llama::map_hf_to_gguf(meta.is_discarded() ? json::object() : meta, b);
  });
}

ckh_status map_from_gguf(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    ckh::llama::map_gguf_to_hf(meta.is_discarded() ? json::object() : meta, b);
  });
}

int32_t probe_gguf(const ckh_mapper_class_t *, const char *metadata_json) {
  return ckh::llama::score_gguf(json::parse(metadata_json ? metadata_json : "{}", nullptr, false));
}

const ckh_mapper_class_t kFromGguf = {sizeof(ckh_mapper_class_t), 0, probe_gguf, map_from_gguf, nullptr, nullptr};
const ckh_component_t kFromGgufComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "llama.gguf-to-hf",
    "Llama family GGUF (llama incl. Mixtral, qwen2, qwen3, qwen2moe, qwen3moe) -> HF names, q/k rows un-permuted, experts unstacked, config.json from the key-values",
    R"({"family":"llama","from":"gguf","to":"hf","model_types":["llama","mistral","mixtral","qwen2","qwen3","qwen2_moe","qwen3_moe"]})", &kFromGguf};

const ckh_mapper_class_t kToGguf = {sizeof(ckh_mapper_class_t), 0, probe, map_to_gguf, canonical, nullptr};
const ckh_component_t kToGgufComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "llama.hf-to-gguf",
    "Llama family HF -> llama.cpp GGUF names and metadata (llama with its q/k row permutation incl. Mixtral, qwen2, qwen3, qwen2moe, qwen3moe; experts stacked)",
    R"({"family":"llama","from":"hf","to":"gguf","model_types":["llama","mistral","mixtral","qwen2","qwen3","qwen2_moe","qwen3_moe"]})", &kToGguf};

const ckh_mapper_class_t kFromMcore = {sizeof(ckh_mapper_class_t), 0, probe_mcore, map_from_mcore, nullptr, hints_mcore};
const ckh_mapper_class_t kHf = {sizeof(ckh_mapper_class_t), 0, probe, map_hf, canonical, nullptr};
const ckh_mapper_class_t kToMcore = {sizeof(ckh_mapper_class_t), 0, probe, map_to_mcore, canonical, nullptr};
const ckh_component_t kHfComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "llama",
    "Llama family (Llama 2/3, Mistral, Qwen2/2.5, Qwen3, MiniCPM, Mixtral, Qwen2-MoE, Qwen3-MoE, MiniMax-M2, Qwen3-Next with its linear "
    "attention layers and MTP block): HF tensor list and completeness check",
    R"({"family":"llama","from":"hf","to":"hf","model_types":["llama","mistral","qwen2","qwen3","minicpm","mixtral","qwen2_moe","qwen3_moe","minimax_m2","qwen3_next"]})", &kHf};
const ckh_component_t kToMcoreComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "llama.hf-to-mcore",
    "Llama family HF -> Megatron-Core (TE or local spec): GQA-interleaved linear_qkv, fused fc1, MoE experts and router, args",
    R"({"family":"llama","from":"hf","to":"megatron","model_types":["llama","mistral","qwen2","qwen3","minicpm","mixtral","qwen2_moe","qwen3_moe","minimax_m2"],)"
    R"("options":[)" CKH_OPT_MEGATRON_SPEC "," CKH_OPT_MOE_GROUPED_GEMM R"(,{"name":"minicpm-fold","type":"bool","group":"megatron",)"
    R"J("help":"MiniCPM: fold scale_emb/scale_depth/dim_model_base into the weights (stock Megatron)"}]})J",
    &kToMcore};
const ckh_component_t kFromMcoreComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "llama.mcore-to-hf",
    "Llama family Megatron-Core -> HF: splits linear_qkv and fc1, drops vocabulary padding, config from args",
    R"({"family":"llama","from":"megatron","to":"hf","model_types":["llama","mistral","qwen2","qwen3","minicpm","mixtral","qwen2_moe","qwen3_moe"]})",
    &kFromMcore};
const ckh_component_t *const kComponents[] = {&kHfComp, &kToMcoreComp, &kFromMcoreComp, &kToGgufComp, &kFromGgufComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 5, "org.ckhost.model.llama", "0.1.0",
                              "ckhost", "Llama model family", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
