// impl.hpp — the SIMD kernels, written once over xsimd batches and compiled by one translation unit per
// ISA (arch_sse2.cpp, arch_avx2.cpp, arch_avx512.cpp). The TU's own compile flags pick the
// architecture (`Arch` below), so there are no templates over architectures and nothing to instantiate
// elsewhere. Everything is in an anonymous namespace: nothing compiled for one ISA is shared with
// another through the linker (tests/kernels checks the object files for that).
//
// xsimd 8.1 does the arithmetic, compares and selects; raw intrinsics do what it lacks: widening loads
// of 8/16-bit data, narrowing packs, F16C, f32 -> f64 widening. Heads (up to 15 elements, to align
// the f32 stream to 64 bytes) and tails (n % block) use the scalar reference of ref.hpp; the vector
// code computes the same function differently, and the tests hold it bit-identical to the reference.
#pragma once
// GCC 12's AVX-512 intrinsics initialise their "undefined" operands from themselves, which -Wall
// reports as uninitialised once inlined; silence that for the intrinsic headers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#pragma GCC diagnostic pop

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

#include <ckhost/ckh_kernels.h>

#include "ref.hpp"

namespace {

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512DQ__) && defined(__AVX512VL__) && \
    defined(__F16C__) && defined(__FMA__)
using Arch = xsimd::avx512bw;
#define CKH_KERNELS_F16C 1
#elif defined(__AVX2__) && defined(__F16C__) && defined(__FMA__)
using Arch = xsimd::avx2;
#define CKH_KERNELS_F16C 1
#elif defined(__SSE2__)
using Arch = xsimd::sse2;
#define CKH_KERNELS_F16C 0
#else
#error "impl.hpp needs at least SSE2"
#endif

using F = xsimd::batch<float, Arch>;
using I = xsimd::batch<int32_t, Arch>;
using D = xsimd::batch<double, Arch>;
constexpr uint64_t N = F::size;

inline I bits(const F &f) { return xsimd::bitwise_cast<I>(f); }
inline F floats(const I &i) { return xsimd::bitwise_cast<F>(i); }
inline F loadf(const float *p) { return F::load_unaligned(p); }

