// plugin.cpp — the "ggml" quantizer: rows of a float weight into llama.cpp's block types, one output of a block
// dtype replacing the tensor (--quantize ggml --ggml-type TYPE), as ggml's reference quantizers compute them (f32
// arithmetic, scales stored as f16 rounded to nearest even; compiled with -ffp-contract=off so no product is fused):
//   Q8_0  d = amax / 127, codes roundf(x / d) (half away from zero)                          [d][32 x int8]
//   Q4_0  d = max / -8 (max: the value of largest magnitude, first one), q = min(15, trunc(x / d + 8.5))
//                                                                                              [d][16 nibbles]
//   Q4_1  d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5))              [d][m][16 nibbles]
//   Q5_0  d = max / -16, q = min(31, trunc(x / d + 16.5)), high bits in a 32-bit mask          [d][qh][16 nibbles]
//   Q5_1  d = (max - min) / 31, m = min, q = min(31, trunc((x - min) / d + 0.5))             [d][m][qh][16 nibbles]
// (x / d as x * (1 / d), 0 when d is 0; nibble j of byte j holds element j, the high nibble element j + 16).
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
  ckh_dtype out = CKH_DT_Q8_0;  // the block type (quantize: written; dequantize: read)
  bool deq = false;
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
    if (p.is_object() && p.value("mode", std::string()) == "dequantize") {
      if (n != 1 || !in[0] || in[0]->ndim < 1 || in[0]->ndim > 2) fail(CKH_E_UNSUPPORTED, "ggml: dequantize takes one 1-D or 2-D tensor");
      const ckh_dtype dt = in[0]->dtype;
      if (dt != CKH_DT_Q8_0 && dt != CKH_DT_Q4_0 && dt != CKH_DT_Q4_1 && dt != CKH_DT_Q5_0 && dt != CKH_DT_Q5_1)
        fail(CKH_E_UNSUPPORTED, std::string("ggml: no dequantization of dtype ") + std::to_string(dt));
      auto s = std::make_unique<State>();
      s->rows = in[0]->ndim == 2 ? in[0]->shape[0] : 1;
      s->cols = in[0]->shape[in[0]->ndim - 1];
      s->out = dt;
      s->deq = true;
      d->n_outputs = 1;
      d->n_blocks = s->rows;
      *state = s.release();
      return;
    }
    const std::string t = type_of(p.is_object() ? p : json::object());
    const std::pair<const char *, ckh_dtype> kTypes[] = {
        {"q8_0", CKH_DT_Q8_0}, {"q4_0", CKH_DT_Q4_0}, {"q4_1", CKH_DT_Q4_1}, {"q5_0", CKH_DT_Q5_0}, {"q5_1", CKH_DT_Q5_1}};
    ckh_dtype out = CKH_DT_INVALID;
    for (const auto &[n, dt] : kTypes)
      if (t == n) out = dt;
    if (out == CKH_DT_INVALID)
      fail(CKH_E_UNSUPPORTED, "--ggml-type " + t + " is not supported yet (q8_0, q4_0, q4_1, q5_0 and q5_1 are; the k-quants are not written yet)");
    if (n != 1 || !in[0] || in[0]->ndim != 2) fail(CKH_E_UNSUPPORTED, "ggml: one 2-D weight per call");
    const std::string name = in[0]->name ? in[0]->name : "";
    if (!ckh_dtype_is_float(in[0]->dtype)) fail(CKH_E_UNSUPPORTED, "ggml: tensor '" + name + "' is not a float tensor");
    if (in[0]->shape[1] % 32)
      fail(CKH_E_UNSUPPORTED, "ggml " + t + ": tensor '" + name + "' has rows of " + std::to_string(in[0]->shape[1]) +
                                  " elements, not whole 32-element blocks");
    auto s = std::make_unique<State>();
    s->rows = in[0]->shape[0];
    s->cols = in[0]->shape[1];
    s->out = out;
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
  out->info.dtype = (dir == CKH_QUANT_INPUT) != s.deq ? CKH_DT_F32 : s.out;
  return CKH_OK;
}

void put_f16(unsigned char *p, float v) {
  const uint16_t h = to_f16(v);
  p[0] = static_cast<unsigned char>(h & 0xff);
  p[1] = static_cast<unsigned char>(h >> 8);
}

