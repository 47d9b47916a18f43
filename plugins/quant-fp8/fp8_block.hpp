// fp8_block.hpp — block FP8 numbers (no bytes, no models): codes in float8 with one scale per block of
// bm x bn elements, as DeepSeek-V3 and transformers' finegrained FP8 store them (`weight` +
// `weight_scale_inv`, scale = the factor that multiplies a code back to its value).
//
//   dequantize: value = f32(code) * f32(scale), rounded once in f32 (RNE), then once more into the target
//               dtype (RNE) — the order transformers' Fp8Dequantize uses, so results match it bit for bit.
//   quantize:   per block amax = max |x| (at least `amax_epsilon`), scale = amax / 448 (E4M3) or / 57344
//               (E5M2), rounded up to a power of two with `pow2_scales`; code = saturate(RNE(x / scale)).
//               An all-zero block gets scale 1 and zero codes; a block holding NaN or Inf is refused.
//               Round trip: |x - dequantize(quantize(x))| <= max(|x| / 16, scale / 1024), up to f32 rounding
//               (half an E4M3 step for normal codes, half the smallest subnormal step otherwise).
#pragma once
#include <cstdint>
#include <string>

#include <ckhost/ckh_kernels.h>
#include <ckhost/ckh_types.h>

namespace ckh::fp8 {

struct Block {
  int64_t bm = 128, bn = 128;
};

// f32 values of `n` scale elements of dtype `dt` (F32, BF16, F16 through the kernels, F8_E8M0 =
// 2^(byte - 127)); exact widenings.
void scale_row(const ckh_kernels_t *k, const void *scales, ckh_dtype dt, int64_t n, float *out);
bool scale_dtype_ok(ckh_dtype dt);

// Block sizes from a codes shape [rows, cols] and its scale grid [srows, scols]: `given` when set (then
// checked against the grid; the config's weight_block_size), else per dim 128 when ceil(n / 128) gives
// the grid (DeepSeek-V3's block), else n / s when that divides (transformers' Fp8Dequantize rule, which
// agrees with 128 whenever 128 divides n), else the smallest power of two whose ceil-division gives it. Throws std::invalid_argument naming both shapes.
Block block_for(int64_t rows, int64_t cols, int64_t srows, int64_t scols, const Block *given);

// Dequantizes `nrows` rows (of `cols` codes each, dtype `cdt`) whose first row is the first row of
// scale row 0 of `scales` (grid row-major with `scols` columns) into `out` (dtype `to`: F32, BF16, F16).
void dequantize_rows(const ckh_kernels_t *k, const uint8_t *codes, ckh_dtype cdt, const void *scales, ckh_dtype sdt,
                     int64_t scols, int64_t nrows, int64_t cols, const Block &b, void *out, ckh_dtype to);

struct QuantParams {
  ckh_dtype codes = CKH_DT_F8_E4M3FN;
  float amax_epsilon = 0.0f;
  bool pow2_scales = false;
};
// Quantizes `nrows` f32 rows of `cols` elements (first row at a block boundary) into codes and an f32
// scale grid (ceil(nrows / bm) x ceil(cols / bn), row-major).
void quantize_rows(const ckh_kernels_t *k, const float *src, int64_t nrows, int64_t cols, const Block &b,
                   const QuantParams &p, uint8_t *codes, float *scales);

}  // namespace ckh::fp8
