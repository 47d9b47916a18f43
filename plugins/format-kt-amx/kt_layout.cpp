// kt_layout.cpp — see kt_layout.hpp.
#include "kt_layout.hpp"

#include <algorithm>
#include <stdexcept>

namespace ckh::kt {

std::vector<std::vector<Piece>> pieces(int64_t n, int64_t kb, int bits) {
  if (n < 32 || n % 32) throw std::invalid_argument("rows " + std::to_string(n) + " are not a multiple of 32 (an AMX tile's rows)");
  if (kb < 64 || kb % 64) throw std::invalid_argument("row bytes " + std::to_string(kb) + " are not a multiple of 64 (an AMX tile's width)");
  const Geometry g = geometry(bits);
  std::vector<std::vector<Piece>> out;
  const int64_t full_n = n / g.n_block, tail_n = n % g.n_block;
  const int64_t full_k = kb / g.k_block, tail_k = kb % g.k_block;
  auto row_group = [&](int64_t r0, int64_t count, int64_t nbs) {
    std::vector<Piece> ps;
    auto add = [&](int64_t c0, int64_t nk, int64_t kbs) {
      Piece p{r0, count, nbs, c0, nk * kbs, kbs, {}, {}};
      // rows: (count, nbs/32 tiles, 2 halves, 16 rows); cols: (nk K blocks, kbs/64 tiles, 16 words, 4 bytes)
      p.in_shape = {count, nbs / 32, 2, 16, nk, kbs / 64, 16, 4};
      p.perm = {0, 4, 1, 5, 2, 6, 3, 7};  // (count, K block, tile row, tile col, half, word, row, byte)
      ps.push_back(std::move(p));
    };
    if (full_k) add(0, full_k, g.k_block);
    if (tail_k) add(full_k * g.k_block, 1, tail_k);
    out.push_back(std::move(ps));
  };
  if (full_n) row_group(0, full_n, g.n_block);
  if (tail_n) row_group(full_n * g.n_block, 1, tail_n);
  return out;
}

uint64_t offset_of(int64_t n, int64_t kb, int bits, int64_t row, int64_t col) {
  const Geometry g = geometry(bits);
  const int64_t nb0 = row / g.n_block * g.n_block, nbs = std::min(g.n_block, n - nb0);
  const int64_t kb0 = col / g.k_block * g.k_block, kbs = std::min(g.k_block, kb - kb0);
  const int64_t n0 = (row - nb0) / 32 * 32, k0 = (col - kb0) / 64 * 64;
  const int64_t i = row - nb0 - n0, j = col - kb0 - k0;  // row in the tile, byte in the row
  const int64_t half = i / 16, r = i % 16, c = j / 4, b = j % 4;
  return static_cast<uint64_t>(nb0 * kb + kb0 * nbs + n0 * kbs + k0 * 32 + half * 1024 + c * 64 + r * 4 + b);
}

}  // namespace ckh::kt
