// plugin.cpp — HF safetensors reader and writer ("hf").
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "header.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using ckh::sdk::fail;

namespace {

constexpr uint64_t kMaxIndex = 100ull << 20;

bool ends_with(const std::string &s, const std::string &suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Files of a model directory that are weights (never carried as side files).
bool is_weight_file(const std::string &n) {
  for (const char *e : {".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth", ".ckpt",
                        ".gguf", ".h5", ".msgpack", ".onnx", ".npy", ".distcp"})
    if (ends_with(n, e)) return true;
  return false;
}

std::string read_small_file(const std::string &path, uint64_t limit) {
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  if (ec) fail(CKH_E_IO, path + ": cannot read: " + ec.message());
  if (size > limit) fail(CKH_E_FORMAT, path + ": " + std::to_string(size) + " bytes is larger than the " +
                                           std::to_string(limit) + "-byte limit");
  std::ifstream in(path, std::ios::binary);
  std::string s(size, '\0');
  if (!in.read(s.data(), static_cast<std::streamsize>(size))) fail(CKH_E_IO, path + ": read failed");
  return s;
}

json parse_json_file(const std::string &path, uint64_t limit) {
  const std::string s = read_small_file(path, limit);
  json j = json::parse(s, nullptr, false);
  if (j.is_discarded()) fail(CKH_E_FORMAT, path + ": not valid JSON");
  return j;
}

// Reads and validates the header of one safetensors file.
ckh::st::Header read_header(const std::string &path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(CKH_E_IO, path + ": cannot open: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail(CKH_E_IO, path + ": cannot stat");
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  uint8_t first[8] = {0};
  std::string err;
  uint64_t len = 0;
  if (size >= 8 && ::pread(fd, first, 8, 0) != 8) fail(CKH_E_IO, path + ": read failed");
  if (!ckh::st::parse_length(first, size, len, err)) fail(CKH_E_FORMAT, path + ": " + err);
  std::string hdr(len, '\0');
  uint64_t got = 0;
  while (got < len) {
    ssize_t r = ::pread(fd, hdr.data() + got, len - got, static_cast<off_t>(8 + got));
    if (r <= 0) fail(CKH_E_IO, path + ": read failed");
    got += static_cast<uint64_t>(r);
  }
  ckh::st::Header h;
  if (!ckh::st::parse_header(hdr.data(), len, size, h, err)) fail(CKH_E_FORMAT, path + ": " + err);
  return h;
}

// ---------------------------------------------------------------------------------------------------
// Reader

struct Tensor {
  std::string name;
  ckh_dtype dtype;
  std::vector<int64_t> shape;
  uint32_t file;
  uint64_t offset;
};

struct Reader {
  ckh_reader_t vt{};
  std::vector<std::string> files;
  std::vector<Tensor> tensors;
  std::string meta;
};

Reader *R(const ckh_reader_t *r) { return static_cast<Reader *>(r->impl); }

void open_into(Reader &rd, const std::string &path0) {
  std::error_code ec;
  const fs::path path = fs::absolute(path0, ec);
  fs::path dir;
  std::vector<std::string> shard_names;
  json index;
  bool have_index = false;
  if (fs::is_directory(path, ec)) {
    dir = path;
    const fs::path idx = dir / "model.safetensors.index.json";
    if (fs::exists(idx, ec)) {
      index = parse_json_file(idx.string(), kMaxIndex);
      have_index = true;
      if (!index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object())
        fail(CKH_E_FORMAT, idx.string() + ": no \"weight_map\" object");
      std::set<std::string> seen;
      for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        if (!it.value().is_string()) fail(CKH_E_FORMAT, idx.string() + ": weight_map value of '" + it.key() + "' is not a string");
        const std::string f = it.value().get<std::string>();
        if (f.empty() || f.find('/') != std::string::npos || f == "." || f == "..")
          fail(CKH_E_FORMAT, idx.string() + ": invalid shard name '" + f + "'");
        if (seen.insert(f).second) shard_names.push_back(f);
      }
      std::sort(shard_names.begin(), shard_names.end());
      for (const auto &f : shard_names)
        if (!fs::exists(dir / f, ec))
          fail(CKH_E_FORMAT, idx.string() + " names shard '" + f + "', which does not exist in " + dir.string());
    } else if (fs::exists(dir / "model.safetensors", ec)) {
      shard_names.push_back("model.safetensors");
    } else {
      for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_regular_file() && ends_with(it->path().filename().string(), ".safetensors"))
          shard_names.push_back(it->path().filename().string());
      std::sort(shard_names.begin(), shard_names.end());
      if (shard_names.empty()) fail(CKH_E_NOT_FOUND, dir.string() + ": no .safetensors files");
    }
  } else if (fs::is_regular_file(path, ec)) {
    dir = path.parent_path();
    shard_names.push_back(path.filename().string());
  } else {
    fail(CKH_E_NOT_FOUND, path0 + ": no such file or directory");
  }

  std::map<std::string, std::string> where;  // tensor -> shard
  json st_meta = json::object();
  for (const auto &sn : shard_names) {
    const std::string fp = (dir / sn).string();
    ckh::st::Header h = read_header(fp);
    const uint32_t fi = static_cast<uint32_t>(rd.files.size());
    rd.files.push_back(fp);
    for (const auto &[k, v] : h.metadata) st_meta[k] = v;
    for (auto &e : h.entries) {
      auto [it, fresh] = where.emplace(e.name, sn);
      if (!fresh) fail(CKH_E_FORMAT, fp + ": tensor '" + e.name + "' also appears in " + it->second);
      if (have_index) {
        const json &wm = index["weight_map"];
        if (!wm.contains(e.name))
          fail(CKH_E_FORMAT, fp + ": tensor '" + e.name + "' is not listed in model.safetensors.index.json");
        if (wm[e.name].get<std::string>() != sn)
          fail(CKH_E_FORMAT, fp + ": tensor '" + e.name + "' is listed in the index under " + wm[e.name].get<std::string>());
      }
      rd.tensors.push_back({e.name, e.dtype, e.shape, fi, h.data_start + e.begin});
    }
  }
  if (have_index)
    for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it)
      if (!where.count(it.key()))
        fail(CKH_E_FORMAT, (dir / it.value().get<std::string>()).string() + ": tensor '" + it.key() +
                               "' listed in model.safetensors.index.json is not in this shard");

