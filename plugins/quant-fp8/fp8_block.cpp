// fp8_block.cpp — see fp8_block.hpp.
#include "fp8_block.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace ckh::fp8 {

namespace {
std::string shp(int64_t a, int64_t b) { return "[" + std::to_string(a) + ", " + std::to_string(b) + "]"; }
int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
}  // namespace

bool scale_dtype_ok(ckh_dtype dt) {
  return dt == CKH_DT_F32 || dt == CKH_DT_BF16 || dt == CKH_DT_F16 || dt == CKH_DT_F8_E8M0;
}

void scale_row(const ckh_kernels_t *k, const void *s, ckh_dtype dt, int64_t n, float *out) {
  const uint64_t cnt = static_cast<uint64_t>(n);
  switch (dt) {
    case CKH_DT_F32: std::memcpy(out, s, cnt * 4); return;
    case CKH_DT_BF16: k->bf16_to_f32(static_cast<const uint16_t *>(s), out, cnt); return;
    case CKH_DT_F16: k->f16_to_f32(static_cast<const uint16_t *>(s), out, cnt); return;
    case CKH_DT_F8_E8M0:
      for (int64_t i = 0; i < n; ++i) {
        const uint8_t b = static_cast<const uint8_t *>(s)[i];
        out[i] = b == 0xFF ? std::nanf("") : std::ldexp(1.0f, static_cast<int>(b) - 127);
      }
      return;
    default:
      for (int64_t i = 0; i < n; ++i) out[i] = std::nanf("");
  }
}

Block block_for(int64_t rows, int64_t cols, int64_t srows, int64_t scols, const Block *given) {
  if (srows < 1 || scols < 1 || rows < 1 || cols < 1)
    throw std::invalid_argument("codes " + shp(rows, cols) + " with scale grid " + shp(srows, scols) + ": empty");
  Block b;
  if (given) {
    b = *given;
    if (b.bm < 1 || b.bn < 1 || cdiv(rows, b.bm) != srows || cdiv(cols, b.bn) != scols)
      throw std::invalid_argument("codes " + shp(rows, cols) + " in blocks of " + shp(b.bm, b.bn) + " need a scale grid " +
                                  shp(b.bm > 0 ? cdiv(rows, b.bm) : 0, b.bn > 0 ? cdiv(cols, b.bn) : 0) + ", the scales are " +
                                  shp(srows, scols));
    return b;
  }
  auto pick = [](int64_t n, int64_t s) -> int64_t {
    if (cdiv(n, 128) == s) return 128;  // DeepSeek-V3's block, the common case
    if (n % s == 0) return n / s;
    for (int64_t p = 1; p <= n; p *= 2)
      if (cdiv(n, p) == s) return p;
    return -1;
  };
  b.bm = pick(rows, srows);
  b.bn = pick(cols, scols);
  if (b.bm < 1 || b.bn < 1)
    throw std::invalid_argument("codes " + shp(rows, cols) + ": no block size gives the scale grid " + shp(srows, scols));
  return b;
}

