// plugin.cpp — the "kt-amx" writer: KTransformers' CPU expert weights as kt-kernel's AMXINT8 / AMXINT4 MoE loads
// them from merged safetensors (what kt-kernel/scripts/convert_cpu_weights.py writes with --quant-method int8|int4).
//
// It knows bytes, not models. The routed experts are the tensors a model plugin annotated with an expert index and
// kind ffn gate / up / down (layer from the annotation; an MTP layer counts after the decoder's layers); everything
// else is carried as it is under the tool's names. For each expert and each of the --kt-threadpool-count parts
// (kt-kernel's NUMA sub-pools, TP_MOE):
//   gate, up  [I, H]: rows    [i * I/T, (i + 1) * I/T)   -> n = I/T, k = H
//   down      [H, I]: columns [i * I/T, (i + 1) * I/T)   -> n = H,   k = I/T
// each part quantized on its own by the kt-amx quantizer (per-row scales over that part's k) and its codes laid
// out in AMX tiles (kt_layout.hpp), written as
//   blk.{L}.ffn_{gate|up|down}_exps.{E}.numa.{i}.weight   I8, 1-D, the buffer's bytes
//   blk.{L}.ffn_{gate|up|down}_exps.{E}.numa.{i}.scale    F32, 1-D [n]
// Experts are quantized from BF16 (other floats are rounded to BF16 first, as the tool does with FP16); block-FP8
// experts (the host's (codes, scales) pairs) are dequantized to BF16 on the CPU first by --kt-dequantizer (fp8-block).
// Other tensors: "language_model." dropped, then "model.layers." -> "blk." and "model." -> "" (names that do not
// start with "model." are kept), dtype kept (FP8 ones with their scales, renamed alike). MTP layers' experts are
// converted too (the tool leaves them out). Files: one shard per MoE layer (expert parts by name, so each part's
// scales sit beside its codes), then one of the other tensors, a model.safetensors.index.json, and the side files
// (config, tokenizer). Fused 3-D experts and models no model plugin annotates are refused by name.
#include <algorithm>
#include <cstdio>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "header.hpp"
#include "hf_files.hpp"
#include "kt_layout.hpp"
#include "options.hpp"
#include "writer_glue.hpp"

using nlohmann::json;
using ckh::sdk::fail;
using ckh::st::quote;

namespace {

[[noreturn]] void host_failed(ckh_status s = CKH_E_INVALID_ARG) {
  throw ckh::sdk::Error(s != CKH_OK ? s : CKH_E_INVALID_ARG, "layout builder call failed", true);
}
void check_host(ckh_status s) {
  if (s != CKH_OK) host_failed(s);
}

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// The tool's names for tensors it does not convert.
std::string carried_name(std::string n) {
  if (n.find("language_model") != std::string::npos) n = replace_all(n, "language_model.", "");
  if (n.rfind("model.", 0) == 0) n = replace_all(replace_all(n, "model.layers.", "blk."), "model.", "");
  return n;
}

// The scales tensor the host paired with these codes (annotation extra_json {"quant": {"role": "codes", "scales": [S]}}).
std::string scales_of(const ckh_tensor_annot_t &a) {
  if (!a.extra_json) return "";
  const json j = json::parse(a.extra_json, nullptr, false);
  if (!j.is_object() || !j.contains("quant") || !j["quant"].is_object() || j["quant"].value("role", "") != "codes") return "";
  const json &s = j["quant"].value("scales", json::array());
  return s.is_array() && s.size() == 1 && s[0].is_string() ? s[0].get<std::string>() : "";
}

bool is_scale(const ckh_tensor_annot_t &a) {
  if (!a.extra_json) return false;
  const json j = json::parse(a.extra_json, nullptr, false);
  return j.is_object() && j.contains("quant") && j["quant"].is_object() && j["quant"].value("role", "") == "scale";
}

struct OutTensor {
  std::string source;  // the input's name (carried tensors)
  std::string name;
  ckh_dtype dtype;
  std::vector<int64_t> shape;
  uint64_t bytes;
  ckh_expr e;
};

struct Writer {
  int bits = 0;
  int64_t parts = 2;
  std::string quantizer = "kt-amx";
  std::string dequantizer = "fp8-block";

