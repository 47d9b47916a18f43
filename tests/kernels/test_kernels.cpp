// libckh_kernels tests.
//  * every SIMD table against the scalar reference, bit for bit: all 8- and 16-bit inputs of every
//    decoder; every f32 whose low 13 bits are one of {0, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF} (all 2^19
//    high patterns: every rounding position of every narrow format at, just below and just above its
//    tie) plus 10M random f32 bit patterns for every narrowing; reductions with tails, NaN and n == 0;
//    unaligned pointers;
//  * the scalar reference against independent facts: decoders against bit-field formulas, encoders
//    against known values from the format definitions (and PyTorch's float8 cast for E4M3FN);
//  * ckh::kernels::convert for every pair of plain dtypes against an independent element reference.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <string>
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
uint64_t dbits(double d) {
  uint64_t u;
  std::memcpy(&u, &d, 8);
  return u;
}

const ckh_kernels_t *S() { return for_isa("scalar"); }
std::vector<const ckh_kernels_t *> all_tables() {
  std::vector<const ckh_kernels_t *> v;
  for (const auto &isa : available_isas()) v.push_back(for_isa(isa));
  return v;
}
std::vector<const ckh_kernels_t *> simd_tables() {
  auto v = all_tables();
  v.erase(v.begin());
  return v;
}

// "" when equal, else where and how the first element differs.
std::string diff(const void *got, const void *want, size_t n, size_t elem, const float *in = nullptr) {
  if (n == 0 || std::memcmp(got, want, n * elem) == 0) return "";
  const auto *g = static_cast<const unsigned char *>(got), *w = static_cast<const unsigned char *>(want);
  size_t i = 0;
  while (std::memcmp(g + i * elem, w + i * elem, elem) == 0) ++i;
  auto hex = [&](const unsigned char *p) {
    uint64_t v = 0;
    std::memcpy(&v, p, elem);
    std::ostringstream o;
    o << "0x" << std::hex << v;
    return o.str();
  };
  std::ostringstream o;
  o << "element " << i << ": got " << hex(g + i * elem) << ", want " << hex(w + i * elem);
  if (in) o << " (input f32 bits 0x" << std::hex << bits(in[i]) << ")";
  return o.str();
}

// The f32 inputs that cover every rounding case of every narrowing (see the file comment).
std::vector<float> rounding_inputs() {
  const uint32_t lows[] = {0x0000, 0x0001, 0x0FFF, 0x1000, 0x1001, 0x1FFF};
  std::vector<float> v;
  v.reserve((size_t{1} << 19) * 6 + 10000000);
  for (uint32_t hi = 0; hi < (1u << 19); ++hi)
    for (uint32_t lo : lows) v.push_back(fl((hi << 13) | lo));
  std::mt19937 rng(20240611);
  for (int i = 0; i < 10000000; ++i) v.push_back(fl(static_cast<uint32_t>(rng())));
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------
TEST(Dispatch, TablesAndSelection) {
  const auto isas = available_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), "scalar");
  const char *order[] = {"scalar", "sse2", "avx2", "avx512", "avx512bf16"};
  for (size_t i = 0; i < isas.size(); ++i) EXPECT_EQ(isas[i], order[i]);  // a prefix of the order
  for (const auto &isa : isas) {
    const ckh_kernels_t *k = for_isa(isa);
    ASSERT_NE(k, nullptr) << isa;
    EXPECT_STREQ(k->isa, isa.c_str());
    EXPECT_EQ(k->struct_size, sizeof(ckh_kernels_t));
    const char *p = reinterpret_cast<const char *>(&k->bf16_to_f32);
    const size_t count = (sizeof(ckh_kernels_t) - offsetof(ckh_kernels_t, bf16_to_f32)) / sizeof(void *);
    for (size_t i = 0; i < count; ++i) {
      void *fn;
      std::memcpy(&fn, p + i * sizeof(void *), sizeof fn);
      EXPECT_NE(fn, nullptr) << isa << " function #" << i;
    }
  }
  EXPECT_EQ(for_isa("avx"), nullptr);
  EXPECT_EQ(for_isa(""), nullptr);
  for (size_t i = isas.size(); i < 4; ++i) EXPECT_EQ(for_isa(order[i]), nullptr) << order[i];
  // best(): the most capable ISA, capped by CKHOST_ISA (ctest runs this test again with caps).
  size_t want = isas.size() - 1;
  if (const char *cap = std::getenv("CKHOST_ISA")) {
    for (size_t i = 0; i < 4; ++i)
      if (std::strcmp(cap, order[i]) == 0 && i < want) want = i;
  }
  ASSERT_NE(best(), nullptr);
  EXPECT_STREQ(best()->isa, order[want]);
  EXPECT_EQ(best(), best());
}

