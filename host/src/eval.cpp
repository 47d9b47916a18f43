// eval.cpp — box evaluation of expression nodes (see eval.hpp).
#include "ckhost/host/eval.hpp"

#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include <ckhost/kernels/kernels.hpp>

#include "ckhost/host/error.hpp"
#include "ckhost/host/services.hpp"

namespace ckh::host {

namespace {

// Largest byte span read in one pread for a strided (non-contiguous) piece before the box is split.
constexpr uint64_t kMaxStridedSpan = 64ull << 20;

Index row_major(const Shape &s) {
  Index st{};
  int64_t acc = 1;
  for (int i = static_cast<int>(s.ndim) - 1; i >= 0; --i) {
    st[static_cast<size_t>(i)] = acc;
    acc *= s.d[static_cast<size_t>(i)];
  }
  return st;
}

Shape box_of(const Index &lo, const Index &hi, uint32_t nd) {
  Shape s;
  s.ndim = nd;
  for (uint32_t i = 0; i < nd; ++i) s.d[i] = hi[i] - lo[i];
  return s;
}

// Calls f(index) for every multi-index of `shape` over dims [0, upto).
template <class F>
void for_each_prefix(const Shape &shape, uint32_t upto, F &&f) {
  Index idx{};
  for (uint32_t i = 0; i < upto; ++i)
    if (shape.d[i] == 0) return;
  while (true) {
    f(idx);
    int i = static_cast<int>(upto) - 1;
    for (; i >= 0; --i) {
      if (++idx[static_cast<size_t>(i)] < shape.d[static_cast<size_t>(i)]) break;
      idx[static_cast<size_t>(i)] = 0;
    }
    if (i < 0) return;
  }
}

// Covers the row-major run [pos, end) of a tensor of shape `c` (with row-major strides `crm`) with
// row-major boxes of `c`, greedily from `pos`: at each step the outermost dim j whose inner dims are
// all at index 0 and whose block still fits, taking as many indices of dim j as fit. Calls
// f(index, box) for each box in order; stops early (returning false) when f returns false.
// One cover serves reshape evaluation, direct-range detection and byte-range gathering.
template <class F>
bool cover_run(const Shape &c, const Index &crm, int64_t pos, int64_t end, F &&f) {
  const uint32_t cnd = c.ndim;
  while (pos < end) {
    Index idx{};
    int64_t rem = pos;
    for (uint32_t i = 0; i < cnd; ++i) {
      idx[i] = crm[i] ? rem / crm[i] : 0;
      rem -= idx[i] * crm[i];
    }
    uint32_t j = cnd ? cnd - 1 : 0;
    while (j > 0 && idx[j] == 0 && pos + crm[j - 1] <= end) --j;
    int64_t take = std::min<int64_t>((end - pos) / crm[j], c.d[j] - idx[j]);
    if (take <= 0) take = 1;
    Shape box;
    box.ndim = cnd;
    for (uint32_t i = 0; i < cnd; ++i) box.d[i] = i < j ? 1 : (i == j ? take : c.d[i]);
    if (!f(idx, box, pos)) return false;
    pos += take * crm[j];
  }
  return true;
}

// The piece of `s` that holds the whole box at `off`, when that piece is stored row-major (its
// strides are those of its own shape); nullptr otherwise. `prm` gets the piece's row-major strides.
const Piece *row_major_piece(const Source &s, const Index &off, const Shape &box, Index &prm) {
  const uint32_t nd = s.shape.ndim;
  for (const Piece &p : s.pieces) {
    bool inside = true;
    for (uint32_t i = 0; i < nd; ++i)
      inside = inside && off[i] >= p.offset[i] && off[i] + box.d[i] <= p.offset[i] + p.size[i];
    if (!inside) continue;
    Shape ps;
    ps.ndim = nd;
    for (uint32_t i = 0; i < nd; ++i) ps.d[i] = p.size[i];
    prm = row_major(ps);
    for (uint32_t i = 0; i < nd; ++i)
      if (ps.d[i] > 1 && p.stride[i] != prm[i]) return nullptr;  // strided piece
    return &p;
  }
  return nullptr;  // spans pieces (or none)
}

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t hash_name(const std::string &s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Reusable, uninitialised temporaries. Large buffers from malloc are fresh mmaps whose pages fault and
// get zeroed on every use; a per-thread pool avoids that in the hot path. The pool keeps at most
// kPoolBytes per thread.
constexpr size_t kPoolBytes = 192u << 20;
struct Pool {
  std::vector<std::pair<size_t, char *>> free;
  size_t bytes = 0;
  ~Pool() {
    for (auto &f : free) delete[] f.second;
  }
};
Pool &pool() {
  static thread_local Pool p;
  return p;
}

class Scratch {
 public:
  explicit Scratch(size_t n) : n_(n) {
    Pool &p = pool();
    size_t best = p.free.size();
    for (size_t i = 0; i < p.free.size(); ++i)
      if (p.free[i].first >= n && (best == p.free.size() || p.free[i].first < p.free[best].first)) best = i;
    if (best < p.free.size()) {
      cap_ = p.free[best].first;
      ptr_ = p.free[best].second;
      p.bytes -= cap_;
      p.free.erase(p.free.begin() + static_cast<long>(best));
    } else {
      cap_ = n ? n : 1;
      ptr_ = new char[cap_];
    }
  }
  ~Scratch() {
    Pool &p = pool();
    if (cap_ > kPoolBytes) {
      delete[] ptr_;
      return;
    }
    while (!p.free.empty() && p.bytes + cap_ > kPoolBytes) {
      auto big = std::max_element(p.free.begin(), p.free.end());
      p.bytes -= big->first;
      delete[] big->second;
      p.free.erase(big);
    }
    p.free.emplace_back(cap_, ptr_);
    p.bytes += cap_;
  }
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  char *data() const { return ptr_; }
  template <class T>
  T *as() const {
    return reinterpret_cast<T *>(ptr_);
  }

 private:
  size_t n_, cap_ = 0;
  char *ptr_ = nullptr;
};

}  // namespace

View View::dense(void *p, ckh_dtype dt, const Shape &s) {
  View v;
  v.ptr = static_cast<char *>(p);
  v.dtype = dt;
  v.shape = s;
  v.stride = row_major(s);
  return v;
}

bool View::is_dense() const {
  Index rm = row_major(shape);
  for (uint32_t i = 0; i < shape.ndim; ++i)
    if (shape.d[i] > 1 && stride[i] != rm[i]) return false;
  return true;
}

View View::sub(uint32_t dim, int64_t start, int64_t len) const {
  View v = *this;
  v.ptr += start * stride[dim] * static_cast<int64_t>(storage_size(dtype));
  v.shape.d[dim] = len;
  return v;
}

bool flat_contiguous(const Shape &shape, const Index &off, const Shape &box) {
  (void)off;
  // Find the last dim whose box extent differs from the shape; dims before it must have extent <= 1.
  int k = -1;
  for (int i = static_cast<int>(shape.ndim) - 1; i >= 0; --i)
    if (box.d[static_cast<size_t>(i)] != shape.d[static_cast<size_t>(i)]) {
      k = i;
      break;
    }
  for (int i = 0; i < k; ++i)
    if (box.d[static_cast<size_t>(i)] > 1) return false;
  return true;
}

void pread_full(int fd, void *dst, uint64_t len, uint64_t offset, const std::string &path) {
  char *p = static_cast<char *>(dst);
  while (len > 0) {
    ssize_t r = ::pread(fd, p, len > (1ull << 30) ? (1ull << 30) : len, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(path + ": read failed at byte " + std::to_string(offset) + ": " + std::strerror(errno), CKH_E_IO);
    }
    if (r == 0) fail(path + ": file ends before byte " + std::to_string(offset + len) + " (truncated?)", CKH_E_FORMAT);
    p += r;
    offset += static_cast<uint64_t>(r);
    len -= static_cast<uint64_t>(r);
  }
}

// Runs of R bytes (R <= 16: the coalesced inner elements), one fixed-size copy each: two of the outer dims are
// walked by pointer steps, innermost the one with the smallest destination stride (writes close together), around it
// the one of the others with the smallest source stride (reads close together), so a transpose of small elements
// (the 4-byte words of an AMX tile, 16 x 16) stays within a few cache lines; the remaining dims go by index.
template <size_t R>
void copy_runs(const View &dst, const View &src, uint32_t outer, int64_t es) {
  auto pick = [&](const int64_t *stride, int skip) {
    int best = -1;
    for (uint32_t i = 0; i < outer; ++i)
      if (static_cast<int>(i) != skip && dst.shape.d[i] > 1 &&
          (best < 0 || std::llabs(stride[i]) < std::llabs(stride[static_cast<size_t>(best)])))
        best = static_cast<int>(i);
    return best;
  };
  const int in = pick(dst.stride.data(), -1), mid = in < 0 ? -1 : pick(src.stride.data(), in);
  Shape rest;
  std::array<int64_t, CKH_MAX_DIMS> rd{}, rs{};
  for (uint32_t i = 0; i < outer; ++i)
    if (static_cast<int>(i) != in && static_cast<int>(i) != mid) {
      rd[rest.ndim] = dst.stride[i];
      rs[rest.ndim] = src.stride[i];
      rest.d[rest.ndim++] = dst.shape.d[i];
    }
  auto dim = [&](int i, const int64_t *stride) { return i < 0 ? int64_t{0} : stride[static_cast<size_t>(i)] * es; };
  const int64_t n1 = in < 0 ? 1 : dst.shape.d[static_cast<size_t>(in)], d1 = dim(in, dst.stride.data()), s1 = dim(in, src.stride.data());
  const int64_t n0 = mid < 0 ? 1 : dst.shape.d[static_cast<size_t>(mid)], d0 = dim(mid, dst.stride.data()), s0 = dim(mid, src.stride.data());
  for_each_prefix(rest, rest.ndim, [&](const Index &idx) {
    int64_t od = 0, os = 0;
    for (uint32_t i = 0; i < rest.ndim; ++i) {
      od += idx[i] * rd[i];
      os += idx[i] * rs[i];
    }
    char *d = dst.ptr + od * es;
    const char *s = src.ptr + os * es;
#if defined(__SSE2__)
    // 4-byte elements transposed (contiguous along `mid` in the source and along `in` in the destination, e.g. the
    // word transpose of an AMX tile): 4 x 4 blocks through SSE2 registers.
    if (R == 4 && d1 == 4 && s0 == 4 && n0 % 4 == 0 && n1 % 4 == 0) {
      for (int64_t i = 0; i < n0; i += 4)
        for (int64_t j = 0; j < n1; j += 4) {
          const char *sp = s + i * 4 + j * s1;
          const __m128i a0 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(sp));
          const __m128i a1 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(sp + s1));
          const __m128i a2 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(sp + 2 * s1));
          const __m128i a3 = _mm_loadu_si128(reinterpret_cast<const __m128i *>(sp + 3 * s1));
          const __m128i t0 = _mm_unpacklo_epi32(a0, a1), t1 = _mm_unpacklo_epi32(a2, a3);
          const __m128i t2 = _mm_unpackhi_epi32(a0, a1), t3 = _mm_unpackhi_epi32(a2, a3);
          char *dp = d + i * d0 + j * 4;
          _mm_storeu_si128(reinterpret_cast<__m128i *>(dp), _mm_unpacklo_epi64(t0, t1));
          _mm_storeu_si128(reinterpret_cast<__m128i *>(dp + d0), _mm_unpackhi_epi64(t0, t1));
          _mm_storeu_si128(reinterpret_cast<__m128i *>(dp + 2 * d0), _mm_unpacklo_epi64(t2, t3));
          _mm_storeu_si128(reinterpret_cast<__m128i *>(dp + 3 * d0), _mm_unpackhi_epi64(t2, t3));
        }
      return;
    }
#endif
    for (int64_t i = 0; i < n0; ++i, d += d0, s += s0) {
      char *dd = d;
      const char *ss = s;
      for (int64_t j = 0; j < n1; ++j, dd += d1, ss += s1) std::memcpy(dd, ss, R);
    }
  });
}

