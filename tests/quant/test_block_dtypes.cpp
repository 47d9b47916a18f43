// Block-quantized dtypes inside the host (SDK 1.1): a Q8_0 tensor made by a test quantizer has the
// byte size of its blocks, element shapes at the builder and storage shapes inside, row boxes of it
// evaluate to the same bytes as the whole, slices cut only on block boundaries, casts are refused, and
// a Q8_0 source read from a file dequantizes like the quantizer's own output.
#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ckhost/host/error.hpp"
#include "ckhost/host/eval.hpp"
#include "ckhost/host/graph.hpp"
#include "ckhost/host/registry.hpp"
#include "ckhost/host/services.hpp"

using namespace ckh::host;

namespace {

struct TmpFile {
  std::string path;
  int fd = -1;
  explicit TmpFile(const std::string &bytes) {
    char t[] = "/tmp/ckh_blk_XXXXXX";
    fd = ::mkstemp(t);
    path = t;
    EXPECT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  }
  ~TmpFile() {
    ::close(fd);
    ::unlink(path.c_str());
  }
};

Shape shape2(int64_t a, int64_t b) {
  Shape s;
  s.ndim = 2;
  s.d[0] = a;
  s.d[1] = b;
  return s;
}

int32_t add_source(Graph &g, const std::string &name, ckh_dtype dt, const Shape &storage, uint32_t file) {
  Source s;
  s.name = name;
  s.dtype = dt;
  s.shape = storage;
  Piece p;
  p.file = file;
  p.size[0] = storage.d[0];
  p.size[1] = storage.d[1];
  p.stride[0] = storage.d[1];
  p.stride[1] = 1;
  s.pieces.push_back(p);
  g.sources.push_back(s);
  return g.source_node(static_cast<int32_t>(g.sources.size() - 1));
}

}  // namespace

