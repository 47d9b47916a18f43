// reader.cpp — DCP directories as catalogs of global tensors.
//
// `.metadata` lists every tensor's global shape and chunks; each chunk is a torch.save archive at a
// recorded offset of a `.distcp` file. The reader checks the chunks (inside the shape, no overlap,
// full coverage), opens every chunk's archive to find where its bytes are (dtype, shape and strides as
// torch wrote them), and exposes each global tensor as pieces pointing into the data files: nothing is
// copied. Megatron-Core torch_dist adds metadata.json, the common state (common.pt or the
// common_state item) with the training args, and layer-stacked keys ("decoder.layers.<param>" with a
// leading layer axis, an expert axis for grouped experts) that become per-layer tensors here.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "text_file.hpp"
#include "dcp.hpp"
#include "dist.hpp"
#include "hf_files.hpp"
#include "megatron_layout.hpp"
#include "torch_load.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using ckh::sdk::fail;
using namespace ckh::torchfmt;
using ckh::plugins::CatPiece;
using ckh::plugins::CatTensor;
using ckh::plugins::Catalog;

namespace ckh::dist {

namespace {

std::string dims_str(const std::vector<int64_t> &v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// Open data files, by relative path.
class Files {
 public:
  explicit Files(fs::path dir) : dir_(std::move(dir)) {}
  ~Files() {
    for (auto &f : open_)
      if (f.fd >= 0) ::close(f.fd);
  }
  // Index of the file in the catalog's list; opens it on first use. `who` names the item for messages.
  uint32_t get(const std::string &rel, const std::string &who, Catalog &cat) {
    auto it = index_.find(rel);
    if (it != index_.end()) return it->second;
    const fs::path p = dir_ / rel;
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
      fail(errno == ENOENT ? CKH_E_NOT_FOUND : CKH_E_IO,
           (dir_ / ".metadata").string() + " names " + p.string() + " (" + who + "), which " +
               (errno == ENOENT ? std::string("does not exist") : std::string("cannot be opened: ") + std::strerror(errno)));
    struct stat st {};
    ::fstat(fd, &st);
    open_.push_back({fd, static_cast<uint64_t>(st.st_size), p.string()});
    const uint32_t id = static_cast<uint32_t>(cat.files.size());
    cat.files.push_back(p.string());
    index_[rel] = id;
    slot_[id] = open_.size() - 1;
    return id;
  }
  uint64_t size(uint32_t id) const { return open_[slot_.at(id)].size; }
  const std::string &path(uint32_t id) const { return open_[slot_.at(id)].path; }
  ReadAt reader(uint32_t id) const {
    return fd_reader(open_[slot_.at(id)].fd);
  }
  // Checks that [off, off + len) lies inside the file.
  void check_range(uint32_t id, uint64_t off, uint64_t len, const std::string &who) const {
    const uint64_t sz = size(id);
    if (off > sz || len > sz - off)
      fail(CKH_E_FORMAT, path(id) + ": truncated: " + who + " needs bytes [" + std::to_string(off) + ", " +
                             std::to_string(off + len) + ") but the file has " + std::to_string(sz) + " bytes");
  }

 private:
  struct F {
    int fd;
    uint64_t size;
    std::string path;
  };
  fs::path dir_;
  std::vector<F> open_;
  std::map<std::string, uint32_t> index_;
  std::map<uint32_t, size_t> slot_;
};

// A located chunk: where its bytes are and how they are laid out.
struct Located {
  const DcpChunk *chunk;
  uint32_t file;
  BlobTensor blob;
};

// A global tensor of the checkpoint with its chunks located.
struct Global {
  const DcpEntry *entry;
  std::vector<Located> chunks;
};

Global locate(const DcpEntry &e, const fs::path &dir, Files &files, Catalog &cat) {
  const std::string meta_path = (dir / ".metadata").string();
  if (e.dtype == CKH_DT_INVALID)
    fail(CKH_E_UNSUPPORTED, meta_path + ": tensor '" + e.fqn + "' has dtype " + e.dtype_name + ", which is not supported");
  try {
    check_dcp_chunks(e);
  } catch (const std::runtime_error &x) {
    fail(CKH_E_FORMAT, meta_path + ": " + x.what());
  }
  Global g{&e, {}};
  for (const auto &c : e.chunks) {
    bool empty = false;
    for (int64_t s : c.sizes) empty = empty || s == 0;
    if (empty) continue;
    const std::string who = "chunk " + dims_str(c.offsets) + " of '" + e.fqn + "'";
    const uint32_t f = files.get(c.where.relative_path, who, cat);
    files.check_range(f, c.where.offset, c.where.length, who);
    BlobTensor b;
    try {
      b = read_tensor_blob(files.reader(f), c.where.offset, c.where.length);
    } catch (const std::runtime_error &x) {
      fail(CKH_E_FORMAT, files.path(f) + " at offset " + std::to_string(c.where.offset) + " (" + who + "): " + x.what());
    }
    if (b.dtype != e.dtype)
      fail(CKH_E_FORMAT, files.path(f) + " (" + who + "): the chunk holds torch." + std::string(torch_dtype_short_name(b.dtype) ? torch_dtype_short_name(b.dtype) : "?") +
                             ", .metadata says " + e.dtype_name);
    if (b.size != c.sizes)
      fail(CKH_E_FORMAT, files.path(f) + " (" + who + "): the chunk holds a tensor of shape " + dims_str(b.size) +
                             ", .metadata says " + dims_str(c.sizes));
    g.chunks.push_back({&c, f, b});
  }
  return g;
}

// The sub-tensor of `g` at fixed indices `idx` of its leading axes, as a catalog tensor.
CatTensor slice_leading(const Global &g, const std::vector<int64_t> &idx, const std::string &name) {
  const DcpEntry &e = *g.entry;
  const size_t k = idx.size();
  CatTensor t;
  t.name = name;
  t.dtype = e.dtype;
  t.shape.assign(e.size.begin() + static_cast<long>(k), e.size.end());
  const uint64_t es = ckh_dtype_size(e.dtype);
  for (const auto &l : g.chunks) {
    const DcpChunk &c = *l.chunk;
    bool in = true;
    uint64_t extra = 0;
    for (size_t d = 0; d < k && in; ++d) {
      in = c.offsets[d] <= idx[d] && idx[d] < c.offsets[d] + c.sizes[d];
      if (in) extra += static_cast<uint64_t>((idx[d] - c.offsets[d]) * l.blob.stride[d]) * es;
    }
    if (!in) continue;
    CatPiece p;
    p.file = l.file;
    p.byte_offset = l.blob.byte_offset + extra;
    p.offset.assign(c.offsets.begin() + static_cast<long>(k), c.offsets.end());
    p.size.assign(c.sizes.begin() + static_cast<long>(k), c.sizes.end());
    p.stride.assign(l.blob.stride.begin() + static_cast<long>(k), l.blob.stride.end());
    t.pieces.push_back(std::move(p));
  }
  return t;
}

DcpMetadata load_metadata(const fs::path &dir) {
  const fs::path mp = dir / ".metadata";
  std::error_code ec;
  if (!fs::is_regular_file(mp, ec)) fail(CKH_E_NOT_FOUND, dir.string() + ": no .metadata file (not a DCP checkpoint)");
  const uint64_t size = fs::file_size(mp, ec);
  if (ec || size > (1ull << 30)) fail(CKH_E_FORMAT, mp.string() + ": unreadable or larger than 1 GiB");
  std::vector<uint8_t> buf(size);
  std::ifstream in(mp, std::ios::binary);
  if (!in.read(reinterpret_cast<char *>(buf.data()), static_cast<std::streamsize>(size)))
    fail(CKH_E_IO, mp.string() + ": cannot read");
  try {
    return parse_dcp_metadata(buf.data(), buf.size());
  } catch (const std::runtime_error &x) {
    fail(CKH_E_FORMAT, mp.string() + ": " + x.what());
  }
}

// Megatron's non-sharded state: args, iteration, checkpoint_version.
json megatron_common(const fs::path &dir, const DcpMetadata &m, Files &files, Catalog &cat) {
  std::unique_ptr<Pickled> pk;
  std::string where;
  auto parse_archive = [&](const ReadAt &rd, uint64_t base, uint64_t len) {
    const std::vector<ZipEntry> entries = read_zip(rd, base, len);
    const ZipEntry *pkl = nullptr;
    for (const auto &z : entries)
      if (z.name.size() >= 8 && z.name.compare(z.name.size() - 8, 8, "data.pkl") == 0) pkl = &z;
    if (!pkl) throw std::runtime_error("no data.pkl record (not a torch.save file)");
    if (pkl->method != 0 || pkl->size > (256u << 20)) throw std::runtime_error("data.pkl is compressed or too large");
    std::vector<uint8_t> buf(pkl->size);
    if (!rd(pkl->data_offset, pkl->size, buf.data())) throw std::runtime_error("cannot read data.pkl");
    pk = unpickle(buf.data(), buf.size());
  };
  const fs::path common = dir / "common.pt";
  std::error_code ec;
  try {
    if (fs::exists(common, ec)) {
      where = common.string();
      const uint32_t f = files.get("common.pt", "common state", cat);
      parse_archive(files.reader(f), 0, files.size(f));
    } else {
      const DcpEntry *item = nullptr;
      for (const auto &e : m.entries)
        if (e.is_bytes && e.fqn.rfind("common_state/", 0) == 0) item = &e;
      if (!item)
        fail(CKH_E_FORMAT, dir.string() + ": no common.pt and no common_state item: the Megatron args are missing");
      const uint32_t f = files.get(item->bytes.relative_path, "item '" + item->fqn + "'", cat);
      where = files.path(f) + " (item '" + item->fqn + "')";
      files.check_range(f, item->bytes.offset, item->bytes.length, "item '" + item->fqn + "'");
      parse_archive(files.reader(f), item->bytes.offset, item->bytes.length);
    }
  } catch (const std::runtime_error &x) {
    fail(CKH_E_FORMAT, where + ": " + x.what());
  }
  VP top = pk->root;
  // A bytes item is torch.save(value) of what the planner got; Megatron hands DCP its ShardedObjects
  // as io.BytesIO holding torch.save(data), so the value may be one more archive, in memory.
  std::vector<std::unique_ptr<Pickled>> keep;
  for (int depth = 0; depth < 2 && top->kind == Kind::Object && top->cls == "_io.BytesIO"; ++depth) {
    const VP st = top->state;
    if (!st || st->kind != Kind::Tuple || st->items.empty() || st->items[0]->kind != Kind::Bytes)
      fail(CKH_E_FORMAT, where + ": the common state is an io.BytesIO without content");
    const std::string inner = st->items[0]->s;
    keep.push_back(std::move(pk));
    try {
      parse_archive(
          [&inner](uint64_t off, uint64_t len, void *dst) {
            if (off > inner.size() || len > inner.size() - off) return false;
            std::memcpy(dst, inner.data() + off, len);
            return true;
          },
          0, inner.size());
    } catch (const std::runtime_error &x) {
      fail(CKH_E_FORMAT, where + ": inner torch.save archive: " + x.what());
    }
    top = pk->root;
  }
  // The common_state item holds [state_dict] (a ShardedObject's local objects).
  if (top->kind == Kind::List && top->items.size() == 1) top = top->items[0];
  if (top->kind != Kind::Dict) fail(CKH_E_FORMAT, where + ": the common state is not a dict");
  json out = json::object();
  for (const auto &[k, v] : top->entries) {
    if (k->kind != Kind::Str) continue;
    if (k->s == "args" || k->s == "iteration" || k->s == "checkpoint_version" ||
        k->s == "num_floating_point_operations_so_far")
      out[k->s] = to_json(v);
  }
  if (!out.contains("args") || !out["args"].is_object()) fail(CKH_E_FORMAT, where + ": no args Namespace in the common state");
  return out;
}

bool is_digits(const std::string &s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos && s.size() < 10;
}

// Why a Megatron key is not read as a model weight, or "".
std::string skip_reason(const DcpEntry &e) {
  const std::string &k = e.fqn;
  if (k.rfind("optimizer", 0) == 0 || k.rfind("chained_", 0) == 0) return "optimizer state";
  if (k.rfind("rng_state", 0) == 0) return "RNG state";
  if (k.find("_extra_state") != std::string::npos) return "Transformer Engine extra state";
  if (k.rfind("common_state/", 0) == 0) return "";
  if (e.is_bytes) return "not a tensor";
  return "";
}

}  // namespace

namespace {
// The iteration directory the tracker file at `p` names ("release" or iter_NNNNNNN), or "" without one.
fs::path tracked_dir(const fs::path &p) {
  std::error_code ec;
  if (!fs::exists(p / "latest_checkpointed_iteration.txt", ec)) return {};
  const std::string t = ckh::plugins::read_text(p / "latest_checkpointed_iteration.txt");
  if (t == "release") return p / "release";
  if (is_digits(t)) return p / ckh::megatron::iteration_dir(std::stoll(t), false);
  return {};
}
}  // namespace

std::string megatron_dist_dir(const std::string &path) {
  std::error_code ec;
  const fs::path p(path);
  if (fs::exists(p / "metadata.json", ec) && fs::exists(p / ".metadata", ec)) return p.string();
  const fs::path iter = tracked_dir(p);
  return !iter.empty() && fs::exists(iter / "metadata.json", ec) ? iter.string() : "";
}

std::string mindspeed_dcp_dir(const std::string &path) {
  std::error_code ec;
  const fs::path iter = tracked_dir(fs::path(path));
  return !iter.empty() && fs::is_regular_file(iter / ".metadata", ec) && !fs::exists(iter / "metadata.json", ec) ? iter.string() : "";
}

void open_dist(const std::string &path0, const json &options, Flavor flavor, Catalog &cat) {
  std::error_code ec;
  fs::path root = fs::absolute(path0, ec), dir = root;
  json meta = json::object();
  json skipped = json::array();
  std::set<std::string> skipped_seen;
  auto skip = [&](const std::string &name, const std::string &why) {
    if (skipped_seen.insert(why + "\n" + name).second) skipped.push_back({{"name", name}, {"reason", why}});
  };

  json common;
  bool ms_layout = false;
  if (flavor == Flavor::Plain) {
    const std::string ms = mindspeed_dcp_dir(root.string());
    if (!ms.empty()) {
      dir = ms;
      ms_layout = true;
    }
  }
  if (flavor == Flavor::Megatron) {
    if (fs::exists(root / "latest_checkpointed_iteration.txt", ec)) {
      const std::string t = ckh::plugins::read_text(root / "latest_checkpointed_iteration.txt");
      if (t == "release") dir = root / "release";
      else if (is_digits(t)) dir = root / ckh::megatron::iteration_dir(std::stoll(t), false);
      else
        fail(CKH_E_FORMAT, (root / "latest_checkpointed_iteration.txt").string() + ": '" + t.substr(0, 32) +
                               "' is neither an iteration nor 'release'");
      if (!fs::is_directory(dir, ec))
        fail(CKH_E_FORMAT, (root / "latest_checkpointed_iteration.txt").string() + " names " +
                               dir.filename().string() + ", which does not exist");
    } else {
      root = root.parent_path();
    }
    const fs::path mj = dir / "metadata.json";
    if (!fs::exists(mj, ec)) fail(CKH_E_NOT_FOUND, dir.string() + ": no metadata.json (not a Megatron distributed checkpoint)");
    std::ifstream in(mj);
    const json cfg = json::parse(in, nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) fail(CKH_E_FORMAT, mj.string() + ": not a JSON object");
    const std::string backend = cfg.value("sharded_backend", std::string());
    if (backend != "torch_dist")
      fail(CKH_E_UNSUPPORTED, mj.string() + ": sharded_backend '" + backend + "' is not supported (only torch_dist)");
  }

  const DcpMetadata m = load_metadata(dir);
  if (m.has_mcore_data && m.mcore_data.is_object())
    for (auto it = m.mcore_data.begin(); it != m.mcore_data.end(); ++it)
      if (it.value().is_object() && it.value().contains("nd_reformulated_orig_global_shape") &&
          it.key().rfind("optimizer", 0) != 0 && it.key().rfind("chained_", 0) != 0)
        fail(CKH_E_UNSUPPORTED, (dir / ".metadata").string() + ": tensor '" + it.key() +
                                    "' is stored flattened (distributed-optimizer reformulation), which is not supported");
  Files files(dir);

  if (flavor == Flavor::Plain) {
    // Keys: strip --dcp-prefix, or the one top-level key every flattened path starts with; MindSpeed-MM's FSDP2
    // layout nests the HF names as {"model": {"model." + name}}.
    std::string prefix = options.value("dcp_prefix", std::string(ms_layout ? "model.model." : ""));
    if (!options.contains("dcp_prefix") && !ms_layout && m.planner_data.is_object() && !m.planner_data.empty()) {
      std::string first;
      bool same = true;
      for (auto it = m.planner_data.begin(); it != m.planner_data.end() && same; ++it) {
        const json &p = it.value();
        if (!p.is_array() || p.size() != 2 || !p[0].is_string()) {
          same = false;
          break;
        }
        if (first.empty()) first = p[0].get<std::string>();
        same = p[0].get<std::string>() == first;
      }
      if (same && !first.empty()) prefix = first + ".";
    }
    for (const auto &e : m.entries) {
      if (e.is_bytes) {
        skip(e.fqn, "not a tensor");
        continue;
      }
      if (!prefix.empty() && e.fqn.rfind(prefix, 0) != 0) {
        skip(e.fqn, "outside the prefix '" + prefix + "'");
        continue;
      }
      const Global g = locate(e, dir, files, cat);
      cat.tensors.push_back(slice_leading(g, {}, e.fqn.substr(prefix.size())));
    }
    meta["format"] = "dcp";
    meta["layout"] = "hf";
    meta["dcp_prefix"] = prefix;
    if (ms_layout) meta["dcp_layout"] = "mindspeed";
    ckh::plugins::add_hf_side(meta, options, ms_layout ? root : dir);
    meta["skipped"] = skipped;
    cat.meta = meta.dump();
    return;
  }

  // Megatron-Core torch_dist.
  common = megatron_common(dir, m, files, cat);
  const json args = common["args"];
  const int64_t num_layers = args.value("num_layers", json()).is_number_integer() ? args["num_layers"].get<int64_t>() : -1;
  const int64_t vocab = args.value("vocab_size", json()).is_number_integer() ? args["vocab_size"].get<int64_t>() : -1;
  const bool swiglu = args.value("swiglu", true);
  const std::string stack = "decoder.layers.";
  for (const auto &e : m.entries) {
    const std::string why = skip_reason(e);
    if (!why.empty()) {
      skip(e.fqn.substr(0, e.fqn.find('/')), why);
      continue;
    }
    if (e.is_bytes) continue;  // the common state, read above
    const Global g = locate(e, dir, files, cat);
    // Names: stacked layers ("decoder.layers.<param>", leading layer axis) or per-layer keys.
    std::vector<std::pair<std::vector<int64_t>, std::string>> outs;  // leading indices, per-tensor name
    // MTP layers ("mtp.layers.<k>.…") are keyed per layer, their experts with an expert axis too.
    const bool mtp = e.fqn.rfind("mtp.layers.", 0) == 0;
    if (e.fqn.rfind(stack, 0) == 0 || mtp) {
      std::string rest = mtp ? std::string() : e.fqn.substr(stack.size());
      const std::string first = rest.substr(0, rest.find('.'));
      std::vector<std::pair<std::vector<int64_t>, std::string>> layers;
      if (mtp || is_digits(first)) {
        layers.push_back({{}, e.fqn});
      } else {
        if (e.size.empty()) fail(CKH_E_FORMAT, (dir / ".metadata").string() + ": stacked tensor '" + e.fqn + "' has no layer axis");
        if (num_layers > 0 && e.size[0] != num_layers)
          fail(CKH_E_FORMAT, (dir / ".metadata").string() + ": stacked tensor '" + e.fqn + "' has " +
                                 std::to_string(e.size[0]) + " layers, args.num_layers is " + std::to_string(num_layers));
        for (int64_t l = 0; l < e.size[0]; ++l) layers.push_back({{l}, stack + std::to_string(l) + "." + rest});
      }
      // Experts ("mlp.experts.experts.linear_fc1.weight" with an expert axis) become local_experts.<e>.
      const std::string ex = ".mlp.experts.";
      for (auto &[idx, name] : layers) {
        const size_t at = name.find(ex);
        auto is_weight = [](const std::string &n) { return n.size() >= 7 && n.compare(n.size() - 7, 7, ".weight") == 0; };
        // Weights and the block scales of FP8 weights are matrices, biases vectors.
        const size_t param_dims = is_weight(name) || is_weight(ckh::megatron::codes_of_scale(name)) ? 2 : 1;
        const size_t have = e.size.size() - idx.size();
        std::string after = at == std::string::npos ? "" : name.substr(at + ex.size());
        // Megatron-Core 0.16 keys: "mlp.experts.experts.linear_fc1.weight" (SequentialMLP and TEGroupedMLP
        // both prefix the expert module's "experts."); older notes drop the second "experts.".
        if (after.rfind("experts.", 0) == 0) after = after.substr(8);
        if (at != std::string::npos && have == param_dims + 1 && after.rfind("local_experts.", 0) != 0) {
          for (int64_t x = 0; x < e.size[idx.size()]; ++x) {
            std::vector<int64_t> i2 = idx;
            i2.push_back(x);
            outs.push_back({i2, name.substr(0, at + ex.size()) + "local_experts." + std::to_string(x) + "." + after});
          }
        } else {
          outs.push_back({idx, name});
        }
      }
    } else {
      outs.push_back({{}, e.fqn});
    }
    for (const auto &[idx, name] : outs) {
      CatTensor t = slice_leading(g, idx, name);
      // Vocabulary padding belongs to the TP layout: expose the true vocabulary when args know it.
      if (ckh::megatron::split_of(name, swiglu) == ckh::megatron::Split::Vocab && vocab > 0)
        ckh::plugins::clip_rows(t, vocab);
      cat.tensors.push_back(std::move(t));
    }
  }
  meta["format"] = "torch-dist";
  meta["layout"] = "megatron";
  meta["args"] = args;
  meta["iteration"] = common.value("iteration", json(0));
  meta["skipped"] = skipped;
  ckh::plugins::add_hf_side(meta, options, root / "hf");
  cat.meta = meta.dump();
}

}  // namespace ckh::dist
