// ckh::kernels::convert for every pair of plain dtypes, against an element-by-element reference built
// here with different machinery (__int128 and long double for integer ranges, the scalar table only for
// rounding f32 into the narrow float formats, which test_kernels.cpp pins down separately).
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include <ckhost/kernels/kernels.hpp>

using namespace ckh::kernels;

namespace {

using i128 = __int128;

const ckh_dtype kAll[] = {CKH_DT_F32, CKH_DT_F16, CKH_DT_BF16, CKH_DT_F8_E4M3FN, CKH_DT_F8_E5M2,
                          CKH_DT_F64, CKH_DT_I8,  CKH_DT_U8,   CKH_DT_I16,       CKH_DT_U16,
                          CKH_DT_I32, CKH_DT_U32, CKH_DT_I64,  CKH_DT_U64,       CKH_DT_BOOL,
                          CKH_DT_F8_E8M0};

bool is_int(ckh_dtype d) { return d >= CKH_DT_I8 && d <= CKH_DT_BOOL; }

// Value range of an integer dtype.
void range(ckh_dtype d, i128 &lo, i128 &hi) {
  switch (d) {
    case CKH_DT_I8: lo = -128; hi = 127; break;
    case CKH_DT_U8: lo = 0; hi = 255; break;
    case CKH_DT_I16: lo = -32768; hi = 32767; break;
    case CKH_DT_U16: lo = 0; hi = 65535; break;
    case CKH_DT_I32: lo = INT32_MIN; hi = INT32_MAX; break;
    case CKH_DT_U32: lo = 0; hi = UINT32_MAX; break;
    case CKH_DT_I64: lo = INT64_MIN; hi = INT64_MAX; break;
    case CKH_DT_U64: lo = 0; hi = static_cast<i128>(UINT64_MAX); break;
    default: lo = 0; hi = 1; break;  // BOOL
  }
}

// One element's value: a double for float dtypes, an exact integer for integer dtypes.
struct Val {
  bool isf;
  double f;
  i128 i;
};

float narrow_decode(ckh_dtype d, const unsigned char *p) {
  float f = 0;
  uint16_t h;
  switch (d) {
    case CKH_DT_F32: std::memcpy(&f, p, 4); break;
    case CKH_DT_F16: std::memcpy(&h, p, 2); for_isa("scalar")->f16_to_f32(&h, &f, 1); break;
    case CKH_DT_BF16: std::memcpy(&h, p, 2); for_isa("scalar")->bf16_to_f32(&h, &f, 1); break;
    case CKH_DT_F8_E4M3FN: for_isa("scalar")->e4m3_to_f32(p, &f, 1); break;
    case CKH_DT_F8_E5M2: for_isa("scalar")->e5m2_to_f32(p, &f, 1); break;
    default: break;
  }
  return f;
}
// f32 -> the bytes of a float dtype other than F64 (the scalar table rounds).
void narrow_encode(ckh_dtype d, float f, unsigned char *p, int32_t mode) {
  const ckh_kernels_t *s = for_isa("scalar");
  uint16_t h;
  switch (d) {
    case CKH_DT_F32: std::memcpy(p, &f, 4); break;
    case CKH_DT_F16: s->f32_to_f16(&f, &h, 1); std::memcpy(p, &h, 2); break;
    case CKH_DT_BF16: s->f32_to_bf16(&f, &h, 1); std::memcpy(p, &h, 2); break;
    case CKH_DT_F8_E4M3FN: s->f32_to_e4m3(&f, p, 1, mode); break;
    case CKH_DT_F8_E5M2: s->f32_to_e5m2(&f, p, 1, mode); break;
    default: break;
  }
}

Val decode(ckh_dtype d, const unsigned char *p) {
  Val v{false, 0, 0};
  switch (d) {
    case CKH_DT_F64: v.isf = true; std::memcpy(&v.f, p, 8); return v;
    case CKH_DT_I8: { int8_t x; std::memcpy(&x, p, 1); v.i = x; return v; }
    case CKH_DT_U8: { uint8_t x; std::memcpy(&x, p, 1); v.i = x; return v; }
    case CKH_DT_I16: { int16_t x; std::memcpy(&x, p, 2); v.i = x; return v; }
    case CKH_DT_U16: { uint16_t x; std::memcpy(&x, p, 2); v.i = x; return v; }
    case CKH_DT_I32: { int32_t x; std::memcpy(&x, p, 4); v.i = x; return v; }
    case CKH_DT_U32: { uint32_t x; std::memcpy(&x, p, 4); v.i = x; return v; }
    case CKH_DT_I64: { int64_t x; std::memcpy(&x, p, 8); v.i = x; return v; }
    case CKH_DT_U64: { uint64_t x; std::memcpy(&x, p, 8); v.i = x; return v; }
    case CKH_DT_BOOL: v.i = *p != 0; return v;
    default: v.isf = true; v.f = narrow_decode(d, p); return v;
  }
}

// An integer (within int64/uint64) rounded once to double / float.
double to_double(i128 i) { return i < 0 ? static_cast<double>(static_cast<int64_t>(i)) : static_cast<double>(static_cast<uint64_t>(i)); }
float to_float(i128 i) { return i < 0 ? static_cast<float>(static_cast<int64_t>(i)) : static_cast<float>(static_cast<uint64_t>(i)); }

void encode_expected(ckh_dtype d, const Val &v, unsigned char *p, int32_t mode) {
  if (d == CKH_DT_F64) {
    const double x = v.isf ? v.f : to_double(v.i);
    std::memcpy(p, &x, 8);
  } else if (d == CKH_DT_BOOL) {
    *p = v.isf ? (v.f != 0) : (v.i != 0);
  } else if (is_int(d)) {
    i128 lo, hi, r;
    range(d, lo, hi);
    if (v.isf) {
      if (std::isnan(v.f)) r = 0;
      else {
        const long double t = std::trunc(static_cast<long double>(v.f));  // 64-bit mantissa: exact bounds
        r = t < static_cast<long double>(lo) ? lo : t > static_cast<long double>(hi) ? hi : static_cast<i128>(t);
      }
    } else {
      r = v.i < lo ? lo : v.i > hi ? hi : v.i;
    }
    const uint64_t u = static_cast<uint64_t>(r);  // two's complement low bytes
    std::memcpy(p, &u, ckh_dtype_size(d));
  } else {
    narrow_encode(d, v.isf ? static_cast<float>(v.f) : to_float(v.i), p, mode);
  }
}

// Source elements of dtype d: interesting values that d can hold.
std::vector<unsigned char> sources(ckh_dtype d) {
  std::vector<unsigned char> out;
  const size_t sz = ckh_dtype_size(d);
  auto push = [&](const void *p) {
    const auto *b = static_cast<const unsigned char *>(p);
    out.insert(out.end(), b, b + sz);
  };
  if (d == CKH_DT_BOOL) {
    for (unsigned char b : {0, 1, 2, 255}) push(&b);
  } else if (d == CKH_DT_F8_E8M0) {
    for (int b = 0; b < 256; ++b) {
      const unsigned char c = static_cast<unsigned char>(b);
      push(&c);
    }
  } else if (is_int(d)) {
    const i128 two64 = static_cast<i128>(1) << 64;
    const i128 vals[] = {0, 1, -1, 2, 127, 128, -128, -129, 255, 256, 32767, 32768, -32768, -32769, 65535, 65536,
                         16777217, -16777217, INT32_MAX, static_cast<i128>(INT32_MAX) + 1, INT32_MIN,
                         static_cast<i128>(INT32_MIN) - 1, UINT32_MAX, static_cast<i128>(UINT32_MAX) + 1,
                         (static_cast<i128>(1) << 53) + 1, -(static_cast<i128>(1) << 53) - 1, 1234567890123456789,
                         INT64_MAX, INT64_MIN, INT64_MAX - 1023, two64 - 1, two64 - 2049, 3};
    i128 lo, hi;
    range(d, lo, hi);
    for (i128 v : vals)
      if (v >= lo && v <= hi) {
        const uint64_t u = static_cast<uint64_t>(v);
        push(&u);
      }
  } else {
    const double inf = std::numeric_limits<double>::infinity();
    const double vals[] = {0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -2.5, 3.7, -3.7, 0.9999, -0.4, 127.4, 127.5, 128.0,
                           200.0, 255.5, 256.0, -129.0, -128.9, 300.0, 448.0, 464.0, 465.0, 57344.0, 61440.0,
                           65504.0, 65520.0, 1e5, -1e5, 3e9, -3e9, 4294967295.5, 1e19, 2e19, -1e19,
                           9007199254740993.0, 9223372036854775808.0, -9223372036854775808.0,
                           18446744073709551616.0, 1e30, -1e30, 1e300, 1e-8, 5.960464477539063e-08, 1e-300,
                           0.1, inf, -inf, std::nan(""), -std::nan("")};
    for (double v : vals) {
      if (d == CKH_DT_F64) {
        push(&v);
      } else {
        unsigned char b[4];
        narrow_encode(d, static_cast<float>(v), b, CKH_FP8_NONSAT);
        push(b);
      }
    }
  }
  return out;
}

}  // namespace

