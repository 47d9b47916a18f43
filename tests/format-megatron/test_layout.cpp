// Megatron layout rules: TP splits by parameter name, pipeline/virtual-pipeline layer placement,
// rank directory names, vocabulary padding.
#include <gtest/gtest.h>

#include "megatron_layout.hpp"

using namespace ckh::megatron;

TEST(MegatronLayout, SplitRules) {
  EXPECT_EQ(split_of("embedding.word_embeddings.weight", true), Split::Vocab);
  EXPECT_EQ(split_of("output_layer.weight", true), Split::Vocab);
  EXPECT_EQ(split_of("decoder.layers.3.self_attention.linear_qkv.weight", true), Split::Column);
  EXPECT_EQ(split_of("decoder.layers.3.self_attention.linear_qkv.bias", true), Split::Column);
  EXPECT_EQ(split_of("decoder.layers.3.self_attention.linear_qkv.layer_norm_weight", true), Split::Replicated);
  EXPECT_EQ(split_of("decoder.layers.3.self_attention.linear_proj.weight", true), Split::Row);
  EXPECT_EQ(split_of("decoder.layers.3.self_attention.linear_proj.bias", true), Split::Replicated);
  EXPECT_EQ(split_of("decoder.layers.3.mlp.linear_fc1.weight", true), Split::Swiglu);
  EXPECT_EQ(split_of("decoder.layers.3.mlp.linear_fc1.weight", false), Split::Column);
  EXPECT_EQ(split_of("decoder.layers.3.mlp.linear_fc1.layer_norm_weight", true), Split::Replicated);
  EXPECT_EQ(split_of("decoder.layers.3.mlp.linear_fc2.weight", true), Split::Row);
  EXPECT_EQ(split_of("decoder.layers.3.self_attention.q_layernorm.weight", true), Split::Replicated);
  EXPECT_EQ(split_of("decoder.final_layernorm.weight", true), Split::Replicated);
  EXPECT_EQ(split_of("language_model.encoder.layers.0.self_attention.query_key_value.weight", true), Split::Column);
  EXPECT_EQ(split_of("language_model.encoder.layers.0.self_attention.dense.weight", true), Split::Row);
  EXPECT_EQ(split_of("language_model.encoder.layers.0.mlp.dense_h_to_4h.weight", true), Split::Swiglu);
  EXPECT_EQ(split_of("language_model.encoder.layers.0.mlp.dense_4h_to_h.weight", true), Split::Row);
  EXPECT_EQ(split_of("language_model.embedding.word_embeddings.weight", true), Split::Vocab);
  EXPECT_EQ(split_of("word_embeddings_for_head.weight", true), Split::Vocab);
}

TEST(MegatronLayout, LayerNames) {
  auto l = parse_layer_name("decoder.layers.12.mlp.linear_fc1.weight");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->layer, 12);
  EXPECT_EQ(l->prefix, "decoder.layers.");
  EXPECT_EQ(l->rest, "mlp.linear_fc1.weight");
  EXPECT_FALSE(parse_layer_name("decoder.final_layernorm.weight"));
  EXPECT_FALSE(parse_layer_name("decoder.layers.x.y"));
  auto g = parse_layer_name("language_model.encoder.layers.0.input_norm.weight");
  ASSERT_TRUE(g);
  EXPECT_EQ(g->layer, 0);
}

TEST(MegatronLayout, PipelineEvenUnevenVirtual) {
  Pipeline p = make_pipeline(8, 2, 1);
  EXPECT_EQ(p.first_layer(1, 0), 4);
  p = make_pipeline(8, 2, 2);  // virtual stages: (p0,v0)=0-1 (p1,v0)=2-3 (p0,v1)=4-5 (p1,v1)=6-7
  EXPECT_EQ(p.first_layer(0, 0), 0);
  EXPECT_EQ(p.first_layer(1, 0), 2);
  EXPECT_EQ(p.first_layer(0, 1), 4);
  EXPECT_EQ(p.first_layer(1, 1), 6);
  int pp, v;
  int64_t local;
  p.locate(5, pp, v, local);
  EXPECT_EQ(pp, 0);
  EXPECT_EQ(v, 1);
  EXPECT_EQ(local, 1);
  p = make_pipeline(7, 3, 1, {3, 2, 2});
  EXPECT_EQ(p.first_layer(1, 0), 3);
  EXPECT_EQ(p.first_layer(2, 0), 5);
  EXPECT_THROW(make_pipeline(7, 2, 1), std::invalid_argument);
  EXPECT_THROW(make_pipeline(7, 3, 1, {3, 3, 2}), std::invalid_argument);
  EXPECT_NO_THROW(make_pipeline(6, 3, 2, {2, 2, 2}));
  EXPECT_THROW(make_pipeline(9, 3, 2, {3, 3, 3}), std::invalid_argument);  // 3 layers per stage, 2 chunks
}

