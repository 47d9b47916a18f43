// plugin.cpp — the Wan 2.1/2.2 DiT model plugin (mapper "wan", hf -> hf): reads a diffusers
// WanTransformer3DModel checkpoint or one under the original Wan names (detected by its keys), checks
// every tensor the config implies (name and shape), and writes it under the naming --wan-names asks
// for (diffusers by default: the canonical form), with the config.json of that naming.
#include <map>
#include <set>
#include <stdexcept>

#include <cstring>
#include <functional>
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
      ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
      a.init = t.init;
      a.kind = t.kind;
      ckh::plugins::model::sink_tensor(sink, ctx, t.diffusers, c.dtype, t.shape, a);
    }
  });
}

// ---- MindSpeed-MM names (checkpoint/sora_model/wan_converter.py: an exact map, then substring
// replacements in order, as its _replace_state_dict applies them to diffusers names) ----------------------
const std::pair<const char *, const char *> kMmExact[] = {
    {"condition_embedder.text_embedder.linear_1.", "text_embedding.linear_1."},
    {"condition_embedder.text_embedder.linear_2.", "text_embedding.linear_2."},
    {"condition_embedder.time_embedder.linear_1.", "time_embedding.0."},
    {"condition_embedder.time_embedder.linear_2.", "time_embedding.2."},
    {"condition_embedder.time_proj.", "time_projection.1."},
    {"condition_embedder.image_embedder.ff.net.0.proj.", "img_emb.proj.1."},
    {"condition_embedder.image_embedder.ff.net.2.", "img_emb.proj.3."},
    {"condition_embedder.image_embedder.norm1.", "img_emb.proj.0."},
    {"condition_embedder.image_embedder.norm2.", "img_emb.proj.4."},
    {"condition_embedder.image_embedder.pos_embed", "img_emb.emb_pos"},
    {"scale_shift_table", "head.modulation"},
    {"proj_out.", "head.head."}};
const std::pair<const char *, const char *> kMmReplace[] = {
    {"attn1.norm_q", "self_attn.q_norm"},      {"attn1.norm_k", "self_attn.k_norm"},
    {"attn2.norm_q", "cross_attn.q_norm"},     {"attn2.norm_k", "cross_attn.k_norm"},
    {"attn1.to_q.", "self_attn.proj_q."},      {"attn1.to_k.", "self_attn.proj_k."},
    {"attn1.to_v.", "self_attn.proj_v."},      {"attn1.to_out.0.", "self_attn.proj_out."},
    {"attn2.to_q.", "cross_attn.proj_q."},     {"attn2.to_k.", "cross_attn.proj_k."},
    {"attn2.to_v.", "cross_attn.proj_v."},     {"attn2.add_k_proj", "cross_attn.k_img"},
    {"attn2.add_v_proj", "cross_attn.v_img"},  {"attn2.norm_added_k", "cross_attn.k_norm_img"},
    {"attn2.to_out.0.", "cross_attn.proj_out."}, {".ffn.net.0.proj.", ".ffn.0."},
    {".ffn.net.2.", ".ffn.2."},                {"scale_shift_table", "modulation"},
    {".norm2.", ".norm3."}};

std::string mm_name(const std::string &d) {
  for (const auto &[from, to] : kMmExact) {
    const std::string f(from);
    if (d == f || (f.back() == '.' && d.rfind(f, 0) == 0)) return std::string(to) + d.substr(f.size());
  }
  std::string n = d;
  for (const auto &[from, to] : kMmReplace)
    for (size_t at = n.find(from); at != std::string::npos; at = n.find(from, at + std::strlen(to))) n.replace(at, std::strlen(from), to);
  return n;
}

ckh::wan::WanConfig config_for(const json &cfg, const std::function<std::vector<int64_t>(const std::string &)> &shape_of) {
  try {
    return original_config_form(cfg) ? ckh::wan::parse_original_config(cfg, shape_of) : ckh::wan::parse_diffusers_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what());
  }
}