// ---- ISA-specific loads and stores ---------------------------------------------------------------
// load_u8/load_u16: N elements zero-extended to 32-bit lanes.
// store_i16x2: 2N elements from two vectors whose lanes are in int16 range (the low 16 bits are stored).
// store_u8x4 / store_i8x4: 4N elements from four vectors with lanes in [0, 255] / [-128, 127].
// widen_f64: 2 * D::size floats as two f64 vectors (lo = first half).
#if defined(__AVX512F__)
inline I load_u8(const uint8_t *p) { return I(_mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)))); }
inline I load_u16(const uint16_t *p) {
  return I(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))));
}
inline void store_i16x2(const I &a, const I &b, uint16_t *p) {
  const __m512i t = _mm512_permutexvar_epi64(_mm512_setr_epi64(0, 2, 4, 6, 1, 3, 5, 7), _mm512_packs_epi32(a, b));
  _mm512_storeu_si512(p, t);
}
inline void store_8x4(__m512i ab, __m512i cd, bool is_signed, void *p) {
  // Per 128-bit lane k the packs give dwords [a_k, b_k, c_k, d_k]; gather them back into a, b, c, d order.
  const __m512i t = is_signed ? _mm512_packs_epi16(ab, cd) : _mm512_packus_epi16(ab, cd);
  const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_si512(p, _mm512_permutexvar_epi32(idx, t));
}
inline void store_u8x4(const I &a, const I &b, const I &c, const I &d, uint8_t *p) {
  store_8x4(_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, d), false, p);
}
inline void store_i8x4(const I &a, const I &b, const I &c, const I &d, int8_t *p) {
  store_8x4(_mm512_packs_epi32(a, b), _mm512_packs_epi32(c, d), true, p);
}
inline void widen_f64(const float *p, D &lo, D &hi) {
  lo = D(_mm512_cvtps_pd(_mm256_loadu_ps(p)));
  hi = D(_mm512_cvtps_pd(_mm256_loadu_ps(p + 8)));
}
inline F f16_load(const uint16_t *p) { return F(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p)))); }
inline void f16_store(const F &f, uint16_t *p) {
  _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
}
inline F e5m2_load(const uint8_t *p) {
  const __m256i h = _mm256_slli_epi16(_mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))), 8);
  return F(_mm512_cvtph_ps(h));
}
#elif defined(__AVX2__)
inline I load_u8(const uint8_t *p) { return I(_mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p)))); }
inline I load_u16(const uint16_t *p) {
  return I(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))));
}
inline void store_i16x2(const I &a, const I &b, uint16_t *p) {
  // packs works per 128-bit lane: [a0-3 b0-3 | a4-7 b4-7]; put the 64-bit quarters back in order.
  const __m256i t = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
  _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), t);
}
inline void store_8x4(__m256i ab, __m256i cd, bool is_signed, void *p) {
  const __m256i t = is_signed ? _mm256_packs_epi16(ab, cd) : _mm256_packus_epi16(ab, cd);
  const __m256i r = _mm256_permutevar8x32_epi32(t, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  _mm256_storeu_si256(static_cast<__m256i *>(p), r);
}
inline void store_u8x4(const I &a, const I &b, const I &c, const I &d, uint8_t *p) {
  store_8x4(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d), false, p);
}
inline void store_i8x4(const I &a, const I &b, const I &c, const I &d, int8_t *p) {
  store_8x4(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d), true, p);
}
inline void widen_f64(const float *p, D &lo, D &hi) {
  lo = D(_mm256_cvtps_pd(_mm_loadu_ps(p)));
  hi = D(_mm256_cvtps_pd(_mm_loadu_ps(p + 4)));
}
inline F f16_load(const uint16_t *p) { return F(_mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)))); }
inline void f16_store(const F &f, uint16_t *p) {
  _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm256_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
}
inline F e5m2_load(const uint8_t *p) {
  const __m128i h = _mm_slli_epi16(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p))), 8);
  return F(_mm256_cvtph_ps(h));
}
#else  // SSE2
inline I load_u8(const uint8_t *p) {
  int32_t w;
  std::memcpy(&w, p, 4);
  const __m128i z = _mm_setzero_si128();
  return I(_mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(w), z), z));
}
inline I load_u16(const uint16_t *p) {
  return I(_mm_unpacklo_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p)), _mm_setzero_si128()));
}
inline void store_i16x2(const I &a, const I &b, uint16_t *p) {
  _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm_packs_epi32(a, b));
}
inline void store_u8x4(const I &a, const I &b, const I &c, const I &d, uint8_t *p) {
  _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm_packus_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d)));
}
inline void store_i8x4(const I &a, const I &b, const I &c, const I &d, int8_t *p) {
  _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm_packs_epi16(_mm_packs_epi32(a, b), _mm_packs_epi32(c, d)));
}
inline void widen_f64(const float *p, D &lo, D &hi) {
  const __m128 v = _mm_loadu_ps(p);
  lo = D(_mm_cvtps_pd(v));
  hi = D(_mm_cvtps_pd(_mm_movehl_ps(v, v)));
}
#endif

