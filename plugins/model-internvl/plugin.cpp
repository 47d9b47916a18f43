// plugin.cpp — the InternVL 2.5/3 model plugin: mapper "internvl" (hf -> hf: either naming read, the one
// --internvl-names asks for written with its config.json), "internvl.hf-to-mm" and "internvl.mm-to-hf"
// (MindSpeed-MM's InternVLConverter names, TP splits and per-tower pipeline places).
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "internvl_model.hpp"
#include "model_check.hpp"

using nlohmann::json;
using ckh::sdk::fail;
namespace ivl = ckh::internvl;

namespace {

json parse_obj(const char *s) {
  json j = json::parse(s ? s : "{}", nullptr, false);
  return j.is_discarded() || !j.is_object() ? json::object() : j;
}

ivl::Config parse_or_fail(const json &cfg, const std::string &hint = "") {
  try {
    return ivl::parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    fail(CKH_E_FORMAT, e.what() + hint);
  }
}

int32_t probe(const ckh_mapper_class_t *, const char *metadata_json) {
  try {
    return ivl::score(ckh::plugins::model::config_of(metadata_json));
  } catch (...) {
    return 0;
  }
}

ivl::Naming target_naming(const json &opts) {
  const std::string n = opts.contains("internvl_names") && opts["internvl_names"].is_string() ? opts["internvl_names"].get<std::string>()
                                                                                              : std::string("hf");
  if (n == "hf") return ivl::Naming::Hf;
  if (n == "custom") return ivl::Naming::Custom;
  if (n == "custom-internlm2") return ivl::Naming::CustomInternLM2;
  fail(CKH_E_INVALID_ARG, "--internvl-names '" + n + "': expected hf, custom or custom-internlm2");
}

// The model written in naming `out`, with the config.json of that naming when the source's is the other form.
void write_hf(ckh::sdk::Builder &b, const json &opts, json meta, const ivl::Config &c, const std::vector<ivl::Value> &v) {
  const ivl::Naming out = target_naming(opts);
  const std::string experts = opts.value("internvl_experts", std::string("split"));
  if (experts != "split" && experts != "merged") fail(CKH_E_INVALID_ARG, "--internvl-experts '" + experts + "': expected split or merged");
  ivl::write_named(b, c, out, v, experts == "merged");
  const bool want_custom = out != ivl::Naming::Hf;
  json cfg = meta.value("config", json::object());
  if (opts.contains("internvl_image_token_id")) cfg["image_token_id"] = opts["internvl_image_token_id"];
  const bool internlm2_cfg = c.custom_form && c.llm == "internlm2";
  if (want_custom != c.custom_form || (want_custom && internlm2_cfg != (out == ivl::Naming::CustomInternLM2))) {
    try {
      json hf = c.custom_form ? ivl::hf_config(c, cfg) : cfg;
      if (want_custom) hf = ivl::custom_config(ivl::parse_config(hf), hf, out == ivl::Naming::CustomInternLM2);
      meta["config"] = hf;
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_FORMAT, std::string(e.what()) + " (--internvl-names " + ivl::naming_name(out) + ")");
    }
    meta["config_modified"] = true;
  }
  meta["layout"] = "hf";
  meta.erase("args");
  b.set_metadata(meta.dump());
}

// A tied model's output layer saved anyway (under any naming) is the embedding's copy.
void ignore_tied_head(ckh::sdk::Builder &b, const ivl::Config &c) {
  if (!c.tied) return;
  for (const char *n : {"language_model.lm_head.weight", "lm_head.weight", "language_model.output.weight", "text_decoder.output_layer.weight"})
    if (b.has(n)) b.ignore(n, "tie_word_embeddings: the output layer is the token embedding");
}

// hf -> hf: every tensor the config implies must be there with its shape (in the naming the keys show).
ckh_status map_hf(const ckh_mapper_class_t *, const char *options_json, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json opts = parse_obj(options_json), meta = parse_obj(metadata_json);
    const ivl::Config c = parse_or_fail(meta.value("config", json()));
    const ivl::Naming in = ivl::detect_naming(b);
    if (in == ivl::Naming::Mm) fail(CKH_E_FORMAT, "InternVL: MindSpeed-MM names in a safetensors checkpoint");
    const std::vector<ivl::Value> v = ivl::read_canonical(b, c, in);
    ignore_tied_head(b, c);
    write_hf(b, opts, meta, c, v);
  });
}

ckh_status canonical(const ckh_mapper_class_t *, const char *config_json, void *ctx, ckh_tensor_sink_fn sink) {
  return ckh::sdk::guard([&] {
    const ivl::Config c = parse_or_fail(parse_obj(config_json));
    for (const auto &t : ivl::canonical_tensors(c)) {
      ckh_tensor_annot_t a = ckh::sdk::annot(t.role, t.layer);
      a.init = t.init;
      a.kind = t.kind;
      a.stack = t.stack;
      ckh::plugins::model::sink_tensor(sink, ctx, t.name, c.dtype, t.shape, a);
    }
  });
}

