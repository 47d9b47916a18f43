// reader.cpp — the legacy Megatron per-rank layout as one catalog of global Megatron-Core tensors.
//
// Every rank file is parsed (zip + symbolic pickle, nothing executed). A global tensor is the union of
// its TP shards, expressed as pieces that point into the rank files: column/vocab shards stack along
// dim 0, row shards along dim 1, a SwiGLU shard [gate_r; up_r] contributes two pieces (rows r of the
// gate half and of the up half), replicated tensors come from TP rank 0. Layer numbers become global
// (pipeline stage and virtual chunk offsets). Optimizer and RNG state are skipped and reported.
#include "text_file.hpp"
#include "reader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "hf_files.hpp"
#include "megatron_layout.hpp"
#include "torch_load.hpp"

namespace fs = std::filesystem;
using nlohmann::json;
using ckh::sdk::fail;
using namespace ckh::megatron;
using namespace ckh::torchfmt;

namespace ckh::megatron {

namespace {

struct Shard {  // one rank's tensor
  uint32_t file;
  uint64_t byte_offset;
  std::vector<int64_t> size, stride;
  ckh_dtype dtype;
};

struct RankData {
  int tp = 0, pp = 0, ep = 0;
  std::string path;
  json args;
  std::vector<std::map<std::string, Shard>> chunks;  // per virtual chunk: local name -> tensor
};

// Flattens nested dicts of a state dict into dotted names (legacy models nest by module).
void flatten(const VP &v, const std::string &prefix, std::vector<std::pair<std::string, VP>> &out, int depth) {
  if (depth > 16) fail(CKH_E_FORMAT, "state dict nests deeper than 16 levels");
  if (v->kind == Kind::Dict) {
    for (const auto &e : v->entries) {
      if (e.first->kind != Kind::Str) continue;
      flatten(e.second, prefix.empty() ? e.first->s : prefix + "." + e.first->s, out, depth + 1);
    }
    return;
  }
  out.emplace_back(prefix, v);
}

// The legacy GroupedMLP (Megatron-Core experts.py GroupedMLP, --moe-grouped-gemm with
// --moe-use-legacy-grouped-gemm) keeps a rank's experts packed: "<p>mlp.experts.weight1" [h, E_l * F1]
// whose memory is E_l blocks [h, F1], each the transpose of that expert's fc1 shard [F1, h] (F1 = 2F/ETP
// gated: the rank's [gate_r; up_r]), and "<p>mlp.experts.weight2" [E_l * F2, h], E_l blocks [F2, h], each
// the transpose of fc2's shard [h, F2] (GroupedMLP.forward views them as [E_l, h, F1] and [E_l, F2, h]).
// Each block becomes "<p>mlp.experts.local_experts.<l>.linear_fc{1,2}.weight" as a strided view of the
// same bytes. Returns false for any other tensor.
bool split_grouped_mlp(const std::string &path, const std::string &name, const Shard &w, const json &args,
                       std::map<std::string, Shard> &out) {
  const std::string w1 = "mlp.experts.weight1", w2 = "mlp.experts.weight2";
  const bool one = name.size() > w1.size() && name.compare(name.size() - w1.size(), w1.size(), w1) == 0;
  const bool two = name.size() > w2.size() && name.compare(name.size() - w2.size(), w2.size(), w2) == 0;
  if (!one && !two) return false;
  const int64_t experts = args.value("num_experts", json()).is_number_integer() ? args["num_experts"].get<int64_t>() : 0;
  const int64_t ep = args.value("expert_model_parallel_size", 1);
  if (experts <= 0 || ep < 1 || experts % ep != 0)
    fail(CKH_E_FORMAT, path + ": tensor '" + name + "' is a GroupedMLP expert pack but args.num_experts / "
                                                    "expert_model_parallel_size do not give the experts per rank");
  const int64_t el = experts / ep;
  if (w.size.size() != 2 || w.stride.size() != 2 || w.stride[1] != 1 || w.stride[0] != w.size[1])
    fail(CKH_E_FORMAT, path + ": tensor '" + name + "': a GroupedMLP expert pack must be a contiguous 2-D tensor");
  const int64_t packed = one ? w.size[1] : w.size[0];
  if (packed % el != 0)
    fail(CKH_E_FORMAT, path + ": tensor '" + name + "': " + std::to_string(packed) + " packed rows/columns do not divide into " +
                           std::to_string(el) + " local experts");
  const int64_t h = one ? w.size[0] : w.size[1], f = packed / el;
  const std::string prefix = name.substr(0, name.size() - std::string("weight1").size());  // "...mlp.experts."
  const uint64_t block = static_cast<uint64_t>(h) * static_cast<uint64_t>(f) * ckh_dtype_size(w.dtype);
  for (int64_t l = 0; l < el; ++l) {
    Shard x = w;
    x.byte_offset = w.byte_offset + static_cast<uint64_t>(l) * block;
    // fc1 shard [F1, h]: element (r, i) at block + i*F1 + r; fc2 shard [h, F2]: element (i, r) at block + r*h + i.
    x.size = one ? std::vector<int64_t>{f, h} : std::vector<int64_t>{h, f};
    x.stride = one ? std::vector<int64_t>{1, f} : std::vector<int64_t>{1, h};
    out[prefix + "local_experts." + std::to_string(l) + (one ? ".linear_fc1.weight" : ".linear_fc2.weight")] = x;
  }
  return true;
}

}  // namespace

void open_megatron(const std::string &path0, const json &options, Catalog &cat, Gating *gating) {
  std::error_code ec;
  fs::path root = fs::absolute(path0, ec), iter;
  if (fs::exists(root / "latest_checkpointed_iteration.txt", ec)) {
    const std::string t = ckh::plugins::read_text(root / "latest_checkpointed_iteration.txt");
    if (t == "release") iter = root / "release";
    else {
      try {
        iter = root / iteration_dir(std::stoll(t), false);
      } catch (...) {
        fail(CKH_E_FORMAT, (root / "latest_checkpointed_iteration.txt").string() + ": '" + t.substr(0, 32) +
                               "' is neither an iteration nor 'release'");
      }
    }
    if (!fs::is_directory(iter, ec))
      fail(CKH_E_FORMAT, (root / "latest_checkpointed_iteration.txt").string() + " names " + iter.filename().string() +
                             ", which does not exist");
  } else {
    iter = root;
    root = root.parent_path();
  }
  std::vector<std::string> rank_dirs;
  for (fs::directory_iterator it(iter, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_directory() && it->path().filename().string().rfind("mp_rank_", 0) == 0)
      rank_dirs.push_back(it->path().filename().string());
  std::sort(rank_dirs.begin(), rank_dirs.end());
  if (rank_dirs.empty()) fail(CKH_E_NOT_FOUND, iter.string() + ": no mp_rank_* directories");

  std::vector<RankData> ranks;
  bool mindspeed_mm = false;  // MindSpeed-MM files: no args, towers (image_encoder.*, text_decoder.*) with their own layers
  json skipped = json::array();
  std::set<std::string> skipped_keys;
  std::optional<bool> mm_second_is_ep;  // MindSpeed-MM: whether mp_rank_TT_NNN names an EP rank (else a stage)
  int64_t mm_local_experts = 0;
  for (const auto &rd : rank_dirs) {
    RankData r;
    r.path = (iter / rd / "model_optim_rng.pt").string();
    const int fd = ::open(r.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(CKH_E_IO, r.path + ": cannot open: " + std::strerror(errno));
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    ::fstat(fd, &st);
    const uint64_t fsize = static_cast<uint64_t>(st.st_size);
    ReadAt rd_at = fd_reader(fd);
    std::vector<ZipEntry> entries;
    std::unique_ptr<Pickled> pickled;
    VP top;
    std::map<std::string, const ZipEntry *> by_name;
    try {
      entries = read_zip(rd_at, 0, fsize);
      const ZipEntry *pkl = nullptr;
      for (const auto &e : entries) {
        const auto slash = e.name.find('/');
        by_name[slash == std::string::npos ? e.name : e.name.substr(slash + 1)] = &e;
        if (e.name.size() >= 8 && e.name.compare(e.name.size() - 8, 8, "data.pkl") == 0) pkl = &e;
      }
      if (!pkl) fail(CKH_E_FORMAT, r.path + ": no data.pkl record (not a torch.save file)");
      if (pkl->method != 0) fail(CKH_E_UNSUPPORTED, r.path + ": compressed data.pkl is not supported");
      if (pkl->size > (1ull << 30)) fail(CKH_E_FORMAT, r.path + ": data.pkl of " + std::to_string(pkl->size) + " bytes");
      std::vector<uint8_t> buf(pkl->size);
      if (!rd_at(pkl->data_offset, pkl->size, buf.data())) fail(CKH_E_IO, r.path + ": cannot read data.pkl");
      pickled = unpickle(buf.data(), buf.size());
      top = pickled->root;
    } catch (const std::runtime_error &e) {
      fail(CKH_E_FORMAT, r.path + ": " + e.what());
    }
    if (top->kind != Kind::Dict) fail(CKH_E_FORMAT, r.path + ": the top-level object is not a dict");
    std::map<std::string, VP> chunks;
    for (const auto &e : top->entries) {
      if (e.first->kind != Kind::Str) continue;
      const std::string &k = e.first->s;
      if (k == "args") r.args = to_json(e.second);
      else if (k == "model" || (k.rfind("model", 0) == 0 && k.size() > 5 && std::isdigit(static_cast<unsigned char>(k[5]))))
        chunks[k] = e.second;
      else if (skipped_keys.insert(k).second)
        skipped.push_back({{"name", k}, {"reason", k == "optimizer" || k == "opt_param_scheduler" ? "optimizer state"
                                                   : k == "rng_state" ? "RNG state" : "not model weights"}});
    }
    if (!r.args.is_object()) {
      // MindSpeed-MM's hf_to_mm files hold no args: say so rather than guess its layout.
      bool mm = mindspeed_mm;  // the first rank file (stage 0) decided it for the checkpoint
      for (const auto &[k, v] : chunks)
        if (v && v->kind == Kind::Dict)
          for (const auto &e : v->entries)
            mm = mm || (e.first->kind == Kind::Str && (e.first->s.rfind("image_encoder.", 0) == 0 || e.first->s.rfind("text_decoder.", 0) == 0 ||
                                                      e.first->s.rfind("blocks.", 0) == 0 || e.first->s.rfind("patch_embedding.", 0) == 0));
      if (!mm) fail(CKH_E_FORMAT, r.path + ": no args Namespace (not a Megatron checkpoint?)");
      // The layout then comes from the directory names (mp_rank_TT[_PPP]; MindSpeed-MM adds _PPP only with
      // PP > 1) and the files themselves (layers per stage and tower, counted below).
      // MindSpeed-MM appends _PPP only with PP > 1 and _EEE only with EP > 1, so mp_rank_TT_NNN is either. The
      // first file (TP 0, first stage) tells: one that holds the decoder's final norm is the only stage, and NNN is
      // then an EP rank. Local experts per EP rank are counted from that file.
      if (!mm_second_is_ep) {
        bool last_stage_too = false;
        int64_t local_experts = 0;
        for (const auto &[k, v] : chunks)
          if (v && v->kind == Kind::Dict)
            for (const auto &e : v->entries) {
              if (e.first->kind != Kind::Str) continue;
              const std::string &n = e.first->s;
              last_stage_too = last_stage_too || n == "text_decoder.decoder.final_layernorm.weight";
              if (const auto en = parse_expert_name(n)) local_experts = std::max<int64_t>(local_experts, en->expert + 1);
            }
        mm_second_is_ep = last_stage_too;
        mm_local_experts = local_experts;
      }
      int tp_n = 0, pp_n = 0, ep_n = 0;
      bool with_pp = false, with_ep = false;
      for (const auto &d : rank_dirs) {
        std::vector<int> parts;
        std::stringstream ss(d.substr(8));
        for (std::string x; std::getline(ss, x, '_');) {
          if (x.empty() || x.size() > 3 || x.find_first_not_of("0123456789") != std::string::npos)
            fail(CKH_E_FORMAT, (iter / d).string() + ": not a MindSpeed-MM rank directory (mp_rank_TT[_PPP][_EEE])");
          parts.push_back(std::stoi(x));
        }
        if (parts.size() > 3) fail(CKH_E_FORMAT, (iter / d).string() + ": not a MindSpeed-MM rank directory (mp_rank_TT[_PPP][_EEE])");
        with_pp = parts.size() == 3 || (parts.size() == 2 && !*mm_second_is_ep);
        with_ep = parts.size() == 3 || (parts.size() == 2 && *mm_second_is_ep);
        tp_n = std::max(tp_n, parts[0] + 1);
        if (with_pp) pp_n = std::max(pp_n, parts[1] + 1);
        if (with_ep) ep_n = std::max(ep_n, parts.back() + 1);
      }
      mindspeed_mm = true;
      r.args = {{"tensor_model_parallel_size", tp_n}, {"pipeline_model_parallel_size", with_pp ? pp_n : 1}};
      if (with_ep) {
        if (mm_local_experts <= 0)
          fail(CKH_E_FORMAT, (iter / rank_dirs.front()).string() + ": expert-parallel rank directories, but the first rank file holds no "
                                                                   "mlp.experts.local_experts.<e> tensors");
        r.args["expert_model_parallel_size"] = ep_n;
        r.args["num_experts"] = mm_local_experts * ep_n;
      } else if (mm_local_experts > 0) {
        r.args["num_experts"] = mm_local_experts;
      }
    }
    const int tp = r.args.value("tensor_model_parallel_size", 1), pp = r.args.value("pipeline_model_parallel_size", 1);
    const int ep = r.args.value("expert_model_parallel_size", 1);
    auto id = parse_rank_dir(rd, pp, ep);
    if (!id) fail(CKH_E_FORMAT, r.path + ": directory name " + rd + " does not fit TP " + std::to_string(tp) + " x PP " +
                                    std::to_string(pp) + " x EP " + std::to_string(ep) + " from its args");
    r.tp = id->tp;
    r.pp = id->pp;
    r.ep = id->ep;
    if (r.tp >= tp || r.pp >= pp || r.ep >= ep)
      fail(CKH_E_FORMAT, r.path + ": rank " + rd + " is outside TP " + std::to_string(tp) + " x PP " + std::to_string(pp) +
                             " x EP " + std::to_string(ep));
    const size_t nchunks = chunks.count("model") ? 1 : chunks.size();
    r.chunks.resize(nchunks);
    const uint32_t file = static_cast<uint32_t>(cat.files.size());
    cat.files.push_back(r.path);
    size_t ci = 0;
    for (auto &[key, sd] : chunks) {
      const size_t v = key == "model" ? 0 : static_cast<size_t>(std::stoul(key.substr(5)));
      if (v >= nchunks) fail(CKH_E_FORMAT, r.path + ": model chunk " + key + " without its predecessors");
      std::vector<std::pair<std::string, VP>> flat;
      flatten(sd, "", flat, 0);
      for (const auto &[name, val] : flat) {
        if (name.find("_extra_state") != std::string::npos) {
          if (skipped_keys.insert("_extra_state").second)
            skipped.push_back({{"name", "*._extra_state"}, {"reason", "Transformer Engine FP8 metadata"}});
          continue;
        }
        if (val->kind != Kind::Tensor) {
          if (skipped_keys.insert(name).second) skipped.push_back({{"name", name}, {"reason", "not a tensor"}});
          continue;
        }
        const TensorRef &t = *val->tensor;
        auto rec = by_name.find("data/" + t.storage_key);
        if (rec == by_name.end())
          fail(CKH_E_FORMAT, r.path + ": tensor '" + name + "' names storage " + t.storage_key + ", which has no record");
        if (rec->second->method != 0) fail(CKH_E_UNSUPPORTED, r.path + ": compressed storage records are not supported");
        const uint64_t es = ckh_dtype_size(t.dtype);
        if (static_cast<uint64_t>(t.storage_numel) * es > rec->second->size)
          fail(CKH_E_FORMAT, r.path + ": tensor '" + name + "': storage of " + std::to_string(t.storage_numel) +
                                 " elements needs " + std::to_string(t.storage_numel * es) + " bytes, record has " +
                                 std::to_string(rec->second->size));
        int64_t extent = t.offset, numel = 1;
        for (size_t d = 0; d < t.size.size(); ++d) {
          if (t.size[d] < 0 || t.stride[d] < 0) fail(CKH_E_FORMAT, r.path + ": tensor '" + name + "': negative size or stride");
          numel *= t.size[d];
          if (t.size[d] > 0) extent += (t.size[d] - 1) * t.stride[d];
        }
        if (numel > 0 && (t.offset < 0 || extent >= t.storage_numel))
          fail(CKH_E_FORMAT, r.path + ": tensor '" + name + "' reaches element " + std::to_string(extent) +
                                 " of a storage with " + std::to_string(t.storage_numel));
        const Shard whole{file, rec->second->data_offset + static_cast<uint64_t>(t.offset) * es, t.size, t.stride, t.dtype};
        if (split_grouped_mlp(r.path, name, whole, r.args, r.chunks[v])) continue;
        r.chunks[v][name] = whole;
      }
      ++ci;
    }
    ranks.push_back(std::move(r));
  }

  // Consistency between files and with args.
  const json &a0 = ranks[0].args;
  const int TP = a0.value("tensor_model_parallel_size", 1), PP = a0.value("pipeline_model_parallel_size", 1);
  const int EP = a0.value("expert_model_parallel_size", 1);
  const int ETP = a0.contains("expert_tensor_parallel_size") && a0["expert_tensor_parallel_size"].is_number_integer()
                      ? a0["expert_tensor_parallel_size"].get<int>()
                      : TP;
  if (ETP < 1 || TP % ETP != 0)
    fail(CKH_E_UNSUPPORTED, ranks[0].path + ": args.expert_tensor_parallel_size " + std::to_string(ETP) +
                                " does not divide the TP size " + std::to_string(TP) + " (a per-rank layout this reader does not know)");
  const int64_t num_experts = a0.contains("num_experts") && a0["num_experts"].is_number_integer() ? a0["num_experts"].get<int64_t>() : 0;
  ExpertParallel epl;
  if (num_experts > 0) {
    try {
      epl = make_expert_parallel(num_experts, EP);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_FORMAT, ranks[0].path + ": args: " + e.what());
    }
  } else if (EP > 1) {
    fail(CKH_E_FORMAT, ranks[0].path + ": args.expert_model_parallel_size is " + std::to_string(EP) + " but args.num_experts is not set");
  }
  for (const auto &r : ranks)
    for (const char *k : {"num_layers", "hidden_size", "num_attention_heads", "tensor_model_parallel_size",
                          "pipeline_model_parallel_size", "expert_model_parallel_size", "expert_tensor_parallel_size",
                          "num_experts", "padded_vocab_size"})
      if (r.args.value(k, json()) != a0.value(k, json()))
        fail(CKH_E_FORMAT, r.path + ": args." + k + " = " + r.args.value(k, json()).dump() + " but " + ranks[0].path +
                               " has " + a0.value(k, json()).dump());
  if (ranks.size() != static_cast<size_t>(TP * PP * EP)) {
    std::set<std::tuple<int, int, int>> have;
    for (const auto &r : ranks) have.insert({r.tp, r.pp, r.ep});
    for (int p = 0; p < PP; ++p)
      for (int e = 0; e < EP; ++e)
        for (int t = 0; t < TP; ++t)
          if (!have.count({t, p, e}))
            fail(CKH_E_FORMAT, iter.string() + ": missing rank directory " + rank_dir(t, p, e, PP, EP) + " (args say TP " +
                                   std::to_string(TP) + " x PP " + std::to_string(PP) + " x EP " + std::to_string(EP) + ")");
  }
  if (a0.contains("ckhost_stack_pp_layers"))
    fail(CKH_E_UNSUPPORTED, iter.string() + ": the rank files hold towers beside the decoder with their own pipeline "
                                            "layers (args.ckhost_stack_pp_layers = " + a0["ckhost_stack_pp_layers"].dump() +
                                            "); reading per-stack pipelines back is not supported yet");
  // Layers per virtual stage, from the files of TP rank 0.
  const size_t V = ranks[0].chunks.size();
  std::vector<int64_t> counts(V * static_cast<size_t>(PP), 0);
  for (const auto &r : ranks) {
    if (r.chunks.size() != V) fail(CKH_E_FORMAT, r.path + ": " + std::to_string(r.chunks.size()) + " model chunks, " +
                                                     ranks[0].path + " has " + std::to_string(V));
    for (size_t v = 0; v < V; ++v) {
      std::set<int64_t> layers;
      for (const auto &kv : r.chunks[v])
        if (auto ln = parse_layer_name(kv.first)) layers.insert(ln->layer);
      const int64_t n = layers.empty() ? 0 : *layers.rbegin() + 1;
      int64_t &c = counts[v * static_cast<size_t>(PP) + static_cast<size_t>(r.pp)];
      if (r.tp == 0 && r.ep == 0) c = n;
    }
  }
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  if (a0.contains("num_layers") && a0["num_layers"].is_number_integer() && total != a0["num_layers"].get<int64_t>())
    fail(CKH_E_FORMAT, iter.string() + ": the rank files hold " + std::to_string(total) + " layers, args.num_layers is " +
                           a0["num_layers"].dump());
  Pipeline stages;
  stages.pp = PP;
  stages.vpp = static_cast<int>(V);
  stages.counts = counts;
  // MindSpeed-MM: every tower ("<prefix>layers.<L>.", e.g. text_decoder.decoder.layers. and
  // image_encoder.encoder.blocks.layers.) has its own distribution over the stages; each stage numbers its
  // layers of a tower from 0. Counted per tower from the files of TP rank 0, stage order v * PP + p.
  auto tower_layer = [](const std::string &n) -> std::optional<LayerName> {
    if (n.rfind("blocks.", 0) == 0) {  // a DiT's top-level blocks.<L>.
      size_t j = 7;
      while (j < n.size() && n[j] >= '0' && n[j] <= '9') ++j;
      if (j > 7 && j < n.size() && n[j] == '.' && j - 7 <= 9) {
        LayerName ln;
        ln.prefix = "blocks.";
        ln.layer = std::stoll(n.substr(7, j - 7));
        ln.rest = n.substr(j + 1);
        return ln;
      }
    }
    for (size_t at = n.find("layers."); at != std::string::npos; at = n.find("layers.", at + 1)) {
      if (at > 0 && n[at - 1] != '.') continue;
      size_t i = at + 7, j = i;
      while (j < n.size() && n[j] >= '0' && n[j] <= '9') ++j;
      if (j == i || j >= n.size() || n[j] != '.' || j - i > 9) continue;
      LayerName ln;
      ln.prefix = n.substr(0, at + 7);
      ln.layer = std::stoll(n.substr(i, j - i));
      ln.rest = n.substr(j + 1);
      return ln;
    }
    return std::nullopt;
  };
  std::map<std::string, std::vector<int64_t>> tower_counts;
  if (mindspeed_mm)
    for (const auto &r : ranks) {
      if (r.tp != 0) continue;
      for (size_t v = 0; v < V; ++v)
        for (const auto &kv : r.chunks[v])
          if (auto ln = tower_layer(kv.first)) {
            auto &c = tower_counts.try_emplace(ln->prefix, V * static_cast<size_t>(PP), 0).first->second;
            int64_t &n = c[v * static_cast<size_t>(PP) + static_cast<size_t>(r.pp)];
            n = std::max<int64_t>(n, ln->layer + 1);
          }
    }
  auto tower_first = [&](const std::string &prefix, int p, int v) {
    const auto &c = tower_counts.at(prefix);
    int64_t s = 0;
    for (size_t k = 0; k < static_cast<size_t>(v) * static_cast<size_t>(PP) + static_cast<size_t>(p); ++k) s += c[k];
    return s;
  };

  // Global tensors.
  // Whether linear_fc1 is gated decides how its TP shards merge. Args say so; when they do not, the model
  // plugin's hint does (two-phase open): both merges are prepared and apply_hints picks one.
  const bool swiglu_known = a0.contains("swiglu") && a0["swiglu"].is_boolean();
  const bool swiglu = swiglu_known ? a0["swiglu"].get<bool>() : true;
  const bool untied = a0.value("untie_embeddings_and_output_weights", true);
  const int64_t mtp_layers = a0.value("mtp_num_layers", json()).is_number_integer() ? a0["mtp_num_layers"].get<int64_t>() : 0;
  std::map<std::string, std::map<int, Shard>> global;
  std::set<std::string> expert_tensors;                    // global names of expert tensors (merged over ETP)
  std::map<std::string, std::vector<int64_t>> expert_ids;  // expert parameter (as expert 0) -> global ids found
  for (const auto &r : ranks)
    for (size_t v = 0; v < V; ++v)
      for (const auto &[local, sh] : r.chunks[v]) {
        std::string name = local;
        if (mindspeed_mm) {
          if (auto ln = tower_layer(local))
            name = ln->prefix + std::to_string(ln->layer + tower_first(ln->prefix, r.pp, static_cast<int>(v))) + "." + ln->rest;
        } else if (auto ln = parse_layer_name(local)) {
          name = ln->prefix + std::to_string(ln->layer + stages.first_layer(r.pp, static_cast<int>(v))) + "." + ln->rest;
        }
        // Experts: each EP rank numbers its own from 0 (global = ep * E_local + local). The files of TP
        // ranks >= ETP hold copies of the expert shards of TP rank % ETP; dense tensors of EP ranks > 0
        // are copies of EP rank 0's.
        if (const auto en = num_experts > 0 ? parse_expert_name(name) : std::nullopt) {
          if (en->expert >= epl.local_count())
            fail(CKH_E_FORMAT, r.path + ": tensor '" + local + "': local expert " + std::to_string(en->expert) +
                                   " but each of the " + std::to_string(EP) + " EP ranks holds " +
                                   std::to_string(epl.local_count()) + " of the " + std::to_string(num_experts) + " experts");
          if (r.tp >= ETP) continue;
          const int64_t g = epl.global_of(r.ep, en->expert);
          name = en->with(g);
          expert_tensors.insert(name);
          if (r.tp == 0) expert_ids[en->with(0)].push_back(g);
        } else if (r.ep > 0) {
          continue;
        }
        if (mtp_layers > 0 && PP > 1 && r.pp == PP - 1 && name == "embedding.word_embeddings.weight") {
          if (skipped_keys.insert(name).second)
            skipped.push_back({{"name", name}, {"reason", "the MTP stage's copy of the embedding"}});
          continue;
        }
        if (!untied && PP > 1 && r.pp == PP - 1 && (name == "output_layer.weight" || name == "word_embeddings_for_head.weight")) {
          if (skipped_keys.insert(name).second)
            skipped.push_back({{"name", name}, {"reason", "the last stage's copy of the tied embedding"}});
          continue;
        }
        auto &slot = global[name];
        if (slot.count(r.tp)) fail(CKH_E_FORMAT, r.path + ": tensor '" + name + "' appears in two pipeline stages");
        slot[r.tp] = sh;
      }
  for (const auto &[what, found] : expert_ids) {
    try {
      check_expert_cover(iter.string() + ": " + what, found, num_experts);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_FORMAT, e.what());
    }
  }
  const int64_t vocab = a0.value("vocab_size", json()).is_number_integer() ? a0["vocab_size"].get<int64_t>() : -1;
  // The TP rule of tensor n (over TPn ranks).
  auto decide = [&](const std::string &name, int TPn) {
    const auto &shards = global.at(name);
    Split s0_split = split_of(name, swiglu);
    // MLA down projections: replicated (TE spec, TELinear "duplicated") or split by rows (local spec,
    // ColumnParallelLinear); the shard's rows against the args' latent width tell which.
    const bool q_down = name.find("linear_q_down_proj.") != std::string::npos;
    if (TPn > 1 && (q_down || name.find("linear_kv_down_proj.") != std::string::npos)) {
      const int64_t want = q_down ? a0.value("q_lora_rank", json()).is_number_integer() ? a0["q_lora_rank"].get<int64_t>() : -1
                                  : a0.value("kv_lora_rank", json()).is_number_integer() && a0.value("qk_pos_emb_head_dim", json()).is_number_integer()
                                        ? a0["kv_lora_rank"].get<int64_t>() + a0["qk_pos_emb_head_dim"].get<int64_t>()
                                        : -1;
      const int64_t rows = shards.begin()->second.size.empty() ? -1 : shards.begin()->second.size[0];
      if (want > 0 && rows == want) s0_split = Split::Replicated;
      else if (want > 0 && rows * TPn == want) s0_split = Split::Column;
      else if (want > 0)
        fail(CKH_E_FORMAT, "tensor '" + name + "' has " + std::to_string(rows) + " rows per TP rank; args imply " + std::to_string(want) +
                               " (replicated) or " + std::to_string(want / TPn) + " (split over " + std::to_string(TPn) + " ranks)");
      else s0_split = a0.value("transformer_impl", std::string()) == "local" ? Split::Column : Split::Replicated;
    }
    return s0_split;
  };
  for (const auto &[name, shards] : global) {
    const int TPn = expert_tensors.count(name) ? ETP : TP;  // the ranks this tensor is split over
    // Block scales of FP8 codes (X.weight_scale_inv beside X.weight) are cut like their codes, one
    // scale row per block of code rows.
    const std::string codes = codes_of_scale(name);
    const Split s0_split = decide(!codes.empty() && global.count(codes) ? codes : name, TPn);
    const bool undecided = !swiglu_known && TPn > 1 && s0_split == Split::Swiglu;
    if (mindspeed_mm && gating && TPn > 1 && s0_split != Split::Replicated) {
      const Shard &x = shards.begin()->second;
      CatPiece p;
      p.file = x.file;
      p.byte_offset = x.byte_offset;
      p.offset.assign(x.size.size(), 0);
      p.size = x.size;
      p.stride = x.stride;
      gating->rank0[name] = p;
    }
    for (const Split s : undecided ? std::vector<Split>{Split::Column, Split::Swiglu} : std::vector<Split>{s0_split}) {
      const Shard &s0 = shards.begin()->second;
      CatTensor t;
      t.name = name;
      t.dtype = s0.dtype;
      t.shape = s0.size;
      const int need = s == Split::Replicated ? 1 : TPn;
      for (int r = 0; r < need; ++r) {
        if (!shards.count(r)) fail(CKH_E_FORMAT, "tensor '" + name + "' is missing in TP rank " + std::to_string(r));
        const Shard &x = shards.at(r);
        if (x.dtype != s0.dtype || x.size.size() != s0.size.size())
          fail(CKH_E_FORMAT, cat.files[x.file] + ": tensor '" + name + "' differs in dtype or rank between TP ranks");
      }
      auto piece = [&](const Shard &x, std::vector<int64_t> off, std::vector<int64_t> size, uint64_t extra_bytes) {
        CatPiece p;
        p.file = x.file;
        p.byte_offset = x.byte_offset + extra_bytes;
        p.offset = std::move(off);
        p.size = std::move(size);
        p.stride = x.stride;
        t.pieces.push_back(p);
      };
      const size_t nd = s0.size.size();
      switch (s) {
        case Split::Replicated: piece(s0, std::vector<int64_t>(nd, 0), s0.size, 0); break;
        case Split::Column:
        case Split::Vocab:
        case Split::Row: {
          const size_t dim = (s == Split::Row && nd >= 2) ? 1 : 0;
          int64_t at = 0;
          for (int r = 0; r < TPn; ++r) {
            const Shard &x = shards.at(r);
            std::vector<int64_t> off(nd, 0);
            off[dim] = at;
            for (size_t d = 0; d < nd; ++d)
              if (d != dim && x.size[d] != s0.size[d])
                fail(CKH_E_FORMAT, "tensor '" + name + "': TP shards disagree in dim " + std::to_string(d));
            piece(x, off, x.size, 0);
            at += x.size[dim];
          }
          t.shape[dim] = at;
          break;
        }
        case Split::Swiglu: {
          int64_t half_total = 0;
          for (int r = 0; r < TPn; ++r) half_total += shards.at(r).size[0] / 2;
          int64_t at = 0;
          for (int r = 0; r < TPn; ++r) {
            const Shard &x = shards.at(r);
            if (x.size[0] % 2) fail(CKH_E_FORMAT, "tensor '" + name + "': SwiGLU shard with an odd number of rows");
            const int64_t h = x.size[0] / 2;
            std::vector<int64_t> sz = x.size;
            sz[0] = h;
            std::vector<int64_t> g(nd, 0), u(nd, 0);
            g[0] = at;
            u[0] = half_total + at;
            piece(x, g, sz, 0);
            piece(x, u, sz, static_cast<uint64_t>(h * x.stride[0]) * ckh_dtype_size(x.dtype));
            at += h;
          }
          t.shape[0] = 2 * half_total;
          break;
        }
      }
      // Vocabulary padding is a property of the TP layout: expose the true vocabulary when args know it.
      if (s == Split::Vocab && vocab > 0) ckh::plugins::clip_rows(t, vocab);
      if (undecided && s == Split::Swiglu) {
        if (gating) gating->gated.emplace_back(cat.tensors.size() - 1, std::move(t.pieces));
      } else {
        cat.tensors.push_back(std::move(t));
      }
    }
  }
  if (gating) gating->undecided = !swiglu_known && !gating->gated.empty();
  // Metadata: args, and the HF config/side files kept with the checkpoint (or from --hf-config).
  json meta;
  meta["format"] = mindspeed_mm ? "mindspeed-mm" : "megatron";
  meta["layout"] = mindspeed_mm ? "mindspeed-mm" : "megatron";
  meta["args"] = a0;
  meta["iteration"] = a0.value("iteration", json(0));
  meta["skipped"] = skipped;
  ckh::plugins::add_hf_side(meta, options, root / "hf");
  cat.meta = meta.dump();
}

}  // namespace ckh::megatron

