// Every SIMD table against the scalar reference: all 8- and 16-bit inputs exhaustively, structured
// and random f32 inputs for every narrowing (all rounding cases), reductions with tails, and known
// values from the format definitions.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include <ckhost/kernels/kernels.hpp>

using namespace ckh::kernels;

namespace {

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float fl(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<const ckh_kernels_t *> simd_tables() {
  std::vector<const ckh_kernels_t *> v;
  for (const auto &isa : available_isas())
    if (isa != "scalar") v.push_back(for_isa(isa));
  return v;
}
const ckh_kernels_t *S() { return for_isa("scalar"); }

// f32 inputs covering every rounding case: all exponents and sign, mantissa tops, low bits at and
// around the rounding points of 16-, 8-, 4- and 3-bit mantissas, plus specials.
std::vector<float> structured_inputs() {
  std::vector<float> v;
  const uint32_t lows[] = {0x0, 0x1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0xFFF, 0x1000, 0x1001, 0x7FFFF, 0x80000, 0x80001,
                           0xFFFFF, 0x100000, 0x100001, 0x3FFFFF, 0x400000, 0x7FFFFF};
  for (uint32_t sign = 0; sign < 2; ++sign)
    for (uint32_t e = 0; e < 256; ++e)
      for (uint32_t top = 0; top < 16; ++top)
        for (uint32_t low : lows) {
          uint32_t m = (top << 19) | (low & 0x7FFFF);
          v.push_back(fl((sign << 31) | (e << 23) | m));
          v.push_back(fl((sign << 31) | (e << 23) | (low & 0x7FFFFF)));
        }
  return v;
}

std::vector<float> random_inputs(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<float> v(n);
  for (auto &x : v) x = fl(rng());
  return v;
}

template <class T>
void expect_same(const std::vector<T> &a, const std::vector<T> &b, const char *what, const char *isa,
                 const std::vector<float> *in = nullptr) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) {
      FAIL() << what << " on " << isa << " differs at " << i << (in ? " input bits 0x" : "") << std::hex
             << (in ? bits((*in)[i]) : 0u);
    }
}

}  // namespace

TEST(Kernels, TablesAreComplete) {
  for (const auto &isa : available_isas()) {
    const ckh_kernels_t *k = for_isa(isa);
    ASSERT_NE(k, nullptr) << isa;
    EXPECT_STREQ(k->isa, isa.c_str());
    const void *const *fn = reinterpret_cast<const void *const *>(&k->bf16_to_f32);
    const size_t count = (sizeof(ckh_kernels_t) - offsetof(ckh_kernels_t, bf16_to_f32)) / sizeof(void *);
    for (size_t i = 0; i < count; ++i) EXPECT_NE(fn[i], nullptr) << isa << " function #" << i;
  }
  EXPECT_NE(best(), nullptr);
}

TEST(Kernels, AllSixteenBitInputsDecodeAlike) {
  std::vector<uint16_t> in(65536 + 7);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint16_t>(i);
  std::vector<float> r1(in.size()), r2(in.size()), s(in.size());
  S()->bf16_to_f32(in.data(), r1.data(), in.size());
  S()->f16_to_f32(in.data(), r2.data(), in.size());
  for (auto *k : simd_tables()) {
    k->bf16_to_f32(in.data(), s.data(), in.size());
    expect_same(s, r1, "bf16_to_f32", k->isa);
    k->f16_to_f32(in.data(), s.data(), in.size());
    expect_same(s, r2, "f16_to_f32", k->isa);
  }
  // bf16 decode is exact widening; f16 decode of finite values is exact (round trip).
  std::vector<uint16_t> back(in.size());
  S()->f32_to_f16(r2.data(), back.data(), in.size());
  for (size_t i = 0; i < 65536; ++i)
    if (!std::isnan(r2[i])) {
      ASSERT_EQ(back[i], in[i]) << i;
    }
  EXPECT_EQ(r2[0x3C00], 1.0f);
  EXPECT_EQ(r2[0x0001], std::ldexp(1.0f, -24));
  EXPECT_EQ(r2[0x7BFF], 65504.0f);
}

TEST(Kernels, AllEightBitInputsDecodeAlike) {
  std::vector<uint8_t> in(256 * 3 + 5);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i);
  std::vector<float> a(in.size()), b(in.size()), s(in.size());
  S()->e4m3_to_f32(in.data(), a.data(), in.size());
  S()->e5m2_to_f32(in.data(), b.data(), in.size());
  for (auto *k : simd_tables()) {
    k->e4m3_to_f32(in.data(), s.data(), in.size());
    expect_same(s, a, "e4m3_to_f32", k->isa);
    k->e5m2_to_f32(in.data(), s.data(), in.size());
    expect_same(s, b, "e5m2_to_f32", k->isa);
  }
  EXPECT_EQ(a[0x7E], 448.0f);
  EXPECT_TRUE(std::isnan(a[0x7F]) && std::isnan(a[0xFF]));
  EXPECT_EQ(a[0x01], std::ldexp(1.0f, -9));
  EXPECT_EQ(a[0x38], 1.0f);
  EXPECT_EQ(b[0x7B], 57344.0f);
  EXPECT_TRUE(std::isinf(b[0x7C]));
  EXPECT_EQ(b[0x01], std::ldexp(1.0f, -16));
  // Every finite code round-trips through f32 in both modes.
  for (int c = 0; c < 256; ++c) {
    uint8_t o;
    if (!std::isnan(a[c])) {
      S()->f32_to_e4m3(&a[c], &o, 1, CKH_FP8_NONSAT);
      EXPECT_EQ(o, c);
    }
    if (!std::isnan(b[c])) {
      S()->f32_to_e5m2(&b[c], &o, 1, CKH_FP8_SATURATE);
      if (!std::isinf(b[c])) {
        EXPECT_EQ(o, c);
      }
    }
  }
}

