// arch_scalar.cpp — the scalar reference table (no SIMD; the ground truth of the tests).
#include <cmath>

#include <ckhost/ckh_kernels.h>

#include "ref.hpp"

namespace {
void bf16_to_f32(const uint16_t *s, float *d, uint64_t n) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::bf16_to_f32(s[i]); }
void f16_to_f32(const uint16_t *s, float *d, uint64_t n) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::f16_to_f32(s[i]); }
void e4m3_to_f32(const uint8_t *s, float *d, uint64_t n) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::e4m3_to_f32(s[i]); }
void e5m2_to_f32(const uint8_t *s, float *d, uint64_t n) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::e5m2_to_f32(s[i]); }
void f32_to_bf16(const float *s, uint16_t *d, uint64_t n) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_bf16(s[i]); }
void f32_to_f16(const float *s, uint16_t *d, uint64_t n) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_f16(s[i]); }
void f32_to_e4m3(const float *s, uint8_t *d, uint64_t n, int32_t m) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_e4m3(s[i], m); }
void f32_to_e5m2(const float *s, uint8_t *d, uint64_t n, int32_t m) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_e5m2(s[i], m); }
void f32_to_e4m3_scaled(const float *s, uint8_t *d, uint64_t n, float k, int32_t m) {
  for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_e4m3(s[i] * k, m);
}
void f32_to_e5m2_scaled(const float *s, uint8_t *d, uint64_t n, float k, int32_t m) {
  for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_e5m2(s[i] * k, m);
}
void f32_to_i8_scaled(const float *s, int8_t *d, uint64_t n, float k) { for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_i8(s[i] * k); }
void scale_f32(const float *s, float *d, uint64_t n, float k) { for (uint64_t i = 0; i < n; ++i) d[i] = s[i] * k; }
float absmax_f32(const float *s, uint64_t n) {
  float m = 0;
  for (uint64_t i = 0; i < n; ++i) {
    if (std::isnan(s[i])) return NAN;
    m = std::fabs(s[i]) > m ? std::fabs(s[i]) : m;
  }
  return m;
}
float maxabsdiff_f32(const float *a, const float *b, uint64_t n) {
  float m = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const float v = a[i] - b[i];
    if (std::isnan(v)) return NAN;
    m = std::fabs(v) > m ? std::fabs(v) : m;
  }
  return m;
}
double sumsq_f32(const float *s, uint64_t n) {
  double a = 0;
  for (uint64_t i = 0; i < n; ++i) a += static_cast<double>(s[i]) * s[i];
  return a;
}
double sumsqdiff_f32(const float *x, const float *y, uint64_t n) {
  double a = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - y[i];
    a += d * d;
  }
  return a;
}
}  // namespace

namespace ckh::kernels::detail {
const ckh_kernels_t *table_scalar() {
  static const ckh_kernels_t t = [] {
    ckh_kernels_t k{};
    k.struct_size = sizeof k;
    k.isa = "scalar";
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
  }();
  return &t;
}
}  // namespace ckh::kernels::detail
