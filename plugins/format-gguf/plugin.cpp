// plugin.cpp — the GGUF v3 writer ("gguf"): one file holding the header, the key-value metadata a model mapper
// states (meta["gguf_kv"]: architecture, hyperparameters, tokenizer), the tensor infos (name, dims innermost first,
// ggml type, offset) and the tensor data, each tensor at an offset that is a multiple of general.alignment (32 unless
// --gguf-alignment says otherwise) from the aligned start of the data section. It knows bytes, not models: tensor
// names, the Q/K row order and every key come from the mapper. Types written: F32, F16, BF16 (cast with --dtype; 1-D
// tensors stay F32 as ggml needs), and ggml's block types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (--quantize ggml).
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "catalog.hpp"
#include "fd_read.hpp"
#include "gguf_kv.hpp"
#include "gguf_read.hpp"
#include "tokenizer.hpp"
#include "options.hpp"
#include "writer_glue.hpp"

using nlohmann::json;
using ckh::sdk::fail;
namespace gg = ckh::gguf;

namespace {

struct Writer {
  uint64_t alignment = gg::kDefaultAlignment;
  std::string file = "model.gguf";
  std::string tokenizer = "auto";

  explicit Writer(const json &o) {
    const int64_t a = ckh::plugins::int_option(o, "gguf_alignment", static_cast<int64_t>(gg::kDefaultAlignment), 1);
    if (a > (1 << 20) || (a & (a - 1)) != 0) fail(CKH_E_INVALID_ARG, "--gguf-alignment " + std::to_string(a) + ": expected a power of two up to 1 MiB");
    alignment = static_cast<uint64_t>(a);
    if (o.contains("gguf_file") && o["gguf_file"].is_string()) file = o["gguf_file"].get<std::string>();
    if (o.contains("gguf_tokenizer") && o["gguf_tokenizer"].is_string()) tokenizer = o["gguf_tokenizer"].get<std::string>();
    if (tokenizer != "auto" && tokenizer != "spm" && tokenizer != "bpe" && tokenizer != "none")
      fail(CKH_E_INVALID_ARG, "--gguf-tokenizer '" + tokenizer + "': expected auto, spm, bpe or none");
    if (file.empty() || file.find('/') != std::string::npos || file == "." || file == "..")
      fail(CKH_E_INVALID_ARG, "--gguf-file '" + file + "': expected a file name");
  }

  // The tokenizer's keys from the source's tokenizer files (side files: tokenizer.model or tokenizer.json, with
  // tokenizer_config.json, added_tokens.json and the chat template), unless the mapper stated them or --gguf-tokenizer none.
  void add_tokenizer(const json &meta, json &kvs) const {
    if (tokenizer == "none") return;
    std::string arch;
    int64_t vocab = 0;
    for (const auto &e : kvs) {
      const std::string k = e.value("key", std::string());
      if (k.rfind("tokenizer.", 0) == 0) return;
      if (k == "general.architecture" && e["value"].is_string()) arch = e["value"].get<std::string>();
    }
    for (const auto &e : kvs)
      if (e.value("key", std::string()) == arch + ".vocab_size" && e["value"].is_number_integer()) vocab = e["value"].get<int64_t>();
    std::map<std::string, std::string> side;
    if (meta.contains("side_files") && meta["side_files"].is_array())
      for (const auto &f : meta["side_files"])
        if (f.is_object() && f.contains("name") && f.contains("path") && f["name"].is_string() && f["path"].is_string())
          side[f["name"].get<std::string>()] = f["path"].get<std::string>();
    auto path = [&](const char *name) { return side.count(name) ? side[name] : std::string(); };
    gg::TokenizerFiles files{path("tokenizer.json"), path("tokenizer.model"), path("tokenizer_config.json"),
                             path("added_tokens.json"), path("chat_template.jinja"), path("chat_template.json")};
    std::vector<std::string> notes;
    json t;
    try {
      t = gg::tokenizer_kv(files, tokenizer, meta.value("config", json::object()), vocab, notes);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_UNSUPPORTED, e.what());
    }
    for (const auto &n : notes) ckh::sdk::log(CKH_LOG_WARN, "gguf: " + n);
    if (t.empty()) {
      ckh::sdk::log(CKH_LOG_WARN, "gguf: the source has no tokenizer.model nor tokenizer.json: the GGUF holds no tokenizer (llama.cpp needs one to run it)");
      return;
    }
    for (const auto &e : t) kvs.push_back(e);
  }

