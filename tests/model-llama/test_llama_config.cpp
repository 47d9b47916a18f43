// Llama family configs and the HF tensor lists they imply. Tensor and parameter counts are checked
// against the published models' config.json files and sizes (no host, no plugin loading).
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "llama_config.hpp"

using namespace ckh::llama;
using nlohmann::json;

namespace {

json load(const std::string &name) {
  std::ifstream in(std::string(CKH_CONFIG_DIR) + "/" + name);
  return json::parse(in);
}

// Real config.json files (trimmed of auto_map / _name_or_path only).
const char *kLlama32_1B = R"({"architectures":["LlamaForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
  "bos_token_id":128000,"eos_token_id":128001,"head_dim":64,"hidden_act":"silu","hidden_size":2048,
  "initializer_range":0.02,"intermediate_size":8192,"max_position_embeddings":131072,"mlp_bias":false,
  "model_type":"llama","num_attention_heads":32,"num_hidden_layers":16,"num_key_value_heads":8,"pretraining_tp":1,
  "rms_norm_eps":1e-05,"rope_scaling":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
  "original_max_position_embeddings":8192,"rope_type":"llama3"},"rope_theta":500000.0,"tie_word_embeddings":true,
  "torch_dtype":"bfloat16","transformers_version":"4.45.0.dev0","use_cache":true,"vocab_size":128256})";

const char *kQwen25_05B = R"({"architectures":["Qwen2ForCausalLM"],"attention_dropout":0.0,"bos_token_id":151643,
  "eos_token_id":151643,"hidden_act":"silu","hidden_size":896,"initializer_range":0.02,"intermediate_size":4864,
  "max_position_embeddings":32768,"max_window_layers":24,"model_type":"qwen2","num_attention_heads":14,
  "num_hidden_layers":24,"num_key_value_heads":2,"rms_norm_eps":1e-06,"rope_theta":1000000.0,"sliding_window":32768,
  "tie_word_embeddings":true,"torch_dtype":"bfloat16","transformers_version":"4.40.1","use_cache":true,
  "use_sliding_window":false,"vocab_size":151936})";

const char *kQwen3_06B = R"({"architectures":["Qwen3ForCausalLM"],"attention_bias":false,"attention_dropout":0.0,
  "bos_token_id":151643,"eos_token_id":151645,"head_dim":128,"hidden_act":"silu","hidden_size":1024,
  "initializer_range":0.02,"intermediate_size":3072,"max_position_embeddings":40960,"max_window_layers":28,
  "model_type":"qwen3","num_attention_heads":16,"num_hidden_layers":28,"num_key_value_heads":8,"rms_norm_eps":1e-06,
  "rope_scaling":null,"rope_theta":1000000,"sliding_window":null,"tie_word_embeddings":true,"torch_dtype":"bfloat16",
  "transformers_version":"4.51.0","use_cache":true,"use_sliding_window":false,"vocab_size":151936})";

const char *kMistral7B = R"({"architectures":["MistralForCausalLM"],"bos_token_id":1,"eos_token_id":2,
  "hidden_act":"silu","hidden_size":4096,"initializer_range":0.02,"intermediate_size":14336,
  "max_position_embeddings":32768,"model_type":"mistral","num_attention_heads":32,"num_hidden_layers":32,
  "num_key_value_heads":8,"rms_norm_eps":1e-05,"rope_theta":10000.0,"sliding_window":4096,
  "tie_word_embeddings":false,"torch_dtype":"bfloat16","transformers_version":"4.34.0.dev0","use_cache":true,
  "vocab_size":32000})";

// MiniCPM-2B-sft-bf16: no tie_word_embeddings key (MiniCPM defaults to tied).
const char *kMiniCPM2B = R"({"architectures":["MiniCPMForCausalLM"],"bos_token_id":1,"eos_token_id":2,
  "hidden_act":"silu","hidden_size":2304,"initializer_range":0.1,"intermediate_size":5760,
  "max_position_embeddings":4096,"model_type":"minicpm","num_attention_heads":36,"num_hidden_layers":40,
  "num_key_value_heads":36,"rms_norm_eps":1e-05,"rope_scaling":null,"torch_dtype":"bfloat16",
  "transformers_version":"4.36.0","use_cache":true,"vocab_size":122753,"scale_emb":12,"dim_model_base":256,
  "scale_depth":1.4})";

const Canonical *find(const std::vector<Canonical> &v, const std::string &name) {
  for (const auto &t : v)
    if (t.name == name) return &t;
  return nullptr;
}

int count_containing(const std::vector<Canonical> &v, const std::string &part) {
  int n = 0;
  for (const auto &t : v) n += t.name.find(part) != std::string::npos;
  return n;
}

std::string parse_error(const json &cfg) {
  try {
    parse_config(cfg);
  } catch (const std::invalid_argument &e) {
    return e.what();
  }
  return "(no error)";
}