TEST(Kernels, NarrowingsMatchReferenceOnAllRoundingCases) {
  std::vector<float> in = structured_inputs();
  std::vector<float> rnd = random_inputs(4000003, 42);
  in.insert(in.end(), rnd.begin(), rnd.end());
  const size_t n = in.size();
  std::vector<uint16_t> r16(n), s16(n);
  std::vector<uint8_t> r8(n), s8(n);
  std::vector<int8_t> ri(n), si(n);
  std::vector<float> rf(n), sf(n);
  for (auto *k : simd_tables()) {
    S()->f32_to_bf16(in.data(), r16.data(), n);
    k->f32_to_bf16(in.data(), s16.data(), n);
    expect_same(s16, r16, "f32_to_bf16", k->isa, &in);
    S()->f32_to_f16(in.data(), r16.data(), n);
    k->f32_to_f16(in.data(), s16.data(), n);
    expect_same(s16, r16, "f32_to_f16", k->isa, &in);
    for (int32_t mode : {CKH_FP8_NONSAT, CKH_FP8_SATURATE}) {
      S()->f32_to_e4m3(in.data(), r8.data(), n, mode);
      k->f32_to_e4m3(in.data(), s8.data(), n, mode);
      expect_same(s8, r8, "f32_to_e4m3", k->isa, &in);
      S()->f32_to_e5m2(in.data(), r8.data(), n, mode);
      k->f32_to_e5m2(in.data(), s8.data(), n, mode);
      expect_same(s8, r8, "f32_to_e5m2", k->isa, &in);
      S()->f32_to_e4m3_scaled(in.data(), r8.data(), n, 0.37f, mode);
      k->f32_to_e4m3_scaled(in.data(), s8.data(), n, 0.37f, mode);
      expect_same(s8, r8, "f32_to_e4m3_scaled", k->isa, &in);
      S()->f32_to_e5m2_scaled(in.data(), r8.data(), n, 3.5f, mode);
      k->f32_to_e5m2_scaled(in.data(), s8.data(), n, 3.5f, mode);
      expect_same(s8, r8, "f32_to_e5m2_scaled", k->isa, &in);
    }
    S()->f32_to_i8_scaled(in.data(), ri.data(), n, 1e-30f);
    k->f32_to_i8_scaled(in.data(), si.data(), n, 1e-30f);
    expect_same(si, ri, "f32_to_i8_scaled", k->isa, &in);
    S()->scale_f32(in.data(), rf.data(), n, 0.125f);
    k->scale_f32(in.data(), sf.data(), n, 0.125f);
    expect_same(sf, rf, "scale_f32", k->isa, &in);
  }
}