  void plan(const json &meta, ckh_layout_builder_t *lb) const {
    ckh::sdk::Builder b(lb->expr);
    if (!meta.contains("gguf_kv") || !meta["gguf_kv"].is_array())
      fail(CKH_E_UNSUPPORTED, "the gguf writer needs GGUF metadata from a model plugin (no mapper to gguf stated it for this model)");
    struct T {
      std::string name;
      uint32_t type;
      std::vector<uint64_t> ne;  // innermost first
      uint64_t bytes, offset;
      ckh_expr e;
    };
    std::vector<T> ts;
    std::set<std::string> names;
    bool f16 = false, bf16 = false;
    std::map<uint32_t, int> n_block;  // tensors per block type written, for general.file_type
    uint64_t data = 0;
    for (uint64_t i = 0; i < b.input_count(); ++i) {
      const ckh_tensor_info_t info = b.input_info(i);
      T t;
      t.name = info.name ? info.name : "";
      if (t.name.empty() || t.name.size() > 63)
        fail(CKH_E_INVALID_ARG, "tensor '" + t.name + "': GGUF tensor names are 1 to 63 bytes (ggml's GGML_MAX_NAME)");
      if (!names.insert(t.name).second) fail(CKH_E_INVALID_ARG, "two tensors named '" + t.name + "'");
      if (info.ndim < 1 || info.ndim > 4) fail(CKH_E_INVALID_ARG, "tensor '" + t.name + "': " + std::to_string(info.ndim) + " dimensions (GGUF holds 1 to 4)");
      t.e = b.input_at(i);
      ckh_dtype dt = info.dtype;
      // 1-D tensors (norms, biases) stay F32, as llama.cpp's converter keeps them: ggml's element-wise kernels
      // (ggml_mul of a norm, ggml_add of a bias) take no F16 or BF16 operand on the CPU.
      if (info.ndim == 1 && (dt == CKH_DT_F16 || dt == CKH_DT_BF16)) {
        t.e = b.cast(t.e, CKH_DT_F32);
        dt = CKH_DT_F32;
      }
      switch (dt) {
        case CKH_DT_F32: t.type = gg::GGML_F32; break;
        case CKH_DT_F16: t.type = gg::GGML_F16; f16 = true; break;
        case CKH_DT_BF16: t.type = gg::GGML_BF16; bf16 = true; break;
        case CKH_DT_Q8_0: t.type = gg::GGML_Q8_0; break;
        case CKH_DT_Q4_0: t.type = gg::GGML_Q4_0; break;
        case CKH_DT_Q4_1: t.type = gg::GGML_Q4_1; break;
        case CKH_DT_Q5_0: t.type = gg::GGML_Q5_0; break;
        case CKH_DT_Q5_1: t.type = gg::GGML_Q5_1; break;
        case CKH_DT_Q2_K: t.type = gg::GGML_Q2_K; break;
        case CKH_DT_Q3_K: t.type = gg::GGML_Q3_K; break;
        case CKH_DT_Q4_K: t.type = gg::GGML_Q4_K; break;
        case CKH_DT_Q5_K: t.type = gg::GGML_Q5_K; break;
        case CKH_DT_Q6_K: t.type = gg::GGML_Q6_K; break;
        default:
          fail(CKH_E_UNSUPPORTED, "tensor '" + t.name + "': this GGUF writer stores F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and Q2_K..Q6_K (dtype " + std::to_string(info.dtype) +
                                      "); cast with --dtype or quantize with --quantize ggml");
      }
      // Bytes: whole rows of the element dtype, or of blocks along the innermost dimension (ggml's row size).
      ckh_dtype_traits_t bt{};
      const bool block = ckh_dtype_traits(dt, &bt) && bt.is_block;
      if (block) ++n_block[t.type];
      t.bytes = block ? 1 : ckh_dtype_size(dt);
      for (uint32_t d = info.ndim; d-- > 0;) {
        if (info.shape[d] <= 0) fail(CKH_E_INVALID_ARG, "tensor '" + t.name + "': empty dimension");
        t.ne.push_back(static_cast<uint64_t>(info.shape[d]));
        uint64_t f = static_cast<uint64_t>(info.shape[d]);
        if (block && d + 1 == info.ndim) {
          if (f % bt.block_elems) fail(CKH_E_INVALID_ARG, "tensor '" + t.name + "': rows are not whole blocks");
          f = f / bt.block_elems * bt.block_bytes;
        }
        if (__builtin_mul_overflow(t.bytes, f, &t.bytes)) fail(CKH_E_INVALID_ARG, "tensor '" + t.name + "' is too large");
      }
      data = (data + alignment - 1) / alignment * alignment;
      t.offset = data;
      data += t.bytes;
      ts.push_back(std::move(t));
    }
    // Tensors whose values the model mapper computed (meta["gguf_extra_tensors"]: [{name, dtype "f32", shape, values}],
    // e.g. llama.cpp's rope_freqs for Llama 3's RoPE scaling): F32 bytes from the metadata, after the others.
    std::vector<std::pair<uint64_t, std::vector<float>>> extra;  // data offset, values
    if (meta.contains("gguf_extra_tensors")) {
      const json &xs = meta["gguf_extra_tensors"];
      if (!xs.is_array()) fail(CKH_E_INVALID_ARG, "gguf_extra_tensors: expected a list");
      for (const auto &x : xs) {
        const std::string n = x.is_object() ? x.value("name", std::string()) : std::string();
        if (n.empty() || n.size() > 63) fail(CKH_E_INVALID_ARG, "gguf_extra_tensors: tensor name '" + n + "' is not 1 to 63 bytes");
        if (!names.insert(n).second) fail(CKH_E_INVALID_ARG, "two tensors named '" + n + "'");
        if (x.value("dtype", std::string()) != "f32") fail(CKH_E_INVALID_ARG, "gguf_extra_tensors: tensor '" + n + "': only dtype f32 is written");
        const json &sh = x.contains("shape") ? x["shape"] : json();
        const json &vs = x.contains("values") ? x["values"] : json();
        if (!sh.is_array() || sh.empty() || sh.size() > 4 || !vs.is_array())
          fail(CKH_E_INVALID_ARG, "gguf_extra_tensors: tensor '" + n + "': expected a shape of 1 to 4 dimensions and a list of values");
        T t;
        t.name = n;
        t.type = gg::GGML_F32;
        t.e = -1;
        uint64_t count = 1;
        for (size_t d = sh.size(); d-- > 0;) {
          if (!sh[d].is_number_integer() || sh[d].get<int64_t>() <= 0 || sh[d].get<int64_t>() > (int64_t{1} << 32))
            fail(CKH_E_INVALID_ARG, "gguf_extra_tensors: tensor '" + n + "': bad dimension " + sh[d].dump());
          t.ne.push_back(sh[d].get<uint64_t>());
          if (__builtin_mul_overflow(count, t.ne.back(), &count) || count > (uint64_t{1} << 32))
            fail(CKH_E_INVALID_ARG, "gguf_extra_tensors: tensor '" + n + "' is too large");
        }
        if (count != vs.size())
          fail(CKH_E_INVALID_ARG, "gguf_extra_tensors: tensor '" + n + "': " + std::to_string(vs.size()) + " values for " + std::to_string(count) + " elements");
        std::vector<float> v;
        v.reserve(vs.size());
        for (const auto &e : vs) {
          if (!e.is_number()) fail(CKH_E_INVALID_ARG, "gguf_extra_tensors: tensor '" + n + "': a value is not a number");
          v.push_back(static_cast<float>(e.get<double>()));
        }
        t.bytes = count * 4;
        data = (data + alignment - 1) / alignment * alignment;
        t.offset = data;
        data += t.bytes;
        extra.emplace_back(t.offset, std::move(v));
        ts.push_back(std::move(t));
      }
    }
    // Header, key-values (the mapper's, the tokenizer's, then general.alignment and general.file_type unless stated),
    // tensor infos.
    json kvs = meta["gguf_kv"];
    add_tokenizer(meta, kvs);
    gg::Bytes kv;
    uint64_t nkv = 0;
    bool has_file_type = false, has_alignment = false;
    try {
      for (const auto &e : kvs) {
        gg::put_kv(kv, e);
        ++nkv;
        const std::string k = e.value("key", std::string());
        has_file_type = has_file_type || k == "general.file_type";
        has_alignment = has_alignment || k == "general.alignment";
      }
      if (!has_alignment && alignment != gg::kDefaultAlignment) {
        gg::put_kv(kv, {{"key", "general.alignment"}, {"type", "u32"}, {"value", alignment}});
        ++nkv;
      }
      if (!has_file_type) {
        // llama_ftype: ALL_F32 0, MOSTLY_F16 1, BF16 32; for block types the one most tensors have, named as
        // llama.cpp's loader guesses a file's type from it (Q4_K: Q4_K_M 15, Q3_K: Q3_K_M 12, ...), unless stated.
        // A quantizer's mix states its own (metadata "gguf_file_type": llama-quantize's --ggml-type whatever
        // each tensor got).
        int ftype = bf16 ? 32 : f16 ? 1 : 0, most = 0;
        const bool stated = meta.contains("gguf_file_type") && meta["gguf_file_type"].is_number_integer();
        if (stated) ftype = meta["gguf_file_type"].get<int>(), most = 1 << 30;
        for (const auto &[type, n] : n_block) {
          static const std::map<uint32_t, int> kFtype = {{gg::GGML_Q4_0, 2},  {gg::GGML_Q4_1, 3},  {gg::GGML_Q8_0, 7},
                                                         {gg::GGML_Q5_0, 8},  {gg::GGML_Q5_1, 9},  {gg::GGML_Q2_K, 10},
                                                         {gg::GGML_Q3_K, 12}, {gg::GGML_Q4_K, 15}, {gg::GGML_Q5_K, 17},
                                                         {gg::GGML_Q6_K, 18}};
          if (n > most) most = n, ftype = kFtype.at(type);
        }
        gg::put_kv(kv, {{"key", "general.file_type"}, {"type", "u32"}, {"value", ftype}});
        ++nkv;
      }
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_FORMAT, e.what());
    }
    gg::Bytes head;
    head.put(gg::kMagic);
    head.put(gg::kVersion);
    head.put(static_cast<uint64_t>(ts.size()));
    head.put(nkv);
    head.b += kv.b;
    for (const T &t : ts) {
      head.str(t.name);
      head.put(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t n : t.ne) head.put(n);
      head.put(t.type);
      head.put(t.offset);
    }
    const uint64_t data_start = (head.b.size() + alignment - 1) / alignment * alignment;
    const int32_t f = lb->add_file(lb, file.c_str(), data_start + data);
    if (f < 0) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_file failed", true);
    if (lb->put_bytes(lb, f, 0, head.b.data(), head.b.size()) != CKH_OK) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "put_bytes failed", true);
    for (const T &t : ts)
      if (t.e >= 0 && lb->put_tensor(lb, f, data_start + t.offset, t.e, 0) < 0) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "put_tensor failed", true);
    for (const auto &[off, v] : extra) {
      gg::Bytes x;
      for (float e : v) x.f32(e);
      if (lb->put_bytes(lb, f, data_start + off, x.b.data(), x.b.size()) != CKH_OK) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "put_bytes failed", true);
    }
  }
};