TEST(Convert, EveryPairOfDtypes) {
  std::vector<const ckh_kernels_t *> tables = {nullptr};
  for (const auto &isa : available_isas()) tables.push_back(for_isa(isa));
  for (ckh_dtype from : kAll) {
    const size_t fs = ckh_dtype_size(from);
    std::vector<unsigned char> src = sources(from);
    // Repeat past several 1024-element blocks with an odd count.
    const size_t base = src.size() / fs;
    while (src.size() / fs < 2500) src.insert(src.end(), src.begin(), src.begin() + base * fs);
    src.resize(2501 * fs);
    const size_t n = src.size() / fs;
    for (ckh_dtype to : kAll) {
      const size_t ts = ckh_dtype_size(to);
      const bool supported = from == to || (from != CKH_DT_F8_E8M0 && to != CKH_DT_F8_E8M0);
      for (int32_t mode : {CKH_FP8_NONSAT, CKH_FP8_SATURATE}) {
        std::vector<unsigned char> want(n * ts);
        if (from == to) want = src;
        else if (supported)
          for (size_t i = 0; i < n; ++i) encode_expected(to, decode(from, &src[i * fs]), &want[i * ts], mode);
        for (const ckh_kernels_t *k : tables) {
          std::vector<unsigned char> got(n * ts + 1, 0xA5);
          const bool ok = convert(from, src.data(), to, got.data(), n, k, mode);
          ASSERT_EQ(ok, supported) << from << " -> " << to;
          if (!supported) continue;
          EXPECT_EQ(got[n * ts], 0xA5) << "wrote past the end";
          for (size_t i = 0; i < n; ++i)
            if (std::memcmp(&got[i * ts], &want[i * ts], ts) != 0) {
              uint64_t g = 0, w = 0, s = 0;
              std::memcpy(&g, &got[i * ts], ts);
              std::memcpy(&w, &want[i * ts], ts);
              std::memcpy(&s, &src[i * fs], fs);
              ADD_FAILURE() << "dtype " << from << " -> " << to << " mode " << mode << " table "
                            << (k ? k->isa : "best") << " element " << i << " source 0x" << std::hex << s
                            << ": got 0x" << g << ", want 0x" << w;
              break;
            }
        }
      }
    }
  }
}