void copy_view(const View &dst, const View &src) {
  const uint32_t nd = dst.shape.ndim;
  const size_t es = storage_size(dst.dtype);
  if (dst.shape.numel() == 0) return;
  if (nd == 0) {
    std::memcpy(dst.ptr, src.ptr, es);
    return;
  }
  // Coalesce trailing dims that are contiguous in both views into one inner run.
  int64_t inner = 1;
  int k = static_cast<int>(nd) - 1;
  int64_t expect = 1;
  while (k >= 0 && (dst.shape.d[static_cast<size_t>(k)] == 1 ||
                    (dst.stride[static_cast<size_t>(k)] == expect && src.stride[static_cast<size_t>(k)] == expect))) {
    inner *= dst.shape.d[static_cast<size_t>(k)];
    expect = inner;
    --k;
  }
  if (k < 0) {
    std::memcpy(dst.ptr, src.ptr, static_cast<size_t>(inner) * es);
    return;
  }
  const uint32_t outer = static_cast<uint32_t>(k + 1);
  const int64_t ies = static_cast<int64_t>(es);
  switch (static_cast<size_t>(inner) * es) {
    case 1: copy_runs<1>(dst, src, outer, ies); return;
    case 2: copy_runs<2>(dst, src, outer, ies); return;
    case 4: copy_runs<4>(dst, src, outer, ies); return;
    case 8: copy_runs<8>(dst, src, outer, ies); return;
    case 16: copy_runs<16>(dst, src, outer, ies); return;
    default: break;
  }
  if (inner > 1) {
    for_each_prefix(dst.shape, outer, [&](const Index &idx) {
      int64_t od = 0, os = 0;
      for (uint32_t i = 0; i < outer; ++i) {
        od += idx[i] * dst.stride[i];
        os += idx[i] * src.stride[i];
      }
      std::memcpy(dst.ptr + od * static_cast<int64_t>(es), src.ptr + os * static_cast<int64_t>(es),
                  static_cast<size_t>(inner) * es);
    });
    return;
  }
  // Element-wise along the last non-trivial dim.
  const uint32_t last = outer - 1;
  const int64_t n = dst.shape.d[last], sd = dst.stride[last] * static_cast<int64_t>(es),
                ss = src.stride[last] * static_cast<int64_t>(es);
  for_each_prefix(dst.shape, last, [&](const Index &idx) {
    int64_t od = 0, os = 0;
    for (uint32_t i = 0; i < last; ++i) {
      od += idx[i] * dst.stride[i];
      os += idx[i] * src.stride[i];
    }
    char *d = dst.ptr + od * static_cast<int64_t>(es);
    const char *s = src.ptr + os * static_cast<int64_t>(es);
    switch (es) {
      case 1: for (int64_t j = 0; j < n; ++j) d[j * sd] = s[j * ss]; break;
      case 2: for (int64_t j = 0; j < n; ++j) std::memcpy(d + j * sd, s + j * ss, 2); break;
      case 4: for (int64_t j = 0; j < n; ++j) std::memcpy(d + j * sd, s + j * ss, 4); break;
      default: for (int64_t j = 0; j < n; ++j) std::memcpy(d + j * sd, s + j * ss, es); break;
    }
  });
}

