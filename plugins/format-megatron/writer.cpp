// writer.cpp — the legacy Megatron per-rank checkpoint layout ("megatron"), and MindSpeed-MM's use of it
// ("mindspeed-mm": the same rank directories, files {"model"[V]: ..., "checkpoint_version": 3.0} without args,
// the vocabulary split exactly as MindSpeed-MM's split_by_tp does, the layers of every tower renumbered per stage):
//
//   <out>/latest_checkpointed_iteration.txt          "release" or the iteration
//   <out>/release|iter_NNNNNNN/mp_rank_TT[_PPP]/model_optim_rng.pt
//
// Each rank file is a torch.save dict {"args": Namespace, "checkpoint_version": 3.0, "iteration": N,
// "model" | "model0".."model{V-1}": OrderedDict(stage-local name -> tensor)}. Inputs are the global,
// unsharded Megatron-Core tensors a model mapper emits (global layer numbers, unpadded vocabulary);
// this writer pads the vocabulary, cuts each tensor for its TP rank by Megatron's rules, renumbers
// layers per pipeline stage and virtual chunk, and copies tied embeddings to the last stage.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "option_decls.hpp"
#include "hf_files.hpp"
#include "megatron_layout.hpp"
#include "megatron_state.hpp"
#include "options.hpp"
#include "writer_glue.hpp"
#include "torch_archive.hpp"
#include "torch_save.hpp"

using nlohmann::json;
using ckh::sdk::fail;
using namespace ckh::megatron;

namespace {

struct Options {
  int tp = 1, pp = 1, vpp = 1, ep = 1, etp = 1;
  std::vector<int64_t> pp_layers;
  std::string stack_pp_spec;                           // --stack-pp-layers as given
  std::map<int, std::vector<int64_t>> stack_pp_layers;  // towers beside the decoder (annotation stack >= 1)
  int64_t divisible_by = 128;
  bool pad_repeat = false;
  int64_t iteration = -1;  // -1: release
  bool mm = false;         // the mindspeed-mm flavour
};

Options parse_options(const json &o) {
  Options r;
  r.tp = static_cast<int>(ckh::plugins::int_option(o, "tp", 1, 1));
  r.pp = static_cast<int>(ckh::plugins::int_option(o, "pp", 1, 1));
  r.vpp = static_cast<int>(ckh::plugins::int_option(o, "vpp", 1, 1));
  r.ep = static_cast<int>(ckh::plugins::int_option(o, "ep", 1, 1));
  r.etp = static_cast<int>(ckh::plugins::int_option(o, "etp", r.tp, 1));
  // Each file mp_rank_TT_PPP_EEE is read by the ranks with TP rank TT and EP rank EEE; with ETP = TP
  // their expert TP rank is TT, with ETP < TP (ranks order TP fastest in both grids, Megatron-Core
  // parallel_state) it is TT % ETP, which needs ETP to divide TP.
  if (r.tp % r.etp != 0)
    fail(CKH_E_INVALID_ARG, "--etp " + std::to_string(r.etp) + " must divide --tp " + std::to_string(r.tp) +
                                " in the per-rank layout (use the torch-dist writer for other expert splits)");
  r.divisible_by = ckh::plugins::int_option(o, "make_vocab_size_divisible_by", 128, 1);
  r.iteration = ckh::plugins::int_option(o, "iteration", -1, -1);
  if (o.contains("pp_layers")) {
    try {
      r.pp_layers = parse_pp_layers(o["pp_layers"].is_string() ? o["pp_layers"].get<std::string>() : o["pp_layers"].dump());
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_INVALID_ARG, e.what());
    }
  }
  if (o.contains("stack_pp_layers") && o["stack_pp_layers"].is_string()) {
    r.stack_pp_spec = o["stack_pp_layers"].get<std::string>();
    try {
      r.stack_pp_layers = parse_stack_pp_layers(r.stack_pp_spec);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_INVALID_ARG, e.what());
    }
  }
  const std::string pad = o.value("vocab_pad", std::string("zeros"));
  if (pad != "zeros" && pad != "repeat") fail(CKH_E_INVALID_ARG, "--vocab-pad must be zeros or repeat");
  r.pad_repeat = pad == "repeat";
  return r;
}