using Shape = std::vector<int64_t>;

}  // namespace

TEST(LlamaConfig, TinyLlamaMatchesPublishedSize) {
  const LlamaConfig c = parse_config(load("tinyllama-1.1b.json"));
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.hidden, 2048);
  EXPECT_EQ(c.layers, 22);
  EXPECT_EQ(c.heads, 32);
  EXPECT_EQ(c.kv_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.ffn, 5632);
  EXPECT_EQ(c.vocab, 32000);
  EXPECT_FALSE(c.tied);
  EXPECT_FALSE(c.qkv_bias || c.o_bias || c.mlp_bias || c.qk_norm);
  EXPECT_EQ(c.dtype, CKH_DT_BF16);
  EXPECT_DOUBLE_EQ(c.rms_eps, 1e-5);
  const auto t = canonical_tensors(c);
  EXPECT_EQ(t.size(), 201u);
  EXPECT_EQ(parameter_count(c), 1100048384);
}

TEST(LlamaConfig, HfOrderShapesAndAnnotations) {
  const auto t = canonical_tensors(parse_config(load("tinyllama-1.1b.json")));
  const std::vector<std::pair<std::string, Shape>> want = {
      {"model.embed_tokens.weight", {32000, 2048}},
      {"model.layers.0.input_layernorm.weight", {2048}},
      {"model.layers.0.self_attn.q_proj.weight", {2048, 2048}},
      {"model.layers.0.self_attn.k_proj.weight", {256, 2048}},
      {"model.layers.0.self_attn.v_proj.weight", {256, 2048}},
      {"model.layers.0.self_attn.o_proj.weight", {2048, 2048}},
      {"model.layers.0.post_attention_layernorm.weight", {2048}},
      {"model.layers.0.mlp.gate_proj.weight", {5632, 2048}},
      {"model.layers.0.mlp.up_proj.weight", {5632, 2048}},
      {"model.layers.0.mlp.down_proj.weight", {2048, 5632}},
      {"model.layers.1.input_layernorm.weight", {2048}},
  };
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(t[i].name, want[i].first) << i;
    EXPECT_EQ(t[i].shape, want[i].second) << want[i].first;
  }
  EXPECT_EQ(t[0].role, CKH_ROLE_EMBEDDING);
  EXPECT_EQ(t[0].layer, -1);
  EXPECT_EQ(t[0].init, CKH_INIT_NORMAL);
  EXPECT_EQ(t[1].role, CKH_ROLE_LAYER);
  EXPECT_EQ(t[1].layer, 0);
  EXPECT_EQ(t[1].init, CKH_INIT_ONES);
  EXPECT_EQ(t[2].init, CKH_INIT_NORMAL);
  const Canonical &last_layer = t[t.size() - 3];
  EXPECT_EQ(last_layer.name, "model.layers.21.mlp.down_proj.weight");
  EXPECT_EQ(last_layer.layer, 21);
  EXPECT_EQ(t[t.size() - 2].name, "model.norm.weight");
  EXPECT_EQ(t[t.size() - 2].role, CKH_ROLE_FINAL_NORM);
  EXPECT_EQ(t[t.size() - 2].init, CKH_INIT_ONES);
  EXPECT_EQ(t.back().name, "lm_head.weight");
  EXPECT_EQ(t.back().shape, (Shape{32000, 2048}));
  EXPECT_EQ(t.back().role, CKH_ROLE_OUTPUT);
  EXPECT_EQ(t.back().layer, -1);
}

TEST(LlamaConfig, Llama32OneBIsTied) {
  const LlamaConfig c = parse_config(json::parse(kLlama32_1B));
  EXPECT_TRUE(c.tied);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  const auto t = canonical_tensors(c);
  EXPECT_EQ(t.size(), 1u + 16 * 9 + 1);
  EXPECT_EQ(parameter_count(c), 1235814400);  // Llama-3.2-1B
  EXPECT_EQ(find(t, "lm_head.weight"), nullptr);
  EXPECT_EQ(t.back().name, "model.norm.weight");
}