// diffusers (or original) names -> MindSpeed-MM's, every tensor replicated over TP (WanConverter has no TP
// split), blocks as decoder layers, the embedders on the first stage and the head on the last.
ckh_status map_to_mm(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    json meta = parse_obj(metadata_json);
    const json cfg = meta.value("config", json::object());
    const ckh::wan::WanConfig c = config_for(cfg, [&](const std::string &n) {
      const int64_t i = b.find(n);
      return i < 0 ? std::vector<int64_t>() : ckh::plugins::model::shape_of(b.input_info(static_cast<uint64_t>(i)));
    });
    for (const auto &t : ckh::wan::tensors(c)) {
      const std::string &src = b.find(t.diffusers) >= 0 ? t.diffusers : t.original;
      ckh_tensor_annot_t a = ckh::sdk::annot(t.role == CKH_ROLE_LAYER ? CKH_ROLE_LAYER : t.role == CKH_ROLE_OUTPUT ? CKH_ROLE_OUTPUT
                                                                                                                 : CKH_ROLE_EMBEDDING,
                                             t.layer);
      a.kind = t.kind;
      a.parallel = CKH_PARALLEL_REPLICATED;
      b.emit(mm_name(t.diffusers), b.input(src), &a);
    }
    meta["layout"] = "mindspeed-mm";
    meta["mm_payload"] = "model_only";
    meta["args"] = {{"num_layers", c.layers}, {"num_attention_heads", c.heads}, {"num_query_groups", c.heads},
                    {"untie_embeddings_and_output_weights", true}};
    b.set_metadata(meta.dump());
  });
}

// MindSpeed-MM names -> diffusers (the config from the checkpoint's hf/ or --hf-config).
ckh_status map_from_mm(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    json meta = parse_obj(metadata_json);
    const json cfg = meta.value("config", json::object());
    if (!cfg.is_object() || cfg.empty())
      fail(CKH_E_FORMAT, "a MindSpeed-MM Wan checkpoint needs the model's config.json: its hf/ directory or --hf-config");
    const ckh::wan::WanConfig c = config_for(cfg, [](const std::string &) { return std::vector<int64_t>(); });
    for (const auto &t : ckh::wan::tensors(c)) {
      const std::string m = mm_name(t.diffusers);
      if (b.find(m) < 0) fail(CKH_E_FORMAT, "MindSpeed-MM checkpoint: tensor '" + m + "' (diffusers " + t.diffusers + ") is missing");
      const ckh_tensor_info_t info = b.input_info(static_cast<uint64_t>(b.find(m)));
      ckh::plugins::model::check_shape(m, ckh::plugins::model::shape_of(info), t.shape);
      b.emit(t.diffusers, b.input(m));
    }
    meta["layout"] = "hf";
    meta.erase("args");
    b.set_metadata(meta.dump());
  });
}

const ckh_mapper_class_t kToMm = {sizeof(ckh_mapper_class_t), 0, probe, map_to_mm, nullptr, nullptr};
const ckh_mapper_class_t kFromMm = {sizeof(ckh_mapper_class_t), 0, probe, map_from_mm, nullptr, nullptr};
const ckh_component_t kToMmComp = {sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "wan.hf-to-mm",
                                   "Wan DiT -> MindSpeed-MM names (WanConverter hf_to_mm): blocks per pipeline stage, embedders "
                                   "first, head last, no TP split",
                                   R"({"family":"wan","from":"hf","to":"mindspeed-mm","class_names":["WanTransformer3DModel","WanModel"]})",
                                   &kToMm};
const ckh_component_t kFromMmComp = {sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "wan.mm-to-hf",
                                     "Wan DiT MindSpeed-MM names -> diffusers WanTransformer3DModel (WanConverter mm_to_hf)",
                                     R"({"family":"wan","from":"mindspeed-mm","to":"hf","class_names":["WanTransformer3DModel","WanModel"]})",
                                     &kFromMm};

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
const ckh_component_t *const kComponents[] = {&kHfComp, &kToMmComp, &kFromMmComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 3, "org.ckhost.model.wan", "0.1.0",
                              "ckhost", "Wan DiT model family", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