TEST(BlockDtypes, Q8_0ThroughTheHost) {
  Registry reg;
  reg.load({CKH_Q8_DIR});
  ASSERT_NE(reg.find(CKH_COMPONENT_QUANTIZER, "test.q8_0"), nullptr);
  const int64_t N = 6, K = 64;
  std::vector<float> x(N * K);
  for (int64_t i = 0; i < N * K; ++i) x[static_cast<size_t>(i)] = std::sin(0.37f * static_cast<float>(i)) * (1 + i % 5);
  TmpFile f32(std::string(reinterpret_cast<const char *>(x.data()), x.size() * 4));

  Graph g(&reg);
  g.files.push_back(f32.path);
  const int32_t src = add_source(g, "w", CKH_DT_F32, shape2(N, K), 0);
  const int32_t q = g.quantize_n({src}, "test.q8_0", "{}", 0);
  EXPECT_EQ(g.node(q).dtype, CKH_DT_Q8_0);
  EXPECT_EQ(g.node(q).shape, shape2(N, 2));   // storage: blocks of 32 along the last dim
  EXPECT_EQ(g.logical(q), shape2(N, K));      // what plugins see
  EXPECT_EQ(g.node_bytes(q), static_cast<uint64_t>(N * 2 * 34));
  EXPECT_EQ(storage_size(CKH_DT_Q8_0), 34u);
  EXPECT_EQ(block_elems(CKH_DT_Q4_K), 256u);

  // The builder: element shapes out, element slices in, cuts inside a block refused; no casts of blocks.
  Stage &st = g.add_stage("test");
  st.add(StageTensor{"q", q, {}});
  BuilderImpl b(g, st, nullptr, "test");
  ckh_tensor_info_t ti{};
  ti.struct_size = sizeof ti;
  ASSERT_EQ(b.c()->info(b.c(), q, &ti), CKH_OK);
  EXPECT_EQ(ti.shape[1], K);
  const ckh_expr half = b.c()->slice(b.c(), q, 1, 32, 32);
  ASSERT_GE(half, 0);
  EXPECT_EQ(g.node(half).shape, shape2(N, 1));
  clear_last_error();
  EXPECT_LT(b.c()->slice(b.c(), q, 1, 16, 32), 0);
  EXPECT_NE(take_last_error().second.find("cuts Q8_0 blocks of 32 elements"), std::string::npos);
  EXPECT_LT(b.c()->cast(b.c(), q, CKH_DT_F32), 0);
  EXPECT_NE(take_last_error().second.find("only converted by a quantizer"), std::string::npos);
  const int64_t bad_shape[2] = {N * 4, 16};
  EXPECT_LT(b.c()->reshape(b.c(), q, 2, bad_shape), 0);
  clear_last_error();
  const int64_t ok_shape[3] = {N / 2, 2, K};
  EXPECT_GE(b.c()->reshape(b.c(), q, 3, ok_shape), 0);

  // Evaluation: the whole tensor, then rows 2..4 and the second half of each row, as the same bytes.
  std::vector<int> fds{f32.fd};
  Evaluator ev(g, fds, host_table()->kernels);
  std::vector<char> all(g.node_bytes(q)), rows(3 * 2 * 34), right(N * 34);
  ev.eval(q, Index{}, View::dense(all.data(), CKH_DT_Q8_0, shape2(N, 2)));
  Index o{};
  o[0] = 2;
  ev.eval(q, o, View::dense(rows.data(), CKH_DT_Q8_0, shape2(3, 2)));
  EXPECT_EQ(0, std::memcmp(rows.data(), all.data() + 2 * 2 * 34, rows.size()));
  ev.eval(half, Index{}, View::dense(right.data(), CKH_DT_Q8_0, shape2(N, 1)));
  for (int64_t r = 0; r < N; ++r) EXPECT_EQ(0, std::memcmp(right.data() + r * 34, all.data() + (r * 2 + 1) * 34, 34));

  // Dequantized through the quantizer (native Q8_0 input): within half a step of the source.
  const int32_t dq = g.quantize_n({q}, "test.q8_0", R"({"mode":"dequantize"})", 0);
  EXPECT_EQ(g.node(dq).dtype, CKH_DT_F32);
  std::vector<float> y(N * K);
  Evaluator ev2(g, fds, host_table()->kernels);
  ev2.eval(dq, Index{}, View::dense(y.data(), CKH_DT_F32, shape2(N, K)));
  for (int64_t r = 0; r < N; ++r)
    for (int64_t blk = 0; blk < 2; ++blk) {
      float amax = 0;
      for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[static_cast<size_t>(r * K + blk * 32 + j)]));
      for (int j = 0; j < 32; ++j) {
        const size_t i = static_cast<size_t>(r * K + blk * 32 + j);
        EXPECT_LE(std::fabs(y[i] - x[i]), amax / 127 * 0.51f + 1e-3f) << r << "," << j;
      }
    }

  // A Q8_0 source in a file (as a GGUF reader will give it): same bytes, same dequantization.
  TmpFile qf(std::string(all.begin(), all.end()));
  g.files.push_back(qf.path);
  fds.push_back(qf.fd);
  const int32_t qs = add_source(g, "wq", CKH_DT_Q8_0, shape2(N, 2), 1);
  const int32_t dqs = g.quantize_n({qs}, "test.q8_0", R"({"mode":"dequantize"})", 0);
  std::vector<char> back(all.size());
  std::vector<float> y2(N * K);
  Evaluator ev3(g, fds, host_table()->kernels);
  ev3.eval(qs, Index{}, View::dense(back.data(), CKH_DT_Q8_0, shape2(N, 2)));
  EXPECT_EQ(back, all);
  ev3.eval(dqs, Index{}, View::dense(y2.data(), CKH_DT_F32, shape2(N, K)));
  EXPECT_EQ(0, std::memcmp(y.data(), y2.data(), y.size() * 4));
  // One call per chunk: the 6 rows (blocks) of each quantizer came from one call, not one per box.
  EXPECT_EQ(ev3.quant_stats().blocks, static_cast<uint64_t>(N));
}

#include "ckhost/host/chain.hpp"

TEST(QuantPairs, LayoutKeepsPairsWhole) {
  // Codes and their scales laid out together pass; codes without their scales are refused by name.
  auto build = [](bool with_scale) {
    auto g = std::make_unique<Graph>();
    Source c;
    c.name = "w";
    c.dtype = CKH_DT_F8_E4M3FN;
    c.shape = shape2(128, 128);
    c.quant = QuantRole::Codes;
    c.quant_pair = "w_scale_inv";
    Source s;
    s.name = "w_scale_inv";
    s.dtype = CKH_DT_F32;
    s.shape = shape2(1, 1);
    s.quant = QuantRole::Scale;
    s.quant_pair = "w";
    g->sources = {c, s};
    const int32_t nc = g->source_node(0), ns = g->source_node(1);
    g->layout.files.push_back(OutFile{"x", 128 * 128 + 4, {}, false, ""});
    g->layout.regions.push_back(Region{0, 0, nc, 0, 128 * 128});
    if (with_scale) g->layout.regions.push_back(Region{0, 128 * 128, ns, 0, 4});
    return g;
  };
  EXPECT_NO_THROW(check_quantized(*build(true)));
  try {
    check_quantized(*build(false));
    ADD_FAILURE() << "codes without scales were accepted";
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w' holds quantized codes"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("without 'w_scale_inv'"), std::string::npos) << e.what();
  }
}
