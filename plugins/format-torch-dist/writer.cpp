// writer.cpp — DCP directories: "torch-dist" (Megatron-Core torch_dist) and "dcp" (plain DCP with HF
// state-dict names, as FSDP2 trainers save and load them).
//
// Every tensor chunk is a torch.save archive (loadable with weights_only=True) appended to one of
// `--dist-files` data files `__0_<n>.distcp`; the files are filled in parallel by the host. `.metadata`
// is the pickled Metadata with the class paths of torch 2.x (or 1.13 with --dcp-torch 1.13).
//
// torch-dist: inputs are the global Megatron-Core tensors a model mapper emits (global layer numbers,
// unpadded vocabulary). Layers are stacked under "decoder.layers.<param>" with a leading layer axis
// (one chunk per layer) when every layer has the same tensors, as Megatron-Core does for homogeneous
// models; otherwise each layer keeps its own keys "decoder.layers.<L>.<param>". fc1 is stored as the
// global [gate; up]. The vocabulary is padded for --tp. common.pt holds args, iteration and
// checkpoint_version; metadata.json names the backend; the tracker file sits next to the iteration dir.
#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "option_decls.hpp"
#include "dcp.hpp"
#include "dist.hpp"
#include "hf_files.hpp"
#include "megatron_layout.hpp"
#include "megatron_state.hpp"
#include "options.hpp"
#include "writer_glue.hpp"
#include "torch_archive.hpp"
#include "torch_save.hpp"

using nlohmann::json;
using ckh::sdk::fail;
using namespace ckh::torchfmt;

namespace {

struct Common {
  int64_t files = 1;
  DcpTarget target = DcpTarget::Torch2;
};
Common common_options(const json &o) {
  Common c;
  c.files = ckh::plugins::int_option(o, "dist_files", 1, 1);
  if (c.files > 4096) fail(CKH_E_INVALID_ARG, "--dist-files must be at most 4096");
  const std::string t = o.contains("dcp_torch") && o["dcp_torch"].is_string() ? o["dcp_torch"].get<std::string>() : "2";
  if (t == "2" || t == "2.x") c.target = DcpTarget::Torch2;
  else if (t == "1.13") c.target = DcpTarget::Torch113;
  else fail(CKH_E_INVALID_ARG, "--dcp-torch must be 2 (torch.distributed.checkpoint) or 1.13 (torch.distributed._shard.checkpoint)");
  return c;
}

// One DCP entry to write.
struct Chunk {
  std::vector<int64_t> offsets, sizes;
  ckh_expr e = 0;
  uint64_t bytes = 0;
};
struct Item {
  std::string fqn;
  ckh_dtype dtype = CKH_DT_INVALID;
  std::vector<int64_t> size;
  std::vector<Chunk> chunks;
};

// Lays out the data files and .metadata of a DCP directory under `dir` ("" or "iter_0000010/").
class DcpWriter {
 public:
  // `objects`: bytes items (fqn, pickle of the torch.save'd object), written after the chunks of file 0.
  void plan(ckh_layout_builder_t *lb, const std::string &dir, const std::vector<Item> &items, const Common &opt,
            const json &planner_data, const std::vector<std::pair<std::string, std::string>> &objects = {}) {
    uint64_t total = 0;
    for (const auto &it : items)
      for (const auto &c : it.chunks) total += c.bytes;
    const uint64_t nfiles = static_cast<uint64_t>(opt.files);
    // Chunks in order, cut into nfiles runs of about equal bytes (keeps layers together, balances files).
    struct Placed {
      size_t item, chunk;
    };
    std::vector<std::vector<Placed>> per_file(nfiles);
    uint64_t cum = 0;
    for (size_t i = 0; i < items.size(); ++i)
      for (size_t c = 0; c < items[i].chunks.size(); ++c) {
        const uint64_t b = items[i].chunks[c].bytes;
        const uint64_t f = total ? std::min<uint64_t>(nfiles - 1, static_cast<uint64_t>(
                                                                      (static_cast<unsigned __int128>(cum + b / 2) * nfiles) / total))
                                 : 0;
        per_file[f].push_back({i, c});
        cum += b;
      }
    DcpMetadata md;
    md.planner_data = planner_data;
    for (const auto &it : items) {
      DcpEntry e;
      e.fqn = it.fqn;
      e.dtype = it.dtype;
      e.size = it.size;
      for (const auto &c : it.chunks) e.chunks.push_back(DcpChunk{c.offsets, c.sizes, {}});
      md.entries.push_back(std::move(e));
    }
    for (const auto &o : objects) {
      DcpEntry e;
      e.fqn = o.first;
      e.is_bytes = true;
      md.entries.push_back(std::move(e));
    }
    for (uint64_t f = 0; f < nfiles; ++f) {
      if (per_file[f].empty() && f > 0) continue;
      const std::string rel = "__0_" + std::to_string(f) + ".distcp";
      // Every item is a torch.save archive: a tensor chunk, or (file 0) a bytes object.
      struct Blob {
        std::string pickle;
        std::vector<uint64_t> bytes;
        std::vector<ckh_expr> tensors;
        DcpStorage *where;
        std::unique_ptr<ArchiveLayout> archive = std::make_unique<ArchiveLayout>();
        uint64_t at = 0;
      };
      std::vector<Blob> blobs;
      for (const auto &pl : per_file[f]) {
        const Item &it = items[pl.item];
        const Chunk &c = it.chunks[pl.chunk];
        Pickler pk;
        pk.tensor("0", it.dtype, c.sizes);
        pk.stop();
        blobs.push_back(Blob{pk.bytes(), {c.bytes}, {c.e}, &md.entries[pl.item].chunks[pl.chunk].where});
      }
      for (size_t i = 0; f == 0 && i < objects.size(); ++i)
        blobs.push_back(Blob{objects[i].second, {}, {}, &md.entries[items.size() + i].bytes});
      uint64_t cursor = 0;
      for (auto &b : blobs) {
        const uint64_t size = b.archive->prepare(b.pickle, b.bytes);
        cursor = (cursor + 63) / 64 * 64;  // item starts 64-byte aligned: payloads land on 64-byte file offsets
        b.at = cursor;
        *b.where = DcpStorage{rel, b.at, size, true};
        cursor += size;
      }
      const int32_t file = lb->add_file(lb, (dir + rel).c_str(), cursor);
      if (file < 0) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_file failed", true);
      for (auto &b : blobs) {
        b.archive->place(lb, file, b.at, b.pickle, b.tensors);
        archives_.push_back(std::move(b.archive));
      }
    }
    const std::string bytes = write_dcp_metadata(md, opt.target);
    if (lb->add_small_file(lb, (dir + ".metadata").c_str(), bytes.data(), bytes.size()) != CKH_OK)
      throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_small_file failed", true);
  }
  void finish(const ckh_region_digest_t *digests, uint64_t n, ckh_patcher_t *p) const {
    for (const auto &a : archives_) a->finish(digests, n, p);
  }
  // A small torch.save file without tensors (common.pt).
  void small_archive(ckh_layout_builder_t *lb, const std::string &relpath, const std::string &pickle) {
    auto a = std::make_unique<ArchiveLayout>();
    a->plan(lb, relpath, pickle, {}, {});
    archives_.push_back(std::move(a));
  }

