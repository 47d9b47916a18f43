// plugin.cpp — HF safetensors reader and writer (component id "hf").
//
// Reader: one .safetensors file, or a model directory (model.safetensors.index.json + shards, or
// model.safetensors, or every *.safetensors in name order). Only headers are read; each tensor is one
// contiguous piece the host preads itself. Side files (config, tokenizer, code, ...) are listed for the
// writer to carry.
// Writer: HF layout — greedy shards by max_shard_size in input order, HF shard names, an index with
// total_size when there is more than one shard, tensors within a shard ordered by (element size
// descending, name) so each is naturally aligned, header padded with spaces to 8 bytes.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "option_decls.hpp"
#include "quant_pairs.hpp"
#include "header.hpp"
#include "hf_files.hpp"
#include "writer_glue.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using ckh::sdk::fail;
using ckh::st::quote;

namespace {

constexpr const char *kIndexName = "model.safetensors.index.json";
// diffusers (ModelMixin) names its weights diffusion_pytorch_model*.safetensors, with its own index.
constexpr const char *kDiffusersIndexName = "diffusion_pytorch_model.safetensors.index.json";
constexpr uint64_t kMaxIndex = 100ull << 20;   // index files
constexpr uint64_t kMaxConfig = 16ull << 20;   // config.json
constexpr uint64_t kDefaultShard = 5000000000ull;  // HF's "5GB"

bool ends_with(const std::string &s, const char *suf) {
  const size_t n = std::strlen(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

using ckh::plugins::is_weight_file;

// ---- small file I/O (errors name the file) ---------------------------------------------------------

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

uint64_t open_file(const std::string &path, Fd &f) {
  // O_NONBLOCK: a FIFO or device must not block the open; regular files ignore it.
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (f.fd < 0) fail(CKH_E_IO, path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(f.fd, &st) != 0) fail(CKH_E_IO, path + ": cannot stat: " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) fail(CKH_E_IO, path + ": not a regular file");
  return static_cast<uint64_t>(st.st_size);
}

void read_exact(const Fd &f, const std::string &path, void *buf, uint64_t len, uint64_t off) {
  uint64_t got = 0;
  while (got < len) {
    const ssize_t r = ::pread(f.fd, static_cast<char *>(buf) + got, len - got, static_cast<off_t>(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail(CKH_E_IO, path + ": read failed: " + std::strerror(errno));
    if (r == 0) fail(CKH_E_IO, path + ": file shrank while reading (wanted " + std::to_string(len) + " bytes at " +
                                   std::to_string(off) + ")");
    got += static_cast<uint64_t>(r);
  }
}

std::string read_small_file(const std::string &path, uint64_t limit) {
  Fd f;
  const uint64_t size = open_file(path, f);
  if (size > limit)
    fail(CKH_E_FORMAT, path + ": " + std::to_string(size) + " bytes is larger than the limit of " +
                           std::to_string(limit) + " bytes");
  std::string s(size, '\0');
  read_exact(f, path, s.data(), size, 0);
  return s;
}

// Parses a JSON file; with `unique_keys`, a key repeated inside one object is an error (nlohmann would
// silently keep the last one).
json parse_json_file(const std::string &path, uint64_t limit, bool unique_keys) {
  const std::string text = read_small_file(path, limit);
  std::vector<std::set<std::string>> keys;
  std::string dup;
  json::parser_callback_t cb = [&](int, json::parse_event_t ev, json &parsed) {
    if (!unique_keys) return true;
    switch (ev) {
      case json::parse_event_t::object_start: keys.emplace_back(); break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && parsed.is_string() && !keys.back().insert(parsed.get<std::string>()).second &&
            dup.empty())
          dup = parsed.get<std::string>();
        break;
      default: break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, cb, /*allow_exceptions=*/true);
  } catch (const json::exception &e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    fail(CKH_E_FORMAT, path + ": not valid JSON: " + what);
  }
  if (!dup.empty()) fail(CKH_E_FORMAT, path + ": key " + quote(dup) + " appears twice in one object");
  return j;
}

// Reads and validates the header of one safetensors file.
ckh::st::Header read_header(const std::string &path) {
  Fd f;
  const uint64_t size = open_file(path, f);
  uint8_t first[8] = {0};
  std::string err;
  uint64_t len = 0;
  if (size >= 8) read_exact(f, path, first, 8, 0);
  if (!ckh::st::parse_length(first, size, len, err)) fail(CKH_E_FORMAT, path + ": " + err);
  std::string text(len, '\0');
  read_exact(f, path, text.data(), len, 8);
  ckh::st::Header h;
  if (!ckh::st::parse_header(text.data(), len, size, h, err)) fail(CKH_E_FORMAT, path + ": " + err);
  return h;
}

// ---------------------------------------------------------------------------------------------------
// Reader

struct Tensor {
  std::string name;
  ckh_dtype dtype;
  std::vector<int64_t> shape;
  uint32_t file;
  uint64_t offset;  // absolute file offset of the first byte
};

struct Reader {
  ckh_reader_t vt{};
  std::vector<std::string> files;
  std::vector<Tensor> tensors;
  std::vector<std::string> annots;  // extra_json per tensor ("" = none): quantized codes and scales
  std::string meta;
};

const Reader &R(const ckh_reader_t *r) { return *static_cast<const Reader *>(r->impl); }

// Shard list of a model directory; fills `weight_map` (tensor -> shard) when there is an index.
std::vector<std::string> list_shards(const fs::path &dir, std::map<std::string, std::string> &weight_map,
                                     bool &have_index, std::string &index_name) {
  std::error_code ec;
  std::vector<std::string> shards;
  fs::path idx = dir / kIndexName;
  have_index = fs::exists(idx, ec);
  if (!have_index && fs::exists(dir / kDiffusersIndexName, ec)) {
    idx = dir / kDiffusersIndexName;
    have_index = true;
  }
  index_name = idx.filename().string();
  if (have_index) {
    const std::string ip = idx.string();
    const json index = parse_json_file(ip, kMaxIndex, /*unique_keys=*/true);
    if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
      fail(CKH_E_FORMAT, ip + ": no \"weight_map\" object");
    std::set<std::string> seen;
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
      if (!it.value().is_string())
        fail(CKH_E_FORMAT, ip + ": tensor " + quote(it.key()) + ": weight_map value is not a file name");
      const std::string f = it.value().get<std::string>();
      if (f.empty() || f.find('/') != std::string::npos || f.find('\0') != std::string::npos || f == "." || f == "..")
        fail(CKH_E_FORMAT, ip + ": tensor " + quote(it.key()) + ": invalid shard name " + quote(f));
      weight_map[it.key()] = f;
      if (seen.insert(f).second) shards.push_back(f);
    }
    std::sort(shards.begin(), shards.end());
    for (const auto &f : shards)
      if (!fs::is_regular_file(dir / f, ec))
        fail(CKH_E_FORMAT, ip + " names shard " + quote(f) + ", but " + (dir / f).string() + " does not exist");
  } else if (fs::is_regular_file(dir / "model.safetensors", ec)) {
    shards.push_back("model.safetensors");
  } else if (fs::is_regular_file(dir / "diffusion_pytorch_model.safetensors", ec)) {
    shards.push_back("diffusion_pytorch_model.safetensors");
  } else {
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string n = it->path().filename().string();
      std::error_code ec2;
      if (ends_with(n, ".safetensors") && n[0] != '.' && it->is_regular_file(ec2)) shards.push_back(n);
    }
    if (ec) fail(CKH_E_IO, dir.string() + ": cannot list: " + ec.message());
    std::sort(shards.begin(), shards.end());
    if (shards.empty()) fail(CKH_E_FORMAT, dir.string() + ": no .safetensors files");
  }
  return shards;
}

void open_into(Reader &rd, const std::string &path0) {
  std::error_code ec;
  if (path0.empty()) fail(CKH_E_INVALID_ARG, "empty path");
  const fs::path path = fs::absolute(path0, ec).lexically_normal();
  if (ec) fail(CKH_E_IO, path0 + ": " + ec.message());
  const bool is_dir = fs::is_directory(path, ec);
  fs::path dir;
  std::vector<std::string> shards;
  std::map<std::string, std::string> weight_map;
  bool have_index = false;
  std::string index_name = kIndexName;
  if (is_dir) {
    dir = path;
    shards = list_shards(dir, weight_map, have_index, index_name);
  } else if (fs::exists(path, ec)) {
    dir = path.parent_path();
    shards.push_back(path.filename().string());
  } else {
    fail(CKH_E_IO, path.string() + ": no such file or directory");
  }

  std::map<std::string, std::string> where;  // tensor -> shard it was found in
  json st_meta = json::object();
  for (const auto &sn : shards) {
    const std::string fp = (dir / sn).string();
    ckh::st::Header h = read_header(fp);
    const uint32_t fi = static_cast<uint32_t>(rd.files.size());
    rd.files.push_back(fp);
    for (const auto &[k, v] : h.metadata) st_meta[k] = v;
    for (auto &e : h.entries) {
      const std::string who = fp + ": tensor " + quote(e.name);
      auto [it, fresh] = where.emplace(e.name, sn);
      if (!fresh) fail(CKH_E_FORMAT, who + " also appears in " + it->second);
      if (have_index) {
        auto w = weight_map.find(e.name);
        if (w == weight_map.end()) fail(CKH_E_FORMAT, who + " is not listed in " + index_name);
        if (w->second != sn) fail(CKH_E_FORMAT, who + " is listed in " + index_name + " under " + quote(w->second));
      }
      rd.tensors.push_back({std::move(e.name), e.dtype, std::move(e.shape), fi, h.data_start + e.begin});
    }
  }
  if (have_index)
    for (const auto &[name, shard] : weight_map)
      if (!where.count(name))
        fail(CKH_E_FORMAT, (dir / shard).string() + ": tensor " + quote(name) + " listed in " + index_name +
                               " is not in this shard");

  json m = json::object();
  m["format"] = "hf";
  m["layout"] = "hf";
  m["config"] = nullptr;
  m["side_files"] = json::array();
  m["skipped"] = json::array();
  m["safetensors_metadata"] = st_meta;
  if (is_dir) {
    m["side_files"] = ckh::plugins::list_side_files(dir);
    bool has_config = false;
    for (const auto &sf : m["side_files"]) has_config = has_config || sf["name"] == "config.json";
    if (has_config) {
      const std::string cp = (dir / "config.json").string();
      json cfg = parse_json_file(cp, kMaxConfig, /*unique_keys=*/false);
      if (!cfg.is_object()) fail(CKH_E_FORMAT, cp + ": not a JSON object");
      m["config"] = std::move(cfg);
    }
  }
  {
    std::vector<std::string> names;
    std::vector<ckh_dtype> dts;
    for (const auto &t : rd.tensors) {
      names.push_back(t.name);
      dts.push_back(t.dtype);
    }
    rd.annots = ckh::plugins::quant_annotations(names, dts, m["config"]);
  }
  try {
    rd.meta = m.dump();
  } catch (const json::exception &) {  // a file name that is not UTF-8
    rd.meta = m.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

int32_t probe(const ckh_reader_class_t *, const char *path) {
  try {
    if (!path || !*path) return 0;
    std::error_code ec;
    const fs::path p(path);
    if (fs::is_directory(p, ec)) {
      if (fs::exists(p / kIndexName, ec) || fs::exists(p / kDiffusersIndexName, ec)) return 90;
      for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
        if (ends_with(it->path().filename().string(), ".safetensors")) return 90;
      return 0;
    }
    Fd f;
    f.fd = ::open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (f.fd < 0) return 0;
    struct stat st {};
    if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    uint8_t b[9] = {0};
    if (::pread(f.fd, b, 9, 0) != 9) return 0;
    uint64_t len = 0;
    std::string err;
    return ckh::st::parse_length(b, static_cast<uint64_t>(st.st_size), len, err) && b[8] == '{' ? 90 : 0;
  } catch (...) {
    return 0;
  }
}

// Copies a filled struct into the caller's, which may be older (smaller) or newer (larger; its extra
// fields are left as the caller set them). struct_size must at least cover itself.
template <class T>
void copy_out(T *dst, const T &src) {
  if (src.struct_size < sizeof(uint32_t)) fail(CKH_E_ABI, "struct_size " + std::to_string(src.struct_size) + " too small");
  std::memcpy(static_cast<void *>(dst), &src, src.struct_size);
}

void fill_reader_vtable(Reader &rd) {
  ckh_reader_t &v = rd.vt;
  v.struct_size = sizeof v;
  v.impl = &rd;
  v.file_count = [](const ckh_reader_t *r) { return static_cast<uint32_t>(R(r).files.size()); };
  v.file_path = [](const ckh_reader_t *r, uint32_t i) -> const char * {
    return i < R(r).files.size() ? R(r).files[i].c_str() : nullptr;
  };
  v.tensor_count = [](const ckh_reader_t *r) { return static_cast<uint64_t>(R(r).tensors.size()); };
  v.tensor_info = [](const ckh_reader_t *r, uint64_t i, ckh_tensor_info_t *t) -> ckh_status {
    return ckh::sdk::guard([&] {
      if (!t) fail(CKH_E_INVALID_ARG, "tensor_info: null output");
      if (i >= R(r).tensors.size()) fail(CKH_E_NOT_FOUND, "tensor index " + std::to_string(i) + " out of range");
      const Tensor &x = R(r).tensors[i];
      ckh_tensor_info_t v{};
      v.struct_size = static_cast<uint32_t>(std::min<size_t>(t->struct_size, sizeof v));
      v.name = x.name.c_str();
      v.dtype = x.dtype;
      v.ndim = static_cast<uint32_t>(x.shape.size());
      for (size_t d = 0; d < x.shape.size(); ++d) v.shape[d] = x.shape[d];
      copy_out(t, v);
    });
  };
  v.tensor_annot = [](const ckh_reader_t *r, uint64_t i, ckh_tensor_annot_t *a) -> ckh_status {
    return ckh::sdk::guard([&] {
      if (!a) fail(CKH_E_INVALID_ARG, "tensor_annot: null output");
      if (i >= R(r).tensors.size()) fail(CKH_E_NOT_FOUND, "tensor index " + std::to_string(i) + " out of range");
      ckh_tensor_annot_t v = ckh::sdk::annot();
      v.struct_size = static_cast<uint32_t>(std::min<size_t>(a->struct_size, sizeof v));
      const std::string &x = R(r).annots[i];
      v.extra_json = x.empty() ? nullptr : x.c_str();
      copy_out(a, v);
    });
  };
  v.piece_count = [](const ckh_reader_t *r, uint64_t i) -> uint32_t { return i < R(r).tensors.size() ? 1 : 0; };
  v.piece = [](const ckh_reader_t *r, uint64_t i, uint32_t j, ckh_piece_t *p) -> ckh_status {
    return ckh::sdk::guard([&] {
      if (!p) fail(CKH_E_INVALID_ARG, "piece: null output");
      if (i >= R(r).tensors.size() || j != 0)
        fail(CKH_E_NOT_FOUND, "piece " + std::to_string(i) + "/" + std::to_string(j) + " out of range");
      const Tensor &x = R(r).tensors[i];
      ckh_piece_t v{};
      v.struct_size = static_cast<uint32_t>(std::min<size_t>(p->struct_size, sizeof v));
      v.file = x.file;
      v.byte_offset = x.offset;
      for (size_t d = 0; d < x.shape.size(); ++d) v.size[d] = x.shape[d];
      copy_out(p, v);
    });
  };
  v.metadata_json = [](const ckh_reader_t *r) { return R(r).meta.c_str(); };
  v.destroy = [](ckh_reader_t *r) {
    if (r) delete static_cast<Reader *>(r->impl);
  };
}

ckh_status open_reader(const ckh_reader_class_t *, const char *path, const char *, ckh_reader_t **out) {
  if (out) *out = nullptr;
  return ckh::sdk::guard([&] {
    if (!out) fail(CKH_E_INVALID_ARG, "open: null output");
    auto rd = std::make_unique<Reader>();
    open_into(*rd, path ? path : "");
    fill_reader_vtable(*rd);
    *out = &rd.release()->vt;
  });
}

// ---------------------------------------------------------------------------------------------------
// Writer

struct Writer {
  uint64_t max_shard = kDefaultShard;
  explicit Writer(const json &o);
  void plan(const json &meta, ckh_layout_builder_t *lb) const;
};

// A layout builder call failed: the host already holds the message; pass its status on.
[[noreturn]] void host_failed(ckh_status s = CKH_E_INVALID_ARG) {
  throw ckh::sdk::Error(s != CKH_OK ? s : CKH_E_INVALID_ARG, "layout builder call failed", true);
}
void check_host(ckh_status s) {
  if (s != CKH_OK) host_failed(s);
}

// "5GB" (10^9), "5GiB" (2^30), "100KB", "123" (bytes); as HF's convert_file_size_to_int.
uint64_t parse_size(const json &v) {
  const std::string bad = "max_shard_size must be a positive number of bytes or a size like \"5GB\"";
  if (v.is_number_unsigned()) {
    if (v.get<uint64_t>() == 0) fail(CKH_E_INVALID_ARG, bad);
    return v.get<uint64_t>();
  }
  if (!v.is_string()) fail(CKH_E_INVALID_ARG, bad);
  const std::string s = v.get<std::string>();
  size_t i = 0;
  uint64_t n = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    if (__builtin_mul_overflow(n, 10u, &n) || __builtin_add_overflow(n, static_cast<uint64_t>(s[i] - '0'), &n))
      fail(CKH_E_INVALID_ARG, bad);
    ++i;
  }
  if (i == 0) fail(CKH_E_INVALID_ARG, bad + ", got " + quote(s));
  std::string unit = s.substr(i);
  for (char &c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  static const std::pair<const char *, uint64_t> kUnits[] = {
      {"", 1},          {"B", 1},           {"KB", 1000},         {"MB", 1000000},         {"GB", 1000000000},
      {"TB", 1000000000000ull}, {"KIB", 1ull << 10}, {"MIB", 1ull << 20}, {"GIB", 1ull << 30}, {"TIB", 1ull << 40}};
  for (const auto &[u, mul] : kUnits)
    if (unit == u) {
      uint64_t r = 0;
      if (__builtin_mul_overflow(n, mul, &r) || r == 0) fail(CKH_E_INVALID_ARG, bad + ", got " + quote(s));
      return r;
    }
  fail(CKH_E_INVALID_ARG, bad + ", got " + quote(s));
}

std::string json_string(const std::string &s, const std::string &what) {
  try {
    return json(s).dump();
  } catch (const json::exception &) {
    fail(CKH_E_FORMAT, what + " is not valid UTF-8");
  }
}

struct OutTensor {
  std::string name;
  ckh_dtype dtype;
  std::vector<int64_t> shape;
  uint64_t bytes;
  ckh_expr e;
};

// Header JSON of one shard, exactly as the reference writer lays it out: "__metadata__" first, then
// the tensors in data order; compact; padded with spaces to a multiple of 8 bytes.
std::string shard_header(const std::vector<const OutTensor *> &ts, std::vector<uint64_t> &offs, uint64_t &data) {
  std::string h = "{\"__metadata__\":{\"format\":\"pt\"}";
  uint64_t off = 0;
  offs.clear();
  for (const OutTensor *t : ts) {
    h += ',';
    h += json_string(t->name, "tensor name " + quote(t->name));
    h += ":{\"dtype\":\"";
    h += ckh::st::dtype_to_string(t->dtype);
    h += "\",\"shape\":[";
    for (size_t d = 0; d < t->shape.size(); ++d) h += (d ? "," : "") + std::to_string(t->shape[d]);
    h += "],\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + t->bytes) + "]}";
    offs.push_back(off);
    off += t->bytes;
  }
  h += '}';
  h.append((8 - h.size() % 8) % 8, ' ');
  data = off;
  return h;
}

Writer::Writer(const json &o) {
  if (o.contains("max_shard_size") && !o["max_shard_size"].is_null()) max_shard = parse_size(o["max_shard_size"]);
}

void Writer::plan(const json &meta, ckh_layout_builder_t *lb) const {
  ckh::sdk::Builder b(lb->expr);

  std::vector<OutTensor> ts;
  const uint64_t n = b.input_count();
  ts.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    const ckh_tensor_info_t info = b.input_info(i);
    OutTensor t;
    t.name = info.name ? info.name : "";
    t.dtype = info.dtype;
    if (info.ndim > CKH_MAX_DIMS) fail(CKH_E_INVALID_ARG, "tensor " + quote(t.name) + ": ndim " + std::to_string(info.ndim));
    t.shape.assign(info.shape, info.shape + info.ndim);
    if (!ckh::st::dtype_to_string(t.dtype))
      fail(CKH_E_UNSUPPORTED, "tensor " + quote(t.name) + ": safetensors cannot store dtype " +
                                  std::to_string(t.dtype) + " (a block-quantized or unknown type); cast it first");
    uint64_t bytes = ckh_dtype_size(t.dtype);
    for (int64_t d : t.shape)
      if (d < 0 || __builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes))
        fail(CKH_E_INVALID_ARG, "tensor " + quote(t.name) + ": shape " + ckh::st::shape_str(t.shape) + " is invalid");
    t.bytes = bytes;
    t.e = b.input_at(i);
    ts.push_back(std::move(t));
  }