  json m;
  m["format"] = "hf";
  m["layout"] = "hf";
  m["config"] = nullptr;
  m["side_files"] = json::array();
  m["skipped"] = json::array();
  m["safetensors_metadata"] = st_meta;
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> side;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string n = it->path().filename().string();
      if (!it->is_regular_file() || n.empty() || n[0] == '.' || is_weight_file(n)) continue;
      side.push_back(n);
    }
    std::sort(side.begin(), side.end());
    for (const auto &n : side) m["side_files"].push_back({{"name", n}, {"path", (dir / n).string()}});
    if (fs::exists(dir / "config.json", ec)) {
      json cfg = parse_json_file((dir / "config.json").string(), 16u << 20);
      if (!cfg.is_object()) fail(CKH_E_FORMAT, (dir / "config.json").string() + ": not a JSON object");
      m["config"] = cfg;
    }
  }
  rd.meta = m.dump();
}

int32_t probe(const ckh_reader_class_t *, const char *path) {
  try {
    std::error_code ec;
    fs::path p(path ? path : "");
    if (fs::is_directory(p, ec)) {
      if (fs::exists(p / "model.safetensors.index.json", ec)) return 90;
      for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
        if (ends_with(it->path().filename().string(), ".safetensors")) return 90;
      return 0;
    }
    std::ifstream in(p, std::ios::binary);
    uint8_t b[9] = {0};
    if (!in.read(reinterpret_cast<char *>(b), 9)) return 0;
    const uint64_t size = fs::file_size(p, ec);
    uint64_t len;
    std::string err;
    return (ckh::st::parse_length(b, size, len, err) && b[8] == '{') ? 90 : 0;
  } catch (...) {
    return 0;
  }
}