 private:
  std::vector<std::unique_ptr<ArchiveLayout>> archives_;
};

uint64_t bytes_of(const ckh_tensor_info_t &info) {
  uint64_t b = ckh_dtype_size(info.dtype);
  for (uint32_t d = 0; d < info.ndim; ++d) b *= static_cast<uint64_t>(info.shape[d]);
  return b;
}

void check_dtype(const std::string &name, ckh_dtype dt) {
  if (!picklable(dt) || !torch_dtype_short_name(dt))
    fail(CKH_E_UNSUPPORTED, "tensor '" + name + "': this dtype cannot be stored in a DCP chunk readable by torch 1.13/2.x" +
                                (ckh_dtype_size(dt) == 1 && ckh_dtype_is_float(dt) ? std::string(" (FP8: not supported yet)")
                                                                                   : std::string()));
}

struct WriterBase {
  json options;
  DcpWriter dcp;
  explicit WriterBase(const json &o) : options(o) { common_options(options); }  // validate early
  void finish(const ckh_region_digest_t *digests, uint64_t n, ckh_patcher_t *p) const { dcp.finish(digests, n, p); }
};

// ---- torch-dist ----------------------------------------------------------------------------------

void plan_torch_dist(WriterBase &w, const json &meta, ckh_layout_builder_t *lb) {
  using namespace ckh::megatron;
  ckh::sdk::Builder b(lb->expr);
  const Common copt = common_options(w.options);
  const int64_t tp = ckh::plugins::int_option(w.options, "tp", 1, 1), pp = ckh::plugins::int_option(w.options, "pp", 1, 1), vpp = ckh::plugins::int_option(w.options, "vpp", 1, 1);
  const int64_t divisible_by = ckh::plugins::int_option(w.options, "make_vocab_size_divisible_by", 128, 1);
  const int64_t iteration = ckh::plugins::int_option(w.options, "iteration", -1, -1);
  const std::string pad = w.options.value("vocab_pad", std::string("zeros"));
  if (pad != "zeros" && pad != "repeat") fail(CKH_E_INVALID_ARG, "--vocab-pad must be zeros or repeat");
  if (!meta.contains("args") || !meta["args"].is_object())
    fail(CKH_E_UNSUPPORTED, "the torch-dist writer needs Megatron args from a model plugin (no mapper produced them)");
  json args = meta["args"];
  const int64_t num_layers = args.value("num_layers", int64_t{0});
  if (num_layers <= 0) fail(CKH_E_FORMAT, "args.num_layers is missing");
  // The tensors are global; the pipeline layout (--pp-layers for uneven stages) is checked and recorded.
  std::vector<int64_t> pp_layers;
  try {
    if (w.options.contains("pp_layers"))
      pp_layers = parse_pp_layers(w.options["pp_layers"].is_string() ? w.options["pp_layers"].get<std::string>()
                                                                     : w.options["pp_layers"].dump());
    (void)make_pipeline(num_layers, static_cast<int>(pp), static_cast<int>(vpp), pp_layers);
  } catch (const std::exception &e) {
    fail(CKH_E_INVALID_ARG, e.what());
  }

  // Splits (here: which tensors have padded vocabulary rows) and layers come from the mapper's
  // annotations (SDK 1.1); a tensor without them is refused by name.
  struct In {
    std::string name;
    ckh_tensor_info_t info;
    ckh_expr e;
    Split split = Split::Replicated;
  };
  // Megatron-Core's local layer spec keeps input_layernorm and pre_mlp_layernorm as modules of their
  // own but saves them in dist checkpoints under the names of the TE spec's fused norms (its
  // sharded_state_dict_keys_map): "input_layernorm." -> "self_attention.linear_qkv.layer_norm_",
  // "pre_mlp_layernorm." -> "mlp.linear_fc1.layer_norm_" (MoE layers too: their TransformerLayer has the
  // same keys map, checked against Megatron-Core 0.16.1).
  const std::string spec = meta.value("megatron_spec", std::string("te"));
  if (spec != "te" && spec != "local" && spec != "legacy")
    fail(CKH_E_INVALID_ARG, "--megatron-spec must be te, local or legacy (got '" + spec + "')");
  // Its MLA layers have no such map: their norms keep their module names (Megatron-Core 0.16.1).
  const bool mla = meta["args"].value("multi_latent_attention", false);
  auto dist_key = [&](const std::string &rest) {
    if (spec != "local" || mla) return rest;
    const std::string in = "input_layernorm.", pre = "pre_mlp_layernorm.";
    if (rest.rfind(in, 0) == 0) return "self_attention.linear_qkv.layer_norm_" + rest.substr(in.size());
    if (rest.rfind(pre, 0) == 0) return "mlp.linear_fc1.layer_norm_" + rest.substr(pre.size());
    return rest;
  };
  std::vector<std::string> names;                               // dist names in input order
  std::vector<In> direct;                                       // non-layer tensors, in input order
  std::map<std::string, std::map<int64_t, In>> layer_tensors;   // param -> layer -> tensor
  std::vector<std::string> param_order;
  std::map<std::string, std::map<int64_t, std::map<int64_t, In>>> expert_tensors;  // param -> layer -> expert
  std::vector<std::string> expert_order;
  // MTP layers' experts: dist name ("mtp.layers.<k>.transformer_layer.mlp.experts.experts.linear_fc1.weight")
  // -> expert -> tensor; one [E, ...] item each.
  std::map<std::string, std::map<int64_t, In>> mtp_experts;
  std::vector<std::string> mtp_expert_order;
  int64_t vocab = -1;
  // An expert parameter's dist name (relative to its layer prefix): SequentialMLP and TEGroupedMLP alike
  // "mlp.experts.experts.linear_fc1.weight" (Megatron-Core 0.16 experts.py).
  auto expert_key = [](const ckh::megatron::ExpertName &en) {
    const std::string param = en.grouped ? en.prefix.substr(en.prefix.rfind("experts.") + 8) + en.rest : en.rest;
    const std::string module = en.grouped ? en.prefix.substr(0, en.prefix.rfind("experts.") + 8) : en.prefix.substr(0, en.prefix.size() - 14);
    return module + "experts." + param;  // module ends with "experts."
  };
  for (uint64_t i = 0; i < b.input_count(); ++i) {
    In x{b.input_info(i).name, b.input_info(i), b.input_at(i)};
    check_dtype(x.name, x.info.dtype);
    const ckh_tensor_annot_t an = b.input_annot(i);
    try {
      x.split = split_from_annot(an, x.name);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_INVALID_ARG, e.what());
    }
    if (x.name.rfind("language_model.", 0) == 0)
      fail(CKH_E_UNSUPPORTED, "tensor '" + x.name + "': torch_dist checkpoints use Megatron-Core names (--megatron-spec te or local), not legacy ones");
    if (x.split == Split::Vocab) {
      if (vocab >= 0 && vocab != x.info.shape[0])
        fail(CKH_E_FORMAT, "tensor '" + x.name + "' has " + std::to_string(x.info.shape[0]) + " vocabulary rows, expected " +
                               std::to_string(vocab));
      vocab = x.info.shape[0];
    }
    if (an.role == CKH_ROLE_MTP && ckh::megatron::is_expert(an)) {
      const auto en = parse_expert_name(x.name);
      if (!en || en->expert != an.expert)
        fail(CKH_E_FORMAT, "tensor '" + x.name + "' is annotated as expert " + std::to_string(an.expert) +
                               " but its name does not carry that expert number");
      const std::string key = expert_key(*en);
      if (!mtp_experts.count(key)) mtp_expert_order.push_back(key);
      if (mtp_experts[key].count(an.expert)) fail(CKH_E_FORMAT, "tensor '" + x.name + "': expert " + std::to_string(an.expert) + " given twice");
      mtp_experts[key][an.expert] = x;
      names.push_back(x.name);
      continue;
    }
    const auto ln = parse_layer_name(x.name);
    if (an.role == CKH_ROLE_LAYER && (!ln || ln->prefix != "decoder.layers." || ln->layer != an.layer))
      fail(CKH_E_FORMAT, "tensor '" + x.name + "' is annotated as layer " + std::to_string(an.layer) +
                             " but is not named decoder.layers." + std::to_string(an.layer) + ".*");
    if (an.role == CKH_ROLE_LAYER) {
      if (ln->layer >= num_layers)
        fail(CKH_E_FORMAT, "tensor '" + x.name + "': layer " + std::to_string(ln->layer) + " but args.num_layers is " +
                               std::to_string(num_layers));
      if (ckh::megatron::is_expert(an)) {
        // Experts: one key per parameter with an expert axis (global expert index).
        const auto en = parse_expert_name(ln->rest);
        if (!en || en->expert != an.expert)
          fail(CKH_E_FORMAT, "tensor '" + x.name + "' is annotated as expert " + std::to_string(an.expert) +
                                 " but its name does not carry that expert number");
        const std::string rest = expert_key(*en);
        if (!expert_tensors.count(rest)) expert_order.push_back(rest);
        auto &slot = expert_tensors[rest][ln->layer];
        if (slot.count(an.expert)) fail(CKH_E_FORMAT, "tensor '" + x.name + "': expert " + std::to_string(an.expert) + " given twice");
        slot[an.expert] = x;
        names.push_back(x.name);
        continue;
      }
      const std::string rest = dist_key(ln->rest);
      if (rest != ln->rest) x.name = "decoder.layers." + std::to_string(ln->layer) + "." + rest;
      if (!layer_tensors.count(rest)) param_order.push_back(rest);
      layer_tensors[rest][ln->layer] = x;
    } else {
      // An MTP layer's TransformerLayer saves its norms under the same keys map.
      static const std::string tl = ".transformer_layer.";
      const size_t at = x.name.rfind("mtp.layers.", 0) == 0 ? x.name.find(tl) : std::string::npos;
      if (at != std::string::npos) x.name = x.name.substr(0, at + tl.size()) + dist_key(x.name.substr(at + tl.size()));
      direct.push_back(x);
    }
    names.push_back(x.name);
  }
  const int64_t padded = vocab > 0 ? padded_vocab(vocab, divisible_by, static_cast<int>(tp)) : -1;

