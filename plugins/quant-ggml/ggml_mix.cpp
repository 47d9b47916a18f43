// ggml_mix.cpp — llama.cpp's choice of a ggml type per tensor (src/llama-quant.cpp of the llama.cpp that
// llama-cpp-python 0.3.36 vendors), for the file types of ggml_mix.hpp. Rules of the architectures ckhost does
// not write (Falcon, GLM-5, the IQ and MXFP4 types) are left out.
#include "ggml_mix.hpp"

#include <cctype>
#include <cstdio>
#include <cstring>
#include <stdexcept>

#include "ggml_blocks.hpp"

namespace ggmlq {

namespace {

// llama.cpp's broad tensor categories.
enum class Cat { TokenEmbd, AttnQ, AttnV, AttnK, AttnQkv, AttnKvB, AttnOut, FfnUp, FfnGate, FfnDown, Output, Other };

bool has(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }

bool ends_with(const std::string &s, const char *tail) {
  const size_t n = std::strlen(tail);
  return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
}

// GGUF tensor names are what llama.cpp's rules read; other names go by the annotation's kind.
bool gguf_name(const std::string &n) {
  return n.rfind("blk.", 0) == 0 || n == "token_embd.weight" || n == "per_layer_token_embd.weight" ||
         n == "output.weight" || n == "output_norm.weight";
}

// llama.cpp's tensor_get_category: first match of the name wins.
Cat category_of_name(const std::string &n) {
  if (n == "output.weight") return Cat::Output;
  if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return Cat::TokenEmbd;
  if (has(n, "attn_qkv.weight")) return Cat::AttnQkv;
  if (has(n, "attn_kv_b.weight")) return Cat::AttnKvB;
  if (has(n, "attn_v.weight")) return Cat::AttnV;
  if (has(n, "attn_k.weight")) return Cat::AttnK;
  if (has(n, "attn_q.weight")) return Cat::AttnQ;
  if (has(n, "attn_output.weight")) return Cat::AttnOut;
  if (has(n, "ffn_up")) return Cat::FfnUp;
  if (has(n, "ffn_gate")) return Cat::FfnGate;
  if (has(n, "ffn_down")) return Cat::FfnDown;
  return Cat::Other;
}

Cat category_of_kind(int32_t kind) {
  switch (kind) {
    case CKH_KIND_EMBEDDING: return Cat::TokenEmbd;
    case CKH_KIND_OUTPUT: return Cat::Output;
    case CKH_KIND_ATTN_Q: return Cat::AttnQ;
    case CKH_KIND_ATTN_K: return Cat::AttnK;
    case CKH_KIND_ATTN_V: return Cat::AttnV;
    case CKH_KIND_ATTN_QKV: return Cat::AttnQkv;
    case CKH_KIND_ATTN_OUT: return Cat::AttnOut;
    case CKH_KIND_FFN_GATE: case CKH_KIND_FFN_GATE_UP: return Cat::FfnGate;  // llama.cpp: "ffn_gate_up" is a gate
    case CKH_KIND_FFN_UP: return Cat::FfnUp;
    case CKH_KIND_FFN_DOWN: return Cat::FfnDown;
    default: return Cat::Other;
  }
}

// llama.cpp's tensor_allows_quantization (for the default parameters: the output tensor is quantized).
bool allows_quantization(const TensorFacts &t) {
  if (t.ndim < 2) return false;
  const std::string &n = t.name;
  // GGUF names go by llama.cpp's name rules alone (a shared expert's gate is quantized there when it has rows);
  // other names also by the annotation.
  if (!gguf_name(n) && (t.kind == CKH_KIND_NORM || t.kind == CKH_KIND_ROUTER)) return false;
  if (!ends_with(n, "weight")) return false;
  static const char *const kNever[] = {
      "_norm.weight", "ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel", "per_layer_model_proj",
      "ssm_conv1d", "shortconv.conv.weight", "indexer.k_proj.weight", "indexer.q_proj.weight",
      "time_mix_first.weight", "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
      "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight", "time_mix_a0.weight", "time_mix_a1.weight",
      "time_mix_a2.weight", "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
      "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight", ".position_embd",
      "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos", ".patch_embd", ".patch_merger", "a.rvq.codebook",
      "mm.a.code_embd"};
  for (const char *p : kNever)
    if (has(n, p)) return false;
  return n != "position_embd.weight" && n != "token_types.weight";  // learned positions, BERT token types
}

// layers < n/8, >= 7n/8, and every third in between get more bits (llama.cpp's use_more_bits).
bool more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

ckh_dtype default_type(Ftype f) {
  switch (f) {
    case Ftype::Q4_0: return CKH_DT_Q4_0;
    case Ftype::Q4_1: return CKH_DT_Q4_1;
    case Ftype::Q5_0: return CKH_DT_Q5_0;
    case Ftype::Q5_1: return CKH_DT_Q5_1;
    case Ftype::Q8_0: return CKH_DT_Q8_0;
    case Ftype::Q2_K: return CKH_DT_Q2_K;
    case Ftype::Q3_K_S: case Ftype::Q3_K_M: case Ftype::Q3_K_L: return CKH_DT_Q3_K;
    case Ftype::Q4_K_S: case Ftype::Q4_K_M: return CKH_DT_Q4_K;
    case Ftype::Q5_K_S: case Ftype::Q5_K_M: return CKH_DT_Q5_K;
    case Ftype::Q6_K: return CKH_DT_Q6_K;
  }
  return CKH_DT_INVALID;
}

int layer_of(const TensorFacts &t) {
  int layer = t.layer;
  if (layer < 0 && std::sscanf(t.name.c_str(), "blk.%d.", &layer) != 1) layer = -1;
  if (layer < 0 || (t.n_layers > 0 && layer >= t.n_layers))
    throw std::runtime_error("llama.cpp's mix needs the layer of tensor '" + t.name + "' (got " + std::to_string(layer) +
                             " of " + std::to_string(t.n_layers) + " layers)");
  return layer;
}

// llama_tensor_get_type_impl for these file types.
ckh_dtype mix_rule(Ftype ft, ckh_dtype nt, Cat cat, const TensorFacts &t) {
  if (cat == Cat::Output || (!t.has_output && cat == Cat::TokenEmbd)) {
    // The LM head (or the embedding that doubles as it): Q6_K, Q8_0 when its rows do not fit the type's block.
    if (t.cols % block_elems(nt) != 0) return CKH_DT_Q8_0;
    return nt != CKH_DT_Q8_0 ? CKH_DT_Q6_K : nt;
  }
  if (cat == Cat::TokenEmbd) return nt;
  const int n = t.n_layers;
  if (cat == Cat::AttnV || cat == Cat::AttnQkv || cat == Cat::AttnKvB) {
    const int i = layer_of(t);  // llama.cpp counts these tensors in (layer, name) order: one per layer
    switch (ft) {
      case Ftype::Q2_K: nt = t.n_gqa >= 4 ? CKH_DT_Q4_K : CKH_DT_Q3_K; break;
      case Ftype::Q3_K_M: nt = i < 2 ? CKH_DT_Q5_K : CKH_DT_Q4_K; break;
      case Ftype::Q3_K_L: nt = CKH_DT_Q5_K; break;
      case Ftype::Q4_K_M: case Ftype::Q5_K_M: if (more_bits(i, n)) nt = CKH_DT_Q6_K; break;
      case Ftype::Q4_K_S: if (i < 4) nt = CKH_DT_Q5_K; break;
      default: break;
    }
    if (t.is_70b && (nt == CKH_DT_Q3_K || nt == CKH_DT_Q4_K)) nt = CKH_DT_Q5_K;
    if (t.n_experts == 8) nt = CKH_DT_Q8_0;
    return nt;
  }
  if (cat == Cat::AttnK) return t.n_experts == 8 ? CKH_DT_Q8_0 : nt;
  if (cat == Cat::FfnDown) {
    const int i = layer_of(t);
    switch (ft) {
      case Ftype::Q2_K: return CKH_DT_Q3_K;
      case Ftype::Q3_K_M: return i < n / 16 ? CKH_DT_Q5_K : CKH_DT_Q4_K;
      case Ftype::Q3_K_L: return CKH_DT_Q5_K;
      case Ftype::Q4_K_M: case Ftype::Q5_K_M: return more_bits(i, n) ? CKH_DT_Q6_K : nt;
      case Ftype::Q4_K_S: return i < n / 8 ? CKH_DT_Q5_K : nt;
      case Ftype::Q4_0: return t.has_imatrix && i < n / 8 ? CKH_DT_Q4_1 : nt;
      case Ftype::Q5_0: return t.has_imatrix && i < n / 8 ? CKH_DT_Q5_1 : nt;
      default: return nt;
    }
  }
  if (cat == Cat::AttnOut) {
    if (t.n_experts == 8) {
      const bool bump = ft == Ftype::Q2_K || ft == Ftype::Q3_K_S || ft == Ftype::Q3_K_M || ft == Ftype::Q4_K_S ||
                        ft == Ftype::Q4_K_M;
      return bump ? CKH_DT_Q5_K : nt;
    }
    switch (ft) {
      case Ftype::Q2_K: return CKH_DT_Q3_K;
      case Ftype::Q3_K_M: return CKH_DT_Q4_K;
      case Ftype::Q3_K_L: return CKH_DT_Q5_K;
      default: return nt;
    }
  }
  return nt;  // attn_q, ffn_gate, ffn_up, other: the default (their rules concern the IQ types)
}

// llama.cpp's tensor_type_fallback: rows that are not whole blocks of the chosen type.
ckh_dtype fallback(ckh_dtype nt, int64_t cols) {
  if (cols % block_elems(nt) == 0) return nt;
  ckh_dtype r = nt;
  switch (nt) {
    case CKH_DT_Q2_K: case CKH_DT_Q3_K: r = CKH_DT_Q4_0; break;
    case CKH_DT_Q4_K: r = CKH_DT_Q5_0; break;
    case CKH_DT_Q5_K: r = CKH_DT_Q5_1; break;
    case CKH_DT_Q6_K: r = CKH_DT_Q8_0; break;
    default: break;
  }
  return cols % block_elems(r) == 0 ? r : CKH_DT_F16;
}

struct Name {
  const char *name;
  Ftype ft;
};
const Name kNames[] = {{"q4_0", Ftype::Q4_0},     {"q4_1", Ftype::Q4_1},     {"q5_0", Ftype::Q5_0},
                       {"q5_1", Ftype::Q5_1},     {"q8_0", Ftype::Q8_0},     {"q2_k", Ftype::Q2_K},
                       {"q3_k_s", Ftype::Q3_K_S}, {"q3_k_m", Ftype::Q3_K_M}, {"q3_k", Ftype::Q3_K_M},
                       {"q3_k_l", Ftype::Q3_K_L}, {"q4_k_s", Ftype::Q4_K_S}, {"q4_k_m", Ftype::Q4_K_M},
                       {"q4_k", Ftype::Q4_K_M},   {"q5_k_s", Ftype::Q5_K_S}, {"q5_k_m", Ftype::Q5_K_M},
                       {"q5_k", Ftype::Q5_K_M},   {"q6_k", Ftype::Q6_K}};

}  // namespace

bool parse_ftype(const std::string &name, Ftype *out) {
  std::string t = name;
  for (char &c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const Name &n : kNames)
    if (t == n.name) {
      *out = n.ft;
      return true;
    }
  return false;
}

const char *ftype_names() {
  return "q2_k, q3_k_s, q3_k_m (q3_k), q3_k_l, q4_k_s, q4_k_m (q4_k), q5_k_s, q5_k_m (q5_k), q6_k, q4_0, q4_1, "
         "q5_0, q5_1, q8_0";
}

ckh_dtype tensor_type(Ftype ft, const TensorFacts &t) {
  if (!allows_quantization(t)) return CKH_DT_INVALID;
  const Cat cat = gguf_name(t.name) ? category_of_name(t.name) : category_of_kind(t.kind);
  ckh_dtype nt = default_type(ft);
  if (!t.pure) nt = mix_rule(ft, nt, cat, t);
  return fallback(nt, t.cols);
}

}  // namespace ggmlq