TEST(LlamaConfig, Qwen25HalfBHasQkvBiasesAndTies) {
  const LlamaConfig c = parse_config(json::parse(kQwen25_05B));
  EXPECT_TRUE(c.tied);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  const auto t = canonical_tensors(c);
  EXPECT_EQ(t.size(), 1u + 24 * 12 + 1);
  EXPECT_EQ(parameter_count(c), 494032768);  // Qwen2.5-0.5B
  EXPECT_EQ(count_containing(t, ".bias"), 24 * 3);
  EXPECT_EQ(find(t, "model.layers.0.self_attn.o_proj.bias"), nullptr);
  const Canonical *qb = find(t, "model.layers.5.self_attn.q_proj.bias");
  ASSERT_NE(qb, nullptr);
  EXPECT_EQ(qb->shape, (Shape{896}));
  EXPECT_EQ(qb->init, CKH_INIT_ZEROS);
  EXPECT_EQ(qb->layer, 5);
  EXPECT_EQ(find(t, "model.layers.5.self_attn.k_proj.bias")->shape, (Shape{128}));
  // HF order: each bias right after its weight.
  EXPECT_EQ(t[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(t[3].name, "model.layers.0.self_attn.q_proj.bias");
  EXPECT_EQ(t[4].name, "model.layers.0.self_attn.k_proj.weight");
}

TEST(LlamaConfig, Qwen3HasQkNorms) {
  const LlamaConfig c = parse_config(json::parse(kQwen3_06B));
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.head_dim, 128);  // head_dim given: 16 * 128 != hidden 1024
  const auto t = canonical_tensors(c);
  EXPECT_EQ(t.size(), 1u + 28 * 11 + 1);
  // Qwen3-0.6B: 0.44B non-embedding parameters, 151936 x 1024 tied embedding.
  EXPECT_EQ(parameter_count(c), 596049920);
  EXPECT_EQ(parameter_count(c) - 151936 * 1024, 440467456);
  EXPECT_EQ(count_containing(t, "q_norm"), 28);
  const Canonical *kn = find(t, "model.layers.27.self_attn.k_norm.weight");
  ASSERT_NE(kn, nullptr);
  EXPECT_EQ(kn->shape, (Shape{128}));
  EXPECT_EQ(kn->init, CKH_INIT_ONES);
  EXPECT_EQ(find(t, "model.layers.0.self_attn.q_proj.weight")->shape, (Shape{2048, 1024}));
  EXPECT_EQ(find(t, "model.layers.0.self_attn.o_proj.weight")->shape, (Shape{1024, 2048}));
  // Order: o_proj, q_norm, k_norm, post_attention_layernorm.
  EXPECT_EQ(t[5].name, "model.layers.0.self_attn.o_proj.weight");
  EXPECT_EQ(t[6].name, "model.layers.0.self_attn.q_norm.weight");
  EXPECT_EQ(t[7].name, "model.layers.0.self_attn.k_norm.weight");
  EXPECT_EQ(t[8].name, "model.layers.0.post_attention_layernorm.weight");
}

TEST(LlamaConfig, Mistral7B) {
  const LlamaConfig c = parse_config(json::parse(kMistral7B));
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.kv_heads, 8);
  EXPECT_EQ(canonical_tensors(c).size(), 1u + 32 * 9 + 2);
  EXPECT_EQ(parameter_count(c), 7241732096);  // Mistral-7B-v0.1
  // Mistral-Nemo style: head_dim null means "derive it".
  json cfg = json::parse(kMistral7B);
  cfg["head_dim"] = nullptr;
  EXPECT_EQ(parse_config(cfg).head_dim, 128);
  cfg["head_dim"] = 160;
  EXPECT_EQ(canonical_tensors(parse_config(cfg))[2].shape, (Shape{32 * 160, 4096}));
}

TEST(LlamaConfig, MiniCPM2BTiesByDefaultAndKeepsScalars) {
  const LlamaConfig c = parse_config(json::parse(kMiniCPM2B));
  EXPECT_TRUE(c.tied);
  EXPECT_DOUBLE_EQ(c.scale_emb, 12.0);
  EXPECT_DOUBLE_EQ(c.scale_depth, 1.4);
  EXPECT_DOUBLE_EQ(c.dim_model_base, 256.0);
  EXPECT_EQ(canonical_tensors(c).size(), 1u + 40 * 9 + 1);
  EXPECT_EQ(parameter_count(c), 2724880896);  // MiniCPM-2B: 2.7B total, 2.4B non-embedding
  json cfg = json::parse(kMiniCPM2B);
  cfg["tie_word_embeddings"] = false;
  EXPECT_FALSE(parse_config(cfg).tied);
  cfg.erase("dim_model_base");
  EXPECT_DOUBLE_EQ(parse_config(cfg).dim_model_base, 2304.0);
  // Other families default to untied.
  json l = json::parse(kLlama32_1B);
  l.erase("tie_word_embeddings");
  EXPECT_FALSE(parse_config(l).tied);
}