ckh_status map_to_mm(const ckh_mapper_class_t *, const char *, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    json meta = parse_obj(metadata_json);
    const ivl::Config c = parse_or_fail(meta.value("config", json()));
    const ivl::Naming in = ivl::detect_naming(b);
    const std::vector<ivl::Value> v = ivl::read_canonical(b, c, in);
    ignore_tied_head(b, c);
    ivl::write_mm(b, c, v);
    meta["layout"] = "mindspeed-mm";
    meta["args"] = {{"num_layers", c.layers},
                    {"num_attention_heads", c.heads},
                    {"num_query_groups", c.kv_heads},
                    {"hidden_size", c.hidden},
                    {"untie_embeddings_and_output_weights", !c.tied}};
    b.set_metadata(meta.dump());
  });
}

const char *const kNeedConfig = " (a MindSpeed-MM checkpoint needs the model's config.json: its hf/ directory or --hf-config)";

ckh_status map_from_mm(const ckh_mapper_class_t *, const char *options_json, const char *metadata_json, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    ckh::sdk::Builder b(raw);
    const json opts = parse_obj(options_json), meta = parse_obj(metadata_json);
    const ivl::Config c = parse_or_fail(meta.value("config", json()), kNeedConfig);
    const std::vector<ivl::Value> v = ivl::read_canonical(b, c, ivl::Naming::Mm);
    if (c.tied && b.has("text_decoder.output_layer.weight"))
      b.ignore("text_decoder.output_layer.weight", "tie_word_embeddings: the last stage's copy of the word embedding");
    write_hf(b, opts, meta, c, v);
  });
}

ckh_status hints_mm(const ckh_mapper_class_t *, const char *, const char *metadata_json, void *ctx, ckh_text_sink_fn sink) {
  return ckh::sdk::guard([&] {
    parse_or_fail(ckh::plugins::model::config_of(metadata_json), kNeedConfig);
    const std::string h = ivl::mm_reader_hints();
    const ckh_status s = sink(ctx, h.c_str());
    if (s != CKH_OK) throw ckh::sdk::Error(s, "sink failed", true);
  });
}

#define IVL_NAMES_OPT                                                                                                                \
  R"J({"name":"internvl-names","type":"string","default":"hf","choices":["hf","custom","custom-internlm2"],"group":"internvl",)J" \
  R"J("help":"InternVL tensor names to write: hf (transformers' InternVLForConditionalGeneration), custom (OpenGVLab's InternVLChatModel: vision_model.*, attn.qkv, mlp1.*) or custom-internlm2 (the same with an InternLM2 language model: tok_embeddings, attention.wqkv, feed_forward.w1/w3/w2, output), with the config.json of that form; any of them is read"})J"
#define IVL_EXPERTS_OPT                                                                                                               \
  R"J({"name":"internvl-experts","type":"string","default":"split","choices":["split","merged"],"group":"internvl",)J"             \
  R"J("help":"InternVL3.5-MoE experts: split (mlp.experts.E.{gate,up,down}_proj, as transformers and the chat layout) or merged (MindSpeed-MM's ExpertMergeDcpConverter for FSDP2: mlp.experts.gate_up_proj [E, H, 2I], mlp.experts.down_proj [E, I, H]); either is read"})J"
#define IVL_TOKEN_OPT                                                                                                              \
  R"J({"name":"internvl-image-token-id","type":"int","group":"internvl",)J"                                                        \
  R"J("help":"the <IMG_CONTEXT> token id for transformers' InternVLConfig (image_token_id) when an InternVLChatConfig does not state it"})J"

const ckh_mapper_class_t kHf = {sizeof(ckh_mapper_class_t), 0, probe, map_hf, canonical, nullptr};
const ckh_mapper_class_t kToMm = {sizeof(ckh_mapper_class_t), 0, probe, map_to_mm, canonical, nullptr};
const ckh_mapper_class_t kFromMm = {sizeof(ckh_mapper_class_t), 0, probe, map_from_mm, nullptr, hints_mm};
const ckh_component_t kHfComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "internvl",
    "InternVL 2.5/3 (InternViT + Qwen2 / Llama / InternLM2): tensor list and completeness check, transformers <-> InternVL chat "
    "names (--internvl-names)",
    R"({"family":"internvl","from":"hf","to":"hf","model_types":["internvl","internvl_chat"],"options":[)" IVL_NAMES_OPT "," IVL_TOKEN_OPT
    "," IVL_EXPERTS_OPT "]}",
    &kHf};
const ckh_component_t kToMmComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "internvl.hf-to-mm",
    "InternVL -> MindSpeed-MM names (InternVLConverter hf_to_mm): image_encoder.encoder.* ([Q; K; V] split per head, the first "
    "heads % TP ranks one head more), image_encoder.projector.*, text_decoder.* (vocabulary split likewise)",
    R"({"family":"internvl","from":"hf","to":"mindspeed-mm","model_types":["internvl","internvl_chat"]})", &kToMm};
const ckh_component_t kFromMmComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "internvl.mm-to-hf",
    "InternVL MindSpeed-MM -> transformers or InternVL chat names (the config from the checkpoint's hf/ or --hf-config)",
    R"({"family":"internvl","from":"mindspeed-mm","to":"hf","model_types":["internvl","internvl_chat"],"options":[)" IVL_NAMES_OPT
    "," IVL_TOKEN_OPT "," IVL_EXPERTS_OPT "]}",
    &kFromMm};
const ckh_component_t *const kComponents[] = {&kHfComp, &kToMmComp, &kFromMmComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 3, "org.ckhost.model.internvl", "0.1.0",
                              "ckhost", "InternVL 2.5/3 model family", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
