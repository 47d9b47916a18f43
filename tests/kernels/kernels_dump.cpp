// ckh-kernels-dump [isa] — writes one table's conversions (default: best()) to stdout as raw
// little-endian arrays, for torch_crosscheck.py:
//   "CKHK", u32 M (number of f32 inputs), isa name padded to 16 bytes,
//   f32[65536] bf16 decode of every pattern, f32[65536] f16 decode,
//   f32[256] e4m3 decode, f32[256] e5m2 decode,
//   f32[M] inputs, u16[M] f32_to_bf16, u16[M] f32_to_f16,
//   u8[M] e4m3 nonsat, u8[M] e4m3 sat, u8[M] e5m2 nonsat, u8[M] e5m2 sat.
// Inputs: random bit patterns (NaN included), random values across the fp8 ranges, every midpoint
// between neighbouring fp8 values of both formats with its f32 neighbours, and specials.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <ckhost/kernels/kernels.hpp>

namespace {
template <class T>
void put(const std::vector<T> &v) {
  std::fwrite(v.data(), sizeof(T), v.size(), stdout);
}
}  // namespace

int main(int argc, char **argv) {
  const ckh_kernels_t *k = argc > 1 ? ckh::kernels::for_isa(argv[1]) : ckh::kernels::best();
  if (!k) {
    std::fprintf(stderr, "ckh-kernels-dump: ISA %s not available\n", argv[1]);
    return 2;
  }
  std::vector<float> in;
  std::mt19937 rng(5);
  for (int i = 0; i < (1 << 19); ++i) {
    const uint32_t u = static_cast<uint32_t>(rng());
    float f;
    std::memcpy(&f, &u, 4);
    in.push_back(f);
  }
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int e = -24; e <= 17; ++e)
    for (int i = 0; i < 8192; ++i) in.push_back(std::ldexp(nd(rng), e));
  // Midpoints between neighbouring codes of both formats (and the overflow midpoints), +-1 ulp.
  std::vector<float> dec(256);
  for (int fmt = 0; fmt < 2; ++fmt) {
    std::vector<uint8_t> codes(256);
    for (int c = 0; c < 256; ++c) codes[c] = static_cast<uint8_t>(c);
    if (fmt == 0) k->e4m3_to_f32(codes.data(), dec.data(), 256);
    else k->e5m2_to_f32(codes.data(), dec.data(), 256);
    const int maxc = fmt == 0 ? 0x7E : 0x7B;
    const float beyond = fmt == 0 ? 480.0f : 65536.0f;
    for (int c = 0; c <= maxc; ++c) {
      const float next = c == maxc ? beyond : dec[c + 1];
      const float mid = (dec[c] + next) / 2;  // exact: few significant bits
      for (float s : {1.0f, -1.0f})
        for (float v : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e30f), dec[c]}) in.push_back(s * v);
    }
  }
  const float inf = INFINITY;
  for (float v : {0.0f, -0.0f, inf, -inf, 1e-45f, -1e-45f, 3.4e38f, -3.4e38f, 65504.0f, 65520.0f}) in.push_back(v);

  const uint32_t m = static_cast<uint32_t>(in.size());
  char head[24] = "CKHK";
  std::memcpy(head + 4, &m, 4);
  std::strncpy(head + 8, k->isa, 15);
  std::fwrite(head, 1, 24, stdout);

  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> f(65536);
  k->bf16_to_f32(all.data(), f.data(), all.size());
  put(f);
  k->f16_to_f32(all.data(), f.data(), all.size());
  put(f);
  std::vector<uint8_t> codes(256);
  for (int c = 0; c < 256; ++c) codes[c] = static_cast<uint8_t>(c);
  k->e4m3_to_f32(codes.data(), dec.data(), 256);
  put(dec);
  k->e5m2_to_f32(codes.data(), dec.data(), 256);
  put(dec);
  put(in);
  std::vector<uint16_t> o16(m);
  k->f32_to_bf16(in.data(), o16.data(), m);
  put(o16);
  k->f32_to_f16(in.data(), o16.data(), m);
  put(o16);
  std::vector<uint8_t> o8(m);
  for (int fmt = 0; fmt < 2; ++fmt)
    for (int32_t mode : {CKH_FP8_NONSAT, CKH_FP8_SATURATE}) {
      if (fmt == 0) k->f32_to_e4m3(in.data(), o8.data(), m, mode);
      else k->f32_to_e5m2(in.data(), o8.data(), m, mode);
      put(o8);
    }
  return std::fflush(stdout) == 0 ? 0 : 1;
}