ckh_status open_reader(const ckh_reader_class_t *, const char *path, const char *, ckh_reader_t **out) {
  *out = nullptr;
  return ckh::sdk::guard([&] {
    auto rd = std::make_unique<Reader>();
    open_into(*rd, path ? path : "");
    ckh_reader_t &v = rd->vt;
    v.struct_size = sizeof v;
    v.impl = rd.get();
    v.file_count = [](const ckh_reader_t *r) { return static_cast<uint32_t>(R(r)->files.size()); };
    v.file_path = [](const ckh_reader_t *r, uint32_t i) -> const char * {
      return i < R(r)->files.size() ? R(r)->files[i].c_str() : nullptr;
    };
    v.tensor_count = [](const ckh_reader_t *r) { return static_cast<uint64_t>(R(r)->tensors.size()); };
    v.tensor_info = [](const ckh_reader_t *r, uint64_t i, ckh_tensor_info_t *t) -> ckh_status {
      return ckh::sdk::guard([&] {
        if (i >= R(r)->tensors.size()) fail(CKH_E_NOT_FOUND, "tensor index out of range");
        const Tensor &x = R(r)->tensors[i];
        const uint32_t sz = t->struct_size;
        std::memset(t, 0, std::min<size_t>(sz, sizeof *t));
        t->struct_size = sz;
        t->name = x.name.c_str();
        t->dtype = x.dtype;
        t->ndim = static_cast<uint32_t>(x.shape.size());
        for (size_t d = 0; d < x.shape.size(); ++d) t->shape[d] = x.shape[d];
      });
    };
    v.tensor_annot = nullptr;
    v.piece_count = [](const ckh_reader_t *, uint64_t) -> uint32_t { return 1; };
    v.piece = [](const ckh_reader_t *r, uint64_t i, uint32_t j, ckh_piece_t *p) -> ckh_status {
      return ckh::sdk::guard([&] {
        if (i >= R(r)->tensors.size() || j != 0) fail(CKH_E_NOT_FOUND, "piece index out of range");
        const Tensor &x = R(r)->tensors[i];
        const uint32_t sz = p->struct_size;
        std::memset(p, 0, std::min<size_t>(sz, sizeof *p));
        p->struct_size = sz;
        p->file = x.file;
        p->byte_offset = x.offset;
        for (size_t d = 0; d < x.shape.size(); ++d) p->size[d] = x.shape[d];
      });
    };
    v.metadata_json = [](const ckh_reader_t *r) { return R(r)->meta.c_str(); };
    v.destroy = [](ckh_reader_t *r) { delete R(r); };
    *out = &rd.release()->vt;
  });
}

// ---------------------------------------------------------------------------------------------------
// Writer

struct Writer {
  ckh_writer_t vt{};
  uint64_t max_shard = 5000000000ull;
};

Writer *W(const ckh_writer_t *w) { return static_cast<Writer *>(w->impl); }

void carry_side_files(ckh_layout_builder_t *lb, const json &meta) {
  const bool regen = meta.value("config_modified", false) && meta.contains("config") && meta["config"].is_object();
  bool wrote_config = false;
  if (meta.contains("side_files") && meta["side_files"].is_array())
    for (const auto &sf : meta["side_files"]) {
      const std::string name = sf.value("name", ""), path = sf.value("path", "");
      if (name.empty() || path.empty()) continue;
      if (name == "config.json" && regen) continue;
      if (name == "config.json") wrote_config = true;
      ckh_status s = lb->copy_file(lb, path.c_str(), name.c_str());
      if (s != CKH_OK) throw ckh::sdk::Error(s, "copy_file failed", true);
    }
  if (!wrote_config && meta.contains("config") && meta["config"].is_object()) {
    const std::string c = meta["config"].dump(2) + "\n";
    ckh_status s = lb->add_small_file(lb, "config.json", c.data(), c.size());
    if (s != CKH_OK) throw ckh::sdk::Error(s, "add_small_file failed", true);
  }
}

