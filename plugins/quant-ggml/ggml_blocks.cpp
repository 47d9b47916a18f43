// ggml_blocks.cpp — the block types of llama.cpp's ggml, computed as ggml-base computes them on x86-64 (f32
// arithmetic in ggml's evaluation order, no fused multiply-add: this file is compiled with -ffp-contract=off,
// as ggml-base is built for baseline x86-64 without FMA). Every expression below keeps the operand order of
// ggml's reference code, since a different order rounds differently and changes bytes.
//
// Layouts (little-endian f16 scales; "codes" are unsigned, offsets subtracted on dequantization):
//   Q2_K 84 B   scales[16] (low nibble: scale, high: min) | qs[64] 2-bit | d | dmin     x = d*sc*q - dmin*m
//   Q3_K 110 B  hmask[32] | qs[64] low 2 bits | scales[12] (16 x 6 bits, -32) | d      x = d*sc*(q - 4)
//   Q4_K 144 B  d | dmin | scales[12] (8 scales + 8 mins, 6 bits) | qs[128]          x = d*sc*q - dmin*m
//   Q5_K 176 B  d | dmin | scales[12] | qh[32] | qs[128]                              x = d*sc*q - dmin*m
//   Q6_K 210 B  ql[128] | qh[64] | scales[16] int8 | d                                x = d*sc*(q - 32)
#include "ggml_blocks.hpp"

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

namespace ggmlq {

uint16_t f32_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return static_cast<uint16_t>(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to infinity
  if (ax < 0x38800000u) {                                                // f16 subnormal or zero
    float a;
    std::memcpy(&a, &ax, 4);
    const float q = a * 16777216.0f;  // exact: a multiple of 2^-24 is an integer here
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(q)));
  }
  const uint32_t e = (ax >> 23) - 112, m = ax & 0x7fffffu;
  uint32_t h = (e << 10) | (m >> 13);
  const uint32_t rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  float f;
  if (e == 0) {
    f = std::ldexp(static_cast<float>(m), -24);
    return sign ? -f : f;
  }
  const uint32_t u = sign | (e == 31 ? (0xffu << 23) | (m << 13) : ((e + 112) << 23) | (m << 13));
  std::memcpy(&f, &u, 4);
  return f;
}

int block_elems(ckh_dtype t) {
  switch (t) {
    case CKH_DT_Q8_0: case CKH_DT_Q4_0: case CKH_DT_Q4_1: case CKH_DT_Q5_0: case CKH_DT_Q5_1: return 32;
    case CKH_DT_Q2_K: case CKH_DT_Q3_K: case CKH_DT_Q4_K: case CKH_DT_Q5_K: case CKH_DT_Q6_K: return 256;
    default: return 0;
  }
}