TEST(MegatronLayout, RankDirsAndVocab) {
  EXPECT_EQ(rank_dir(1, 0, 0, 1, 1), "mp_rank_01");
  EXPECT_EQ(rank_dir(1, 2, 0, 4, 1), "mp_rank_01_002");
  EXPECT_EQ(rank_dir(0, 1, 3, 2, 4), "mp_rank_00_001_003");
  EXPECT_EQ(rank_dir(0, 0, 3, 1, 4), "mp_rank_00_003");
  auto r = parse_rank_dir("mp_rank_01_002", 4, 1);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->tp, 1);
  EXPECT_EQ(r->pp, 2);
  auto e = parse_rank_dir("mp_rank_00_003", 1, 4);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->ep, 3);
  EXPECT_FALSE(parse_rank_dir("mp_rank_01", 2, 1));
  EXPECT_FALSE(parse_rank_dir("mp_rank_x1", 1, 1));
  EXPECT_EQ(padded_vocab(32000, 128, 1), 32000);
  EXPECT_EQ(padded_vocab(32000, 128, 2), 32000);
  EXPECT_EQ(padded_vocab(32001, 128, 2), 32256);
  EXPECT_EQ(padded_vocab(151936, 128, 4), 151552 + 512);
  EXPECT_EQ(iteration_dir(1000, false), "iter_0001000");
  EXPECT_EQ(iteration_dir(0, true), "release");
}

TEST(MegatronLayout, ExtraStateModules) {
  using ckh::megatron::extra_state_modules;
  const std::vector<std::string> te = {
      "embedding.word_embeddings.weight",
      "decoder.layers.0.self_attention.linear_qkv.layer_norm_weight",
      "decoder.layers.0.self_attention.linear_qkv.weight",
      "decoder.layers.0.self_attention.linear_qkv.bias",
      "decoder.layers.0.self_attention.q_layernorm.weight",
      "decoder.layers.0.self_attention.linear_proj.weight",
      "decoder.layers.0.mlp.linear_fc1.layer_norm_weight",
      "decoder.layers.0.mlp.linear_fc1.weight",
      "decoder.layers.0.mlp.linear_fc2.weight",
      "decoder.final_layernorm.weight",
  };
  const std::vector<std::string> want = {
      "decoder.layers.0.self_attention.linear_qkv", "decoder.layers.0.self_attention.core_attention",
      "decoder.layers.0.self_attention.q_layernorm", "decoder.layers.0.self_attention.linear_proj",
      "decoder.layers.0.mlp.linear_fc1",            "decoder.layers.0.mlp.linear_fc2",
      "decoder.final_layernorm"};
  EXPECT_EQ(extra_state_modules(te), want);
  // GPTModel.sharded_state_dict() drops output_layer._extra_state, tied or not.
  std::vector<std::string> untied = te;
  untied.push_back("output_layer.weight");
  EXPECT_EQ(extra_state_modules(untied), want);
  // Megatron's own (local) modules: the linear layers only.
  const std::vector<std::string> local_want = {
      "decoder.layers.0.self_attention.linear_qkv", "decoder.layers.0.self_attention.linear_proj",
      "decoder.layers.0.mlp.linear_fc1", "decoder.layers.0.mlp.linear_fc2"};
  EXPECT_EQ(extra_state_modules(untied, false), local_want);
  EXPECT_TRUE(extra_state_modules({"language_model.encoder.layers.0.mlp.dense_h_to_4h.weight"}).empty());
  EXPECT_TRUE(extra_state_modules({"model.layers.0.mlp.up_proj.weight"}).empty());
}