void convert_dense(ckh_dtype from, const void *src, ckh_dtype to, void *dst, uint64_t n, const ckh_kernels_t *k,
                   int32_t fp8_mode) {
  if (!ckh::kernels::convert(from, src, to, dst, n, k, fp8_mode))
    fail("cannot convert " + dtype_name(from) + " to " + dtype_name(to), CKH_E_UNSUPPORTED);
}

// ---- quantizer chunks ------------------------------------------------------------------------------

struct QuantChunk {
  bool ready = false, in_map = true;
  std::vector<std::vector<char>> outs;  // per output; emptied once delivered
  std::vector<int64_t> remaining;       // per output: elements not yet delivered (<= 0: done)
  uint64_t bytes = 0;                   // bytes still held (counted in QuantMemo::bytes while in_map)
  int readers = 0;                      // threads copying out of it right now
};

struct QuantMemo {
  std::mutex m;
  std::condition_variable cv;
  std::unordered_map<uint64_t, std::shared_ptr<QuantChunk>> map;
  std::deque<uint64_t> order;  // insertion order, for eviction
  std::unordered_set<uint64_t> computed;
  uint64_t bytes = 0, cap = 0, chunk_bytes = 0;
  std::vector<std::vector<char>> used;  // per quant: outputs the plan reads
  std::vector<int64_t> chunk_blocks;    // per quant
  std::atomic<uint64_t> calls{0}, blocks{0}, recomputed{0};
  static uint64_t key(int32_t q, int64_t c) { return (static_cast<uint64_t>(q) << 40) | static_cast<uint64_t>(c); }
};

namespace {

// Rows [r0, r1) of a port for blocks [b0, b1) (all rows for a whole port).
std::pair<int64_t, int64_t> port_rows(const QuantPort &p, int64_t b0, int64_t b1) {
  const int64_t rows = p.shape.ndim ? p.shape.d[0] : 1;
  if (p.rows_per_block <= 0) return {0, rows};
  return {std::min(rows, b0 * p.rows_per_block), std::min(rows, b1 * p.rows_per_block)};
}

int64_t row_elems(const Shape &s) {
  int64_t n = 1;
  for (uint32_t i = 1; i < s.ndim; ++i) n *= s.d[i];
  return n;
}

}  // namespace