namespace {

constexpr float kTiny = 1e-15f;  // a group whose largest magnitude is below this is all zero

void put16(uint8_t *p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v & 0xff);
  p[1] = static_cast<uint8_t>(v >> 8);
}
void put_half(uint8_t *p, float v) { put16(p, f32_to_f16(v)); }
float get_half(const uint8_t *p) { return f16_to_f32(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// Round to nearest, ties to even, as ggml does it: 1.5 * 2^23 added so the integer lands in the mantissa.
inline int nearest(float v) {
  const float t = v + 12582912.0f;
  int32_t bits;
  std::memcpy(&bits, &t, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// ---- scale searches (ggml's make_*_quants) --------------------------------------------------------------

// Symmetric: codes l in [-nmax, nmax - 1] (stored l + nmax) for scale 1/iscale, the scale refitted by weighted
// least squares for 19 trial inverse scales around -nmax / max, the best kept. Weights: `qw`, or x^2.
float fit_symmetric(int n, int nmax, const float *x, int8_t *L, const float *qw) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kTiny) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float fn = static_cast<float>(nmax);
  float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = qw ? qw[i] : x[i] * x[i];
    const float fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(fn + 0.1f * static_cast<float>(is)) / max;
    sumlx = suml2 = 0.0f;
    for (int i = 0; i < n; ++i) {
      const float fl = static_cast<float>(clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
      const float w = qw ? qw[i] : x[i] * x[i];
      sumlx += w * x[i] * fl;
      suml2 += w * fl * fl;
    }
    if (suml2 > 0.0f && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(nmax + clampi(nearest(iscale * x[i]), -nmax, nmax - 1));
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's symmetric search without an importance matrix: codes from -nmax / max, then up to 5 passes that move
// single codes while the weighted fit (weights x^2) improves. Codes stored + nmax.
float fit_q3(int n, int nmax, const float *x, int8_t *L) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kTiny) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float iscale = static_cast<float>(-nmax) / max;
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * static_cast<float>(l);
    suml2 += w * static_cast<float>(l) * static_cast<float>(l);
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      const float li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      if (slx > 0.0f) {
        float sl2 = suml2 - w * li * li;
        const int nl = clampi(nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (nl != L[i]) {
          slx += w * x[i] * static_cast<float>(nl);
          sl2 += w * static_cast<float>(nl) * static_cast<float>(nl);
          if (sl2 > 0.0f && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Affine: x ~ scale * l - the_min with l in [0, nmax], min <= 0. Start from the range, then nstep + 1 trial
// inverse scales (rmin + rdelta * k + nmax) / range, each refitted by weighted least squares for scale and
// min; the one with the smallest weighted error (|d| when use_mad, d^2 otherwise) wins. ggml's
// make_qkx2_quants and make_qkx3_quants with weights (the same computation).
float fit_affine(int n, int nmax, const float *x, const float *weights, uint8_t *L, float *the_min, uint8_t *Laux,
                 float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0.0f) min = 0.0f;
  if (max <= min) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.0f;
  }
  const float fn = static_cast<float>(nmax);
  float iscale = fn / (max - min);
  float scale = 1.0f / iscale;
  float best_error = 0.0f;
  for (int i = 0; i < n; ++i) {
    const int l = nearest(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(clampi(l, 0, nmax));
    float diff = scale * static_cast<float>(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + fn) / (max - min);
    float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
    for (int i = 0; i < n; ++i) {
      const int l = clampi(nearest(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i], fl = static_cast<float>(l);
      sum_l += w * fl;
      sum_l2 += w * fl * fl;
      sum_xl += w * fl * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0.0f) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0.0f) {
        this_min = 0.0f;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0.0f;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * static_cast<float>(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        err += weights[i] * diff;
      }
      if (err < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Non-negative values (sub-block scales or mins) onto codes [0, nmax] under one scale, weighted by `qw`: 8
// trial inverse scales around nmax / max, then up to 5 passes moving single codes. ggml's make_qp_quants; the
// codes live in bytes (a negative code wraps, as there).
float fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *qw) {
  float max = 0.0f;
  for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];
  if (max < kTiny) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.0f;
  }
  const float fn = static_cast<float>(nmax);
  float iscale = fn / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest(iscale * x[i]));
  const float scale = 1.0f / iscale;
  float best_mse = 0.0f;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * static_cast<float>(L[i]);
    best_mse += qw[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * static_cast<float>(is) + fn) / max;
    const float scale_is = 1.0f / iscale_is;
    float mse = 0.0f;
    for (int i = 0; i < n; ++i) {
      int l = nearest(iscale_is * x[i]);
      if (l > nmax) l = nmax;
      const float diff = x[i] - scale_is * static_cast<float>(l);
      mse += qw[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0.0f, suml2 = 0.0f;
  for (int i = 0; i < n; ++i) {
    int l = nearest(iscale * x[i]);
    if (l > nmax) l = nmax;
    L[i] = static_cast<uint8_t>(l);
    const float w = qw[i], fl = static_cast<float>(l);
    sumlx += w * x[i] * fl;
    suml2 += w * fl * fl;
  }
  for (int pass = 0; pass < 5; ++pass) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = qw[i], li = static_cast<float>(L[i]);
      float slx = sumlx - w * x[i] * li;
      float sl2 = suml2 - w * li * li;
      if (slx > 0.0f && sl2 > 0.0f) {
        int nl = nearest(x[i] * sl2 / slx);
        if (nl > nmax) nl = nmax;
        if (nl != L[i]) {
          slx += w * x[i] * static_cast<float>(nl);
          sl2 += w * static_cast<float>(nl) * static_cast<float>(nl);
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ---- 32-element types ------------------------------------------------------------------------------------

// The reference quantizers (no importance): Q8_0 d = amax / 127, roundf codes; Q4_0 / Q5_0 d = max / -8 (-16)
// of the value of largest magnitude, codes trunc(x / d + 8.5 (16.5)); Q4_1 / Q5_1 d = (max - min) / 15 (31),
// m = min, codes trunc((x - min) / d + 0.5). (x / d as x * (1 / d), 0 when d is 0.)
void quantize_block32_ref(ckh_dtype t, const float *x, uint8_t *q) {
  if (t == CKH_DT_Q8_0) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_half(q, d);
    for (int j = 0; j < 32; ++j) q[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
    return;
  }
  const bool offset = t == CKH_DT_Q4_1 || t == CKH_DT_Q5_1, five = t == CKH_DT_Q5_0 || t == CKH_DT_Q5_1;
  const int qmax = five ? 31 : 15;
  float d, mn = 0.0f;
  if (offset) {
    float mx = x[0];
    mn = x[0];
    for (int j = 1; j < 32; ++j) {
      mn = std::fmin(mn, x[j]);
      mx = std::fmax(mx, x[j]);
    }
    d = (mx - mn) / static_cast<float>(qmax);
  } else {
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        mx = x[j];
      }
    d = mx / (five ? -16.0f : -8.0f);
  }
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_half(q, d);
  uint8_t *p = q + 2;
  if (offset) {
    put_half(p, mn);
    p += 2;
  }
  const float bias = offset ? 0.5f : five ? 16.5f : 8.5f;
  int codes[32];
  for (int j = 0; j < 32; ++j) {
    const float v = offset ? (x[j] - mn) * id : x[j] * id;
    codes[j] = clampi(static_cast<int>(std::trunc(v + bias)), 0, qmax);
  }
  if (five) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((codes[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(qh >> (8 * k));
    p += 4;
  }
  for (int j = 0; j < 16; ++j) p[j] = static_cast<uint8_t>((codes[j] & 0x0f) | ((codes[j + 16] & 0x0f) << 4));
}

// With an importance matrix: weights qw * sqrt(sigma2 + x^2), sigma2 the row's mean square; Q4_0 / Q5_0 by the
// symmetric search (nmax 8 / 16), Q4_1 / Q5_1 by the affine one (nmax 15 / 31, 37 steps from -0.9 by 0.05).
void quantize_row32_weighted(ckh_dtype t, const float *x, int64_t n, const float *qw, uint8_t *dst) {
  float sum_x2 = 0.0f;
  for (int64_t j = 0; j < n; ++j) sum_x2 += x[j] * x[j];
  const float sigma2 = sum_x2 / static_cast<float>(n);
  const bool offset = t == CKH_DT_Q4_1 || t == CKH_DT_Q5_1, five = t == CKH_DT_Q5_0 || t == CKH_DT_Q5_1;
  const int bytes = offset ? (five ? 24 : 20) : (five ? 22 : 18);
  for (int64_t b = 0; b < n / 32; ++b) {
    const float *xb = x + 32 * b, *wb = qw + 32 * b;
    uint8_t *q = dst + b * bytes;
    float weight[32];
    for (int j = 0; j < 32; ++j) weight[j] = wb[j] * std::sqrt(sigma2 + xb[j] * xb[j]);
    uint8_t codes[32];
    if (offset) {
      uint8_t aux[32];
      float min;
      const float d = fit_affine(32, five ? 31 : 15, xb, weight, codes, &min, aux, -0.9f, 0.05f, 36, false);
      put_half(q, d);
      put_half(q + 2, -min);
    } else {
      int8_t L[32];
      const float d = fit_symmetric(32, five ? 16 : 8, xb, L, weight);
      put_half(q, d);
      for (int j = 0; j < 32; ++j) codes[j] = static_cast<uint8_t>(L[j]);
    }
    uint8_t *p = q + (offset ? 4 : 2);
    if (five) {
      uint32_t qh = 0;
      for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((codes[j] >> 4) & 1u) << j;
      for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(qh >> (8 * k));
      p += 4;
    }
    for (int j = 0; j < 16; ++j) p[j] = static_cast<uint8_t>((codes[j] & 0x0f) | ((codes[j + 16] & 0x0f) << 4));
  }
}

// ---- K types: packing shared by both paths -----------------------------------------------------------------

// 2-bit codes of 256 elements: byte (j / 128) * 32 + l holds elements j + l, +32, +64, +96 (2 bits each).
void pack2(const uint8_t *L, uint8_t *qs) {
  for (int j = 0; j < 256; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q4_K / Q5_K: 8 six-bit scales and 8 six-bit mins in 12 bytes.
void pack_scale_min(const uint8_t *ls, const uint8_t *lm, uint8_t *s) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      s[j] = ls[j];
      s[j + 4] = lm[j];
    } else {
      s[j + 4] = static_cast<uint8_t>((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
      s[j - 4] = static_cast<uint8_t>(s[j - 4] | ((ls[j] >> 4) << 6));
      s[j] = static_cast<uint8_t>(s[j] | ((lm[j] >> 4) << 6));
    }
  }
}
void unpack_scale_min(int j, const uint8_t *s, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

// Q3_K: 16 six-bit scales (stored + 32) in 12 bytes: low nibbles in bytes 0..7, high 2 bits in bytes 8..11.
void pack_q3_scales(const int *l6, uint8_t *s) {
  std::memset(s, 0, 12);
  for (int j = 0; j < 16; ++j) {
    const int l = l6[j];
    if (j < 8) s[j] = static_cast<uint8_t>(l & 0xF);
    else s[j - 8] = static_cast<uint8_t>(s[j - 8] | ((l & 0xF) << 4));
    s[j % 4 + 8] = static_cast<uint8_t>(s[j % 4 + 8] | ((l >> 4) << (2 * (j / 4))));
  }
}
int q3_scale(int j, const uint8_t *s) {
  const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  return static_cast<int8_t>(lo | (((s[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
}

// Q3_K codes 0..7 (in L, modified): high bit of element j into hmask[j % 32] bit j / 32, low 2 bits packed.
void pack_q3_codes(int8_t *L, uint8_t *hmask, uint8_t *qs) {
  std::memset(hmask, 0, 32);
  for (int j = 0; j < 256; ++j)
    if (L[j] > 3) {
      hmask[j % 32] = static_cast<uint8_t>(hmask[j % 32] | (1u << (j / 32)));
      L[j] = static_cast<int8_t>(L[j] - 4);
    }
  uint8_t u[256];
  for (int j = 0; j < 256; ++j) u[j] = static_cast<uint8_t>(L[j]);
  pack2(u, qs);
}

// Q3_K second pass: codes against the stored scales (x / (d * sc), -4..3, + 4); a zero scale keeps the codes.
void requantize_q3(const float *x, const uint8_t *scales, float d_all, int8_t *L) {
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(q3_scale(j, scales));
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<int8_t>(clampi(nearest(x[16 * j + ii] / d), -4, 3) + 4);
  }
}

// Q4_K / Q5_K second pass: codes (x + dmin * m) / (d * sc), 0..nmax; a zero scale keeps the codes.
void requantize_k(const float *x, const uint8_t *scales, float d_all, float dmin_all, int nmax, uint8_t *L) {
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    unpack_scale_min(j, scales, &sc, &m);
    const float d = d_all * static_cast<float>(sc);
    if (d == 0.0f) continue;
    const float dm = dmin_all * static_cast<float>(m);
    for (int ii = 0; ii < 32; ++ii) L[32 * j + ii] = static_cast<uint8_t>(clampi(nearest((x[32 * j + ii] + dm) / d), 0, nmax));
  }
}

// Q4_K: byte 32 * (j / 64) + l holds element j + l (low nibble) and j + l + 32 (high).
void pack_q4(const uint8_t *L, uint8_t *qs) {
  for (int j = 0; j < 256; j += 64)
    for (int l = 0; l < 32; ++l) qs[j / 2 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 4));
}

// Q5_K: as Q4_K for the low 4 bits; the 5th bit of elements n + j and n + j + 32 (n = 0, 64, ..) in qh[j],
// bits 2 * (n / 64) and 2 * (n / 64) + 1.
void pack_q5(const uint8_t *L, uint8_t *qh, uint8_t *qs) {
  std::memset(qh, 0, 32);
  for (int n = 0, k = 0; n < 256; n += 64, ++k)
    for (int j = 0; j < 32; ++j) {
      int l1 = L[n + j], l2 = L[n + j + 32];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] = static_cast<uint8_t>(qh[j] | (1u << (2 * k)));
      }
      if (l2 > 15) {
        l2 -= 16;
        qh[j] = static_cast<uint8_t>(qh[j] | (2u << (2 * k)));
      }
      qs[n / 2 + j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
}

// Q6_K: element j + l + 32 * i (i = 0..3) of each half j in {0, 128}: low nibble in ql[j / 2 + l + 32 * (i & 1)]
// (high nibble for i >= 2), upper 2 bits in qh[j / 4 + l] bits 2 * i.
void pack_q6(const int8_t *L, uint8_t *ql, uint8_t *qh) {
  for (int j = 0; j < 256; j += 128)
    for (int l = 0; l < 32; ++l) {
      const uint8_t a = static_cast<uint8_t>(L[j + l]), b = static_cast<uint8_t>(L[j + l + 32]);
      const uint8_t c = static_cast<uint8_t>(L[j + l + 64]), e = static_cast<uint8_t>(L[j + l + 96]);
      ql[j / 2 + l] = static_cast<uint8_t>((a & 0xF) | ((c & 0xF) << 4));
      ql[j / 2 + l + 32] = static_cast<uint8_t>((b & 0xF) | ((e & 0xF) << 4));
      qh[j / 4 + l] = static_cast<uint8_t>((a >> 4) | ((b >> 4) << 2) | ((c >> 4) << 4) | ((e >> 4) << 6));
    }
}

// ---- K types without an importance matrix (ggml's quantize_row_*_ref) ----------------------------------------

// Q2_K without an importance matrix, after the fits of the 16 groups (sc, mins, codes L): scales and mins as 4-bit
// codes of max / 15; codes requantized against them, packed.
void q2k_finish_ref(const float *x, const float *sc, const float *mins, uint8_t *L, uint8_t *y) {
  uint8_t *scales = y, *qs = y + 16;
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 16; ++j) {
    if (sc[j] > max_scale) max_scale = sc[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  if (max_scale > 0.0f) {
    const float iscale = 15.0f / max_scale;
    for (int j = 0; j < 16; ++j) scales[j] = static_cast<uint8_t>(nearest(iscale * sc[j]));
    put_half(y + 80, max_scale / 15.0f);
  } else {
    for (int j = 0; j < 16; ++j) scales[j] = 0;
    put_half(y + 80, 0.0f);
  }
  if (max_min > 0.0f) {
    const float iscale = 15.0f / max_min;
    for (int j = 0; j < 16; ++j) scales[j] = static_cast<uint8_t>(scales[j] | (nearest(iscale * mins[j]) << 4));
    put_half(y + 82, max_min / 15.0f);
  } else {
    put_half(y + 82, 0.0f);
  }
  const float d_all = get_half(y + 80), m_all = get_half(y + 82);
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(scales[j] & 0xF);
    if (d == 0.0f) continue;
    const float dm = m_all * static_cast<float>(scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<uint8_t>(clampi(nearest((x[16 * j + ii] + dm) / d), 0, 3));
  }
  pack2(L, qs);
}

// Q2_K: 16 groups of 16 by the affine search (nmax 3, weights |x|, mean absolute error, 16 steps from -0.5 by
// 0.1); scales and mins as 4-bit codes of max / 15; codes requantized against them.
void q2k_ref(const float *x, uint8_t *y) {
  uint8_t L[256], aux[16];
  float weights[16], mins[16], sc[16];
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
    sc[j] = fit_affine(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], aux, -0.5f, 0.1f, 15, true);
  }
  q2k_finish_ref(x, sc, mins, L, y);
}

// Q3_K: 16 groups of 16 by fit_q3 (nmax 4); scales as 6-bit codes of max_scale / -32 (signed).
void q3k_ref(const float *x, uint8_t *y) {
  int8_t L[256];
  float sc[16];
  float max_scale = 0.0f, amax = 0.0f;
  for (int j = 0; j < 16; ++j) {
    sc[j] = fit_q3(16, 4, x + 16 * j, L + 16 * j);
    const float a = std::fabs(sc[j]);
    if (a > amax) {
      amax = a;
      max_scale = sc[j];
    }
  }
  uint8_t *hmask = y, *qs = y + 32, *scales = y + 96;
  if (max_scale != 0.0f) {
    const float iscale = -32.0f / max_scale;
    int l6[16];
    for (int j = 0; j < 16; ++j) {
      const int8_t l = static_cast<int8_t>(nearest(iscale * sc[j]));  // ggml keeps it in an int8 first
      l6[j] = clampi(l, -32, 31) + 32;
    }
    pack_q3_scales(l6, scales);
    put_half(y + 108, 1.0f / iscale);
  } else {
    std::memset(scales, 0, 12);
    put_half(y + 108, 0.0f);
  }
  requantize_q3(x, scales, get_half(y + 108), L);
  pack_q3_codes(L, hmask, qs);
}

// The second pass of Q4_K / Q5_K (codes against the stored scales), one of requantize_k or a vector version.
using RequantK = void (*)(const float *x, const uint8_t *scales, float d_all, float dmin_all, int nmax, uint8_t *L);

// Q4_K / Q5_K without an importance matrix, after the fits of the 8 groups (scales sc, mins, codes L): scales and
// mins as 6-bit codes of max / 63, the codes requantized against them, packed.
void q45k_finish_ref(bool five, const float *x, const float *sc, const float *mins, uint8_t *L, uint8_t *y,
                     RequantK requant) {
  const int nmax = five ? 31 : 15;
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    if (sc[j] > max_scale) max_scale = sc[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(nearest(inv_scale * sc[j]));
    lm[j] = static_cast<uint8_t>(nearest(inv_min * mins[j]));
    if (ls[j] > 63) ls[j] = 63;
    if (lm[j] > 63) lm[j] = 63;
  }
  uint8_t *scales = y + 4;
  pack_scale_min(ls, lm, scales);
  put_half(y, max_scale / 63.0f);
  put_half(y + 2, max_min / 63.0f);
  requant(x, scales, get_half(y), get_half(y + 2), nmax, L);
  if (five) pack_q5(L, y + 16, y + 48);
  else pack_q4(L, y + 16);
}

// Q4_K / Q5_K: 8 groups of 32 by the affine search (weights sqrt(mean x^2) + |x|; Q4_K nmax 15, 21 steps from
// -1 by 0.1; Q5_K nmax 31, 16 steps from -0.5 by 0.1); scales and mins as 6-bit codes of max / 63.
void q45k_ref(bool five, const float *x, uint8_t *y) {
  uint8_t L[256], aux[32];
  float weights[32], mins[8], sc[8];
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0.0f;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32.0f);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    sc[j] = five ? fit_affine(32, 31, x + 32 * j, weights, L + 32 * j, &mins[j], aux, -0.5f, 0.1f, 15, false)
                 : fit_affine(32, 15, x + 32 * j, weights, L + 32 * j, &mins[j], aux, -1.0f, 0.1f, 20, false);
  }
  q45k_finish_ref(five, x, sc, mins, L, y, requantize_k);
}

// Q6_K's second pass (codes against the stored scales), requantize_q6 or a vector version.
using RequantQ6 = void (*)(const float *x, const int8_t *scales, float d_all, int8_t *L);

// Codes x / (d * sc), -32..31, + 32; a zero scale keeps the codes.
void requantize_q6(const float *x, const int8_t *scales, float d_all, int8_t *L) {
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(scales[j]);
    if (d == 0.0f) continue;
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<int8_t>(clampi(nearest(x[16 * j + ii] / d), -32, 31) + 32);
  }
}

// Q6_K after the fits of the 16 groups (scales sc, codes L): scales as int8 codes of max_scale / -128, the codes
// requantized against them, packed.
void q6k_finish(const float *x, const float *sc, int8_t *L, uint8_t *y, RequantQ6 requant) {
  float max_scale = 0.0f, max_abs = 0.0f;
  for (int ib = 0; ib < 16; ++ib) {
    const float a = std::fabs(sc[ib]);
    if (a > max_abs) {
      max_abs = a;
      max_scale = sc[ib];
    }
  }
  if (max_abs < kTiny) {
    std::memset(y, 0, 210);
    return;
  }
  uint8_t *ql = y, *qh = y + 128;
  int8_t *scales = reinterpret_cast<int8_t *>(y + 192);
  const float iscale = -128.0f / max_scale;
  put_half(y + 208, 1.0f / iscale);
  for (int ib = 0; ib < 16; ++ib) {
    const int l = nearest(iscale * sc[ib]);
    scales[ib] = static_cast<int8_t>(l < 127 ? l : 127);
  }
  requant(x, scales, get_half(y + 208), L);
  pack_q6(L, ql, qh);
}

// Q6_K: 16 groups of 16 by the symmetric search (nmax 32, weights x^2 or the importance).
void q6k(const float *x, const float *qw, uint8_t *y) {
  int8_t L[256];
  float sc[16];
  for (int ib = 0; ib < 16; ++ib) sc[ib] = fit_symmetric(16, 32, x + 16 * ib, L + 16 * ib, qw ? qw + 16 * ib : nullptr);
  q6k_finish(x, sc, L, y, requantize_q6);
}

// ---- K types with an importance matrix (ggml's quantize_row_*_impl) ---------------------------------------

// Weights qw * sqrt(sigma2 + x^2) of a group, sigma2 from the 256-element block (Q2_K: mean x^2; Q3_K, Q4_K,
// Q5_K: twice that); their sum per group weights the fit of the scales.
// Q2_K with an importance matrix, after the fits (sc, mins, codes L; sw the groups' weight sums): scales and mins
// by fit_positive (nmax 15), codes requantized against them, packed.
void q2k_finish_weighted(const float *x, const float *sc, const float *mins, const float *sw, uint8_t *L, uint8_t *y) {
  uint8_t ls[16], lm[16];
  const float dm = fit_positive(16, 15, sc, ls, sw);
  const float mm = fit_positive(16, 15, mins, lm, sw);
  put_half(y + 80, dm);
  put_half(y + 82, mm);
  const float d_all = get_half(y + 80), m_all = get_half(y + 82);
  uint8_t *scales = y, *qs = y + 16;
  for (int j = 0; j < 16; ++j) scales[j] = static_cast<uint8_t>(ls[j] | (lm[j] << 4));
  for (int j = 0; j < 16; ++j) {
    const float d = d_all * static_cast<float>(scales[j] & 0xF);
    if (d == 0.0f) continue;
    const float m = m_all * static_cast<float>(scales[j] >> 4);
    for (int ii = 0; ii < 16; ++ii) L[16 * j + ii] = static_cast<uint8_t>(clampi(nearest((x[16 * j + ii] + m) / d), 0, 3));
  }
  pack2(L, qs);
}

void q2k_weighted(const float *x, const float *qw, uint8_t *y) {
  uint8_t L[256], aux[16];
  float mins[16], sc[16], sw[16], weight[16];
  float sumx2 = 0.0f;
  for (int j = 0; j < 256; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = sumx2 / 256.0f;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    float s = 0.0f;
    for (int l = 0; l < 16; ++l) s += weight[l];
    sw[j] = s;
    sc[j] = fit_affine(16, 3, x + 16 * j, weight, L + 16 * j, &mins[j], aux, -0.9f, 0.05f, 36, false);
  }
  q2k_finish_weighted(x, sc, mins, sw, L, y);
}

// Q3_K with an importance matrix, after the fits (sc, codes L; sw the groups' weight sums): the scales by the
// symmetric search (nmax 32, weights sw), codes requantized against them, packed.
void q3k_finish_weighted(const float *x, const float *sc, const float *sw, int8_t *L, uint8_t *y) {
  int8_t Ls[16];
  const float d_block = fit_symmetric(16, 32, sc, Ls, sw);
  uint8_t *hmask = y, *qs = y + 32, *scales = y + 96;
  int l6[16];
  for (int j = 0; j < 16; ++j) l6[j] = Ls[j];
  pack_q3_scales(l6, scales);
  put_half(y + 108, d_block);
  requantize_q3(x, scales, get_half(y + 108), L);
  pack_q3_codes(L, hmask, qs);
}

void q3k_weighted(const float *x, const float *qw, uint8_t *y) {
  int8_t L[256];
  float sc[16], weight[16], sw[16];
  float sumx2 = 0.0f;
  for (int j = 0; j < 256; ++j) sumx2 += x[j] * x[j];
  const float sigma2 = 2.0f * sumx2 / 256.0f;
  for (int j = 0; j < 16; ++j) {
    for (int l = 0; l < 16; ++l) weight[l] = qw[16 * j + l] * std::sqrt(sigma2 + x[16 * j + l] * x[16 * j + l]);
    float s = 0.0f;
    for (int l = 0; l < 16; ++l) s += weight[l];
    sw[j] = s;
    sc[j] = fit_symmetric(16, 4, x + 16 * j, L + 16 * j, weight);
  }
  q3k_finish_weighted(x, sc, sw, L, y);
}

// Q4_K / Q5_K with an importance matrix, after the fits (sc, mins, codes L; sw the groups' weight sums): scales
// and mins fitted by fit_positive (nmax 63), the codes requantized against them, packed.
void q45k_finish_weighted(bool five, const float *x, const float *sc, const float *mins, const float *sw, uint8_t *L,
                          uint8_t *y, RequantK requant) {
  const int nmax = five ? 31 : 15;
  uint8_t ls[8], lm[8];
  const float d_block = fit_positive(8, 63, sc, ls, sw);
  const float m_block = fit_positive(8, 63, mins, lm, sw);
  if (five)
    for (int j = 0; j < 8; ++j) {
      if (ls[j] > 63) ls[j] = 63;
      if (lm[j] > 63) lm[j] = 63;
    }
  uint8_t *scales = y + 4;
  pack_scale_min(ls, lm, scales);
  put_half(y, d_block);
  put_half(y + 2, m_block);
  requant(x, scales, get_half(y), get_half(y + 2), nmax, L);
  if (five) pack_q5(L, y + 16, y + 48);
  else pack_q4(L, y + 16);
}

void q45k_weighted(bool five, const float *x, const float *qw, uint8_t *y) {
  const int nmax = five ? 31 : 15;
  uint8_t L[256], aux[32];
  float weights[32], sw[8], mins[8], sc[8];
  float sum_x2 = 0.0f;
  for (int l = 0; l < 256; ++l) sum_x2 += x[l] * x[l];
  const float sigma2 = 2.0f * sum_x2 / 256.0f;
  for (int j = 0; j < 8; ++j) {
    for (int l = 0; l < 32; ++l) weights[l] = qw[32 * j + l] * std::sqrt(sigma2 + x[32 * j + l] * x[32 * j + l]);
    float s = 0.0f;
    for (int l = 0; l < 32; ++l) s += weights[l];
    sw[j] = s;
    sc[j] = fit_affine(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], aux, -0.9f, 0.05f, 36, false);
  }
  q45k_finish_weighted(five, x, sc, mins, sw, L, y, requantize_k);
}

// ---- vector paths of the K types (ggml_kq_simd.inc, once per instruction set) ---------------------------------

#if defined(__x86_64__) && defined(__GNUC__)
#define CKH_GGML_X86 1
#define KQ_NS avx2
#define KQ_W 8
#define KQ_ISA "avx2"
#include "ggml_kq_simd.inc"
#undef KQ_NS
#undef KQ_W
#undef KQ_ISA
#define KQ_NS avx512
#define KQ_W 16
#define KQ_ISA "avx512f"
#include "ggml_kq_simd.inc"
#undef KQ_NS
#undef KQ_W
#undef KQ_ISA
#endif

int detect_level() {
  int level = 0;
#ifdef CKH_GGML_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx2")) level = 1;
  if (level == 1 && __builtin_cpu_supports("avx512f")) level = 2;
#endif
  if (const char *cap = std::getenv("CKH_GGML_SIMD"))
    if (*cap >= '0' && *cap <= '9' && *cap - '0' < level) level = *cap - '0';
  return level;
}

int cpu_level() {
  static const int level = detect_level();
  return level;
}

std::atomic<int> g_level{-1};  // -1: not yet set (the CPU's level)

int current_level() {
  const int l = g_level.load(std::memory_order_relaxed);
  return l >= 0 ? l : cpu_level();
}

// The K types of a row on the vector path of `level`; false when that level has none for this case.
bool quantize_row_k_simd(int level, ckh_dtype t, const float *x, int64_t nsb, const float *qw, uint8_t *dst) {
#ifdef CKH_GGML_X86
  if (level <= 0) return false;
  switch (t) {
    case CKH_DT_Q4_K:
    case CKH_DT_Q5_K:
      if (level >= 2) avx512::q45k_row(t == CKH_DT_Q5_K, x, qw, nsb, dst);
      else avx2::q45k_row(t == CKH_DT_Q5_K, x, qw, nsb, dst);
      return true;
    case CKH_DT_Q6_K:
      if (level >= 2) avx512::q6k_row(x, qw, nsb, dst);
      else avx2::q6k_row(x, qw, nsb, dst);
      return true;
    case CKH_DT_Q2_K:
    case CKH_DT_Q3_K:
      if (t == CKH_DT_Q3_K && !qw) return false;  // fit_q3: scalar only
      if (level >= 2) avx512::q23k_row(t == CKH_DT_Q3_K, x, qw, nsb, dst);
      else avx2::q23k_row(t == CKH_DT_Q3_K, x, qw, nsb, dst);
      return true;
    default: return false;
  }
#else
  (void)level, (void)t, (void)x, (void)nsb, (void)qw, (void)dst;
  return false;
#endif
}

}  // namespace

int simd_level() { return current_level(); }

int set_simd_level(int max_level) {
  const int l = max_level < 0 ? 0 : max_level < cpu_level() ? max_level : cpu_level();
  g_level.store(l, std::memory_order_relaxed);
  return l;
}

void quantize_row(ckh_dtype t, const float *x, int64_t n, const float *qw, uint8_t *dst) {
  ckh_dtype_traits_t tr{};
  ckh_dtype_traits(t, &tr);
  const int64_t nb = n / tr.block_elems;
  if (qw && t != CKH_DT_Q8_0 && tr.block_elems == 32) {
    quantize_row32_weighted(t, x, n, qw, dst);
    return;
  }
  if (tr.block_elems == 256 && quantize_row_k_simd(current_level(), t, x, nb, qw, dst)) return;
  for (int64_t b = 0; b < nb; ++b) {
    const float *xb = x + b * tr.block_elems;
    const float *wb = qw ? qw + b * tr.block_elems : nullptr;
    uint8_t *y = dst + b * tr.block_bytes;
    switch (t) {
      case CKH_DT_Q2_K: wb ? q2k_weighted(xb, wb, y) : q2k_ref(xb, y); break;
      case CKH_DT_Q3_K: wb ? q3k_weighted(xb, wb, y) : q3k_ref(xb, y); break;
      case CKH_DT_Q4_K: wb ? q45k_weighted(false, xb, wb, y) : q45k_ref(false, xb, y); break;
      case CKH_DT_Q5_K: wb ? q45k_weighted(true, xb, wb, y) : q45k_ref(true, xb, y); break;
      case CKH_DT_Q6_K: q6k(xb, wb, y); break;
      default: quantize_block32_ref(t, xb, y); break;
    }
  }
}

// ---- dequantization ------------------------------------------------------------------------------------------

namespace {

void dequantize_block32(ckh_dtype t, const uint8_t *q, float *y) {
  const float d = get_half(q);
  if (t == CKH_DT_Q8_0) {
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<int8_t>(q[2 + j]));
    return;
  }
  const bool offset = t == CKH_DT_Q4_1 || t == CKH_DT_Q5_1, five = t == CKH_DT_Q5_0 || t == CKH_DT_Q5_1;
  const uint8_t *p = q + 2;
  float m = 0.0f;
  if (offset) {
    m = get_half(p);
    p += 2;
  }
  uint32_t qh = 0;
  if (five) {
    qh = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
    p += 4;
  }
  for (int j = 0; j < 32; ++j) {
    int c = j < 16 ? (p[j] & 0x0f) : (p[j - 16] >> 4);
    if (five) c |= static_cast<int>((qh >> j) & 1u) << 4;
    y[j] = offset ? static_cast<float>(c) * d + m : static_cast<float>(c - (five ? 16 : 8)) * d;
  }
}

// Code of element e in a pack2 layout.
inline int code2(const uint8_t *qs, int e) { return (qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

void dequantize_k(ckh_dtype t, const uint8_t *q, float *y) {
  switch (t) {
    case CKH_DT_Q2_K: {
      const float d = get_half(q + 80), mn = get_half(q + 82);
      for (int e = 0; e < 256; ++e) {
        const uint8_t sc = q[e / 16];
        const float dl = d * static_cast<float>(sc & 0xF), ml = mn * static_cast<float>(sc >> 4);
        y[e] = dl * static_cast<float>(code2(q + 16, e)) - ml;
      }
      return;
    }
    case CKH_DT_Q3_K: {
      const float d = get_half(q + 108);
      for (int e = 0; e < 256; ++e) {
        const float dl = d * static_cast<float>(q3_scale(e / 16, q + 96));
        const int hi = (q[e % 32] >> (e / 32)) & 1;
        y[e] = dl * static_cast<float>(code2(q + 32, e) - (hi ? 0 : 4));
      }
      return;
    }
    case CKH_DT_Q4_K:
    case CKH_DT_Q5_K: {
      const bool five = t == CKH_DT_Q5_K;
      const float d = get_half(q), mn = get_half(q + 2);
      const uint8_t *qs = q + (five ? 48 : 16), *qh = q + 16;
      for (int e = 0; e < 256; ++e) {
        uint8_t sc, m;
        unpack_scale_min(e / 32, q + 4, &sc, &m);
        const float d1 = d * static_cast<float>(sc), m1 = mn * static_cast<float>(m);
        const int byte = (e / 64) * 32 + e % 32, upper = (e / 32) % 2;
        int c = upper ? (qs[byte] >> 4) : (qs[byte] & 0xF);
        if (five && ((qh[e % 32] >> (e / 32)) & 1)) c += 16;
        y[e] = d1 * static_cast<float>(c) - m1;
      }
      return;
    }
    case CKH_DT_Q6_K: {
      const float d = get_half(q + 208);
      const uint8_t *ql = q, *qh = q + 128;
      const int8_t *sc = reinterpret_cast<const int8_t *>(q + 192);
      for (int e = 0; e < 256; ++e) {
        const int half = e / 128, i = (e % 128) / 32, l = e % 32;
        const uint8_t lo = ql[half * 64 + l + 32 * (i & 1)];
        const int c = ((i >= 2 ? lo >> 4 : lo & 0xF) | (((qh[half * 32 + l] >> (2 * i)) & 3) << 4)) - 32;
        y[e] = d * static_cast<float>(sc[e / 16]) * static_cast<float>(static_cast<int8_t>(c));
      }
      return;
    }
    default: return;
  }
}

}  // namespace

void dequantize_row(ckh_dtype t, const uint8_t *src, int64_t n, float *y) {
  ckh_dtype_traits_t tr{};
  ckh_dtype_traits(t, &tr);
  for (int64_t b = 0; b < n / tr.block_elems; ++b) {
    const uint8_t *q = src + b * tr.block_bytes;
    float *yb = y + b * tr.block_elems;
    if (tr.block_elems == 32) dequantize_block32(t, q, yb);
    else dequantize_k(t, q, yb);
  }
}

}  // namespace ggmlq