  explicit Writer(const json &o) {
    std::string m = o.contains("kt_method") && o["kt_method"].is_string() ? o["kt_method"].get<std::string>() : "";
    for (char &c : m) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (m == "int8" || m == "amxint8") bits = 8;
    else if (m == "int4" || m == "amxint4") bits = 4;
    else fail(CKH_E_INVALID_ARG, "--kt-method " + (m.empty() ? std::string("(missing)") : quote(m)) + ": expected int8 or int4 (kt-kernel's AMXINT8, AMXINT4)");
    parts = ckh::plugins::int_option(o, "kt_threadpool_count", 2, 1);
    if (o.contains("kt_dequantizer") && o["kt_dequantizer"].is_string()) dequantizer = o["kt_dequantizer"].get<std::string>();
    if (parts > 64) fail(CKH_E_INVALID_ARG, "--kt-threadpool-count " + std::to_string(parts) + ": at most 64");
  }

  // The bytes of one part of one expert projection: (codes in tile order, scales).
  std::pair<ckh_expr, ckh_expr> part(ckh::sdk::Builder &b, ckh_expr w, ckh_dtype dt, const std::string &name) const {
    if (dt != CKH_DT_BF16) {
      if (dt != CKH_DT_F32 && dt != CKH_DT_F16 && dt != CKH_DT_F64)
        fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": kt-kernel quantizes BF16 experts, and this one is " +
                                    std::string(ckh::st::dtype_to_string(dt) ? ckh::st::dtype_to_string(dt) : "a non-float dtype") +
                                    " (FP8 sources: add --dtype bf16 to dequantize them on the CPU first)");
      w = b.cast(w, CKH_DT_BF16);
    }
    const std::string params = json{{"bits", bits}}.dump();
    const ckh_expr in[1] = {w};
    ckh_expr_builder_t *raw = b.raw();
    if (!CKH_HAS_FIELD(raw, ckh_expr_builder_t, quantize_n) || !raw->quantize_n)
      fail(CKH_E_UNSUPPORTED, "kt-amx: the host's expression builder has no quantize_n (SDK 1.1)");
    ckh_expr codes = raw->quantize_n(raw, in, 1, quantizer.c_str(), params.c_str(), 0);
    if (codes < 0) host_failed();
    const ckh_expr scales = raw->quantize_n(raw, in, 1, quantizer.c_str(), params.c_str(), 1);
    if (scales < 0) host_failed();
    const ckh_tensor_info_t ci = b.info(codes);
    const int64_t n = ci.shape[0], kb = ci.shape[1];
    std::vector<std::vector<ckh::kt::Piece>> groups;
    try {
      groups = ckh::kt::pieces(n, kb, bits);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": kt-kernel's AMX buffer needs whole tiles: " + e.what());
    }
    std::vector<ckh_expr> rows;
    for (const auto &g : groups) {
      std::vector<ckh_expr> cols;
      for (const auto &p : g) {
        ckh_expr x = b.slice(b.slice(codes, 0, p.r0, p.count * p.nbs), 1, p.c0, p.width);
        x = b.permute(b.reshape(x, p.in_shape), p.perm);
        cols.push_back(b.reshape(x, {p.count, p.nbs * p.width}));
      }
      const ckh_expr r = cols.size() == 1 ? cols[0] : b.concat(cols, 1);
      const ckh_tensor_info_t ri = b.info(r);
      rows.push_back(b.reshape(r, {ri.shape[0] * ri.shape[1]}));
    }
    codes = rows.size() == 1 ? rows[0] : b.concat(rows, 0);
    return {codes, scales};
  }

  void plan(const json &meta, ckh_layout_builder_t *lb) const {
    ckh::sdk::Builder b(lb->expr);
    json cfg = meta.value("config", json::object());
    if (cfg.is_object() && cfg.contains("text_config") && cfg["text_config"].is_object()) cfg = cfg["text_config"];
    const int64_t decoder_layers = cfg.is_object() && cfg.contains("num_hidden_layers") && cfg["num_hidden_layers"].is_number_integer()
                                       ? cfg["num_hidden_layers"].get<int64_t>()
                                       : -1;
    std::map<int64_t, std::vector<OutTensor>> by_layer;  // MoE layer -> its expert tensors
    std::vector<OutTensor> others;
    std::set<std::string> names, dequantized;
    bool annotated = false;
    struct Seen {
      int64_t i_size = -1, h_size = -1;
      std::string first;
    };
    std::map<int64_t, Seen> layer_dims;
    const char *kProj[] = {"gate", "up", "down"};
    for (uint64_t i = 0; i < b.input_count(); ++i) {
      const ckh_tensor_info_t info = b.input_info(i);
      const ckh_tensor_annot_t a = b.input_annot(i);
      const std::string name = info.name ? info.name : "";
      annotated = annotated || a.role != CKH_ROLE_OTHER || a.kind != CKH_KIND_UNSTATED;
      const int proj = a.kind == CKH_KIND_FFN_GATE ? 0 : a.kind == CKH_KIND_FFN_UP ? 1 : a.kind == CKH_KIND_FFN_DOWN ? 2 : -1;
      const bool expert = a.expert >= 0 && (a.role == CKH_ROLE_LAYER || a.role == CKH_ROLE_MTP) && !is_scale(a);
      if (expert && proj < 0)
        fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": an expert tensor the kt-amx layout has no place for (kind " +
                                    std::to_string(a.kind) + "; kt-kernel takes separate gate, up and down projections)");
      if (!expert) {
        if ((a.kind == CKH_KIND_FFN_GATE_UP || a.kind == CKH_KIND_FFN_DOWN) && info.ndim == 3 && (a.role == CKH_ROLE_LAYER || a.role == CKH_ROLE_MTP))
          fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": fused 3-D experts " + ckh::st::shape_str(std::vector<int64_t>(info.shape, info.shape + 3)) +
                                      " are not written by kt-amx yet (the model plugin does not state which of [E, out, in] and the released "
                                      "[E, in, out] they are in; per-expert tensors are)");
        OutTensor t{name, carried_name(name), info.dtype, std::vector<int64_t>(info.shape, info.shape + info.ndim), 0, b.input_at(i)};
        if (!ckh::st::dtype_to_string(t.dtype))
          fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": safetensors cannot store dtype " + std::to_string(t.dtype));
        if (!names.insert(t.name).second) fail(CKH_E_INVALID_ARG, "two tensors would be named " + quote(t.name));
        others.push_back(std::move(t));
        continue;
      }
      if (a.role == CKH_ROLE_MTP && decoder_layers < 0)
        fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": an MTP layer's expert, and the config states no num_hidden_layers to number it after");
      const int64_t L = a.role == CKH_ROLE_MTP ? decoder_layers + a.layer : a.layer;
      if (L < 0) fail(CKH_E_INVALID_ARG, "tensor " + quote(name) + ": an expert without a layer index");
      if (info.ndim != 2) fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": an expert projection of " + std::to_string(info.ndim) + " dims (expected 2)");
      // gate/up [I, H], down [H, I]; one I and one H per layer.
      const int64_t I = proj == 2 ? info.shape[1] : info.shape[0], H = proj == 2 ? info.shape[0] : info.shape[1];
      Seen &s = layer_dims[L];
      if (s.i_size < 0) s = Seen{I, H, name};
      else if (s.i_size != I || s.h_size != H)
        fail(CKH_E_INVALID_ARG, "tensor " + quote(name) + ": intermediate " + std::to_string(I) + " x hidden " + std::to_string(H) +
                                    ", while " + quote(s.first) + " of the same layer has " + std::to_string(s.i_size) + " x " + std::to_string(s.h_size));
      if (I % parts)
        fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": moe intermediate size " + std::to_string(I) + " does not divide into --kt-threadpool-count " +
                                    std::to_string(parts) + " parts (kt-kernel splits it evenly)");
      const int64_t Ip = I / parts;
      const int64_t kmul = bits == 8 ? 64 : 128;
      for (int64_t k : {H, Ip})
        if (k % kmul)
          fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": kt-kernel's AMXINT" + std::to_string(bits) + " needs reduction dims that are multiples of " +
                                      std::to_string(kmul) + ": hidden " + std::to_string(H) + ", intermediate per part " + std::to_string(I) + "/" +
                                      std::to_string(parts) + " = " + std::to_string(Ip));
      ckh_expr w = b.input_at(i);
      ckh_dtype wdt = info.dtype;
      // Block-quantized experts (FP8 codes with their scales beside them, as the host pairs them): dequantized to
      // BF16 on the CPU first, as the tool does on a GPU; the pair's scales are used up here.
      if (wdt == CKH_DT_F8_E4M3FN || wdt == CKH_DT_F8_E5M2) {
        const std::string sc = scales_of(a);
        if (sc.empty() || !b.has(sc))
          fail(CKH_E_UNSUPPORTED, "tensor " + quote(name) + ": an FP8 expert without its block scales beside it (add --dtype bf16, or convert a "
                                      "checkpoint that has its weight_scale_inv)");
        const ckh_expr in2[2] = {w, b.input(sc)};
        ckh_expr_builder_t *raw = b.raw();
        const std::string params = json{{"mode", "dequantize"}, {"to", "BF16"}, {"config", meta.value("config", json::object())}}.dump();
        w = raw->quantize_n(raw, in2, 2, dequantizer.c_str(), params.c_str(), 0);
        if (w < 0) host_failed();
        wdt = CKH_DT_BF16;
        dequantized.insert(sc);
      }
      for (int64_t p = 0; p < parts; ++p) {
        const ckh_expr x = proj == 2 ? b.slice(w, 1, p * Ip, Ip) : b.slice(w, 0, p * Ip, Ip);
        const auto [codes, scales] = part(b, x, wdt, name);
        const std::string base = "blk." + std::to_string(L) + ".ffn_" + kProj[proj] + "_exps." + std::to_string(a.expert) + ".numa." + std::to_string(p);
        const ckh_tensor_info_t ci = b.info(codes), si = b.info(scales);
        OutTensor wt{"", base + ".weight", CKH_DT_I8, {ci.shape[0]}, static_cast<uint64_t>(ci.shape[0]), codes};
        OutTensor st{"", base + ".scale", CKH_DT_F32, {si.shape[0]}, static_cast<uint64_t>(si.shape[0]) * 4, scales};
        for (const OutTensor *t : {&wt, &st})
          if (!names.insert(t->name).second) fail(CKH_E_INVALID_ARG, "two tensors would be named " + quote(t->name) + " (tensor " + quote(name) + ")");
        by_layer[L].push_back(std::move(wt));
        by_layer[L].push_back(std::move(st));
      }
    }
    // The scales of dequantized experts are not carried.
    others.erase(std::remove_if(others.begin(), others.end(), [&](const OutTensor &t) { return dequantized.count(t.source); }), others.end());
    if (!annotated) {
      const std::string mt = cfg.is_object() && cfg.contains("model_type") && cfg["model_type"].is_string() ? cfg["model_type"].get<std::string>() : "";
      fail(CKH_E_UNSUPPORTED, "kt-amx: no model plugin annotated the tensors of this checkpoint (model_type " + (mt.empty() ? std::string("unknown") : quote(mt)) +
                                  "), so its routed experts are unknown (kt-amx takes the MoE families of ckhost --list-plugins)");
    }
    if (by_layer.empty()) fail(CKH_E_UNSUPPORTED, "kt-amx: the model has no routed experts to convert");
    for (OutTensor &t : others) {
      uint64_t bytes = ckh_dtype_size(t.dtype);
      for (int64_t d : t.shape)
        if (d < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
          fail(CKH_E_INVALID_ARG, "tensor " + quote(t.name) + ": shape " + ckh::st::shape_str(t.shape) + " is invalid");
      t.bytes = bytes;
    }

    // Shards: one per MoE layer, then the carried tensors.
    std::vector<std::vector<OutTensor *>> shards;
    for (auto &[L, ts] : by_layer) {
      shards.emplace_back();
      for (OutTensor &t : ts) shards.back().push_back(&t);
    }
    if (!others.empty()) {
      shards.emplace_back();
      for (OutTensor &t : others) shards.back().push_back(&t);
    }
    const char *method = bits == 8 ? "AMXINT8" : "AMXINT4";
    json weight_map = json::object();
    std::set<std::string> written;
    uint64_t total = 0;
    for (size_t s = 0; s < shards.size(); ++s) {
      char fname[64];
      std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
      auto &sh = shards[s];
      // Expert shards by name, so each part's scales sit beside its codes (the quantizer computes both at once, and
      // the host need not keep one while it writes a whole shard of the other); every such tensor is a multiple of 4
      // bytes, so the F32 scales stay aligned. The carried tensors: the widest dtypes first, as safetensors does.
      const bool experts = s < by_layer.size();
      std::sort(sh.begin(), sh.end(), [experts](const OutTensor *x, const OutTensor *y) {
        const uint32_t sx = ckh_dtype_size(x->dtype), sy = ckh_dtype_size(y->dtype);
        return experts || sx == sy ? x->name < y->name : sx > sy;
      });
      std::string h = "{\"__metadata__\":{\"format\":\"pt\",\"kt_method\":\"" + std::string(method) + "\",\"kt_threadpool_count\":\"" +
                      std::to_string(parts) + "\"}";
      std::vector<uint64_t> offs;
      uint64_t off = 0;
      for (const OutTensor *t : sh) {
        h += "," + json(t->name).dump() + ":{\"dtype\":\"" + ckh::st::dtype_to_string(t->dtype) + "\",\"shape\":[";
        for (size_t d = 0; d < t->shape.size(); ++d) h += (d ? "," : "") + std::to_string(t->shape[d]);
        h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t->bytes) + "]}";
        offs.push_back(off);
        off += t->bytes;
      }
      h += '}';
      h.append((8 - h.size() % 8) % 8, ' ');
      const uint64_t data_start = 8 + h.size();
      const int32_t f = lb->add_file(lb, fname, data_start + off);
      if (f < 0) host_failed();
      std::string head(8, '\0');
      for (int k = 0; k < 8; ++k) head[k] = static_cast<char>(static_cast<uint64_t>(h.size()) >> (8 * k));
      head += h;
      check_host(lb->put_bytes(lb, f, 0, head.data(), head.size()));
      for (size_t k = 0; k < sh.size(); ++k) {
        if (lb->put_tensor(lb, f, data_start + offs[k], sh[k]->e, 0) < 0) host_failed();
        weight_map[sh[k]->name] = fname;
      }
      total += off;
      written.insert(fname);
    }
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    const std::string s = index.dump(2, ' ', true) + "\n";
    check_host(lb->add_small_file(lb, "model.safetensors.index.json", s.data(), s.size()));
    written.insert("model.safetensors.index.json");
    ckh::plugins::carry_side_files(lb, meta, written);
  }
};