// ---------------------------------------------------------------------------------------------------
// Decoders: every input, SIMD == scalar, and scalar == an independent bit-field formula.
TEST(Decode, AllSixteenBitInputs) {
  std::vector<uint16_t> in(65536 + 37);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint16_t>(i * 40503u);  // all patterns, shuffled
  for (uint32_t i = 0; i < 65536; ++i) in[i] = static_cast<uint16_t>(i);
  const size_t n = in.size();
  std::vector<float> bf(n), h(n), out(n);
  S()->bf16_to_f32(in.data(), bf.data(), n);
  S()->f16_to_f32(in.data(), h.data(), n);
  for (size_t i = 0; i < n; ++i) {
    ASSERT_EQ(bits(bf[i]), static_cast<uint32_t>(in[i]) << 16) << i;
    const uint32_t sign = (in[i] & 0x8000u) << 16, e = (in[i] >> 10) & 31, m = in[i] & 0x3FF;
    uint32_t want;
    if (e == 31) want = sign | 0x7F800000u | (m << 13) | (m ? 0x400000u : 0u);  // F16C: payload kept, quiet
    else want = sign | bits(static_cast<float>(std::ldexp(e ? 1024.0 + m : m, (e ? e : 1) - 25)));
    ASSERT_EQ(bits(h[i]), want) << "f16 0x" << std::hex << in[i];
  }
  for (auto *k : simd_tables()) {
    k->bf16_to_f32(in.data(), out.data(), n);
    EXPECT_EQ(diff(out.data(), bf.data(), n, 4), "") << "bf16_to_f32 " << k->isa;
    k->f16_to_f32(in.data(), out.data(), n);
    EXPECT_EQ(diff(out.data(), h.data(), n, 4), "") << "f16_to_f32 " << k->isa;
  }
  EXPECT_EQ(h[0x3C00], 1.0f);
  EXPECT_EQ(h[0x0001], std::ldexp(1.0f, -24));
  EXPECT_EQ(h[0x03FF], std::ldexp(1023.0f, -24));
  EXPECT_EQ(h[0x7BFF], 65504.0f);
  EXPECT_EQ(bits(h[0x7C00]), 0x7F800000u);
  EXPECT_EQ(bits(h[0x7E00]), 0x7FC00000u);
  EXPECT_EQ(bits(h[0xFD00]), 0xFFE00000u);  // signalling NaN comes out quiet, payload kept
}

