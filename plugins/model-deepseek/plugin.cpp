// plugin.cpp — the DeepSeek (MLA) model plugin: canonical tensor list, the HF completeness check (mapper
// "deepseek", hf -> hf, MTP layers of the released checkpoints included when present) and HF <->
// Megatron-Core (mappers "deepseek.hf-to-mcore" / "deepseek.mcore-to-hf", mcore_mapper.cpp), and HF <-> llama.cpp GGUF
// deepseek2 ("deepseek.hf-to-gguf" / "deepseek.gguf-to-hf", gguf_mapper.cpp). DeepSeek-V3.2 and GLM-5 (the
// sparse-attention indexer) have the HF check only: Megatron and GGUF refuse them by name.
#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "model_check.hpp"

#include "option_decls.hpp"
#include "deepseek_config.hpp"
#include "gguf_mapper.hpp"
#include "mcore_mapper.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace {

using ckh::plugins::model::config_of;

ckh::deepseek::Config parse_or_fail(const json &cfg) {
  try {
    return ckh::deepseek::parse_config(cfg);
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
    return ckh::deepseek::score(config_of(metadata_json));
  } catch (...) {
    return 0;
  }
}

// The MTP layer's copies of the embedding and the LM head (model.layers.<n>.embed_tokens /
// shared_head.head): in the GLM-4.5 release, absent from GLM-4.6's (a vLLM report of GLM-4.6 missing
// model.layers.92.shared_head.head.weight), so optional for glm4_moe. Megatron-Core shares the model's own.
// The MTP layer's sparse-attention indexer (DeepSeek-V3.2, GLM-5: the GLM-5 release has one in layer 78) is
// taken when present and not required.
bool mtp_copy_optional(const ckh::deepseek::Config &c, const ckh::deepseek::Canonical &t) {
  if (t.role != CKH_ROLE_MTP) return false;
  if (c.dsa && t.name.find(".self_attn.indexer.") != std::string::npos) return true;
  if (c.model_type != "glm4_moe") return false;
  auto ends = [&](const std::string &suf) {
    return t.name.size() > suf.size() && t.name.compare(t.name.size() - suf.size(), suf.size(), suf) == 0;
  };
  return ends(".embed_tokens.weight") || ends(".shared_head.head.weight");
}

// HF -> Megatron-Core also claims GLM-5 (transformers' glm_moe_dsa) so that it is refused by name
// (map_hf_to_mcore) instead of passing as a model-less checkpoint.
int32_t probe_to_mcore(const ckh_mapper_class_t *c, const char *metadata_json) {
  try {
    const json cfg = config_of(metadata_json);
    if (cfg.is_object() && cfg.value("model_type", std::string()) == "glm_moe_dsa") return 90;
  } catch (...) {
    return 0;
  }
  return probe(c, metadata_json);
}

// hf -> hf: every tensor the config implies must be present with its shape and is passed through
// unchanged (the checkpoint's dtype is kept); known leftovers are ignored; anything else stays unused
// so the host reports it as an unexpected tensor.
ckh_status map_hf(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json cfg = config_of(metadata_json);
    const ckh::deepseek::Config c = parse_or_fail(cfg);
    // MTP layers travel when the checkpoint has them (the released ones do, transformers' do not).
    const bool mtp = c.mtp > 0 && b.has("model.layers." + std::to_string(c.layers) + ".eh_proj.weight");
    const auto tensors = ckh::deepseek::canonical_tensors(c, mtp);
    std::vector<std::string> missing;
    for (const auto &t : tensors) {
      const int64_t i = b.find(t.name);
      if (i < 0) {
        if (!mtp_copy_optional(c, t)) missing.push_back(t.name);
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
    std::map<std::string, ckh::deepseek::Canonical> by_name;
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
      if (is_rotary_inv_freq(n)) b.ignore(n, "rotary inv_freq buffer (recomputed from rope_theta)");
    }
  });
}

ckh_status canonical(const ckh_mapper_class_t *, const char *config_json, void *ctx, ckh_tensor_sink_fn sink) {
  return ckh::sdk::guard([&] {
    const json cfg = json::parse(config_json ? config_json : "", nullptr, false);
    const ckh::deepseek::Config c = parse_or_fail(cfg);
    for (const auto &t : ckh::deepseek::canonical_tensors(c)) {
      ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
      a.init = t.init;
      a.expert = t.expert;
      a.kind = t.kind;
      ckh::plugins::model::sink_tensor(sink, ctx, t.name, t.dtype, t.shape, a);
    }
  });
}

// DeepSeek-V3.2 (deepseek_v32) has the HF check only; its indexer has no mapping to Megatron or GGUF here.
void refuse_dsa(const json &meta, const char *to) {
  const json cfg = meta.is_object() ? meta.value("config", json()) : json();
  if (cfg.is_object() && cfg.value("model_type", std::string()) == "deepseek_v32")
    fail(CKH_E_UNSUPPORTED, std::string("config.json: model_type deepseek_v32 (DeepSeek-V3.2): ") + to +
                                " is not supported for it (its sparse-attention indexer, self_attn.indexer.*, has no mapping "
                                "there); HF and kt-amx are");
  if (cfg.is_object() && cfg.value("model_type", std::string()) == "glm_moe_dsa" && std::string(to) == "GGUF")
    fail(CKH_E_UNSUPPORTED, "config.json: model_type glm_moe_dsa (GLM-5): GGUF is not supported for it (its sparse-attention "
                            "indexer, self_attn.indexer.*, has no mapping there); HF and kt-amx are");
}