namespace ckh::megatron {

namespace {

// "split_parts": [{"prefix": P, "contains": C, "parts": K}]: a column-split tensor whose name starts with P and
// contains C is K equal parts along dim 0 in every TP shard (rank r holds [part_0,r; part_1,r; ...], e.g. an
// InternViT qkv as [Q_r; K_r; V_r]): global part k is the k-th part of every shard in rank order.
void apply_split_parts(Catalog &cat, const json &h, const std::map<std::string, CatPiece> &rank0) {
  if (!h.is_object()) return;
  // "replicated_prefixes": tensors the model keeps whole on every TP rank although Megatron's naming rule
  // would split them (InternVL's projector linear_fc1/fc2 in MindSpeed-MM): TP rank 0's copy is the tensor.
  if (h.contains("replicated_prefixes") && h["replicated_prefixes"].is_array())
    for (const auto &p : h["replicated_prefixes"]) {
      if (!p.is_string()) continue;
      for (CatTensor &t : cat.tensors) {
        const auto r0 = rank0.find(t.name);
        if (t.name.rfind(p.get<std::string>(), 0) != 0 || r0 == rank0.end()) continue;
        t.shape = r0->second.size;
        t.pieces = {r0->second};
      }
    }
  if (!h.contains("split_parts") || !h["split_parts"].is_array()) return;
  for (const auto &rule : h["split_parts"]) {
    if (!rule.is_object() || !rule.contains("parts") || !rule["parts"].is_number_integer()) continue;
    const std::string prefix = rule.value("prefix", std::string()), contains = rule.value("contains", std::string());
    const int64_t K = rule["parts"].get<int64_t>();
    if (K < 2 || K > 64) continue;
    for (CatTensor &t : cat.tensors) {
      if (t.name.rfind(prefix, 0) != 0 || t.name.find(contains) == std::string::npos || t.shape.empty()) continue;
      if (t.shape[0] % K) fail(CKH_E_FORMAT, "tensor '" + t.name + "': " + std::to_string(t.shape[0]) + " rows are not " + std::to_string(K) + " equal parts");
      const int64_t part = t.shape[0] / K;
      std::vector<CatPiece> out;
      for (int64_t k = 0; k < K; ++k)
        for (const CatPiece &x : t.pieces) {
          if (x.size.empty() || x.size[0] % K || x.offset[0] % K)
            fail(CKH_E_FORMAT, "tensor '" + t.name + "': a TP shard of " + (x.size.empty() ? std::string("0") : std::to_string(x.size[0])) +
                                   " rows is not " + std::to_string(K) + " equal parts");
          int64_t row = 1;  // elements per row
          if (!x.stride.empty() && x.stride[0] != 0) row = x.stride[0];
          else
            for (size_t d = 1; d < x.size.size(); ++d) row *= x.size[d];
          CatPiece y = x;
          y.size[0] = x.size[0] / K;
          y.offset[0] = k * part + x.offset[0] / K;
          y.byte_offset = x.byte_offset + static_cast<uint64_t>(k * y.size[0] * row) * ckh_dtype_size(t.dtype);
          out.push_back(std::move(y));
        }
      t.pieces = std::move(out);
    }
  }
}

}  // namespace

void apply_gating(Catalog &cat, Gating &g, const std::string &hints_json) {
  const json h = json::parse(hints_json.empty() ? "{}" : hints_json, nullptr, false);
  if (!h.is_discarded()) apply_split_parts(cat, h, g.rank0);
  if (!g.undecided) return;
  if (h.is_discarded() || !h.is_object() || !h.contains("gated_mlp") || !h["gated_mlp"].is_boolean())
    throw ckh::sdk::Error(CKH_E_UNSUPPORTED,
                          cat.tensors.at(g.gated.front().first).name +
                              ": cannot tell how its tensor-parallel shards merge: the args have no 'swiglu' and no "
                              "model plugin said whether the MLP is gated (give --hf-config with the model's config.json)");
  // "ungated_prefixes": towers whose linear_fc1 is a plain column split even in a gated model (a VLM's
  // projector, a ViT with fc1/fc2).
  std::vector<std::string> ungated;
  if (h.contains("ungated_prefixes") && h["ungated_prefixes"].is_array())
    for (const auto &p : h["ungated_prefixes"])
      if (p.is_string()) ungated.push_back(p.get<std::string>());
  if (h["gated_mlp"].get<bool>())
    for (auto &[i, pieces] : g.gated) {
      const std::string &n = cat.tensors.at(i).name;
      if (std::none_of(ungated.begin(), ungated.end(), [&](const std::string &p) { return n.rfind(p, 0) == 0; }))
        cat.tensors.at(i).pieces = std::move(pieces);
    }
  g.gated.clear();
  g.undecided = false;
}

}  // namespace ckh::megatron
