// impl.hpp — the kernels, written once over an xsimd architecture tag and instantiated by one
// translation unit per ISA (arch_<isa>.cpp, each compiled with that ISA's flags). Everything lives in
// an anonymous namespace so that nothing compiled for one ISA is shared with another through the linker.
// Tails (n % lanes) use the scalar reference of ref.hpp, so results are bit-identical to it.
#pragma once
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include <xsimd/xsimd.hpp>

#include <ckhost/ckh_kernels.h>

#include "ref.hpp"

namespace {

template <class A>
struct Kern {
  using F = xsimd::batch<float, A>;
  using I = xsimd::batch<int32_t, A>;
  static constexpr size_t N = F::size;

  // ---- 16-bit lanes <-> 32-bit lanes (ISA specific) ----
  static I widen16(const uint16_t *p) {
#if defined(__AVX512F__)
    if constexpr (N == 16) return I(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i *>(p))));
#endif
#if defined(__AVX2__)
    if constexpr (N == 8) return I(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i *>(p))));
#endif
    if constexpr (N == 4)
      return I(_mm_unpacklo_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i *>(p)), _mm_setzero_si128()));
    alignas(64) int32_t t[N];
    for (size_t j = 0; j < N; ++j) t[j] = p[j];
    return I::load_aligned(t);
  }
  // Stores the low 16 bits of every lane (lanes hold values < 65536).
  static void narrow16(const I &v, uint16_t *p) {
#if defined(__AVX512F__)
    if constexpr (N == 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i *>(p), _mm512_cvtepi32_epi16(v));
      return;
    }
#endif
#if defined(__AVX2__)
    if constexpr (N == 8) {
      __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(v, v), 0xD8);
      _mm_storeu_si128(reinterpret_cast<__m128i *>(p), _mm256_castsi256_si128(pk));
      return;
    }
#endif
    if constexpr (N == 4) {
      // Sign-extend the low 16 bits so the signed saturating pack keeps the bit patterns.
      __m128i s = _mm_srai_epi32(_mm_slli_epi32(v, 16), 16);
      _mm_storel_epi64(reinterpret_cast<__m128i *>(p), _mm_packs_epi32(s, s));
      return;
    }
    alignas(64) int32_t t[N];
    v.store_aligned(t);
    for (size_t j = 0; j < N; ++j) p[j] = static_cast<uint16_t>(t[j]);
  }
  static void narrow8(const I &v, uint8_t *p) {
    alignas(64) int32_t t[N];
    v.store_aligned(t);
    for (size_t j = 0; j < N; ++j) p[j] = static_cast<uint8_t>(t[j]);
  }
  static I bits(const F &f) { return xsimd::bitwise_cast<I>(f); }
  static F floats(const I &i) { return xsimd::bitwise_cast<F>(i); }

  // ---- conversions ----
  static void bf16_to_f32(const uint16_t *s, float *d, uint64_t n) {
    uint64_t i = 0;
    for (; i + N <= n; i += N) floats(widen16(s + i) << 16).store_unaligned(d + i);
    for (; i < n; ++i) d[i] = ref::bf16_to_f32(s[i]);
  }
  static void f32_to_bf16(const float *s, uint16_t *d, uint64_t n) {
    uint64_t i = 0;
    const I absmask(0x7FFFFFFF), inf(0x7F800000), bias(0x7FFF), one(1), quiet(0x40);
    for (; i + N <= n; i += N) {
      const I u = bits(F::load_unaligned(s + i));
      const auto nan = (u & absmask) > inf;
      const I lsb = (u >> 16) & one;  // arithmetic shift: the & keeps only bit 16
      I r = ((u + bias + lsb) >> 16) & I(0xFFFF);
      const I q = ((u >> 16) & I(0xFFFF)) | quiet;
      narrow16(xsimd::select(nan, q, r), d + i);
    }
    for (; i < n; ++i) d[i] = ref::f32_to_bf16(s[i]);
  }
  static void f16_to_f32(const uint16_t *s, float *d, uint64_t n) {
    uint64_t i = 0;
#if defined(__F16C__)
    if constexpr (N >= 8) {
      for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(s + i))));
    }
