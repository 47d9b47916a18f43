// Randomised check of the box evaluator against a naive whole-tensor reference: every op, random
// boxes and strided destination views, sources split into pieces with non-contiguous strides.
#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include <gtest/gtest.h>

#include <ckhost/kernels/kernels.hpp>

#include "ckhost/host/error.hpp"
#include "ckhost/host/eval.hpp"
#include "ckhost/host/graph.hpp"

using namespace ckh::host;

namespace {

// Naive dense tensor of f32 values (all test sources are F32 so casts are checked separately).
struct T {
  Shape s;
  std::vector<float> v;
};

int64_t flat(const Shape &s, const Index &i) {
  int64_t f = 0;
  for (uint32_t d = 0; d < s.ndim; ++d) f = f * s.d[d] + i[d];
  return f;
}

template <class F>
void each(const Shape &s, F &&f) {
  Index i{};
  if (s.numel() == 0) return;
  while (true) {
    f(i);
    int d = static_cast<int>(s.ndim) - 1;
    for (; d >= 0; --d) {
      if (++i[d] < s.d[d]) break;
      i[d] = 0;
    }
    if (d < 0) return;
  }
}

struct Fixture {
  Graph g;
  std::vector<T> ref;  // per node
  std::vector<int> fds;
  std::string path;
  std::mt19937 rng{1234};

  ~Fixture() {
    for (int fd : fds) ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
  }

  // A source of shape s, stored in the file as `npieces` pieces along dim 0, each transposed
  // (column-major) when `strided`.
  int32_t add_source(const Shape &s, int npieces, bool strided, std::string &file_bytes) {
    T t;
    t.s = s;
    t.v.resize(static_cast<size_t>(s.numel()));
    for (auto &x : t.v) x = static_cast<float>(static_cast<int>(rng() % 2001) - 1000) / 8.0f;
    Source src;
    src.name = "s" + std::to_string(g.sources.size());
    src.dtype = CKH_DT_F32;
    src.shape = s;
    int64_t rows = s.d[0];
    for (int p = 0; p < npieces; ++p) {
      int64_t r0 = rows * p / npieces, r1 = rows * (p + 1) / npieces;
      Piece pc;
      pc.file = 0;
      pc.byte_offset = file_bytes.size();
      pc.offset[0] = r0;
      pc.size[0] = r1 - r0;
      for (uint32_t d = 1; d < s.ndim; ++d) pc.size[d] = s.d[d];
      Shape ps = s;
      ps.d[0] = r1 - r0;
      // strides: row-major, or column-major when strided
      int64_t acc = 1;
      if (strided) {
        for (uint32_t d = 0; d < s.ndim; ++d) {
          pc.stride[d] = acc;
          acc *= ps.d[d];
        }
      } else {
        for (int d = static_cast<int>(s.ndim) - 1; d >= 0; --d) {
          pc.stride[d] = acc;
          acc *= ps.d[d];
        }
      }
      std::vector<float> buf(static_cast<size_t>(ps.numel()));
      each(ps, [&](const Index &li) {
        Index gi = li;
        gi[0] += r0;
        int64_t o = 0;
        for (uint32_t d = 0; d < s.ndim; ++d) o += li[d] * pc.stride[d];
        buf[static_cast<size_t>(o)] = t.v[static_cast<size_t>(flat(s, gi))];
      });
      file_bytes.append(reinterpret_cast<const char *>(buf.data()), buf.size() * 4);
      file_bytes.append(3, 'x');  // misalign the next piece
      src.pieces.push_back(pc);
    }
    g.sources.push_back(src);
    int32_t n = g.source_node(static_cast<int32_t>(g.sources.size() - 1));
    put(n, t);
    return n;
  }
  void put(int32_t n, T t) {
    if (ref.size() <= static_cast<size_t>(n)) ref.resize(static_cast<size_t>(n) + 1);
    ref[static_cast<size_t>(n)] = std::move(t);
  }
  const T &r(int32_t n) { return ref[static_cast<size_t>(n)]; }

  void finish(const std::string &bytes) {
    char tmpl[] = "/tmp/ckh_eval_XXXXXX";
    int fd = ::mkstemp(tmpl);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    path = tmpl;
    g.files.push_back(path);
    fds.push_back(fd);
  }