  // Greedy shards in input order; a tensor larger than the limit gets a shard of its own.
  std::vector<std::vector<const OutTensor *>> shards(1);
  uint64_t cur = 0, total = 0;
  for (const OutTensor &t : ts) {
    if (!shards.back().empty() && (cur + t.bytes < cur || cur + t.bytes > max_shard)) {
      shards.emplace_back();
      cur = 0;
    }
    shards.back().push_back(&t);
    cur += t.bytes;
    total += t.bytes;
  }

  const size_t ns = shards.size();
  // A diffusers model (its config.json has "_class_name" or "_diffusers_version", ConfigMixin's keys)
  // is loaded by diffusers from diffusion_pytorch_model*.safetensors; transformers' from model*.
  bool diffusers = false;
  if (meta.contains("config") && meta["config"].is_object())
    diffusers = meta["config"].contains("_class_name") || meta["config"].contains("_diffusers_version");
  const char *stem = diffusers ? "diffusion_pytorch_model" : "model";
  const std::string index_name = std::string(stem) + ".safetensors.index.json";
  std::set<std::string> written;
  json weight_map = json::object();
  for (size_t s = 0; s < ns; ++s) {
    char fname[64];
    if (ns == 1) std::snprintf(fname, sizeof fname, "%s.safetensors", stem);
    else std::snprintf(fname, sizeof fname, "%s-%05zu-of-%05zu.safetensors", stem, s + 1, ns);
    written.insert(fname);
    auto &sh = shards[s];
    std::sort(sh.begin(), sh.end(), [](const OutTensor *a, const OutTensor *c) {
      const uint32_t sa = ckh_dtype_size(a->dtype), sc = ckh_dtype_size(c->dtype);
      return sa != sc ? sa > sc : a->name < c->name;
    });
    std::vector<uint64_t> offs;
    uint64_t data = 0;
    const std::string hs = shard_header(sh, offs, data);
    const uint64_t data_start = 8 + hs.size();
    const int32_t f = lb->add_file(lb, fname, data_start + data);
    if (f < 0) host_failed();
    std::string head(8, '\0');
    for (int k = 0; k < 8; ++k) head[k] = static_cast<char>(static_cast<uint64_t>(hs.size()) >> (8 * k));
    head += hs;
    check_host(lb->put_bytes(lb, f, 0, head.data(), head.size()));
    for (size_t k = 0; k < sh.size(); ++k) {
      if (lb->put_tensor(lb, f, data_start + offs[k], sh[k]->e, 0) < 0) host_failed();
      weight_map[sh[k]->name] = fname;
    }
  }
  if (ns > 1) {
    const json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
    const std::string s = index.dump(2, ' ', /*ensure_ascii=*/true) + "\n";  // as json.dumps(indent=2, sort_keys=True)
    check_host(lb->add_small_file(lb, index_name.c_str(), s.data(), s.size()));
    written.insert(index_name);
  }
  ckh::plugins::carry_side_files(lb, meta, written);
}

// ---------------------------------------------------------------------------------------------------

const ckh_reader_class_t kReader = {sizeof(ckh_reader_class_t), 0, probe, open_reader};
const ckh_writer_class_t kWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<Writer>};
const ckh_component_t kReaderComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_READER, "hf", "HF safetensors checkpoints (single file, or shards + index)",
    R"({"container":"safetensors","layout":"hf","extensions":[".safetensors"]})", &kReader};
const ckh_component_t kWriterComp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "hf",
                                     "HF safetensors (HF shard names, index with total_size)",
                                     R"({"container":"safetensors","layout":"hf","options":[)" CKH_OPT_MAX_SHARD_SIZE "]}", &kWriter};
const ckh_component_t *const kComponents[] = {&kReaderComp, &kWriterComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t),
                              CKH_ABI_MAJOR,
                              CKH_ABI_MINOR,
                              2,
                              "org.ckhost.format.safetensors",
                              "0.1.0",
                              "ckhost",
                              "HuggingFace safetensors reader and writer",
                              init,
                              nullptr,
                              kComponents,
                              nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
