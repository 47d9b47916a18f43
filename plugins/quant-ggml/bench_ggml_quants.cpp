// ckh-bench-ggml-quants: single-thread speed of ggmlq::quantize_row per block type, with and without an importance
// matrix, at every instruction-set level this CPU runs (0 scalar reference, 1 AVX2, 2 AVX-512F), in millions of
// weights per second; it also checks that every level wrote the same bytes as the scalar code.
//   ckh-bench-ggml-quants [rows=64] [cols=4096] [types=q4_k,q5_k,q6_k,...] [levels=012]
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ggml_blocks.hpp"

namespace {

struct Type {
  const char *name;
  ckh_dtype t;
};
const Type kTypes[] = {{"q4_k", CKH_DT_Q4_K}, {"q5_k", CKH_DT_Q5_K}, {"q6_k", CKH_DT_Q6_K}, {"q2_k", CKH_DT_Q2_K},
                       {"q3_k", CKH_DT_Q3_K}, {"q4_0", CKH_DT_Q4_0}, {"q8_0", CKH_DT_Q8_0}};

}  // namespace

int main(int argc, char **argv) {
  const int rows = argc > 1 ? std::atoi(argv[1]) : 64;
  const int cols = argc > 2 ? std::atoi(argv[2]) : 4096;
  const std::string want = argc > 3 ? argv[3] : "q4_k,q5_k,q6_k,q2_k,q3_k";
  const std::string levels = argc > 4 ? argv[4] : "012";
  if (rows < 1 || cols < 256 || cols % 256) {
    std::fprintf(stderr, "usage: %s [rows] [cols, a multiple of 256] [types]\n", argv[0]);
    return 2;
  }
  // Weights like a linear layer's: sums of uniforms (about normal), a few outliers; an importance of positive values.
  std::vector<float> x(static_cast<size_t>(rows) * cols), w(cols);
  uint32_t s = 2463534242u;
  auto uni = [&] {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return static_cast<float>(s >> 8) * (1.0f / 16777216.0f);
  };
  for (size_t i = 0; i < x.size(); ++i) {
    float v = (uni() + uni() + uni() - 1.5f) * 0.03f;
    if (i % 997 == 0) v *= 20.0f;
    x[i] = v;
  }
  for (int c = 0; c < cols; ++c) w[c] = 0.01f + uni() * uni() * 5.0f;

  const int top = ggmlq::set_simd_level(99);
  std::printf("rows %d x cols %d, single thread; levels 0..%d (0 scalar, 1 AVX2, 2 AVX-512F)\n", rows, cols, top);
  std::printf("%-6s %-9s", "type", "imatrix");
  for (int l = 0; l <= top; ++l) std::printf("   L%d Mw/s", l);
  std::printf("   speedup  same bytes\n");
  int bad = 0;
  for (const Type &ty : kTypes) {
    if (want.find(ty.name) == std::string::npos) continue;
    ckh_dtype_traits_t tr{};
    ckh_dtype_traits(ty.t, &tr);
    const size_t rb = static_cast<size_t>(cols) / tr.block_elems * tr.block_bytes;
    for (int imat = 0; imat < 2; ++imat) {
      if (ty.t == CKH_DT_Q8_0 && imat) continue;
      std::vector<uint8_t> ref(rb * rows), out(rb * rows);
      std::printf("%-6s %-9s", ty.name, imat ? "yes" : "no");
      double first = 0.0, last = 0.0;
      bool same = true;
      for (int l = 0; l <= top; ++l) {
        ggmlq::set_simd_level(l);
        std::vector<uint8_t> &dst = l == 0 ? ref : out;
        const bool timed = levels.find(static_cast<char>('0' + l)) != std::string::npos;
        double best = 1e30;
        for (int rep = 0; rep < (timed ? 3 : 1); ++rep) {
          const auto t0 = std::chrono::steady_clock::now();
          for (int r = 0; r < rows; ++r)
            ggmlq::quantize_row(ty.t, x.data() + static_cast<size_t>(r) * cols, cols, imat ? w.data() : nullptr,
                                dst.data() + r * rb);
          const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (dt < best) best = dt;
        }
        const double mws = static_cast<double>(rows) * cols / best / 1e6;
        if (l == 0) first = timed ? mws : 0.0;
        last = mws;
        if (l > 0 && std::memcmp(ref.data(), out.data(), ref.size()) != 0) same = false;
        if (timed) std::printf(" %10.1f", mws);
        else std::printf(" %10s", "-");
      }
      if (first > 0.0) std::printf("   %6.2fx", last / first);
      else std::printf("   %7s", "-");
      std::printf("  %s\n", same ? "yes" : "NO");
      if (!same) ++bad;
    }
  }
  ggmlq::set_simd_level(99);
  return bad ? 1 : 0;
}
