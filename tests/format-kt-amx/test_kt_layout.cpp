// The kt-amx writer's tile expression (plugins/format-kt-amx/kt_layout.hpp) evaluated by the host's evaluator puts
// every code byte where kt-kernel's BufferB puts it (offset_of, the layout's own formula; tests/interop/test_kt_amx.py
// checks the same bytes against kt-kernel itself), whole or in arbitrary pieces, with short last N and K blocks; and
// the evaluator's strided copies of small runs (copy_runs, the 4 x 4 SSE2 word transpose) agree with a naive
// element-by-element copy for every element size, permutation and destination stride tried.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <ckhost/kernels/kernels.hpp>

#include "ckhost/host/eval.hpp"
#include "ckhost/host/graph.hpp"
#include "kt_layout.hpp"

using namespace ckh::host;

namespace {

Shape shape_of(const std::vector<int64_t> &v) {
  Shape s;
  s.ndim = static_cast<uint32_t>(v.size());
  for (uint32_t i = 0; i < s.ndim; ++i) s.d[i] = v[i];
  return s;
}

struct Codes {
  Graph g;
  std::vector<int> fds;
  std::vector<char> data;
  int32_t node = -1, packed = -1;
  Codes(int64_t n, int64_t kb, int bits) {
    data.resize(static_cast<size_t>(n * kb));
    std::mt19937 rng(static_cast<unsigned>(n * 131 + kb));
    for (auto &x : data) x = static_cast<char>(rng());
    char tmpl[] = "/tmp/ckh_kt_layout_XXXXXX";
    const int fd = ::mkstemp(tmpl);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::write(fd, data.data(), data.size()), static_cast<ssize_t>(data.size()));
    ::unlink(tmpl);
    fds.push_back(fd);
    g.files.push_back(tmpl);
    Source src;
    src.name = "codes";
    src.dtype = CKH_DT_I8;
    src.shape = shape_of({n, kb});
    Piece pc;
    pc.size[0] = n;
    pc.size[1] = kb;
    pc.stride[0] = kb;
    pc.stride[1] = 1;
    src.pieces.push_back(pc);
    g.sources.push_back(src);
    node = g.source_node(0);
    std::vector<int32_t> rows;
    for (const auto &grp : ckh::kt::pieces(n, kb, bits)) {
      std::vector<int32_t> cols;
      for (const auto &p : grp) {
        int32_t x = g.slice(g.slice(node, 0, p.r0, p.count * p.nbs), 1, p.c0, p.width);
        x = g.permute(g.reshape(x, shape_of(p.in_shape)), p.perm);
        cols.push_back(g.reshape(x, shape_of({p.count, p.nbs * p.width})));
      }
      const int32_t r = cols.size() == 1 ? cols[0] : g.concat(cols, 1);
      rows.push_back(g.reshape(r, shape_of({g.node(r).shape.d[0] * g.node(r).shape.d[1]})));
    }
    packed = rows.size() == 1 ? rows[0] : g.concat(rows, 0);
  }
  ~Codes() {
    for (int fd : fds) ::close(fd);
  }
};

}  // namespace

