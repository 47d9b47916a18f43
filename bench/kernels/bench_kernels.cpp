// ckh-bench-kernels [MiB=64] [reps=5] [offset=16] — throughput of every kernel of every ISA this CPU runs, on
// buffers beyond the last-level cache (the f32 side of each call is MiB large), next to memcpy of the
// same number of bytes in the same process.
//   GB/s  = (bytes read + bytes written) / best time of `reps` calls (after one warm-up call)
//   ratio = kernel GB/s / memcpy GB/s, memcpy copying half that many bytes (read + write alike)
// Buffers start `offset` bytes past a page boundary: 16 is what malloc returns for large blocks (and
// what the host's buffers get); 0 gives 64-byte-aligned buffers.
// A ratio near 1 means the kernel runs at memory speed; the CPU is shared, so expect some noise.
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <ckhost/kernels/kernels.hpp>

#include "fp8_block.hpp"

namespace {

double best_seconds(const std::function<void()> &f, int reps) {
  f();  // warm up: page faults, frequency
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = s < best ? s : best;
  }
  return best;
}

// n elements starting `offset` bytes past a 4096-byte boundary, pages faulted in.
size_t g_offset = 16;
template <class T>
struct Buf {
  std::vector<unsigned char> raw;
  T *p;
  Buf(size_t n, unsigned char byte) : raw(n * sizeof(T) + 8192) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(raw.data());
    p = reinterpret_cast<T *>(raw.data() + ((4096 - a % 4096) % 4096) + g_offset);
    std::memset(p, byte, n * sizeof(T));
  }
  T *data() { return p; }
  T &operator[](size_t i) { return p[i]; }
};

}  // namespace

