// vit_qkv.hpp — the Qwen vision towers' fused attention in MindSpeed-MM's layout: HF stores attn.qkv as [Q; K; V]
// (each `width` rows), MindSpeed-MM's RelocateOp regroups it per head as [q_h; k_h; v_h] (weights [3W, W], biases [3W]).
#pragma once
#include <cstdint>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::qwen_vl {

// [Q; K; V] -> per head [q_h; k_h; v_h] (`weight` false: a bias).
inline ckh_expr qkv_per_head(ckh::sdk::Builder &b, ckh_expr e, int64_t heads, int64_t width, bool weight) {
  const int64_t hd = width / heads;
  if (weight) return b.reshape(b.permute(b.reshape(e, {3, heads, hd, width}), {1, 0, 2, 3}), {3 * width, width});
  return b.reshape(b.permute(b.reshape(e, {3, heads, hd}), {1, 0, 2}), {3 * width});
}

// The inverse: per head [q_h; k_h; v_h] -> [Q; K; V].
inline ckh_expr qkv_from_per_head(ckh::sdk::Builder &b, ckh_expr e, int64_t heads, int64_t width, bool weight) {
  const int64_t hd = width / heads;
  if (weight) return b.reshape(b.permute(b.reshape(e, {heads, 3, hd, width}), {1, 0, 2, 3}), {3 * width, width});
  return b.reshape(b.permute(b.reshape(e, {heads, 3, hd}), {1, 0, 2}), {3 * width});
}

}  // namespace ckh::qwen_vl