// One rank file being laid out.
struct RankFile {
  std::string relpath;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, ckh_expr>>>> chunks;  // "model"/"modelV"
  ckh::torchfmt::ArchiveLayout archive;
};

struct Writer {
  json options;
  bool mm = false;
  std::vector<std::unique_ptr<RankFile>> files;
  explicit Writer(const json &o, bool mindspeed_mm = false) : options(o), mm(mindspeed_mm) { parse_options(options); }  // validate early
  void plan(const json &meta, ckh_layout_builder_t *lb);
  void finish(const ckh_region_digest_t *digests, uint64_t n, ckh_patcher_t *p) const {
    for (const auto &rf : files) rf->archive.finish(digests, n, p);
  }
};

void plan_ranks(Writer &w, const json &meta, ckh_layout_builder_t *lb) {
  ckh::sdk::Builder b(lb->expr);
  Options opt = parse_options(w.options);
  opt.mm = w.mm;
  if (!meta.contains("args") || !meta["args"].is_object())
    fail(CKH_E_UNSUPPORTED, "the megatron writer needs Megatron args from a model plugin (no mapper produced them)");
  json args = meta["args"];
  const int64_t num_layers = args.value("num_layers", int64_t{0});
  if (num_layers <= 0) fail(CKH_E_FORMAT, "args.num_layers is missing");
  const bool untied = args.value("untie_embeddings_and_output_weights", true);

  // Heads/groups must divide by TP.
  const int64_t groups = args.value("num_query_groups", args.value("num_attention_heads", int64_t{1}));
  if (groups % opt.tp != 0)
    fail(CKH_E_INVALID_ARG, "--tp " + std::to_string(opt.tp) + " does not divide the " + std::to_string(groups) +
                                " query groups (Megatron needs num_query_groups % TP == 0)");

  // Every tensor's split and pipeline place come from the mapper's annotations (SDK 1.1), never from
  // its name: a tensor without them is refused by name.
  struct In {
    std::string name;
    ckh_tensor_info_t info;
    ckh_expr e;
    ckh_tensor_annot_t annot;
    Split split;
    int64_t expert;  // global expert index, -1 for a dense tensor
  };
  std::vector<In> ins;
  int64_t vocab = -1;
  bool vocab_uneven = false;  // the mapper asks for MindSpeed-MM's unaligned vocabulary split
  for (uint64_t i = 0; i < b.input_count(); ++i) {
    In x{b.input_info(i).name, b.input_info(i), b.input_at(i), b.input_annot(i), Split::Replicated, -1};
    try {
      x.split = split_from_annot(x.annot, x.name);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_INVALID_ARG, e.what());
    }
    if (is_expert(x.annot)) {
      x.expert = x.annot.expert;
      const auto en = parse_expert_name(x.name);
      if (!en || en->expert != x.expert)
        fail(CKH_E_FORMAT, "tensor '" + x.name + "' is annotated as expert " + std::to_string(x.expert) +
                               " but its name does not carry that expert number");
    }
    if (x.split == Split::Vocab) {
      if (vocab >= 0 && vocab != x.info.shape[0])
        fail(CKH_E_FORMAT, "tensor '" + x.name + "' has " + std::to_string(x.info.shape[0]) + " vocabulary rows, expected " +
                               std::to_string(vocab));
      vocab = x.info.shape[0];
      if (x.annot.extra_json) {
        const json j = json::parse(x.annot.extra_json, nullptr, false);
        vocab_uneven = vocab_uneven || (j.is_object() && j.value("split_uneven", false) == true);
      }
    }
    ins.push_back(x);
  }
  if (opt.mm && vocab > 0 && vocab % opt.tp != 0 && !vocab_uneven)
    fail(CKH_E_INVALID_ARG, "MindSpeed-MM splits the vocabulary exactly: " + std::to_string(vocab) +
                                " rows do not divide by --tp " + std::to_string(opt.tp));
  const int64_t padded = vocab > 0 ? (opt.mm ? vocab : padded_vocab(vocab, opt.divisible_by, opt.tp)) : -1;
  // Expert parallelism: whole experts per EP rank, numbered from 0 in each rank's files.
  const int64_t num_experts = args.contains("num_experts") && args["num_experts"].is_number_integer() ? args["num_experts"].get<int64_t>() : 0;
  bool any_expert = false;
  for (const auto &x : ins) any_expert = any_expert || x.expert >= 0;
  if (any_expert && num_experts <= 0) fail(CKH_E_FORMAT, "expert tensors but no args.num_experts from the model plugin");
  if (!any_expert && (opt.ep > 1 || w.options.contains("etp")))
    fail(CKH_E_INVALID_ARG, std::string(opt.ep > 1 ? "--ep" : "--etp") + " applies to MoE models; this model has no expert tensors");
  ExpertParallel epl;
  if (any_expert) {
    try {
      epl = make_expert_parallel(num_experts, opt.ep);
    } catch (const std::invalid_argument &e) {
      fail(CKH_E_INVALID_ARG, e.what());
    }
    std::map<std::string, std::vector<int64_t>> seen;  // per expert parameter (name with expert 0): experts
    for (const auto &x : ins)
      if (x.expert >= 0) seen[parse_expert_name(x.name)->with(0)].push_back(x.expert);
    for (const auto &[what, found] : seen) {
      try {
        check_expert_cover(what, found, num_experts);
      } catch (const std::invalid_argument &e) {
        fail(CKH_E_FORMAT, e.what());
      }
    }
  }
  // Pipeline placement per stack: the decoder's layers from args, each tower's from its annotations.
  std::map<int, int64_t> stack_layers{{0, num_layers}};
  for (const auto &x : ins) {
    const int st = CKH_HAS_FIELD(&x.annot, ckh_tensor_annot_t, stack) ? x.annot.stack : 0;
    if (st < 0) fail(CKH_E_FORMAT, "tensor '" + x.name + "': negative stack " + std::to_string(st));
    if (st != 0) {
      int64_t &n = stack_layers[st];
      if (x.annot.role == CKH_ROLE_LAYER) n = std::max<int64_t>(n, x.annot.layer + 1);
    }
  }
  StackPipelines pls;
  try {
    pls = make_stack_pipelines(stack_layers, opt.pp, opt.vpp, opt.pp_layers, opt.stack_pp_layers);
  } catch (const std::exception &e) {
    fail(CKH_E_INVALID_ARG, e.what());
  }

  // A mapper may state how a split keeps rows together, in the annotation's extra JSON: "split_unit": N (every
  // TP part whole N-row units, e.g. one head of a per-head fused qkv), "split_parts": K (the tensor is K equal
  // parts along the split dim, e.g. [Q; K; V], each cut on its own and rank t taking [part_0,t; part_1,t; ...])
  // and "split_uneven": true (units that do not divide by TP go one each to the lowest ranks, as MindSpeed-MM's
  // Unaligned*Split do for InternViT-6B's 25 heads and odd vocabularies).
  struct SplitRule {
    int64_t unit = 1, parts = 1;
    bool uneven = false;
  };
  std::map<std::string, SplitRule> split_rule;
  for (const auto &x : ins) {
    if (!x.annot.extra_json) continue;
    const json j = json::parse(x.annot.extra_json, nullptr, false);
    if (!j.is_object()) continue;
    SplitRule r;
    if (j.contains("split_unit") && j["split_unit"].is_number_integer() && j["split_unit"].get<int64_t>() > 0)
      r.unit = j["split_unit"].get<int64_t>();
    if (j.contains("split_parts") && j["split_parts"].is_number_integer() && j["split_parts"].get<int64_t>() > 0)
      r.parts = j["split_parts"].get<int64_t>();
    r.uneven = j.value("split_uneven", false) == true;
    if (r.unit != 1 || r.parts != 1 || r.uneven) split_rule[x.name] = r;
  }
  // The TP slice of tensor x for rank t.
  auto shard = [&](const std::string &name, ckh_expr e, const ckh_tensor_info_t &info, Split s, int t,
                   bool expert = false) -> ckh_expr {
    const int T = expert ? opt.etp : opt.tp;
    if (expert) t %= opt.etp;
    const auto rule_it = split_rule.find(name);
    const SplitRule rule = rule_it == split_rule.end() ? SplitRule{} : rule_it->second;
    // Rank t's rows of a dim of n rows: whole units, evenly or (uneven) the first ranks one unit more.
    auto span = [&](uint32_t dim, int64_t n) -> std::pair<int64_t, int64_t> {
      const std::string what = expert ? "--etp " : "--tp ";
      if (n % rule.unit != 0)
        fail(CKH_E_FORMAT, "tensor '" + name + "': dim " + std::to_string(dim) + " of size " + std::to_string(n) +
                               " is not a whole number of " + std::to_string(rule.unit) + "-row units");
      const int64_t units = n / rule.unit;
      if (!rule.uneven && units % T != 0) {
        if (rule.unit == 1)
          fail(CKH_E_INVALID_ARG, "tensor '" + name + "': dim " + std::to_string(dim) + " of size " + std::to_string(n) +
                                      " does not divide by " + what + std::to_string(T));
        fail(CKH_E_INVALID_ARG, "tensor '" + name + "': a " + what + std::to_string(T) + " part of " + std::to_string(n) + " / " +
                                    std::to_string(T) + " rows is not a whole number of " + std::to_string(rule.unit) +
                                    "-row units (heads), which the model keeps together");
      }
      if (units < T) fail(CKH_E_INVALID_ARG, "tensor '" + name + "': " + std::to_string(units) + " units cannot be split over " + what + std::to_string(T));
      const int64_t base = units / T, extra = units % T;
      const int64_t start = t * base + std::min<int64_t>(t, extra), len = base + (t < extra ? 1 : 0);
      return {start * rule.unit, len * rule.unit};
    };
    auto cut = [&](ckh_expr x, uint32_t dim, int64_t n) {
      if (rule.parts == 1) {
        const auto [start, len] = span(dim, n);
        return b.slice(x, dim, start, len);
      }
      if (n % rule.parts != 0)
        fail(CKH_E_FORMAT, "tensor '" + name + "': dim " + std::to_string(dim) + " of size " + std::to_string(n) + " is not " +
                               std::to_string(rule.parts) + " equal parts");
      const int64_t part = n / rule.parts;
      const auto [start, len] = span(dim, part);
      std::vector<ckh_expr> pieces;
      for (int64_t k = 0; k < rule.parts; ++k) pieces.push_back(b.slice(x, dim, k * part + start, len));
      return b.concat(pieces, dim);
    };
    switch (s) {
      case Split::Replicated: return e;
      case Split::Column: return cut(e, 0, info.shape[0]);
      case Split::Row: return info.ndim >= 2 ? cut(e, 1, info.shape[1]) : e;
      case Split::Vocab: {
        ckh_expr p = padded > info.shape[0]
                         ? b.pad(e, 0, 0, padded - info.shape[0], opt.pad_repeat ? CKH_PAD_REPEAT_EDGE : CKH_PAD_ZEROS)
                         : e;
        return cut(p, 0, padded);
      }
      case Split::Swiglu: {
        const int64_t half = info.shape[0] / 2;
        if (info.shape[0] % 2 != 0) fail(CKH_E_FORMAT, "tensor '" + name + "': fused fc1 has an odd number of rows");
        ckh_expr gate = b.slice(e, 0, 0, half), up = b.slice(e, 0, half, half);
        return b.concat({cut(gate, 0, half), cut(up, 0, half)}, 0);
      }
    }
    return e;
  };

  const std::string iter_dir = iteration_dir(opt.iteration < 0 ? 0 : opt.iteration, opt.iteration < 0);
  const ckh_expr *embedding = nullptr;
  const In *emb_in = nullptr;
  bool legacy = false;  // pre-Core names: language_model.*, saved as nested dicts
  for (const auto &x : ins)
    // The token embedding: the decoder's embedding split over the vocabulary (other input-side tensors a
    // model annotates as embeddings, e.g. a DiT's patch and time embeddings, only go to the first stage).
    if (x.annot.role == CKH_ROLE_EMBEDDING && x.split == Split::Vocab &&
        !(CKH_HAS_FIELD(&x.annot, ckh_tensor_annot_t, stack) && x.annot.stack != 0)) {
      if (embedding) fail(CKH_E_FORMAT, "tensors '" + emb_in->name + "' and '" + x.name + "' are both annotated as the embedding");
      embedding = &x.e;
      emb_in = &x;
      legacy = x.name.rfind("language_model.", 0) == 0;  // the naming convention decides the file's nesting
    }

  bool has_mtp = false;
  for (const auto &x : ins) has_mtp = has_mtp || x.annot.role == CKH_ROLE_MTP;
  // Each tensor's place, once: pipeline stage and virtual chunk, the name in its rank files, its EP rank.
  struct Placed {
    size_t in;
    int sv;
    int64_t ep;  // EP rank of an expert tensor, -1 for a dense one
    std::string local;
  };
  std::vector<std::vector<Placed>> by_stage(static_cast<size_t>(opt.pp));  // in `ins` order
  for (size_t i = 0; i < ins.size(); ++i) {
    const In &x = ins[i];
    int sp = 0, sv = 0;
    std::string local = x.name;
    // The pipeline place from the annotated role and layer; the name only gets its layer renumbered
    // within the stage (Megatron names layers "<prefix>layers.<L>.").
    const int st = CKH_HAS_FIELD(&x.annot, ckh_tensor_annot_t, stack) ? x.annot.stack : 0;
    auto at_stage = [&](int vs) {
      sv = vs / opt.pp;
      sp = vs % opt.pp;
    };
    if (x.annot.role == CKH_ROLE_LAYER) {
      const auto ln = st == 0 && !opt.mm ? parse_layer_name(x.name) : find_layer_name(x.name, x.annot.layer);
      if (!ln || ln->layer != x.annot.layer)
        fail(CKH_E_FORMAT, "tensor '" + x.name + "' is annotated as layer " + std::to_string(x.annot.layer) +
                               " but its name does not carry that layer number");
      int64_t li;
      try {
        pls.of(st).locate(ln->layer, sp, sv, li);
      } catch (const std::exception &e) {
        fail(CKH_E_FORMAT, "tensor '" + x.name + "': " + e.what());
      }
      local = ln->prefix + std::to_string(li) + "." + ln->rest;
    } else if (st != 0 && (x.annot.role == CKH_ROLE_EMBEDDING || x.annot.role == CKH_ROLE_ENCODER ||
                           x.annot.role == CKH_ROLE_POSITION)) {
      at_stage(pls.first_stage(st));  // a tower's own embeddings and projector sit with its first layer
    } else if (st != 0 && (x.annot.role == CKH_ROLE_FINAL_NORM || x.annot.role == CKH_ROLE_OUTPUT)) {
      at_stage(pls.last_stage(st));
    } else if (x.annot.role == CKH_ROLE_EMBEDDING) {
      sp = 0;
      sv = 0;
    } else if (x.annot.role == CKH_ROLE_FINAL_NORM || x.annot.role == CKH_ROLE_OUTPUT || x.annot.role == CKH_ROLE_MTP) {
      sp = opt.pp - 1;  // MTP layers run after the decoder, beside the output layer (Megatron-Core)
      sv = opt.vpp - 1;
    } else {
      fail(CKH_E_UNSUPPORTED, "tensor '" + x.name + "': its annotation gives no pipeline stage (role " +
                                  std::to_string(x.annot.role) + "; embedding, layer, final norm or output expected)");
    }
    int64_t ep = -1;
    if (x.expert >= 0) {
      ep = epl.rank_of(x.expert);
      local = parse_expert_name(local)->with(epl.local_of(x.expert));
    }
    by_stage[static_cast<size_t>(sp)].push_back({i, sv, ep, std::move(local)});
  }
  for (int p = 0; p < opt.pp; ++p)
    for (int ep = 0; ep < opt.ep; ++ep)
    for (int t = 0; t < opt.tp; ++t) {
      auto rf = std::make_unique<RankFile>();
      rf->relpath = iter_dir + "/" + rank_dir(t, p, ep, opt.pp, opt.ep) + "/model_optim_rng.pt";
      for (int v = 0; v < opt.vpp; ++v)
        rf->chunks.push_back({opt.vpp == 1 ? std::string("model") : "model" + std::to_string(v), {}});
      for (const Placed &pl : by_stage[static_cast<size_t>(p)]) {
        if (pl.ep >= 0 && pl.ep != ep) continue;
        const In &x = ins[pl.in];
        rf->chunks[static_cast<size_t>(pl.sv)].second.push_back({pl.local, shard(x.name, x.e, x.info, x.split, t, x.expert >= 0)});
      }
      // MTP layers embed the shifted tokens on the last stage: Megatron-Core keeps a copy of the
      // embedding there (GPTModel with mtp_process and not pre_process).
      if (has_mtp && opt.pp > 1 && p == opt.pp - 1 && embedding) {
        const std::string emb = emb_in->name;
        rf->chunks.back().second.push_back({emb, shard(emb, *embedding, emb_in->info, Split::Vocab, t)});
      }
      // Tied embeddings: the last stage keeps its own copy as output_layer (Megatron-Core).
      if (!untied && opt.pp > 1 && p == opt.pp - 1 && embedding) {
        // Beside the embedding's module: output_layer.weight, text_decoder.output_layer.weight (MindSpeed-MM).
        const std::string emb_suffix = "embedding.word_embeddings.weight";
        const std::string &en = emb_in->name;
        const std::string head = legacy ? "word_embeddings_for_head.weight"
                                 : en.size() >= emb_suffix.size() && en.compare(en.size() - emb_suffix.size(), emb_suffix.size(), emb_suffix) == 0
                                     ? en.substr(0, en.size() - emb_suffix.size()) + "output_layer.weight"
                                     : std::string("output_layer.weight");
        rf->chunks.back().second.push_back({head, shard(emb_in->name, *embedding, emb_in->info, Split::Vocab, t)});  // the embedding's split
      }
      w.files.push_back(std::move(rf));
    }

  // Args as Megatron records them.
  const int64_t iteration = opt.iteration < 0 ? 0 : opt.iteration;
  ckh::megatron::record_parallel_args(args, {opt.tp, opt.pp, opt.vpp, opt.pp_layers, num_layers, opt.divisible_by, padded,
                                            iteration, opt.ep, any_expert ? opt.etp : 0});
  if (stack_layers.size() > 1) args["ckhost_stack_pp_layers"] = opt.stack_pp_spec;  // towers' distributions

  for (auto &rf : w.files) {
    ckh::torchfmt::Pickler pk;
    std::vector<std::pair<ckh_expr, ckh_tensor_info_t>> tensors;
    pk.empty_dict();
    pk.mark();
    if (opt.mm) {  // MindSpeed-MM's save_by_vpp: the model chunks and the checkpoint version only; its DiT
                   // converters' save_as_mm writes the model alone without VPP (the mapper says which)
      if (!(meta.value("mm_payload", std::string()) == "model_only" && opt.vpp == 1)) {
        pk.str("checkpoint_version");
        pk.real(3.0);
      }
    } else {
      ckh::megatron::put_common_entries(pk, args, iteration);
    }
    auto put_tensor = [&](const std::string &name, ckh_expr e) {
      const ckh_tensor_info_t info = b.info(e);
      if (!ckh::torchfmt::picklable(info.dtype))
        fail(CKH_E_UNSUPPORTED, "tensor '" + name + "': this dtype cannot be stored in a torch checkpoint");
      pk.tensor(std::to_string(tensors.size()), info.dtype, std::vector<int64_t>(info.shape, info.shape + info.ndim));
      tensors.push_back({e, info});
    };
    for (const auto &[key, entries] : rf->chunks) {
      pk.str(key);
      if (!legacy) {
        pk.global("collections", "OrderedDict");
        pk.empty_tuple();
        pk.reduce();
        if (!entries.empty()) {
          pk.mark();
          for (const auto &[name, e] : entries) {
            pk.str(name);
            put_tensor(name, e);
          }
          pk.setitems();
        }
        continue;
      }
      // Legacy models save nested module dicts: {"language_model": {"embedding": {"word_embeddings":
      // {"weight": T}}, "encoder": {"layers.0.input_norm.weight": T, ...}, "output_layer": {...}}}.
      struct NodeT {
        std::string name;
        std::vector<NodeT> kids;
        int entry = -1;
      };
      NodeT root;
      for (size_t i = 0; i < entries.size(); ++i) {
        const std::string &name = entries[i].first;
        std::vector<std::string> path;
        const std::string enc = "language_model.encoder.";
        if (name.rfind(enc, 0) == 0) path = {"language_model", "encoder", name.substr(enc.size())};
        else {
          std::stringstream ss(name);
          std::string part;
          while (std::getline(ss, part, '.')) path.push_back(part);
        }
        NodeT *n = &root;
        for (const auto &part : path) {
          auto it = std::find_if(n->kids.begin(), n->kids.end(), [&](const NodeT &k) { return k.name == part; });
          if (it == n->kids.end()) {
            n->kids.push_back(NodeT{part, {}, -1});
            it = n->kids.end() - 1;
          }
          n = &*it;
        }
        n->entry = static_cast<int>(i);
      }
      std::function<void(const NodeT &)> emit_node = [&](const NodeT &n) {
        if (n.entry >= 0) {
          put_tensor(entries[static_cast<size_t>(n.entry)].first, entries[static_cast<size_t>(n.entry)].second);
          return;
        }
        pk.empty_dict();
        if (n.kids.empty()) return;
        pk.mark();
        for (const auto &k : n.kids) {
          pk.str(k.name);
          emit_node(k);
        }
        pk.setitems();
      };
      emit_node(root);
    }
    pk.setitems();
    pk.stop();
    std::vector<ckh_expr> exprs;
    std::vector<uint64_t> sizes;
    for (const auto &[e, info] : tensors) {
      uint64_t bytes = ckh_dtype_size(info.dtype);
      for (uint32_t d = 0; d < info.ndim; ++d) bytes *= static_cast<uint64_t>(info.shape[d]);
      exprs.push_back(e);
      sizes.push_back(bytes);
    }
    rf->archive.plan(lb, rf->relpath, pk.bytes(), exprs, sizes);
    decltype(rf->chunks)().swap(rf->chunks);  // laid out: only the archive is needed for finish()
  }
  const std::string tracker = opt.iteration < 0 ? std::string("release") : std::to_string(opt.iteration);
  if (lb->add_small_file(lb, "latest_checkpointed_iteration.txt", tracker.data(), tracker.size()) != CKH_OK)
    throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_small_file failed", true);
  // Side files (tokenizer, config) go next to the tracker so the checkpoint can be converted back.
  ckh::plugins::copy_side_files_to(lb, meta, "hf");
}