// SDK 1.1: writers take splits from the mapper's annotations; a tensor without one is refused by name.
TEST(MegatronLayout, SplitFromAnnotation) {
  using ckh::megatron::Split;
  using ckh::megatron::split_from_annot;
  ckh_tensor_annot_t a{};
  a.struct_size = sizeof a;
  a.parallel = CKH_PARALLEL_SWIGLU;
  EXPECT_EQ(split_from_annot(a, "decoder.layers.0.mlp.linear_fc1.weight"), Split::Swiglu);
  a.parallel = CKH_PARALLEL_VOCAB;
  EXPECT_EQ(split_from_annot(a, "embedding.word_embeddings.weight"), Split::Vocab);
  // A 1.0 annotation (no group/stack/kind) still carries its split.
  ckh_tensor_annot_t old{};
  old.struct_size = offsetof(ckh_tensor_annot_t, group);
  old.parallel = CKH_PARALLEL_ROW;
  old.stack = 7;  // beyond the 1.0 struct: never read
  EXPECT_EQ(split_from_annot(old, "x"), Split::Row);
  auto refused = [](const ckh_tensor_annot_t &x, const std::string &needle) {
    try {
      split_from_annot(x, "decoder.layers.3.mlp.linear_fc2.weight");
      return std::string("accepted");
    } catch (const std::invalid_argument &e) {
      const std::string m = e.what();
      if (m.find("decoder.layers.3.mlp.linear_fc2.weight") == std::string::npos) return "no tensor name: " + m;
      return m.find(needle) == std::string::npos ? m : std::string();
    }
  };
  ckh_tensor_annot_t none{};
  none.struct_size = sizeof none;
  EXPECT_EQ(refused(none, "has no parallel annotation"), "");
  ckh_tensor_annot_t vit = a;
  vit.stack = 1;  // a tower's tensor: its split as stated (its pipeline comes from StackPipelines)
  EXPECT_EQ(split_from_annot(vit, "x"), Split::Vocab);
  // Experts: group ETP with an expert index is the split inside the expert; without one it is refused.
  ckh_tensor_annot_t ep = a;
  ep.group = CKH_GROUP_ETP;
  ep.expert = -1;
  EXPECT_EQ(refused(ep, "names no expert"), "");
  EXPECT_FALSE(ckh::megatron::is_expert(ep));
  ep.expert = 5;
  EXPECT_EQ(split_from_annot(ep, "x"), Split::Vocab);
  EXPECT_TRUE(ckh::megatron::is_expert(ep));
  EXPECT_FALSE(ckh::megatron::is_expert(a));
  ckh_tensor_annot_t odd = a;
  odd.group = 9;
  EXPECT_EQ(refused(odd, "unknown parallel group 9"), "");
}