TEST(Convert, KnownValuesAndUnsupported) {
  auto one = [](ckh_dtype from, const void *s, ckh_dtype to, void *d) { return convert(from, s, to, d, 1); };
  const int64_t big = (int64_t{1} << 53) + 1;
  uint64_t u = 0;
  ASSERT_TRUE(one(CKH_DT_I64, &big, CKH_DT_U64, &u));
  EXPECT_EQ(u, static_cast<uint64_t>(big));  // exact, not through a double
  const int64_t imax = INT64_MAX;
  int32_t i32 = 0;
  ASSERT_TRUE(one(CKH_DT_I64, &imax, CKH_DT_I32, &i32));
  EXPECT_EQ(i32, INT32_MAX);
  int64_t i64 = 0;
  const double two63 = 9223372036854775808.0, m1e300 = -1e300;
  ASSERT_TRUE(one(CKH_DT_F64, &two63, CKH_DT_I64, &i64));
  EXPECT_EQ(i64, INT64_MAX);
  ASSERT_TRUE(one(CKH_DT_F64, &m1e300, CKH_DT_I64, &i64));
  EXPECT_EQ(i64, INT64_MIN);
  const double neg = -0.9;
  uint8_t u8 = 7;
  ASSERT_TRUE(one(CKH_DT_F64, &neg, CKH_DT_U8, &u8));
  EXPECT_EQ(u8, 0);
  const float fnan = std::nanf("");
  ASSERT_TRUE(one(CKH_DT_F32, &fnan, CKH_DT_I32, &i32));
  EXPECT_EQ(i32, 0);
  ASSERT_TRUE(one(CKH_DT_F32, &fnan, CKH_DT_BOOL, &u8));
  EXPECT_EQ(u8, 1);  // NaN is a nonzero value
  const uint64_t umax = UINT64_MAX;
  float f = 0;
  ASSERT_TRUE(one(CKH_DT_U64, &umax, CKH_DT_F32, &f));
  EXPECT_EQ(f, 18446744073709551616.0f);
  const double d464 = 464.0, d465 = 465.0;
  ASSERT_TRUE(convert(CKH_DT_F64, &d464, CKH_DT_F8_E4M3FN, &u8, 1, nullptr, CKH_FP8_NONSAT));
  EXPECT_EQ(u8, 0x7E);
  ASSERT_TRUE(convert(CKH_DT_F64, &d465, CKH_DT_F8_E4M3FN, &u8, 1, nullptr, CKH_FP8_NONSAT));
  EXPECT_EQ(u8, 0x7F);
  ASSERT_TRUE(convert(CKH_DT_F64, &d465, CKH_DT_F8_E4M3FN, &u8, 1, nullptr, CKH_FP8_SATURATE));
  EXPECT_EQ(u8, 0x7E);
  const uint8_t e4 = 0x7E;  // 448 -> f16 / bf16 / i16 / e5m2
  uint16_t h = 0;
  ASSERT_TRUE(one(CKH_DT_F8_E4M3FN, &e4, CKH_DT_F16, &h));
  EXPECT_EQ(h, 0x5F00);
  ASSERT_TRUE(one(CKH_DT_F8_E4M3FN, &e4, CKH_DT_BF16, &h));
  EXPECT_EQ(h, 0x43E0);
  int16_t i16 = 0;
  ASSERT_TRUE(one(CKH_DT_F8_E4M3FN, &e4, CKH_DT_I16, &i16));
  EXPECT_EQ(i16, 448);
  ASSERT_TRUE(one(CKH_DT_F8_E4M3FN, &e4, CKH_DT_F8_E5M2, &u8));
  EXPECT_EQ(u8, 0x5F);  // 448 = 1.75 * 2^8 in E5M2
  // Unsupported: E8M0 to anything else, unknown dtypes; E8M0 to itself is a copy.
  unsigned char b[8] = {}, c[8] = {0x42};
  EXPECT_FALSE(one(CKH_DT_F8_E8M0, c, CKH_DT_F32, b));
  EXPECT_FALSE(one(CKH_DT_F32, c, CKH_DT_F8_E8M0, b));
  EXPECT_FALSE(one(CKH_DT_INVALID, c, CKH_DT_F32, b));
  EXPECT_FALSE(one(CKH_DT_F32, c, 64, b));
  EXPECT_FALSE(one(99, c, 99, b));
  EXPECT_TRUE(one(CKH_DT_F8_E8M0, c, CKH_DT_F8_E8M0, b));
  EXPECT_EQ(b[0], 0x42);
  EXPECT_TRUE(convert(CKH_DT_F32, nullptr, CKH_DT_I8, nullptr, 0));
}