  // Reference implementations.
  int32_t slice(int32_t a, uint32_t dim, int64_t st, int64_t len) {
    int32_t n = g.slice(a, dim, st, len);
    T t;
    t.s = g.node(n).shape;
    t.v.resize(static_cast<size_t>(t.s.numel()));
    each(t.s, [&](const Index &i) {
      Index j = i;
      j[dim] += st;
      t.v[static_cast<size_t>(flat(t.s, i))] = r(a).v[static_cast<size_t>(flat(r(a).s, j))];
    });
    put(n, t);
    return n;
  }
  int32_t concat(const std::vector<int32_t> &parts, uint32_t dim) {
    int32_t n = g.concat(parts, dim);
    T t;
    t.s = g.node(n).shape;
    t.v.resize(static_cast<size_t>(t.s.numel()));
    each(t.s, [&](const Index &i) {
      int64_t k = i[dim];
      for (int32_t p : parts) {
        if (k < r(p).s.d[dim]) {
          Index j = i;
          j[dim] = k;
          t.v[static_cast<size_t>(flat(t.s, i))] = r(p).v[static_cast<size_t>(flat(r(p).s, j))];
          break;
        }
        k -= r(p).s.d[dim];
      }
    });
    put(n, t);
    return n;
  }
  int32_t reshape(int32_t a, const Shape &s) {
    int32_t n = g.reshape(a, s);
    T t = r(a);
    t.s = s;
    put(n, t);
    return n;
  }
  int32_t permute(int32_t a, const std::vector<uint32_t> &perm) {
    int32_t n = g.permute(a, perm);
    T t;
    t.s = g.node(n).shape;
    t.v.resize(static_cast<size_t>(t.s.numel()));
    each(t.s, [&](const Index &i) {
      Index j{};
      for (uint32_t d = 0; d < t.s.ndim; ++d) j[perm[d]] = i[d];
      t.v[static_cast<size_t>(flat(t.s, i))] = r(a).v[static_cast<size_t>(flat(r(a).s, j))];
    });
    put(n, t);
    return n;
  }
  int32_t pad(int32_t a, uint32_t dim, int64_t b, int64_t af, int32_t mode) {
    int32_t n = g.pad(a, dim, b, af, mode);
    T t;
    t.s = g.node(n).shape;
    t.v.resize(static_cast<size_t>(t.s.numel()));
    const int64_t L = r(a).s.d[dim];
    each(t.s, [&](const Index &i) {
      int64_t k = i[dim] - b;
      float val = 0;
      if (k >= 0 && k < L) {
        Index j = i;
        j[dim] = k;
        val = r(a).v[static_cast<size_t>(flat(r(a).s, j))];
      } else if (mode == CKH_PAD_REPEAT_EDGE) {
        Index j = i;
        j[dim] = k < 0 ? 0 : L - 1;
        val = r(a).v[static_cast<size_t>(flat(r(a).s, j))];
      }
      t.v[static_cast<size_t>(flat(t.s, i))] = val;
    });
    put(n, t);
    return n;
  }
  int32_t scale(int32_t a, double f) {
    int32_t n = g.scale(a, f);
    T t = r(a);
    for (auto &x : t.v) x = x * static_cast<float>(f);
    put(n, t);
    return n;
  }

  // Evaluates a random box of n into a strided destination and compares with the reference.
  void check(int32_t n, int trials = 20) {
    const ckh_kernels_t *k = ckh::kernels::best();
    Evaluator ev(g, fds, k);
    const T &t = r(n);
    for (int trial = 0; trial < trials; ++trial) {
      Index off{};
      Shape box = t.s;
      for (uint32_t d = 0; d < t.s.ndim; ++d) {
        if (trial == 0 || t.s.d[d] == 0) continue;  // first trial: whole tensor
        int64_t a = static_cast<int64_t>(rng() % static_cast<uint64_t>(t.s.d[d]));
        int64_t b = static_cast<int64_t>(rng() % static_cast<uint64_t>(t.s.d[d]));
        if (a > b) std::swap(a, b);
        off[d] = a;
        box.d[d] = b - a + 1;
      }
      // Destination: a bigger buffer with padded strides (non-dense) every other trial.
      View v;
      std::vector<float> buf;
      if (trial % 2) {
        Index st{};
        int64_t acc = 1;
        for (int d = static_cast<int>(box.ndim) - 1; d >= 0; --d) {
          st[d] = acc;
          acc *= box.d[d] + 1;
        }
        buf.assign(static_cast<size_t>(acc), -9999.0f);
        v.ptr = reinterpret_cast<char *>(buf.data());
        v.dtype = CKH_DT_F32;
        v.shape = box;
        v.stride = st;
      } else {
        buf.assign(static_cast<size_t>(box.numel()), -9999.0f);
        v = View::dense(buf.data(), CKH_DT_F32, box);
      }
      ev.eval(n, off, v);
      each(box, [&](const Index &i) {
        Index gi = i;
        int64_t o = 0;
        for (uint32_t d = 0; d < box.ndim; ++d) {
          gi[d] += off[d];
          o += i[d] * v.stride[d];
        }
        ASSERT_EQ(buf[static_cast<size_t>(o)], t.v[static_cast<size_t>(flat(t.s, gi))])
            << g.describe(n) << " at flat " << flat(t.s, gi);
      });
    }
  }
};

Shape S(std::initializer_list<int64_t> d) {
  Shape s;
  for (int64_t x : d) s.d[s.ndim++] = x;
  return s;
}

}  // namespace