// ---- per-lane conversions (the same cases as ref.hpp, computed differently) ---------------------
// binary16 bits (lanes in [0, 65535]) -> f32 bits. Subnormals go through an exact int -> float
// conversion and a power-of-two scale, so no f32 denormal is involved (immune to DAZ).
inline I f16_bits_to_f32_bits(const I &h) {
  const I sign = (h & I(0x8000)) << 16;
  const I e = (h >> 10) & I(0x1F);
  const I m = h & I(0x3FF);
  const I norm = ((h & I(0x7FFF)) << 13) + I(112 << 23);
  const I sub = bits(xsimd::batch_cast<float>(m) * F(0x1p-24f));
  const I infnan = I(0x7F800000) | (m << 13) | xsimd::select(m != I(0), I(0x400000), I(0));
  return xsimd::select(e == I(0), sub, xsimd::select(e == I(31), infnan, norm)) | sign;
}
// E4M3FN codes (lanes in [0, 255]) -> f32, integer route (SSE2).
inline F e4m3_lanes_to_f32(const I &b) {
  const I mag = b & I(0x7F);
  const I sign = (b & I(0x80)) << 24;
  const I norm = (mag << 20) + I(120 << 23);
  const I sub = bits(xsimd::batch_cast<float>(mag) * F(0x1p-9f));
  I r = xsimd::select(mag < I(8), sub, norm);
  r = xsimd::select(mag == I(0x7F), I(0x7FF00000), r);
  return floats(r | sign);
}
#if CKH_KERNELS_F16C
// E4M3FN -> f32 through F16C: S.EEEE.MMM placed as the f16 S.0EEEE.MMM0000000 is the same number times
// 2^-8 (subnormals included, both formats scale alike); the one NaN magnitude comes out as 480.
inline F e4m3_from_f16_lanes(const F &r256) {
  const F r = r256 * F(256.0f);
  return xsimd::select(xsimd::abs(r) == F(480.0f), floats(bits(r) | I(0x7FF00000)), r);
}
#if defined(__AVX512F__)
inline F e4m3_load(const uint8_t *p) {
  const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
  const __m256i h = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(b, 8), 1), _mm256_set1_epi16(-16385));
  return e4m3_from_f16_lanes(F(_mm512_cvtph_ps(h)));
}
#else
inline F e4m3_load(const uint8_t *p) {
  const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p)));
  const __m128i h = _mm_and_si128(_mm_srai_epi16(_mm_slli_epi16(b, 8), 1), _mm_set1_epi16(-16385));  // 0xBFFF
  return e4m3_from_f16_lanes(F(_mm256_cvtph_ps(h)));
}
#endif
#endif

// RNE of a magnitude x (f32 bits, finite and below the target's overflow) to a float format with M
// mantissa bits whose smallest normal has the f32 biased exponent EMIN; returns the target's code.
// One f32 addition rounds: c = 2^(e + 23 - M) has the target's quantum at x's exponent e as its ulp
// (for subnormal targets e is pinned to EMIN's, whose quantum is the subnormal step), so x + c is
// c + round(x), and the bit distance to c counts quanta: 2^M + mantissa for normals, the whole code
// for subnormals. A mantissa that rounds up to 2^(M+1) carries into the exponent on its own.
template <int M, int EMIN>
inline I round_to_format(const I &x) {
  const I ex = xsimd::max(x >> 23, I(EMIN));
  const I c = (ex + I(23 - M)) << 23;
  const I sum = bits(floats(x) + floats(c));
  return ((ex - I(EMIN)) << M) + (sum - c);
}
// f32 -> binary16 code in int16 range (sign-extended, ready for store_i16x2) (SSE2).
inline I f32_to_f16_lanes(const F &f) {
  const I u = bits(f);
  const I x = u & I(0x7FFFFFFF);
  const I sign = (u >> 16) & I(0x8000);
  I r = round_to_format<10, 113>(x);
  r = xsimd::select(x > I(0x477FEFFF), I(0x7C00), r);  // >= 65520 rounds to Inf
  r = xsimd::select(x > I(0x7F800000), I(0x7E00) | ((x >> 13) & I(0x3FF)), r);
  return ((r | sign) << 16) >> 16;
}
// f32 -> bf16 code in int16 range (arithmetic shifts keep the low 16 bits and sign-extend them).
inline I f32_to_bf16_lanes(const F &f) {
  const I u = bits(f);
  const I r = (u + I(0x7FFF) + ((u >> 16) & I(1))) >> 16;
  const I q = (u >> 16) | I(0x40);
  return xsimd::select((u & I(0x7FFFFFFF)) > I(0x7F800000), q, r);
}
// f32 -> fp8 code in [0, 255]. Magnitudes above LIMIT (those that round past the largest finite value,
// Inf and NaN) give OVF, except NaN, which gives 0x7F.
template <int M, int EMIN, int32_t LIMIT, int OVF>
inline I f32_to_fp8_lanes(const F &f) {
  const I u = bits(f);
  const I x = u & I(0x7FFFFFFF);
  const I sign = (u >> 24) & I(0x80);
  I big(OVF);
  if constexpr (OVF != 0x7F) big = xsimd::select(x > I(0x7F800000), I(0x7F), big);
  return xsimd::select(x > I(LIMIT), big, round_to_format<M, EMIN>(x)) | sign;
}
// E4M3FN: overflow is |x| > 464 (0x43E80000; 464 itself ties to 448). E5M2: |x| >= 61440.
template <int OVF>
inline I e4m3_lanes(const F &f) { return f32_to_fp8_lanes<3, 121, 0x43E80000, OVF>(f); }
template <int OVF>
inline I e5m2_lanes(const F &f) { return f32_to_fp8_lanes<2, 113, 0x476FFFFF, OVF>(f); }