  const int64_t num_experts = args.contains("num_experts") && args["num_experts"].is_number_integer() ? args["num_experts"].get<int64_t>() : 0;
  if ((!expert_tensors.empty() || !mtp_experts.empty()) && num_experts <= 0) fail(CKH_E_FORMAT, "expert tensors but no args.num_experts from the model plugin");
  // torch_dist stores global tensors whatever the parallel layout; --ep / --etp are checked against the
  // model and recorded in args (the layout training resumes with).
  const int64_t ep = ckh::plugins::int_option(w.options, "ep", 1, 1);
  const int64_t etp = ckh::plugins::int_option(w.options, "etp", tp, 1);
  if (expert_tensors.empty() && mtp_experts.empty() && (ep > 1 || w.options.contains("etp")))
    fail(CKH_E_INVALID_ARG, std::string(ep > 1 ? "--ep" : "--etp") + " applies to MoE models; this model has no expert tensors");
  if (!expert_tensors.empty()) {
    try {
      (void)make_expert_parallel(num_experts, static_cast<int>(ep));
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_INVALID_ARG, e.what());
    }
    const int64_t moe_ffn = args.value("moe_ffn_hidden_size", int64_t{0});
    if (moe_ffn > 0 && moe_ffn % etp != 0)
      fail(CKH_E_INVALID_ARG, "--etp " + std::to_string(etp) + " does not divide the experts' ffn size " + std::to_string(moe_ffn));
  }
  for (const auto &[key, by_expert] : mtp_experts) {
    std::vector<int64_t> ids;
    for (const auto &kv : by_expert) ids.push_back(kv.first);
    try {
      check_expert_cover(key, ids, num_experts);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_FORMAT, e.what());
    }
  }
  for (const auto &[rest, by_layer] : expert_tensors)
    for (const auto &[l, by_expert] : by_layer) {
      std::vector<int64_t> ids;
      for (const auto &kv : by_expert) ids.push_back(kv.first);
      try {
        check_expert_cover("decoder.layers." + std::to_string(l) + "." + rest, ids, num_experts);
      } catch (const std::invalid_argument &e) {
        fail(CKH_E_FORMAT, e.what());
      }
    }
  // Homogeneous: every layer has every parameter with one shape and dtype (Megatron-Core stacks layers
  // unless moe_layer_freq mixes dense and MoE layers, which shows here as parameters some layers lack).
  bool homogeneous = true;
  for (const auto &[rest, by_layer] : expert_tensors) {
    if (static_cast<int64_t>(by_layer.size()) != num_layers) homogeneous = false;
    const In &f = by_layer.begin()->second.begin()->second;
    for (const auto &[l, by_expert] : by_layer)
      for (const auto &[e, x] : by_expert) {
        if (x.info.dtype != f.info.dtype || x.info.ndim != f.info.ndim) homogeneous = false;
        for (uint32_t d = 0; d < x.info.ndim && homogeneous; ++d) homogeneous = x.info.shape[d] == f.info.shape[d];
      }
  }
  for (const auto &[rest, by_layer] : layer_tensors) {
    if (static_cast<int64_t>(by_layer.size()) != num_layers) homogeneous = false;
    const In &f = by_layer.begin()->second;
    for (const auto &[l, x] : by_layer) {
      if (x.info.dtype != f.info.dtype || x.info.ndim != f.info.ndim) homogeneous = false;
      for (uint32_t d = 0; d < x.info.ndim && homogeneous; ++d) homogeneous = x.info.shape[d] == f.info.shape[d];
    }
  }

  std::vector<Item> items;
  auto whole = [&](const std::string &fqn, ckh_expr e) {
    const ckh_tensor_info_t info = b.info(e);
    Item it;
    it.fqn = fqn;
    it.dtype = info.dtype;
    it.size.assign(info.shape, info.shape + info.ndim);
    it.chunks.push_back({std::vector<int64_t>(info.ndim, 0), it.size, e, bytes_of(info)});
    items.push_back(std::move(it));
  };
  for (const auto &x : direct) {
    if (x.name.rfind("embedding.", 0) != 0) continue;
    ckh_expr e = x.e;
    if (x.split == Split::Vocab && padded > x.info.shape[0])
      e = b.pad(e, 0, 0, padded - x.info.shape[0], pad == "repeat" ? CKH_PAD_REPEAT_EDGE : CKH_PAD_ZEROS);
    whole(x.name, e);
  }
  for (const auto &rest : param_order) {
    const auto &by_layer = layer_tensors[rest];
    if (homogeneous) {
      const In &f = by_layer.begin()->second;
      Item it;
      it.fqn = "decoder.layers." + rest;
      it.dtype = f.info.dtype;
      it.size.push_back(num_layers);
      it.size.insert(it.size.end(), f.info.shape, f.info.shape + f.info.ndim);
      for (const auto &[l, x] : by_layer) {
        Chunk c;
        c.offsets.assign(it.size.size(), 0);
        c.offsets[0] = l;
        c.sizes = it.size;
        c.sizes[0] = 1;
        c.e = x.e;
        c.bytes = bytes_of(x.info);
        it.chunks.push_back(std::move(c));
      }
      items.push_back(std::move(it));
    } else {
      for (const auto &[l, x] : by_layer) whole("decoder.layers." + std::to_string(l) + "." + rest, x.e);
    }
  }
  // Experts: [L, E, ...] with a chunk per (layer, expert) when stacked, else [E, ...] per layer (MTP layers too).
  auto add_experts = [&](const std::string &fqn, const std::map<int64_t, std::map<int64_t, In>> &layers, bool stacked) {
    const In &f = layers.begin()->second.begin()->second;
    Item it;
    it.fqn = fqn;
    it.dtype = f.info.dtype;
    if (stacked) it.size.push_back(num_layers);
    it.size.push_back(num_experts);
    it.size.insert(it.size.end(), f.info.shape, f.info.shape + f.info.ndim);
    for (const auto &[l, by_expert] : layers)
      for (const auto &[e, x] : by_expert) {
        if (x.info.dtype != f.info.dtype || x.info.ndim != f.info.ndim ||
            !std::equal(x.info.shape, x.info.shape + x.info.ndim, f.info.shape))
          fail(CKH_E_FORMAT, "tensor '" + x.name + "': experts of one layer differ in shape or dtype");
        Chunk c;
        c.offsets.assign(it.size.size(), 0);
        c.sizes = it.size;
        size_t a = 0;
        if (stacked) {
          c.offsets[a] = l;
          c.sizes[a++] = 1;
        }
        c.offsets[a] = e;
        c.sizes[a] = 1;
        c.e = x.e;
        c.bytes = bytes_of(x.info);
        it.chunks.push_back(std::move(c));
      }
    items.push_back(std::move(it));
  };
  for (const auto &rest : expert_order) {
    const auto &by_layer = expert_tensors[rest];
    if (homogeneous) add_experts("decoder.layers." + rest, by_layer, true);
    else
      for (const auto &[l, by_expert] : by_layer)
        add_experts("decoder.layers." + std::to_string(l) + "." + rest, {{l, by_expert}}, false);
  }
  for (const auto &key : mtp_expert_order) add_experts(key, {{0, mtp_experts[key]}}, false);
  for (const auto &x : direct) {
    if (x.name.rfind("embedding.", 0) == 0) continue;
    if (x.name.rfind("decoder.", 0) != 0 && x.name.rfind("output_layer", 0) != 0 && x.name.rfind("mtp.layers.", 0) != 0)
      fail(CKH_E_UNSUPPORTED, "tensor '" + x.name + "': the torch-dist writer does not know this Megatron-Core tensor");
    ckh_expr e = x.e;
    if (x.split == Split::Vocab && padded > x.info.shape[0])
      e = b.pad(e, 0, 0, padded - x.info.shape[0], pad == "repeat" ? CKH_PAD_REPEAT_EDGE : CKH_PAD_ZEROS);
    whole(x.name, e);
  }

  const int64_t recorded_iteration = iteration < 0 ? 0 : iteration;  // release checkpoints record 0
  record_parallel_args(args, {tp, pp, vpp, pp_layers, num_layers, divisible_by, padded, recorded_iteration, ep,
                              expert_tensors.empty() && mtp_experts.empty() ? 0 : etp});
  args["ckpt_format"] = "torch_dist";
  args["use_dist_ckpt"] = true;

  // Megatron-Core ShardedObjects "<module>._extra_state/shard_<offset>_<shape>" (unique_key), holding
  // torch.save([None]): what Megatron's own Column/RowParallelLinear save, and what Transformer Engine's
  // set_extra_state takes as "no FP8 state" (TE 1.x and 2.x). Layer modules are stacked like the
  // tensors (offset L of num_layers) or keyed per layer (offset 0 of 1). The set follows
  // --megatron-spec (see extra_state_modules): exact for local, a TE superset for te.

  Pickler none_list;
  none_list.empty_list();
  none_list.mark();
  none_list.none();
  none_list.appends();
  none_list.stop();
  std::vector<std::pair<std::string, std::string>> objects;
  // Modules by the mapper's own names (before the local spec's norm renaming, which would invent a
  // linear_fc1 in MoE layers).
  std::vector<std::string> dense_names;
  for (uint64_t i = 0; i < b.input_count(); ++i) {
    const std::string n = b.input_info(i).name;
    if (!parse_expert_name(n)) dense_names.push_back(n);
  }
  // Experts' linears: "<module>._extra_state" with the (layer,) expert offsets, e.g.
  // decoder.layers.mlp.experts.experts.linear_fc1._extra_state/shard_1.3_2.4 (checked against
  // Megatron-Core 0.16.1's SequentialMLP; TEGroupedMLP is assumed to follow its keys).
  for (const auto &rest : expert_order) {
    const std::string module = rest.substr(0, rest.rfind('.'));
    for (const auto &[l, by_expert] : expert_tensors[rest])
      for (const auto &kv : by_expert) {
        const std::string e = std::to_string(kv.first), E = std::to_string(num_experts);
        const std::string key = homogeneous ? "decoder.layers." + module + "._extra_state/shard_" + std::to_string(l) + "." + e +
                                                  "_" + std::to_string(num_layers) + "." + E
                                            : "decoder.layers." + std::to_string(l) + "." + module + "._extra_state/shard_" + e + "_" + E;
        objects.emplace_back(key, none_list.bytes());
      }
  }
  for (const auto &key : mtp_expert_order) {
    const std::string module = key.substr(0, key.rfind('.'));
    for (const auto &kv : mtp_experts[key])
      objects.emplace_back(module + "._extra_state/shard_" + std::to_string(kv.first) + "_" + std::to_string(num_experts), none_list.bytes());
  }
  for (const std::string &m : extra_state_modules(dense_names, spec != "local")) {
    std::string key = m + "._extra_state/shard_0_1";
    if (auto ln = parse_layer_name(m); ln && homogeneous)
      key = ln->prefix + ln->rest + "._extra_state/shard_" + std::to_string(ln->layer) + "_" + std::to_string(num_layers);
    objects.emplace_back(key, none_list.bytes());
  }

  const std::string dir = ckh::megatron::iteration_dir(recorded_iteration, iteration < 0) + "/";
  w.dcp.plan(lb, dir, items, copt, json(nullptr), objects);

  Pickler pk;
  pk.empty_dict();
  pk.mark();
  put_common_entries(pk, args, recorded_iteration);
  pk.setitems();
  pk.stop();
  w.dcp.small_archive(lb, dir + "common.pt", pk.bytes());

  const std::string cfg = json{{"sharded_backend", "torch_dist"}, {"sharded_backend_version", 1}}.dump();
  if (lb->add_small_file(lb, (dir + "metadata.json").c_str(), cfg.data(), cfg.size()) != CKH_OK)
    throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_small_file failed", true);
  const std::string tracker = iteration < 0 ? std::string("release") : std::to_string(iteration);
  if (lb->add_small_file(lb, "latest_checkpointed_iteration.txt", tracker.data(), tracker.size()) != CKH_OK)
    throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_small_file failed", true);
  // Side files (tokenizer, config) go to hf/ next to the tracker so the checkpoint can be converted back.
  ckh::plugins::copy_side_files_to(lb, meta, "hf");
}