TEST(LlamaConfig, LlamaAttentionAndMlpBiases) {
  json cfg = load("tiny-llama.json");
  cfg["attention_bias"] = true;
  cfg["mlp_bias"] = true;
  const LlamaConfig c = parse_config(cfg);
  const auto t = canonical_tensors(c);
  EXPECT_EQ(t.size(), 1u + c.layers * 16 + 2);
  const std::vector<std::string> layer0 = {
      "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias", "self_attn.k_proj.weight",
      "self_attn.k_proj.bias", "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.o_proj.weight",
      "self_attn.o_proj.bias", "post_attention_layernorm.weight", "mlp.gate_proj.weight", "mlp.gate_proj.bias",
      "mlp.up_proj.weight", "mlp.up_proj.bias", "mlp.down_proj.weight", "mlp.down_proj.bias"};
  for (size_t i = 0; i < layer0.size(); ++i) EXPECT_EQ(t[1 + i].name, "model.layers.0." + layer0[i]);
  EXPECT_EQ(find(t, "model.layers.0.self_attn.o_proj.bias")->shape, (Shape{64}));
  EXPECT_EQ(find(t, "model.layers.0.mlp.gate_proj.bias")->shape, (Shape{172}));
  EXPECT_EQ(find(t, "model.layers.0.mlp.down_proj.bias")->shape, (Shape{64}));
  for (const auto &x : t) {
    if (x.name.size() > 5 && x.name.compare(x.name.size() - 5, 5, ".bias") == 0) {
      EXPECT_EQ(x.init, CKH_INIT_ZEROS) << x.name;
    }
  }
}

TEST(LlamaConfig, Dtypes) {
  json cfg = load("tiny-llama.json");
  cfg["torch_dtype"] = "float16";
  EXPECT_EQ(parse_config(cfg).dtype, CKH_DT_F16);
  cfg["torch_dtype"] = "float32";
  EXPECT_EQ(parse_config(cfg).dtype, CKH_DT_F32);
  cfg.erase("torch_dtype");
  EXPECT_EQ(parse_config(cfg).dtype, CKH_DT_BF16);
  cfg["torch_dtype"] = nullptr;
  EXPECT_EQ(parse_config(cfg).dtype, CKH_DT_BF16);
  cfg.erase("torch_dtype");
  cfg["dtype"] = "float16";  // transformers >= 4.56
  EXPECT_EQ(parse_config(cfg).dtype, CKH_DT_F16);
}

TEST(LlamaConfig, BundledConfigs) {
  int n = 0;
  for (const auto &e : std::filesystem::directory_iterator(CKH_CONFIG_DIR)) {
    if (e.path().extension() != ".json") continue;
    ++n;
    SCOPED_TRACE(e.path().string());
    const json cfg = load(e.path().filename().string());
    EXPECT_EQ(score(cfg), 90);
    EXPECT_TRUE(cfg.contains("architectures"));
    EXPECT_TRUE(cfg.contains("torch_dtype"));
    const LlamaConfig c = parse_config(cfg);
    EXPECT_GT(canonical_tensors(c).size(), 3u);
  }
  EXPECT_GE(n, 4);

  const LlamaConfig tl = parse_config(load("tiny-llama.json"));
  EXPECT_FALSE(tl.tied);
  EXPECT_EQ(tl.dtype, CKH_DT_BF16);
  EXPECT_LT(tl.kv_heads, tl.heads);  // GQA, so the Megatron qkv interleave is exercised
  EXPECT_EQ(canonical_tensors(tl).size(), 1u + tl.layers * 9 + 2);

  const LlamaConfig q2 = parse_config(load("tiny-qwen2.json"));
  EXPECT_TRUE(q2.tied && q2.qkv_bias && !q2.o_bias);
  EXPECT_EQ(canonical_tensors(q2).size(), 1u + q2.layers * 12 + 1);

  const LlamaConfig q3 = parse_config(load("tiny-qwen3.json"));
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_NE(q3.heads * q3.head_dim, q3.hidden);  // explicit head_dim that differs from hidden / heads
  EXPECT_EQ(canonical_tensors(q3).size(), 1u + q3.layers * 11 + 1 + (q3.tied ? 0 : 1));
}

TEST(LlamaConfig, Score) {
  EXPECT_EQ(score(json::parse(kQwen3_06B)), 90);
  EXPECT_EQ(score(json{{"model_type", "gpt2"}}), 0);
  EXPECT_EQ(score(json{{"model_type", "gpt2"}, {"architectures", {"GPT2LMHeadModel"}}}), 0);
  EXPECT_EQ(score(json{{"architectures", {"MistralForCausalLM"}}}), 80);
  EXPECT_EQ(score(json{{"model_type", "llama_custom"}, {"architectures", {"Foo", "LlamaForCausalLM"}}}), 80);
  EXPECT_EQ(score(json{{"model_type", 7}, {"architectures", "LlamaForCausalLM"}}), 0);
  EXPECT_EQ(score(json{{"architectures", {1, nullptr}}}), 0);
  EXPECT_EQ(score(json()), 0);
  EXPECT_EQ(score(json::array()), 0);
  EXPECT_EQ(model_types().size(), 10u);
  EXPECT_EQ(score(json{{"architectures", {"Qwen3NextForCausalLM"}}}), 80);
  EXPECT_EQ(score(json{{"model_type", "mixtral"}}), 90);
  EXPECT_EQ(score(json{{"architectures", {"Qwen3MoeForCausalLM"}}}), 80);
  EXPECT_EQ(score(json{{"architectures", {"Qwen2MoeForCausalLM"}}}), 80);
}

