// plugin.cpp — the "ggml" quantizer: rows of a float weight into llama.cpp's block types, one output of a block
// dtype replacing the tensor (--quantize ggml --ggml-type TYPE). Types so far: Q8_0, as ggml's
// quantize_row_q8_0_ref computes it: per 32 elements d = amax / 127 (f32), stored as f16 (round to nearest even), and
// codes roundf(x * (1 / d)) (f32 product, rounded half away from zero), 0 codes for an all-zero block.
// Every 2-D float weight is quantized (llama.cpp quantizes the embedding and output too); its rows must be whole blocks.
#include <cmath>
#include <cstring>
#include <string>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

using nlohmann::json;
using ckh::sdk::fail;

namespace {

struct State {
  int64_t rows = 0, cols = 0;
  ckh_dtype in = CKH_DT_F32;
};

// f32 -> f16 bits, round to nearest even (ggml's GGML_FP32_TO_FP16 on CPU: the hardware conversion).
uint16_t to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return static_cast<uint16_t>(sign | (ax > 0x7f800000u ? 0x7e00u : 0x7c00u));
  if (ax >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to infinity
  if (ax < 0x38800000u) {                                                // f16 subnormal or zero
    float a;
    std::memcpy(&a, &ax, 4);
    const float q = a * 16777216.0f;  // exact: a multiple of 2^-24 is an integer here
    return static_cast<uint16_t>(sign | static_cast<uint32_t>(std::nearbyint(q)));
  }
  const uint32_t e = (ax >> 23) - 112, m = ax & 0x7fffffu;
  uint32_t h = (e << 10) | (m >> 13);
  const uint32_t rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

std::string type_of(const json &p) {
  std::string t = p.value("type", std::string("q8_0"));
  for (char &c : t) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return t;
}

ckh_status prepare_n(const ckh_quantizer_class_t *, const char *params, uint32_t n, const ckh_tensor_info_t *const *in,
                     ckh_quant_desc_t *d, void **state) {
  return ckh::sdk::guard([&] {
    const json p = json::parse(params ? params : "{}", nullptr, false);
    const std::string t = type_of(p.is_object() ? p : json::object());
    if (t != "q8_0")
      fail(CKH_E_UNSUPPORTED, "--ggml-type " + t + " is not supported yet (q8_0 is; llama.cpp's Q4_0, Q4_1, Q5_0, Q5_1 and k-quants are not written yet)");
    if (n != 1 || !in[0] || in[0]->ndim != 2) fail(CKH_E_UNSUPPORTED, "ggml: one 2-D weight per call");
    const std::string name = in[0]->name ? in[0]->name : "";
    if (!ckh_dtype_is_float(in[0]->dtype)) fail(CKH_E_UNSUPPORTED, "ggml: tensor '" + name + "' is not a float tensor");
    if (in[0]->shape[1] % 32)
      fail(CKH_E_UNSUPPORTED, "ggml q8_0: tensor '" + name + "' has rows of " + std::to_string(in[0]->shape[1]) +
                                  " elements, not whole 32-element blocks");
    auto s = std::make_unique<State>();
    s->rows = in[0]->shape[0];
    s->cols = in[0]->shape[1];
    d->n_outputs = 1;
    d->n_blocks = s->rows;
    *state = s.release();
  });
}

ckh_status port(const ckh_quantizer_class_t *, const void *state, int32_t dir, uint32_t i, ckh_quant_port_t *out) {
  const State &s = *static_cast<const State *>(state);
  if (i != 0) return CKH_E_INVALID_ARG;
  out->rows_per_block = 1;
  out->info.ndim = 2;
  out->info.shape[0] = s.rows;
  out->info.shape[1] = s.cols;
  out->info.name = dir == CKH_QUANT_OUTPUT ? "" : nullptr;
  out->info.dtype = dir == CKH_QUANT_INPUT ? CKH_DT_F32 : CKH_DT_Q8_0;
  return CKH_OK;
}

ckh_status quantize_n(const ckh_quantizer_class_t *, void *state, int64_t, int64_t nb, const void *const *src, void *const *dst) {
  return ckh::sdk::guard([&] {
    const State &s = *static_cast<const State *>(state);
    const int64_t blocks = s.cols / 32;
    for (int64_t r = 0; r < nb; ++r)
      for (int64_t b = 0; b < blocks; ++b) {
        const float *x = static_cast<const float *>(src[0]) + r * s.cols + b * 32;
        unsigned char *q = static_cast<unsigned char *>(dst[0]) + (r * blocks + b) * 34;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float dd = amax / 127.0f;
        const float id = dd != 0.0f ? 1.0f / dd : 0.0f;
        const uint16_t h = to_f16(dd);
        q[0] = static_cast<unsigned char>(h & 0xff);
        q[1] = static_cast<unsigned char>(h >> 8);
        for (int j = 0; j < 32; ++j) q[2 + j] = static_cast<unsigned char>(static_cast<signed char>(std::round(x[j] * id)));
      }
  });
}

void release(const ckh_quantizer_class_t *, void *state) { delete static_cast<State *>(state); }

const ckh_quantizer_class_t kQuant = {sizeof(ckh_quantizer_class_t), 0, nullptr, nullptr, release, prepare_n, port, quantize_n};
const ckh_component_t kComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_QUANTIZER, "ggml",
    "llama.cpp's ggml block types (Q8_0 so far), bit for bit as ggml's reference quantizers",
    R"J({"quantize": true, "targets": "weights", "options": [)J"
    R"J({"name": "ggml-type", "type": "string", "key": "type", "default": "q8_0", "group": "quantization", )J"
    R"J("help": "ggml block type for --quantize ggml (q8_0)"}]})J",
    &kQuant};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.quant.ggml", "0.1.0",
                              "ckhost", "ggml block quantizer", init, nullptr, kComps, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