TEST(Kernels, KnownRoundingValues) {
  const ckh_kernels_t *k = S();
  auto e4 = [&](float x, int32_t m) {
    uint8_t o;
    k->f32_to_e4m3(&x, &o, 1, m);
    return o;
  };
  auto e5 = [&](float x, int32_t m) {
    uint8_t o;
    k->f32_to_e5m2(&x, &o, 1, m);
    return o;
  };
  EXPECT_EQ(e4(448.0f, 0), 0x7E);
  EXPECT_EQ(e4(460.0f, 0), 0x7E);  // rounds down to 448
  EXPECT_EQ(e4(464.0f, 0), 0x7E);  // tie to even (448 has an even mantissa)
  EXPECT_EQ(e4(465.0f, 0), 0x7F);  // overflow -> NaN without saturation
  EXPECT_EQ(e4(465.0f, 1), 0x7E);
  EXPECT_EQ(e4(-1e9f, 1), 0xFE);
  EXPECT_EQ(e4(INFINITY, 0), 0x7F);
  EXPECT_EQ(e4(INFINITY, 1), 0x7E);
  EXPECT_EQ(e4(NAN, 1), 0x7F);
  EXPECT_EQ(e4(std::ldexp(1.0f, -10), 0), 0x00);  // half the smallest subnormal: tie to even (0)
  EXPECT_EQ(e4(std::ldexp(3.0f, -10), 0), 0x02);  // 1.5 subnormal steps: tie to even (2)
  EXPECT_EQ(e4(1.0625f, 0), 0x38);                // 1 + 1/16: tie between 1 and 1.125 -> 1
  EXPECT_EQ(e4(1.1875f, 0), 0x3A);                // 1 + 3/16: tie -> 1.25
  EXPECT_EQ(e5(57344.0f, 0), 0x7B);
  EXPECT_EQ(e5(61440.0f, 0), 0x7C);  // tie to even -> Inf
  EXPECT_EQ(e5(61440.0f, 1), 0x7B);
  EXPECT_EQ(e5(-INFINITY, 0), 0xFC);
  uint16_t h;
  float x = 65520.0f;
  k->f32_to_f16(&x, &h, 1);
  EXPECT_EQ(h, 0x7C00);
  x = 65519.0f;
  k->f32_to_f16(&x, &h, 1);
  EXPECT_EQ(h, 0x7BFF);
  x = 1.0f + std::ldexp(1.0f, -8);  // bf16 tie -> even (1.0)
  k->f32_to_bf16(&x, &h, 1);
  EXPECT_EQ(h, 0x3F80);
  x = 1.0f + std::ldexp(3.0f, -8);  // tie -> 1 + 2^-6
  k->f32_to_bf16(&x, &h, 1);
  EXPECT_EQ(h, 0x3F82);
  int8_t q;
  x = 2.5f;
  k->f32_to_i8_scaled(&x, &q, 1, 1.0f);
  EXPECT_EQ(q, 2);
  x = 1000.0f;
  k->f32_to_i8_scaled(&x, &q, 1, 1.0f);
  EXPECT_EQ(q, 127);
}

TEST(Kernels, ReductionsWithTails) {
  for (size_t n : {0ul, 1ul, 7ul, 15ul, 16ul, 17ul, 1000003ul}) {
    std::vector<float> a = random_inputs(n, static_cast<uint32_t>(n));
    std::vector<float> b(n);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-3, 3);
    for (auto &x : a) x = u(rng);
    for (auto &x : b) x = u(rng);
    const float am = S()->absmax_f32(a.data(), n), md = S()->maxabsdiff_f32(a.data(), b.data(), n);
    const double ss = S()->sumsq_f32(a.data(), n), sd = S()->sumsqdiff_f32(a.data(), b.data(), n);
    for (auto *k : simd_tables()) {
      EXPECT_EQ(k->absmax_f32(a.data(), n), am) << k->isa << " n=" << n;
      EXPECT_EQ(k->maxabsdiff_f32(a.data(), b.data(), n), md) << k->isa;
      EXPECT_EQ(k->sumsq_f32(a.data(), n), ss) << k->isa;
      EXPECT_EQ(k->sumsqdiff_f32(a.data(), b.data(), n), sd) << k->isa;
    }
    if (n > 5) {
      a[n / 2] = NAN;
      for (auto *k : simd_tables()) {
        EXPECT_TRUE(std::isnan(k->absmax_f32(a.data(), n))) << k->isa;
        EXPECT_TRUE(std::isnan(k->maxabsdiff_f32(a.data(), b.data(), n))) << k->isa;
      }
    }
  }
}

TEST(Kernels, GenericConvert) {
  const int64_t iv[] = {-5, 0, 7, 300, -40000, 123456789};
  std::vector<int64_t> in(std::begin(iv), std::end(iv));
  std::vector<float> f(in.size());
  ASSERT_TRUE(convert(CKH_DT_I64, in.data(), CKH_DT_F32, f.data(), in.size()));
  EXPECT_EQ(f[3], 300.0f);
  std::vector<int8_t> i8(in.size());
  ASSERT_TRUE(convert(CKH_DT_I64, in.data(), CKH_DT_I8, i8.data(), in.size()));
  EXPECT_EQ(i8[3], 127);
  EXPECT_EQ(i8[4], -128);
  std::vector<double> d(in.size());
  ASSERT_TRUE(convert(CKH_DT_F32, f.data(), CKH_DT_F64, d.data(), f.size()));
  EXPECT_EQ(d[5], static_cast<double>(f[5]));
  std::vector<uint16_t> bf(in.size());
  ASSERT_TRUE(convert(CKH_DT_F64, d.data(), CKH_DT_BF16, bf.data(), d.size()));
  std::vector<uint8_t> e4(3000);
  std::vector<uint16_t> h(3000), h2(3000);
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint16_t>(i * 21);
  ASSERT_TRUE(convert(CKH_DT_F16, h.data(), CKH_DT_F8_E4M3FN, e4.data(), h.size(), nullptr, CKH_FP8_SATURATE));
  ASSERT_TRUE(convert(CKH_DT_F8_E4M3FN, e4.data(), CKH_DT_BF16, h2.data(), h.size()));
  std::vector<uint8_t> bo(2);
  const float fv[] = {0.0f, -2.0f};
  ASSERT_TRUE(convert(CKH_DT_F32, fv, CKH_DT_BOOL, bo.data(), 2));
  EXPECT_EQ(bo[0], 0);
  EXPECT_EQ(bo[1], 1);
}