// One block of 32 values into `q` (the block's bytes).
void quantize_block(ckh_dtype t, const float *x, unsigned char *q) {
  if (t == CKH_DT_Q8_0) {
    float amax = 0.0f;
    for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put_f16(q, d);
    for (int j = 0; j < 32; ++j) q[2 + j] = static_cast<unsigned char>(static_cast<signed char>(std::round(x[j] * id)));
    return;
  }
  const bool offset = t == CKH_DT_Q4_1 || t == CKH_DT_Q5_1, five = t == CKH_DT_Q5_0 || t == CKH_DT_Q5_1;
  const int qmax = five ? 31 : 15;
  float d, id, mn = 0.0f;
  if (offset) {
    float mx = x[0];
    mn = x[0];
    for (int j = 1; j < 32; ++j) {
      mn = std::fmin(mn, x[j]);
      mx = std::fmax(mx, x[j]);
    }
    d = (mx - mn) / static_cast<float>(qmax);
  } else {
    float amax = 0.0f, mx = 0.0f;
    for (int j = 0; j < 32; ++j)
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        mx = x[j];
      }
    d = mx / (five ? -16.0f : -8.0f);
  }
  id = d != 0.0f ? 1.0f / d : 0.0f;
  put_f16(q, d);
  unsigned char *p = q + 2;
  if (offset) {
    put_f16(p, mn);
    p += 2;
  }
  const float bias = offset ? 0.5f : five ? 16.5f : 8.5f;
  int codes[32];
  for (int j = 0; j < 32; ++j) {
    const float v = offset ? (x[j] - mn) * id : x[j] * id;
    const int c = static_cast<int>(std::trunc(v + bias));
    codes[j] = c < 0 ? 0 : c > qmax ? qmax : c;
  }
  if (five) {
    uint32_t qh = 0;
    for (int j = 0; j < 32; ++j) qh |= static_cast<uint32_t>((codes[j] >> 4) & 1) << j;
    for (int k = 0; k < 4; ++k) p[k] = static_cast<unsigned char>(qh >> (8 * k));
    p += 4;
  }
  for (int j = 0; j < 16; ++j) p[j] = static_cast<unsigned char>((codes[j] & 0x0f) | ((codes[j + 16] & 0x0f) << 4));
}

float get_f16(const unsigned char *p) {
  const uint16_t h = static_cast<uint16_t>(p[0] | (p[1] << 8));
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  float f;
  if (e == 0) {
    f = std::ldexp(static_cast<float>(m), -24);
    return sign ? -f : f;
  }
  const uint32_t u = sign | (e == 31 ? (0xffu << 23) | (m << 13) : ((e + 112) << 23) | (m << 13));
  std::memcpy(&f, &u, 4);
  return f;
}

// One block back to 32 floats, as ggml's dequantize_row_* (and gguf-py's) compute them.
void dequantize_block(ckh_dtype t, const unsigned char *q, float *y) {
  const float d = get_f16(q);
  if (t == CKH_DT_Q8_0) {
    for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<signed char>(q[2 + j]));
    return;
  }
  const bool offset = t == CKH_DT_Q4_1 || t == CKH_DT_Q5_1, five = t == CKH_DT_Q5_0 || t == CKH_DT_Q5_1;
  const unsigned char *p = q + 2;
  float m = 0.0f;
  if (offset) {
    m = get_f16(p);
    p += 2;
  }
  uint32_t qh = 0;
  if (five) {
    qh = static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
    p += 4;
  }
  for (int j = 0; j < 32; ++j) {
    int c = j < 16 ? (p[j] & 0x0f) : (p[j - 16] >> 4);
    if (five) c |= static_cast<int>((qh >> j) & 1u) << 4;
    y[j] = offset ? static_cast<float>(c) * d + m : static_cast<float>(c - (five ? 16 : 8)) * d;
  }
}

ckh_status quantize_n(const ckh_quantizer_class_t *, void *state, int64_t, int64_t nb, const void *const *src, void *const *dst) {
  return ckh::sdk::guard([&] {
    const State &s = *static_cast<const State *>(state);
    ckh_dtype_traits_t tr{};
    ckh_dtype_traits(s.out, &tr);
    const int64_t blocks = s.cols / 32;
    for (int64_t r = 0; r < nb; ++r)
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t at = r * s.cols + b * 32, block = (r * blocks + b) * tr.block_bytes;
        if (s.deq)
          dequantize_block(s.out, static_cast<const unsigned char *>(src[0]) + block, static_cast<float *>(dst[0]) + at);
        else
          quantize_block(s.out, static_cast<const float *>(src[0]) + at, static_cast<unsigned char *>(dst[0]) + block);
      }
  });
}

void release(const ckh_quantizer_class_t *, void *state) { delete static_cast<State *>(state); }

const ckh_quantizer_class_t kQuant = {sizeof(ckh_quantizer_class_t), 0, nullptr, nullptr, release, prepare_n, port, quantize_n};
const ckh_component_t kComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_QUANTIZER, "ggml",
    "llama.cpp's ggml block types (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1), bit for bit as ggml's reference quantizers",
    R"J({"quantize": true, "targets": "weights", "dequantize_blocks": ["Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1"], "options": [)J"
    R"J({"name": "ggml-type", "type": "string", "key": "type", "default": "q8_0", "group": "quantization", )J"
    R"J("help": "ggml block type for --quantize ggml: q8_0, q4_0, q4_1, q5_0, q5_1"}]})J",
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