TEST(Decode, AllEightBitInputs) {
  std::vector<uint8_t> in(256 * 3 + 61);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i < 256 ? i : i * 167u);
  const size_t n = in.size();
  std::vector<float> a(n), b(n), out(n);
  S()->e4m3_to_f32(in.data(), a.data(), n);
  S()->e5m2_to_f32(in.data(), b.data(), n);
  for (size_t i = 0; i < n; ++i) {
    const int c = in[i], s = c >> 7;
    const double sg = s ? -1.0 : 1.0;
    {  // E4M3FN: 1.4.3, bias 7, S.1111.111 is NaN, no Inf
      const int e = (c >> 3) & 15, m = c & 7;
      uint32_t want;
      if (e == 15 && m == 7) want = (s ? 0x80000000u : 0u) | 0x7FF00000u;
      else want = bits(static_cast<float>(sg * (e ? std::ldexp(1.0 + m / 8.0, e - 7) : std::ldexp(m, -9))));
      ASSERT_EQ(bits(a[i]), want) << "e4m3 0x" << std::hex << c;
    }
    {  // E5M2: 1.5.2, bias 15, IEEE-like
      const int e = (c >> 2) & 31, m = c & 3;
      uint32_t want;
      if (e == 31) want = (s ? 0x80000000u : 0u) | 0x7F800000u | (m ? (static_cast<uint32_t>(m) << 21) | 0x400000u : 0u);
      else want = bits(static_cast<float>(sg * (e ? std::ldexp(1.0 + m / 4.0, e - 15) : std::ldexp(m, -16))));
      ASSERT_EQ(bits(b[i]), want) << "e5m2 0x" << std::hex << c;
    }
  }
  for (auto *k : simd_tables()) {
    k->e4m3_to_f32(in.data(), out.data(), n);
    EXPECT_EQ(diff(out.data(), a.data(), n, 4), "") << "e4m3_to_f32 " << k->isa;
    k->e5m2_to_f32(in.data(), out.data(), n);
    EXPECT_EQ(diff(out.data(), b.data(), n, 4), "") << "e5m2_to_f32 " << k->isa;
  }
  EXPECT_EQ(a[0x7E], 448.0f);
  EXPECT_EQ(a[0x08], std::ldexp(1.0f, -6));
  EXPECT_EQ(a[0x01], std::ldexp(1.0f, -9));
  EXPECT_EQ(a[0x38], 1.0f);
  EXPECT_EQ(b[0x7B], 57344.0f);
  EXPECT_EQ(b[0x01], std::ldexp(1.0f, -16));
  EXPECT_TRUE(std::isinf(b[0x7C]) && std::isinf(b[0xFC]) && b[0xFC] < 0);
  // Every finite code survives decode -> encode in both modes.
  std::vector<uint8_t> back(256);
  for (int32_t mode : {CKH_FP8_NONSAT, CKH_FP8_SATURATE})
    for (auto *k : all_tables()) {
      k->f32_to_e4m3(a.data(), back.data(), 256, mode);
      for (int c = 0; c < 256; ++c)
        if ((c & 0x7F) != 0x7F) {
          EXPECT_EQ(back[c], c) << k->isa;
        }
      k->f32_to_e5m2(b.data(), back.data(), 256, mode);
      for (int c = 0; c < 256; ++c)
        if ((c & 0x7F) < 0x7C) {
          EXPECT_EQ(back[c], c) << k->isa;
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Narrowings: all rounding cases and 10M random bit patterns (NaN payloads included), SIMD == scalar.
TEST(Narrow, EveryRoundingCaseAndRandomBits) {
  const std::vector<float> in = rounding_inputs();
  const size_t n = in.size();
  const float *x = in.data();
  struct Case {
    std::string name;
    size_t elem;
    std::function<void(const ckh_kernels_t *, void *)> run;
  };
  std::vector<Case> cases = {
      {"f32_to_bf16", 2, [&](const ckh_kernels_t *k, void *o) { k->f32_to_bf16(x, static_cast<uint16_t *>(o), n); }},
      {"f32_to_f16", 2, [&](const ckh_kernels_t *k, void *o) { k->f32_to_f16(x, static_cast<uint16_t *>(o), n); }},
  };
  for (int32_t mode : {CKH_FP8_NONSAT, CKH_FP8_SATURATE}) {
    const std::string m = mode == CKH_FP8_SATURATE ? " sat" : " nonsat";
    cases.push_back({"f32_to_e4m3" + m, 1, [&, mode](const ckh_kernels_t *k, void *o) {
                       k->f32_to_e4m3(x, static_cast<uint8_t *>(o), n, mode);
                     }});
    cases.push_back({"f32_to_e5m2" + m, 1, [&, mode](const ckh_kernels_t *k, void *o) {
                       k->f32_to_e5m2(x, static_cast<uint8_t *>(o), n, mode);
                     }});
    for (float sc : {0.37f, 1.0f / 448.0f, 3.0e5f}) {
      cases.push_back({"f32_to_e4m3_scaled" + m + " *" + std::to_string(sc), 1, [&, mode, sc](const ckh_kernels_t *k, void *o) {
                         k->f32_to_e4m3_scaled(x, static_cast<uint8_t *>(o), n, sc, mode);
                       }});
      cases.push_back({"f32_to_e5m2_scaled" + m + " *" + std::to_string(sc), 1, [&, mode, sc](const ckh_kernels_t *k, void *o) {
                         k->f32_to_e5m2_scaled(x, static_cast<uint8_t *>(o), n, sc, mode);
                       }});
    }
  }
  for (float sc : {1.0f, 0.37f, 1.0e-30f, 1.0e30f})
    cases.push_back({"f32_to_i8_scaled *" + std::to_string(sc), 1, [&, sc](const ckh_kernels_t *k, void *o) {
                       k->f32_to_i8_scaled(x, static_cast<int8_t *>(o), n, sc);
                     }});
  for (float sc : {0.125f, 3.3f})
    cases.push_back({"scale_f32 *" + std::to_string(sc), 4, [&, sc](const ckh_kernels_t *k, void *o) {
                       k->scale_f32(x, static_cast<float *>(o), n, sc);
                     }});

  const auto simd = simd_tables();
  std::vector<unsigned char> want(n * 4), got(n * 4);
  for (const auto &c : cases) {
    c.run(S(), want.data());
    for (auto *k : simd) {
      std::memset(got.data(), 0xA5, n * c.elem);
      c.run(k, got.data());
      EXPECT_EQ(diff(got.data(), want.data(), n, c.elem, x), "") << c.name << " on " << k->isa;
    }
  }
}

// The scaled kernels are "multiply in f32, then convert" exactly.
TEST(Narrow, ScaledIsProductThenConvert) {
  std::mt19937 rng(7);
  std::vector<float> in(200003), prod(in.size());
  for (auto &v : in) v = fl(static_cast<uint32_t>(rng()));
  const size_t n = in.size();
  std::vector<uint8_t> a(n), b(n);
  std::vector<int8_t> c(n), d(n);
  for (float sc : {0.37f, 1e-3f, 4096.0f}) {
    for (size_t i = 0; i < n; ++i) prod[i] = in[i] * sc;
    for (auto *k : all_tables())
      for (int32_t mode : {CKH_FP8_NONSAT, CKH_FP8_SATURATE}) {
        k->f32_to_e4m3_scaled(in.data(), a.data(), n, sc, mode);
        S()->f32_to_e4m3(prod.data(), b.data(), n, mode);
        EXPECT_EQ(diff(a.data(), b.data(), n, 1), "") << k->isa;
        k->f32_to_e5m2_scaled(in.data(), a.data(), n, sc, mode);
        S()->f32_to_e5m2(prod.data(), b.data(), n, mode);
        EXPECT_EQ(diff(a.data(), b.data(), n, 1), "") << k->isa;
      }
    for (auto *k : all_tables()) {
      k->f32_to_i8_scaled(in.data(), c.data(), n, sc);
      S()->f32_to_i8_scaled(prod.data(), d.data(), n, 1.0f);
      EXPECT_EQ(diff(c.data(), d.data(), n, 1), "") << k->isa;
    }
  }
}

// The fused block-FP8 dequantization equals widening, scaling and narrowing in turn: every one of the
// 256 codes, at every length up to 70 (the SIMD bodies and their tails), with scales that round
// (ties included: 0.37 and 1e-3 give products halfway between bf16 values), overflow and go subnormal.
TEST(Narrow, E4m3ScaledToBf16IsTheThreeSteps) {
  std::vector<uint8_t> codes(256 * 3);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>((i * 97 + i / 256) & 0xFF);
  const size_t n = codes.size();
  std::vector<float> f(n);
  std::vector<uint16_t> want(n), got(n);
  for (float sc : {1.0f, 0.37f, 1e-3f, 3.0e38f, 1e36f, 1e-40f, -2.5f, 0.0f}) {
    S()->e4m3_to_f32(codes.data(), f.data(), n);
    S()->scale_f32(f.data(), f.data(), n, sc);
    S()->f32_to_bf16(f.data(), want.data(), n);
    for (auto *k : all_tables()) {
      ASSERT_TRUE(CKH_HAS_FIELD(k, ckh_kernels_t, e4m3_scaled_to_bf16) && k->e4m3_scaled_to_bf16) << k->isa;
      k->e4m3_scaled_to_bf16(codes.data(), got.data(), n, sc);
      EXPECT_EQ(diff(got.data(), want.data(), n, 2), "") << k->isa << " scale " << sc;
      for (size_t len = 0; len <= 70; ++len) {
        std::fill(got.begin(), got.end(), 0xABCD);
        k->e4m3_scaled_to_bf16(codes.data() + 3, got.data() + 1, len, sc);
        EXPECT_EQ(diff(got.data() + 1, want.data() + 3, len, 2), "") << k->isa << " len " << len;
        EXPECT_EQ(got[len + 1], 0xABCD) << k->isa << " wrote past " << len;
      }
    }
  }
}

// The row kernel equals e4m3_scaled_to_bf16 group by group: groups that are and are not multiples of the
// SIMD width, rows that end inside a group, scales of every kind (rounding, overflow, subnormal, zero).
TEST(Narrow, E4m3GroupedToBf16IsPerGroupScaling) {
  std::vector<uint8_t> codes(256 * 5);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>((i * 31 + i / 256) & 0xFF);
  const float kinds[] = {1.0f, 0.37f, 1e-3f, 3.0e38f, 1e36f, 1e-40f, -2.5f, 0.0f, 7.0f};
  std::vector<uint16_t> want(codes.size()), got(codes.size());
  for (uint64_t group : {1u, 7u, 16u, 100u, 128u, 256u}) {
    for (uint64_t n : {uint64_t(0), uint64_t(1), group, 3 * group + 5, uint64_t(codes.size())}) {
      if (n > codes.size()) continue;
      std::vector<float> sc((n + group - 1) / group + 1);
      for (size_t g = 0; g < sc.size(); ++g) sc[g] = kinds[(g * 5 + group) % 9];
      for (uint64_t j = 0, g = 0; j < n; j += group, ++g)
        S()->e4m3_scaled_to_bf16(codes.data() + j, want.data() + j, std::min<uint64_t>(group, n - j), sc[g]);
      for (auto *k : all_tables()) {
        ASSERT_TRUE(CKH_HAS_FIELD(k, ckh_kernels_t, e4m3_grouped_to_bf16) && k->e4m3_grouped_to_bf16) << k->isa;
        std::fill(got.begin(), got.end(), 0xABCD);
        k->e4m3_grouped_to_bf16(codes.data(), got.data(), n, sc.data(), group);
        EXPECT_EQ(diff(got.data(), want.data(), n, 2), "") << k->isa << " group " << group << " n " << n;
        if (n < got.size()) {
          EXPECT_EQ(got[n], 0xABCD) << k->isa << " wrote past " << n;
        }
      }
    }
  }
}

// Known values from the format definitions, on every table.
TEST(Narrow, KnownValues) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float p = std::ldexp(1.0f, -9), q = std::ldexp(1.0f, -16), h = std::ldexp(1.0f, -24);
  struct E8 {
    float x;
    int nonsat, sat;
  };
  // E4M3FN: PyTorch's cast (c10 fp8e4m3fn_from_fp32_value) gives NaN for |x| > 464: (464, 480) carries
  // into the NaN code, >= 480 is NaN outright; 464 itself is the tie between 448 (mantissa 110) and 480
  // (111) and goes to 448.
  const E8 e4[] = {{0.0f, 0x00, 0x00},           {-0.0f, 0x80, 0x80},
                   {1.0f, 0x38, 0x38},           {-2.0f, 0xC0, 0xC0},
                   {448.0f, 0x7E, 0x7E},         {-448.0f, 0xFE, 0xFE},
                   {460.0f, 0x7E, 0x7E},         {464.0f, 0x7E, 0x7E},
                   {std::nextafter(464.0f, 1e9f), 0x7F, 0x7E},
                   {470.0f, 0x7F, 0x7E},         {480.0f, 0x7F, 0x7E},
                   {-1e9f, 0xFF, 0xFE},          {inf, 0x7F, 0x7E},
                   {-inf, 0xFF, 0xFE},           {nan, 0x7F, 0x7F},
                   {-nan, 0xFF, 0xFF},           {fl(0x7F800001u), 0x7F, 0x7F},
                   {p, 0x01, 0x01},              {p / 2, 0x00, 0x00},  // tie -> even (0)
                   {std::nextafter(p / 2, 1.0f), 0x01, 0x01},
                   {-p / 2, 0x80, 0x80},         {3 * p / 2, 0x02, 0x02},  // tie -> even (2)
                   {7.5f * p, 0x08, 0x08},       // tie between 7 * 2^-9 and 2^-6 -> 2^-6 (even)
                   {std::ldexp(1.0f, -6), 0x08, 0x08},
                   {1.0625f, 0x38, 0x38},        // tie between 1 and 1.125 -> 1
                   {1.1875f, 0x3A, 0x3A},        // tie between 1.125 and 1.25 -> 1.25
                   {std::nextafter(1.0625f, 2.0f), 0x39, 0x39},
                   {240.0f, 0x77, 0x77},         {fl(1u), 0x00, 0x00}};
  const E8 e5[] = {{57344.0f, 0x7B, 0x7B},       {-57344.0f, 0xFB, 0xFB},
                   {61439.0f, 0x7B, 0x7B},       {61440.0f, 0x7C, 0x7B},  // tie -> 65536 (even) = Inf
                   {1e6f, 0x7C, 0x7B},           {-1e6f, 0xFC, 0xFB},
                   {inf, 0x7C, 0x7B},            {-inf, 0xFC, 0xFB},
                   {nan, 0x7F, 0x7F},            {-nan, 0xFF, 0xFF},
                   {q, 0x01, 0x01},              {q / 2, 0x00, 0x00},
                   {3 * q / 2, 0x02, 0x02},      {std::ldexp(1.0f, -14), 0x04, 0x04},
                   {1.0f, 0x3C, 0x3C},           {1.125f, 0x3C, 0x3C},  // tie -> 1
                   {1.375f, 0x3E, 0x3E},         {-0.0f, 0x80, 0x80}};
  struct E16 {
    float x;
    uint16_t f16, bf16;
  };
  const E16 e16[] = {{1.0f, 0x3C00, 0x3F80},
                     {65504.0f, 0x7BFF, 0x4780},
                     {65519.0f, 0x7BFF, 0x4780},
                     {65520.0f, 0x7C00, 0x4780},  // f16 tie -> Inf
                     {-1e10f, 0xFC00, 0xD015},
                     {h, 0x0001, 0x3380},
                     {h / 2, 0x0000, 0x3300},  // tie -> 0
                     {std::nextafter(h / 2, 1.0f), 0x0001, 0x3300},
                     {3 * h / 2, 0x0002, 0x33C0},
                     {std::ldexp(1023.0f, -24), 0x03FF, 0x3880},
                     {std::ldexp(1.0f, -14), 0x0400, 0x3880},
                     {1.0f + std::ldexp(1.0f, -11), 0x3C00, 0x3F80},    // f16 tie -> even
                     {1.0f + std::ldexp(3.0f, -11), 0x3C02, 0x3F80},
                     {1.0f + std::ldexp(1.0f, -8), 0x3C04, 0x3F80},     // bf16 tie -> even (1.0)
                     {1.0f + std::ldexp(3.0f, -8), 0x3C0C, 0x3F82},     // bf16 tie -> 1 + 2^-6
                     {fl(0x7F7FFFFFu), 0x7C00, 0x7F80},                 // bf16 rounds up to Inf
                     {inf, 0x7C00, 0x7F80},
                     {fl(0x7FC00000u), 0x7E00, 0x7FC0},
                     {fl(0xFFC00001u), 0xFE00, 0xFFC0},
                     {fl(0x7F800001u), 0x7E00, 0x7FC0},                 // signalling -> quiet
                     {fl(0x7FA12345u), 0x7F09, 0x7FE1}};               // payload top bits kept
  for (auto *k : all_tables()) {
    for (const auto &c : e4) {
      uint8_t o[2];
      k->f32_to_e4m3(&c.x, &o[0], 1, CKH_FP8_NONSAT);
      k->f32_to_e4m3(&c.x, &o[1], 1, CKH_FP8_SATURATE);
      EXPECT_EQ(o[0], c.nonsat) << k->isa << " e4m3 nonsat of " << c.x;
      EXPECT_EQ(o[1], c.sat) << k->isa << " e4m3 sat of " << c.x;
    }
    for (const auto &c : e5) {
      uint8_t o[2];
      k->f32_to_e5m2(&c.x, &o[0], 1, CKH_FP8_NONSAT);
      k->f32_to_e5m2(&c.x, &o[1], 1, CKH_FP8_SATURATE);
      EXPECT_EQ(o[0], c.nonsat) << k->isa << " e5m2 nonsat of " << c.x;
      EXPECT_EQ(o[1], c.sat) << k->isa << " e5m2 sat of " << c.x;
    }
    for (const auto &c : e16) {
      uint16_t o[2];
      k->f32_to_f16(&c.x, &o[0], 1);
      k->f32_to_bf16(&c.x, &o[1], 1);
      EXPECT_EQ(o[0], c.f16) << k->isa << " f16 of bits 0x" << std::hex << bits(c.x);
      EXPECT_EQ(o[1], c.bf16) << k->isa << " bf16 of bits 0x" << std::hex << bits(c.x);
    }
    const float iv[] = {2.5f, 3.5f, -2.5f, 126.5f, 127.49f, 127.5f, 1000.0f, -1000.0f, -127.5f, -0.4f, nan, inf, -inf, 0.5f, 1.5f};
    const int8_t iw[] = {2, 4, -2, 126, 127, 127, 127, -127, -127, 0, 0, 127, -127, 0, 2};
    int8_t io[15];
    k->f32_to_i8_scaled(iv, io, 15, 1.0f);
    for (int i = 0; i < 15; ++i) EXPECT_EQ(io[i], iw[i]) << k->isa << " i8 of " << iv[i];
    const float two[] = {1.25f, 1.75f};
    k->f32_to_i8_scaled(two, io, 2, 2.0f);  // 2.5 -> 2, 3.5 -> 4
    EXPECT_EQ(io[0], 2);
    EXPECT_EQ(io[1], 4);
  }
}

// Vector bodies and tails of 8- and 16-bit outputs, one length at a time.
TEST(Narrow, EveryLengthUpTo300) {
  std::mt19937 rng(3);
  std::vector<float> in(300);
  for (auto &v : in) v = std::ldexp(static_cast<float>(static_cast<int32_t>(rng())), -28);
  std::vector<uint16_t> a(300), b(300);
  std::vector<uint8_t> c(300), d(300);
  for (size_t n = 0; n <= in.size(); ++n)
    for (auto *k : simd_tables()) {
      std::fill(a.begin(), a.end(), 0xBEEF);
      std::fill(b.begin(), b.end(), 0xBEEF);
      k->f32_to_bf16(in.data(), a.data(), n);
      S()->f32_to_bf16(in.data(), b.data(), n);
      ASSERT_EQ(a, b) << k->isa << " n=" << n;
      k->f32_to_f16(in.data(), a.data(), n);
      S()->f32_to_f16(in.data(), b.data(), n);
      ASSERT_EQ(a, b) << k->isa << " n=" << n;
      std::fill(c.begin(), c.end(), 0xEE);
      std::fill(d.begin(), d.end(), 0xEE);
      k->f32_to_e4m3(in.data(), c.data(), n, CKH_FP8_SATURATE);
      S()->f32_to_e4m3(in.data(), d.data(), n, CKH_FP8_SATURATE);
      ASSERT_EQ(c, d) << k->isa << " n=" << n;
      k->f32_to_i8_scaled(in.data(), reinterpret_cast<int8_t *>(c.data()), n, 10.0f);
      S()->f32_to_i8_scaled(in.data(), reinterpret_cast<int8_t *>(d.data()), n, 10.0f);
      ASSERT_EQ(c, d) << k->isa << " n=" << n;
    }
}

// ---------------------------------------------------------------------------------------------------
// Reductions.
namespace {
// The documented order: element i into partial sum i % 32, then a pairwise fold.
double sum_in_order(const std::vector<double> &terms) {
  double p[32] = {};
  for (size_t i = 0; i < terms.size(); ++i) p[i % 32] += terms[i];
  for (int w = 16; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) p[j] += p[j + w];
  return p[0];
}
}  // namespace

TEST(Reduce, MatchReferenceAndOrder) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-3, 3);
  for (size_t n : {0ul, 1ul, 2ul, 31ul, 32ul, 33ul, 63ul, 64ul, 65ul, 95ul, 100ul, 1000031ul}) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<float> a(n), b(n);
      for (size_t i = 0; i < n; ++i) {
        if (kind == 0) {
          a[i] = u(rng);
          b[i] = u(rng);
        } else if (kind == 1) {  // any finite bit patterns: differences and squares round in f64
          do a[i] = fl(static_cast<uint32_t>(rng())); while (!std::isfinite(a[i]));
          do b[i] = fl(static_cast<uint32_t>(rng())); while (!std::isfinite(b[i]));
        } else {  // similar magnitudes with inexact f64 differences: a fused multiply-add would show
          a[i] = 1.0f + u(rng) / 3.0f;
          b[i] = std::ldexp(u(rng), -31);
        }
      }
      std::vector<double> sq(n), sd(n);
      float am = 0, md = 0;
      for (size_t i = 0; i < n; ++i) {
        sq[i] = static_cast<double>(a[i]) * a[i];
        const double dd = static_cast<double>(a[i]) - static_cast<double>(b[i]);
        sd[i] = dd * dd;
        am = std::max(am, std::fabs(a[i]));
        md = std::max(md, std::fabs(a[i] - b[i]));
      }
      const double want_sq = sum_in_order(sq), want_sd = sum_in_order(sd);
      for (auto *k : all_tables()) {
        const std::string ctx = std::string(k->isa) + " n=" + std::to_string(n) + " kind=" + std::to_string(kind);
        EXPECT_EQ(bits(k->absmax_f32(a.data(), n)), bits(am)) << ctx;
        EXPECT_EQ(bits(k->maxabsdiff_f32(a.data(), b.data(), n)), bits(md)) << ctx;
        EXPECT_EQ(dbits(k->sumsq_f32(a.data(), n)), dbits(want_sq)) << ctx;
        EXPECT_EQ(dbits(k->sumsqdiff_f32(a.data(), b.data(), n)), dbits(want_sd)) << ctx;
      }
      if (kind == 0 && n > 1000) {  // and the order is a good sum
        long double ex = 0;
        for (double t : sq) ex += t;
        EXPECT_NEAR(S()->sumsq_f32(a.data(), n), static_cast<double>(ex), 1e-12 * static_cast<double>(ex));
      }
    }
  }
}