// ---- dcp (HF names) ------------------------------------------------------------------------------

void plan_dcp(WriterBase &w, const json &meta, ckh_layout_builder_t *lb) {
  ckh::sdk::Builder b(lb->expr);
  const Common copt = common_options(w.options);
  const std::string layout = w.options.value("dcp_layout", std::string("plain"));
  if (layout != "plain" && layout != "mindspeed") fail(CKH_E_INVALID_ARG, "--dcp-layout must be plain or mindspeed");
  // MindSpeed-MM's FSDP2 checkpoints (checkpoint/common/hf_to_dcp.py): dcp.save({"model": {"model." + hf: t},
  // "checkpoint_version": 3.0}) into <dir>/release/ beside latest_checkpointed_iteration.txt, with fused 3-D
  // expert tensors viewed 2-D (-1, last dim) so FSDP2 shards them on dim 0.
  const bool ms = layout == "mindspeed";
  const std::string prefix = w.options.contains("dcp_prefix") && w.options["dcp_prefix"].is_string()
                                 ? w.options["dcp_prefix"].get<std::string>()
                                 : std::string(ms ? "model.model." : "");
  if (prefix.size() > 256) fail(CKH_E_INVALID_ARG, "--dcp-prefix is longer than 256 characters");
  if (ms && (prefix.find('.') == std::string::npos || prefix.back() != '.'))
    fail(CKH_E_INVALID_ARG, "--dcp-layout mindspeed: --dcp-prefix '" + prefix + "' must be <top-level key>.<inner prefix> ending in '.'");
  std::vector<Item> items;
  json planner = json::object();
  std::set<std::string> seen;
  for (uint64_t i = 0; i < b.input_count(); ++i) {
    const ckh_tensor_info_t info = b.input_info(i);
    const std::string name = info.name;
    check_dtype(name, info.dtype);
    Item it;
    it.fqn = prefix + name;
    if (!seen.insert(it.fqn).second) fail(CKH_E_INVALID_ARG, "two tensors named '" + it.fqn + "'");
    it.dtype = info.dtype;
    it.size.assign(info.shape, info.shape + info.ndim);
    ckh_expr e = b.input_at(i);
    const ckh_tensor_annot_t an = b.input_annot(i);
    const bool expert_stack = an.kind == CKH_KIND_FFN_GATE_UP || an.kind == CKH_KIND_FFN_GATE || an.kind == CKH_KIND_FFN_UP ||
                              an.kind == CKH_KIND_FFN_DOWN;
    if (ms && expert_stack && info.ndim == 3) {
      it.size = {info.shape[0] * info.shape[1], info.shape[2]};
      e = b.reshape(e, it.size);
    }
    it.chunks.push_back({std::vector<int64_t>(it.size.size(), 0), it.size, e, bytes_of(info)});
    items.push_back(std::move(it));
    // planner_data as DefaultSavePlanner records it for save({top: {inner + name: t}}), save({prefix: state_dict})
    // or save(state_dict).
    if (ms) {
      const size_t dot = prefix.find('.');
      planner[prefix + name] = json::array({prefix.substr(0, dot), prefix.substr(dot + 1) + name});
    } else if (!prefix.empty() && prefix.back() == '.') {
      planner[prefix + name] = json::array({prefix.substr(0, prefix.size() - 1), name});
    } else {
      planner[prefix + name] = json::array({prefix + name});
    }
  }
  std::vector<std::pair<std::string, std::string>> objects;
  if (ms) {
    Pickler version;
    version.real(3.0);
    version.stop();
    objects.emplace_back("checkpoint_version", version.bytes());
    planner["checkpoint_version"] = json::array({"checkpoint_version"});
    static const char kRelease[] = "release";
    if (lb->add_small_file(lb, "latest_checkpointed_iteration.txt", kRelease, sizeof kRelease - 1) != CKH_OK)
      throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_small_file failed", true);
  }
  w.dcp.plan(lb, ms ? "release/" : "", items, copt, planner, objects);
  ckh::plugins::carry_side_files(lb, meta, {".metadata", "latest_checkpointed_iteration.txt"});
}

