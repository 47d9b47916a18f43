// plugin.cpp — the "torch" format: torch.save files (.pt, .pth, HF pytorch_model.bin, sharded with
// pytorch_model.bin.index.json) read without executing any pickle, and written so that
// torch.load(weights_only=True) accepts them in PyTorch 1.13 and 2.x.
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

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "option_decls.hpp"
#include "catalog.hpp"
#include "hf_files.hpp"
#include "torch_archive.hpp"
#include "torch_load.hpp"
#include "torch_save.hpp"
#include "writer_glue.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using ckh::sdk::fail;
using namespace ckh::torchfmt;

namespace {

bool ends_with(const std::string &s, const std::string &suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// ---- reader ------------------------------------------------------------------------------------

// The catalog of a torch.save file or directory: one piece per tensor.
using Reader = ckh::plugins::Catalog;

// Tensors of one torch.save file, with names flattened from nested dicts ("a.b.c").
void read_file(Reader &rd, const std::string &path, json &skipped, std::set<std::string> &seen) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(CKH_E_IO, path + ": cannot open: " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  ::fstat(fd, &st);
  ReadAt rd_at = fd_reader(fd);
  std::map<std::string, ZipEntry> records;
  std::unique_ptr<Pickled> pk;
  try {
    const ZipEntry *pkl = nullptr;
    auto entries = read_zip(rd_at, 0, static_cast<uint64_t>(st.st_size));
    for (const auto &e : entries) {
      const auto slash = e.name.find('/');
      records[slash == std::string::npos ? e.name : e.name.substr(slash + 1)] = e;
    }
    auto it = records.find("data.pkl");
    if (it == records.end()) fail(CKH_E_FORMAT, path + ": no data.pkl record (a TorchScript or legacy-format file?)");
    pkl = &it->second;
    if (pkl->method != 0 || pkl->size > (1ull << 30)) fail(CKH_E_UNSUPPORTED, path + ": data.pkl is compressed or too large");
    std::vector<uint8_t> buf(pkl->size);
    if (!rd_at(pkl->data_offset, pkl->size, buf.data())) fail(CKH_E_IO, path + ": cannot read data.pkl");
    pk = unpickle(buf.data(), buf.size());
  } catch (const std::runtime_error &e) {
    fail(CKH_E_FORMAT, path + ": " + e.what());
  }
  const uint32_t file = static_cast<uint32_t>(rd.files.size());
  rd.files.push_back(path);
  // Walk nested dicts (bounded depth); lists are not state dicts and are skipped.
  std::vector<std::pair<std::string, VP>> todo = {{"", pk->root}};
  size_t steps = 0;
  while (!todo.empty()) {
    auto [name, v] = todo.back();
    todo.pop_back();
    if (++steps > (1u << 22)) fail(CKH_E_FORMAT, path + ": the object tree is too large");
    if (v->kind == Kind::Dict) {
      for (auto it = v->entries.rbegin(); it != v->entries.rend(); ++it) {
        if (it->first->kind != Kind::Str) continue;
        todo.emplace_back(name.empty() ? it->first->s : name + "." + it->first->s, it->second);
      }
      continue;
    }
    if (v->kind != Kind::Tensor) {
      if (!name.empty() && seen.insert(name).second)
        skipped.push_back({{"name", name}, {"reason", name.find("_extra_state") != std::string::npos
                                                          ? "Transformer Engine extra state"
                                                          : "not a tensor"}});
      continue;
    }
    const TensorRef &t = *v->tensor;
    auto rec = records.find("data/" + t.storage_key);
    if (rec == records.end()) fail(CKH_E_FORMAT, path + ": tensor '" + name + "' names storage " + t.storage_key + ", which has no record");
    if (rec->second.method != 0) fail(CKH_E_UNSUPPORTED, path + ": compressed storage records are not supported");
    const uint64_t es = ckh_dtype_size(t.dtype);
    if (static_cast<uint64_t>(t.storage_numel) * es > rec->second.size)
      fail(CKH_E_FORMAT, path + ": tensor '" + name + "': storage of " + std::to_string(t.storage_numel) + " elements needs " +
                             std::to_string(t.storage_numel * es) + " bytes, its record has " + std::to_string(rec->second.size));
    int64_t extent = t.offset, numel = 1;
    for (size_t d = 0; d < t.size.size(); ++d) {
      if (t.size[d] < 0 || t.stride[d] < 0) fail(CKH_E_FORMAT, path + ": tensor '" + name + "': negative size or stride");
      if (t.size[d] > 1 && t.stride[d] == 0)
        fail(CKH_E_UNSUPPORTED, path + ": tensor '" + name + "' is a broadcast (zero-stride) view; save a contiguous copy");
      numel *= t.size[d];
      if (t.size[d] > 0) extent += (t.size[d] - 1) * t.stride[d];
    }
    if (numel > 0 && (t.offset < 0 || extent >= t.storage_numel))
      fail(CKH_E_FORMAT, path + ": tensor '" + name + "' reaches element " + std::to_string(extent) + " of a storage with " +
                             std::to_string(t.storage_numel));
    for (const auto &x : rd.tensors)
      if (x.name == name) fail(CKH_E_FORMAT, path + ": tensor '" + name + "' appears twice");
    std::vector<int64_t> stride = t.stride;
    if (numel > 0 && std::all_of(stride.begin(), stride.end(), [](int64_t s) { return s == 0; }) && !stride.empty())
      stride.assign(stride.size(), 1);  // all-zero strides mean "contiguous" to the host: only for one element
    ckh::plugins::CatTensor ct;
    ct.name = name;
    ct.dtype = t.dtype;
    ct.shape = t.size;
    ct.pieces.push_back({file, rec->second.data_offset + static_cast<uint64_t>(t.offset) * es,
                         std::vector<int64_t>(t.size.size(), 0), t.size, stride});
    rd.tensors.push_back(std::move(ct));
  }
}

using ckh::plugins::is_weight_file;

void open_into(Reader &rd, const std::string &path0) {
  std::error_code ec;
  const fs::path path = fs::absolute(path0, ec);
  std::vector<std::string> files;
  fs::path dir;
  json index;
  if (fs::is_directory(path, ec)) {
    dir = path;
    if (fs::exists(dir / "pytorch_model.bin.index.json", ec)) {
      std::ifstream in(dir / "pytorch_model.bin.index.json");
      index = json::parse(in, nullptr, false);
      if (index.is_discarded() || !index.contains("weight_map") || !index["weight_map"].is_object())
        fail(CKH_E_FORMAT, (dir / "pytorch_model.bin.index.json").string() + ": no \"weight_map\" object");
      std::set<std::string> shards;
      for (auto it = index["weight_map"].begin(); it != index["weight_map"].end(); ++it) {
        const std::string f = it.value().is_string() ? it.value().get<std::string>() : "";
        if (f.empty() || f.find('/') != std::string::npos) fail(CKH_E_FORMAT, "pytorch_model.bin.index.json: invalid shard '" + f + "'");
        shards.insert(f);
      }
      for (const auto &f : shards) {
        if (!fs::exists(dir / f, ec)) fail(CKH_E_FORMAT, (dir / "pytorch_model.bin.index.json").string() + " names shard '" + f + "', which does not exist");
        files.push_back((dir / f).string());
      }
    } else if (fs::exists(dir / "pytorch_model.bin", ec)) {
      files.push_back((dir / "pytorch_model.bin").string());
    } else {
      for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string n = it->path().filename().string();
        if (it->is_regular_file() && (ends_with(n, ".pt") || ends_with(n, ".pth") || ends_with(n, ".bin"))) files.push_back(it->path().string());
      }
      std::sort(files.begin(), files.end());
      if (files.size() != 1) fail(CKH_E_NOT_FOUND, dir.string() + ": expected pytorch_model.bin, an index, or exactly one .pt/.pth/.bin file");
    }
  } else {
    dir = path.parent_path();
    files.push_back(path.string());
  }
  json skipped = json::array();
  std::set<std::string> seen;
  for (const auto &f : files) read_file(rd, f, skipped, seen);
  if (!index.is_null())
    for (const auto &t : rd.tensors)
      if (!index["weight_map"].contains(t.name))
        fail(CKH_E_FORMAT, rd.files[t.pieces[0].file] + ": tensor '" + t.name + "' is not listed in pytorch_model.bin.index.json");
  json m = {{"format", "torch"}, {"layout", "hf"}, {"config", nullptr}, {"side_files", json::array()}, {"skipped", skipped}};
  if (fs::is_directory(path, ec)) {
    m["side_files"] = ckh::plugins::list_side_files(dir);
    if (fs::exists(dir / "config.json", ec)) {
      std::ifstream in(dir / "config.json");
      json c = json::parse(in, nullptr, false);
      if (c.is_discarded() || !c.is_object()) fail(CKH_E_FORMAT, (dir / "config.json").string() + ": not a JSON object");
      m["config"] = c;
    }
  }
  rd.meta = m.dump();
}

int32_t probe(const ckh_reader_class_t *, const char *path) {
  try {
    std::error_code ec;
    const fs::path p(path ? path : "");
    if (fs::is_directory(p, ec)) {
      if (fs::exists(p / "pytorch_model.bin.index.json", ec) || fs::exists(p / "pytorch_model.bin", ec)) return 85;
      int n = 0;
      for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string f = it->path().filename().string();
        if (ends_with(f, ".safetensors") || f == "latest_checkpointed_iteration.txt") return 0;
        n += ends_with(f, ".pt") || ends_with(f, ".pth");
      }
      return n == 1 ? 70 : 0;
    }
    std::ifstream in(p, std::ios::binary);
    char b[4] = {0};
    return in.read(b, 4) && std::memcmp(b, "PK\x03\x04", 4) == 0 ? 80 : 0;
  } catch (...) {
    return 0;
  }
}

