// chain.cpp — chain composition and plan validation.
#include "ckhost/host/chain.hpp"

#include <filesystem>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <regex>
#include <set>
#include <unordered_map>

#include "ckhost/host/error.hpp"
#include "ckhost/host/pairs.hpp"
#include "ckhost/host/services.hpp"

namespace ckh::host {

void check_plugin(ckh_status st, const std::string &who) {
  auto le = take_last_error();
  if (st == CKH_OK) return;
  std::string msg = le.second.empty() ? who + " failed with status " + std::to_string(st) : le.second;
  throw Error(msg, le.first ? le.first : st);
}

void ReaderDeleter::operator()(ckh_reader_t *r) const {
  if (r && r->destroy) r->destroy(r);
}
void WriterDeleter::operator()(ckh_writer_t *w) const {
  if (w && w->destroy) w->destroy(w);
}

std::string stage_metadata(const Graph &g) { return g.stages.back().metadata.dump(); }

namespace {

std::string layout_of(const Stage &s) {
  auto it = s.metadata.find("layout");
  return it != s.metadata.end() && it->is_string() ? it->get<std::string>() : std::string("hf");
}

std::string cap(const Component &c, const char *key) {
  auto it = c.capabilities.find(key);
  return it != c.capabilities.end() && it->is_string() ? it->get<std::string>() : std::string();
}

bool is_fp8_codes(ckh_dtype dt) { return dt == CKH_DT_F8_E4M3FN || dt == CKH_DT_F8_E5M2; }

// Sets src.quant from the dtype (FP8 codes, E8M0 scales) and from a reader's annotation
// {"quant": {"role": "codes", "scales": [..]}} or {"quant": {"role": "scale", "of": NAME}}.
void mark_quantized(Source &src, const Annot &an) {
  if (src.dtype == CKH_DT_F8_E8M0) src.quant = QuantRole::Scale;
  else if (is_fp8_codes(src.dtype)) src.quant = QuantRole::Codes;
  if (an.extra_json.empty()) return;
  const auto j = nlohmann::json::parse(an.extra_json, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("quant") || !j["quant"].is_object()) return;
  const auto &q = j["quant"];
  const std::string role = q.value("role", std::string());
  if (role == "codes") {
    src.quant = QuantRole::Codes;
    if (q.contains("scales") && q["scales"].is_array() && !q["scales"].empty() && q["scales"][0].is_string())
      src.quant_pair = q["scales"][0].get<std::string>();
    // The block of the scales where the reader knows it (e.g. the HF config's weight_block_size).
    if (q.contains("block") && q["block"].is_array() && q["block"].size() == 2 && q["block"][0].is_number_integer() &&
        q["block"][1].is_number_integer() && q["block"][0].get<int64_t>() > 0 && q["block"][1].get<int64_t>() > 0)
      src.quant_block = {q["block"][0].get<int64_t>(), q["block"][1].get<int64_t>()};
  } else if (role == "scale") {
    src.quant = QuantRole::Scale;
    if (q.contains("of") && q["of"].is_string()) src.quant_pair = q["of"].get<std::string>();
  }
}

}  // namespace

namespace {

// True when quantize node `n` is an SDK 1.1 quantizer that receives every quantized input in its own
// dtype, codes together with their scales: it then works on whole pairs, and its outputs are its own.
// `q` is the taint of quantized_inputs(), already computed for n's inputs (they precede n).
bool quantizer_takes_pairs(const Graph &g, const Node &n, const std::vector<int32_t> &q) {
  if (!g.quants[static_cast<size_t>(n.quant)].v11) return false;
  std::set<std::string> names;
  for (int32_t in : n.in)
    if (g.node(in).op == Op::Source) names.insert(g.sources[static_cast<size_t>(g.node(in).source)].name);
  // Lifted pairs (pairs.hpp): codes cut like a tensor, with the scales of exactly that cut beside them.
  std::set<int32_t> ins(n.in.begin(), n.in.end());
  bool lifted = true;
  for (int32_t in : n.in) {
    if (q[static_cast<size_t>(in)] < 0) continue;
    auto p = g.pairs.find(in);
    if (p != g.pairs.end() && ins.count(p->second.scale)) continue;
    bool is_scale = false;
    for (int32_t other : n.in)
      if (auto po = g.pairs.find(other); po != g.pairs.end() && po->second.scale == in) is_scale = true;
    if (!is_scale) lifted = false;
  }
  if (lifted) return true;
  for (int32_t in : n.in) {
    if (q[static_cast<size_t>(in)] < 0) continue;
    const Node &c = g.node(in);
    // A derived (sliced, cast, ...) quantized input is not a pair the quantizer can interpret.
    if (c.op != Op::Source) return false;
    const Source &src = g.sources[static_cast<size_t>(c.source)];
    if (src.quant_pair.empty() || !names.count(src.quant_pair)) return false;
  }
  return true;
}

}  // namespace

std::vector<int32_t> quantized_inputs(const Graph &g, bool with_pairs) {
  std::set<int32_t> paired;  // seeded pairs: checked by pairs.hpp instead
  if (!with_pairs)
    for (const auto &kv : g.pairs)
      if (g.node(kv.first).op == Op::Source) {
        paired.insert(kv.first);
        paired.insert(kv.second.scale);
      }
  std::vector<int32_t> q(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = g.nodes[i];
    if (n.op == Op::Source) {
      if (g.sources[static_cast<size_t>(n.source)].quant != QuantRole::None && !paired.count(static_cast<int32_t>(i)))
        q[i] = n.source;
      continue;
    }
    if (n.op == Op::Quantize && quantizer_takes_pairs(g, n, q)) continue;  // dequantized (or requantized) as pairs
    for (int32_t in : n.in)
      if (in >= 0 && static_cast<size_t>(in) < i && q[static_cast<size_t>(in)] >= 0) {
        q[i] = q[static_cast<size_t>(in)];
        break;
      }
  }
  return q;
}

namespace {

std::string quant_what(const Source &s) {
  std::string w = "tensor '" + s.name + "' holds quantized ";
  if (s.quant == QuantRole::Codes)
    w += "codes (" + dtype_name(s.dtype) + (s.quant_pair.empty() ? std::string()
                                                                   : ", scales in '" + s.quant_pair + "'") + ")";
  else
    w += "scales (" + dtype_name(s.dtype) + (s.quant_pair.empty() ? std::string() : " of '" + s.quant_pair + "'") + ")";
  return w;
}

const char *kQuantUnsupported =
    "converting quantized tensors is not supported yet: only same-dtype copies and reshards of them are";

// Throws when node `e` depends on a quantized source but is not that source unchanged.
void check_unchanged(const Graph &g, const std::vector<int32_t> &q, int32_t e, const std::string &who) {
  if (e < 0 || q[static_cast<size_t>(e)] < 0) return;
  const Node &n = g.node(e);
  const Source &s = g.sources[static_cast<size_t>(q[static_cast<size_t>(e)])];
  if (n.op == Op::Source && n.dtype == s.dtype && n.shape == s.shape) return;
  std::string expr = g.describe(e);
  if (expr.size() > 160) expr = expr.substr(0, 157) + "...";
  fail(quant_what(s) + ": " + who + " would change it (" + expr + "); " + kQuantUnsupported, CKH_E_UNSUPPORTED);
}

}  // namespace

void check_quantized(const Graph &g) {
  const std::vector<int32_t> q = quantized_inputs(g, false);
  for (const Region &r : g.layout.regions) check_unchanged(g, q, r.node, "the writer's layout");
  // A pair travels whole: codes written without their scales (or scales without their codes) are wrong
  // weights for every consumer.
  std::set<std::string> written;
  for (const Region &r : g.layout.regions)
    if (q[static_cast<size_t>(r.node)] >= 0) written.insert(g.sources[static_cast<size_t>(q[static_cast<size_t>(r.node)])].name);
  for (const Source &s : g.sources)
    if (s.quant != QuantRole::None && written.count(s.name) && !s.quant_pair.empty() && !written.count(s.quant_pair))
      fail(quant_what(s) + ": the output would hold it without '" + s.quant_pair +
               "' (a quantized tensor and its scales are one tensor: write both or dequantize them)",
           CKH_E_UNSUPPORTED);
}

OpenedSource open_source(const Registry &reg, Graph &g, const std::string &path, const std::string &from,
                         const nlohmann::json &options) {
  OpenedSource os = open_reader(reg, path, from, options);
  import_catalog(g, os, g.add_stage("reader " + os.reader->id));
  return os;
}

OpenedSource open_reader(const Registry &reg, const std::string &path, const std::string &from, const nlohmann::json &options) {
  OpenedSource os;
  if (!from.empty()) {
    os.reader = reg.find(CKH_COMPONENT_READER, from);
    if (!os.reader) fail("no reader for format '" + from + "' (see ckhost --list-plugins)", CKH_E_NOT_FOUND);
  } else {
    int32_t best = 0;
    for (const Component *c : reg.all(CKH_COMPONENT_READER)) {
      int32_t s = 0;
      try {
        s = c->reader()->probe(c->reader(), path.c_str());
      } catch (...) {
        s = 0;
      }
      clear_last_error();
      if (s > best) {
        best = s;
        os.reader = c;
      }
    }
    if (!os.reader) fail(path + ": no reader recognises this checkpoint (give --from; see ckhost --list-plugins)", CKH_E_NOT_FOUND);
  }
  ckh_reader_t *r = nullptr;
  clear_last_error();
  ckh_status st = os.reader->reader()->open(os.reader->reader(), path.c_str(), options.dump().c_str(), &r);
  os.handle.reset(r);
  check_plugin(st, "reader " + os.reader->id);
  if (!r) fail("reader " + os.reader->id + " returned no reader", CKH_E_INTERNAL);

  // Two-phase open (SDK 1.1): the model plugin that fits the reader's metadata tells it what the files
  // alone cannot (e.g. whether an MLP is gated); the reader completes its catalog with that.
  if (CKH_HAS_FIELD(r, ckh_reader_t, apply_hints) && r->apply_hints) {
    const char *m0 = r->metadata_json(r);
    const std::string meta0 = m0 ? m0 : "{}";
    auto mj = nlohmann::json::parse(meta0, nullptr, false);
    const std::string layout = mj.is_object() && mj.contains("layout") && mj["layout"].is_string()
                                   ? mj["layout"].get<std::string>() : std::string("hf");
    const Component *best = nullptr;
    int32_t best_score = 0;
    for (const Component *c : reg.all(CKH_COMPONENT_MAPPER)) {
      const ckh_mapper_class_t *mc = c->mapper();
      if (cap(*c, "from") != layout || cap(*c, "family") == "*" || !CKH_HAS_FIELD(mc, ckh_mapper_class_t, reader_hints) ||
          !mc->reader_hints)
        continue;
      int32_t sc = 0;
      try {
        sc = mc->probe(mc, meta0.c_str());
      } catch (...) {
        sc = 0;
      }
      clear_last_error();
      if (sc > best_score || (sc == best_score && sc > 0 && cap(*c, "to") == "hf")) {
        best_score = sc;
        best = c;
      }
    }
    std::string hints = "{}";
    if (best) {
      struct Sink {
        std::string text;
        int calls = 0;
      } sink;
      clear_last_error();
      ckh_status hs = best->mapper()->reader_hints(best->mapper(), options.dump().c_str(), meta0.c_str(), &sink,
                                                   [](void *ctx, const char *t) -> ckh_status {
                                                     auto *k = static_cast<Sink *>(ctx);
                                                     k->text = t ? t : "";
                                                     ++k->calls;
                                                     return CKH_OK;
                                                   });
      check_plugin(hs, "mapper " + best->id + " (reader hints)");
      if (sink.calls) {
        auto hj = nlohmann::json::parse(sink.text, nullptr, false);
        if (hj.is_discarded() || !hj.is_object())
          fail("mapper " + best->id + ": reader hints are not a JSON object: " + sink.text.substr(0, 80), CKH_E_INTERNAL);
        hints = hj.dump();
      }
    }
    clear_last_error();
    check_plugin(r->apply_hints(r, hints.c_str()), "reader " + os.reader->id);
    os.hints = hints;
    os.hinted_by = best ? best->id : "";
  }

  return os;
}

void import_catalog(Graph &g, const OpenedSource &os, Stage &s0) {
  ckh_reader_t *r = os.handle.get();
  const uint32_t nf = r->file_count(r);
  const uint32_t base = static_cast<uint32_t>(g.files.size());
  for (uint32_t i = 0; i < nf; ++i) {
    const char *p = r->file_path(r, i);
    if (!p) fail("reader " + os.reader->id + ": file " + std::to_string(i) + " has no path", CKH_E_INTERNAL);
    g.files.emplace_back(p);
  }
  const uint64_t nt = r->tensor_count(r);
  for (uint64_t i = 0; i < nt; ++i) {
    ckh_tensor_info_t ti{};
    ti.struct_size = sizeof ti;
    check_plugin(r->tensor_info(r, i, &ti), "reader " + os.reader->id);
    if (!ti.name) fail("reader " + os.reader->id + ": tensor " + std::to_string(i) + " has no name", CKH_E_INTERNAL);
    if (ti.ndim > CKH_MAX_DIMS) fail(std::string("tensor '") + ti.name + "': too many dims", CKH_E_FORMAT);
    Source src;
    src.name = ti.name;
    src.dtype = ti.dtype;
    src.shape.ndim = ti.ndim;
    for (uint32_t d = 0; d < ti.ndim; ++d) {
      if (ti.shape[d] < 0) fail("tensor '" + src.name + "': negative dimension", CKH_E_FORMAT);
      src.shape.d[d] = ti.shape[d];
    }
    if (storage_size(src.dtype) == 0)
      fail("tensor '" + src.name + "': dtype " + dtype_name(src.dtype) + " is not supported by the host", CKH_E_UNSUPPORTED);
    const uint32_t be = block_elems(src.dtype);  // block dtypes: the last dim counts blocks inside the host
    src.shape = storage_shape(src.dtype, src.shape, "tensor '" + src.name + "'");
    const uint32_t np = r->piece_count(r, i);
    for (uint32_t j = 0; j < np; ++j) {
      ckh_piece_t pc{};
      pc.struct_size = sizeof pc;
      check_plugin(r->piece(r, i, j, &pc), "reader " + os.reader->id);
      Piece p;
      p.file = base + pc.file;
      if (pc.file >= nf) fail("tensor '" + src.name + "': piece names file #" + std::to_string(pc.file), CKH_E_FORMAT);
      p.byte_offset = pc.byte_offset;
      bool any_stride = false;
      for (uint32_t d = 0; d < ti.ndim; ++d) {
        p.offset[d] = pc.offset[d];
        p.size[d] = pc.size[d];
        p.stride[d] = pc.stride[d];
        any_stride = any_stride || pc.stride[d] != 0;
      }
      if (be > 1) {
        const uint32_t l = ti.ndim - 1;
        if (any_stride)
          fail("tensor '" + src.name + "': " + dtype_name(src.dtype) + " pieces must be contiguous (no strides)", CKH_E_FORMAT);
        if (p.offset[l] % be || p.size[l] % be)
          fail("tensor '" + src.name + "': a piece cuts " + dtype_name(src.dtype) + " blocks along the last dim", CKH_E_FORMAT);
        p.offset[l] /= be;
        p.size[l] /= be;
      }
      if (!any_stride) {
        int64_t acc = 1;
        for (int d = static_cast<int>(ti.ndim) - 1; d >= 0; --d) {
          p.stride[static_cast<size_t>(d)] = acc;
          acc *= p.size[static_cast<size_t>(d)];
        }
      }
      src.pieces.push_back(p);
    }
    g.sources.push_back(std::move(src));
    const int32_t node = g.source_node(static_cast<int32_t>(g.sources.size() - 1));
    StageTensor t{g.sources.back().name, node, {}};
    if (r->tensor_annot) {
      ckh_tensor_annot_t a{};
      a.struct_size = sizeof a;
      a.layer = -1;
      a.expert = -1;
      a.split_dim = -1;
      if (r->tensor_annot(r, i, &a) == CKH_OK) t.annot = Annot::from(&a);
      clear_last_error();
    }
    mark_quantized(g.sources.back(), t.annot);
    s0.add(std::move(t));
  }
  const char *meta = r->metadata_json(r);
  auto j = nlohmann::json::parse(meta ? meta : "{}", nullptr, false);
  if (j.is_discarded() || !j.is_object()) fail("reader " + os.reader->id + ": metadata is not a JSON object", CKH_E_INTERNAL);
  s0.metadata = std::move(j);
  seed_pairs(g, s0);  // block hints: the readers' annotations
  if (!s0.metadata.contains("format")) s0.metadata["format"] = os.reader->id;
}

void synth_source(const Registry &reg, Graph &g, const std::string &model, const nlohmann::json &config, uint64_t seed) {
  const Component *m = nullptr;
  for (const Component *c : reg.all(CKH_COMPONENT_MAPPER))
    if ((c->id == model || cap(*c, "family") == model) && c->mapper()->canonical) {
      m = c;
      break;
    }
  if (!m) fail("no model plugin for '" + model + "' that can list canonical tensors (see ckhost --list-plugins)", CKH_E_NOT_FOUND);
  Stage &s0 = g.add_stage("synth " + model);
  struct Ctx {
    Graph *g;
    Stage *s;
    uint64_t seed;
  } ctx{&g, &s0, seed};
  clear_last_error();
  ckh_status st = m->mapper()->canonical(
      m->mapper(), config.dump().c_str(), &ctx, [](void *c, const ckh_tensor_info_t *t, const ckh_tensor_annot_t *a) -> ckh_status {
        auto *x = static_cast<Ctx *>(c);
        try {
          Source src;
          src.name = t->name ? t->name : "";
          src.dtype = t->dtype;
          src.shape.ndim = t->ndim;
          for (uint32_t d = 0; d < t->ndim && d < CKH_MAX_DIMS; ++d) src.shape.d[d] = t->shape[d];
          src.generated = true;
          src.gen.seed = x->seed;
          Annot an = Annot::from(a);
          src.gen.init = an.init;
          if (ckh_dtype_size(src.dtype) == 0) fail("tensor '" + src.name + "': unsupported dtype");
          x->g->sources.push_back(src);
          int32_t node = x->g->source_node(static_cast<int32_t>(x->g->sources.size() - 1));
          x->s->add(StageTensor{src.name, node, an});
          return CKH_OK;
        } catch (const Error &e) {
          set_last_error(e.code, e.what());
          return e.code;
        }
      });
  check_plugin(st, "mapper " + m->id);
  s0.metadata = {{"format", "synth"}, {"layout", "hf"}, {"config", config}, {"config_modified", true},
                 {"side_files", nlohmann::json::array()}};
}

const Component *find_mapper(const Registry &reg, const Graph &g, const std::string &from, const std::string &to) {
  const std::string meta = stage_metadata(g);
  const Component *best = nullptr;
  int32_t best_score = 0;
  for (const Component *c : reg.all(CKH_COMPONENT_MAPPER)) {
    if (cap(*c, "from") != from || cap(*c, "to") != to || cap(*c, "family") == "*") continue;
    int32_t s = 0;
    try {
      s = c->mapper()->probe(c->mapper(), meta.c_str());
    } catch (...) {
      s = 0;
    }
    clear_last_error();
    if (s > best_score) {
      best_score = s;
      best = c;
    }
  }
  return best;
}

void apply_mapper(Graph &g, const Component &m, const nlohmann::json &options) {
  Stage &in = g.stages.back();
  const std::string meta = in.metadata.dump();
  // Block-quantized pairs: the mapper sees the codes only; their scales follow its cuts (pairs.hpp).
  // Without pairs (no FP8 source) the mapper sees the stage itself.
  std::map<std::string, std::string> hidden;
  Stage view;
  if (!g.pairs.empty()) view = mapper_view(g, in, hidden);
  Stage &out = g.add_stage("mapper " + m.id);
  BuilderImpl b(g, g.pairs.empty() ? in : view, &out, "mapper " + m.id);
  clear_last_error();
  ckh_status st = m.mapper()->map(m.mapper(), options.dump().c_str(), meta.c_str(), b.c());
  check_plugin(st, "mapper " + m.id);
  if (!g.pairs.empty()) add_lifted_scales(g, in, view, out, hidden, "mapper " + m.id);
  {
    const std::vector<int32_t> q = quantized_inputs(g, false);
    for (const auto &t : out.tensors) check_unchanged(g, q, t.node, "mapper " + m.id + " (to '" + t.name + "')");
  }
  out.metadata = b.metadata_set ? b.metadata : in.metadata;
  if (!out.metadata.contains("layout")) {
    const std::string to = cap(m, "to");
    out.metadata["layout"] = to.empty() ? layout_of(in) : to;
  }
}

std::string to_canonical(const Registry &reg, Graph &g, const nlohmann::json &options) {
  const std::string layout = layout_of(g.stages.back());
  const Component *m = find_mapper(reg, g, layout, "hf");
  if (m) {
    apply_mapper(g, *m, options);
    return m->id + " (" + layout + " -> hf)";
  }
  if (layout != "hf") {
    std::string mt = "unknown";
    const auto &md = g.stages.back().metadata;
    if (md.contains("config") && md["config"].is_object() && md["config"].contains("model_type"))
      mt = md["config"]["model_type"].dump();
    fail("no model plugin maps layout '" + layout + "' to hf for model_type " + mt + " (see ckhost --list-plugins)",
         CKH_E_UNSUPPORTED);
  }
  std::string mt = "(no config.json)";
  const auto &md = g.stages.back().metadata;
  if (md.contains("config") && md["config"].is_object()) mt = md["config"].value("model_type", std::string("(none)"));
  return "no model plugin for model_type " + mt + ": tensors are carried without validation";
}

namespace {

// Dequantizes the (codes, scales) pairs of the last stage through a quantizer that declares
// "dequantize": returns codes tensor name -> dequantized node, and fills `folded` with the scales
// consumed. Throws naming the first quantized tensor that cannot be dequantized, with each
// quantizer's reason.
// `want` (when not null) limits the work to the codes it names, each to its own dtype, and leaves
// every other tensor alone; without it every pair goes to `dt` and a quantized straggler is refused.
std::map<std::string, int32_t> dequantize_pairs(const Registry &reg, Graph &g, ckh_dtype dt,
                                                std::map<std::string, std::string> &folded,
                                                const std::map<std::string, ckh_dtype> *want = nullptr) {
  std::map<std::string, int32_t> done;
  Stage &in = g.stages.back();
  const std::vector<int32_t> q = quantized_inputs(g);
  std::string d = want ? std::string("verify") : dtype_name(dt);
  for (char &ch : d) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (!want) d = "--dtype " + d;
  std::vector<const Component *> deq;
  for (const Component *c : reg.all(CKH_COMPONENT_QUANTIZER)) {
    auto it = c->capabilities.find("dequantize");
    if (it != c->capabilities.end() && it->is_boolean() && it->get<bool>()) deq.push_back(c);
  }
  nlohmann::json params = {{"mode", "dequantize"}, {"to", dtype_name(dt)}};
  if (in.metadata.contains("config") && in.metadata["config"].is_object()) params["config"] = in.metadata["config"];
  auto refuse = [&](const Source &src, const std::string &why) {
    fail(d + ": " + quant_what(src) + "; " + why +
             " (a cast would change codes and scales separately and give wrong weights; convert without --dtype to "
             "copy or reshard them as they are)",
         CKH_E_UNSUPPORTED);
  };
  // The stage's tensors by node, to find the scales a lifted pair carries (pairs.hpp).
  std::unordered_map<int32_t, const StageTensor *> by_node;
  if (!g.pairs.empty())
    for (const auto &o : in.tensors) by_node.emplace(o.node, &o);
  // Codes first, so that their scales are known to be folded before the stragglers are checked.
  for (const auto &t : in.tensors) {
    const int32_t si = q[static_cast<size_t>(t.node)];
    if (si < 0) continue;
    const Source &src = g.sources[static_cast<size_t>(si)];
    if (src.quant != QuantRole::Codes) continue;
    if (want && !want->count(t.name)) continue;
    if (want) params["to"] = dtype_name(want->at(t.name));
    const std::string ptext = params.dump();
    const Node &n = g.node(t.node);
    // The scales: the source's pair, or those a mapper's cut of the codes carries (pairs.hpp).
    const StageTensor *stp = nullptr;
    if (auto p = g.pairs.find(t.node); p != g.pairs.end()) {
      auto o = by_node.find(p->second.scale);
      if (o == by_node.end()) refuse(src, "its block scales are not beside it");
      stp = o->second;
    } else {
      if (n.op != Op::Source) refuse(src, "it was changed before the cast");
      if (src.quant_pair.empty() || !in.index.count(src.quant_pair))
        refuse(src, "its scales are not in the checkpoint, so it cannot be dequantized");
      stp = &in.tensors[in.index.at(src.quant_pair)];
      if (g.node(stp->node).op != Op::Source) refuse(src, "its scales were changed before the cast");
    }
    const StageTensor &st = *stp;
    if (deq.empty()) refuse(src, "no installed quantizer dequantizes it (see ckhost --list-plugins)");
    std::string why;
    for (const Component *c : deq) {
      try {
        done[t.name] = g.quantize_n({t.node, st.node}, c->id, ptext, 0);
        folded[st.name] = "folded into '" + t.name + "' by dequantization (" + c->id + ")";
        why.clear();
        break;
      } catch (const Error &e) {
        why += std::string(why.empty() ? "" : "; ") + e.what();
      }
    }
    if (!done.count(t.name)) refuse(src, "no quantizer dequantizes it: " + why);
  }
  if (want) return done;
  for (const auto &t : in.tensors) {
    const int32_t si = q[static_cast<size_t>(t.node)];
    if (si < 0 || done.count(t.name) || folded.count(t.name)) continue;
    const Source &src = g.sources[static_cast<size_t>(si)];
    refuse(src, src.quant == QuantRole::Scale ? "it is not the scale of dequantized codes" : "it cannot be dequantized");
  }
  return done;
}

}  // namespace

std::map<std::string, ckh_dtype> pairs_to_compare(const Graph &g, const Graph &other) {
  std::map<std::string, ckh_dtype> want;
  const std::vector<int32_t> q = quantized_inputs(g), qo = quantized_inputs(other);
  const Stage &s = g.stages.back(), &so = other.stages.back();
  for (const auto &t : s.tensors) {
    const int32_t si = q[static_cast<size_t>(t.node)];
    if (si < 0 || g.sources[static_cast<size_t>(si)].quant != QuantRole::Codes) continue;
    auto it = so.index.find(t.name);
    if (it == so.index.end()) continue;
    const int32_t on = so.tensors[it->second].node;
    if (qo[static_cast<size_t>(on)] < 0 && ckh_dtype_is_float(other.node(on).dtype)) want[t.name] = other.node(on).dtype;
  }
  return want;
}

void dequantize_stage(const Registry &reg, Graph &g, const std::map<std::string, ckh_dtype> &want) {
  std::map<std::string, std::string> folded;
  const std::map<std::string, int32_t> deq = dequantize_pairs(reg, g, CKH_DT_F32, folded, &want);
  Stage &in = g.stages.back();
  Stage &out = g.add_stage("dequantize for comparison");
  for (const auto &t : in.tensors) {
    if (folded.count(t.name)) {
      in.ignored[t.name] = folded[t.name];
      continue;
    }
    auto dq = deq.find(t.name);
    out.add(StageTensor{t.name, dq != deq.end() ? dq->second : t.node, t.annot});
  }
  out.metadata = in.metadata;
}

// A tensor of a block dtype (ggml's Q8_0, ...) through the quantizer whose capabilities list that dtype under
// "dequantize_blocks", to f32 and then `dt`.
int32_t dequantize_blocks(const Registry &reg, Graph &g, int32_t n, const std::string &name, ckh_dtype dt) {
  const std::string dn = dtype_name(g.node(n).dtype);
  for (const Component *c : reg.all(CKH_COMPONENT_QUANTIZER)) {
    auto it = c->capabilities.find("dequantize_blocks");
    if (it == c->capabilities.end() || !it->is_array()) continue;
    for (const auto &x : *it)
      if (x.is_string() && x.get<std::string>() == dn) {
        const int32_t f = g.quantize_n({n}, c->id, nlohmann::json{{"mode", "dequantize"}}.dump(), 0);
        return dt == CKH_DT_F32 ? f : g.cast(f, dt);
      }
  }
  fail("--dtype: tensor '" + name + "' is " + dn + " and no quantizer dequantizes it", CKH_E_UNSUPPORTED);
}

void cast_stage(const Registry &reg, Graph &g, ckh_dtype dt, bool one_d_f32) {
  std::map<std::string, std::string> folded;
  const std::map<std::string, int32_t> deq = dequantize_pairs(reg, g, dt, folded);
  Stage &in = g.stages.back();
  Stage &out = g.add_stage("cast to " + dtype_name(dt));
  for (const auto &t : in.tensors) {
    if (folded.count(t.name)) {
      in.ignored[t.name] = folded[t.name];
      continue;
    }
    int32_t n = t.node;
    auto dq = deq.find(t.name);
    ckh_dtype_traits_t tr{};
    if (dq != deq.end()) n = dq->second;
    else if (ckh_dtype_is_float(g.node(n).dtype)) n = g.cast(n, one_d_f32 && g.logical(n).ndim == 1 ? CKH_DT_F32 : dt);
    else if (ckh_dtype_traits(g.node(n).dtype, &tr) && tr.is_block) n = dequantize_blocks(reg, g, n, t.name, dt);
    out.add(StageTensor{t.name, n, t.annot});
  }
  out.metadata = in.metadata;
  if (!deq.empty() && out.metadata.contains("config") && out.metadata["config"].is_object() &&
      out.metadata["config"].contains("quantization_config")) {
    // The weights are no longer quantized: a consumer must not look for scales.
    out.metadata["config"].erase("quantization_config");
    out.metadata["config_modified"] = true;
  }
  if (out.metadata.contains("config") && out.metadata["config"].is_object()) {
    const char *tn = dt == CKH_DT_BF16 ? "bfloat16" : dt == CKH_DT_F16 ? "float16" : dt == CKH_DT_F32 ? "float32" : nullptr;
    // transformers >= 4.56 writes "dtype", older releases "torch_dtype": update the key(s) present.
    auto &cfg = out.metadata["config"];
    std::vector<const char *> keys;
    for (const char *k : {"torch_dtype", "dtype"})
      if (cfg.contains(k)) keys.push_back(k);
    if (keys.empty()) keys.push_back("torch_dtype");
    for (const char *k : keys)
      if (tn && !(cfg[k].is_string() && cfg[k].get<std::string>() == tn)) {
        cfg[k] = tn;
        out.metadata["config_modified"] = true;
      }
  }
}

namespace {

// transformers' rule for modules_to_not_convert (quantizers_utils.should_convert_module): `pat` names
// module `m` when it matches, as a regex, a prefix of `m` that ends at a module boundary, or when `m`
// ends with it. A pattern that is not a valid regex is matched literally.
bool module_matches(const std::string &m, const std::string &pat) {
  if (pat.empty()) return false;
  if (m.size() >= pat.size() && m.compare(m.size() - pat.size(), pat.size(), pat) == 0) return true;
  std::regex re;
  try {
    re = std::regex(pat, std::regex::ECMAScript);
  } catch (const std::regex_error &) {
    return m.compare(0, pat.size(), pat) == 0 && (m.size() == pat.size() || m[pat.size()] == '.' || pat.back() == '.');
  }
  for (size_t len = 1; len <= m.size(); ++len)
    if ((len == m.size() || m[len] == '.' || m[len - 1] == '.') && std::regex_match(m.begin(), m.begin() + static_cast<std::ptrdiff_t>(len), re))
      return true;
  return false;
}

std::string module_of(const std::string &tensor) {
  const size_t dot = tensor.rfind('.');
  return dot == std::string::npos ? tensor : tensor.substr(0, dot);
}

bool is_linear_kind(int32_t k) {
  switch (k) {
    case CKH_KIND_ATTN_Q: case CKH_KIND_ATTN_K: case CKH_KIND_ATTN_V: case CKH_KIND_ATTN_QKV: case CKH_KIND_ATTN_OUT:
    case CKH_KIND_FFN_GATE: case CKH_KIND_FFN_UP: case CKH_KIND_FFN_GATE_UP: case CKH_KIND_FFN_DOWN: return true;
    default: return false;
  }
}

const char *kind_name(int32_t k) {
  static const char *const kNames[] = {"unstated", "embedding", "output", "norm",   "attn_q",      "attn_k",   "attn_v", "attn_qkv",
                                       "attn_out", "ffn_gate",  "ffn_up", "ffn_gate_up", "ffn_down", "router", "other"};
  return k >= 0 && k <= CKH_KIND_OTHER ? kNames[k] : "unstated";
}

bool is_ffn_kind(int32_t k) {
  return k == CKH_KIND_FFN_GATE || k == CKH_KIND_FFN_UP || k == CKH_KIND_FFN_GATE_UP || k == CKH_KIND_FFN_DOWN;
}

// Replaces every string "$unquantized" in `j` with `kept`.
void fill_unquantized(nlohmann::json &j, const nlohmann::json &kept) {
  if (j.is_string() && j.get<std::string>() == "$unquantized") j = kept;
  else if (j.is_object() || j.is_array())
    for (auto &v : j) fill_unquantized(v, kept);
}

}  // namespace

std::string quantize_stage(const Registry &reg, Graph &g, const std::string &id, const nlohmann::json &options,
                           const std::vector<std::string> &skip_in) {
  const Component *c = reg.find(CKH_COMPONENT_QUANTIZER, id);
  if (!c) fail("--quantize: no quantizer '" + id + "' (see ckhost --list-plugins)", CKH_E_NOT_FOUND);
  {
    auto it = c->capabilities.find("quantize");
    if (it == c->capabilities.end() || !it->is_boolean() || !it->get<bool>())
      fail("--quantize: quantizer '" + id + "' does not quantize checkpoints (its capabilities do not say \"quantize\")",
           CKH_E_UNSUPPORTED);
  }
  nlohmann::json params = {{"mode", "quantize"}};
  for (const OptionDecl &d : c->options)
    if (options.contains(d.key)) params[d.key] = options[d.key];
  // Which tensors a quantizer takes: by default the linear projections of the layers (their annotation kinds);
  // "targets": "weights" in its capabilities: every 2-D float weight (llama.cpp quantizes embeddings and outputs too).
  const bool all_weights = c->capabilities.value("targets", std::string()) == "weights";
  std::vector<std::string> skip = skip_in;
  {
    const auto &md = g.stages.back().metadata;
    if (md.contains("config") && md["config"].is_object()) {
      params["config"] = md["config"];
      // A quantized source's own exclusions stay excluded.
      const auto &qc = md["config"].value("quantization_config", nlohmann::json::object());
      if (qc.is_object() && qc.contains("modules_to_not_convert") && qc["modules_to_not_convert"].is_array())
        for (const auto &m : qc["modules_to_not_convert"])
          if (m.is_string()) skip.push_back(m.get<std::string>());
    }
  }
  // Auxiliary inputs (capabilities "aux_inputs": {"<option>": [".suffix", ..]}): when the option names a
  // checkpoint, it is opened with the readers and tensor T gets the inputs T<suffix>.. after its weight
  // (e.g. an importance matrix's sums and counts); T without them is quantized from its weight alone.
  struct Aux {
    std::string option, path;
    std::vector<std::string> suffixes;
    Stage stage;
  };
  std::vector<Aux> aux;
  if (auto ai = c->capabilities.find("aux_inputs"); ai != c->capabilities.end() && ai->is_object())
    for (auto it = ai->begin(); it != ai->end(); ++it) {
      if (!options.contains(it.key()) || !options[it.key()].is_string() || options[it.key()].get<std::string>().empty())
        continue;
      Aux a;
      a.option = it.key();
      a.path = options[it.key()].get<std::string>();
      if (it->is_array())
        for (const auto &x : *it)
          if (x.is_string()) a.suffixes.push_back(x.get<std::string>());
      if (a.suffixes.empty()) fail("quantizer '" + id + "': aux input '" + a.option + "' names no suffixes", CKH_E_INTERNAL);
      {
        std::error_code ec;
        if (!std::filesystem::exists(a.path, ec))
          fail("--" + a.option + " " + a.path + ": no such file or directory", CKH_E_NOT_FOUND);
      }
      const OpenedSource os = open_reader(reg, a.path, "", nlohmann::json::object());
      import_catalog(g, os, a.stage);
      aux.push_back(std::move(a));
    }
  // Facts each tensor's quantizer sees ("tensor" in its params), for mixes that pick a type per tensor.
  int32_t n_layers = 0, n_experts = 0;
  bool has_output = false;
  for (const auto &t : g.stages.back().tensors) {
    if ((t.annot.role == CKH_ROLE_LAYER) && t.annot.stack == 0) n_layers = std::max(n_layers, t.annot.layer + 1);
    n_experts = std::max(n_experts, t.annot.expert + 1);
    const Shape ls = g.logical(t.node);
    if (ls.ndim == 3 && is_ffn_kind(t.annot.kind)) n_experts = std::max<int32_t>(n_experts, static_cast<int32_t>(ls.d[0]));
    has_output = has_output || t.annot.kind == CKH_KIND_OUTPUT;
  }
  auto params_of = [&](const StageTensor &t) {
    nlohmann::json p = params;
    p["tensor"] = {{"name", t.name},         {"kind", kind_name(t.annot.kind)}, {"layer", t.annot.layer},
                   {"n_layers", n_layers},   {"expert", t.annot.expert},       {"n_experts", n_experts},
                   {"has_output", has_output}, {"stack", t.annot.stack}};
    const Shape ls = g.logical(t.node);
    for (uint32_t d = 0; d < ls.ndim; ++d) p["tensor"]["shape"].push_back(ls.d[d]);
    return p.dump();
  };
  size_t n_aux = 0, n_no_aux = 0;
  std::string first_no_aux;
  // Pairs of the source are dequantized first, exactly (to f32), and requantized from their values.
  std::map<std::string, ckh_dtype> want;
  {
    const Stage &in = g.stages.back();
    const std::vector<int32_t> q = quantized_inputs(g);
    for (const auto &t : in.tensors) {
      const int32_t si = q[static_cast<size_t>(t.node)];
      if (si >= 0 && g.sources[static_cast<size_t>(si)].quant == QuantRole::Codes) want[t.name] = CKH_DT_F32;
    }
  }
  if (!want.empty() && params.value("no_requant", false))
    fail("--quantize " + id + ": tensor '" + want.begin()->first + "' is already quantized, and the options forbid requantizing it (" +
             std::to_string(want.size()) + " such tensors; drop --quantize to copy them as they are)",
         CKH_E_UNSUPPORTED);
  std::map<std::string, std::string> folded;
  const std::map<std::string, int32_t> deq = want.empty() ? std::map<std::string, int32_t>() : dequantize_pairs(reg, g, CKH_DT_F32, folded, &want);
  Stage &in = g.stages.back();
  const std::vector<int32_t> q = quantized_inputs(g);
  Stage &out = g.add_stage("quantize " + id);
  nlohmann::json kept = nlohmann::json::array(), config_add, meta_add = nlohmann::json::object();
  size_t n_quant = 0;
  bool any_kind = false;
  for (const auto &t : in.tensors) {
    if (folded.count(t.name)) {
      in.ignored[t.name] = folded[t.name];
      continue;
    }
    auto dq = deq.find(t.name);
    int32_t n = dq != deq.end() ? dq->second : t.node;
    if (dq == deq.end() && q[static_cast<size_t>(n)] >= 0)
      fail("--quantize: tensor '" + t.name + "' is quantized and no quantizer dequantizes it, so it cannot be requantized",
           CKH_E_UNSUPPORTED);
    any_kind = any_kind || t.annot.kind != CKH_KIND_UNSTATED;
    const Shape ls = g.logical(n);
    const std::string mod = module_of(t.name);
    const bool weight2d = ls.ndim >= 2 && t.name.size() > 7 && t.name.compare(t.name.size() - 7, 7, ".weight") == 0;
    const bool linear = all_weights ? (ls.ndim == 2 || ls.ndim == 3) && ckh_dtype_is_float(g.node(n).dtype) && weight2d
                                    : is_linear_kind(t.annot.kind) && (t.annot.role == CKH_ROLE_LAYER || t.annot.role == CKH_ROLE_MTP) &&
                                          (ls.ndim == 2 || ls.ndim == 3) && ckh_dtype_is_float(g.node(n).dtype) && weight2d;
    bool skipped = false;
    if (linear)
      for (const auto &p : skip) skipped = skipped || module_matches(mod, p);
    if (!linear || skipped) {
      // Left in high precision. A dequantized pair not requantized (skipped) goes back to bf16.
      if (dq != deq.end()) n = g.cast(n, CKH_DT_BF16);
      if (weight2d && t.annot.kind != CKH_KIND_EMBEDDING && t.annot.kind != CKH_KIND_NORM) kept.push_back(mod);
      out.add(StageTensor{t.name, n, t.annot});
      continue;
    }
    const std::string ptext = params_of(t);
    std::vector<int32_t> ins{n};
    for (const Aux &a : aux) {
      size_t found = 0;
      for (const std::string &sfx : a.suffixes)
        if (auto f = a.stage.index.find(t.name + sfx); f != a.stage.index.end()) {
          ins.push_back(a.stage.tensors[f->second].node);
          ++found;
        }
      if (found && found != a.suffixes.size())
        fail(a.path + ": has only some of the tensors '" + t.name + "' needs from it (" + nlohmann::json(a.suffixes).dump() +
                 " after the name)",
             CKH_E_FORMAT);
      if (found) ++n_aux;
      else if (!n_no_aux++) first_no_aux = t.name;
    }
    // A block dtype holds its own scales (ggml's Q8_0, ...): the one output replaces the tensor. Stacked
    // weights [E, R, C] go to the quantizer as R*E rows and come back in their stack.
    const bool stacked = ls.ndim == 3;
    if (stacked) {
      Shape flat;
      flat.ndim = 2;
      flat.d[0] = ls.d[0] * ls.d[1];
      flat.d[1] = ls.d[2];
      ins[0] = g.reshape(n, flat);
    }
    const int32_t codes = g.quantize_n(ins, id, ptext, 0);
    const Quant &qu = g.quants[static_cast<size_t>(g.node(codes).quant)];
    const auto info = nlohmann::json::parse(qu.info.empty() ? "{}" : qu.info, nullptr, false);
    // info_json "metadata": entries for the output's metadata (e.g. the file type a GGUF writer records), the same
    // for every tensor of the checkpoint.
    if (info.is_object() && info.contains("metadata") && info["metadata"].is_object())
      for (auto it = info["metadata"].begin(); it != info["metadata"].end(); ++it) {
        if (meta_add.contains(it.key()) && meta_add[it.key()] != it.value())
          fail("--quantize: quantizer '" + id + "' gives '" + t.name + "' metadata " + it.key() + " = " + it.value().dump() +
                   ", other tensors " + meta_add[it.key()].dump(),
               CKH_E_INTERNAL);
        meta_add[it.key()] = it.value();
      }
    if (qu.out.size() == 1) {
      const ckh_dtype odt = g.node(codes).dtype;
      if (ckh_dtype_is_float(odt)) {
        // The quantizer's mix leaves this tensor unquantized (llama.cpp keeps routers, ...): in its own dtype
        // when the output's is the weight's, else cast to the output's (e.g. F16 for rows of no whole block).
        if (odt != g.node(n).dtype) n = g.cast(n, odt);
        else if (dq != deq.end()) n = g.cast(n, CKH_DT_BF16);
        kept.push_back(mod);
        out.add(StageTensor{t.name, n, t.annot});
        continue;
      }
      int32_t r = codes;
      if (stacked) {
        Shape s3 = g.node(codes).shape;  // storage shape: the last dim counts blocks
        s3.ndim = 3;
        s3.d[2] = s3.d[1];
        s3.d[1] = ls.d[1];
        s3.d[0] = ls.d[0];
        r = g.reshape(codes, s3);
      }
      out.add(StageTensor{t.name, r, t.annot});
      ++n_quant;
      continue;
    }
    if (stacked || ins.size() > 1)
      fail("--quantize: quantizer '" + id + "' gave '" + t.name + "' a (codes, scales) pair from " +
               (stacked ? "a stacked 3-D weight" : "auxiliary inputs") + "; only block dtypes are supported there",
           CKH_E_UNSUPPORTED);
    const int32_t scales = g.quantize_n({n}, id, ptext, 1);
    const Shape &cs = g.node(codes).shape;
    if (qu.out.size() != 2 || info.is_discarded() || !info.is_object() || !info.contains("scale_block") ||
        !info["scale_block"].is_array() || info["scale_block"].size() != cs.ndim)
      fail("--quantize: quantizer '" + id + "' gave no (codes, scales) pair for '" + t.name +
               "' (it must describe two outputs and their \"scale_block\" in info_json)",
           CKH_E_UNSUPPORTED);
    PairInfo p;
    p.scale = scales;
    p.block.fill(1);
    const Shape &ss = g.node(scales).shape;
    for (uint32_t d = 0; d < cs.ndim; ++d) {
      const auto &b = info["scale_block"][d];
      if (!b.is_number_integer() || b.get<int64_t>() < 1 || ss.ndim != cs.ndim ||
          ss.d[d] != (cs.d[d] + b.get<int64_t>() - 1) / b.get<int64_t>())
        fail("--quantize: quantizer '" + id + "': scale_block " + info["scale_block"].dump() + " does not fit codes " +
                 cs.str() + " with scales " + ss.str() + " of '" + t.name + "'",
             CKH_E_INTERNAL);
      p.block[d] = b.get<int64_t>();
    }
    p.suffix = qu.out[1].name;
    if (p.suffix.empty()) fail("--quantize: quantizer '" + id + "' gave its scales no suffix", CKH_E_INTERNAL);
    if (in.index.count(t.name + p.suffix) && !folded.count(t.name + p.suffix))
      fail("--quantize: '" + t.name + p.suffix + "' would hold the scales of '" + t.name + "' but is taken", CKH_E_UNSUPPORTED);
    g.pairs[codes] = p;
    if (info.contains("config") && info["config"].is_object()) {
      if (config_add.is_null()) config_add = info["config"];
      else if (config_add != info["config"])
        fail("--quantize: quantizer '" + id + "' describes '" + t.name + "' differently from the tensors before it (" +
                 info["config"].dump() + " vs " + config_add.dump() + ")",
             CKH_E_UNSUPPORTED);
    }
    StageTensor ct{t.name, codes, t.annot}, st{t.name + p.suffix, scales, t.annot};
    ct.annot.extra_json = with_quant(t.annot.extra_json, {{"role", "codes"}, {"scales", {st.name}}});
    st.annot.extra_json = with_quant(t.annot.extra_json, {{"role", "scale"}, {"of", t.name}});
    out.add(std::move(ct));
    out.add(std::move(st));
    ++n_quant;
  }
  if (!any_kind)
    fail("--quantize: no model plugin annotated this checkpoint's tensors, so which are linear weights is unknown "
         "(quantization needs a supported model family; see ckhost --list-plugins)",
         CKH_E_UNSUPPORTED);
  if (!n_quant) fail("--quantize: no linear weight to quantize (all skipped or none found)", CKH_E_UNSUPPORTED);
  for (const Aux &a : aux) {
    if (!n_aux)
      fail(a.path + ": holds no data for any tensor quantized here (e.g. '" + first_no_aux + "' + " + a.suffixes[0] +
               "; the names must be the output's)",
           CKH_E_FORMAT);
    if (n_no_aux)
      log(CKH_LOG_WARN, std::to_string(n_no_aux) + " tensors have no data in " + a.path + " (e.g. '" + first_no_aux +
                            "'): quantized from their weights alone");
  }
  out.metadata = in.metadata;
  for (auto it = meta_add.begin(); it != meta_add.end(); ++it) out.metadata[it.key()] = it.value();
  if (out.metadata.contains("config") && out.metadata["config"].is_object()) {
    auto &cfg = out.metadata["config"];
    cfg.erase("quantization_config");
    if (config_add.is_object()) {
      fill_unquantized(config_add, kept);
      for (auto it = config_add.begin(); it != config_add.end(); ++it) cfg[it.key()] = it.value();
    }
    out.metadata["config_modified"] = true;
  }
  return std::to_string(n_quant) + " weights quantized by " + id + ", " + std::to_string(kept.size()) +
         " 2-D weights left in high precision";
}

const Component *map_to_writer_layout(const Registry &reg, Graph &g, const std::string &to, const nlohmann::json &options,
                                      std::string *note) {
  const Component *w = reg.find(CKH_COMPONENT_WRITER, to);
  if (!w) fail("no writer for format '" + to + "' (see ckhost --list-plugins)", CKH_E_NOT_FOUND);
  const std::string want = cap(*w, "layout");
  const std::string have = layout_of(g.stages.back());
  if (!want.empty() && want != have) {
    const Component *m = find_mapper(reg, g, have, want);
    if (!m) fail("no model plugin maps layout '" + have + "' to '" + want + "' for this model", CKH_E_UNSUPPORTED);
    apply_mapper(g, *m, options);
    if (note) *note += ", " + m->id + " (" + have + " -> " + want + ")";
  }
  return w;
}

bool quantizes_in_target_layout(const Registry &reg, const std::string &id) {
  const Component *c = reg.find(CKH_COMPONENT_QUANTIZER, id);
  return c && c->capabilities.value("stage", std::string()) == "target";
}

WriterPtr plan_writer(const Registry &reg, Graph &g, const std::string &to, const nlohmann::json &options,
                      std::string *note) {
  const Component *w = map_to_writer_layout(reg, g, to, options, note);
  ckh_writer_t *wr = nullptr;
  clear_last_error();
  ckh_status st = w->writer()->create(w->writer(), options.dump().c_str(), &wr);
  WriterPtr writer(wr);
  check_plugin(st, "writer " + to);
  if (!wr) fail("writer " + to + " returned no writer", CKH_E_INTERNAL);
  LayoutBuilderImpl lb(g, g.stages.back(), "writer " + to);
  const std::string meta = stage_metadata(g);
  clear_last_error();
  st = wr->plan(wr, meta.c_str(), lb.c());
  try {
    check_plugin(st, "writer " + to);
  } catch (const Error &e) {
    // A writer cuts the block scales of FP8 codes like any tensor: say what its complaint means.
    const std::string msg = e.what();
    for (const auto &t : g.stages.back().tensors) {
      if (msg.find("'" + t.name + "'") == std::string::npos) continue;
      const auto j = nlohmann::json::parse(t.annot.extra_json.empty() ? "{}" : t.annot.extra_json, nullptr, false);
      if (j.is_discarded() || !j.contains("quant") || !j["quant"].is_object() || j["quant"].value("role", "") != "scale" ||
          !j["quant"].contains("of") || !j["quant"]["of"].is_string())
        continue;
      const std::string of = j["quant"]["of"].get<std::string>();
      std::string blocks;
      if (auto c = g.stages.back().index.find(of); c != g.stages.back().index.end())
        if (auto p = g.pairs.find(g.stages.back().tensors[c->second].node); p != g.pairs.end()) {
          const Node &cn = g.node(g.stages.back().tensors[c->second].node);
          blocks = " " + g.node(p->second.scale).shape.str() + " for codes " + cn.shape.str() + ", blocks of " +
                   std::to_string(p->second.block[cn.shape.ndim - 2]) + " x " + std::to_string(p->second.block[cn.shape.ndim - 1]);
        }
      throw Error(msg + " (these are the block scales" + blocks + " of '" + of +
                      "': this layout cuts the codes inside a block; choose one that cuts on block boundaries, or dequantize with --dtype bf16)",
                  e.code);
    }
    throw;
  }
  validate_layout(g);
  check_layout_pairs(g);
  check_quantized(g);
  check_consumption(g);
  check_sources(g);
  return writer;
}

std::string describe_plan(const Graph &g, bool with_tensors) {
  std::string s;
  for (const auto &st : g.stages) s += "stage: " + st.producer + " (" + std::to_string(st.tensors.size()) + " tensors)\n";
  // Regions by file once (a plan can hold a million regions over hundreds of files).
  std::vector<std::vector<size_t>> by_file(g.layout.files.size());
  for (size_t i = 0; i < g.layout.regions.size(); ++i) {
    const int32_t f = g.layout.regions[i].file;
    if (f >= 0 && static_cast<size_t>(f) < by_file.size()) by_file[static_cast<size_t>(f)].push_back(i);
  }
  uint64_t total = 0;
  for (size_t f = 0; f < g.layout.files.size(); ++f) {
    const OutFile &of = g.layout.files[f];
    uint64_t size = of.size;
    if (!of.copy_from.empty()) {  // copied verbatim: its size is the source's
      std::error_code ec;
      const auto n = std::filesystem::file_size(of.copy_from, ec);
      if (!ec) size = static_cast<uint64_t>(n);
    }
    total += size;
    s += of.relpath + "  " + human_bytes(static_cast<double>(size));
    if (of.small) s += "  (generated)";
    if (!of.copy_from.empty()) s += "  (copy of " + of.copy_from + ")";
    if (!with_tensors && !by_file[f].empty()) s += "  " + std::to_string(by_file[f].size()) + " tensors";
    s += "\n";
    if (!with_tensors) continue;
    for (size_t i : by_file[f]) {
      const Region &r = g.layout.regions[i];
      const Node &n = g.node(r.node);
      s += "  @" + std::to_string(r.offset) + "  " + dtype_name(n.dtype) + g.logical(r.node).str() + "  = " + g.describe(r.node) + "\n";
    }
  }
  s += "total: " + std::to_string(g.layout.files.size()) + " files, " + human_bytes(static_cast<double>(total)) + " (" +
       std::to_string(total) + " bytes), " + std::to_string(g.layout.regions.size()) + " tensors\n";
  return s;
}

}  // namespace ckh::host
