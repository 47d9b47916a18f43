// plugin.cpp — the "ggml" quantizer: a checkpoint's weights into llama.cpp's block types, the way llama-quantize
// does it (--quantize ggml --ggml-type TYPE [--imatrix FILE] [--ggml-pure]), bit for bit.
//
// TYPE is one of llama-quantize's file types: a mix (q2_k, q3_k_s, q3_k_m, q3_k_l, q4_k_s, q4_k_m, q5_k_s,
// q5_k_m, q6_k; q3_k / q4_k / q5_k are its aliases of the _m ones) or a plain type (q4_0, q4_1, q5_0, q5_1,
// q8_0, which are mixes too: the LM head becomes Q6_K). Per tensor, ggml_mix.cpp decides as llama.cpp's
// llama_tensor_get_type: never quantized are 1-D tensors, norms, routers (ffn_gate_inp) and its other
// exclusions (the output dtype is then the input's own: the host keeps the tensor); the LM head (or a tied
// embedding) gets Q6_K (Q8_0 when its rows are not whole blocks); attn_v / attn_qkv / attn_kv_b and ffn_down
// get more bits in the layers llama.cpp's use_more_bits names (q4_k_m, q5_k_m), the first layers (q3_k_m,
// q4_k_s), Q3_K / Q4_K by grouped-query ratio (q2_k); 8-expert models Q8_0 attn_v / attn_k and Q5_K attn_output;
// rows that are not whole 256-element blocks fall back to Q4_0 / Q5_0 / Q5_1 / Q8_0 (from Q2_K-Q3_K / Q4_K /
// Q5_K / Q6_K), and to F16 when not whole 32-element blocks either. --ggml-pure: the type itself everywhere.
// The facts come from the host in params "tensor" ({name, kind, layer, n_layers, expert, n_experts,
// has_output}) and "config" (heads and kv heads for the ratio, the layer count for llama.cpp's 70B rule).
// llama.cpp counts attn_v-like tensors in (layer, name) order; the layer stands for that count here (one per
// layer, as in every architecture ckhost writes). Not done: Falcon's and GLM-5's own rules, the IQ / TQ / MXFP4
// types, llama-quantize's --tensor-type / --output-tensor-type / --token-embedding-type / --leave-output-tensor.
// desc.info_json {"metadata": {"gguf_file_type": N}}: the mix's llama_ftype, which the GGUF writer records as
// general.file_type (as llama-quantize does, whatever type each tensor got).
//
// Types (ggml_blocks.cpp; f32 arithmetic in ggml's order, compiled with -ffp-contract=off like ggml-base):
//   Q8_0 Q4_0 Q4_1 Q5_0 Q5_1   32-element blocks, ggml's quantize_row_*_ref
//   Q2_K Q3_K Q4_K Q5_K Q6_K   256-element super-blocks of 16 or 32-element groups with quantized scales
// With an importance matrix (inputs 1 and 2: <name>.in_sum2 and <name>.counts of llama.cpp's GGUF imatrix;
// importance = in_sum2 / round(count), 1 where the count is 0, expert e of a stacked [E, rows, cols] tensor
// using its own slice; I32 counts are a legacy imatrix.dat's call count: in_sum2 / ncall, in_sum2 where it is
// 0) every type but Q8_0 runs ggml's importance-weighted quantizer instead, as ggml_quantize_chunk does when
// given quant_weights. A size that does not fit the tensor is refused (the token embedding: ignored), as
// llama.cpp does; "imatrix" in params (the file's path) alone already selects the imatrix variants of the mix.
//
// Dequantization ({"mode": "dequantize"}, listed under "dequantize_blocks") of all ten types, bit for bit as
// ggml's dequantize_row_* (its to_float).
//
// Blocks: a 2-D weight [rows, cols] is one block per row; a stacked [E, rows, cols] one block per expert (the host
// hands stacks over flattened to [E * rows, cols]; the importance then has E slices). "stage": "target": the host
// quantizes the writer's tensors (GGUF names, as llama.cpp's rules read them).
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "ggml_blocks.hpp"
#include "ggml_mix.hpp"

using nlohmann::json;
using ckh::sdk::fail;

