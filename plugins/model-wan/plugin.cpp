// plugin.cpp — the Wan 2.1/2.2 DiT model plugin (mapper "wan", hf -> hf): reads a diffusers
// WanTransformer3DModel checkpoint or one under the original Wan names (detected by its keys), checks
// every tensor the config implies (name and shape), and writes it under the naming --wan-names asks
// for (diffusers by default: the canonical form), with the config.json of that naming.
#include <map>
#include <set>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "model_check.hpp"

#include "wan_model.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace {

using ckh::wan::Naming;

json parse_obj(const char *s) {
  json j = json::parse(s ? s : "{}", nullptr, false);
  return j.is_discarded() || !j.is_object() ? json::object() : j;
}

json config_of(const json &meta) { return meta.contains("config") ? meta["config"] : json(); }

// A config of the original form states num_heads and dim; diffusers' states num_attention_heads.
bool original_config_form(const json &cfg) {
  return cfg.is_object() && !cfg.contains("num_attention_heads") && (cfg.contains("num_heads") || cfg.contains("dim"));
}

int32_t probe(const ckh_mapper_class_t *, const char *metadata_json) {
  try {
    return ckh::wan::score(config_of(parse_obj(metadata_json)));
  } catch (...) {
    return 0;
  }
}

Naming target_naming(const json &opts) {
  const std::string n = opts.contains("wan_names") && opts["wan_names"].is_string() ? opts["wan_names"].get<std::string>()
                                                                                    : std::string("diffusers");
  if (n == "diffusers") return Naming::Diffusers;
  if (n == "original") return Naming::Original;
  fail(CKH_E_INVALID_ARG, "--wan-names '" + n + "': expected diffusers or original");
}

ckh_status map_hf(const ckh_mapper_class_t *, const char *options_json, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json opts = parse_obj(options_json);
    json meta = parse_obj(metadata_json);
    const json cfg = config_of(meta);
    if (!cfg.is_object()) fail(CKH_E_FORMAT, "Wan DiT: the checkpoint has no config.json");
    // The source's naming, from its keys: the original head is head.head, diffusers' proj_out.
    const bool src_original = b.has("head.head.weight") || b.has("blocks.0.self_attn.q.weight");
    const Naming in = src_original ? Naming::Original : Naming::Diffusers;
    const Naming out = target_naming(opts);
    const bool cfg_original = original_config_form(cfg);
    auto shape_of = [&](const std::string &n) -> std::vector<int64_t> {
      const int64_t i = b.find(n);
      if (i < 0) return {};
      const ckh_tensor_info_t info = b.input_info(static_cast<uint64_t>(i));
      return std::vector<int64_t>(info.shape, info.shape + info.ndim);
    };
    ckh::wan::WanConfig c;
    json new_cfg;
    try {
      c = cfg_original ? ckh::wan::parse_original_config(cfg, shape_of) : ckh::wan::parse_diffusers_config(cfg);
      const bool want_original_cfg = out == Naming::Original;
      if (want_original_cfg != cfg_original)
        new_cfg = want_original_cfg ? ckh::wan::original_config(c, cfg) : ckh::wan::diffusers_config(c, cfg);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_FORMAT, std::string(e.what()) + (out == Naming::Original ? " (--wan-names original)" : ""));
    }
    std::vector<std::string> missing;
    for (const auto &t : ckh::wan::tensors(c)) {
      const std::string &src = t.name(in);
      const int64_t i = b.find(src);
      if (i < 0) {
        missing.push_back(src);
        continue;
      }
      const std::vector<int64_t> have = shape_of(src);
      ckh::plugins::model::check_shape(src, have, t.shape);
      ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
      a.init = t.init;
      a.kind = t.kind;
      a.parallel = CKH_PARALLEL_UNSTATED;
      b.emit(t.name(out), b.input(src), &a);
    }
    ckh::plugins::model::check_missing(missing);
    // diffusers drops an unexpected norm_added_q on load (_keys_to_ignore_on_load_unexpected).
    for (uint64_t i = 0; i < b.input_count(); ++i) {
      const ckh_tensor_info_t info = b.input_info(i);
      const std::string n = info.name ? info.name : "";
      if (n.find(".norm_added_q.") != std::string::npos)
        b.ignore(n, "norm_added_q: unused by WanTransformer3DModel (diffusers ignores it on load)");
    }
    if (!new_cfg.is_null()) {
      meta["config"] = new_cfg;
      meta["config_modified"] = true;
      b.set_metadata(meta.dump());
    }
  });
}

ckh_status canonical(const ckh_mapper_class_t *, const char *config_json, void *ctx, ckh_tensor_sink_fn sink) {
  return ckh::sdk::guard([&] {
    const json cfg = parse_obj(config_json);
    ckh::wan::WanConfig c;
    try {
      c = original_config_form(cfg) ? ckh::wan::parse_original_config(cfg, [](const std::string &) { return std::vector<int64_t>(); })
                                    : ckh::wan::parse_diffusers_config(cfg);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_FORMAT, e.what());
    }
    for (const auto &t : ckh::wan::tensors(c)) {
      ckh_tensor_info_t info{};
      info.struct_size = sizeof info;
      info.name = t.diffusers.c_str();
      info.dtype = c.dtype;
      info.ndim = static_cast<uint32_t>(t.shape.size());
      for (size_t d = 0; d < t.shape.size(); ++d) info.shape[d] = t.shape[d];
      ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
      a.init = t.init;
      a.kind = t.kind;
      const ckh_status s = sink(ctx, &info, &a);
      if (s != CKH_OK) throw ckh::sdk::Error(s, "sink failed", true);
    }
  });
}

const ckh_mapper_class_t kHf = {sizeof(ckh_mapper_class_t), 0, probe, map_hf, canonical, nullptr};
const ckh_component_t kHfComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "wan",
    "Wan 2.1/2.2 DiT (diffusers WanTransformer3DModel, or the original Wan names): tensor list, completeness check, "
    "diffusers <-> original names (--wan-names)",
    R"({"family":"wan","from":"hf","to":"hf","class_names":["WanTransformer3DModel","WanModel"],"options":[)"
    R"J({"name":"wan-names","type":"string","default":"diffusers","choices":["diffusers","original"],"group":"wan",)J"
    R"J("help":"Wan DiT tensor names to write: diffusers (WanTransformer3DModel, condition_embedder.*, attn1/attn2, norm2 = cross-attention norm) or original (Wan-Video/Wan2.1 WanModel: text_embedding.0, self_attn/cross_attn, norm3 = cross-attention norm, head.head) with the config.json of that naming; either is read"})J"
    R"(]})",
    &kHf};
const ckh_component_t *const kComponents[] = {&kHfComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.model.wan", "0.1.0",
                              "ckhost", "Wan DiT model family", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
