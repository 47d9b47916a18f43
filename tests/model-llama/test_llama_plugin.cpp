// The model-llama plugin through its C ABI, without the host: dlopen ckh-model-llama.so, hand it a
// fake host table and a fake expression builder that records what the "llama" (hf -> hf) mapper
// emits and ignores, and check probe, canonical and the completeness / shape errors.
#include <dlfcn.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <ckhost/ckh.h>

using nlohmann::json;

namespace {

std::string g_error;
ckh_status g_error_code = CKH_OK;

void host_log(const ckh_host_t *, int32_t, const char *) {}
void host_set_error(const ckh_host_t *, ckh_status code, const char *msg) {
  g_error_code = code;
  g_error = msg ? msg : "";
}
void *host_alloc(const ckh_host_t *, uint64_t size, uint64_t) { return malloc(size); }
void host_free(const ckh_host_t *, void *p) { free(p); }
const void *host_ext(const ckh_host_t *, const char *) { return nullptr; }
uint8_t host_cancelled(const ckh_host_t *) { return 0; }

ckh_host_t make_host() {
  ckh_host_t h{};
  h.struct_size = sizeof h;
  h.abi_major = CKH_ABI_MAJOR;
  h.abi_minor = CKH_ABI_MINOR;
  h.host_name = "fake";
  h.host_version = "0";
  h.log = host_log;
  h.set_error = host_set_error;
  h.alloc = host_alloc;
  h.free = host_free;
  h.get_extension = host_ext;
  h.is_cancelled = host_cancelled;
  h.kernels = nullptr;
  return h;
}

// ---- a recording expression builder: nodes are the inputs themselves ---------------------------
struct Input {
  std::string name;
  ckh_dtype dtype;
  std::vector<int64_t> shape;
};
struct Emitted {
  std::string name;
  int32_t node;
  ckh_tensor_annot_t annot;
};
struct Fake {
  std::vector<Input> inputs;
  std::vector<Emitted> emitted;
  std::map<std::string, std::string> ignored;
  std::string metadata;
};

Fake &F(const ckh_expr_builder_t *b) { return *static_cast<Fake *>(b->ctx); }

uint64_t b_count(const ckh_expr_builder_t *b) { return F(b).inputs.size(); }
ckh_status b_info_at(const ckh_expr_builder_t *b, uint64_t i, ckh_tensor_info_t *out) {
  if (i >= F(b).inputs.size()) return CKH_E_NOT_FOUND;
  const Input &x = F(b).inputs[i];
  out->name = x.name.c_str();
  out->dtype = x.dtype;
  out->ndim = static_cast<uint32_t>(x.shape.size());
  for (size_t d = 0; d < CKH_MAX_DIMS; ++d) out->shape[d] = d < x.shape.size() ? x.shape[d] : 0;
  return CKH_OK;
}
ckh_status b_annot_at(const ckh_expr_builder_t *, uint64_t, ckh_tensor_annot_t *out) {
  out->role = CKH_ROLE_OTHER;
  out->layer = out->expert = out->split_dim = -1;
  return CKH_OK;
}
int64_t b_find(const ckh_expr_builder_t *b, const char *name) {
  for (size_t i = 0; i < F(b).inputs.size(); ++i)
    if (F(b).inputs[i].name == name) return static_cast<int64_t>(i);
  return -1;
}
ckh_expr b_input(ckh_expr_builder_t *b, const char *name) {
  const int64_t i = b_find(b, name);
  if (i < 0) host_set_error(nullptr, CKH_E_NOT_FOUND, (std::string("missing tensor ") + name).c_str());
  return static_cast<ckh_expr>(i);
}
ckh_expr b_input_at(ckh_expr_builder_t *b, uint64_t i) { return i < F(b).inputs.size() ? static_cast<ckh_expr>(i) : -1; }
ckh_status b_node_info(const ckh_expr_builder_t *b, ckh_expr e, ckh_tensor_info_t *out) {
  const ckh_status s = b_info_at(b, static_cast<uint64_t>(e), out);
  out->name = nullptr;
  return s;
}
ckh_status b_emit(ckh_expr_builder_t *b, const char *name, ckh_expr e, const ckh_tensor_annot_t *a) {
  for (const auto &x : F(b).emitted)
    if (x.name == name) return CKH_E_INVALID_ARG;
  ckh_tensor_annot_t copy{};
  if (a) copy = *a;
  F(b).emitted.push_back({name, e, copy});
  return CKH_OK;
}
ckh_status b_ignore(ckh_expr_builder_t *b, const char *name, const char *reason) {
  if (b_find(b, name) < 0) return CKH_E_NOT_FOUND;
  F(b).ignored[name] = reason ? reason : "";
  return CKH_OK;
}
ckh_status b_set_metadata(ckh_expr_builder_t *b, const char *json) {
  F(b).metadata = json;
  return CKH_OK;
}

ckh_expr_builder_t make_builder(Fake &f) {
  ckh_expr_builder_t b{};  // the operations the hf -> hf mapper never needs stay NULL
  b.struct_size = sizeof b;
  b.ctx = &f;
  b.input_count = b_count;
  b.input_info = b_info_at;
  b.input_annot = b_annot_at;
  b.find_input = b_find;
  b.input = b_input;
  b.input_at = b_input_at;
  b.info = b_node_info;
  b.emit = b_emit;
  b.ignore = b_ignore;
  b.set_metadata = b_set_metadata;
  return b;
}

json load_config(const std::string &name) {
  std::ifstream in(std::string(CKH_CONFIG_DIR) + "/" + name);
  return json::parse(in);
}

class LlamaPlugin : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    lib_ = dlopen(CKH_LLAMA_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    ASSERT_NE(lib_, nullptr) << dlerror();
    auto entry = reinterpret_cast<ckh_plugin_entry_fn>(dlsym(lib_, CKH_ENTRY_SYMBOL));
    ASSERT_NE(entry, nullptr);
    plugin_ = entry();
    ASSERT_NE(plugin_, nullptr);
    host_ = make_host();
    ASSERT_EQ(plugin_->init(&host_), CKH_OK);
  }
  static void TearDownTestSuite() {
    if (plugin_ && plugin_->deinit) plugin_->deinit();
    // Not dlclose'd: gtest may still print names owned by the library.
  }
  void SetUp() override {
    ASSERT_NE(plugin_, nullptr);
    g_error.clear();
    g_error_code = CKH_OK;
    for (uint32_t i = 0; i < plugin_->component_count; ++i)
      if (plugin_->components[i]->kind == CKH_COMPONENT_MAPPER && std::string(plugin_->components[i]->id) == "llama")
        comp_ = plugin_->components[i];
    ASSERT_NE(comp_, nullptr);
    cls_ = static_cast<const ckh_mapper_class_t *>(comp_->vtable);
  }