// Qwen2-MoE: q/k/v biases, and a shared expert with its gate beside the routed experts.
TEST(LlamaConfig, Qwen2MoeSharedExpert) {
  json q = {{"model_type", "qwen2_moe"}, {"hidden_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"intermediate_size", 96}, {"moe_intermediate_size", 32},
            {"shared_expert_intermediate_size", 48}, {"num_experts", 4}, {"num_experts_per_tok", 2},
            {"vocab_size", 100}, {"mlp_only_layers", {1}}};
  const auto c = parse_config(q);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.shared_ffn, 48);
  EXPECT_FALSE(c.norm_topk);
  EXPECT_TRUE(c.is_moe(0));
  EXPECT_FALSE(c.is_moe(1));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto &t : canonical_tensors(c)) shapes[t.name] = t.shape;
  EXPECT_EQ(shapes.at("model.layers.0.mlp.shared_expert.gate_proj.weight"), (std::vector<int64_t>{48, 64}));
  EXPECT_EQ(shapes.at("model.layers.0.mlp.shared_expert.down_proj.weight"), (std::vector<int64_t>{64, 48}));
  EXPECT_EQ(shapes.at("model.layers.0.mlp.shared_expert_gate.weight"), (std::vector<int64_t>{1, 64}));
  EXPECT_EQ(shapes.at("model.layers.0.mlp.experts.3.up_proj.weight"), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(shapes.at("model.layers.1.mlp.up_proj.weight"), (std::vector<int64_t>{96, 64}));
  EXPECT_EQ(shapes.count("model.layers.1.mlp.shared_expert_gate.weight"), 0u);
  EXPECT_EQ(kind_of("model.layers.0.mlp.shared_expert_gate.weight"), CKH_KIND_ROUTER);
  EXPECT_EQ(kind_of("model.layers.0.mlp.shared_expert.up_proj.weight"), CKH_KIND_FFN_UP);
  q.erase("shared_expert_intermediate_size");
  EXPECT_THROW(parse_config(q), std::invalid_argument);
}

TEST(LlamaConfig, MoeLayersAndExpertNames) {
  json q = {{"model_type", "qwen3_moe"}, {"hidden_size", 64}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"head_dim", 16}, {"intermediate_size", 96}, {"moe_intermediate_size", 32},
            {"vocab_size", 100}, {"num_experts", 8}, {"num_experts_per_tok", 2}, {"decoder_sparse_step", 2},
            {"mlp_only_layers", {3}}};
  const auto c = parse_config(q);
  // transformers: MoE where the layer is not in mlp_only_layers and (layer + 1) % step == 0.
  EXPECT_EQ(c.moe_layer, (std::vector<bool>{false, true, false, false}));
  size_t experts = 0, routers = 0, dense_mlp = 0;
  for (const auto &t : canonical_tensors(c)) {
    if (t.expert >= 0) {
      ++experts;
      EXPECT_EQ(t.layer, 1);
      EXPECT_NE(t.name.find("model.layers.1.mlp.experts." + std::to_string(t.expert) + "."), std::string::npos);
      EXPECT_TRUE(t.kind == CKH_KIND_FFN_GATE || t.kind == CKH_KIND_FFN_UP || t.kind == CKH_KIND_FFN_DOWN) << t.name;
    }
    if (t.kind == CKH_KIND_ROUTER) {
      ++routers;
      EXPECT_EQ(t.name, "model.layers.1.mlp.gate.weight");
      EXPECT_EQ(t.shape, (std::vector<int64_t>{8, 64}));
    }
    if (t.name.find(".mlp.gate_proj.") != std::string::npos) ++dense_mlp;
  }
  EXPECT_EQ(experts, 8u * 3);
  EXPECT_EQ(routers, 1u);
  EXPECT_EQ(dense_mlp, 3u);
  // transformers 5 writes num_experts back as num_local_experts.
  q.erase("num_experts");
  q["num_local_experts"] = 8;
  EXPECT_EQ(parse_config(q).experts, 8);
  q["num_experts_per_tok"] = 9;
  EXPECT_THROW(parse_config(q), std::invalid_argument);
  q["num_experts_per_tok"] = 2;
  q["mlp_only_layers"] = {7};
  EXPECT_THROW(parse_config(q), std::invalid_argument);
  const json m = {{"model_type", "mixtral"}, {"hidden_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
                  {"num_key_value_heads", 2}, {"intermediate_size", 96}, {"vocab_size", 100}, {"num_local_experts", 4},
                  {"num_experts_per_tok", 2}};
  const auto mc = parse_config(m);
  EXPECT_EQ(kind_of("model.layers.0.block_sparse_moe.experts.3.w1.weight"), CKH_KIND_FFN_GATE);
  EXPECT_EQ(kind_of("model.layers.0.block_sparse_moe.experts.3.w2.weight"), CKH_KIND_FFN_DOWN);
  EXPECT_EQ(kind_of("model.layers.0.block_sparse_moe.experts.3.w3.weight"), CKH_KIND_FFN_UP);
  EXPECT_EQ(kind_of("model.layers.0.block_sparse_moe.gate.weight"), CKH_KIND_ROUTER);
  EXPECT_EQ(parameter_count(mc), 2 * 100 * 64 + 64 + 2 * (2 * 64 + 2 * 64 * 64 + 2 * 32 * 64 + 4 * 64 + 4 * 3 * 96 * 64));
}