// sumsqdiff must round d*d before adding it (no FMA in any table): with every term but those of one
// partial sum zero, the result is that partial sum exactly, so a fused multiply-add would show.
TEST(Reduce, SumsqdiffRoundsEachSquare) {
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> u(-3, 3);
  int checked = 0;
  for (size_t n : {95ul, 96ul, 127ul, 128ul}) {
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<float> a(n, 1.5f), b(n, 1.5f);
      const size_t j = rng() % 31;
      double want = 0;
      for (size_t pos = j; pos < n; pos += 32) {
        a[pos] = 1.0f + u(rng) / 3.0f;
        b[pos] = std::ldexp(u(rng), -31);  // a - b is inexact in f64, and so is its square
        const double d = static_cast<double>(a[pos]) - static_cast<double>(b[pos]);
        const double sq = d * d;
        want = want + sq;
      }
      for (auto *k : all_tables()) {
        ASSERT_EQ(dbits(k->sumsqdiff_f32(a.data(), b.data(), n)), dbits(want)) << k->isa << " n=" << n;
      }
      ++checked;
    }
  }
  EXPECT_EQ(checked, 1200);
}

TEST(Reduce, NanInfZeroAndEmpty) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  for (auto *k : all_tables()) {
    EXPECT_EQ(bits(k->absmax_f32(nullptr, 0)), 0u) << k->isa;
    EXPECT_EQ(bits(k->maxabsdiff_f32(nullptr, nullptr, 0)), 0u) << k->isa;
    EXPECT_EQ(dbits(k->sumsq_f32(nullptr, 0)), 0u) << k->isa;
    EXPECT_EQ(dbits(k->sumsqdiff_f32(nullptr, nullptr, 0)), 0u) << k->isa;
    for (size_t n : {1ul, 5ul, 64ul, 77ul, 1001ul}) {
      std::vector<float> a(n, -0.0f), b(n, 1.0f);
      EXPECT_EQ(bits(k->absmax_f32(a.data(), n)), 0u) << k->isa;  // |-0| = +0
      for (size_t pos : {size_t{0}, n / 2, n - 1}) {
        std::vector<float> x(n, 2.0f);
        x[pos] = -nan;
        EXPECT_EQ(bits(k->absmax_f32(x.data(), n)), 0x7FC00000u) << k->isa << " n=" << n << " pos=" << pos;
        EXPECT_EQ(bits(k->maxabsdiff_f32(x.data(), b.data(), n)), 0x7FC00000u) << k->isa;
        EXPECT_EQ(bits(k->maxabsdiff_f32(b.data(), x.data(), n)), 0x7FC00000u) << k->isa;
        EXPECT_TRUE(std::isnan(k->sumsq_f32(x.data(), n))) << k->isa;
        x[pos] = -inf;
        EXPECT_EQ(k->absmax_f32(x.data(), n), inf) << k->isa;
        EXPECT_EQ(k->maxabsdiff_f32(x.data(), b.data(), n), inf) << k->isa;
        EXPECT_EQ(bits(k->maxabsdiff_f32(x.data(), x.data(), n)), 0x7FC00000u) << k->isa;  // Inf - Inf
        EXPECT_EQ(k->sumsq_f32(x.data(), n), static_cast<double>(inf)) << k->isa;
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// No kernel needs aligned pointers, and results do not depend on alignment (the SIMD tables peel a
// head to align their f32 stream: every byte offset 0..63 gives every head length, including none);
// scale_f32 may work in place; n == 0 touches nothing.
TEST(Kernels, AnyAlignmentInPlaceAndEmpty) {
  const size_t n = 1037;
  std::mt19937 rng(5);
  std::vector<float> f(n), g(n);
  std::vector<uint16_t> h(n);
  std::vector<uint8_t> e(n);
  for (size_t i = 0; i < n; ++i) {
    f[i] = std::ldexp(static_cast<float>(static_cast<int32_t>(rng())), -26);
    g[i] = f[i] * 0.75f + std::ldexp(static_cast<float>(static_cast<int32_t>(rng())), -40);
    h[i] = static_cast<uint16_t>(rng());
    e[i] = static_cast<uint8_t>(rng());
  }
  const ckh_kernels_t *s = S();
  // Buffers 64-byte aligned plus an offset.
  struct Buf {
    std::vector<unsigned char> raw = std::vector<unsigned char>(1037 * 4 + 256);
    unsigned char *at(size_t off) {
      const uintptr_t a = reinterpret_cast<uintptr_t>(raw.data());
      return raw.data() + (64 - a % 64) % 64 + off;
    }
  } in, in2, out;
  std::vector<unsigned char> want(n * 4);
  for (auto *k : all_tables()) {
    for (size_t off = 0; off < 64; ++off) {
      auto check = [&](const char *what, size_t elem, const std::function<void(const ckh_kernels_t *, void *)> &run) {
        run(s, want.data());
        run(k, out.at(off));
        EXPECT_EQ(diff(out.at(off), want.data(), n, elem), "") << what << " " << k->isa << " off=" << off;
      };
      std::memcpy(in.at(off), f.data(), n * 4);
      std::memcpy(in2.at((off * 7) % 64), g.data(), n * 4);
      const float *fu = reinterpret_cast<const float *>(in.at(off));
      const float *gu = reinterpret_cast<const float *>(in2.at((off * 7) % 64));
      check("f32_to_bf16", 2, [&](const ckh_kernels_t *t, void *o) { t->f32_to_bf16(fu, static_cast<uint16_t *>(o), n); });
      check("f32_to_f16", 2, [&](const ckh_kernels_t *t, void *o) { t->f32_to_f16(fu, static_cast<uint16_t *>(o), n); });
      check("f32_to_e4m3", 1, [&](const ckh_kernels_t *t, void *o) { t->f32_to_e4m3(fu, static_cast<uint8_t *>(o), n, 1); });
      check("f32_to_e5m2_scaled", 1,
            [&](const ckh_kernels_t *t, void *o) { t->f32_to_e5m2_scaled(fu, static_cast<uint8_t *>(o), n, 3.0f, 0); });
      check("f32_to_i8_scaled", 1,
            [&](const ckh_kernels_t *t, void *o) { t->f32_to_i8_scaled(fu, static_cast<int8_t *>(o), n, 9.0f); });
      check("scale_f32", 4, [&](const ckh_kernels_t *t, void *o) { t->scale_f32(fu, static_cast<float *>(o), n, 0.3f); });
      EXPECT_EQ(bits(k->absmax_f32(fu, n)), bits(s->absmax_f32(f.data(), n))) << k->isa << " off=" << off;
      EXPECT_EQ(bits(k->maxabsdiff_f32(fu, gu, n)), bits(s->maxabsdiff_f32(f.data(), g.data(), n))) << k->isa;
      EXPECT_EQ(dbits(k->sumsq_f32(fu, n)), dbits(s->sumsq_f32(f.data(), n))) << k->isa << " off=" << off;
      EXPECT_EQ(dbits(k->sumsqdiff_f32(fu, gu, n)), dbits(s->sumsqdiff_f32(f.data(), g.data(), n))) << k->isa;
      std::memcpy(in.at(off), h.data(), n * 2);
      const uint16_t *hu = reinterpret_cast<const uint16_t *>(in.at(off));
      check("bf16_to_f32", 4, [&](const ckh_kernels_t *t, void *o) { t->bf16_to_f32(hu, static_cast<float *>(o), n); });
      check("f16_to_f32", 4, [&](const ckh_kernels_t *t, void *o) { t->f16_to_f32(hu, static_cast<float *>(o), n); });
      std::memcpy(in.at(off), e.data(), n);
      const uint8_t *eu = in.at(off);
      check("e4m3_to_f32", 4, [&](const ckh_kernels_t *t, void *o) { t->e4m3_to_f32(eu, static_cast<float *>(o), n); });
      check("e5m2_to_f32", 4, [&](const ckh_kernels_t *t, void *o) { t->e5m2_to_f32(eu, static_cast<float *>(o), n); });
    }
    std::vector<float> x = f, y(n);
    k->scale_f32(x.data(), y.data(), n, 1.7f);
    k->scale_f32(x.data(), x.data(), n, 1.7f);
    EXPECT_EQ(x, y) << k->isa;
    // n == 0: null pointers are fine, nothing is written.
    k->bf16_to_f32(nullptr, nullptr, 0);
    k->f16_to_f32(nullptr, nullptr, 0);
    k->e4m3_to_f32(nullptr, nullptr, 0);
    k->e5m2_to_f32(nullptr, nullptr, 0);
    k->f32_to_bf16(nullptr, nullptr, 0);
    k->f32_to_f16(nullptr, nullptr, 0);
    k->f32_to_e4m3(nullptr, nullptr, 0, 0);
    k->f32_to_e5m2(nullptr, nullptr, 0, 1);
    k->f32_to_e4m3_scaled(nullptr, nullptr, 0, 2.0f, 0);
    k->f32_to_e5m2_scaled(nullptr, nullptr, 0, 2.0f, 1);
    k->f32_to_i8_scaled(nullptr, nullptr, 0, 2.0f);
    k->scale_f32(nullptr, nullptr, 0, 2.0f);
  }
}