TEST(Eval, SourcesContiguousStridedAndPieces) {
  Fixture f;
  std::string bytes = "HEADER";
  int32_t a = f.add_source(S({7, 5, 3}), 1, false, bytes);
  int32_t b = f.add_source(S({9, 4}), 3, true, bytes);
  int32_t c = f.add_source(S({6, 2, 2, 3}), 2, true, bytes);
  f.finish(bytes);
  f.check(a);
  f.check(b);
  f.check(c);
}

TEST(Eval, QkvInterleaveLikeMegatron) {
  // q [H*d, h], k/v [G*d, h] -> [G, (P+2)*d, h] -> [G*(P+2)*d, h], as the Megatron mapper will do.
  Fixture f;
  std::string bytes;
  const int64_t H = 8, G = 2, d = 3, h = 5, P = H / G;
  int32_t q = f.add_source(S({H * d, h}), 1, false, bytes);
  int32_t k = f.add_source(S({G * d, h}), 2, false, bytes);
  int32_t v = f.add_source(S({G * d, h}), 1, true, bytes);
  f.finish(bytes);
  int32_t qr = f.reshape(q, S({G, P * d, h}));
  int32_t kr = f.reshape(k, S({G, d, h}));
  int32_t vr = f.reshape(v, S({G, d, h}));
  int32_t cat = f.concat({qr, kr, vr}, 1);
  int32_t qkv = f.reshape(cat, S({G * (P + 2) * d, h}));
  f.check(qkv, 40);
  // TP split of rank 1 of 2 and back out: slice rows
  int32_t r1 = f.slice(qkv, 0, G * (P + 2) * d / 2, G * (P + 2) * d / 2);
  f.check(r1);
}

TEST(Eval, RandomTrees) {
  for (int seed = 0; seed < 30; ++seed) {
    Fixture f;
    f.rng.seed(static_cast<unsigned>(seed));
    std::string bytes;
    int32_t a = f.add_source(S({6, 4, 5}), 1 + seed % 3, seed % 2, bytes);
    int32_t b = f.add_source(S({6, 4, 5}), 1, (seed + 1) % 2, bytes);
    f.finish(bytes);
    int32_t x = f.concat({a, b}, static_cast<uint32_t>(seed % 3));
    x = f.permute(x, {static_cast<uint32_t>((seed + 1) % 3), static_cast<uint32_t>((seed + 2) % 3),
                      static_cast<uint32_t>(seed % 3)});
    Shape xs = f.g.node(x).shape;
    x = f.slice(x, 0, 1, xs.d[0] - 1);
    x = f.pad(x, 1, seed % 3, (seed + 1) % 2, seed % 2 ? CKH_PAD_REPEAT_EDGE : CKH_PAD_ZEROS);
    xs = f.g.node(x).shape;
    x = f.reshape(x, S({xs.d[0] * xs.d[1], xs.d[2]}));
    x = f.scale(x, 2.0);
    f.check(x, 30);
  }
}