// round-half-even(v) clamped to [-127, 127], NaN -> 0. Clamping first keeps the f32 -> i32 conversion
// in range; rounding and clamping commute because the bounds are integers.
inline I f32_to_i8_lanes(const F &v) {
  F c = xsimd::min(xsimd::max(v, F(-127.0f)), F(127.0f));
  c = xsimd::select(xsimd::isnan(v), F(0.0f), c);  // (not v != v: xsimd uses the ordered NEQ on AVX)
  return xsimd::nearbyint_as_int(c);
}

// ---- kernels --------------------------------------------------------------------------------------
// Every kernel runs the scalar reference on a head of up to 15 elements, so that its f32 stream (the
// wider side) is 64-byte aligned in the vector loop (no loads or stores split across cache lines;
// buffers from malloc are only 16-byte aligned), then vectors, then the reference on the tail.
inline uint64_t head(const void *f32_side, uint64_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(f32_side);
  const uint64_t h = a % 4 ? 0 : (64 - a % 64) % 64 / 4;
  return h < n ? h : n;
}

void bf16_to_f32(const uint16_t *s, float *d, uint64_t n) {
  uint64_t i = 0;
  for (const uint64_t h = head(d, n); i < h; ++i) ref::st(d + i, ref::bf16_to_f32(ref::ld(s + i)));
  for (; i + N <= n; i += N) floats(load_u16(s + i) << 16).store_unaligned(d + i);
  for (; i < n; ++i) ref::st(d + i, ref::bf16_to_f32(ref::ld(s + i)));
}
void f16_to_f32(const uint16_t *s, float *d, uint64_t n) {
  uint64_t i = 0;
  for (const uint64_t h = head(d, n); i < h; ++i) ref::st(d + i, ref::f16_to_f32(ref::ld(s + i)));
#if CKH_KERNELS_F16C
  for (; i + N <= n; i += N) f16_load(s + i).store_unaligned(d + i);
#else
  for (; i + N <= n; i += N) floats(f16_bits_to_f32_bits(load_u16(s + i))).store_unaligned(d + i);
#endif
  for (; i < n; ++i) ref::st(d + i, ref::f16_to_f32(ref::ld(s + i)));
}
void e4m3_to_f32(const uint8_t *s, float *d, uint64_t n) {
  uint64_t i = 0;
  for (const uint64_t h = head(d, n); i < h; ++i) ref::st(d + i, ref::e4m3_to_f32(s[i]));
#if CKH_KERNELS_F16C
  for (; i + N <= n; i += N) e4m3_load(s + i).store_unaligned(d + i);
#else
  for (; i + N <= n; i += N) e4m3_lanes_to_f32(load_u8(s + i)).store_unaligned(d + i);
#endif
  for (; i < n; ++i) ref::st(d + i, ref::e4m3_to_f32(s[i]));
}
void e5m2_to_f32(const uint8_t *s, float *d, uint64_t n) {
  uint64_t i = 0;
  for (const uint64_t h = head(d, n); i < h; ++i) ref::st(d + i, ref::e5m2_to_f32(s[i]));
#if CKH_KERNELS_F16C
  for (; i + N <= n; i += N) e5m2_load(s + i).store_unaligned(d + i);
#else
  for (; i + N <= n; i += N) floats(f16_bits_to_f32_bits(load_u8(s + i) << 8)).store_unaligned(d + i);
#endif
  for (; i < n; ++i) ref::st(d + i, ref::e5m2_to_f32(s[i]));
}

