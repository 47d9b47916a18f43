// The block-FP8 numbers of plugins/quant-fp8 against independent references: every one of the 256 codes
// of E4M3 and E5M2 dequantized with several scale dtypes (F32, BF16, F16, E8M0) into F32 and BF16, the
// round-half-even ties of quantization, saturation, power-of-two scales, and the documented round-trip
// bound on random blocks.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <ckhost/kernels/kernels.hpp>

#include "fp8_block.hpp"

namespace {

// Independent decoders (bit formulas of the OCP FP8 formats).
double e4m3(uint8_t c) {
  const int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
  if (e == 15 && m == 7) return NAN;
  const double v = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -v : v;
}
double e5m2(uint8_t c) {
  const int s = c >> 7, e = (c >> 2) & 31, m = c & 3;
  if (e == 31) return m ? NAN : (s ? -INFINITY : INFINITY);
  const double v = e == 0 ? std::ldexp(m / 4.0, -14) : std::ldexp(1.0 + m / 4.0, e - 15);
  return s ? -v : v;
}
uint16_t bf16_rne(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return static_cast<uint16_t>((u >> 16) | 0x40);
  const uint32_t lsb = (u >> 16) & 1;
  return static_cast<uint16_t>((u + 0x7FFF + lsb) >> 16);
}
float bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

TEST(Fp8Block, DequantizesAll256CodesExactly) {
  const ckh_kernels_t *k = ckh::kernels::best();
  const ckh::fp8::Block blk{1, 16};  // one row, 16 columns per scale: 256 codes = 16 scale columns
  struct Sc {
    ckh_dtype dt;
    std::vector<uint8_t> bytes;  // 16 scale values
    std::vector<double> value;
  };
  std::vector<Sc> scales;
  {
    Sc f{CKH_DT_F32, {}, {}};
    for (int j = 0; j < 16; ++j) {
      const float v = j == 0 ? 1.0f : std::ldexp(1.0f + 0.37f * static_cast<float>(j), -j);
      f.bytes.resize(f.bytes.size() + 4);
      std::memcpy(f.bytes.data() + 4 * j, &v, 4);
      f.value.push_back(v);
    }
    scales.push_back(f);
    Sc b{CKH_DT_BF16, {}, {}}, e{CKH_DT_F8_E8M0, {}, {}};
    for (int j = 0; j < 16; ++j) {
      const uint16_t h = static_cast<uint16_t>(0x3C00 + 37 * j);  // bf16 bit patterns around 2^-7
      b.bytes.push_back(static_cast<uint8_t>(h & 0xFF));
      b.bytes.push_back(static_cast<uint8_t>(h >> 8));
      b.value.push_back(bits(static_cast<uint32_t>(h) << 16));
      const uint8_t x = static_cast<uint8_t>(120 + j);  // 2^(x - 127)
      e.bytes.push_back(x);
      e.value.push_back(std::ldexp(1.0, x - 127));
    }
    scales.push_back(b);
    scales.push_back(e);
  }
  for (ckh_dtype cdt : {CKH_DT_F8_E4M3FN, CKH_DT_F8_E5M2}) {
    std::vector<uint8_t> codes(256);
    for (int c = 0; c < 256; ++c) codes[static_cast<size_t>(c)] = static_cast<uint8_t>(c);
    for (const Sc &sc : scales) {
      std::vector<float> out(256);
      std::vector<uint16_t> outb(256);
      ckh::fp8::dequantize_rows(k, codes.data(), cdt, sc.bytes.data(), sc.dt, 16, 1, 256, blk, out.data(), CKH_DT_F32);
      ckh::fp8::dequantize_rows(k, codes.data(), cdt, sc.bytes.data(), sc.dt, 16, 1, 256, blk, outb.data(), CKH_DT_BF16);
      for (int c = 0; c < 256; ++c) {
        const double v = cdt == CKH_DT_F8_E4M3FN ? e4m3(static_cast<uint8_t>(c)) : e5m2(static_cast<uint8_t>(c));
        // The product of two floats is exact in double; one rounding to f32 is the f32 product.
        const float want = static_cast<float>(v * sc.value[static_cast<size_t>(c / 16)]);
        if (std::isnan(want)) {
          EXPECT_TRUE(std::isnan(out[static_cast<size_t>(c)])) << c;
          continue;
        }
        EXPECT_EQ(out[static_cast<size_t>(c)], want) << "code " << c << " scale dtype " << sc.dt;
        EXPECT_EQ(outb[static_cast<size_t>(c)], bf16_rne(want)) << "code " << c;
      }
    }
  }
}

TEST(Fp8Block, QuantizeTiesSaturationAndPow2) {
  const ckh_kernels_t *k = ckh::kernels::best();
  const ckh::fp8::Block blk{1, 8};
  ckh::fp8::QuantParams p;
  // 448 makes the scale exactly 1; the others are halfway between E4M3 neighbours: ties go to the even code.
  const float x[8] = {448.0f, 1.0625f, 1.1875f, -1.0625f, 0.0f, 3.0f / 1024, 5.0f / 1024, 240.0f};
  uint8_t c[8];
  float s = 0;
  ckh::fp8::quantize_rows(k, x, 1, 8, blk, p, c, &s);
  EXPECT_EQ(s, 1.0f);
  EXPECT_EQ(c[0], 0x7E);  // 448
  EXPECT_EQ(c[1], 0x38);  // 1.0625 -> 1.0 (even)
  EXPECT_EQ(c[2], 0x3A);  // 1.1875 -> 1.25 (even)
  EXPECT_EQ(c[3], 0xB8);  // -1.0625 -> -1.0
  EXPECT_EQ(c[4], 0x00);
  EXPECT_EQ(c[5], 0x02);  // 3 * 2^-10 = 1.5 subnormal steps of 2^-9: the tie goes to 2 (even)
  EXPECT_EQ(c[6], 0x02);  // 5 * 2^-10 -> 2 * 2^-9 (tie to even)
  EXPECT_EQ(c[7], 0x77);  // 240
  // An all-zero block: scale 1 and zero codes; a NaN is refused.
  const float z[8] = {};
  ckh::fp8::quantize_rows(k, z, 1, 8, blk, p, c, &s);
  EXPECT_EQ(s, 1.0f);
  for (uint8_t v : c) EXPECT_EQ(v, 0);
  float bad[8] = {1, 2, NAN, 4, 5, 6, 7, 8};
  EXPECT_THROW(ckh::fp8::quantize_rows(k, bad, 1, 8, blk, p, c, &s), std::invalid_argument);
  bad[2] = INFINITY;
  EXPECT_THROW(ckh::fp8::quantize_rows(k, bad, 1, 8, blk, p, c, &s), std::invalid_argument);
  // Power-of-two scales: the smallest power of two >= amax / 448; codes never saturate past 448.
  p.pow2_scales = true;
  const float y[8] = {1000.0f, -999.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  ckh::fp8::quantize_rows(k, y, 1, 8, blk, p, c, &s);
  EXPECT_EQ(s, 4.0f);  // 1000 / 448 = 2.23 -> 4
  EXPECT_EQ(e4m3(c[0]), 256.0);  // 250 -> 256 (RNE among 240, 256)
  // Exactly: amax / 448 a power of two stays; one ulp above it goes up a whole binade (no log2 rounding).
  const float two = 448.0f * 0x1p-10f, above = std::nextafter(two, 1.0f);
  const float e[8] = {two, 0, 0, 0, 0, 0, 0, 0}, f[8] = {above, 0, 0, 0, 0, 0, 0, 0};
  ckh::fp8::quantize_rows(k, e, 1, 8, blk, p, c, &s);
  EXPECT_EQ(s, 0x1p-10f);
  EXPECT_EQ(c[0], 0x7E);  // 448
  ckh::fp8::quantize_rows(k, f, 1, 8, blk, p, c, &s);
  EXPECT_EQ(s, 0x1p-9f);
  EXPECT_EQ(c[0], 0x76);  // 224
  // The amax floor: a tiny block gets scale epsilon / 448.
  p.pow2_scales = false;
  p.amax_epsilon = 1e-4f;
  const float t[8] = {1e-7f, 0, 0, 0, 0, 0, 0, 0};
  ckh::fp8::quantize_rows(k, t, 1, 8, blk, p, c, &s);
  EXPECT_EQ(s, 1e-4f / 448.0f);
}

TEST(Fp8Block, RoundTripWithinTheDocumentedBound) {
  // |x - dequant(quant(x))| <= max(|x| * 2^-4, scale * 2^-10) * (1 + 2^-20): half an E4M3 step (3 mantissa
  // bits) for normal codes, half the smallest subnormal step (2^-9) scaled for the rest, plus f32 rounding.
  const ckh_kernels_t *k = ckh::kernels::best();
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 0.02f);
  const int64_t N = 300, K = 260;  // partial last blocks in both dims
  const ckh::fp8::Block blk{128, 128};
  std::vector<float> x(N * K), y(N * K);
  for (auto &v : x) v = nd(rng) * (rng() % 7 == 0 ? 40.0f : 1.0f);
  std::vector<uint8_t> c(N * K);
  std::vector<float> s(3 * 3);
  ckh::fp8::quantize_rows(k, x.data(), N, K, blk, {}, c.data(), s.data());
  ckh::fp8::dequantize_rows(k, c.data(), CKH_DT_F8_E4M3FN, s.data(), CKH_DT_F32, 3, N, K, blk, y.data(), CKH_DT_F32);
  for (int64_t r = 0; r < N; ++r)
    for (int64_t j = 0; j < K; ++j) {
      const size_t i = static_cast<size_t>(r * K + j);
      const float sc = s[static_cast<size_t>((r / 128) * 3 + j / 128)];
      const double bound = std::max<double>(std::fabs(x[i]) / 16.0, sc / 1024.0) * (1 + 1e-6);
      ASSERT_LE(std::fabs(static_cast<double>(x[i]) - y[i]), bound) << r << "," << j;
    }
}