const ckh_writer_class_t kWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<Writer>};
const ckh_component_t kWriterComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "kt-amx",
    "KTransformers CPU experts (kt-kernel AMXINT8 / AMXINT4 merged safetensors: blk.L.ffn_*_exps.E.numa.i.weight|scale, "
    "other tensors renamed as convert_cpu_weights.py does)",
    R"J({"container":"safetensors","layout":"hf","options":[)J"
    R"J({"name":"kt-method","type":"string","choices":["int8","int4"],"group":"kt-amx","help":"kt-kernel method: int8 (AMXINT8) or int4 (AMXINT4)"},)J"
    R"J({"name":"kt-threadpool-count","type":"uint","default":2,"group":"kt-amx","help":"kt-kernel threadpool (NUMA) count the experts are split for; the loader must use the same"},)J"
    R"J({"name":"kt-dequantizer","type":"string","default":"fp8-block","group":"kt-amx","help":"quantizer that dequantizes block-FP8 experts (codes and scales) to BF16 on the CPU before kt-kernel's quantization; the other FP8 tensors keep their codes and scales, as convert_cpu_weights.py keeps them (--dtype bf16 dequantizes those too)"}]})J",
    &kWriter};
const ckh_component_t *const kComponents[] = {&kWriterComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.format.kt-amx", "0.1.0",
                              "ckhost", "KTransformers AMX expert weights (kt-kernel)", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
