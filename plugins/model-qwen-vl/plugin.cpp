// plugin.cpp — the Qwen2-VL / Qwen2.5-VL model plugin: the canonical tensor list (vision tower as stack 1,
// text decoder as stack 0) and the HF completeness check (mapper "qwen-vl", hf -> hf).
#include <map>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "model_check.hpp"

#include "mm_mapper.hpp"
#include "qwen3_vl.hpp"
#include "qwen_vl_config.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace {

using ckh::plugins::model::config_of;

ckh::qwen_vl::Config parse_or_fail(const json &cfg) {
  try {
    return ckh::qwen_vl::parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
}

ckh_tensor_annot_t annot_of(const ckh::qwen_vl::Canonical &t) {
  ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
  a.init = t.init;
  a.kind = t.kind;
  a.stack = t.stack;
  a.parallel = CKH_PARALLEL_UNSTATED;
  return a;
}

int32_t probe(const ckh_mapper_class_t *, const char *metadata_json) {
  try {
    return ckh::qwen_vl::score(config_of(metadata_json));
  } catch (...) {
    return 0;
  }
}

ckh::qwen_vl::Config3 parse3_or_fail(const json &cfg) {
  try {
    return ckh::qwen_vl::parse_config3(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
}

// Qwen3-VL hf -> hf. A fused expert tensor may be stored as transformers 5 saves it ([E, 2I, H] / [E, H, I]),
// as the released checkpoints do ([E, H, 2I] / [E, I, H]), or viewed 2-D ([E * a, b]) as MindSpeed-MM's FSDP2
// checkpoints hold it; each passes unchanged in its orientation, the 2-D view back in three dimensions.
void map_hf3(ckh::sdk::Builder &b, const json &cfg) {
  const ckh::qwen_vl::Config3 c = parse3_or_fail(cfg);
  std::vector<std::string> missing;
  for (const auto &t : ckh::qwen_vl::canonical_tensors3(c)) {
    const int64_t i = b.find(t.name);
    if (i < 0) {
      missing.push_back(t.name);
      continue;
    }
    const std::vector<int64_t> have = ckh::plugins::model::shape_of(b.input_info(static_cast<uint64_t>(i)));
    const std::vector<int64_t> released = ckh::qwen_vl::released_expert_shape(t.name, t.shape);
    ckh_expr e = b.input(t.name);
    if (!released.empty() && have != t.shape) {
      if (have == released) {
      } else if (have.size() == 2 && have[0] == t.shape[0] * t.shape[1] && have[1] == t.shape[2]) {
        e = b.reshape(e, t.shape);
      } else if (have.size() == 2 && have[0] == released[0] * released[1] && have[1] == released[2]) {
        e = b.reshape(e, released);
      } else {
        fail(CKH_E_FORMAT, "tensor '" + t.name + "': config.json implies shape " + ckh::plugins::model::shape_str(t.shape) + " (or " +
                               ckh::plugins::model::shape_str(released) + " as released, or either viewed 2-D), checkpoint has " +
                               ckh::plugins::model::shape_str(have));
      }
    } else {
      ckh::plugins::model::check_shape(t.name, have, t.shape);
    }
    const ckh_tensor_annot_t a = annot_of(t);
    b.emit(t.name, e, &a);
  }
  ckh::plugins::model::check_missing(missing);
  if (c.tied && b.find("lm_head.weight") >= 0)
    b.ignore("lm_head.weight", "tie_word_embeddings: the output layer is model.language_model.embed_tokens.weight");
}

// hf -> hf: every tensor the config implies must be there with its shape, and passes unchanged; a tied
// lm_head copy is ignored; anything else stays unused, so the host names it as unexpected.
ckh_status map_hf(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    if (ckh::qwen_vl::is_qwen3_vl(config_of(metadata_json))) return map_hf3(b, config_of(metadata_json));
    const ckh::qwen_vl::Config c = parse_or_fail(config_of(metadata_json));
    std::vector<std::string> missing;
    for (const auto &t : ckh::qwen_vl::canonical_tensors(c)) {
      const int64_t i = b.find(t.name);
      if (i < 0) {
        missing.push_back(t.name);
        continue;
      }
      const ckh_tensor_info_t info = b.input_info(static_cast<uint64_t>(i));
      const std::vector<int64_t> have = ckh::plugins::model::shape_of(info);
      ckh::plugins::model::check_shape(t.name, have, t.shape);
      const ckh_tensor_annot_t a = annot_of(t);
      b.emit(t.name, b.input(t.name), &a);
    }
    ckh::plugins::model::check_missing(missing);
    if (c.tied && b.find("lm_head.weight") >= 0) {
      const ckh_tensor_info_t info = b.input_info(static_cast<uint64_t>(b.find("lm_head.weight")));
      if (ckh::plugins::model::shape_of(info) == std::vector<int64_t>{c.vocab, c.hidden})
        b.ignore("lm_head.weight", "tie_word_embeddings: the output layer is model.embed_tokens.weight");
    }
  });
}

ckh_status canonical(const ckh_mapper_class_t *, const char *config_json, void *ctx, ckh_tensor_sink_fn sink) {
  return ckh::sdk::guard([&] {
    const json cfg = json::parse(config_json ? config_json : "", nullptr, false);
    if (ckh::qwen_vl::is_qwen3_vl(cfg)) {
      const ckh::qwen_vl::Config3 c = parse3_or_fail(cfg);
      for (const auto &t : ckh::qwen_vl::canonical_tensors3(c))
        ckh::plugins::model::sink_tensor(sink, ctx, t.name, c.dtype, t.shape, annot_of(t));
      return;
    }
    const ckh::qwen_vl::Config c = parse_or_fail(cfg);
    for (const auto &t : ckh::qwen_vl::canonical_tensors(c)) {
      const ckh_tensor_annot_t a = annot_of(t);
      ckh::plugins::model::sink_tensor(sink, ctx, t.name, c.dtype, t.shape, a);
    }
  });
}

ckh_status map_to_mm(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    const json m = meta.is_discarded() ? json::object() : meta;
    if (ckh::qwen_vl::is_qwen3_vl(config_of(metadata_json))) return ckh::qwen_vl::map_hf_to_mm3(m, b);
    ckh::qwen_vl::map_hf_to_mm(m, b);
  });
}