  // The HF tensors a config implies, as listed by canonical() through the C ABI.
  std::vector<Input> canonical_inputs(const json &cfg, std::vector<ckh_tensor_annot_t> *annots = nullptr) {
    struct Ctx {
      std::vector<Input> v;
      std::vector<ckh_tensor_annot_t> a;
    } ctx;
    const std::string s = cfg.dump();
    const ckh_status st = cls_->canonical(cls_, s.c_str(), &ctx,
                                          [](void *c, const ckh_tensor_info_t *t, const ckh_tensor_annot_t *a) {
                                            auto *x = static_cast<Ctx *>(c);
                                            x->v.push_back({t->name, t->dtype, {t->shape, t->shape + t->ndim}});
                                            x->a.push_back(*a);
                                            return CKH_OK;
                                          });
    EXPECT_EQ(st, CKH_OK) << g_error;
    if (annots) *annots = ctx.a;
    return ctx.v;
  }

  ckh_status map(Fake &f, const json &cfg) {
    ckh_expr_builder_t b = make_builder(f);
    const std::string meta = json{{"format", "hf"}, {"layout", "hf"}, {"config", cfg}}.dump();
    return cls_->map(cls_, "{}", meta.c_str(), &b);
  }

  static void *lib_;
  static const ckh_plugin_t *plugin_;
  static ckh_host_t host_;
  const ckh_component_t *comp_ = nullptr;
  const ckh_mapper_class_t *cls_ = nullptr;
};
void *LlamaPlugin::lib_ = nullptr;
const ckh_plugin_t *LlamaPlugin::plugin_ = nullptr;
ckh_host_t LlamaPlugin::host_;

void erase(std::vector<Input> &v, const std::string &name) {
  for (auto it = v.begin(); it != v.end(); ++it)
    if (it->name == name) {
      v.erase(it);
      return;
    }
  FAIL() << "no " << name;
}

}  // namespace