TEST(LlamaConfig, BadConfigsNameTheField) {
  const json good = load("tiny-llama.json");
  auto with = [&](const char *key, const json &v) {
    json c = good;
    c[key] = v;
    return parse_error(c);
  };
  auto without = [&](const char *key) {
    json c = good;
    c.erase(key);
    return parse_error(c);
  };
  EXPECT_EQ(with("num_key_value_heads", 3), "config.json: num_attention_heads 4 is not a multiple of num_key_value_heads 3");
  EXPECT_EQ(with("num_key_value_heads", 8), "config.json: num_attention_heads 4 is not a multiple of num_key_value_heads 8");
  EXPECT_EQ(without("hidden_size"), "config.json: 'hidden_size' is missing");
  EXPECT_EQ(without("num_hidden_layers"), "config.json: 'num_hidden_layers' is missing");
  EXPECT_EQ(without("vocab_size"), "config.json: 'vocab_size' is missing");
  EXPECT_EQ(without("intermediate_size"), "config.json: 'intermediate_size' is missing");
  EXPECT_EQ(with("hidden_size", nullptr), "config.json: 'hidden_size' is missing");
  EXPECT_EQ(with("intermediate_size", -1), "config.json: 'intermediate_size' must be positive, got -1");
  EXPECT_EQ(with("num_hidden_layers", 0), "config.json: 'num_hidden_layers' must be positive, got 0");
  EXPECT_EQ(with("num_key_value_heads", 0), "config.json: 'num_key_value_heads' must be positive, got 0");
  EXPECT_EQ(with("head_dim", -8), "config.json: 'head_dim' must be positive, got -8");
  EXPECT_EQ(with("vocab_size", "32000"), "config.json: 'vocab_size' must be an integer, got \"32000\"");
  EXPECT_EQ(with("hidden_size", 64.5), "config.json: 'hidden_size' must be an integer, got 64.5");
  EXPECT_EQ(with("vocab_size", int64_t{1} << 40), "config.json: 'vocab_size' is too large: 1099511627776");
  EXPECT_EQ(with("vocab_size", uint64_t{1} << 63), "config.json: 'vocab_size' is too large: 9223372036854775808");
  EXPECT_EQ(with("hidden_size", 66),
            "config.json: hidden_size 66 is not a multiple of num_attention_heads 4 (and head_dim is not given)");
  EXPECT_EQ(with("tie_word_embeddings", "yes"), "config.json: 'tie_word_embeddings' must be true or false, got \"yes\"");
  EXPECT_EQ(with("attention_bias", 1), "config.json: 'attention_bias' must be true or false, got 1");
  EXPECT_EQ(with("torch_dtype", "int4"), "config.json: torch_dtype 'int4' is not bfloat16, float16 or float32");
  EXPECT_EQ(with("torch_dtype", 16), "config.json: 'torch_dtype' must be a string, got 16");
  EXPECT_EQ(with("model_type", json::array()), "config.json: 'model_type' must be a string, got []");
  EXPECT_EQ(with("rms_norm_eps", "small"), "config.json: 'rms_norm_eps' must be a number, got \"small\"");
  EXPECT_EQ(parse_error(json()), "config.json is missing or not a JSON object");
  EXPECT_EQ(parse_error(json::array()), "config.json is missing or not a JSON object");
  // head_dim lifts the divisibility requirement, but not the GQA one.
  EXPECT_EQ(parse_error([&] {
              json c = good;
              c["hidden_size"] = 66;
              c["head_dim"] = 16;
              return c;
            }()),
            "(no error)");
  // Every message is one line.
  for (const char *k : {"hidden_size", "num_attention_heads", "vocab_size"})
    EXPECT_EQ(without(k).find('\n'), std::string::npos);
}

