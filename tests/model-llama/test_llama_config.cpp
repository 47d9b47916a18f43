// Llama family configs and the HF tensor lists they imply (counts checked against published sizes).
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
int64_t params(const std::vector<Canonical> &v) {
  int64_t n = 0;
  for (const auto &t : v) {
    int64_t p = 1;
    for (int64_t d : t.shape) p *= d;
    n += p;
  }
  return n;
}
}  // namespace

TEST(LlamaConfig, TinyLlamaMatchesPublishedSize) {
  Config c = parse_config(load("tinyllama-1.1b.json"));
  auto t = canonical_tensors(c);
  EXPECT_EQ(t.size(), 201u);
  EXPECT_EQ(params(t), 1100048384);
  EXPECT_EQ(t.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(t.back().name, "lm_head.weight");
  EXPECT_EQ(t[3].name, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(t[3].shape, (std::vector<int64_t>{256, 2048}));
  EXPECT_EQ(c.dtype, CKH_DT_BF16);
}

TEST(LlamaConfig, Llama32OneBIsTied) {
  json cfg = {{"model_type", "llama"}, {"hidden_size", 2048}, {"num_hidden_layers", 16}, {"num_attention_heads", 32},
              {"num_key_value_heads", 8}, {"intermediate_size", 8192}, {"vocab_size", 128256}, {"head_dim", 64},
              {"tie_word_embeddings", true}, {"torch_dtype", "bfloat16"}};
  auto t = canonical_tensors(parse_config(cfg));
  EXPECT_EQ(params(t), 1235814400);  // Llama-3.2-1B
  for (const auto &x : t) EXPECT_NE(x.name, "lm_head.weight");
}

TEST(LlamaConfig, Qwen25HalfBHasBiasesAndTies) {
  json cfg = {{"model_type", "qwen2"}, {"hidden_size", 896}, {"num_hidden_layers", 24}, {"num_attention_heads", 14},
              {"num_key_value_heads", 2}, {"intermediate_size", 4864}, {"vocab_size", 151936},
              {"tie_word_embeddings", true}, {"torch_dtype", "bfloat16"}};
  auto t = canonical_tensors(parse_config(cfg));
  EXPECT_EQ(params(t), 494032768);  // Qwen2.5-0.5B
  int biases = 0;
  for (const auto &x : t) biases += x.name.find(".bias") != std::string::npos;
  EXPECT_EQ(biases, 24 * 3);
}

TEST(LlamaConfig, Qwen3HasQkNormMiniCpmTiesByDefault) {
  auto q = canonical_tensors(parse_config(load("tiny-qwen3.json")));
  int norms = 0;
  for (const auto &x : q)
    if (x.name.find("q_norm") != std::string::npos) {
      ++norms;
      EXPECT_EQ(x.shape, (std::vector<int64_t>{32}));
      EXPECT_EQ(x.init, CKH_INIT_ONES);
    }
  EXPECT_EQ(norms, 2);
  json m = load("tiny-minicpm.json");
  m.erase("tie_word_embeddings");
  Config c = parse_config(m);
  EXPECT_TRUE(c.tied);
  EXPECT_DOUBLE_EQ(c.scale_emb, 12.0);
  EXPECT_EQ(score(m), 90);
  EXPECT_EQ(score(json{{"model_type", "gpt2"}}), 0);
  EXPECT_EQ(score(json{{"architectures", {"MistralForCausalLM"}}}), 80);
}

TEST(LlamaConfig, BadConfigsNameTheField) {
  json cfg = load("tiny-llama.json");
  cfg["num_key_value_heads"] = 3;
  try {
    parse_config(cfg);
    FAIL();
  } catch (const std::invalid_argument &e) {
    EXPECT_NE(std::string(e.what()).find("num_key_value_heads 3"), std::string::npos) << e.what();
  }
  cfg = load("tiny-llama.json");
  cfg.erase("hidden_size");
  EXPECT_THROW(parse_config(cfg), std::invalid_argument);
  cfg = load("tiny-llama.json");
  cfg["intermediate_size"] = -1;
  EXPECT_THROW(parse_config(cfg), std::invalid_argument);
  cfg = load("tiny-llama.json");
  cfg["torch_dtype"] = "int4";
  EXPECT_THROW(parse_config(cfg), std::invalid_argument);
}