TEST_F(LlamaPlugin, Descriptor) {
  EXPECT_EQ(plugin_->abi_major, static_cast<uint32_t>(CKH_ABI_MAJOR));
  EXPECT_EQ(std::string(plugin_->id), "org.ckhost.model.llama");
  EXPECT_EQ(comp_->struct_size, sizeof(ckh_component_t));
  const json caps = json::parse(comp_->capabilities_json);
  EXPECT_EQ(caps["family"], "llama");
  EXPECT_EQ(caps["from"], "hf");
  EXPECT_EQ(caps["to"], "hf");
  EXPECT_EQ(caps["model_types"],
            (json{"llama", "mistral", "qwen2", "qwen3", "minicpm", "mixtral", "qwen2_moe", "qwen3_moe", "minimax_m2", "qwen3_next"}));
  EXPECT_NE(cls_->canonical, nullptr);
  for (uint32_t i = 0; i < plugin_->component_count; ++i)
    EXPECT_FALSE(json::parse(plugin_->components[i]->capabilities_json).is_discarded());
}

TEST_F(LlamaPlugin, Probe) {
  auto probe = [&](const char *meta) { return cls_->probe(cls_, meta); };
  EXPECT_EQ(probe(R"({"config":{"model_type":"qwen3"}})"), 90);
  EXPECT_EQ(probe(R"({"config":{"model_type":"minicpm"},"layout":"hf"})"), 90);
  EXPECT_EQ(probe(R"({"config":{"model_type":"x","architectures":["Qwen2ForCausalLM"]}})"), 80);
  EXPECT_EQ(probe(R"({"config":{"model_type":"gpt2"}})"), 0);
  EXPECT_EQ(probe(R"({"config":null})"), 0);
  EXPECT_EQ(probe(R"({"config":{"model_type":["llama"]}})"), 0);
  EXPECT_EQ(probe(R"({})"), 0);
  EXPECT_EQ(probe("{not json"), 0);
  EXPECT_EQ(probe("[]"), 0);
  EXPECT_EQ(probe(""), 0);
  EXPECT_EQ(probe(nullptr), 0);
  EXPECT_EQ(g_error, "");  // probe never sets an error
}