// RoPE settings: transformers 5 writes "rope_parameters", older releases rope_theta + rope_scaling.
TEST(LlamaConfigRope, TransformersFiveRopeParameters) {
  json c = json::parse(kQwen3_06B);
  c.erase("rope_theta");
  c.erase("rope_scaling");
  c["rope_parameters"] = {{"rope_theta", 1000000.0}, {"rope_type", "default"}};
  const LlamaConfig p = parse_config(c);
  EXPECT_EQ(p.rope_theta, 1000000.0);
  EXPECT_EQ(p.rope_type, "default");
}

TEST(LlamaConfigRope, Llama3ScalingBothSpellings) {
  const LlamaConfig old = parse_config(json::parse(kLlama32_1B));
  EXPECT_EQ(old.rope_theta, 500000.0);
  EXPECT_EQ(old.rope_type, "llama3");
  EXPECT_EQ(old.rope_factor, 32.0);
  json c = json::parse(kLlama32_1B);
  c["rope_parameters"] = c["rope_scaling"];
  c["rope_parameters"]["rope_theta"] = 500000.0;
  c.erase("rope_scaling");
  c.erase("rope_theta");
  const LlamaConfig v5 = parse_config(c);
  EXPECT_EQ(v5.rope_theta, 500000.0);
  EXPECT_EQ(v5.rope_type, "llama3");
  EXPECT_EQ(v5.rope_factor, 32.0);
  EXPECT_EQ(v5.rope_original_max_pos, 8192);
}

TEST(LlamaConfigRope, UnknownRopeTypeRefused) {
  json c = json::parse(kQwen25_05B);
  c["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  try {
    parse_config(c);
    FAIL() << "yarn accepted";
  } catch (const std::invalid_argument &e) {
    EXPECT_NE(std::string(e.what()).find("rope type 'yarn' is not supported"), std::string::npos) << e.what();
  }
  c["rope_scaling"] = nullptr;
  EXPECT_EQ(parse_config(c).rope_type, "default");
}

