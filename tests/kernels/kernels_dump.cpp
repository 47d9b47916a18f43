// Writes the best table's conversions of every 16-bit pattern (bf16/f16 decode) and of a fixed set of
// f32 inputs (bf16/f16 encode) to stdout as raw bytes, for torch_crosscheck.py.
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include <ckhost/kernels/kernels.hpp>

int main() {
  const ckh_kernels_t *k = ckh::kernels::best();
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> f(65536);
  k->bf16_to_f32(all.data(), f.data(), all.size());
  std::fwrite(f.data(), 4, f.size(), stdout);
  k->f16_to_f32(all.data(), f.data(), all.size());
  std::fwrite(f.data(), 4, f.size(), stdout);
  std::vector<float> in(1 << 20);
  std::mt19937 rng(5);
  for (auto &x : in) {
    uint32_t u = rng();
    if ((u & 0x7F800000u) == 0x7F800000u) u &= 0xBFFFFFFFu;  // no NaN/Inf: torch's NaN payloads differ
    std::memcpy(&x, &u, 4);
  }
  std::fwrite(in.data(), 4, in.size(), stdout);
  std::vector<uint16_t> o(in.size());
  k->f32_to_bf16(in.data(), o.data(), in.size());
  std::fwrite(o.data(), 2, o.size(), stdout);
  k->f32_to_f16(in.data(), o.data(), in.size());
  std::fwrite(o.data(), 2, o.size(), stdout);
  return 0;
}