TEST_F(LlamaPlugin, CanonicalThroughTheAbi) {
  std::vector<ckh_tensor_annot_t> a;
  const auto v = canonical_inputs(load_config("tinyllama-1.1b.json"), &a);
  ASSERT_EQ(v.size(), 201u);
  int64_t params = 0;
  for (const auto &t : v) {
    EXPECT_EQ(t.dtype, CKH_DT_BF16);
    int64_t n = 1;
    for (int64_t d : t.shape) n *= d;
    params += n;
  }
  EXPECT_EQ(params, 1100048384);
  EXPECT_EQ(v[3].name, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(v[3].shape, (std::vector<int64_t>{256, 2048}));
  for (const auto &x : a) {
    EXPECT_EQ(x.struct_size, sizeof(ckh_tensor_annot_t));
    EXPECT_EQ(x.parallel, CKH_PARALLEL_UNSTATED);
    EXPECT_EQ(x.expert, -1);
  }
  EXPECT_EQ(a[0].role, CKH_ROLE_EMBEDDING);
  EXPECT_EQ(a[1].role, CKH_ROLE_LAYER);
  EXPECT_EQ(a[1].init, CKH_INIT_ONES);
  EXPECT_EQ(a[200].role, CKH_ROLE_OUTPUT);
  EXPECT_EQ(a[199].role, CKH_ROLE_FINAL_NORM);
  EXPECT_EQ(a[199].layer, -1);
  EXPECT_EQ(a[198].layer, 21);

  json f16 = load_config("tiny-qwen2.json");
  f16["torch_dtype"] = "float16";
  std::vector<ckh_tensor_annot_t> qa;
  const auto q = canonical_inputs(f16, &qa);
  for (const auto &t : q) EXPECT_EQ(t.dtype, CKH_DT_F16);
  EXPECT_EQ(q[3].name, "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(qa[3].init, CKH_INIT_ZEROS);
}

TEST_F(LlamaPlugin, CanonicalErrors) {
  auto sink_ok = [](void *, const ckh_tensor_info_t *, const ckh_tensor_annot_t *) -> ckh_status { return CKH_OK; };
  EXPECT_EQ(cls_->canonical(cls_, R"({"model_type":"llama","hidden_size":64})", nullptr, sink_ok), CKH_E_FORMAT);
  EXPECT_EQ(g_error, "config.json: 'num_hidden_layers' is missing");
  EXPECT_EQ(cls_->canonical(cls_, "{oops", nullptr, sink_ok), CKH_E_FORMAT);
  EXPECT_EQ(g_error, "config.json is missing or not a JSON object");
  // A sink's non-zero status stops the enumeration and is passed through.
  int calls = 0;
  const std::string cfg = load_config("tiny-llama.json").dump();
  EXPECT_EQ(cls_->canonical(cls_, cfg.c_str(), &calls,
                            [](void *c, const ckh_tensor_info_t *, const ckh_tensor_annot_t *) -> ckh_status {
                              return ++*static_cast<int *>(c) == 3 ? CKH_E_CANCELLED : CKH_OK;
                            }),
            CKH_E_CANCELLED);
  EXPECT_EQ(calls, 3);
}

TEST_F(LlamaPlugin, MapPassesEveryTensorThroughWithAnnotations) {
  const json cfg = load_config("tiny-qwen3.json");
  std::vector<ckh_tensor_annot_t> want_annot;
  Fake f;
  f.inputs = canonical_inputs(cfg, &want_annot);
  std::reverse(f.inputs.begin(), f.inputs.end());  // checkpoint order does not matter
  for (auto &t : f.inputs) t.dtype = CKH_DT_F32;    // nor does its dtype: kept as is (no cast)
  ASSERT_EQ(map(f, cfg), CKH_OK) << g_error;
  const auto order = canonical_inputs(cfg);
  ASSERT_EQ(f.emitted.size(), order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    const Emitted &e = f.emitted[i];
    EXPECT_EQ(e.name, order[i].name);  // HF order
    ASSERT_GE(e.node, 0);
    EXPECT_EQ(f.inputs[static_cast<size_t>(e.node)].name, e.name);  // the input itself
    EXPECT_EQ(e.annot.role, want_annot[i].role) << e.name;
    EXPECT_EQ(e.annot.layer, want_annot[i].layer) << e.name;
    EXPECT_EQ(e.annot.init, want_annot[i].init) << e.name;
    EXPECT_EQ(e.annot.parallel, CKH_PARALLEL_UNSTATED);
  }
  EXPECT_TRUE(f.ignored.empty());
  EXPECT_EQ(f.metadata, "");  // hf -> hf keeps the metadata
}

TEST_F(LlamaPlugin, MapIgnoresInvFreqAndTiedHeadButNotStrangers) {
  const json cfg = load_config("tiny-qwen2.json");  // tied
  Fake f;
  f.inputs = canonical_inputs(cfg);
  const int64_t vocab = cfg["vocab_size"], hidden = cfg["hidden_size"];
  f.inputs.push_back({"model.layers.0.self_attn.rotary_emb.inv_freq", CKH_DT_F32, {4}});
  f.inputs.push_back({"model.layers.2.self_attn.rotary_emb.inv_freq", CKH_DT_F32, {4}});
  f.inputs.push_back({"lm_head.weight", CKH_DT_BF16, {vocab, hidden}});
  f.inputs.push_back({"model.layers.x.self_attn.rotary_emb.inv_freq", CKH_DT_F32, {4}});
  f.inputs.push_back({"model.layers.0.mystery.weight", CKH_DT_F32, {3}});
  ASSERT_EQ(map(f, cfg), CKH_OK) << g_error;
  EXPECT_EQ(f.ignored.size(), 3u);
  EXPECT_TRUE(f.ignored.count("model.layers.0.self_attn.rotary_emb.inv_freq"));
  EXPECT_TRUE(f.ignored.count("model.layers.2.self_attn.rotary_emb.inv_freq"));
  ASSERT_TRUE(f.ignored.count("lm_head.weight"));
  EXPECT_NE(f.ignored["lm_head.weight"].find("tie_word_embeddings"), std::string::npos);
  // Neither emitted nor ignored: the host reports them as unexpected.
  for (const auto &e : f.emitted) {
    EXPECT_NE(e.name, "lm_head.weight");
    EXPECT_NE(e.name, "model.layers.0.mystery.weight");
    EXPECT_NE(e.name, "model.layers.x.self_attn.rotary_emb.inv_freq");
  }
  EXPECT_FALSE(f.ignored.count("model.layers.x.self_attn.rotary_emb.inv_freq"));
  EXPECT_FALSE(f.ignored.count("model.layers.0.mystery.weight"));

  // A tied model's lm_head of another shape is not silently dropped.
  Fake g;
  g.inputs = canonical_inputs(cfg);
  g.inputs.push_back({"lm_head.weight", CKH_DT_BF16, {vocab + 1, hidden}});
  ASSERT_EQ(map(g, cfg), CKH_OK) << g_error;
  EXPECT_TRUE(g.ignored.empty());
}

TEST_F(LlamaPlugin, MapUntiedModelEmitsItsHead) {
  const json cfg = load_config("tiny-llama.json");
  Fake f;
  f.inputs = canonical_inputs(cfg);
  ASSERT_EQ(map(f, cfg), CKH_OK) << g_error;
  EXPECT_EQ(f.emitted.back().name, "lm_head.weight");
  EXPECT_EQ(f.emitted.back().annot.role, CKH_ROLE_OUTPUT);
  EXPECT_TRUE(f.ignored.empty());
}

TEST_F(LlamaPlugin, MapShapeMismatchNamesTensorAndBothShapes) {
  const json cfg = load_config("tinyllama-1.1b.json");
  Fake f;
  f.inputs = canonical_inputs(cfg);
  for (auto &t : f.inputs)
    if (t.name == "model.layers.3.self_attn.k_proj.weight") t.shape = {512, 2048};
  EXPECT_EQ(map(f, cfg), CKH_E_FORMAT);
  EXPECT_EQ(g_error,
            "tensor 'model.layers.3.self_attn.k_proj.weight': config.json implies shape [256, 2048], checkpoint has "
            "[512, 2048]");
  Fake g;
  g.inputs = canonical_inputs(cfg);
  for (auto &t : g.inputs)
    if (t.name == "model.norm.weight") t.shape = {2048, 1};
  EXPECT_EQ(map(g, cfg), CKH_E_FORMAT);
  EXPECT_EQ(g_error, "tensor 'model.norm.weight': config.json implies shape [2048], checkpoint has [2048, 1]");
}

TEST_F(LlamaPlugin, MapListsAllMissingTensorsOnce) {
  const json cfg = load_config("tiny-llama.json");
  Fake f;
  f.inputs = canonical_inputs(cfg);
  const std::vector<std::string> gone = {
      "model.embed_tokens.weight",           "model.layers.0.self_attn.q_proj.weight",
      "model.layers.1.mlp.up_proj.weight",   "model.layers.1.input_layernorm.weight",
      "model.layers.2.mlp.down_proj.weight", "model.layers.3.self_attn.o_proj.weight",
      "lm_head.weight"};
  for (const auto &n : gone) erase(f.inputs, n);
  EXPECT_EQ(map(f, cfg), CKH_E_FORMAT);
  EXPECT_EQ(g_error,
            "checkpoint is missing 7 tensors that config.json implies: model.embed_tokens.weight, "
            "model.layers.0.self_attn.q_proj.weight, model.layers.1.input_layernorm.weight, "
            "model.layers.1.mlp.up_proj.weight, model.layers.2.mlp.down_proj.weight (and 2 more)");

  Fake g;
  g.inputs = canonical_inputs(cfg);
  erase(g.inputs, "model.layers.1.mlp.up_proj.weight");
  EXPECT_EQ(map(g, cfg), CKH_E_FORMAT);
  EXPECT_EQ(g_error, "checkpoint is missing 1 tensor that config.json implies: model.layers.1.mlp.up_proj.weight");

  Fake e;  // an empty checkpoint
  EXPECT_EQ(map(e, cfg), CKH_E_FORMAT);
  EXPECT_NE(g_error.find("checkpoint is missing 39 tensors"), std::string::npos) << g_error;
}

TEST_F(LlamaPlugin, MapWithoutUsableConfig) {
  Fake f;
  f.inputs = {{"model.embed_tokens.weight", CKH_DT_BF16, {300, 64}}};
  ckh_expr_builder_t b = make_builder(f);
  EXPECT_EQ(cls_->map(cls_, "{}", R"({"format":"hf","config":null})", &b), CKH_E_FORMAT);
  EXPECT_EQ(g_error, "config.json is missing or not a JSON object");
  json cfg = load_config("tiny-llama.json");
  cfg["num_key_value_heads"] = 3;
  EXPECT_EQ(map(f, cfg), CKH_E_FORMAT);
  EXPECT_EQ(g_error, "config.json: num_attention_heads 4 is not a multiple of num_key_value_heads 3");
  EXPECT_TRUE(f.emitted.empty());
}