Evaluator::Evaluator(const Graph &g, const std::vector<int> &fds, const ckh_kernels_t *k, int32_t fp8_mode,
                     uint64_t quant_chunk_bytes, uint64_t quant_cache_bytes)
    : g_(g), fds_(fds), k_(k), fp8_mode_(fp8_mode), memo_(std::make_unique<QuantMemo>()) {
  QuantMemo &M = *memo_;
  M.cap = quant_cache_bytes;
  M.chunk_bytes = std::max<uint64_t>(1, quant_chunk_bytes);
  M.used.resize(g.quants.size());
  M.chunk_blocks.resize(g.quants.size());
  for (size_t q = 0; q < g.quants.size(); ++q) {
    M.used[q].assign(g.quants[q].out.size(), 0);
    const uint64_t per = std::max<uint64_t>(1, g.quants[q].bytes_per_block());
    M.chunk_blocks[q] = std::clamp<int64_t>(static_cast<int64_t>(M.chunk_bytes / per), 1, std::max<int64_t>(1, g.quants[q].n_blocks));
  }
  if (g.quants.empty()) return;
  // Outputs the layout reads (every referenced output when there is no layout yet).
  std::vector<char> seen(g.nodes.size(), 0);
  std::vector<int32_t> stack;
  for (const Region &r : g.layout.regions) stack.push_back(r.node);
  const bool any_layout = !stack.empty();
  while (!stack.empty()) {
    const int32_t e = stack.back();
    stack.pop_back();
    if (e < 0 || seen[static_cast<size_t>(e)]) continue;
    seen[static_cast<size_t>(e)] = 1;
    const Node &n = g.nodes[static_cast<size_t>(e)];
    for (int32_t c : n.in) stack.push_back(c);
  }
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = g.nodes[i];
    if (n.op == Op::Quantize && (!any_layout || seen[i])) M.used[static_cast<size_t>(n.quant)][n.output] = 1;
  }
}

Evaluator::~Evaluator() = default;

QuantStats Evaluator::quant_stats() const {
  QuantStats s;
  s.calls = memo_->calls;
  s.blocks = memo_->blocks;
  s.recomputed_blocks = memo_->recomputed;
  return s;
}

void Evaluator::eval(int32_t e, const Index &off, const View &v) const {
  const Node &n = g_.node(e);
  const uint32_t nd = n.shape.ndim;
  if (v.shape.numel() == 0) return;
  switch (n.op) {
    case Op::Source: eval_source(n, off, v); return;
    case Op::Slice: {
      Index o = off;
      o[n.dim] += n.start;
      eval(n.in[0], o, v);
      return;
    }
    case Op::Concat: {
      const int64_t lo = off[n.dim], hi = off[n.dim] + v.shape.d[n.dim];
      int64_t base = 0;
      for (int32_t part : n.in) {
        const int64_t len = g_.node(part).shape.d[n.dim];
        const int64_t a = std::max(lo, base), b = std::min(hi, base + len);
        if (a < b) {
          Index o = off;
          o[n.dim] = a - base;
          eval(part, o, v.sub(n.dim, a - lo, b - a));
        }
        base += len;
        if (base >= hi) break;
      }
      return;
    }
    case Op::Permute: {
      // Output dim i is input dim perm[i].
      Index o{};
      View cv = v;
      for (uint32_t i = 0; i < nd; ++i) {
        o[n.perm[i]] = off[i];
        cv.shape.d[n.perm[i]] = v.shape.d[i];
        cv.stride[n.perm[i]] = v.stride[i];
      }
      eval(n.in[0], o, cv);
      return;
    }
    case Op::Pad: {
      const Node &c = g_.node(n.in[0]);
      const int64_t L = c.shape.d[n.dim], before = n.start;
      const int64_t lo = off[n.dim], hi = off[n.dim] + v.shape.d[n.dim];
      // middle part
      const int64_t a = std::max(lo, before), b = std::min(hi, before + L);
      if (a < b) {
        Index o = off;
        o[n.dim] = a - before;
        eval(n.in[0], o, v.sub(n.dim, a - lo, b - a));
      }
      auto fill = [&](int64_t from, int64_t to, int64_t edge) {
        if (from >= to) return;
        View first = v.sub(n.dim, from - lo, 1);
        if (n.mode == CKH_PAD_ZEROS) {
          const size_t zb = static_cast<size_t>(first.shape.numel()) * storage_size(v.dtype);
          Scratch zeros(zb);
          std::memset(zeros.data(), 0, zb);
          copy_view(first, View::dense(zeros.data(), v.dtype, first.shape));
        } else {
          Index o = off;
          o[n.dim] = edge;
          eval(n.in[0], o, first);
        }
        for (int64_t j = from + 1; j < to; ++j) copy_view(v.sub(n.dim, j - lo, 1), first);
      };
      fill(lo, std::min(hi, before), 0);
      fill(std::max(lo, before + L), hi, L - 1);
      return;
    }
    case Op::Reshape: eval_reshape(n, off, v); return;
    case Op::Cast:
    case Op::Scale: {
      const Node &c = g_.node(n.in[0]);
      const uint64_t cnt = static_cast<uint64_t>(v.shape.numel());
      Scratch tmp(cnt * storage_size(c.dtype));
      eval(n.in[0], off, View::dense(tmp.data(), c.dtype, v.shape));
      const bool dense = v.is_dense();
      Scratch out(dense ? 0 : cnt * storage_size(n.dtype));
      char *dst = dense ? v.ptr : out.data();
      if (n.op == Op::Cast) {
        convert_dense(c.dtype, tmp.data(), n.dtype, dst, cnt, k_, fp8_mode_);
      } else {
        Scratch f(cnt * sizeof(float));
        convert_dense(c.dtype, tmp.data(), CKH_DT_F32, f.as<float>(), cnt, k_, fp8_mode_);
        k_->scale_f32(f.as<float>(), f.as<float>(), cnt, static_cast<float>(n.factor));
        convert_dense(CKH_DT_F32, f.as<float>(), n.dtype, dst, cnt, k_, fp8_mode_);
      }
      if (!dense) copy_view(v, View::dense(out.data(), n.dtype, v.shape));
      return;
    }
    case Op::Quantize: eval_quantize(n, off, v); return;
  }
}

