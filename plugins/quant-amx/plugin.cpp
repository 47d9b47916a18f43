// plugin.cpp — the "kt-amx" quantizer: the numbers of kt-kernel's AMX MoE experts (KTransformers, AMXINT8 and
// AMXINT4 as GemmKernel224Int8 / GemmKernel224Int4 compute them when they quantize BF16 weights): symmetric, one
// f32 scale per output row over that row's whole reduction dim, no zero point, no groups.
//   int8  d = amax * (1/127)  (the f32 constant, not a division),  q = sat(rne(x * (1/d)))      codes [n, k] int8
//   int4  d = amax / 112      (112 = 7 * 16),  s = sat(rne(x * (1/d))) in [-112, 112],
//         q = sign(s) * ((|s| + 8) >> 4)  (|s| / 16 rounded half away from zero)  in [-7, 7]   codes [n, k/2]
// (1/d is 0 when d is 0; amax over the f32 values of the BF16 row). The int4 codes are stored two per byte as
// kt-kernel's INT4 kernel reads them: in every group of 128 columns, byte j holds column j in its low nibble and
// column 64 + j in its high nibble (two's complement nibbles). Input: one 2-D BF16 weight (a float of another
// dtype is rounded to BF16 by the host first, as kt-kernel always quantizes BF16). Output 0: the codes (I8);
// output 1: the scales, F32 [n]. Rows are independent: a block is one row.
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

using nlohmann::json;
using ckh::sdk::fail;