ckh_status map_to_mcore(const ckh_mapper_class_t *, const char *options_json, const char *metadata_json,
                        ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json opts = json::parse(options_json ? options_json : "{}", nullptr, false);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    refuse_dsa(meta, "Megatron");
    ckh::deepseek::map_hf_to_mcore(opts.is_discarded() ? json::object() : opts, meta, b);
  });
}

int32_t probe_mcore(const ckh_mapper_class_t *, const char *metadata_json) {
  try {
    return ckh::deepseek::score_mcore(json::parse(metadata_json ? metadata_json : "{}", nullptr, false));
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
    ckh::deepseek::map_mcore_to_hf(opts.is_discarded() ? json::object() : opts, meta, b);
  });
}

// Phase two of a Megatron reader's open: DeepSeek's MLPs are gated (SwiGLU), so a tensor-parallel
// linear_fc1 holds [gate_r; up_r] per rank, whatever the checkpoint's args say.
ckh_status hints_mcore(const ckh_mapper_class_t *, const char *, const char *, void *ctx, ckh_text_sink_fn sink) {
  return sink(ctx, R"({"gated_mlp": true})");
}

ckh_status map_to_gguf(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    refuse_dsa(meta, "GGUF");
    ckh::deepseek::map_hf_to_gguf(meta.is_discarded() ? json::object() : meta, b);
  });
}

int32_t probe_to_gguf(const ckh_mapper_class_t *, const char *metadata_json) {
  try {
    return ckh::deepseek::score_to_gguf(config_of(metadata_json));
  } catch (...) {
    return 0;
  }
}

ckh_status map_from_gguf(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    ckh::deepseek::map_gguf_to_hf(meta.is_discarded() ? json::object() : meta, b);
  });
}

int32_t probe_gguf(const ckh_mapper_class_t *, const char *metadata_json) {
  return ckh::deepseek::score_gguf(json::parse(metadata_json ? metadata_json : "{}", nullptr, false));
}

const ckh_mapper_class_t kToGguf = {sizeof(ckh_mapper_class_t), 0, probe_to_gguf, map_to_gguf, canonical, nullptr};
const ckh_mapper_class_t kFromGguf = {sizeof(ckh_mapper_class_t), 0, probe_gguf, map_from_gguf, nullptr, nullptr};
const ckh_component_t kToGgufComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "deepseek.hf-to-gguf",
    "DeepSeek-V2/V3 HF -> llama.cpp GGUF deepseek2: kv_b_proj split into attn_k_b / attn_v_b, experts stacked, dense first layers, "
    "shared experts, expert bias as exp_probs_b, MTP layers left out",
    R"({"family":"deepseek","from":"hf","to":"gguf","model_types":["deepseek_v2","deepseek_v3"]})", &kToGguf};
const ckh_component_t kFromGgufComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "deepseek.gguf-to-hf",
    "llama.cpp GGUF deepseek2 -> DeepSeek-V3 (sigmoid router) or V2 HF names, kv_b_proj rebuilt, config.json from the key-values",
    R"({"family":"deepseek","from":"gguf","to":"hf","model_types":["deepseek_v2","deepseek_v3"]})", &kFromGguf};

const ckh_mapper_class_t kFromMcore = {sizeof(ckh_mapper_class_t), 0, probe_mcore, map_from_mcore, nullptr, hints_mcore};
const ckh_mapper_class_t kHf = {sizeof(ckh_mapper_class_t), 0, probe, map_hf, canonical, nullptr};
const ckh_mapper_class_t kToMcore = {sizeof(ckh_mapper_class_t), 0, probe_to_mcore, map_to_mcore, canonical, nullptr};
const ckh_component_t kHfComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "deepseek",
    "DeepSeek-V2/V2-Lite/V3/V3.1 (multi-latent attention), DeepSeek-V3.2 and GLM-5 (MLA with the sparse-attention indexer) and GLM-4.5 "
    "(grouped-query attention), shared and routed experts, MTP layers: HF tensor list and completeness check",
    R"({"family":"deepseek","from":"hf","to":"hf","model_types":["deepseek_v2","deepseek_v3","glm4_moe","deepseek_v32","glm_moe_dsa"]})", &kHf};
const ckh_component_t kToMcoreComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "deepseek.hf-to-mcore",
    "DeepSeek HF -> Megatron-Core (TE or local spec): MLA projections, dense first layers, experts, router expert bias, MTP, args",
    R"({"family":"deepseek","from":"hf","to":"megatron","model_types":["deepseek_v2","deepseek_v3","glm4_moe"],)"
    R"("options":[)" CKH_OPT_MEGATRON_SPEC "," CKH_OPT_MOE_GROUPED_GEMM "]}",
    &kToMcore};
const ckh_component_t kFromMcoreComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "deepseek.mcore-to-hf",
    "DeepSeek Megatron-Core -> HF: MLA, experts, MTP layers in the released layout, config from args",
    R"({"family":"deepseek","from":"megatron","to":"hf","model_types":["deepseek_v2","deepseek_v3","glm4_moe"]})",
    &kFromMcore};
const ckh_component_t *const kComponents[] = {&kHfComp, &kToMcoreComp, &kFromMcoreComp, &kToGgufComp, &kFromGgufComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 5, "org.ckhost.model.deepseek", "0.1.0",
                              "ckhost", "DeepSeek model family (MLA)", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