// MiniMax-M2 (transformers 5.24 MiniMaxM2ForCausalLM save_pretrained names): every layer MoE with
// block_sparse_moe.{gate, e_score_correction_bias, experts.<e>.w1/w2/w3}, experts as wide as
// intermediate_size, q_norm / k_norm over all heads ([heads * head_dim] / [kv_heads * head_dim]).
TEST(LlamaConfig, MiniMaxM2NamesAndShapes) {
  json m = {{"model_type", "minimax_m2"}, {"hidden_size", 64}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"head_dim", 16}, {"intermediate_size", 32}, {"vocab_size", 100},
            {"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"rotary_dim", 8}};
  const auto c = parse_config(m);
  EXPECT_TRUE(c.expert_bias);
  EXPECT_TRUE(c.qk_norm_all_heads);
  EXPECT_DOUBLE_EQ(c.partial_rotary, 0.5);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto &t : canonical_tensors(c)) shapes[t.name] = t.shape;
  const std::string p = "model.layers.1.";
  EXPECT_EQ(shapes.at(p + "self_attn.q_norm.weight"), (std::vector<int64_t>{64}));
  EXPECT_EQ(shapes.at(p + "self_attn.k_norm.weight"), (std::vector<int64_t>{32}));
  EXPECT_EQ(shapes.at(p + "block_sparse_moe.gate.weight"), (std::vector<int64_t>{4, 64}));
  EXPECT_EQ(shapes.at(p + "block_sparse_moe.e_score_correction_bias"), (std::vector<int64_t>{4}));
  EXPECT_EQ(shapes.at(p + "block_sparse_moe.experts.3.w1.weight"), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(shapes.at(p + "block_sparse_moe.experts.3.w2.weight"), (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(shapes.at(p + "block_sparse_moe.experts.3.w3.weight"), (std::vector<int64_t>{32, 64}));
  EXPECT_EQ(shapes.count(p + "mlp.gate_proj.weight"), 0u);
  EXPECT_EQ(kind_of(p + "block_sparse_moe.e_score_correction_bias"), CKH_KIND_ROUTER);
  // transformers 5 writes partial_rotary_factor into rope_parameters.
  m.erase("rotary_dim");
  m["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 5e6}, {"partial_rotary_factor", 0.25}};
  EXPECT_DOUBLE_EQ(parse_config(m).partial_rotary, 0.25);
  EXPECT_EQ(score(m), 90);
}

// Qwen3-Next (transformers 5.24 Qwen3NextForCausalLM save_pretrained): linear attention in the layers layer_types (or
// full_attention_interval) calls so, gated q_proj in the others, the shared expert with its gate, zero-centred norms.
TEST(LlamaConfig, Qwen3NextHybridLayers) {
  json m = {{"model_type", "qwen3_next"}, {"hidden_size", 64}, {"num_hidden_layers", 4}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}, {"head_dim", 16}, {"intermediate_size", 96}, {"vocab_size", 100},
            {"num_experts", 4}, {"num_experts_per_tok", 2}, {"moe_intermediate_size", 32},
            {"shared_expert_intermediate_size", 48}, {"linear_num_key_heads", 2}, {"linear_num_value_heads", 4},
            {"linear_key_head_dim", 16}, {"linear_value_head_dim", 8}, {"mlp_only_layers", {2}}};
  const auto c = parse_config(m);
  EXPECT_TRUE(c.norm_topk);
  EXPECT_DOUBLE_EQ(c.partial_rotary, 0.25);
  std::map<std::string, Canonical> t;
  for (const auto &x : canonical_tensors(c)) t[x.name] = x;
  // full_attention_interval 4 (the default): layers 0-2 linear, layer 3 full.
  EXPECT_EQ(t.at("model.layers.0.linear_attn.in_proj_qkvz.weight").shape, (std::vector<int64_t>{2 * 32 + 2 * 32, 64}));
  EXPECT_EQ(t.at("model.layers.0.linear_attn.in_proj_ba.weight").shape, (std::vector<int64_t>{8, 64}));
  EXPECT_EQ(t.at("model.layers.0.linear_attn.conv1d.weight").shape, (std::vector<int64_t>{96, 1, 4}));
  EXPECT_EQ(t.at("model.layers.0.linear_attn.A_log").shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(t.at("model.layers.0.linear_attn.dt_bias").shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(t.at("model.layers.0.linear_attn.norm.weight").shape, (std::vector<int64_t>{8}));
  EXPECT_EQ(t.at("model.layers.0.linear_attn.out_proj.weight").shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(t.count("model.layers.0.self_attn.q_proj.weight"), 0u);
  EXPECT_EQ(t.count("model.layers.3.linear_attn.out_proj.weight"), 0u);
  EXPECT_EQ(t.at("model.layers.3.self_attn.q_proj.weight").shape, (std::vector<int64_t>{2 * 64, 64}));
  EXPECT_EQ(t.at("model.layers.3.self_attn.o_proj.weight").shape, (std::vector<int64_t>{64, 64}));
  EXPECT_EQ(t.at("model.layers.3.self_attn.q_norm.weight").shape, (std::vector<int64_t>{16}));
  EXPECT_EQ(t.at("model.layers.3.mlp.shared_expert.up_proj.weight").shape, (std::vector<int64_t>{48, 64}));
  EXPECT_EQ(t.at("model.layers.3.mlp.shared_expert_gate.weight").shape, (std::vector<int64_t>{1, 64}));
  const Canonical &e = t.at("model.layers.3.mlp.experts.3.down_proj.weight");
  EXPECT_EQ(e.shape, (std::vector<int64_t>{64, 32}));
  EXPECT_EQ(e.expert, 3);
  EXPECT_EQ(e.layer, 3);
  EXPECT_EQ(e.kind, CKH_KIND_FFN_DOWN);
  EXPECT_EQ(t.at("model.layers.2.mlp.up_proj.weight").shape, (std::vector<int64_t>{96, 64}));  // mlp_only_layers
  EXPECT_EQ(t.at("model.layers.1.input_layernorm.weight").init, CKH_INIT_ZEROS);
  EXPECT_EQ(t.at("model.norm.weight").init, CKH_INIT_ZEROS);
  // layer_types wins over the interval; the MTP block of the release.
  m["layer_types"] = {"full_attention", "linear_attention", "linear_attention", "linear_attention"};
  const auto c2 = parse_config(m);
  EXPECT_FALSE(c2.is_linear(0));
  EXPECT_TRUE(c2.is_linear(3));
  const auto mtp = mtp_tensors(c2, 1);
  std::map<std::string, Canonical> mt;
  for (const auto &x : mtp) mt[x.name] = x;
  EXPECT_EQ(mt.at("mtp.fc.weight").shape, (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(mt.at("mtp.layers.0.self_attn.q_proj.weight").shape, (std::vector<int64_t>{128, 64}));
  EXPECT_EQ(mt.at("mtp.layers.0.mlp.experts.1.gate_proj.weight").role, CKH_ROLE_MTP);
  EXPECT_EQ(mt.at("mtp.layers.0.mlp.experts.1.gate_proj.weight").expert, 1);
  EXPECT_EQ(mt.count("mtp.norm.weight"), 1u);
  EXPECT_TRUE(mtp_tensors(parse_config(json::parse(kQwen3_06B)), 1).empty());
  m["layer_types"] = {"full_attention", "mamba", "linear_attention", "linear_attention"};
  EXPECT_THROW(parse_config(m), std::invalid_argument);
  m.erase("layer_types");
  m.erase("linear_num_key_heads");
  EXPECT_THROW(parse_config(m), std::invalid_argument);
}