ckh_status map_from_mm(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    const json m = meta.is_discarded() ? json::object() : meta;
    if (ckh::qwen_vl::is_qwen3_vl(config_of(metadata_json))) return ckh::qwen_vl::map_mm_to_hf3(m, b);
    ckh::qwen_vl::map_mm_to_hf(m, b);
  });
}

// Phase two of the Megatron reader's open of a MindSpeed-MM checkpoint: how linear_fc1 shards merge.
ckh_status hints_mm(const ckh_mapper_class_t *, const char *, const char *metadata_json, void *ctx, ckh_text_sink_fn sink) {
  return ckh::sdk::guard([&] {
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    const json m = meta.is_discarded() ? json::object() : meta;
    const std::string h = ckh::qwen_vl::is_qwen3_vl(config_of(metadata_json)) ? ckh::qwen_vl::mm_reader_hints3(m) : ckh::qwen_vl::mm_reader_hints(m);
    const ckh_status s = sink(ctx, h.c_str());
    if (s != CKH_OK) throw ckh::sdk::Error(s, "sink failed", true);
  });
}

const ckh_mapper_class_t kHf = {sizeof(ckh_mapper_class_t), 0, probe, map_hf, canonical, nullptr};
const ckh_mapper_class_t kFromMm = {sizeof(ckh_mapper_class_t), 0, probe, map_from_mm, nullptr, hints_mm};
const ckh_mapper_class_t kToMm = {sizeof(ckh_mapper_class_t), 0, probe, map_to_mm, canonical, nullptr};
const ckh_component_t kHfComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "qwen-vl",
    "Qwen2-VL / Qwen2.5-VL / Qwen3-VL / Qwen3-VL-MoE (vision tower as stack 1, Qwen2 / Qwen3 decoder): HF tensor list and completeness check",
    R"({"family":"qwen-vl","from":"hf","to":"hf","model_types":["qwen2_vl","qwen2_5_vl","qwen3_vl","qwen3_vl_moe"]})", &kHf};
const ckh_component_t kToMmComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "qwen-vl.hf-to-mm",
    "Qwen2-VL / Qwen2.5-VL HF -> MindSpeed-MM names: image_encoder.* (qkv regrouped per head, [gate; up]), "
    "text_decoder.* (qkv fused per query group), with TP splits and per-tower pipeline places",
    R"({"family":"qwen-vl","from":"hf","to":"mindspeed-mm","model_types":["qwen2_vl","qwen2_5_vl","qwen3_vl","qwen3_vl_moe"]})", &kToMm};
const ckh_component_t kFromMmComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "qwen-vl.mm-to-hf",
    "Qwen2-VL / Qwen2.5-VL MindSpeed-MM -> HF names (the inverse of qwen-vl.hf-to-mm; config from the checkpoint's hf/ or --hf-config)",
    R"({"family":"qwen-vl","from":"mindspeed-mm","to":"hf","model_types":["qwen2_vl","qwen2_5_vl","qwen3_vl","qwen3_vl_moe"]})", &kFromMm};
const ckh_component_t *const kComponents[] = {&kHfComp, &kToMmComp, &kFromMmComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 3, "org.ckhost.model.qwen-vl", "0.1.0",
                              "ckhost", "Qwen2-VL / Qwen2.5-VL model family", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
