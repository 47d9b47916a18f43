// Quantized codes and their scales recognised from HF file conventions (plugins/common/quant_pairs).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "quant_pairs.hpp"

using ckh::plugins::quant_annotations;
using nlohmann::json;

namespace {
json q(const std::string &s) { return s.empty() ? json() : json::parse(s)["quant"]; }
}  // namespace

TEST(QuantPairs, BlockFp8WeightScaleInv) {
  const std::vector<std::string> n = {"m.embed.weight", "m.l0.q.weight", "m.l0.q.weight_scale_inv", "m.l0.norm.weight"};
  const auto a = quant_annotations(n, {CKH_DT_BF16, CKH_DT_F8_E4M3FN, CKH_DT_F32, CKH_DT_BF16});
  EXPECT_EQ(a[0], "");
  EXPECT_EQ(q(a[1]), json({{"role", "codes"}, {"scales", {"m.l0.q.weight_scale_inv"}}}));
  EXPECT_EQ(q(a[2]), json({{"role", "scale"}, {"of", "m.l0.q.weight"}}));
  EXPECT_EQ(a[3], "");
}

TEST(QuantPairs, PerTensorWeightAndInputScales) {
  const std::vector<std::string> n = {"a.weight", "a.weight_scale", "a.input_scale", "b.input_scale"};
  const auto a = quant_annotations(n, {CKH_DT_F8_E5M2, CKH_DT_F32, CKH_DT_F32, CKH_DT_F32});
  EXPECT_EQ(q(a[0])["scales"], json({"a.weight_scale", "a.input_scale"}));
  EXPECT_EQ(q(a[1])["of"], "a.weight");
  EXPECT_EQ(q(a[2])["of"], "a.weight");
  // An input_scale next to a weight that is not FP8 is just a tensor.
  EXPECT_EQ(a[3], "");
}

TEST(QuantPairs, CodesWithoutScalesAndE8M0) {
  const auto a = quant_annotations({"x", "x_scale", "y_scale"}, {CKH_DT_F8_E4M3FN, CKH_DT_F8_E4M3FN, CKH_DT_F8_E8M0});
  // An FP8 tensor is codes even with no scale found; an FP8 "scale" is codes too; E8M0 is a scale.
  EXPECT_EQ(q(a[0]), json({{"role", "codes"}, {"scales", json::array()}}));
  EXPECT_EQ(q(a[1])["role"], "codes");
  EXPECT_EQ(q(a[2]), json({{"role", "scale"}}));
}

TEST(QuantPairs, PlainCheckpointHasNoAnnotations) {
  const auto a = quant_annotations({"w", "w_scale_inv"}, {CKH_DT_BF16, CKH_DT_F32});
  EXPECT_EQ(a, std::vector<std::string>({"", ""}));
}

TEST(QuantPairs, ConfigBlockGoesIntoTheCodesAnnotation) {
  const std::vector<std::string> n = {"w", "w_scale_inv"};
  const std::vector<ckh_dtype> d = {CKH_DT_F8_E4M3FN, CKH_DT_F32};
  const json cfg = {{"quantization_config", {{"quant_method", "fp8"}, {"weight_block_size", {128, 64}}}}};
  EXPECT_EQ(q(quant_annotations(n, d, cfg)[0])["block"], json({128, 64}));
  EXPECT_EQ(q(quant_annotations(n, d, cfg)[1]), json({{"role", "scale"}, {"of", "w"}}));
  // No config, or a weight_block_size that is not two positive integers: no block.
  EXPECT_FALSE(q(quant_annotations(n, d)[0]).contains("block"));
  for (const json &bad : {json({128}), json({0, 128}), json({"128", 128}), json("128x128")}) {
    const json c = {{"quantization_config", {{"weight_block_size", bad}}}};
    EXPECT_FALSE(q(quant_annotations(n, d, c)[0]).contains("block")) << bad.dump();
  }
}
