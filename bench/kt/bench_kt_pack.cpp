// bench_kt_pack.cpp — GB/s of the AMX packing (the kt-amx writer's tile layout: the reshape / permute / concat
// expression of plugins/format-kt-amx/kt_layout.hpp over int8 codes, evaluated by the host's evaluator as the
// executor does, in 1 MiB pieces of the output) against memcpy of the same bytes, on one thread.
//   ckh-bench-kt-pack [repeats]
// Shapes: the parts of DeepSeek-V3's experts at threadpool count 2 (gate/up: n 1024 x k 7168; down: n 7168 x k 1024),
// INT8 (k bytes per row) and INT4 (k/2). The codes come from a file in the page cache, so every evaluation reads
// them (pread) and lays them out; "read" is the same evaluation without the layout (the codes as they are), so
// packing = packed - read is the cost of the tile layout itself.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <ckhost/kernels/kernels.hpp>

#include "ckhost/host/eval.hpp"
#include "ckhost/host/graph.hpp"
#include "kt_layout.hpp"

using namespace ckh::host;

namespace {

Shape shape_of(std::initializer_list<int64_t> v) {
  Shape s;
  s.ndim = static_cast<uint32_t>(v.size());
  uint32_t i = 0;
  for (int64_t x : v) s.d[i++] = x;
  return s;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// The writer's expression over a [n, kb] I8 node (plugins/format-kt-amx/plugin.cpp, Writer::part).
int32_t tiles(Graph &g, int32_t codes, int64_t n, int64_t kb, int bits) {
  std::vector<int32_t> rows;
  for (const auto &grp : ckh::kt::pieces(n, kb, bits)) {
    std::vector<int32_t> cols;
    for (const auto &p : grp) {
      int32_t x = g.slice(g.slice(codes, 0, p.r0, p.count * p.nbs), 1, p.c0, p.width);
      Shape s;
      s.ndim = static_cast<uint32_t>(p.in_shape.size());
      for (uint32_t i = 0; i < s.ndim; ++i) s.d[i] = p.in_shape[i];
      x = g.permute(g.reshape(x, s), p.perm);
      cols.push_back(g.reshape(x, shape_of({p.count, p.nbs * p.width})));
    }
    int32_t r = cols.size() == 1 ? cols[0] : g.concat(cols, 1);
    rows.push_back(g.reshape(r, shape_of({g.node(r).shape.d[0] * g.node(r).shape.d[1]})));
  }
  return rows.size() == 1 ? rows[0] : g.concat(rows, 0);
}

}  // namespace

int main(int argc, char **argv) {
  const int repeats = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const ckh_kernels_t *k = ckh::kernels::best();
  struct Case {
    const char *what;
    int64_t n, k;
    int bits;
  } cases[] = {{"INT8 gate/up 1024 x 7168", 1024, 7168, 8}, {"INT8 down 7168 x 1024", 7168, 1024, 8},
               {"INT4 gate/up 1024 x 7168", 1024, 7168, 4}, {"INT4 down 7168 x 1024", 7168, 1024, 4}};
  double worst = 1e9;
  std::printf("%-26s %10s %10s %10s %10s %8s\n", "case", "memcpy", "read", "packed", "packing", "vs memcpy");
  for (const Case &c : cases) {
    const int64_t kb = c.bits == 8 ? c.k : c.k / 2, bytes = c.n * kb;
    std::vector<char> data(static_cast<size_t>(bytes));
    std::mt19937 rng(1);
    for (auto &x : data) x = static_cast<char>(rng());
    char tmpl[] = "/tmp/ckh_kt_pack_XXXXXX";
    const int fd = ::mkstemp(tmpl);
    if (fd < 0 || ::write(fd, data.data(), data.size()) != static_cast<ssize_t>(data.size())) return 1;
    ::unlink(tmpl);
    Graph g;
    Source src;
    src.name = "codes";
    src.dtype = CKH_DT_I8;
    src.shape = shape_of({c.n, kb});
    Piece pc;
    pc.file = 0;
    pc.byte_offset = 0;
    pc.size[0] = c.n;
    pc.size[1] = kb;
    pc.stride[0] = kb;
    pc.stride[1] = 1;
    src.pieces.push_back(pc);
    g.sources.push_back(src);
    const int32_t codes = g.source_node(0);
    const int32_t flat = g.reshape(codes, shape_of({bytes}));
    const int32_t packed = tiles(g, codes, c.n, kb, c.bits);
    std::vector<int> fds{fd};
    Evaluator ev(g, fds, k);
    std::vector<char> out(static_cast<size_t>(bytes)), out2(static_cast<size_t>(bytes));
    const int64_t chunk = 1 << 20;
    auto run = [&](int32_t node) {
      for (int64_t at = 0; at < bytes; at += chunk) {
        const int64_t len = std::min(chunk, bytes - at);
        Index off{};
        off[0] = at;
        ev.eval(node, off, View::dense(out.data() + at, CKH_DT_I8, shape_of({len})));
      }
    };
    auto best = [&](auto &&f) {
      double b = 1e9;
      for (int r = 0; r < repeats; ++r) {
        const double t0 = now();
        f();
        b = std::min(b, now() - t0);
      }
      return b;
    };
    run(packed);  // check one byte per tile row against the layout's own offsets
    for (int64_t row = 0; row < c.n; row += 37)
      for (int64_t col = 0; col < kb; col += 29)
        if (out[ckh::kt::offset_of(c.n, kb, c.bits, row, col)] != data[static_cast<size_t>(row * kb + col)]) {
          std::fprintf(stderr, "%s: byte (%lld, %lld) misplaced\n", c.what, static_cast<long long>(row), static_cast<long long>(col));
          return 1;
        }
    const double tm = best([&] { std::memcpy(out2.data(), data.data(), data.size()); });
    const double tr = best([&] { run(flat); });
    const double tp = best([&] { run(packed); });
    const double pack = std::max(tp - tr, 1e-9);
    const double gb = static_cast<double>(bytes) / 1e9;
    std::printf("%-26s %7.2f GB/s %6.2f GB/s %6.2f GB/s %6.2f GB/s %7.0f%%\n", c.what, gb / tm, gb / tr, gb / tp, gb / pack,
                100.0 * tm / pack);
    worst = std::min(worst, tm / pack);
    ::close(fd);
  }
  std::printf("packing vs memcpy, worst case: %.0f%% (issue 13 asks >= 50%%)\n", 100.0 * worst);
  return 0;
}