void Evaluator::eval_reshape(const Node &n, const Index &off, const View &v) const {
  const Node &c = g_.node(n.in[0]);
  const size_t es = storage_size(n.dtype);
  if (!v.is_dense()) {
    Scratch tmp(static_cast<size_t>(v.shape.numel()) * es);
    View d = View::dense(tmp.data(), n.dtype, v.shape);
    eval_reshape(n, off, d);
    copy_view(v, d);
    return;
  }
  if (!flat_contiguous(n.shape, off, v.shape)) {
    // Split over the leading dims until each sub-box is one row-major run.
    int k = -1;
    for (int i = static_cast<int>(n.shape.ndim) - 1; i >= 0; --i)
      if (v.shape.d[static_cast<size_t>(i)] != n.shape.d[static_cast<size_t>(i)]) {
        k = i;
        break;
      }
    const uint32_t upto = static_cast<uint32_t>(k);  // dims [0, k) iterated one index at a time
    for_each_prefix(v.shape, upto, [&](const Index &idx) {
      Index o = off;
      View sv = v;
      for (uint32_t i = 0; i < upto; ++i) {
        o[i] += idx[i];
        sv.ptr += idx[i] * v.stride[i] * static_cast<int64_t>(es);
        sv.shape.d[i] = 1;
      }
      eval_reshape(n, o, sv);
    });
    return;
  }
  if (g_.node(n.in[0]).shape.ndim == 0) {  // scalar child: one element
    eval(n.in[0], Index{}, View::dense(v.ptr, c.dtype, c.shape));
    return;
  }
  // One flat run [a, a + cnt) in row-major order; cover it with row-major boxes of the child's shape.
  const Index rm = row_major(n.shape);
  int64_t a = 0;
  for (uint32_t i = 0; i < n.shape.ndim; ++i) a += off[i] * rm[i];
  cover_run(c.shape, row_major(c.shape), a, a + v.shape.numel(), [&](const Index &idx, const Shape &box, int64_t pos) {
    eval(n.in[0], idx, View::dense(v.ptr + (pos - a) * static_cast<int64_t>(es), c.dtype, box));
    return true;
  });
}

void Evaluator::eval_source(const Node &n, const Index &off, const View &v) const {
  const Source &s = g_.sources[static_cast<size_t>(n.source)];
  const uint32_t nd = s.shape.ndim;
  if (s.generated) {
    generate(s, off, v);
    return;
  }
  for (const Piece &p : s.pieces) {
    Index lo{}, hi{};
    bool empty = false;
    for (uint32_t i = 0; i < nd; ++i) {
      lo[i] = std::max(off[i], p.offset[i]);
      hi[i] = std::min(off[i] + v.shape.d[i], p.offset[i] + p.size[i]);
      if (lo[i] >= hi[i]) empty = true;
    }
    if (empty) continue;
    View sv = v;
    for (uint32_t i = 0; i < nd; ++i) sv = sv.sub(i, lo[i] - off[i], hi[i] - lo[i]);
    read_piece(s, p, lo, hi, sv);
  }
}

void Evaluator::read_piece(const Source &s, const Piece &p, const Index &lo, const Index &hi, const View &v) const {
  const uint32_t nd = s.shape.ndim;
  const int64_t es = static_cast<int64_t>(storage_size(s.dtype));
  // Byte span covered by the box inside the piece.
  int64_t first = 0, last = 0;
  for (uint32_t i = 0; i < nd; ++i) {
    first += (lo[i] - p.offset[i]) * p.stride[i];
    last += (hi[i] - 1 - p.offset[i]) * p.stride[i];
  }
  const uint64_t span = static_cast<uint64_t>((last - first + 1) * es);
  const uint64_t fofs = p.byte_offset + static_cast<uint64_t>(first * es);
  const int fd = fds_[p.file];
  const std::string &path = g_.files[p.file];
  const Shape box = box_of(lo, hi, nd);
  const uint64_t bytes = static_cast<uint64_t>(box.numel() * es);
  if (span == bytes && v.is_dense()) {
    // Contiguous on disk with row-major strides (span equals size only then) and dense in memory.
    Shape ps;
    ps.ndim = nd;
    for (uint32_t i = 0; i < nd; ++i) ps.d[i] = p.size[i];
    bool rm = true;
    Index prm = row_major(ps);
    for (uint32_t i = 0; i < nd; ++i)
      if (box.d[i] > 1 && p.stride[i] != prm[i]) rm = false;
    if (rm) {
      pread_full(fd, v.ptr, bytes, fofs, path);
      return;
    }
  }
  if (span <= std::max<uint64_t>(kMaxStridedSpan, bytes * 2)) {
    Scratch tmp(span);
    pread_full(fd, tmp.data(), span, fofs, path);
    View src;
    src.ptr = tmp.data();
    src.dtype = s.dtype;
    src.shape = box;
    src.stride = p.stride;
    copy_view(v, src);
    return;
  }
  // Sparse strided box: split the outermost dim with extent > 1.
  for (uint32_t i = 0; i < nd; ++i) {
    if (box.d[i] > 1) {
      const int64_t mid = lo[i] + box.d[i] / 2;
      Index hi1 = hi, lo2 = lo;
      hi1[i] = mid;
      lo2[i] = mid;
      read_piece(s, p, lo, hi1, v.sub(i, 0, mid - lo[i]));
      read_piece(s, p, lo2, hi, v.sub(i, mid - lo[i], hi[i] - mid));
      return;
    }
  }
  fail(path + ": cannot read element of '" + s.name + "'", CKH_E_INTERNAL);
}

