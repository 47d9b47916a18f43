// Kernel throughput per ISA on 64 MiB inputs (beyond the last-level cache), next to memcpy of the same
// number of bytes (read + written) in the same process. Prints GB/s of bytes moved and the ratio.
//   build/bin/ckh-bench-kernels [MiB]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <ckhost/kernels/kernels.hpp>

namespace {

double best_seconds(const std::function<void()> &f, int reps = 5) {
  double best = 1e30;
  f();  // warm up: page faults, caches
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    f();
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = s < best ? s : best;
  }
  return best;
}

}  // namespace

int main(int argc, char **argv) {
  const size_t mib = argc > 1 ? std::strtoul(argv[1], nullptr, 10) : 64;
  const size_t n = mib * (1u << 20) / 4;  // f32 elements
  std::vector<float> f(n), g(n), out(n);
  std::vector<uint16_t> h(n), h2(n);
  std::vector<uint8_t> b(n), b2(n);
  std::vector<int8_t> i8(n);
  std::vector<char> src(n * 8), dst(n * 8);
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0, 1);
  for (size_t i = 0; i < n; ++i) {
    f[i] = nd(rng);
    g[i] = f[i] + 1e-3f;
  }
  volatile double sink = 0;

  struct Row {
    const char *name;
    size_t bytes;  // bytes read + written
    std::function<void(const ckh_kernels_t *)> run;
  };
  std::vector<Row> rows = {
      {"bf16_to_f32", n * 6, [&](const ckh_kernels_t *k) { k->bf16_to_f32(h.data(), out.data(), n); }},
      {"f32_to_bf16", n * 6, [&](const ckh_kernels_t *k) { k->f32_to_bf16(f.data(), h2.data(), n); }},
      {"f16_to_f32", n * 6, [&](const ckh_kernels_t *k) { k->f16_to_f32(h.data(), out.data(), n); }},
      {"f32_to_f16", n * 6, [&](const ckh_kernels_t *k) { k->f32_to_f16(f.data(), h2.data(), n); }},
      {"e4m3_to_f32", n * 5, [&](const ckh_kernels_t *k) { k->e4m3_to_f32(b.data(), out.data(), n); }},
      {"f32_to_e4m3", n * 5, [&](const ckh_kernels_t *k) { k->f32_to_e4m3(f.data(), b2.data(), n, CKH_FP8_SATURATE); }},
      {"e5m2_to_f32", n * 5, [&](const ckh_kernels_t *k) { k->e5m2_to_f32(b.data(), out.data(), n); }},
      {"f32_to_e5m2", n * 5, [&](const ckh_kernels_t *k) { k->f32_to_e5m2(f.data(), b2.data(), n, CKH_FP8_NONSAT); }},
      {"f32_to_e4m3_scaled", n * 5,
       [&](const ckh_kernels_t *k) { k->f32_to_e4m3_scaled(f.data(), b2.data(), n, 0.5f, CKH_FP8_SATURATE); }},
      {"f32_to_i8_scaled", n * 5, [&](const ckh_kernels_t *k) { k->f32_to_i8_scaled(f.data(), i8.data(), n, 20.0f); }},
      {"scale_f32", n * 8, [&](const ckh_kernels_t *k) { k->scale_f32(f.data(), out.data(), n, 0.5f); }},
      {"absmax_f32", n * 4, [&](const ckh_kernels_t *k) { sink = sink + k->absmax_f32(f.data(), n); }},
      {"sumsq_f32", n * 4, [&](const ckh_kernels_t *k) { sink = sink + k->sumsq_f32(f.data(), n); }},
      {"maxabsdiff_f32", n * 8, [&](const ckh_kernels_t *k) { sink = sink + k->maxabsdiff_f32(f.data(), g.data(), n); }},
  };
  // Realistic inputs for the decoders.
  ckh::kernels::best()->f32_to_bf16(f.data(), h.data(), n);
  ckh::kernels::best()->f32_to_e4m3(f.data(), b.data(), n, CKH_FP8_SATURATE);

  std::printf("kernel throughput, %zu MiB of f32 per call, best of 5; GB/s counts bytes read + written\n", mib);
  std::printf("%-20s", "kernel");
  const auto isas = ckh::kernels::available_isas();
  for (const auto &isa : isas) std::printf(" %14s", (isa + " GB/s").c_str());
  std::printf(" %14s %12s\n", "memcpy GB/s", "best/memcpy");
  for (const auto &row : rows) {
    std::printf("%-20s", row.name);
    double best = 0;
    for (const auto &isa : isas) {
      const ckh_kernels_t *k = ckh::kernels::for_isa(isa);
      const double s = best_seconds([&] { row.run(k); });
      const double gbs = row.bytes / s / 1e9;
      best = gbs > best ? gbs : best;
      std::printf(" %14.2f", gbs);
    }
    // memcpy moving the same bytes: half read, half written.
    const size_t half = row.bytes / 2;
    const double ms = best_seconds([&] { std::memcpy(dst.data(), src.data(), half); });
    const double mgbs = row.bytes / ms / 1e9;
    std::printf(" %14.2f %12.2f\n", mgbs, best / mgbs);
  }
  return sink == 12345.678 ? 1 : 0;
}