#endif
    for (; i < n; ++i) d[i] = ref::f16_to_f32(s[i]);
  }
  static void f32_to_f16(const float *s, uint16_t *d, uint64_t n) {
    uint64_t i = 0;
#if defined(__F16C__)
    if constexpr (N >= 8) {
      for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(d + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(s + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    }
#endif
    for (; i < n; ++i) d[i] = ref::f32_to_f16(s[i]);
  }
  // 256-entry decode table of an 8-bit format, built once from the scalar reference.
  template <float (*Decode)(uint8_t)>
  static const float *lut() {
    static const auto table = [] {
      struct L {
        float v[256];
      } l;
      for (int b = 0; b < 256; ++b) l.v[b] = Decode(static_cast<uint8_t>(b));
      return l;
    }();
    return table.v;
  }
  static void e4m3_to_f32(const uint8_t *s, float *d, uint64_t n) {
    const float *lut = Kern::lut<ref::e4m3_to_f32>();
    for (uint64_t i = 0; i < n; ++i) d[i] = lut[s[i]];
  }
  static void e5m2_to_f32(const uint8_t *s, float *d, uint64_t n) {
    const float *lut = Kern::lut<ref::e5m2_to_f32>();
    for (uint64_t i = 0; i < n; ++i) d[i] = lut[s[i]];
  }

  // Branch-free fp8 encoders: the scalar reference's cases computed for every lane, then selected.
  template <bool E4M3>
  static I fp8_lanes(const F &f, int32_t saturate) {
    const I u = bits(f);
    const I x = u & I(0x7FFFFFFF);
    const I sign = (u >> 24) & I(0x80);
    const I nan_code(0x7F);
    I code, sub;
    xsimd::batch_bool<int32_t, A> ovf, is_sub;
    if constexpr (E4M3) {
      ovf = x > I(0x43E80000);
      is_sub = x < I(0x3C800000);
      sub = xsimd::batch_cast<int32_t>(xsimd::nearbyint(floats(x) * F(512.0f)));
      code = ((x + I(0x7FFFF) + ((x >> 20) & I(1))) >> 20) - I(960);
      code = xsimd::select(ovf, I(saturate ? 0x7E : 0x7F), code);
    } else {
      ovf = x > I(0x476FFFFF);
      is_sub = x < I(0x38800000);
      sub = xsimd::batch_cast<int32_t>(xsimd::nearbyint(floats(x) * F(65536.0f)));
      code = ((x + I(0xFFFFF) + ((x >> 21) & I(1))) >> 21) - I(448);
      code = xsimd::select(ovf, I(saturate ? 0x7B : 0x7C), code);
    }
    code = xsimd::select(is_sub, sub, code);
    code = xsimd::select(x > I(0x7F800000), nan_code, code);
    return code | sign;
  }
  static void f32_to_e4m3(const float *s, uint8_t *d, uint64_t n, int32_t sat) {
    uint64_t i = 0;
    for (; i + N <= n; i += N) narrow8(fp8_lanes<true>(F::load_unaligned(s + i), sat), d + i);
    for (; i < n; ++i) d[i] = ref::f32_to_e4m3(s[i], sat);
  }
  static void f32_to_e5m2(const float *s, uint8_t *d, uint64_t n, int32_t sat) {
    uint64_t i = 0;
    for (; i + N <= n; i += N) narrow8(fp8_lanes<false>(F::load_unaligned(s + i), sat), d + i);
    for (; i < n; ++i) d[i] = ref::f32_to_e5m2(s[i], sat);
  }
  static void f32_to_e4m3_scaled(const float *s, uint8_t *d, uint64_t n, float k, int32_t sat) {
    uint64_t i = 0;
    const F kk(k);
    for (; i + N <= n; i += N) narrow8(fp8_lanes<true>(F::load_unaligned(s + i) * kk, sat), d + i);
    for (; i < n; ++i) d[i] = ref::f32_to_e4m3(s[i] * k, sat);
  }
  static void f32_to_e5m2_scaled(const float *s, uint8_t *d, uint64_t n, float k, int32_t sat) {
    uint64_t i = 0;
    const F kk(k);
    for (; i + N <= n; i += N) narrow8(fp8_lanes<false>(F::load_unaligned(s + i) * kk, sat), d + i);
    for (; i < n; ++i) d[i] = ref::f32_to_e5m2(s[i] * k, sat);
  }
  static void f32_to_i8_scaled(const float *s, int8_t *d, uint64_t n, float k) {
    uint64_t i = 0;
    const F kk(k), lo(-127.0f), hi(127.0f);
    for (; i + N <= n; i += N) {
      const F v = F::load_unaligned(s + i) * kk;
      F r = xsimd::min(xsimd::max(xsimd::nearbyint(v), lo), hi);
      r = xsimd::select(xsimd::isnan(v), F(0.0f), r);
      alignas(64) int32_t t[N];
      xsimd::batch_cast<int32_t>(r).store_aligned(t);
      for (size_t j = 0; j < N; ++j) d[i + j] = static_cast<int8_t>(t[j]);
    }
    for (; i < n; ++i) d[i] = ref::f32_to_i8(s[i] * k);
  }
  static void scale_f32(const float *s, float *d, uint64_t n, float k) {
    uint64_t i = 0;
    const F kk(k);
    for (; i + N <= n; i += N) (F::load_unaligned(s + i) * kk).store_unaligned(d + i);
    for (; i < n; ++i) d[i] = s[i] * k;
  }

  // ---- reductions (max is order independent; sums are accumulated in f64 in index order) ----
  static float absmax_f32(const float *s, uint64_t n) {
    F acc(0.0f);
    auto bad = xsimd::isnan(F(0.0f));
    uint64_t i = 0;
    for (; i + N <= n; i += N) {
      const F v = F::load_unaligned(s + i);
      bad = bad || xsimd::isnan(v);
      acc = xsimd::max(acc, xsimd::abs(v));
    }
    alignas(64) float t[N];
    acc.store_aligned(t);
    float m = 0.0f;
    for (size_t j = 0; j < N; ++j) m = t[j] > m ? t[j] : m;
    if (xsimd::any(bad)) return NAN;
    for (; i < n; ++i) {
      if (std::isnan(s[i])) return NAN;
      const float a = std::fabs(s[i]);
      m = a > m ? a : m;
    }
    return m;
  }
  static float maxabsdiff_f32(const float *a, const float *b, uint64_t n) {
    F acc(0.0f);
    auto bad = xsimd::isnan(F(0.0f));
    uint64_t i = 0;
    for (; i + N <= n; i += N) {
      const F v = F::load_unaligned(a + i) - F::load_unaligned(b + i);
      bad = bad || xsimd::isnan(v);
      acc = xsimd::max(acc, xsimd::abs(v));
    }
    alignas(64) float t[N];
    acc.store_aligned(t);
    float m = 0.0f;
    for (size_t j = 0; j < N; ++j) m = t[j] > m ? t[j] : m;
    if (xsimd::any(bad)) return NAN;
    for (; i < n; ++i) {
      const float v = a[i] - b[i];
      if (std::isnan(v)) return NAN;
      const float d = std::fabs(v);
      m = d > m ? d : m;
    }
    return m;
  }
  static double sumsq_f32(const float *s, uint64_t n) {
    double acc = 0;
    for (uint64_t i = 0; i < n; ++i) acc += static_cast<double>(s[i]) * s[i];
    return acc;
  }
  static double sumsqdiff_f32(const float *a, const float *b, uint64_t n) {
    double acc = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const double d = static_cast<double>(a[i]) - b[i];
      acc += d * d;
    }
    return acc;
  }

  static ckh_kernels_t table(const char *isa) {
    ckh_kernels_t k{};
    k.struct_size = sizeof k;
    k.isa = isa;
    k.bf16_to_f32 = bf16_to_f32;
    k.f16_to_f32 = f16_to_f32;
    k.e4m3_to_f32 = e4m3_to_f32;
    k.e5m2_to_f32 = e5m2_to_f32;
    k.f32_to_bf16 = f32_to_bf16;
    k.f32_to_f16 = f32_to_f16;
    k.f32_to_e4m3 = f32_to_e4m3;
    k.f32_to_e5m2 = f32_to_e5m2;
    k.f32_to_e4m3_scaled = f32_to_e4m3_scaled;
    k.f32_to_e5m2_scaled = f32_to_e5m2_scaled;
    k.f32_to_i8_scaled = f32_to_i8_scaled;
    k.scale_f32 = scale_f32;
    k.absmax_f32 = absmax_f32;
    k.sumsq_f32 = sumsq_f32;
    k.maxabsdiff_f32 = maxabsdiff_f32;
    k.sumsqdiff_f32 = sumsqdiff_f32;
    return k;
  }
};

}  // namespace