int main(int argc, char **argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  const int reps = argc > 2 ? std::atoi(argv[2]) : 5;
  if (argc > 3) g_offset = std::strtoul(argv[3], nullptr, 10) % 4096;
  if (mib == 0 || reps <= 0) {
    std::fprintf(stderr, "usage: ckh-bench-kernels [MiB=64] [reps=5] [offset=16]\n");
    return 2;
  }
  const size_t n = mib * (size_t{1} << 20) / 4;  // f32 elements per call
  Buf<float> f(n, 0), g(n, 0), out(n, 0);
  Buf<uint16_t> h(n, 0), h2(n, 0);
  Buf<uint8_t> b(n, 0), b2(n, 0);
  Buf<int8_t> i8(n, 0);
  Buf<char> msrc(n * 8, 1), mdst(n * 8, 0);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  for (size_t i = 0; i < n; ++i) {
    f[i] = nd(rng);
    g[i] = f[i] + 1e-3f * nd(rng);
  }
  // Realistic inputs for the decoders: the encodings of f.
  const ckh_kernels_t *s = ckh::kernels::for_isa("scalar");
  s->f32_to_bf16(f.data(), h.data(), n);
  s->f32_to_e4m3(f.data(), b.data(), n, CKH_FP8_SATURATE);
  volatile double sink = 0;
  // Block FP8 (DeepSeek-V3 / transformers finegrained FP8): E4M3 codes of rows 7168 wide, one f32 scale
  // per 128x128 block, dequantized to bf16 by the fp8-block quantizer's row routine (3 bytes per element).
  const int64_t cols = 7168, nrows = static_cast<int64_t>(n) / cols;
  const int64_t scols = (cols + 127) / 128;
  std::vector<float> scales(static_cast<size_t>(((nrows + 127) / 128) * scols));
  for (auto &x : scales) x = std::abs(nd(rng)) * 1e-3f + 1e-4f;
  const ckh::fp8::Block blk{128, 128};

  struct Row {
    const char *name;
    size_t bytes_per_elem;  // read + written
    std::function<void(const ckh_kernels_t *)> run;
  };
  const std::vector<Row> rows = {
      {"bf16_to_f32", 6, [&](const ckh_kernels_t *k) { k->bf16_to_f32(h.data(), out.data(), n); }},
      {"f16_to_f32", 6, [&](const ckh_kernels_t *k) { k->f16_to_f32(h.data(), out.data(), n); }},
      {"e4m3_to_f32", 5, [&](const ckh_kernels_t *k) { k->e4m3_to_f32(b.data(), out.data(), n); }},
      {"e5m2_to_f32", 5, [&](const ckh_kernels_t *k) { k->e5m2_to_f32(b.data(), out.data(), n); }},
      {"f32_to_bf16", 6, [&](const ckh_kernels_t *k) { k->f32_to_bf16(f.data(), h2.data(), n); }},
      {"f32_to_f16", 6, [&](const ckh_kernels_t *k) { k->f32_to_f16(f.data(), h2.data(), n); }},
      {"f32_to_e4m3", 5, [&](const ckh_kernels_t *k) { k->f32_to_e4m3(f.data(), b2.data(), n, CKH_FP8_NONSAT); }},
      {"f32_to_e5m2", 5, [&](const ckh_kernels_t *k) { k->f32_to_e5m2(f.data(), b2.data(), n, CKH_FP8_NONSAT); }},
      {"f32_to_e4m3_scaled", 5,
       [&](const ckh_kernels_t *k) { k->f32_to_e4m3_scaled(f.data(), b2.data(), n, 100.0f, CKH_FP8_SATURATE); }},
      {"f32_to_e5m2_scaled", 5,
       [&](const ckh_kernels_t *k) { k->f32_to_e5m2_scaled(f.data(), b2.data(), n, 100.0f, CKH_FP8_SATURATE); }},
      {"f32_to_i8_scaled", 5, [&](const ckh_kernels_t *k) { k->f32_to_i8_scaled(f.data(), i8.data(), n, 40.0f); }},
      {"scale_f32", 8, [&](const ckh_kernels_t *k) { k->scale_f32(f.data(), out.data(), n, 0.5f); }},
      {"absmax_f32", 4, [&](const ckh_kernels_t *k) { sink = sink + k->absmax_f32(f.data(), n); }},
      {"sumsq_f32", 4, [&](const ckh_kernels_t *k) { sink = sink + k->sumsq_f32(f.data(), n); }},
      {"maxabsdiff_f32", 8, [&](const ckh_kernels_t *k) { sink = sink + k->maxabsdiff_f32(f.data(), g.data(), n); }},
      {"sumsqdiff_f32", 8, [&](const ckh_kernels_t *k) { sink = sink + k->sumsqdiff_f32(f.data(), g.data(), n); }},
      {"fp8_block_to_bf16", 3,
       [&](const ckh_kernels_t *k) {
         ckh::fp8::dequantize_rows(k, b.data(), CKH_DT_F8_E4M3FN, scales.data(), CKH_DT_F32, scols, nrows, cols, blk,
                                          h2.data(), CKH_DT_BF16);
       }},
  };

  const auto isas = ckh::kernels::available_isas();
  std::printf("ckh-bench-kernels: %zu MiB of f32 per call (%zu elements), best of %d, buffers at 4096*k + %zu; "
              "best() = %s\n", mib, n, reps, g_offset, ckh::kernels::best()->isa);
  std::printf("GB/s = (bytes read + written) / time; (x.xx) = ratio to memcpy of the same bytes\n\n");
  std::printf("%-19s %4s %7s", "kernel", "B/el", "memcpy");
  for (const auto &isa : isas) std::printf(" %15s", isa.c_str());
  std::printf("\n");
  std::map<size_t, double> memcpy_gbs;  // by bytes per element
  for (const auto &row : rows) {
    const size_t bytes = row.bytes_per_elem * n;
    if (!memcpy_gbs.count(row.bytes_per_elem)) {
      const double t = best_seconds([&] { std::memcpy(mdst.data(), msrc.data(), bytes / 2); }, reps);
      memcpy_gbs[row.bytes_per_elem] = bytes / t / 1e9;
    }
    const double m = memcpy_gbs[row.bytes_per_elem];
    std::printf("%-19s %4zu %7.1f", row.name, row.bytes_per_elem, m);
    for (const auto &isa : isas) {
      const ckh_kernels_t *k = ckh::kernels::for_isa(isa);
      const double gbs = bytes / best_seconds([&] { row.run(k); }, reps) / 1e9;
      std::printf("    %5.1f (%4.2f)", gbs, gbs / m);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return sink == 12345.678 ? 1 : 0;
}