// SDK 1.1 block dtypes: ggml's block sizes (elements, bytes per block), and plain types as blocks of 1.
TEST(DtypeTraits, BlockTypesAndPlainTypes) {
  struct Want {
    ckh_dtype dt;
    uint32_t elems, bytes;
  };
  // sizeof(block_q8_0) = 2 + 32, q4_0 = 2 + 16, q4_1 = 4 + 16, q5_0 = 2 + 4 + 16, q5_1 = 4 + 4 + 16,
  // q2_K = 16 + 64 + 4, q3_K = 32 + 64 + 12 + 2, q4_K = 4 + 12 + 128, q5_K = 4 + 12 + 32 + 128,
  // q6_K = 128 + 64 + 16 + 2 (QK_K = 256).
  const Want blocks[] = {{CKH_DT_Q8_0, 32, 34}, {CKH_DT_Q4_0, 32, 18},  {CKH_DT_Q4_1, 32, 20},  {CKH_DT_Q5_0, 32, 22},
                         {CKH_DT_Q5_1, 32, 24}, {CKH_DT_Q2_K, 256, 84}, {CKH_DT_Q3_K, 256, 110}, {CKH_DT_Q4_K, 256, 144},
                         {CKH_DT_Q5_K, 256, 176}, {CKH_DT_Q6_K, 256, 210}};
  for (const auto &w : blocks) {
    ckh_dtype_traits_t t{};
    ASSERT_EQ(ckh_dtype_traits(w.dt, &t), 1) << w.dt;
    EXPECT_EQ(t.block_elems, w.elems) << w.dt;
    EXPECT_EQ(t.block_bytes, w.bytes) << w.dt;
    EXPECT_EQ(t.is_block, 1u) << w.dt;
    EXPECT_EQ(ckh_dtype_size(w.dt), 0u) << "block types never pose as plain bytes: " << w.dt;
  }
  ckh_dtype_traits_t t{};
  ASSERT_EQ(ckh_dtype_traits(CKH_DT_BF16, &t), 1);
  EXPECT_EQ(t.block_elems, 1u);
  EXPECT_EQ(t.block_bytes, 2u);
  EXPECT_EQ(t.is_block, 0u);
  EXPECT_EQ(ckh_dtype_traits(63, &t), 0);
  EXPECT_EQ(t.block_bytes, 0u);
  EXPECT_EQ(ckh_dtype_traits(CKH_DT_Q6_K + 1, &t), 0);
}
