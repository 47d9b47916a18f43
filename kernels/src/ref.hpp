// ref.hpp — scalar reference conversions and reductions: the ground truth every SIMD path must match
// bit for bit. The scalar table (arch_scalar.cpp) is made of these, and every SIMD table uses them
// for its tails (n % lanes).
//
// Everything is in an anonymous namespace: each translation unit (compiled with its own ISA flags)
// gets a private copy, so no AVX-compiled code can reach another ISA's table through the linker.
// The library is built with -ffp-contract=off, so `a * b + c` is never fused into an FMA in one TU
// and not in another.
//
// Results that are not fixed by IEEE 754 (NaN payloads, summation order) are defined here:
//   f16 decode:   NaN -> sign | 0x7F800000 | mant << 13 | 0x00400000 (payload kept, made quiet), as F16C.
//   f16 encode:   NaN -> sign | 0x7E00 | (mant >> 13) (top payload bits kept, made quiet), as F16C.
//   bf16 encode:  NaN -> (bits >> 16) | 0x0040 (sign and top payload kept, made quiet).
//   e4m3 decode:  0x7F/0xFF -> sign | 0x7FF00000 (the value PyTorch's c10 decoder produces).
//   e5m2 decode:  the f16 decode of (code << 8), so NaN payloads follow the f16 rule.
//   fp8 encode:   NaN -> sign | 0x7F for both formats (as PyTorch).
//   absmax/maxabsdiff: any NaN gives 0x7FC00000 (positive quiet NaN); n == 0 gives +0.
//   sumsq/sumsqdiff: element i is added to partial sum i % 32 (in index order), then the 32 partial
//     sums are folded pairwise: for w = 16, 8, 4, 2, 1: p[j] += p[j + w] for j < w; result p[0].
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {
namespace ref {

// ---- bit access; unaligned-safe element access (callers' pointers need no alignment) ----
inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
template <class T>
inline T ld(const T *p) {
  T v;
  std::memcpy(&v, static_cast<const void *>(p), sizeof(T));
  return v;
}
template <class T>
inline void st(T *p, T v) {
  std::memcpy(static_cast<void *>(p), &v, sizeof(T));
}

// ---- bf16: the top half of an f32 ----
inline float bf16_to_f32(uint16_t h) { return from_bits(static_cast<uint32_t>(h) << 16); }
inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);                  // RNE
}

// ---- IEEE binary16 ----
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  const uint32_t mant = h & 0x3FFu;
  if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in f32
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return from_bits(sign | bits(v));
  }
  if (exp == 31) return from_bits(sign | 0x7F800000u | (mant << 13) | (mant ? 0x400000u : 0u));
  return from_bits(sign | ((exp + 112u) << 23) | (mant << 13));
}
inline uint16_t f32_to_f16(float f) {
  const uint32_t u = bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t x = u & 0x7FFFFFFFu;
  if (x > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u | ((x >> 13) & 0x3FFu));
  if (x >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);  // >= 65520 rounds to Inf
  if (x < 0x38800000u) {                                                 // below 2^-14: subnormal
    const float q = std::nearbyint(from_bits(x) * 16777216.0f);         // exact scale by 2^24
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(q));
  }
  const uint32_t r = (x - (112u << 23) + 0xFFFu + ((x >> 13) & 1u)) >> 13;
  return static_cast<uint16_t>(sign | r);
}

// ---- fp8 E4M3FN: bias 7, no Inf, 0x7F/0xFF NaN, max 448, min subnormal 2^-9 ----
inline float e4m3_to_f32(uint8_t b) {
  const uint32_t sign = (b & 0x80u) ? 0x80000000u : 0u;
  const int e = (b >> 3) & 0xF, m = b & 7;
  if (e == 15 && m == 7) return from_bits(sign | 0x7FF00000u);
  const float mag = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
  return from_bits(sign | bits(mag));
}
// RNE. Overflow means "rounds above 448": |x| > 464 (464 is the tie between 448 and 480 and goes to
// 448, whose mantissa is even). NONSAT gives NaN there and for Inf; SATURATE gives +-448.
inline uint8_t f32_to_e4m3(float f, int32_t saturate) {
  const uint32_t u = bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t x = u & 0x7FFFFFFFu;
  if (x > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Fu);
  if (x > 0x43E80000u) return static_cast<uint8_t>(sign | (saturate ? 0x7Eu : 0x7Fu));  // > 464 (Inf too)
  if (x < 0x3C800000u) {                                                                  // below 2^-6
    const float q = std::nearbyint(from_bits(x) * 512.0f);                               // exact scale by 2^9
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(q));
  }
  const uint32_t r = (x + 0x7FFFFu + ((x >> 20) & 1u)) >> 20;
  return static_cast<uint8_t>(sign | (r - 960u));  // rebias: (127 - 7) << 3
}

// ---- fp8 E5M2: bias 15, Inf 0x7C, NaN 0x7D..0x7F, max 57344, min subnormal 2^-16 ----
inline float e5m2_to_f32(uint8_t b) { return f16_to_f32(static_cast<uint16_t>(b << 8)); }
// RNE. Overflow: |x| >= 61440 (the tie between 57344 and 65536 goes to 65536 = Inf, even mantissa).
inline uint8_t f32_to_e5m2(float f, int32_t saturate) {
  const uint32_t u = bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t x = u & 0x7FFFFFFFu;
  if (x > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Fu);
  if (x >= 0x47700000u) return static_cast<uint8_t>(sign | (saturate ? 0x7Bu : 0x7Cu));  // >= 61440 (Inf too)
  if (x < 0x38800000u) {                                                                  // below 2^-14
    const float q = std::nearbyint(from_bits(x) * 65536.0f);                             // exact scale by 2^16
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(q));
  }
  const uint32_t r = (x + 0xFFFFFu + ((x >> 21) & 1u)) >> 21;
  return static_cast<uint8_t>(sign | (r - 448u));  // rebias: (127 - 15) << 2
}

inline int8_t f32_to_i8(float f) {
  if (std::isnan(f)) return 0;
  float r = std::nearbyint(f);
  if (r > 127.0f) r = 127.0f;
  if (r < -127.0f) r = -127.0f;
  return static_cast<int8_t>(r);
}

// ---- reductions ----
// max |x| as the largest |x| bit pattern: orders like the values, and NaN patterns are above Inf.
inline uint32_t abs_bits(float f) { return bits(f) & 0x7FFFFFFFu; }
inline float absmax_result(uint32_t m) { return m > 0x7F800000u ? from_bits(0x7FC00000u) : from_bits(m); }

constexpr int kSumLanes = 32;
inline void sumsq_into(double *p, const float *s, uint64_t i, uint64_t n) {
  for (; i < n; ++i) {
    const double v = ld(s + i);
    p[i % kSumLanes] += v * v;
  }
}
inline void sumsqdiff_into(double *p, const float *a, const float *b, uint64_t i, uint64_t n) {
  for (; i < n; ++i) {
    const double d = static_cast<double>(ld(a + i)) - static_cast<double>(ld(b + i));
    p[i % kSumLanes] += d * d;
  }
}
inline double fold(double *p) {
  for (int w = kSumLanes / 2; w >= 1; w /= 2)
    for (int j = 0; j < w; ++j) p[j] += p[j + w];
  return p[0];
}

}  // namespace ref
}  // namespace