ckh_status plan(ckh_writer_t *w, const char *metadata_json, ckh_layout_builder_t *lb) {
  return ckh::sdk::guard([&] {
    const json meta = json::parse(metadata_json ? metadata_json : "{}", nullptr, false);
    ckh::sdk::Builder b(lb->expr);
    struct T {
      std::string name;
      ckh_tensor_info_t info;
      uint64_t bytes;
      ckh_expr e;
    };
    std::vector<T> ts;
    const uint64_t n = b.input_count();
    for (uint64_t i = 0; i < n; ++i) {
      T t;
      t.info = b.input_info(i);
      t.name = t.info.name;
      if (!ckh::st::dtype_to_string(t.info.dtype))
        fail(CKH_E_UNSUPPORTED, "tensor '" + t.name + "': safetensors cannot store dtype " + std::to_string(t.info.dtype));
      uint64_t numel = 1;
      for (uint32_t d = 0; d < t.info.ndim; ++d) numel *= static_cast<uint64_t>(t.info.shape[d]);
      t.bytes = numel * ckh_dtype_size(t.info.dtype);
      t.e = b.input_at(i);
      ts.push_back(std::move(t));
    }
    // Greedy shards in input order.
    std::vector<std::vector<size_t>> shards(1);
    uint64_t cur = 0, total = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!shards.back().empty() && cur + ts[i].bytes > W(w)->max_shard) {
        shards.emplace_back();
        cur = 0;
      }
      shards.back().push_back(i);
      cur += ts[i].bytes;
      total += ts[i].bytes;
    }
    const size_t ns = shards.size();
    json weight_map = json::object();
    for (size_t s = 0; s < ns; ++s) {
      char fname[64];
      if (ns == 1) std::snprintf(fname, sizeof fname, "model.safetensors");
      else std::snprintf(fname, sizeof fname, "model-%05zu-of-%05zu.safetensors", s + 1, ns);
      auto &idx = shards[s];
      std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t c) {
        const uint32_t sa = ckh_dtype_size(ts[a].info.dtype), sc = ckh_dtype_size(ts[c].info.dtype);
        return sa != sc ? sa > sc : ts[a].name < ts[c].name;
      });
      json h = json::object();
      h["__metadata__"] = {{"format", "pt"}};
      uint64_t off = 0;
      std::vector<uint64_t> offs;
      for (size_t i : idx) {
        json shape = json::array();
        for (uint32_t d = 0; d < ts[i].info.ndim; ++d) shape.push_back(ts[i].info.shape[d]);
        h[ts[i].name] = {{"dtype", ckh::st::dtype_to_string(ts[i].info.dtype)}, {"shape", shape},
                         {"data_offsets", {off, off + ts[i].bytes}}};
        offs.push_back(off);
        off += ts[i].bytes;
        weight_map[ts[i].name] = fname;
      }
      std::string hs = h.dump();
      hs.append((8 - hs.size() % 8) % 8, ' ');
      const uint64_t data_start = 8 + hs.size();
      const int32_t f = lb->add_file(lb, fname, data_start + off);
      if (f < 0) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_file failed", true);
      uint8_t len[8];
      for (int k = 0; k < 8; ++k) len[k] = static_cast<uint8_t>(static_cast<uint64_t>(hs.size()) >> (8 * k));
      std::string head(reinterpret_cast<const char *>(len), 8);
      head += hs;
      if (lb->put_bytes(lb, f, 0, head.data(), head.size()) != CKH_OK)
        throw ckh::sdk::Error(CKH_E_INVALID_ARG, "put_bytes failed", true);
      for (size_t k = 0; k < idx.size(); ++k)
        if (lb->put_tensor(lb, f, data_start + offs[k], ts[idx[k]].e, 0) < 0)
          throw ckh::sdk::Error(CKH_E_INVALID_ARG, "put_tensor failed", true);
    }
    if (ns > 1) {
      json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
      const std::string s = index.dump(2) + "\n";
      if (lb->add_small_file(lb, "model.safetensors.index.json", s.data(), s.size()) != CKH_OK)
        throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_small_file failed", true);
    }
    if (!meta.is_discarded()) carry_side_files(lb, meta);
  });
}

ckh_status create_writer(const ckh_writer_class_t *, const char *options_json, ckh_writer_t **out) {
  *out = nullptr;
  return ckh::sdk::guard([&] {
    auto w = std::make_unique<Writer>();
    const json o = json::parse(options_json ? options_json : "{}", nullptr, false);
    if (!o.is_discarded() && o.contains("max_shard_size")) {
      if (!o["max_shard_size"].is_number_unsigned() || o["max_shard_size"].get<uint64_t>() == 0)
        fail(CKH_E_INVALID_ARG, "max_shard_size must be a positive number of bytes");
      w->max_shard = o["max_shard_size"].get<uint64_t>();
    }
    w->vt.struct_size = sizeof w->vt;
    w->vt.impl = w.get();
    w->vt.plan = plan;
    w->vt.finish = nullptr;
    w->vt.destroy = [](ckh_writer_t *x) { delete W(x); };
    *out = &w.release()->vt;
  });
}

// ---------------------------------------------------------------------------------------------------

const ckh_reader_class_t kReader = {sizeof(ckh_reader_class_t), 0, probe, open_reader};
const ckh_writer_class_t kWriter = {sizeof(ckh_writer_class_t), 0, create_writer};
const ckh_component_t kReaderComp = {sizeof(ckh_component_t), CKH_COMPONENT_READER, "hf",
                                     "HF safetensors checkpoints (single file, or shards + index)",
                                     R"({"container":"safetensors","layout":"hf","extensions":[".safetensors"]})", &kReader};
const ckh_component_t kWriterComp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "hf",
                                     "HF safetensors (HF shard names, index with total_size)",
                                     R"({"container":"safetensors","layout":"hf"})", &kWriter};
const ckh_component_t *const kComponents[] = {&kReaderComp, &kWriterComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 2,
                              "org.ckhost.format.safetensors", "0.1.0", "ckhost",
                              "HuggingFace safetensors reader and writer", init, nullptr, kComponents};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