void dequantize_rows(const ckh_kernels_t *k, const uint8_t *codes, ckh_dtype cdt, const void *scales, ckh_dtype sdt,
                     int64_t scols, int64_t nrows, int64_t cols, const Block &b, void *out, ckh_dtype to) {
  std::vector<float> row(static_cast<size_t>(cols)), sc(static_cast<size_t>(scols));
  // E4M3 to bf16, the released DeepSeek case: one fused pass per block (same bits as the three steps).
  const bool fused = cdt == CKH_DT_F8_E4M3FN && to == CKH_DT_BF16 && CKH_HAS_FIELD(k, ckh_kernels_t, e4m3_scaled_to_bf16) &&
                     k->e4m3_scaled_to_bf16;
  const bool grouped = fused && CKH_HAS_FIELD(k, ckh_kernels_t, e4m3_grouped_to_bf16) && k->e4m3_grouped_to_bf16;
  for (int64_t r = 0; r < nrows; ++r) {
    const uint8_t *c = codes + r * cols;
    if (r % b.bm == 0)  // a new row of blocks: its scales, widened once
      scale_row(k, static_cast<const char *>(scales) + (r / b.bm) * scols * ckh_dtype_size(sdt), sdt, scols, sc.data());
    if (grouped) {  // the whole row in one call: one scale per block column
      k->e4m3_grouped_to_bf16(c, static_cast<uint16_t *>(out) + r * cols, static_cast<uint64_t>(cols), sc.data(),
                              static_cast<uint64_t>(b.bn));
      continue;
    }
    if (fused) {
      uint16_t *o = static_cast<uint16_t *>(out) + r * cols;
      for (int64_t j0 = 0, s = 0; j0 < cols; j0 += b.bn, ++s)
        k->e4m3_scaled_to_bf16(c + j0, o + j0, static_cast<uint64_t>(std::min(cols, j0 + b.bn) - j0), sc[static_cast<size_t>(s)]);
      continue;
    }
    if (cdt == CKH_DT_F8_E4M3FN) k->e4m3_to_f32(c, row.data(), static_cast<uint64_t>(cols));
    else k->e5m2_to_f32(c, row.data(), static_cast<uint64_t>(cols));
    for (int64_t j0 = 0, s = 0; j0 < cols; j0 += b.bn, ++s) {
      const int64_t j1 = std::min(cols, j0 + b.bn);  // one f32 product per element, with the SIMD kernel
      k->scale_f32(row.data() + j0, row.data() + j0, static_cast<uint64_t>(j1 - j0), sc[static_cast<size_t>(s)]);
    }
    switch (to) {
      case CKH_DT_F32: std::memcpy(static_cast<float *>(out) + r * cols, row.data(), static_cast<size_t>(cols) * 4); break;
      case CKH_DT_BF16: k->f32_to_bf16(row.data(), static_cast<uint16_t *>(out) + r * cols, static_cast<uint64_t>(cols)); break;
      case CKH_DT_F16: k->f32_to_f16(row.data(), static_cast<uint16_t *>(out) + r * cols, static_cast<uint64_t>(cols)); break;
      default: throw std::invalid_argument("dequantize: unsupported target dtype");
    }
  }
}

void quantize_rows(const ckh_kernels_t *k, const float *src, int64_t nrows, int64_t cols, const Block &b,
                   const QuantParams &p, uint8_t *codes, float *scales) {
  const float fmax = p.codes == CKH_DT_F8_E4M3FN ? 448.0f : 57344.0f;
  const int64_t sr = cdiv(nrows, b.bm), scn = cdiv(cols, b.bn);
  std::vector<float> tmp(static_cast<size_t>(std::min(cols, b.bn)));
  for (int64_t bi = 0; bi < sr; ++bi) {
    const int64_t r0 = bi * b.bm, r1 = std::min(nrows, r0 + b.bm);
    for (int64_t bj = 0; bj < scn; ++bj) {
      const int64_t c0 = bj * b.bn, c1 = std::min(cols, c0 + b.bn), w = c1 - c0;
      float amax = 0.0f;
      bool nan = false;
      for (int64_t r = r0; r < r1; ++r) {
        const float m = k->absmax_f32(src + r * cols + c0, static_cast<uint64_t>(w));
        nan = nan || !std::isfinite(m);
        amax = std::max(amax, m);
      }
      if (nan) throw std::invalid_argument("NaN or Inf in the block at row " + std::to_string(r0) + ", column " + std::to_string(c0));
      amax = std::max(amax, p.amax_epsilon);
      float s = amax > 0.0f ? amax / fmax : 1.0f;
      if (p.pow2_scales) {  // the power of two at or above s, exactly (frexp: s = m * 2^e, m in [0.5, 1))
        int e = 0;
        const float m = std::frexp(s, &e);
        s = std::ldexp(1.0f, m == 0.5f ? e - 1 : e);
      }
      scales[bi * scn + bj] = s;
      for (int64_t r = r0; r < r1; ++r) {
        const float *x = src + r * cols + c0;
        for (int64_t j = 0; j < w; ++j) tmp[static_cast<size_t>(j)] = x[j] / s;
        if (p.codes == CKH_DT_F8_E4M3FN) k->f32_to_e4m3(tmp.data(), codes + r * cols + c0, static_cast<uint64_t>(w), CKH_FP8_SATURATE);
        else k->f32_to_e5m2(tmp.data(), codes + r * cols + c0, static_cast<uint64_t>(w), CKH_FP8_SATURATE);
      }
    }
  }
}

}  // namespace ckh::fp8