// One writer class per plan function.
template <void (*Plan)(WriterBase &, const json &, ckh_layout_builder_t *)>
struct Writer : WriterBase {
  using WriterBase::WriterBase;
  void plan(const json &meta, ckh_layout_builder_t *lb) { Plan(*this, meta, lb); }
};

const ckh_writer_class_t kDistWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<Writer<plan_torch_dist>>};
const ckh_component_t kDistWriterComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "torch-dist",
    "Megatron-Core distributed checkpoints (torch_dist: DCP + metadata.json + common.pt, stacked layers, expert axis)",
    R"({"container":"dcp","layout":"megatron","options":[)" CKH_OPT_TP "," CKH_OPT_PP "," CKH_OPT_VPP "," CKH_OPT_PP_LAYERS "," CKH_OPT_EP "," CKH_OPT_ETP
    "," CKH_OPT_VOCAB_DIVISIBLE "," CKH_OPT_VOCAB_PAD "," CKH_OPT_ITERATION "," CKH_OPT_DIST_FILES "," CKH_OPT_DCP_TORCH "]}",
    &kDistWriter};
const ckh_writer_class_t kDcpWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<Writer<plan_dcp>>};
const ckh_component_t kDcpWriterComp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "dcp",
                                        "PyTorch Distributed Checkpoint with HF state-dict names (FSDP2; --dcp-prefix)",
                                        R"({"container":"dcp","layout":"hf","options":[)" CKH_OPT_DIST_FILES "," CKH_OPT_DCP_TORCH
                                        "," CKH_OPT_DCP_PREFIX "," CKH_OPT_DCP_LAYOUT "]}", &kDcpWriter};

}  // namespace

const ckh_component_t *dist_writer_component() { return &kDistWriterComp; }
const ckh_component_t *dcp_writer_component() { return &kDcpWriterComp; }
