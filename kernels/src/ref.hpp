// ref.hpp — scalar reference conversions: the ground truth every SIMD path must match bit for bit.
// Everything is in an anonymous namespace: each translation unit (compiled with its own ISA flags)
// gets a private copy, so no AVX-compiled code can leak into another ISA's table through the linker.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

namespace {
namespace ref {

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

// bf16: the top half of an f32.
inline float bf16_to_f32(uint16_t h) { return from_bits(static_cast<uint32_t>(h) << 16); }
inline uint16_t f32_to_bf16(float f) {
  const uint32_t u = bits(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

// IEEE binary16. NaN keeps its sign and top payload bits and is made quiet (as F16C does).
inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  if (exp == 0) {
    if (mant == 0) return from_bits(sign);
    int e = -1;
    do {
      mant <<= 1;
      ++e;
    } while (!(mant & 0x400u));
    mant &= 0x3FFu;
    return from_bits(sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (mant << 13));
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

// fp8 E4M3FN: bias 7, no Inf, 0x7F/0xFF NaN, max 448, min subnormal 2^-9.
inline float e4m3_to_f32(uint8_t b) {
  const float s = (b & 0x80) ? -1.0f : 1.0f;
  const int e = (b >> 3) & 0xF, m = b & 7;
  if (e == 15 && m == 7) return from_bits((b & 0x80 ? 0x80000000u : 0u) | 0x7FC00000u);
  if (e == 0) return s * std::ldexp(static_cast<float>(m), -9);
  return s * std::ldexp(1.0f + static_cast<float>(m) / 8.0f, e - 7);
}
inline uint8_t f32_to_e4m3(float f, int32_t saturate) {
  const uint32_t u = bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t x = u & 0x7FFFFFFFu;
  if (x > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Fu);
  if (x > 0x43E80000u) return static_cast<uint8_t>(sign | (saturate ? 0x7Eu : 0x7Fu));  // > 464 (Inf too)
  if (x < 0x3C800000u) {                                                                  // below 2^-6
    const float q = std::nearbyint(from_bits(x) * 512.0f);
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(q));
  }
  const uint32_t r = (x + 0x7FFFFu + ((x >> 20) & 1u)) >> 20;
  return static_cast<uint8_t>(sign | (r - 960u));
}

// fp8 E5M2: bias 15, Inf 0x7C, NaN 0x7D..0x7F, max 57344, min subnormal 2^-16.
inline float e5m2_to_f32(uint8_t b) { return f16_to_f32(static_cast<uint16_t>(b << 8)); }
inline uint8_t f32_to_e5m2(float f, int32_t saturate) {
  const uint32_t u = bits(f);
  const uint8_t sign = static_cast<uint8_t>((u >> 24) & 0x80u);
  const uint32_t x = u & 0x7FFFFFFFu;
  if (x > 0x7F800000u) return static_cast<uint8_t>(sign | 0x7Fu);
  if (x >= 0x47700000u) return static_cast<uint8_t>(sign | (saturate ? 0x7Bu : 0x7Cu));  // >= 61440 (Inf too)
  if (x < 0x38800000u) {                                                                  // below 2^-14
    const float q = std::nearbyint(from_bits(x) * 65536.0f);
    return static_cast<uint8_t>(sign | static_cast<uint8_t>(q));
  }
  const uint32_t r = (x + 0xFFFFFu + ((x >> 21) & 1u)) >> 21;
  return static_cast<uint8_t>(sign | (r - 448u));
}

inline int8_t f32_to_i8(float f) {
  if (std::isnan(f)) return 0;
  float r = std::nearbyint(f);
  if (r > 127.0f) r = 127.0f;
  if (r < -127.0f) r = -127.0f;
  return static_cast<int8_t>(r);
}

}  // namespace ref
}  // namespace