TEST(KtLayout, TilesWholeAndInPieces) {
  // (rows, row bytes, bits): K blocks of 3584 (int8) / 1792 (int4) bytes with a short last one, N blocks of 64 / 128
  // rows with a short last one, a single tile, several whole blocks.
  const struct {
    int64_t n, kb;
    int bits;
  } cases[] = {{32, 64, 8}, {96, 3584 + 256, 8}, {128, 7168, 8}, {64, 1024, 8}, {160, 1792 + 128, 4}, {256, 3584, 4}, {32, 64, 4}};
  const ckh_kernels_t *k = ckh::kernels::best();
  std::mt19937 rng(7);
  for (const auto &c : cases) {
    Codes x(c.n, c.kb, c.bits);
    Evaluator ev(x.g, x.fds, k);
    const int64_t bytes = c.n * c.kb;
    ASSERT_EQ(x.g.node(x.packed).shape.d[0], bytes);
    std::vector<char> want(static_cast<size_t>(bytes));
    std::vector<char> seen(static_cast<size_t>(bytes), 0);
    for (int64_t r = 0; r < c.n; ++r)
      for (int64_t b = 0; b < c.kb; ++b) {
        const uint64_t o = ckh::kt::offset_of(c.n, c.kb, c.bits, r, b);
        ASSERT_LT(o, static_cast<uint64_t>(bytes));
        ASSERT_EQ(seen[o], 0) << "offset " << o << " taken twice";
        seen[o] = 1;
        want[o] = x.data[static_cast<size_t>(r * c.kb + b)];
      }
    for (int trial = 0; trial < 4; ++trial) {
      std::vector<char> got(static_cast<size_t>(bytes), 0);
      const int64_t piece = trial == 0 ? bytes : 1 + static_cast<int64_t>(rng() % static_cast<uint64_t>(std::max<int64_t>(1, bytes / 3)));
      for (int64_t at = 0; at < bytes; at += piece) {
        const int64_t len = std::min(piece, bytes - at);
        Index off{};
        off[0] = at;
        ev.eval(x.packed, off, View::dense(got.data() + at, CKH_DT_I8, shape_of({len})));
      }
      ASSERT_EQ(got, want) << c.n << " x " << c.kb << " int" << c.bits << ", pieces of " << piece;
    }
  }
}

TEST(KtLayout, SmallRunCopiesMatchNaive) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 400; ++trial) {
    const size_t es = std::vector<size_t>{1, 2, 4, 8}[rng() % 4];
    const ckh_dtype dt = es == 1 ? CKH_DT_I8 : es == 2 ? CKH_DT_I16 : es == 4 ? CKH_DT_I32 : CKH_DT_I64;
    const uint32_t nd = 2 + static_cast<uint32_t>(rng() % 4);
    Shape s;
    s.ndim = nd;
    for (uint32_t i = 0; i < nd; ++i) s.d[i] = std::vector<int64_t>{1, 3, 4, 8, 16}[rng() % 5];
    // A source in a random dim order (so the copy transposes), a destination dense or with a gap per row.
    std::vector<uint32_t> order(nd);
    std::iota(order.begin(), order.end(), 0u);
    std::shuffle(order.begin(), order.end(), rng);
    View src;
    src.dtype = dt;
    src.shape = s;
    int64_t acc = 1;
    for (int i = static_cast<int>(nd) - 1; i >= 0; --i) {
      src.stride[order[static_cast<size_t>(i)]] = acc;
      acc *= s.d[order[static_cast<size_t>(i)]];
    }
    std::vector<char> sbuf(static_cast<size_t>(acc) * es);
    for (auto &b : sbuf) b = static_cast<char>(rng());
    src.ptr = sbuf.data();
    const int64_t gap = rng() % 2 ? 0 : 1 + static_cast<int64_t>(rng() % 3);
    View dst;
    dst.dtype = dt;
    dst.shape = s;
    acc = 1;
    for (int i = static_cast<int>(nd) - 1; i >= 0; --i) {
      dst.stride[static_cast<size_t>(i)] = acc;
      acc *= s.d[static_cast<size_t>(i)] + (i == static_cast<int>(nd) - 1 ? gap : 0);
    }
    std::vector<char> dbuf(static_cast<size_t>(acc) * es, 0x5a), ref = dbuf;
    dst.ptr = dbuf.data();
    copy_view(dst, src);
    // Naive: element by element.
    Index idx{};
    const int64_t total = s.numel();
    for (int64_t e = 0; e < total; ++e) {
      int64_t rem = e, od = 0, os = 0;
      for (int i = static_cast<int>(nd) - 1; i >= 0; --i) {
        idx[static_cast<size_t>(i)] = rem % s.d[static_cast<size_t>(i)];
        rem /= s.d[static_cast<size_t>(i)];
      }
      for (uint32_t i = 0; i < nd; ++i) {
        od += idx[i] * dst.stride[i];
        os += idx[i] * src.stride[i];
      }
      std::memcpy(ref.data() + od * static_cast<int64_t>(es), sbuf.data() + os * static_cast<int64_t>(es), es);
    }
    ASSERT_EQ(dbuf, ref) << "trial " << trial << ", element size " << es << ", " << nd << " dims";
  }
}