void f32_to_bf16(const float *s, uint16_t *d, uint64_t n) {
  uint64_t i = 0;
  for (const uint64_t h = head(s, n); i < h; ++i) ref::st(d + i, ref::f32_to_bf16(ref::ld(s + i)));
  for (; i + 2 * N <= n; i += 2 * N)
    store_i16x2(f32_to_bf16_lanes(loadf(s + i)), f32_to_bf16_lanes(loadf(s + i + N)), d + i);
  for (; i < n; ++i) ref::st(d + i, ref::f32_to_bf16(ref::ld(s + i)));
}
void f32_to_f16(const float *s, uint16_t *d, uint64_t n) {
  uint64_t i = 0;
  for (const uint64_t h = head(s, n); i < h; ++i) ref::st(d + i, ref::f32_to_f16(ref::ld(s + i)));
#if CKH_KERNELS_F16C
  for (; i + N <= n; i += N) f16_store(loadf(s + i), d + i);
#else
  for (; i + 2 * N <= n; i += 2 * N)
    store_i16x2(f32_to_f16_lanes(loadf(s + i)), f32_to_f16_lanes(loadf(s + i + N)), d + i);
#endif
  for (; i < n; ++i) ref::st(d + i, ref::f32_to_f16(ref::ld(s + i)));
}

