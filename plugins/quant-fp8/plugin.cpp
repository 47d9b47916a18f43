// plugin.cpp — the "fp8-block" quantizer (SDK 1.1): block FP8 codes + scales, both ways.
//
//   {"mode": "dequantize", "to": "BF16"}  inputs (codes, scales) -> one output, the weight
//   {"mode": "quantize"}                  input weight -> codes ("") and scales ("_scale_inv"); the HF
//                                         quantization_config it makes goes out in desc.info_json
// Optional params: "block": [bm, bn] (default: the config's quantization_config.weight_block_size, else
// derived from the scale grid when dequantizing, else [128, 128]); "codes": "F8_E4M3" | "F8_E5M2";
// "amax_epsilon": float; "pow2_scales": bool; "config": the model config (the host passes it).
// Shapes: [N, K] with scales [ceil(N/bm), ceil(K/bn)] (blocks of bm rows), or stacked experts
// [E, N, K] with scales [E, ceil(N/bm), ceil(K/bn)] (one expert per block).
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "fp8_block.hpp"

namespace {

using json = nlohmann::json;
using ckh::sdk::fail;

struct State {
  bool dequant = true;
  ckh_dtype cdt = CKH_DT_F8_E4M3FN, sdt = CKH_DT_F32, to = CKH_DT_BF16;
  std::vector<int64_t> cshape, sshape;  // codes / weight shape; scale grid shape
  bool stacked = false;                 // [E, N, K]
  ckh::fp8::Block b;
  ckh::fp8::QuantParams qp;
  std::string meta;  // quantize: the config entries (ckh_quant_desc_t.info_json)
  int64_t rows() const { return cshape[cshape.size() - 2]; }
  int64_t cols() const { return cshape.back(); }
  int64_t srows() const { return sshape[sshape.size() - 2]; }
  int64_t scols() const { return sshape.back(); }
};

ckh_dtype dtype_of(const std::string &s) {
  static const std::pair<const char *, ckh_dtype> names[] = {
      {"F32", CKH_DT_F32}, {"BF16", CKH_DT_BF16}, {"F16", CKH_DT_F16}, {"F8_E4M3", CKH_DT_F8_E4M3FN},
      {"F8_E4M3FN", CKH_DT_F8_E4M3FN}, {"F8_E5M2", CKH_DT_F8_E5M2}};
  for (const auto &n : names)
    if (s == n.first) return n.second;
  return CKH_DT_INVALID;
}

std::vector<int64_t> shape_of(const ckh_tensor_info_t *t) { return std::vector<int64_t>(t->shape, t->shape + t->ndim); }

std::string str(const std::vector<int64_t> &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

ckh_status prepare_n(const ckh_quantizer_class_t *, const char *params, uint32_t n, const ckh_tensor_info_t *const *in,
                     ckh_quant_desc_t *desc, void **state) {
  *state = nullptr;
  return ckh::sdk::guard([&] {
    const json p = json::parse(params ? params : "{}", nullptr, false);
    if (p.is_discarded() || !p.is_object()) fail(CKH_E_INVALID_ARG, "fp8-block: params are not a JSON object");
    auto st = std::make_unique<State>();
    const std::string mode = p.value("mode", std::string("quantize"));
    if (mode != "quantize" && mode != "dequantize")
      fail(CKH_E_INVALID_ARG, "fp8-block: mode must be quantize or dequantize, not '" + mode + "'");
    st->dequant = mode == "dequantize";
    ckh::fp8::Block given;
    bool have_block = false;
    json blk = p.value("block", json());
    if (blk.is_string()) {  // --fp8-block BMxBN
      const std::string t = blk.get<std::string>();
      const size_t x = t.find_first_of("xX");
      char *e1 = nullptr, *e2 = nullptr;
      const long long bm = x == std::string::npos ? 0 : std::strtoll(t.c_str(), &e1, 10);
      const long long bn = x == std::string::npos ? 0 : std::strtoll(t.c_str() + x + 1, &e2, 10);
      if (x == std::string::npos || e1 != t.c_str() + x || !e2 || *e2 || bm < 1 || bn < 1 || bm > (1 << 20) || bn > (1 << 20))
        fail(CKH_E_INVALID_ARG, "fp8-block: block must be ROWSxCOLS, e.g. 128x128, got '" + t + "'");
      blk = json::array({bm, bn});
    }
    if (blk.is_null() && p.contains("config") && p["config"].is_object()) {
      const json &qc = p["config"].value("quantization_config", json::object());
      if (qc.is_object()) blk = qc.value("weight_block_size", json());
    }
    if (!blk.is_null()) {
      if (!blk.is_array() || blk.size() != 2 || !blk[0].is_number_integer() || !blk[1].is_number_integer() ||
          blk[0].get<int64_t>() < 1 || blk[1].get<int64_t>() < 1)
        fail(CKH_E_INVALID_ARG, "fp8-block: block (weight_block_size) must be two positive integers, got " + blk.dump());
      given.bm = blk[0].get<int64_t>();
      given.bn = blk[1].get<int64_t>();
      have_block = true;
    }
    const std::string name = in && n ? (in[0]->name ? in[0]->name : "?") : "?";
    if (st->dequant) {
      if (n != 2) fail(CKH_E_INVALID_ARG, "fp8-block dequantize takes (codes, scales), got " + std::to_string(n) + " inputs");
      st->cdt = in[0]->dtype;
      st->sdt = in[1]->dtype;
      if (st->cdt != CKH_DT_F8_E4M3FN && st->cdt != CKH_DT_F8_E5M2)
        fail(CKH_E_UNSUPPORTED, name + ": codes must be F8_E4M3 or F8_E5M2");
      if (!ckh::fp8::scale_dtype_ok(st->sdt))
        fail(CKH_E_UNSUPPORTED, std::string(in[1]->name ? in[1]->name : "scales") + ": scales must be F32, BF16, F16 or F8_E8M0");
      st->to = dtype_of(p.value("to", std::string("BF16")));
      if (st->to != CKH_DT_F32 && st->to != CKH_DT_BF16 && st->to != CKH_DT_F16)
        fail(CKH_E_INVALID_ARG, "fp8-block: dequantize to F32, BF16 or F16");
      st->cshape = shape_of(in[0]);
      st->sshape = shape_of(in[1]);
      if (st->cshape.size() < 2 || st->cshape.size() > 3 || st->sshape.size() != st->cshape.size() ||
          (st->cshape.size() == 3 && st->sshape[0] != st->cshape[0]))
        fail(CKH_E_UNSUPPORTED, name + ": codes " + str(st->cshape) + " with scales " + str(st->sshape) +
                                    ": block scales need [N, K] with [N/bm, K/bn] or [E, N, K] with [E, N/bm, K/bn]");
      st->stacked = st->cshape.size() == 3;
      try {
        st->b = ckh::fp8::block_for(st->rows(), st->cols(), st->srows(), st->scols(), have_block ? &given : nullptr);
      } catch (const std::invalid_argument &e) {
        fail(CKH_E_FORMAT, name + ": " + e.what());
      }
    } else {
      if (n != 1) fail(CKH_E_INVALID_ARG, "fp8-block quantize takes one input, got " + std::to_string(n));
      st->cshape = shape_of(in[0]);
      if (st->cshape.size() < 2 || st->cshape.size() > 3)
        fail(CKH_E_UNSUPPORTED, name + ": block FP8 quantizes [N, K] or [E, N, K] tensors, not " + str(st->cshape));
      st->stacked = st->cshape.size() == 3;
      st->b = have_block ? given : ckh::fp8::Block{};
      st->qp.codes = dtype_of(p.value("codes", std::string("F8_E4M3")));
      if (st->qp.codes != CKH_DT_F8_E4M3FN && st->qp.codes != CKH_DT_F8_E5M2)
        fail(CKH_E_INVALID_ARG, "fp8-block: codes must be F8_E4M3 or F8_E5M2");
      st->qp.amax_epsilon = p.value("amax_epsilon", 0.0f);
      st->qp.pow2_scales = p.value("pow2_scales", false);
      if (!(st->qp.amax_epsilon >= 0.0f) || !std::isfinite(st->qp.amax_epsilon))
        fail(CKH_E_INVALID_ARG, "fp8-block: amax_epsilon must be a finite number >= 0");
      if (in[0]->dtype != CKH_DT_F32 && in[0]->dtype != CKH_DT_BF16 && in[0]->dtype != CKH_DT_F16)
        fail(CKH_E_UNSUPPORTED, name + ": block FP8 quantizes F32, BF16 or F16 weights, not dtype " + std::to_string(in[0]->dtype));
      // What an HF config says about these weights (transformers' "fp8" finegrained scheme, DeepSeek-V3's).
      // The scale block per dim of the codes, and what an HF config says about these weights
      // (transformers' "fp8" finegrained scheme, DeepSeek-V3's).
      json sb = json::array();
      if (st->stacked) sb.push_back(1);
      sb.push_back(st->b.bm);
      sb.push_back(st->b.bn);
      st->meta = json{{"scale_block", sb},
                      {"config",
                       {{"quantization_config",
                         {{"quant_method", "fp8"},
                          {"fmt", st->qp.codes == CKH_DT_F8_E4M3FN ? "e4m3" : "e5m2"},
                          {"activation_scheme", "dynamic"},
                          {"weight_block_size", {st->b.bm, st->b.bn}},
                          {"modules_to_not_convert", "$unquantized"}}}}}}
                     .dump();
      if (CKH_HAS_FIELD(desc, ckh_quant_desc_t, info_json)) desc->info_json = st->meta.c_str();
      st->sshape = st->cshape;
      st->sshape[st->sshape.size() - 2] = cdiv(st->rows(), st->b.bm);
      st->sshape.back() = cdiv(st->cols(), st->b.bn);
    }
    desc->n_outputs = st->dequant ? 1 : 2;
    desc->n_blocks = st->stacked ? st->cshape[0] : st->srows();
    *state = st.release();
  });
}

ckh_status port(const ckh_quantizer_class_t *, const void *state, int32_t dir, uint32_t i, ckh_quant_port_t *out) {
  return ckh::sdk::guard([&] {
    const State &s = *static_cast<const State *>(state);
    ckh_quant_port_t p{};
    p.struct_size = sizeof p;
    p.info.struct_size = sizeof p.info;
    auto put = [&](const std::vector<int64_t> &shape, ckh_dtype dt, bool scale_rows, const char *name) {
      p.info.ndim = static_cast<uint32_t>(shape.size());
      for (size_t d = 0; d < shape.size(); ++d) p.info.shape[d] = shape[d];
      p.info.dtype = dt;
      p.info.name = name;
      p.rows_per_block = s.stacked ? 1 : (scale_rows ? 1 : s.b.bm);
    };
    if (dir == CKH_QUANT_INPUT) {
      if (s.dequant && i == 0) put(s.cshape, s.cdt, false, nullptr);
      else if (s.dequant && i == 1) put(s.sshape, s.sdt, true, nullptr);
      else if (!s.dequant && i == 0) put(s.cshape, CKH_DT_F32, false, nullptr);
      else fail(CKH_E_INVALID_ARG, "fp8-block: no input " + std::to_string(i));
    } else {
      if (s.dequant && i == 0) put(s.cshape, s.to, false, "");
      else if (!s.dequant && i == 0) put(s.cshape, s.qp.codes, false, "");
      else if (!s.dequant && i == 1) put(s.sshape, CKH_DT_F32, true, "_scale_inv");
      else fail(CKH_E_INVALID_ARG, "fp8-block: no output " + std::to_string(i));
    }
    const uint32_t sz = std::min<uint32_t>(out->struct_size, sizeof p);
    const uint32_t keep = out->struct_size;
    std::memcpy(out, &p, sz);
    out->struct_size = keep;
  });
}

ckh_status quantize_n(const ckh_quantizer_class_t *, void *state, int64_t b0, int64_t nb, const void *const *src,
                      void *const *dst) {
  return ckh::sdk::guard([&] {
    const State &s = *static_cast<const State *>(state);
    const ckh_kernels_t *k = ckh::sdk::kernels();
    const int64_t N = s.rows(), K = s.cols(), sN = s.srows(), sK = s.scols();
    const uint32_t osz = s.dequant ? ckh_dtype_size(s.to) : 1;
    const uint32_t ssz = ckh_dtype_size(s.sdt);
    for (int64_t e = 0; e < (s.stacked ? nb : 1); ++e) {
      if (ckh::sdk::cancelled()) fail(CKH_E_CANCELLED, "cancelled");
      // Rows of this call: one whole expert (stacked), or the rows of blocks [b0, b0 + nb).
      const int64_t r0 = s.stacked ? 0 : b0 * s.b.bm, r1 = s.stacked ? N : std::min(N, (b0 + nb) * s.b.bm);
      const int64_t rows = r1 - r0;
      const uint64_t coff = static_cast<uint64_t>(e * N * K), soff = static_cast<uint64_t>(e * sN * sK);
      if (s.dequant) {
        ckh::fp8::dequantize_rows(k, static_cast<const uint8_t *>(src[0]) + coff, s.cdt,
                                  static_cast<const char *>(src[1]) + soff * ssz, s.sdt, sK, rows, K, s.b,
                                  static_cast<char *>(dst[0]) + coff * osz, s.to);
      } else {
        try {
          ckh::fp8::quantize_rows(k, static_cast<const float *>(src[0]) + coff, rows, K, s.b, s.qp,
                                  static_cast<uint8_t *>(dst[0]) + coff, static_cast<float *>(dst[1]) + soff);
        } catch (const std::invalid_argument &x) {
          fail(CKH_E_FORMAT, std::string("fp8-block: ") + x.what());
        }
      }
    }
  });
}

void release(const ckh_quantizer_class_t *, void *state) { delete static_cast<State *>(state); }

const ckh_quantizer_class_t kQuant = {sizeof(ckh_quantizer_class_t), 0, nullptr, nullptr, release, prepare_n, port,
                                      quantize_n};
const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_QUANTIZER, "fp8-block",
                               "block FP8 (float8 codes + one scale per bm x bn block): quantize and dequantize",
                               R"J({"dequantize": true, "quantize": true, "codes": ["F8_E4M3", "F8_E5M2"], "block": [128, 128], "options": [)J"
                               R"J({"name": "fp8-block", "type": "string", "key": "block", "group": "quantization", )J"
                               R"J("help": "block FP8 (--quantize fp8-block): rows x cols per scale, e.g. 128x128 (default: the source's weight_block_size, else 128x128)"}, )J"
                               R"J({"name": "fp8-amax-epsilon", "type": "float", "key": "amax_epsilon", "group": "quantization", )J"
                               R"J("help": "block FP8: floor on each block's amax before scale = amax / 448 (default 0: an all-zero block gets scale 1)"}, )J"
                               R"J({"name": "fp8-pow2-scales", "type": "bool", "key": "pow2_scales", "group": "quantization", )J"
                               R"J("help": "block FP8: round each scale up to a power of two"}, )J"
                               R"J({"name": "fp8-no-requant", "type": "bool", "key": "no_requant", "group": "quantization", "policy": true, )J"
                               R"J("help": "block FP8: refuse any requantization (--quantize over FP8 codes); codes and scales are always copied as they are, and a layout that cuts a block is refused (LoongForge's fp8_force_no_requant)"}, )J"
                               R"J({"name": "fp8-codes", "type": "string", "key": "codes", "choices": ["F8_E4M3", "F8_E5M2"], "group": "quantization", )J"
                               R"J("help": "block FP8: code dtype (default F8_E4M3, max 448; F8_E5M2, max 57344)"}]})J", &kQuant};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.quant.fp8", "0.1.0",
                              "ckhost", "block FP8 quantizer", init, nullptr, kComps, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