void Evaluator::generate(const Source &s, const Index &off, const View &v) const {
  const uint32_t nd = s.shape.ndim;
  const int64_t cnt = v.shape.numel();
  std::vector<float> f(static_cast<size_t>(cnt));
  const Index rm = row_major(s.shape);
  const uint64_t base = splitmix64(s.gen.seed ^ hash_name(s.name));
  // Uniform in [-1, 1) scaled: std 0.02 for weights; ones +- 0.05 for norm scales; +-0.01 for biases.
  float amp = 0.0346f, center = 0.0f;
  if (s.gen.init == CKH_INIT_ONES) {
    amp = 0.05f;
    center = 1.0f;
  } else if (s.gen.init == CKH_INIT_ZEROS) {
    amp = 0.01f;
  }
  const uint32_t last = nd ? nd - 1 : 0;
  const int64_t inner = nd ? v.shape.d[last] : 1;
  size_t w = 0;
  for_each_prefix(v.shape, last, [&](const Index &idx) {
    int64_t flat = 0;
    for (uint32_t i = 0; i < last; ++i) flat += (off[i] + idx[i]) * rm[i];
    if (nd) flat += off[last];
    for (int64_t j = 0; j < inner; ++j) {
      uint64_t r = splitmix64(base + static_cast<uint64_t>(flat + j));
      float u = static_cast<float>(r >> 40) * (1.0f / 8388608.0f) - 1.0f;  // [-1, 1)
      f[w++] = center + amp * u;
    }
  });
  if (ckh_dtype_is_float(s.dtype)) {
    std::vector<char> out(static_cast<size_t>(cnt) * storage_size(s.dtype));
    convert_dense(CKH_DT_F32, f.data(), s.dtype, out.data(), static_cast<uint64_t>(cnt), k_, CKH_FP8_SATURATE);
    copy_view(v, View::dense(out.data(), s.dtype, v.shape));
  } else {
    // Integer tensors: small non-negative values.
    std::vector<float> g(f.size());
    for (size_t i = 0; i < f.size(); ++i) g[i] = std::floor((f[i] - center + amp) * 50.0f);
    std::vector<char> out(static_cast<size_t>(cnt) * storage_size(s.dtype));
    convert_dense(CKH_DT_F32, g.data(), s.dtype, out.data(), static_cast<uint64_t>(cnt), k_, CKH_FP8_SATURATE);
    copy_view(v, View::dense(out.data(), s.dtype, v.shape));
  }
}

void Evaluator::compute_chunk(int32_t qi, int64_t chunk, std::vector<std::vector<char>> &outs) const {
  const Quant &q = g_.quants[static_cast<size_t>(qi)];
  const int64_t C = memo_->chunk_blocks[static_cast<size_t>(qi)];
  const int64_t b0 = chunk * C, b1 = std::min(q.n_blocks, b0 + C);
  // Inputs: the chunk's rows of every input, in the port's dtype.
  std::vector<std::unique_ptr<Scratch>> ins;
  std::vector<const void *> src;
  for (size_t i = 0; i < q.in.size(); ++i) {
    const QuantPort &p = q.in[i];
    const auto [r0, r1] = port_rows(p, b0, b1);
    Shape box = p.shape;
    if (box.ndim) box.d[0] = r1 - r0;
    ins.push_back(std::make_unique<Scratch>(static_cast<size_t>(box.numel()) * storage_size(p.dtype)));
    Index io{};
    io[0] = r0;
    eval(q.inputs[i], io, View::dense(ins.back()->data(), p.dtype, box));
    src.push_back(ins.back()->data());
  }
  outs.assign(q.out.size(), {});
  std::vector<void *> dst;
  for (size_t k = 0; k < q.out.size(); ++k) {
    const QuantPort &p = q.out[k];
    const auto [o0, o1] = port_rows(p, b0, b1);
    outs[k].resize(static_cast<size_t>((o1 - o0) * row_elems(p.shape)) * storage_size(p.dtype));
    dst.push_back(outs[k].data());
  }
  clear_last_error();
  ckh_status st;
  if (q.v11) {
    st = q.cls->quantize_n(q.cls, q.state, b0, b1 - b0, src.data(), dst.data());
  } else {
    const auto [r0, r1] = port_rows(q.in[0], b0, b1);
    st = q.cls->quantize(q.cls, q.state, r0, r1 - r0, static_cast<const float *>(src[0]), dst.data());
  }
  if (st != CKH_OK) {
    auto le = take_last_error();
    fail("quantizer '" + q.id + "' on " + g_.describe(q.inputs[0]) + ": " +
             (le.second.empty() ? "quantize failed" : le.second),
         st);
  }
  memo_->calls.fetch_add(1, std::memory_order_relaxed);
  memo_->blocks.fetch_add(static_cast<uint64_t>(b1 - b0), std::memory_order_relaxed);
}