ckh_status open_reader(const ckh_reader_class_t *, const char *path, const char *, ckh_reader_t **out) {
  *out = nullptr;
  return ckh::sdk::guard([&] {
    auto r = std::make_unique<Reader>();
    open_into(*r, path ? path : "");
    *out = ckh::plugins::make_catalog_reader(std::move(r));
  });
}

// ---- writer ------------------------------------------------------------------------------------

struct Writer {
  uint64_t max_shard = 10000000000ull;  // transformers' historical default for .bin shards
  std::vector<std::unique_ptr<ArchiveLayout>> archives;
  explicit Writer(const json &o) {
    if (o.contains("max_shard_size")) {
      if (!o["max_shard_size"].is_number_unsigned() || o["max_shard_size"].get<uint64_t>() == 0)
        fail(CKH_E_INVALID_ARG, "max_shard_size must be a positive number of bytes");
      max_shard = o["max_shard_size"].get<uint64_t>();
    }
  }
  void plan(const json &meta, ckh_layout_builder_t *lb);
  void finish(const ckh_region_digest_t *d, uint64_t n, ckh_patcher_t *p) const {
    for (const auto &a : archives) a->finish(d, n, p);
  }
};

void Writer::plan(const json &meta, ckh_layout_builder_t *lb) {
  ckh::sdk::Builder b(lb->expr);
  struct T {
    std::string name;
    ckh_tensor_info_t info;
    uint64_t bytes;
    ckh_expr e;
  };
  std::vector<std::vector<T>> shards(1);
  uint64_t cur = 0, total = 0;
  for (uint64_t i = 0; i < b.input_count(); ++i) {
    T t{b.input_info(i).name, b.input_info(i), 0, b.input_at(i)};
    if (!*storage_class(t.info.dtype))
      fail(CKH_E_UNSUPPORTED, "tensor '" + t.name + "': torch 1.13 has no storage for this dtype" +
                                  (ckh_dtype_size(t.info.dtype) == 1 && ckh_dtype_is_float(t.info.dtype)
                                       ? std::string(" (FP8: not supported by the torch writer yet)")
                                       : std::string(" (cast with --dtype)")));
    t.bytes = ckh_dtype_size(t.info.dtype);
    for (uint32_t d = 0; d < t.info.ndim; ++d) t.bytes *= static_cast<uint64_t>(t.info.shape[d]);
    if (!shards.back().empty() && cur + t.bytes > max_shard) {
      shards.emplace_back();
      cur = 0;
    }
    cur += t.bytes;
    total += t.bytes;
    shards.back().push_back(t);
  }
  json weight_map = json::object();
  std::set<std::string> written;  // files this writer lays out: side files never replace them
  for (size_t s = 0; s < shards.size(); ++s) {
    char fname[64];
    if (shards.size() == 1) std::snprintf(fname, sizeof fname, "pytorch_model.bin");
    else std::snprintf(fname, sizeof fname, "pytorch_model-%05zu-of-%05zu.bin", s + 1, shards.size());
    written.insert(fname);
    Pickler pk;
    pk.global("collections", "OrderedDict");
    pk.empty_tuple();
    pk.reduce();
    std::vector<ckh_expr> exprs;
    std::vector<uint64_t> sizes;
    if (!shards[s].empty()) {
      pk.mark();
      for (size_t i = 0; i < shards[s].size(); ++i) {
        const T &t = shards[s][i];
        pk.str(t.name);
        pk.tensor(std::to_string(i), t.info.dtype, std::vector<int64_t>(t.info.shape, t.info.shape + t.info.ndim));
        exprs.push_back(t.e);
        sizes.push_back(t.bytes);
        weight_map[t.name] = fname;
      }
      pk.setitems();
    }
    pk.stop();
    archives.push_back(std::make_unique<ArchiveLayout>());
    archives.back()->plan(lb, fname, pk.bytes(), exprs, sizes);
  }
  auto small = [&](const std::string &name, const std::string &content) {
    if (lb->add_small_file(lb, name.c_str(), content.data(), content.size()) != CKH_OK)
      throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_small_file failed", true);
  };
  if (shards.size() > 1) {
    small("pytorch_model.bin.index.json", json{{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}}.dump(2) + "\n");
    written.insert("pytorch_model.bin.index.json");
  }
  ckh::plugins::carry_side_files(lb, meta, written);
}

const ckh_reader_class_t kReader = {sizeof(ckh_reader_class_t), 0, probe, open_reader};
const ckh_writer_class_t kWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<Writer>};
const ckh_component_t kReaderComp = {sizeof(ckh_component_t), CKH_COMPONENT_READER, "torch",
                                     "torch.save files (.pt/.pth, HF pytorch_model.bin, sharded), read without executing pickle",
                                     R"({"container":"torch-zip","layout":"hf","extensions":[".pt",".pth",".bin"]})", &kReader};
const ckh_component_t kWriterComp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "torch",
                                     "HF pytorch_model.bin (torch.load(weights_only=True) in 1.13 and 2.x)",
                                     R"({"container":"torch-zip","layout":"hf","options":[)" CKH_OPT_MAX_SHARD_SIZE "]}", &kWriter};
const ckh_component_t *const kComponents[] = {&kReaderComp, &kWriterComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 2, "org.ckhost.format.torch", "0.1.0",
                              "ckhost", "PyTorch torch.save files", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