// ---- reader ------------------------------------------------------------------------------------------------

namespace fs = std::filesystem;

// The GGUF file a path names: the file itself, or the one .gguf file of a directory.
std::string gguf_path(const std::string &path) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_regular_file(p, ec)) return p.extension() == ".gguf" ? p.string() : "";
  if (!fs::is_directory(p, ec)) return "";
  std::string found;
  for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
    if (it->path().extension() == ".gguf" && it->is_regular_file(ec)) {
      if (!found.empty()) return "";  // several: the user names one
      found = it->path().string();
    }
  return found;
}

int32_t probe(const ckh_reader_class_t *, const char *path) {
  try {
    return gguf_path(path ? path : "").empty() ? 0 : 90;
  } catch (...) {
    return 0;
  }
}

ckh_dtype dtype_of(uint32_t t) {
  switch (t) {
    case gg::GGML_F32: return CKH_DT_F32;
    case gg::GGML_F16: return CKH_DT_F16;
    case gg::GGML_BF16: return CKH_DT_BF16;
    case gg::GGML_Q8_0: return CKH_DT_Q8_0;
    case gg::GGML_Q4_0: return CKH_DT_Q4_0;
    case gg::GGML_Q4_1: return CKH_DT_Q4_1;
    case gg::GGML_Q5_0: return CKH_DT_Q5_0;
    case gg::GGML_Q5_1: return CKH_DT_Q5_1;
    case gg::GGML_Q2_K: return CKH_DT_Q2_K;
    case gg::GGML_Q3_K: return CKH_DT_Q3_K;
    case gg::GGML_Q4_K: return CKH_DT_Q4_K;
    case gg::GGML_Q5_K: return CKH_DT_Q5_K;
    case gg::GGML_Q6_K: return CKH_DT_Q6_K;
  }
  return CKH_DT_INVALID;
}