void Evaluator::eval_quantize(const Node &n, const Index &off, const View &v) const {
  QuantMemo &M = *memo_;
  const int32_t qi = n.quant;
  const Quant &q = g_.quants[static_cast<size_t>(qi)];
  const QuantPort &P = q.out[n.output];
  const int64_t rpb = P.rows_per_block, C = M.chunk_blocks[static_cast<size_t>(qi)];
  const int64_t rows0 = off[0], rows1 = off[0] + v.shape.d[0];
  const int64_t b0 = rows0 / rpb, b1 = std::min(q.n_blocks, (rows1 + rpb - 1) / rpb);
  const size_t es = storage_size(n.dtype);
  const int64_t inner = row_elems(v.shape);
  for (int64_t c = b0 / C; c * C < b1; ++c) {
    const uint64_t key = QuantMemo::key(qi, c);
    std::shared_ptr<QuantChunk> e;
    bool mine = false;
    {
      std::unique_lock<std::mutex> lk(M.m);
      while (true) {
        auto it = M.map.find(key);
        if (it == M.map.end()) break;
        if (it->second->ready && !it->second->outs[n.output].empty()) {
          e = it->second;
          ++e->readers;
          break;
        }
        if (it->second->ready) {  // this output was delivered already: replace the entry, compute again
          it->second->in_map = false;
          M.bytes -= it->second->bytes;
          M.map.erase(it);
          break;
        }
        M.cv.wait(lk);
      }
      if (!e) {
        e = std::make_shared<QuantChunk>();
        e->readers = 1;
        M.map.emplace(key, e);
        M.order.push_back(key);
        mine = true;
      }
    }
    if (mine) {
      std::vector<std::vector<char>> outs;
      try {
        compute_chunk(qi, c, outs);
      } catch (...) {
        std::lock_guard<std::mutex> lk(M.m);
        auto it = M.map.find(key);
        if (it != M.map.end() && it->second == e) M.map.erase(it);
        M.cv.notify_all();
        throw;
      }
      std::lock_guard<std::mutex> lk(M.m);
      const int64_t cb0 = c * C, cb1 = std::min(q.n_blocks, cb0 + C);
      if (!M.computed.insert(key).second) M.recomputed.fetch_add(static_cast<uint64_t>(cb1 - cb0));
      e->outs = std::move(outs);
      e->remaining.assign(q.out.size(), 0);
      for (size_t k = 0; k < q.out.size(); ++k) {
        if (!M.used[static_cast<size_t>(qi)][k] && k != n.output) {
          std::vector<char>().swap(e->outs[k]);
          continue;
        }
        const auto [o0, o1] = port_rows(q.out[k], cb0, cb1);
        e->remaining[k] = (o1 - o0) * row_elems(q.out[k].shape);
        e->bytes += e->outs[k].size();
      }
      e->ready = true;
      if (e->in_map) {
        M.bytes += e->bytes;
        // Over budget: forget the oldest chunks (they are computed again if asked for).
        while (M.bytes > M.cap && !M.order.empty()) {
          const uint64_t old = M.order.front();
          M.order.pop_front();
          auto it = M.map.find(old);
          if (it == M.map.end() || !it->second->ready || it->second == e) continue;
          it->second->in_map = false;
          M.bytes -= it->second->bytes;
          M.map.erase(it);
        }
      }
      M.cv.notify_all();
    }
    // Copy this chunk's part of the requested rows.
    const int64_t cb0 = c * C, cb1 = std::min(q.n_blocks, cb0 + C);
    const auto [o0, o1] = port_rows(P, cb0, cb1);
    const int64_t a = std::max(rows0, o0), z = std::min(rows1, o1);
    if (a < z) {
      Shape full = P.shape;
      full.d[0] = o1 - o0;
      View src = View::dense(e->outs[n.output].data(), n.dtype, full);
      src.ptr += (a - o0) * src.stride[0] * static_cast<int64_t>(es);
      for (uint32_t i = 1; i < n.shape.ndim; ++i) src.ptr += off[i] * src.stride[i] * static_cast<int64_t>(es);
      src.shape = v.shape;
      src.shape.d[0] = z - a;
      copy_view(v.sub(0, a - rows0, z - a), src);
    }
    // Account for the delivery; free what every reader has had.
    std::lock_guard<std::mutex> lk(M.m);
    e->remaining[n.output] -= (z - a) * inner;
    if (--e->readers == 0)
      for (size_t k = 0; k < q.out.size(); ++k)
        if (e->remaining[k] <= 0 && !e->outs[k].empty()) {
          const uint64_t b = e->outs[k].size();
          std::vector<char>().swap(e->outs[k]);
          e->bytes -= b;
          if (e->in_map) M.bytes -= b;
        }
    bool done = e->readers == 0;
    for (size_t k = 0; k < q.out.size(); ++k) done = done && e->outs[k].empty();
    if (done && e->in_map) {
      auto it = M.map.find(key);
      if (it != M.map.end() && it->second == e) M.map.erase(it);
      e->in_map = false;
    }
  }
}

std::optional<FileRange> Evaluator::direct_range(int32_t e, const Index &off, const Shape &box) const {
  const Node &n = g_.node(e);
  switch (n.op) {
    case Op::Slice: {
      Index o = off;
      o[n.dim] += n.start;
      return direct_range(n.in[0], o, box);
    }
    case Op::Reshape: {
      if (!flat_contiguous(n.shape, off, box)) return std::nullopt;
      const Node &c = g_.node(n.in[0]);
      if (c.shape.ndim == 0) return std::nullopt;
      const Index rm = row_major(n.shape);
      int64_t a = 0;
      for (uint32_t i = 0; i < n.shape.ndim; ++i) a += off[i] * rm[i];
      // Map the flat run onto the child: it must again be a single row-major box there.
      std::optional<std::pair<Index, Shape>> one;
      const bool single = cover_run(c.shape, row_major(c.shape), a, a + box.numel(),
                                    [&](const Index &idx, const Shape &cb, int64_t) {
                                      if (one) return false;
                                      one.emplace(idx, cb);
                                      return true;
                                    });
      if (!single || !one) return std::nullopt;
      return direct_range(n.in[0], one->first, one->second);
    }
    case Op::Source: {
      const Source &s = g_.sources[static_cast<size_t>(n.source)];
      if (s.generated) return std::nullopt;
      const uint32_t nd = s.shape.ndim;
      Index prm{};
      const Piece *p = row_major_piece(s, off, box, prm);
      if (!p) return std::nullopt;
      Shape ps;
      ps.ndim = nd;
      for (uint32_t i = 0; i < nd; ++i) ps.d[i] = p->size[i];
      Index lo{};
      for (uint32_t i = 0; i < nd; ++i) lo[i] = off[i] - p->offset[i];
      if (!flat_contiguous(ps, lo, box)) return std::nullopt;
      int64_t first = 0;
      for (uint32_t i = 0; i < nd; ++i) first += lo[i] * prm[i];
      const uint64_t es = storage_size(s.dtype);
      return FileRange{p->file, p->byte_offset + static_cast<uint64_t>(first) * es, static_cast<uint64_t>(box.numel()) * es};
    }
    default: return std::nullopt;
  }
}

}  // namespace ckh::host

