// arch_scalar.cpp — the "scalar" table: plain loops over the reference functions of ref.hpp.
// No SIMD flags; this is the ground truth the tests hold every other table to.
#include <ckhost/ckh_kernels.h>

#include "ref.hpp"
#include "tables.hpp"

namespace {
using ref::ld;
using ref::st;

void bf16_to_f32(const uint16_t *s, float *d, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) st(d + i, ref::bf16_to_f32(ld(s + i)));
}
void f16_to_f32(const uint16_t *s, float *d, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) st(d + i, ref::f16_to_f32(ld(s + i)));
}
void e4m3_to_f32(const uint8_t *s, float *d, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) st(d + i, ref::e4m3_to_f32(s[i]));
}
void e5m2_to_f32(const uint8_t *s, float *d, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) st(d + i, ref::e5m2_to_f32(s[i]));
}
void f32_to_bf16(const float *s, uint16_t *d, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) st(d + i, ref::f32_to_bf16(ld(s + i)));
}
void f32_to_f16(const float *s, uint16_t *d, uint64_t n) {
  for (uint64_t i = 0; i < n; ++i) st(d + i, ref::f32_to_f16(ld(s + i)));
}
void f32_to_e4m3(const float *s, uint8_t *d, uint64_t n, int32_t mode) {
  for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_e4m3(ld(s + i), mode);
}
void f32_to_e5m2(const float *s, uint8_t *d, uint64_t n, int32_t mode) {
  for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_e5m2(ld(s + i), mode);
}
void f32_to_e4m3_scaled(const float *s, uint8_t *d, uint64_t n, float k, int32_t mode) {
  for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_e4m3(ld(s + i) * k, mode);
}
void f32_to_e5m2_scaled(const float *s, uint8_t *d, uint64_t n, float k, int32_t mode) {
  for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_e5m2(ld(s + i) * k, mode);
}
void f32_to_i8_scaled(const float *s, int8_t *d, uint64_t n, float k) {
  for (uint64_t i = 0; i < n; ++i) d[i] = ref::f32_to_i8(ld(s + i) * k);
}
void e4m3_scaled_to_bf16(const uint8_t *s, uint16_t *d, uint64_t n, float k) {
  for (uint64_t i = 0; i < n; ++i) st(d + i, ref::f32_to_bf16(ref::e4m3_to_f32(s[i]) * k));
}
void e4m3_grouped_to_bf16(const uint8_t *s, uint16_t *d, uint64_t n, const float *k, uint64_t group) {
  if (group == 0) return;
  for (uint64_t i = 0; i < n; ++i) st(d + i, ref::f32_to_bf16(ref::e4m3_to_f32(s[i]) * k[i / group]));
}
void scale_f32(const float *s, float *d, uint64_t n, float k) {
  for (uint64_t i = 0; i < n; ++i) st(d + i, ld(s + i) * k);
}
float absmax_f32(const float *s, uint64_t n) {
  uint32_t m = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t a = ref::abs_bits(ld(s + i));
    m = a > m ? a : m;
  }
  return ref::absmax_result(m);
}
float maxabsdiff_f32(const float *a, const float *b, uint64_t n) {
  uint32_t m = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const uint32_t v = ref::abs_bits(ld(a + i) - ld(b + i));
    m = v > m ? v : m;
  }
  return ref::absmax_result(m);
}
double sumsq_f32(const float *s, uint64_t n) {
  double p[ref::kSumLanes] = {};
  ref::sumsq_into(p, s, 0, n);
  return ref::fold(p);
}
double sumsqdiff_f32(const float *a, const float *b, uint64_t n) {
  double p[ref::kSumLanes] = {};
  ref::sumsqdiff_into(p, a, b, 0, n);
  return ref::fold(p);
}
}  // namespace

namespace ckh::kernels::detail {
const ckh_kernels_t kTableScalar = {sizeof(ckh_kernels_t), 0, "scalar", bf16_to_f32, f16_to_f32, e4m3_to_f32,
                                    e5m2_to_f32, f32_to_bf16, f32_to_f16, f32_to_e4m3, f32_to_e5m2,
                                    f32_to_e4m3_scaled, f32_to_e5m2_scaled, f32_to_i8_scaled, scale_f32,
                                    absmax_f32, sumsq_f32, maxabsdiff_f32, sumsqdiff_f32,
                                    e4m3_scaled_to_bf16, e4m3_grouped_to_bf16};
}  // namespace ckh::kernels::detail