TEST(MegatronLayout, PipelinePerStack) {
  using ckh::megatron::find_layer_name;
  using ckh::megatron::make_stack_pipelines;
  using ckh::megatron::parse_stack_pp_layers;
  const auto spec = parse_stack_pp_layers("1=32,0,0,0;2=0,2,2,0");
  ASSERT_EQ(spec.size(), 2u);
  EXPECT_EQ(spec.at(1), (std::vector<int64_t>{32, 0, 0, 0}));
  // The decoder [1,10,10,7] and a 32-layer vision tower all on stage 0, as MindSpeed-MM's llm/vit lists.
  const auto pls = make_stack_pipelines({{0, 28}, {1, 32}, {2, 4}}, 4, 1, {1, 10, 10, 7}, spec);
  int p = -1, v = -1;
  int64_t l = -1;
  pls.of(0).locate(11, p, v, l);
  EXPECT_EQ(p, 2);
  EXPECT_EQ(l, 0);
  pls.of(1).locate(31, p, v, l);
  EXPECT_EQ(p, 0);
  EXPECT_EQ(l, 31);
  pls.of(2).locate(2, p, v, l);
  EXPECT_EQ(p, 2);
  EXPECT_EQ(l, 0);
  EXPECT_EQ(pls.first_stage(2), 1);
  EXPECT_EQ(pls.last_stage(2), 2);
  EXPECT_EQ(pls.last_stage(1), 0);
  // A tower needs its own distribution once pp > 1; sums and counts are checked per stack.
  auto msg = [](auto f) {
    try {
      f();
    } catch (const std::exception &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(msg([] { make_stack_pipelines({{0, 4}, {1, 6}}, 2, 1, {}, {}); }).find("stack 1 (a tower beside the decoder, 6 layers) needs its own pipeline distribution: --stack-pp-layers 1=<2 counts>"), std::string::npos);
  EXPECT_NE(msg([] { make_stack_pipelines({{0, 4}, {1, 6}}, 2, 1, {}, {{1, {3, 2}}}); }).find("stack 1: --pp-layers adds up to 5 layers, the model has 6"), std::string::npos);
  EXPECT_NE(msg([] { make_stack_pipelines({{0, 4}}, 2, 1, {}, {{3, {1, 1}}}); }).find("no such tower"), std::string::npos);
  EXPECT_NE(msg([] { parse_stack_pp_layers("0=1,2"); }).find("stack 0 is the decoder"), std::string::npos);
  EXPECT_NE(msg([] { parse_stack_pp_layers("1=a,2"); }).find("expects STACK=COUNTS"), std::string::npos);
  EXPECT_NE(msg([] { parse_stack_pp_layers("1=1;1=2"); }).find("twice"), std::string::npos);
  EXPECT_EQ(make_stack_pipelines({{0, 4}, {1, 6}}, 1, 1, {}, {}).of(1).num_layers(), 6);  // pp 1: one place
  // Layer names of a tower: its own prefix, renumbered within the stage.
  const auto ln = find_layer_name("image_encoder.encoder.blocks.layers.12.attn.qkv.weight", 12);
  ASSERT_TRUE(ln.has_value());
  EXPECT_EQ(ln->prefix, "image_encoder.encoder.blocks.layers.");
  EXPECT_EQ(ln->rest, "attn.qkv.weight");
  EXPECT_FALSE(find_layer_name("vision.sublayers.12.x", 12).has_value());
  EXPECT_FALSE(find_layer_name("vision.layers.12.x", 2).has_value());
}

TEST(MegatronLayout, ExpertParallelIds) {
  using ckh::megatron::check_expert_cover;
  using ckh::megatron::make_expert_parallel;
  using ckh::megatron::parse_expert_name;
  const auto ep = make_expert_parallel(256, 32);
  EXPECT_EQ(ep.local_count(), 8);
  EXPECT_EQ(ep.rank_of(255), 31);
  EXPECT_EQ(ep.local_of(255), 7);
  EXPECT_EQ(ep.global_of(3, 5), 29);
  for (int64_t e = 0; e < 256; ++e) EXPECT_EQ(ep.global_of(ep.rank_of(e), ep.local_of(e)), e);
  auto msg = [](auto f) {
    try {
      f();
    } catch (const std::exception &x) {
      return std::string(x.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(msg([] { make_expert_parallel(8, 3); }), "--ep 3 does not divide the 8 experts (each EP rank holds the same number of experts)");
  // Names: SequentialMLP and TEGroupedMLP, renumbered.
  auto s = parse_expert_name("decoder.layers.3.mlp.experts.local_experts.12.linear_fc1.weight");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->expert, 12);
  EXPECT_FALSE(s->grouped);
  EXPECT_EQ(s->with(4), "decoder.layers.3.mlp.experts.local_experts.4.linear_fc1.weight");
  auto g = parse_expert_name("decoder.layers.3.mlp.experts.linear_fc2.weight7");
  ASSERT_TRUE(g.has_value());
  EXPECT_TRUE(g->grouped);
  EXPECT_EQ(g->expert, 7);
  EXPECT_EQ(g->with(0), "decoder.layers.3.mlp.experts.linear_fc2.weight0");
  EXPECT_FALSE(parse_expert_name("decoder.layers.3.mlp.shared_experts.linear_fc1.weight").has_value());
  EXPECT_FALSE(parse_expert_name("decoder.layers.3.mlp.experts.linear_fc1._extra_state").has_value());
  // Every expert exactly once: an EP merge that keeps local ids loses 7/8 of the experts and is caught.
  std::vector<int64_t> ok, collided;
  for (int r = 0; r < 8; ++r)
    for (int64_t l = 0; l < 2; ++l) {
      ok.push_back(make_expert_parallel(16, 8).global_of(r, l));
      collided.push_back(l);
    }
  EXPECT_NO_THROW(check_expert_cover("layer 0", ok, 16));
  EXPECT_EQ(msg([&] { check_expert_cover("layer 0", collided, 16); }), "layer 0: expert 0 appears twice (colliding local expert ids?)");
  EXPECT_EQ(msg([&] { check_expert_cover("layer 1", {0, 1, 3}, 4); }), "layer 1: expert 2 of 4 is missing");
  EXPECT_EQ(msg([&] { check_expert_cover("layer 1", {0, 9}, 4); }), "layer 1: expert 9 is outside 0..3");
}
