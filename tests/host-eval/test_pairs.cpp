// Block-quantized pairs (pairs.hpp): which cuts of codes lift to their scale grid, and to what.
#include <gtest/gtest.h>

#include "ckhost/host/error.hpp"
#include "ckhost/host/pairs.hpp"

namespace {

using namespace ckh::host;

Shape shp(std::initializer_list<int64_t> d) {
  Shape s;
  for (int64_t x : d) s.d[s.ndim++] = x;
  return s;
}

// Graph with codes "w" [rows, cols] (F8) and scales "w_scale_inv" [ceil(rows/b), ceil(cols/b)], seeded.
struct Fixture {
  Graph g;
  int32_t codes = -1, scales = -1;
  Fixture(int64_t rows, int64_t cols, int64_t b, int64_t hint = 0) {
    Stage &s = g.add_stage("test");
    auto add = [&](const std::string &name, ckh_dtype dt, Shape sh, QuantRole q, const std::string &pair) {
      Source src;
      src.name = name;
      src.dtype = dt;
      src.shape = sh;
      src.generated = true;
      src.quant = q;
      src.quant_pair = pair;
      g.sources.push_back(src);
      const int32_t n = g.source_node(static_cast<int32_t>(g.sources.size() - 1));
      s.add(StageTensor{name, n, {}});
      return n;
    };
    codes = add("w", CKH_DT_F8_E4M3FN, shp({rows, cols}), QuantRole::Codes, "w_scale_inv");
    g.sources.back().quant_block = {hint, hint};  // what the reader annotated (0: nothing)
    scales = add("w_scale_inv", CKH_DT_F32, shp({(rows + b - 1) / b, (cols + b - 1) / b}), QuantRole::Scale, "w");
    seed_pairs(g, s);
  }
};

TEST(Pairs, SeedsBlockAndSuffix) {
  Fixture f(256, 384, 128);
  ASSERT_TRUE(f.g.pairs.count(f.codes));
  const PairInfo &p = f.g.pairs.at(f.codes);
  EXPECT_EQ(p.scale, f.scales);
  EXPECT_EQ(p.block[0], 128);
  EXPECT_EQ(p.block[1], 128);
  EXPECT_EQ(p.suffix, "_scale_inv");
}

TEST(Pairs, AmbiguousGridNeedsTheHint) {
  Fixture none(100, 256, 128);  // one partial row block: 100 rows could be any block >= 100
  EXPECT_FALSE(none.g.pairs.count(none.codes));
  Fixture hinted(100, 256, 128, 128);
  ASSERT_TRUE(hinted.g.pairs.count(hinted.codes));
  EXPECT_EQ(hinted.g.pairs.at(hinted.codes).block[0], 128);
}

TEST(Pairs, AGridAgainstTheAnnotatedBlockIsNoPair) {
  // 48 rows with 4 scale rows: 12-row blocks by the shapes, but the reader said 16 (so 3 rows): e.g. two
  // TP shards of 24 rows, each quantized on its own 16-row grid and concatenated: refused, no guess.
  try {
    Fixture f(48, 48, 12, 16);
    FAIL() << "a grid against the annotated block was paired";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("block scales [4, 4] do not fit codes 'w' [48, 48] in blocks of 16 x 16"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("expected 3 x 3 scales"), std::string::npos) << e.what();
  }
  Fixture g(48, 48, 12);  // without the annotation the shapes say 12
  ASSERT_TRUE(g.g.pairs.count(g.codes));
  EXPECT_EQ(g.g.pairs.at(g.codes).block[0], 12);
}

TEST(Pairs, AlignedSliceAndConcatLift) {
  Fixture f(512, 256, 128);
  Graph &g = f.g;
  const int32_t top = g.slice(f.codes, 0, 0, 256), bottom = g.slice(f.codes, 0, 256, 256);
  const int32_t swapped = g.concat({bottom, top}, 0);
  std::string why;
  const PairInfo *p = lift_pair(g, swapped, &why);
  ASSERT_NE(p, nullptr) << why;
  const int32_t want = g.concat({g.slice(f.scales, 0, 2, 2), g.slice(f.scales, 0, 0, 2)}, 0);
  EXPECT_TRUE(same_expr(g, p->scale, want));
  // Swapping the two halves of the scales instead of the codes is a different expression.
  EXPECT_FALSE(same_expr(g, p->scale, f.scales));
}

TEST(Pairs, CutInsideABlockIsNamed) {
  Fixture f(512, 256, 128);
  std::string why;
  EXPECT_EQ(lift_pair(f.g, f.g.slice(f.codes, 0, 64, 256), &why), nullptr);
  EXPECT_NE(why.find("a cut at 64 of dim 0"), std::string::npos) << why;
  EXPECT_NE(why.find("block of 128"), std::string::npos) << why;
  // A concat whose first part ends inside a block.
  const int32_t a = f.g.slice(f.codes, 1, 0, 200), b = f.g.slice(f.codes, 1, 0, 56);
  why.clear();
  EXPECT_EQ(lift_pair(f.g, f.g.concat({a, b}, 1), &why), nullptr);
  EXPECT_NE(why.find("ends inside a block"), std::string::npos) << why;
}

TEST(Pairs, PartialLastBlockSlicesFromABoundary) {
  Fixture f(300, 256, 128, 128);  // 3 row blocks, the last 44 rows
  std::string why;
  const PairInfo *p = lift_pair(f.g, f.g.slice(f.codes, 0, 256, 44), &why);
  ASSERT_NE(p, nullptr) << why;
  EXPECT_EQ(f.g.node(p->scale).shape, shp({1, 2}));
}

TEST(Pairs, ReshapeAlongWholeBlocks) {
  Fixture f(512, 256, 128);
  Graph &g = f.g;
  std::string why;
  // [512, 256] -> [4 heads, 128, 256]: the row blocks become one per head.
  const PairInfo *p = lift_pair(g, g.reshape(f.codes, shp({4, 128, 256})), &why);
  ASSERT_NE(p, nullptr) << why;
  EXPECT_EQ(g.node(p->scale).shape, shp({4, 1, 2}));
  EXPECT_EQ(p->block[0], 1);
  EXPECT_EQ(p->block[1], 128);
  // [512, 256] -> [8, 64, 256]: 64-row heads cut the 128-row blocks.
  why.clear();
  EXPECT_EQ(lift_pair(g, g.reshape(f.codes, shp({8, 64, 256})), &why), nullptr);
  EXPECT_NE(why.find("inside a block"), std::string::npos) << why;
  // Flattening rows and columns together cannot keep 2-D blocks.
  why.clear();
  EXPECT_EQ(lift_pair(g, g.reshape(f.codes, shp({512 * 256})), &why), nullptr);
  // An expert axis in front: [1, 512, 256].
  why.clear();
  p = lift_pair(g, g.reshape(f.codes, shp({1, 512, 256})), &why);
  ASSERT_NE(p, nullptr) << why;
  EXPECT_EQ(g.node(p->scale).shape, shp({1, 4, 2}));
}

TEST(Pairs, PermuteMovesTheBlocks) {
  Fixture f(512, 256, 128);
  std::string why;
  const PairInfo *p = lift_pair(f.g, f.g.permute(f.codes, {1, 0}), &why);
  ASSERT_NE(p, nullptr) << why;
  EXPECT_EQ(f.g.node(p->scale).shape, shp({2, 4}));
}

TEST(Pairs, CastAndPadAreRefused) {
  Fixture f(256, 256, 128);
  std::string why;
  EXPECT_EQ(lift_pair(f.g, f.g.cast(f.codes, CKH_DT_BF16), &why), nullptr);
  EXPECT_NE(why.find("cast"), std::string::npos);
  EXPECT_EQ(lift_pair(f.g, f.g.pad(f.codes, 0, 0, 128, CKH_PAD_ZEROS), &why), nullptr);
  EXPECT_NE(why.find("padded"), std::string::npos);
}

}  // namespace
