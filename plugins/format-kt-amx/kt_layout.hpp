// kt_layout.hpp — the byte layout of kt-kernel's AMX expert buffers (KTransformers' GemmKernel224Int8::BufferB and
// GemmKernel224Int4's BufferB), as facts the kt-amx writer turns into reshape/permute expressions.
//
// A buffer holds the codes of one [n, k] matrix (n output rows, k the reduction dim; for int4 two codes per byte,
// so kb = k / 2 bytes per row) in tiles of 32 rows x 64 bytes:
//   for each block of N_BLOCK rows (nb0, nbs = min(N_BLOCK, n - nb0)),
//     for each block of K_BLOCK bytes of the row (kb0, kbs = min(K_BLOCK, kb - kb0)),
//       for each 32 rows (n0) and each 64 bytes (k0) inside them, the tile at byte
//         nb0 * kb + kb0 * nbs + n0 * kbs + k0 * 32,
//       whose two halves (rows 0-15, rows 16-31; 1024 bytes each) are 16 x 16 matrices of 32-bit words stored
//       transposed: word (c, r) at byte c * 64 + r * 4 holds bytes 4c .. 4c + 3 of row r (AMX's VNNI B tile).
//   int8: N_BLOCK 64, K_BLOCK 3584 codes (3584 bytes); int4: N_BLOCK 128, K_BLOCK 3584 codes (1792 bytes).
// The per-row f32 scales follow as their own tensor.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ckh::kt {

struct Geometry {
  int64_t n_block;  // rows per N block
  int64_t k_block;  // bytes per K block
};
inline Geometry geometry(int bits) { return bits == 8 ? Geometry{64, 3584} : Geometry{128, 1792}; }

// One step of the expression that lays out a [n, kb] byte matrix: the rows [r0, r0 + count * nbs) taken as `count`
// N blocks of nbs rows, the columns [c0, c0 + width) as K blocks of kbs bytes (width = nk * kbs), with the shapes of
// the 8-D reshape, its permutation and the result [count, nbs * width].
struct Piece {
  int64_t r0, count, nbs, c0, width, kbs;
  std::vector<int64_t> in_shape;   // reshape of the [count * nbs, width] slice
  std::vector<uint32_t> perm;      // permute into tile order
};

// The pieces of a [n, kb] matrix, row-block groups outer, column groups inner: every group of whole N blocks
// (all full ones, then the short last one) has one piece per column group (the whole K blocks, then the short
// last one). Concatenating each row group's pieces along dim 1 and the row groups along dim 0 gives the buffer.
// Throws std::invalid_argument when n is not a multiple of 32 or kb not a multiple of 64.
std::vector<std::vector<Piece>> pieces(int64_t n, int64_t kb, int bits);

// The buffer offset of byte (row, col) of the [n, kb] code matrix: the layout stated above, used by tests.
uint64_t offset_of(int64_t n, int64_t kb, int bits, int64_t row, int64_t col);

}  // namespace ckh::kt
