// ggml_blocks.hpp — llama.cpp's ggml block types, one row at a time: quantization as ggml's reference
// quantizers compute it (with or without an importance matrix) and dequantization as ggml's dequantize_row_*.
// Numbers only: no model and no file format here.
#ifndef CKHOST_QUANT_GGML_BLOCKS_HPP
#define CKHOST_QUANT_GGML_BLOCKS_HPP

#include <cstdint>

#include <ckhost/ckh_types.h>

namespace ggmlq {

// f32 -> f16 bits rounded to nearest even, and back (exact).
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

// Elements per block of a block dtype (32 or 256), 0 for any other dtype.
int block_elems(ckh_dtype t);

// Quantizes one row of `n` elements (a multiple of the block) into `dst` (n / block_elems blocks). `qw`: the
// row's importance (n values) or null: ggml_quantize_chunk's choice between the reference quantizer and
// the importance-weighted one (Q8_0 has none and ignores qw). With qw the 32-element types use statistics of
// the whole row, so a row is the unit.
void quantize_row(ckh_dtype t, const float *x, int64_t n, const float *qw, uint8_t *dst);

// The instruction set quantize_row's K types run on: 0 the scalar reference code, 1 AVX2, 2 AVX-512F. The vector
// paths fit independent sub-blocks side by side, one per lane, each lane doing the scalar code's f32 operations in
// its order (no fused multiply-add), so every level writes the same bytes. Picked once from the CPU (the
// environment variable CKH_GGML_SIMD, a number, caps it); set_simd_level caps it again (tests and benchmarks
// compare the levels) and returns the level now in use.
int simd_level();
int set_simd_level(int max_level);

// One row of `n` elements back to f32.
void dequantize_row(ckh_dtype t, const uint8_t *src, int64_t n, float *y);

}  // namespace ggmlq

#endif  // CKHOST_QUANT_GGML_BLOCKS_HPP