TEST(Eval, CastRoundTripAndDirectRange) {
  Fixture f;
  std::string bytes;
  int32_t a = f.add_source(S({16, 8}), 1, false, bytes);
  f.finish(bytes);
  // f32 -> bf16 -> f32 rounds to nearest even at 8 significant bits.
  int32_t c = f.g.cast(f.g.cast(a, CKH_DT_BF16), CKH_DT_F32);
  T rounded = f.r(a);
  for (auto &x : rounded.v) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    u = ((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16) << 16;
    std::memcpy(&x, &u, 4);
  }
  f.put(c, rounded);
  f.check(c);
  Evaluator ev(f.g, f.fds, ckh::kernels::best());
  Index off{};
  off[0] = 2;
  auto fr = ev.direct_range(a, off, S({3, 8}));
  ASSERT_TRUE(fr.has_value());
  EXPECT_EQ(fr->length, 3u * 8 * 4);
  EXPECT_EQ(fr->offset, 2u * 8 * 4);
  EXPECT_FALSE(ev.direct_range(a, Index{}, S({3, 4})).has_value());  // not one run
  int32_t r = f.g.reshape(a, S({128}));
  Index o2{};
  o2[0] = 8;
  auto fr2 = ev.direct_range(r, o2, S({16}));
  ASSERT_TRUE(fr2.has_value());
  EXPECT_EQ(fr2->offset, 8u * 4);
}

// gather(): the ranges of a pure data-movement box, read in order, are exactly what eval computes.
TEST(Eval, GatherMatchesEval) {
  int checked = 0;
  for (int seed = 0; seed < 40; ++seed) {
    Fixture f;
    f.rng.seed(static_cast<unsigned>(seed));
    std::string bytes;
    int32_t a = f.add_source(S({6, 4, 5}), 1 + seed % 2, false, bytes);
    int32_t b = f.add_source(S({6, 4, 5}), 1, false, bytes);
    f.finish(bytes);
    int32_t x = f.concat({a, b}, static_cast<uint32_t>(seed % 3));
    Shape xs = f.g.node(x).shape;
    x = f.slice(x, 0, seed % 2, xs.d[0] - seed % 2);
    xs = f.g.node(x).shape;
    x = f.reshape(x, S({xs.d[0] * xs.d[1], xs.d[2]}));
    xs = f.g.node(x).shape;
    x = f.slice(x, 1, 1, xs.d[1] - 2);
    Evaluator ev(f.g, f.fds, ckh::kernels::best());
    const Shape full = f.g.node(x).shape;
    for (int trial = 0; trial < 10; ++trial) {
      Index off{};
      Shape box = full;
      const int64_t r0 = static_cast<int64_t>(f.rng() % static_cast<uint64_t>(full.d[0]));
      off[0] = r0;
      box.d[0] = 1 + static_cast<int64_t>(f.rng() % static_cast<uint64_t>(full.d[0] - r0));
      std::vector<FileRange> ranges;
      if (!ev.gather(x, off, box, ranges, 1u << 16)) continue;  // e.g. spans two pieces
      std::string got;
      for (const auto &r : ranges) got += bytes.substr(r.offset, r.length);
      std::vector<float> want(static_cast<size_t>(box.numel()));
      ev.eval(x, off, View::dense(want.data(), CKH_DT_F32, box));
      ASSERT_EQ(got.size(), want.size() * 4);
      ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size()), 0) << f.g.describe(x);
      ++checked;
    }
  }
  EXPECT_GT(checked, 100);
  // Conversions are not data movement.
  Fixture f;
  std::string bytes;
  int32_t a = f.add_source(S({4, 3}), 1, false, bytes);
  f.finish(bytes);
  Evaluator ev(f.g, f.fds, ckh::kernels::best());
  std::vector<FileRange> r;
  EXPECT_FALSE(ev.gather(f.g.cast(a, CKH_DT_BF16), Index{}, S({4, 3}), r, 100));
}

TEST(Eval, ShapeErrorsAreDescriptive) {
  Fixture f;
  std::string bytes;
  int32_t a = f.add_source(S({4, 3}), 1, false, bytes);
  f.finish(bytes);
  EXPECT_THROW(f.g.slice(a, 0, 3, 2), Error);
  EXPECT_THROW(f.g.reshape(a, S({5, 2})), Error);
  try {
    f.g.concat({a, f.g.slice(a, 1, 0, 2)}, 0);
    FAIL();
  } catch (const Error &e) {
    EXPECT_NE(std::string(e.what()).find("[4, 2]"), std::string::npos) << e.what();
  }
}