namespace ckh::host {

namespace {

// Appends r to out, merging with the previous range when they are adjacent in the same file.
bool add_range(std::vector<FileRange> &out, const FileRange &r, size_t max_ranges) {
  if (r.length == 0) return true;
  if (!out.empty() && out.back().file == r.file && out.back().offset + out.back().length == r.offset) {
    out.back().length += r.length;
    return true;
  }
  if (out.size() >= max_ranges) return false;
  out.push_back(r);
  return true;
}

}  // namespace

bool Evaluator::gather(int32_t e, const Index &off, const Shape &box, std::vector<FileRange> &out,
                       size_t max_ranges) const {
  const Node &n = g_.node(e);
  const uint32_t nd = n.shape.ndim;
  if (box.numel() == 0) return true;
  switch (n.op) {
    case Op::Source: {
      const Source &s = g_.sources[static_cast<size_t>(n.source)];
      if (s.generated) return false;
      Index prm{};
      const Piece *pc = row_major_piece(s, off, box, prm);
      if (!pc) return false;  // spans pieces or strided: left to the evaluator
      Shape ps;
      ps.ndim = nd;
      for (uint32_t i = 0; i < nd; ++i) ps.d[i] = pc->size[i];
      const uint64_t es = storage_size(s.dtype);
      // Runs: the longest row-major suffix of the box that is contiguous in the piece.
      int k = static_cast<int>(nd) - 1;
      while (k > 0 && box.d[static_cast<size_t>(k)] == ps.d[static_cast<size_t>(k)]) --k;
      const uint32_t upto = k < 0 ? 0 : static_cast<uint32_t>(k);
      int64_t run = 1;
      for (uint32_t i = upto; i < nd; ++i) run *= box.d[i];
      bool ok = true;
      for_each_prefix(box, upto, [&](const Index &idx) {
        if (!ok) return;
        int64_t first = 0;
        for (uint32_t i = 0; i < nd; ++i) first += (off[i] - pc->offset[i] + (i < upto ? idx[i] : 0)) * prm[i];
        ok = add_range(out, FileRange{pc->file, pc->byte_offset + static_cast<uint64_t>(first) * es,
                                      static_cast<uint64_t>(run) * es},
                       max_ranges);
      });
      return ok;
    }
    case Op::Slice: {
      Index o = off;
      o[n.dim] += n.start;
      return gather(n.in[0], o, box, out, max_ranges);
    }
    case Op::Concat: {
      // Row-major output order: for every index of the dims before the concat dim, the parts in turn.
      const uint32_t c = n.dim;
      bool ok = true;
      Shape outer = box;
      for_each_prefix(outer, c, [&](const Index &idx) {
        if (!ok) return;
        Index o = off;
        Shape b = box;
        for (uint32_t i = 0; i < c; ++i) {
          o[i] += idx[i];
          b.d[i] = 1;
        }
        const int64_t lo = off[c], hi = off[c] + box.d[c];
        int64_t base = 0;
        for (int32_t part : n.in) {
          const int64_t len = g_.node(part).shape.d[c];
          const int64_t a = std::max(lo, base), z = std::min(hi, base + len);
          if (a < z && ok) {
            Index po = o;
            po[c] = a - base;
            Shape pb = b;
            pb.d[c] = z - a;
            ok = gather(part, po, pb, out, max_ranges);
          }
          base += len;
        }
      });
      return ok;
    }
    case Op::Reshape: {
      const Node &ch = g_.node(n.in[0]);
      if (ch.shape.ndim == 0) return gather(n.in[0], Index{}, ch.shape, out, max_ranges);
      // Split the box into row-major runs, then cover each run with row-major boxes of the child.
      int k = -1;
      for (int i = static_cast<int>(nd) - 1; i >= 0; --i)
        if (box.d[static_cast<size_t>(i)] != n.shape.d[static_cast<size_t>(i)]) {
          k = i;
          break;
        }
      const uint32_t upto = k < 0 ? 0 : static_cast<uint32_t>(k);
      const Index rm = row_major(n.shape), crm = row_major(ch.shape);
      int64_t run = 1;
      for (uint32_t i = upto; i < nd; ++i) run *= box.d[i];
      bool ok = true;
      for_each_prefix(box, upto, [&](const Index &idx) {
        if (!ok) return;
        int64_t pos = 0;
        for (uint32_t i = 0; i < nd; ++i) pos += (off[i] + (i < upto ? idx[i] : 0)) * rm[i];
        ok = cover_run(ch.shape, crm, pos, pos + run, [&](const Index &ci, const Shape &cb, int64_t) {
          return gather(n.in[0], ci, cb, out, max_ranges);
        });
      });
      return ok;
    }
    default: return false;
  }
}

}  // namespace ckh::host