namespace {

enum class Mode { Quantize, Dequantize, Keep, ToF16 };

struct State {
  Mode mode = Mode::Quantize;
  ckh_dtype in_dt = CKH_DT_F32, out = CKH_DT_Q8_0;
  uint32_t ndim = 2;
  int64_t shape[3] = {0, 0, 0};
  int64_t cols = 0, rows_per_block = 1;  // rows of `cols` elements in one block
  bool imatrix = false;                  // inputs 1 and 2 are in_sum2 and counts
  bool legacy_counts = false;            // counts are I32 call counts of the legacy imatrix.dat
  int64_t n_sum2 = 0, n_counts = 0;
  int64_t rows_per_expert = 1;           // rows that share one slice of the importance
  std::string name;
  std::string info;  // desc.info_json: {"metadata": {"gguf_file_type": llama_ftype of the --ggml-type}}
};

const char *const kKinds[] = {"unstated", "embedding", "output", "norm", "attn_q", "attn_k", "attn_v", "attn_qkv",
                              "attn_out", "ffn_gate", "ffn_up", "ffn_gate_up", "ffn_down", "router", "other"};

int32_t kind_of(const json &v) {
  if (v.is_number_integer()) return v.get<int32_t>();
  if (v.is_string())
    for (int32_t k = 0; k < static_cast<int32_t>(sizeof(kKinds) / sizeof(kKinds[0])); ++k)
      if (v.get<std::string>() == kKinds[k]) return k;
  return CKH_KIND_UNSTATED;
}

int64_t numel(const ckh_tensor_info_t *t) {
  int64_t n = 1;
  for (uint32_t d = 0; d < t->ndim; ++d) n *= t->shape[d];
  return n;
}

int64_t int_of(const json &o, const char *k, int64_t dflt) {
  return o.is_object() && o.contains(k) && o[k].is_number_integer() ? o[k].get<int64_t>() : dflt;
}

// The facts llama.cpp's rules read: from params "tensor" (the host's), the model config, and the weight.
ggmlq::TensorFacts facts_of(const json &p, const ckh_tensor_info_t *w, bool imatrix) {
  ggmlq::TensorFacts f;
  const json t = p.value("tensor", json::object());
  f.name = t.is_object() && t.contains("name") && t["name"].is_string() ? t["name"].get<std::string>()
                                                                       : std::string(w->name ? w->name : "");
  if (t.is_object()) {
    f.kind = t.contains("kind") ? kind_of(t["kind"]) : CKH_KIND_UNSTATED;
    f.layer = static_cast<int32_t>(int_of(t, "layer", -1));
    f.n_layers = static_cast<int32_t>(int_of(t, "n_layers", 0));
    f.n_experts = static_cast<int32_t>(int_of(t, "n_experts", 0));
    if (t.contains("has_output") && t["has_output"].is_boolean()) f.has_output = t["has_output"].get<bool>();
  }
  f.ndim = static_cast<int32_t>(w->ndim);
  while (f.ndim > 1 && w->shape[w->ndim - static_cast<uint32_t>(f.ndim)] == 1) --f.ndim;  // ggml_n_dims
  f.cols = w->ndim ? w->shape[w->ndim - 1] : 0;
  // Heads per kv head and the 70B rule from the (text) config.
  json cfg = p.value("config", json::object());
  if (cfg.is_object() && cfg.contains("text_config") && cfg["text_config"].is_object()) cfg = cfg["text_config"];
  const int64_t heads = int_of(cfg, "num_attention_heads", 0), kv = int_of(cfg, "num_key_value_heads", heads);
  f.n_gqa = kv > 0 ? static_cast<int32_t>(heads / kv) : 0;
  const int64_t n_layer = int_of(cfg, "num_hidden_layers", f.n_layers);
  if (f.n_layers <= 0) f.n_layers = static_cast<int32_t>(n_layer);
  if (f.n_experts <= 0 && !(t.is_object() && t.contains("n_experts")))
    f.n_experts = static_cast<int32_t>(int_of(cfg, "num_local_experts", int_of(cfg, "num_experts", 0)));
  const std::string mt = cfg.is_object() ? cfg.value("model_type", std::string()) : std::string();
  f.is_70b = n_layer == 80 && (((mt == "llama" || mt == "mistral") && heads != kv) || mt == "qwen2");
  f.has_imatrix = imatrix || (p.contains("imatrix") && p["imatrix"].is_string() && !p["imatrix"].get<std::string>().empty());
  f.pure = p.value("pure", false);
  return f;
}

bool is_token_embd(const ggmlq::TensorFacts &f) {
  if (f.name == "token_embd.weight" || f.name == "per_layer_token_embd.weight") return true;
  return f.name.rfind("blk.", 0) != 0 && f.kind == CKH_KIND_EMBEDDING;
}

ckh_status prepare_n(const ckh_quantizer_class_t *, const char *params, uint32_t n, const ckh_tensor_info_t *const *in,
                     ckh_quant_desc_t *d, void **state) {
  return ckh::sdk::guard([&] {
    json p = json::parse(params ? params : "{}", nullptr, false);
    if (!p.is_object()) p = json::object();
    if (n < 1 || !in[0] || in[0]->ndim < 1 || in[0]->ndim > 3) fail(CKH_E_UNSUPPORTED, "the weight must be 1-D, 2-D or 3-D");
    const ckh_tensor_info_t *w = in[0];
    auto s = std::make_unique<State>();
    s->name = w->name ? w->name : "";
    s->in_dt = w->dtype;
    s->ndim = w->ndim;
    for (uint32_t k = 0; k < w->ndim; ++k) s->shape[k] = w->shape[k];
    s->cols = w->shape[w->ndim - 1];
    s->rows_per_block = w->ndim == 3 ? w->shape[1] : 1;
    d->n_outputs = 1;
    if (p.value("mode", std::string()) == "dequantize") {
      if (n != 1) fail(CKH_E_UNSUPPORTED, "dequantize takes one tensor");
      if (ggmlq::block_elems(w->dtype) == 0)
        fail(CKH_E_UNSUPPORTED, "no dequantization of dtype " + std::to_string(w->dtype) + " (tensor '" + s->name + "')");
      s->mode = Mode::Dequantize;
      s->out = w->dtype;
      if (w->ndim == 1) {  // one row
        s->ndim = 2;
        s->shape[0] = 1;
        s->shape[1] = s->cols;
      }
      d->n_blocks = s->shape[0];
      *state = s.release();
      return;
    }
    ggmlq::Ftype ft;
    const std::string type = p.value("type", std::string("q8_0"));
    if (!ggmlq::parse_ftype(type, &ft))
      fail(CKH_E_UNSUPPORTED, "--ggml-type " + type + " is not a type this quantizer writes (" + ggmlq::ftype_names() + ")");
    if (n != 1 && n != 3)
      fail(CKH_E_UNSUPPORTED, "tensor '" + s->name + "': expected the weight, or the weight with its importance (in_sum2, counts); got " +
                                  std::to_string(n) + " inputs");
    s->imatrix = n == 3;
    const ggmlq::TensorFacts f = facts_of(p, w, s->imatrix);
    ckh_dtype dt = CKH_DT_INVALID;
    try {
      if (ckh_dtype_is_float(w->dtype)) dt = ggmlq::tensor_type(ft, f);
    } catch (const std::runtime_error &e) {
      fail(CKH_E_UNSUPPORTED, e.what());
    }
    if (dt == CKH_DT_INVALID || dt == w->dtype) {
      s->mode = Mode::Keep;
      s->out = w->dtype;
    } else if (dt == CKH_DT_F16) {
      s->mode = Mode::ToF16;
      s->out = CKH_DT_F16;
    } else {
      s->mode = Mode::Quantize;
      s->out = dt;
    }
    if (s->imatrix && s->mode == Mode::Quantize) {
      for (uint32_t k = 1; k < 3; ++k)
        if (!in[k]) fail(CKH_E_INVALID_ARG, "tensor '" + s->name + "': importance input missing");
      s->n_sum2 = numel(in[1]);
      s->n_counts = numel(in[2]);
      if (in[2]->dtype == CKH_DT_I32) s->legacy_counts = true;
      else if (!ckh_dtype_is_float(in[2]->dtype) || !ckh_dtype_is_float(in[1]->dtype))
        fail(CKH_E_FORMAT, "importance matrix of '" + f.name + "': in_sum2 and counts must be floats (counts may be I32 call counts)");
      // Matrices in the weight (each with its own importance slice, llama.cpp's imatrix_for_row): a stacked
      // [E, rows, cols] weight, or one the host flattened to [E * rows, cols] (params tensor.shape when stated,
      // else as many as the importance holds slices of cols values).
      const int64_t total_rows = w->ndim == 3 ? w->shape[0] * w->shape[1] : w->shape[0];
      int64_t experts = w->ndim == 3 ? w->shape[0] : 1;
      const json tt = p.value("tensor", json::object());
      if (w->ndim == 2 && tt.is_object() && tt.contains("shape") && tt["shape"].is_array() && tt["shape"].size() == 3 &&
          tt["shape"][0].is_number_integer())
        experts = tt["shape"][0].get<int64_t>();
      else if (w->ndim == 2 && s->cols > 0 && s->n_sum2 > s->cols && s->n_sum2 % s->cols == 0 &&
               total_rows % (s->n_sum2 / s->cols) == 0)
        experts = s->n_sum2 / s->cols;
      if (experts < 1 || total_rows % experts != 0)
        fail(CKH_E_INVALID_ARG, "tensor '" + f.name + "': " + std::to_string(total_rows) + " rows are not " + std::to_string(experts) + " matrices");
      s->rows_per_expert = total_rows / experts;
      const std::string what = "importance matrix of '" + f.name + "': ";
      if (s->n_sum2 != experts * s->cols) {
        // llama.cpp refuses a mismatched size, except for the token embedding, which it quantizes without.
        if (!is_token_embd(f))
          fail(CKH_E_FORMAT, what + "in_sum2 has " + std::to_string(s->n_sum2) + " values, the tensor needs " +
                                 std::to_string(experts * s->cols) + " (" + std::to_string(experts) + " x " + std::to_string(s->cols) + ")");
        s->imatrix = false;
      } else if (s->n_counts < 1 || s->n_sum2 % s->n_counts != 0) {
        fail(CKH_E_FORMAT, what + "counts has " + std::to_string(s->n_counts) + " values, which do not divide in_sum2's " +
                               std::to_string(s->n_sum2));
      }
    }
    if (s->mode != Mode::Quantize) s->imatrix = false;
    // The file's general.file_type is the mix's llama_ftype (llama-quantize writes it whatever each tensor got).
    s->info = json{{"metadata", {{"gguf_file_type", static_cast<int32_t>(ft)}}}}.dump();
    if (CKH_HAS_FIELD(d, ckh_quant_desc_t, info_json)) d->info_json = s->info.c_str();
    d->n_blocks = s->shape[0];
    *state = s.release();
  });
}

ckh_status port(const ckh_quantizer_class_t *, const void *state, int32_t dir, uint32_t i, ckh_quant_port_t *out) {
  const State &s = *static_cast<const State *>(state);
  if (dir == CKH_QUANT_INPUT && (i == 1 || i == 2)) {
    out->rows_per_block = 0;  // the whole importance in every call
    out->info.dtype = i == 2 && s.legacy_counts ? CKH_DT_I32 : CKH_DT_F32;
    return CKH_OK;
  }
  if (i != 0) return CKH_E_INVALID_ARG;
  out->rows_per_block = 1;
  out->info.ndim = s.ndim;
  for (uint32_t k = 0; k < s.ndim; ++k) out->info.shape[k] = s.shape[k];
  out->info.name = dir == CKH_QUANT_OUTPUT ? "" : nullptr;
  if (dir == CKH_QUANT_INPUT)
    out->info.dtype = s.mode == Mode::Dequantize ? s.out : s.mode == Mode::Keep ? s.in_dt : CKH_DT_F32;
  else
    out->info.dtype = s.mode == Mode::Dequantize ? CKH_DT_F32 : s.out;
  return CKH_OK;
}

// Importance of expert e's rows (cols values), as llama.cpp's quantize tool derives it: from a GGUF imatrix
// in_sum2 / count with the count rounded to an integer, 1 where the count is not positive; from a legacy
// imatrix.dat (I32 call counts) in_sum2 / ncall, in_sum2 itself where ncall is not positive.
void importance(const State &s, const float *sum2, const void *counts, int64_t e, std::vector<float> &out) {
  const int64_t per_count = s.n_sum2 / s.n_counts;
  out.resize(static_cast<size_t>(s.cols));
  for (int64_t i = 0; i < s.cols; ++i) {
    const int64_t k = e * s.cols + i;
    if (s.legacy_counts) {
      int32_t ncall;
      std::memcpy(&ncall, static_cast<const unsigned char *>(counts) + 4 * (k / per_count), 4);
      out[static_cast<size_t>(i)] = ncall > 0 ? sum2[k] / static_cast<float>(ncall) : sum2[k];
    } else {
      const float c = static_cast<float>(std::lround(static_cast<const float *>(counts)[k / per_count]));
      out[static_cast<size_t>(i)] = c > 0.0f ? sum2[k] / c : 1.0f;
    }
    if (!std::isfinite(out[static_cast<size_t>(i)]))
      fail(CKH_E_FORMAT, "importance matrix of '" + s.name + "' holds a non-finite value at " + std::to_string(k));
  }
}

ckh_status quantize_n(const ckh_quantizer_class_t *, void *state, int64_t block0, int64_t nb, const void *const *src, void *const *dst) {
  return ckh::sdk::guard([&] {
    const State &s = *static_cast<const State *>(state);
    const int64_t rows = nb * s.rows_per_block;
    if (s.mode == Mode::Keep) {
      ckh_dtype_traits_t tr{};
      ckh_dtype_traits(s.in_dt, &tr);
      int64_t per_block = 1;
      for (uint32_t k = 1; k < s.ndim; ++k) per_block *= s.shape[k];
      std::memcpy(dst[0], src[0], static_cast<size_t>(nb * per_block / tr.block_elems * tr.block_bytes));
      return;
    }
    if (s.mode == Mode::ToF16 || s.mode == Mode::Quantize) {
      // llama.cpp refuses what would hold a NaN or infinity (ggml_validate_row_data after each chunk).
      const float *x = static_cast<const float *>(src[0]);
      for (int64_t i = 0; i < rows * s.cols; ++i)
        if (!std::isfinite(x[i]))
          fail(CKH_E_FORMAT, "tensor '" + s.name + "': row " + std::to_string(block0 * s.rows_per_block + i / s.cols) +
                                 " holds a non-finite value, which llama.cpp's quantizer refuses");
    }
    if (s.mode == Mode::ToF16) {
      const float *x = static_cast<const float *>(src[0]);
      auto *y = static_cast<unsigned char *>(dst[0]);
      for (int64_t i = 0; i < rows * s.cols; ++i) {
        const uint16_t h = ggmlq::f32_to_f16(x[i]);
        y[2 * i] = static_cast<unsigned char>(h & 0xff);
        y[2 * i + 1] = static_cast<unsigned char>(h >> 8);
      }
      return;
    }
    ckh_dtype_traits_t tr{};
    ckh_dtype_traits(s.out, &tr);
    const int64_t row_bytes = s.cols / tr.block_elems * tr.block_bytes;
    if (s.mode == Mode::Dequantize) {
      for (int64_t r = 0; r < rows; ++r)
        ggmlq::dequantize_row(s.out, static_cast<const uint8_t *>(src[0]) + r * row_bytes, s.cols, static_cast<float *>(dst[0]) + r * s.cols);
      return;
    }
    std::vector<float> qw;
    int64_t qw_expert = -1;
    for (int64_t r = 0; r < rows; ++r) {
      const float *w = nullptr;
      if (s.imatrix) {
        const int64_t e = (block0 * s.rows_per_block + r) / s.rows_per_expert;
        if (e != qw_expert) {
          importance(s, static_cast<const float *>(src[1]), src[2], e, qw);
          qw_expert = e;
        }
        w = qw.data();
      }
      ggmlq::quantize_row(s.out, static_cast<const float *>(src[0]) + r * s.cols, s.cols, w,
                          static_cast<uint8_t *>(dst[0]) + r * row_bytes);
    }
  });
}

void release(const ckh_quantizer_class_t *, void *state) { delete static_cast<State *>(state); }

const ckh_quantizer_class_t kQuant = {sizeof(ckh_quantizer_class_t), 0, nullptr, nullptr, release, prepare_n, port, quantize_n};
const ckh_component_t kComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_QUANTIZER, "ggml",
    "llama.cpp's ggml block types and llama-quantize's mixes (Q2_K..Q6_K, Q4_K_M, ..., Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), "
    "bit for bit as ggml's quantizers, with or without an importance matrix",
    R"J({"quantize": true, "targets": "weights", "stage": "target", "aux_inputs": {"imatrix": [".in_sum2", ".counts"]},)J"
    R"J( "dequantize_blocks": ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"], "options": [)J"
    R"J({"name": "ggml-type", "type": "string", "key": "type", "default": "q8_0", "group": "quantization", )J"
    R"J("choices": ["q2_k", "q3_k_s", "q3_k_m", "q3_k", "q3_k_l", "q4_k_s", "q4_k_m", "q4_k", "q5_k_s", "q5_k_m", "q5_k", "q6_k", )J"
    R"J("q4_0", "q4_1", "q5_0", "q5_1", "q8_0"], )J"
    R"J("help": "llama-quantize's file type for --quantize ggml: a mix (q4_k_m, ...) or a plain type (q8_0, ...); each tensor gets llama.cpp's choice"}, )J"
    R"J({"name": "imatrix", "type": "string", "key": "imatrix", "group": "quantization", )J"
    R"J("help": "importance matrix for --quantize ggml (llama.cpp's llama-imatrix output, GGUF): its <tensor>.in_sum2 / <tensor>.counts weight the quantization"}, )J"
    R"J({"name": "ggml-pure", "type": "bool", "key": "pure", "group": "quantization", )J"
    R"J("help": "--quantize ggml: the --ggml-type's own type for every quantized tensor, no mix (llama-quantize --pure)"}]})J",
    &kQuant};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.quant.ggml", "0.2.0",
                              "ckhost", "ggml block quantizer", init, nullptr, kComps, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