ckh_status open_reader(const ckh_reader_class_t *, const char *path, const char *, ckh_reader_t **out) {
  *out = nullptr;
  return ckh::sdk::guard([&] {
    const std::string file = gguf_path(path ? path : "");
    if (file.empty()) fail(CKH_E_NOT_FOUND, std::string(path ? path : "") + ": no .gguf file (or several: name one)");
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(CKH_E_IO, file + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    ::fstat(fd, &st);
    gg::File g;
    try {
      g = gg::parse(ckh::plugins::fd_read_at(fd), static_cast<uint64_t>(st.st_size));
    } catch (const std::runtime_error &e) {
      ::close(fd);
      fail(CKH_E_FORMAT, file + ": " + e.what());
    }
    ::close(fd);
    auto cat = std::make_unique<ckh::plugins::Catalog>();
    cat->files.push_back(fs::absolute(file).string());
    for (const gg::TensorInfo &t : g.tensors) {
      ckh::plugins::CatTensor ct;
      ct.name = t.name;
      ct.dtype = dtype_of(t.type);
      for (size_t d = t.ne.size(); d-- > 0;) ct.shape.push_back(static_cast<int64_t>(t.ne[d]));
      ckh::plugins::CatPiece p;
      p.file = 0;
      p.byte_offset = g.data_start + t.offset;
      p.offset.assign(ct.shape.size(), 0);
      p.size = ct.shape;
      ct.pieces.push_back(std::move(p));
      cat->tensors.push_back(std::move(ct));
    }
    json meta = {{"format", "gguf"}, {"layout", "gguf"}, {"gguf_version", g.version}, {"gguf_kv", g.kv}, {"config", nullptr},
                 {"side_files", json::array()}};
    cat->meta = meta.dump();
    *out = ckh::plugins::make_catalog_reader(std::move(cat));
  });
}

#define GGUF_OPTS                                                                                                    \
  R"J({"name":"gguf-file","type":"string","default":"model.gguf","group":"gguf","help":"name of the GGUF file written"},)J" \
  R"J({"name":"gguf-alignment","type":"int","default":32,"group":"gguf","help":"general.alignment: tensor data offsets are multiples of it"},)J" \
  R"J({"name":"gguf-tokenizer","type":"string","default":"auto","choices":["auto","spm","bpe","none"],"group":"gguf","help":"the tokenizer metadata from: spm, the source's SentencePiece tokenizer.model (tokenizer.ggml.model llama); bpe, its byte-level BPE tokenizer.json (gpt2); auto, tokenizer.model when there is one (as llama.cpp's convert_hf_to_gguf.py chooses for llama, mistral, qwen2, qwen3), else tokenizer.json; none: write no tokenizer"})J"

const ckh_writer_class_t kWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<Writer>};
const ckh_component_t kWriterComp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "gguf",
                                     "GGUF v3 (llama.cpp): one file, metadata and tensor names from the model plugin; F32, F16, BF16",
                                     R"({"container":"gguf","layout":"gguf","one_d_f32":true,"options":[)" GGUF_OPTS "]}", &kWriter};
const ckh_reader_class_t kReader = {sizeof(ckh_reader_class_t), 0, probe, open_reader};
const ckh_component_t kReaderComp = {sizeof(ckh_component_t), CKH_COMPONENT_READER, "gguf",
                                     "GGUF v2/v3 (llama.cpp): tensors F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the key-values, "
                                     "every size and offset checked",
                                     R"({"container":"gguf","layout":"gguf","extensions":[".gguf"]})", &kReader};
const ckh_component_t *const kComponents[] = {&kReaderComp, &kWriterComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 2, "org.ckhost.format.gguf", "0.1.0",
                              "ckhost", "GGUF v3 reader and writer (llama.cpp)", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