void Writer::plan(const json &meta, ckh_layout_builder_t *lb) { plan_ranks(*this, meta, lb); }

const ckh_writer_class_t kWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<Writer>};
const ckh_component_t kWriterComp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "megatron",
                                     "Megatron-LM per-rank torch checkpoints (TP/PP/VPP/EP/ETP, model_optim_rng.pt)",
                                     R"({"container":"torch-zip","layout":"megatron","options":[)" CKH_OPT_TP "," CKH_OPT_PP
                                     "," CKH_OPT_EP "," CKH_OPT_ETP
                                     "," CKH_OPT_VPP "," CKH_OPT_PP_LAYERS "," CKH_OPT_STACK_PP_LAYERS "," CKH_OPT_VOCAB_DIVISIBLE "," CKH_OPT_VOCAB_PAD
                                     "," CKH_OPT_ITERATION "]}", &kWriter};

}  // namespace

const ckh_component_t *megatron_writer_component() { return &kWriterComp; }

namespace {
struct MmWriter : Writer {
  explicit MmWriter(const json &o) : Writer(o, true) {}
};
const ckh_writer_class_t kMmWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<MmWriter>};
const ckh_component_t kMmWriterComp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "mindspeed-mm",
                                       "MindSpeed-MM checkpoints (mm-convert hf_to_mm layout: per-rank model_optim_rng.pt, "
                                       "image_encoder.* / text_decoder.*, towers with their own pipeline layers)",
                                       R"({"container":"torch-zip","layout":"mindspeed-mm","options":[)" CKH_OPT_TP "," CKH_OPT_PP
                                       "," CKH_OPT_VPP "," CKH_OPT_PP_LAYERS "," CKH_OPT_STACK_PP_LAYERS "," CKH_OPT_EP "," CKH_OPT_ITERATION "]}",
                                       &kMmWriter};
}  // namespace

const ckh_component_t *mindspeed_mm_writer_component() { return &kMmWriterComp; }
