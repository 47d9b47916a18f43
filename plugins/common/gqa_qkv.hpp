// gqa_qkv.hpp — the grouped-query attention layout of Megatron-Core's fused linear_qkv, as expressions
// over HF's separate q_proj / k_proj / v_proj (weights [rows, hidden] or biases [rows]). Shared by the
// model plugins whose attention is GQA (Llama family, GLM-4.5).
//
//   Megatron-Core linear_qkv rows, per query group g of G: [q heads of g (H/G heads); k_g; v_g], each head
//   head_dim rows (attention.py SelfAttention.get_query_key_value_tensors splits it so).
#pragma once
#include <cstdint>
#include <vector>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::plugins::gqa {

struct Dims {
  int64_t heads = 0, groups = 0, head_dim = 0, hidden = 0;  // H, G, d, h
  int64_t per_group() const { return heads / groups; }      // P = H / G
};

// HF q [H*d(, h)], k [G*d(, h)], v [G*d(, h)] -> linear_qkv [G*(P+2)*d(, h)]. `weight` false: biases.
inline ckh_expr fuse(ckh::sdk::Builder &b, ckh_expr q, ckh_expr k, ckh_expr v, const Dims &s, bool weight) {
  const int64_t G = s.groups, P = s.per_group(), d = s.head_dim;
  auto grp = [&](ckh_expr e, int64_t rows_per_group) {
    std::vector<int64_t> shape = {G, rows_per_group};
    if (weight) shape.push_back(s.hidden);
    return b.reshape(e, shape);
  };
  const ckh_expr cat = b.concat({grp(q, P * d), grp(k, d), grp(v, d)}, 1);
  std::vector<int64_t> out = {G * (P + 2) * d};
  if (weight) out.push_back(s.hidden);
  return b.reshape(cat, out);
}

struct Parts {
  ckh_expr q, k, v;
};

// linear_qkv [G*(P+2)*d(, h)] -> HF q, k, v (the inverse of fuse).
inline Parts split(ckh::sdk::Builder &b, ckh_expr qkv, const Dims &s, bool weight) {
  const int64_t G = s.groups, P = s.per_group(), d = s.head_dim, H = s.heads;
  std::vector<int64_t> grouped = {G, (P + 2) * d};
  if (weight) grouped.push_back(s.hidden);
  const ckh_expr x = b.reshape(qkv, grouped);
  auto part = [&](int64_t start, int64_t rows, int64_t heads) {
    std::vector<int64_t> shape = {heads * d};
    if (weight) shape.push_back(s.hidden);
    return b.reshape(b.slice(x, 1, start, rows), shape);
  };
  return {part(0, P * d, H), part(P * d, d, G), part((P + 1) * d, d, G)};
}

}  // namespace ckh::plugins::gqa