// fp8 encoders: 4N elements per iteration; `Lanes` is e4m3_lanes<OVF> or e5m2_lanes<OVF>.
template <I (*Lanes)(const F &), uint8_t (*Ref)(float, int32_t), bool Scaled>
void fp8_encode(const float *s, uint8_t *d, uint64_t n, float k, int32_t mode) {
  const F kk(k);
  auto ld = [&](uint64_t j) { return Scaled ? loadf(s + j) * kk : loadf(s + j); };
  auto one = [&](uint64_t j) { return Ref(Scaled ? ref::ld(s + j) * k : ref::ld(s + j), mode); };
  uint64_t i = 0;
  for (const uint64_t h = head(s, n); i < h; ++i) d[i] = one(i);
  for (; i + 4 * N <= n; i += 4 * N)
    store_u8x4(Lanes(ld(i)), Lanes(ld(i + N)), Lanes(ld(i + 2 * N)), Lanes(ld(i + 3 * N)), d + i);
  for (; i < n; ++i) d[i] = one(i);
}
template <bool Scaled>
void e4m3_encode(const float *s, uint8_t *d, uint64_t n, float k, int32_t mode) {
  if (mode == CKH_FP8_SATURATE) fp8_encode<e4m3_lanes<0x7E>, ref::f32_to_e4m3, Scaled>(s, d, n, k, mode);
  else fp8_encode<e4m3_lanes<0x7F>, ref::f32_to_e4m3, Scaled>(s, d, n, k, mode);
}
template <bool Scaled>
void e5m2_encode(const float *s, uint8_t *d, uint64_t n, float k, int32_t mode) {
  if (mode == CKH_FP8_SATURATE) fp8_encode<e5m2_lanes<0x7B>, ref::f32_to_e5m2, Scaled>(s, d, n, k, mode);
  else fp8_encode<e5m2_lanes<0x7C>, ref::f32_to_e5m2, Scaled>(s, d, n, k, mode);
}
void f32_to_e4m3(const float *s, uint8_t *d, uint64_t n, int32_t mode) { e4m3_encode<false>(s, d, n, 1.0f, mode); }
void f32_to_e5m2(const float *s, uint8_t *d, uint64_t n, int32_t mode) { e5m2_encode<false>(s, d, n, 1.0f, mode); }
void f32_to_e4m3_scaled(const float *s, uint8_t *d, uint64_t n, float k, int32_t mode) {
  e4m3_encode<true>(s, d, n, k, mode);
}
void f32_to_e5m2_scaled(const float *s, uint8_t *d, uint64_t n, float k, int32_t mode) {
  e5m2_encode<true>(s, d, n, k, mode);
}
void f32_to_i8_scaled(const float *s, int8_t *d, uint64_t n, float k) {
  const F kk(k);
  uint64_t i = 0;
  for (const uint64_t h = head(s, n); i < h; ++i) d[i] = ref::f32_to_i8(ref::ld(s + i) * k);
  for (; i + 4 * N <= n; i += 4 * N)
    store_i8x4(f32_to_i8_lanes(loadf(s + i) * kk), f32_to_i8_lanes(loadf(s + i + N) * kk),
               f32_to_i8_lanes(loadf(s + i + 2 * N) * kk), f32_to_i8_lanes(loadf(s + i + 3 * N) * kk), d + i);
  for (; i < n; ++i) d[i] = ref::f32_to_i8(ref::ld(s + i) * k);
}
#if CKH_KERNELS_F16C
// The f16 placement of N E4M3 codes widened to f32: code * 2^-8 exactly (e4m3_load's bits), except that
// the NaN codes 0x7F/0xFF, which land on +-1.875 (f16 0x3F80), become the f16 NaN 0x7F80 and so widen to
// 0x7FF00000 with their sign, the NaN the unfused steps give. Done on the 16-bit lanes, before widening.
inline F e4m3_r256_lanes(const uint8_t *p) {
#if defined(__AVX512F__)
  const __m256i b = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p)));
  __m256i h = _mm256_and_si256(_mm256_srai_epi16(_mm256_slli_epi16(b, 8), 1), _mm256_set1_epi16(-16385));  // 0xBFFF
  const __m256i nan = _mm256_cmpeq_epi16(_mm256_and_si256(h, _mm256_set1_epi16(0x7FFF)), _mm256_set1_epi16(0x3F80));
  h = _mm256_or_si256(h, _mm256_and_si256(nan, _mm256_set1_epi16(0x4000)));
  return F(_mm512_cvtph_ps(h));
#else
  const __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p)));
  __m128i h = _mm_and_si128(_mm_srai_epi16(_mm_slli_epi16(b, 8), 1), _mm_set1_epi16(-16385));
  const __m128i nan = _mm_cmpeq_epi16(_mm_and_si128(h, _mm_set1_epi16(0x7FFF)), _mm_set1_epi16(0x3F80));
  h = _mm_or_si128(h, _mm_and_si128(nan, _mm_set1_epi16(0x4000)));
  return F(_mm256_cvtph_ps(h));