namespace {

struct State {
  int64_t rows = 0, cols = 0;
  int bits = 8;
};

ckh_status prepare_n(const ckh_quantizer_class_t *, const char *params, uint32_t n, const ckh_tensor_info_t *const *in,
                     ckh_quant_desc_t *d, void **state) {
  return ckh::sdk::guard([&] {
    const json p = json::parse(params ? params : "{}", nullptr, false);
    if (!p.is_object()) fail(CKH_E_INVALID_ARG, "kt-amx: params are not a JSON object");
    if (p.value("mode", std::string("quantize")) != "quantize")
      fail(CKH_E_UNSUPPORTED, "kt-amx: only quantizes (kt-kernel's AMX codes are read back by kt-kernel, not by ckhost)");
    const int bits = p.value("bits", 0);
    if (bits != 8 && bits != 4) fail(CKH_E_INVALID_ARG, "kt-amx: \"bits\" must be 8 (AMXINT8) or 4 (AMXINT4), got " + p.value("bits", json()).dump());
    if (n != 1 || !in[0] || in[0]->ndim != 2) fail(CKH_E_UNSUPPORTED, "kt-amx: one 2-D weight per call");
    const std::string name = in[0]->name ? in[0]->name : "";
    if (!ckh_dtype_is_float(in[0]->dtype)) fail(CKH_E_UNSUPPORTED, "kt-amx: tensor '" + name + "' is not a float tensor");
    if (in[0]->shape[0] < 1 || in[0]->shape[1] < 1) fail(CKH_E_UNSUPPORTED, "kt-amx: tensor '" + name + "' is empty");
    if (bits == 4 && in[0]->shape[1] % 128)
      fail(CKH_E_UNSUPPORTED, "kt-amx int4: tensor '" + name + "' has rows of " + std::to_string(in[0]->shape[1]) +
                                  " elements, expected a multiple of 128 (kt-kernel pairs columns j and j + 64 of each 128)");
    auto s = std::make_unique<State>();
    s->rows = in[0]->shape[0];
    s->cols = in[0]->shape[1];
    s->bits = bits;
    d->n_outputs = 2;
    d->n_blocks = s->rows;
    *state = s.release();
  });
}

ckh_status port(const ckh_quantizer_class_t *, const void *state, int32_t dir, uint32_t i, ckh_quant_port_t *out) {
  const State &s = *static_cast<const State *>(state);
  out->rows_per_block = 1;
  if (dir == CKH_QUANT_INPUT) {
    if (i != 0) return CKH_E_INVALID_ARG;
    out->info.ndim = 2;
    out->info.shape[0] = s.rows;
    out->info.shape[1] = s.cols;
    out->info.dtype = CKH_DT_BF16;
    return CKH_OK;
  }
  if (i == 0) {
    out->info.name = "";
    out->info.ndim = 2;
    out->info.shape[0] = s.rows;
    out->info.shape[1] = s.bits == 8 ? s.cols : s.cols / 2;
    out->info.dtype = CKH_DT_I8;
    return CKH_OK;
  }
  if (i == 1) {
    out->info.name = ".scale";
    out->info.ndim = 1;
    out->info.shape[0] = s.rows;
    out->info.dtype = CKH_DT_F32;
    return CKH_OK;
  }
  return CKH_E_INVALID_ARG;
}

// The int8 value s (|s| <= 127) rounded to a 4-bit code: |s| / 16 half away from zero, sign kept.
inline int8_t code4(int8_t s) {
  const int a = s < 0 ? -s : s;
  const int q = (a + 8) >> 4;
  return static_cast<int8_t>(s < 0 ? -q : q);
}

ckh_status quantize_n(const ckh_quantizer_class_t *, void *state, int64_t, int64_t nb, const void *const *src, void *const *dst) {
  return ckh::sdk::guard([&] {
    const State &s = *static_cast<const State *>(state);
    const ckh_kernels_t *k = ckh::sdk::kernels();
    if (!k) fail(CKH_E_INTERNAL, "kt-amx: the host gave no kernel table");
    const uint64_t cols = static_cast<uint64_t>(s.cols);
    std::vector<float> row(cols);
    std::vector<int8_t> s8(s.bits == 4 ? cols : 0);
    const uint16_t *in = static_cast<const uint16_t *>(src[0]);
    int8_t *codes = static_cast<int8_t *>(dst[0]);
    float *scales = static_cast<float *>(dst[1]);
    const uint64_t out_cols = s.bits == 8 ? cols : cols / 2;
    for (int64_t r = 0; r < nb; ++r) {
      k->bf16_to_f32(in + static_cast<uint64_t>(r) * cols, row.data(), cols);
      const float amax = k->absmax_f32(row.data(), cols);
      // kt-kernel: int8 multiplies by the f32 constant 1/127; int4 divides by 112.
      const float d = s.bits == 8 ? amax * (1.0f / 127.0f) : amax / 112.0f;
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      scales[r] = d;
      int8_t *out = codes + static_cast<uint64_t>(r) * out_cols;
      if (s.bits == 8) {
        k->f32_to_i8_scaled(row.data(), out, cols, id);
        continue;
      }
      k->f32_to_i8_scaled(row.data(), s8.data(), cols, id);
      for (uint64_t g = 0; g < cols; g += 128)
        for (uint64_t j = 0; j < 64; ++j) {
          const uint8_t lo = static_cast<uint8_t>(code4(s8[g + j])) & 0x0f, hi = static_cast<uint8_t>(code4(s8[g + 64 + j])) & 0x0f;
          out[g / 2 + j] = static_cast<int8_t>(lo | (hi << 4));
        }
    }
  });
}

void release(const ckh_quantizer_class_t *, void *state) { delete static_cast<State *>(state); }

const ckh_quantizer_class_t kQuant = {sizeof(ckh_quantizer_class_t), 0, nullptr, nullptr, release, prepare_n, port, quantize_n};
const ckh_component_t kComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_QUANTIZER, "kt-amx",
    "kt-kernel's AMXINT8 / AMXINT4 expert numbers (KTransformers): one f32 scale per row, symmetric int8 or int4 codes, "
    "bit for bit as kt-kernel quantizes BF16 (used by the kt-amx writer)",
    R"J({"bits": [8, 4]})J", &kQuant};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.quant.amx", "0.1.0",
                              "ckhost", "KTransformers AMX expert quantizer", init, nullptr, kComps, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