#endif
}
// One fused lane step of e4m3_scaled_to_bf16: r256 (= code * 2^-8) times k * 2^8 is the same f32 product
// as code * k (a power-of-two factor moved between exact operands); a NaN keeps its payload through the
// product (0x7FF00000 | sign), whose RNE below stays that NaN, and an overflowing product is Inf, which
// RNE keeps: so the bf16 rounding needs no NaN select.
inline I e4m3_scaled_bf16_lanes(const uint8_t *p, const F &k256) {
  const I u = bits(e4m3_r256_lanes(p) * k256);
  return (u + I(0x7FFF) + ((u >> 16) & I(1))) >> 16;
}
#endif
void e4m3_scaled_to_bf16(const uint8_t *s, uint16_t *d, uint64_t n, float k) {
  const F kk(k);
  uint64_t i = 0;
#if CKH_KERNELS_F16C
  const float k256f = k * 256.0f;
  if (std::isfinite(k256f)) {  // then k * 2^8 is exact, and so the factor moves
    const F k256(k256f);
#if defined(__AVX512BF16__)
    // The hardware RNE (vcvtne2ps2bf16) flushes subnormal inputs to zero and quiets NaNs, which our NaN
    // already is: exact when no product is subnormal, i.e. |k| >= 2^-117 (the least code is 2^-9), or k = 0.
    if (std::fabs(k) >= 0x1p-117f || k == 0.0f)
      for (; i + 2 * N <= n; i += 2 * N) {
        const __m512bh r = _mm512_cvtne2ps_pbh(e4m3_r256_lanes(s + i + N) * k256, e4m3_r256_lanes(s + i) * k256);
        _mm512_storeu_si512(reinterpret_cast<void *>(d + i), reinterpret_cast<const __m512i &>(r));
      }
#endif
    for (; i + 2 * N <= n; i += 2 * N)
      store_i16x2(e4m3_scaled_bf16_lanes(s + i, k256), e4m3_scaled_bf16_lanes(s + i + N, k256), d + i);
  }
  for (; i + 2 * N <= n; i += 2 * N)
    store_i16x2(f32_to_bf16_lanes(e4m3_load(s + i) * kk), f32_to_bf16_lanes(e4m3_load(s + i + N) * kk), d + i);
#else
  for (; i + 2 * N <= n; i += 2 * N)
    store_i16x2(f32_to_bf16_lanes(e4m3_lanes_to_f32(load_u8(s + i)) * kk),
                f32_to_bf16_lanes(e4m3_lanes_to_f32(load_u8(s + i + N)) * kk), d + i);
#endif
  for (; i < n; ++i) ref::st(d + i, ref::f32_to_bf16(ref::e4m3_to_f32(s[i]) * k));
}
void e4m3_grouped_to_bf16(const uint8_t *s, uint16_t *d, uint64_t n, const float *k, uint64_t group) {
  if (group == 0) return;
  for (uint64_t j = 0, g = 0; j < n; j += group, ++g) e4m3_scaled_to_bf16(s + j, d + j, std::min(group, n - j), k[g]);
}
void scale_f32(const float *s, float *d, uint64_t n, float k) {
  const F kk(k);
  uint64_t i = 0;
  for (const uint64_t h = head(d, n); i < h; ++i) ref::st(d + i, ref::ld(s + i) * k);
  for (; i + N <= n; i += N) (loadf(s + i) * kk).store_unaligned(d + i);
  for (; i < n; ++i) ref::st(d + i, ref::ld(s + i) * k);
}

// max |x| over bit patterns (see ref.hpp): a signed 32-bit max of (bits & 0x7FFFFFFF). Order-free.
inline uint32_t lanes_max(const I &m) {
  alignas(64) int32_t t[N];
  m.store_aligned(t);
  uint32_t r = 0;
  for (uint64_t j = 0; j < N; ++j) r = static_cast<uint32_t>(t[j]) > r ? static_cast<uint32_t>(t[j]) : r;
  return r;
}
float absmax_f32(const float *s, uint64_t n) {
  const I abs(0x7FFFFFFF);
  I m0(0), m1(0);
  uint32_t m = 0;
  uint64_t i = 0;
  for (const uint64_t h = head(s, n); i < h; ++i) m = std::max(m, ref::abs_bits(ref::ld(s + i)));
  for (; i + 2 * N <= n; i += 2 * N) {
    m0 = xsimd::max(m0, bits(loadf(s + i)) & abs);
    m1 = xsimd::max(m1, bits(loadf(s + i + N)) & abs);
  }
  m = std::max(m, lanes_max(xsimd::max(m0, m1)));
  for (; i < n; ++i) m = std::max(m, ref::abs_bits(ref::ld(s + i)));
  return ref::absmax_result(m);
}
float maxabsdiff_f32(const float *a, const float *b, uint64_t n) {
  const I abs(0x7FFFFFFF);
  I m0(0), m1(0);
  uint32_t m = 0;
  uint64_t i = 0;
  for (const uint64_t h = head(a, n); i < h; ++i) m = std::max(m, ref::abs_bits(ref::ld(a + i) - ref::ld(b + i)));
  for (; i + 2 * N <= n; i += 2 * N) {
    m0 = xsimd::max(m0, bits(loadf(a + i) - loadf(b + i)) & abs);
    m1 = xsimd::max(m1, bits(loadf(a + i + N) - loadf(b + i + N)) & abs);
  }
  m = std::max(m, lanes_max(xsimd::max(m0, m1)));
  for (; i < n; ++i) m = std::max(m, ref::abs_bits(ref::ld(a + i) - ref::ld(b + i)));
  return ref::absmax_result(m);
}

// f64 sums in ref.hpp's order: partial sum j collects the elements i with i % 32 == j, in index order.
// The head goes into the partial sums p first; the vector loop then starts at index h, so vector lane
// L of a block holds partial (h + L) % 32: the accumulators are loaded from and stored back to p
// rotated by h, keeping every partial's additions in index order.
constexpr int kLanes = ref::kSumLanes;
constexpr int kAcc = kLanes / static_cast<int>(D::size);
static_assert(kLanes % (2 * D::size) == 0, "partial sums must tile the vectors");
inline void load_rotated(D *acc, const double *p, uint64_t h) {
  alignas(64) double t[kLanes];
  for (int l = 0; l < kLanes; ++l) t[l] = p[(h + l) % kLanes];
  for (int k = 0; k < kAcc; ++k) acc[k] = D::load_aligned(t + k * D::size);
}
inline void store_rotated(const D *acc, double *p, uint64_t h) {
  alignas(64) double t[kLanes];
  for (int k = 0; k < kAcc; ++k) acc[k].store_aligned(t + k * D::size);
  for (int l = 0; l < kLanes; ++l) p[(h + l) % kLanes] = t[l];
}
double sumsq_f32(const float *s, uint64_t n) {
  double p[kLanes] = {};
  const uint64_t h = head(s, n);
  ref::sumsq_into(p, s, 0, h);
  D acc[kAcc];
  load_rotated(acc, p, h);
  uint64_t i = h;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kAcc; k += 2) {
      D lo, hi;
      widen_f64(s + i + k * D::size, lo, hi);
      acc[k] = acc[k] + lo * lo;
      acc[k + 1] = acc[k + 1] + hi * hi;
    }
  }
  store_rotated(acc, p, h);
  ref::sumsq_into(p, s, i, n);
  return ref::fold(p);
}
double sumsqdiff_f32(const float *a, const float *b, uint64_t n) {
  double p[kLanes] = {};
  const uint64_t h = head(a, n);
  ref::sumsqdiff_into(p, a, b, 0, h);
  D acc[kAcc];
  load_rotated(acc, p, h);
  uint64_t i = h;
  for (; i + kLanes <= n; i += kLanes) {
    for (int k = 0; k < kAcc; k += 2) {
      D alo, ahi, blo, bhi;
      widen_f64(a + i + k * D::size, alo, ahi);
      widen_f64(b + i + k * D::size, blo, bhi);
      const D dlo = alo - blo, dhi = ahi - bhi;
      acc[k] = acc[k] + dlo * dlo;
      acc[k + 1] = acc[k + 1] + dhi * dhi;
    }
  }
  store_rotated(acc, p, h);
  ref::sumsqdiff_into(p, a, b, i, n);
  return ref::fold(p);
}

// The table, constant-initialised (no code of this TU runs until a kernel is called).
#define CKH_KERNELS_TABLE(name)                                                                         \
  {                                                                                                      \
    sizeof(ckh_kernels_t), 0, name, bf16_to_f32, f16_to_f32, e4m3_to_f32, e5m2_to_f32, f32_to_bf16,      \
        f32_to_f16, f32_to_e4m3, f32_to_e5m2, f32_to_e4m3_scaled, f32_to_e5m2_scaled, f32_to_i8_scaled,  \
        scale_f32, absmax_f32, sumsq_f32, maxabsdiff_f32, sumsqdiff_f32, e4m3_scaled_to_bf16,            \
        e4m3_grouped_to_bf16                                                                         \
  }

}  // namespace
