// megatron_layout.cpp — see megatron_layout.hpp.
#include "megatron_layout.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <set>
#include <stdexcept>

namespace ckh::megatron {

const char *split_name(Split s) {
  switch (s) {
    case Split::Replicated: return "replicated";
    case Split::Column: return "column";
    case Split::Row: return "row";
    case Split::Vocab: return "vocab";
    case Split::Swiglu: return "swiglu";
  }
  return "?";
}

namespace {
bool ends_with(const std::string &s, const std::string &suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
bool contains(const std::string &s, const std::string &p) { return s.find(p) != std::string::npos; }
}  // namespace

Split split_from_annot(const ckh_tensor_annot_t &a, const std::string &name) {
  const bool v11 = a.struct_size >= offsetof(ckh_tensor_annot_t, group) + 3 * sizeof(int32_t);  // group, stack, kind
  if (v11 && a.group != CKH_GROUP_TP && a.group != CKH_GROUP_EP && a.group != CKH_GROUP_ETP)
    throw std::invalid_argument("tensor '" + name + "' has an unknown parallel group " + std::to_string(a.group));
  if (v11 && a.group != CKH_GROUP_TP && a.expert < 0)
    throw std::invalid_argument("tensor '" + name + "' is split over the expert-parallel group but names no expert");
  switch (a.parallel) {
    case CKH_PARALLEL_REPLICATED: return Split::Replicated;
    case CKH_PARALLEL_COLUMN: return Split::Column;
    case CKH_PARALLEL_ROW: return Split::Row;
    case CKH_PARALLEL_VOCAB: return Split::Vocab;
    case CKH_PARALLEL_SWIGLU: return Split::Swiglu;
    case CKH_PARALLEL_UNSTATED:
      throw std::invalid_argument("tensor '" + name + "' has no parallel annotation: the model mapper must state how it "
                                  "is split (replicated, column, row, vocab or swiglu)");
    default:
      throw std::invalid_argument("tensor '" + name + "' has an unknown parallel annotation " + std::to_string(a.parallel));
  }
}

bool is_expert(const ckh_tensor_annot_t &a) {
  const bool v11 = a.struct_size >= offsetof(ckh_tensor_annot_t, group) + 3 * sizeof(int32_t);
  return v11 && (a.group == CKH_GROUP_EP || a.group == CKH_GROUP_ETP) && a.expert >= 0;
}

Split split_of(const std::string &n, bool swiglu) {
  if (contains(n, "word_embeddings.weight") || ends_with(n, "output_layer.weight") ||
      ends_with(n, "word_embeddings_for_head.weight"))
    return Split::Vocab;
  // Norms (TE-fused layer_norm_weight/bias too), q/k layernorms, routers: replicated.
  if (contains(n, "norm")) return Split::Replicated;
  if (contains(n, "router.") || ends_with(n, "gate_weight") || contains(n, "position_embeddings")) return Split::Replicated;
  if (contains(n, "linear_qkv.") || contains(n, "query_key_value.") || contains(n, "linear_q_proj.") ||
      contains(n, "linear_q_up_proj.") || contains(n, "linear_kv_up_proj.") || contains(n, "eh_proj."))
    return Split::Column;
  // MLA down projections (linear_q_down_proj, linear_kv_down_proj) are replicated with the TE spec and
  // split by rows with the local one: the reader tells them apart by shard shape (mla_down_rows).
  if (contains(n, "linear_fc1.") || contains(n, "dense_h_to_4h.")) return swiglu ? Split::Swiglu : Split::Column;
  if (contains(n, "linear_proj.") || contains(n, "linear_fc2.") || contains(n, "dense_4h_to_h.") ||
      contains(n, "self_attention.dense.")) {
    return ends_with(n, ".bias") ? Split::Replicated : Split::Row;
  }
  return Split::Replicated;
}

std::optional<LayerName> parse_layer_name(const std::string &name) {
  for (const char *pre : {"decoder.layers.", "language_model.encoder.layers.", "encoder.layers."}) {
    const std::string p(pre);
    if (name.compare(0, p.size(), p) != 0) continue;
    size_t i = p.size(), j = i;
    while (j < name.size() && name[j] >= '0' && name[j] <= '9') ++j;
    if (j == i || j >= name.size() || name[j] != '.' || j - i > 9) return std::nullopt;
    LayerName ln;
    ln.prefix = p;
    ln.layer = std::stoll(name.substr(i, j - i));
    ln.rest = name.substr(j + 1);
    return ln;
  }
  return std::nullopt;
}

std::vector<std::string> extra_state_modules(const std::vector<std::string> &param_names, bool transformer_engine) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  auto add = [&](const std::string &m) {
    if (seen.insert(m).second) out.push_back(m);
  };
  for (const auto &n : param_names) {
    if (n.rfind("decoder.", 0) != 0 && n.rfind("mtp.layers.", 0) != 0) continue;  // embeddings, output_layer, legacy names
    const size_t dot = n.rfind('.');
    if (dot == std::string::npos) continue;
    const std::string module = n.substr(0, dot);
    const size_t last = module.rfind('.');
    const std::string leaf = last == std::string::npos ? module : module.substr(last + 1);
    if (!transformer_engine) {
      if (leaf.rfind("linear_", 0) == 0 || leaf == "eh_proj") add(module);  // eh_proj: MTP's ColumnParallelLinear
      continue;
    }
    add(module);
    // TEDotProductAttention beside the attention's first projection (linear_qkv; MLA: linear_kv_up_proj).
    if (leaf == "linear_qkv" || leaf == "linear_kv_up_proj") add(module.substr(0, last) + ".core_attention");
  }
  return out;
}

int64_t Pipeline::num_layers() const {
  int64_t n = 0;
  for (int64_t c : counts) n += c;
  return n;
}

int64_t Pipeline::first_layer(int p, int v) const {
  int64_t n = 0;
  for (int s = 0; s < v * pp + p; ++s) n += counts[static_cast<size_t>(s)];
  return n;
}

void Pipeline::locate(int64_t global, int &p, int &v, int64_t &local) const {
  int64_t n = 0;
  for (int s = 0; s < pp * vpp; ++s) {
    const int64_t c = counts[static_cast<size_t>(s)];
    if (global < n + c) {
      v = s / pp;
      p = s % pp;
      local = global - n;
      return;
    }
    n += c;
  }
  throw std::out_of_range("layer " + std::to_string(global) + " is beyond the " + std::to_string(n) + " layers");
}

std::vector<int64_t> parse_pp_layers(const std::string &spec) {
  std::vector<int64_t> out;
  size_t i = 0;
  while (i <= spec.size()) {
    const size_t j = std::min(spec.find(',', i), spec.size());
    const std::string part = spec.substr(i, j - i);
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != std::string::npos)
      throw std::invalid_argument("--pp-layers expects comma-separated layer counts, e.g. 3,2,2 (got '" + spec.substr(0, 64) + "')");
    out.push_back(std::stoll(part));
    i = j + 1;
  }
  return out;
}

Pipeline make_pipeline(int64_t num_layers, int pp, int vpp, const std::vector<int64_t> &stage_layers) {
  if (pp < 1 || vpp < 1) throw std::invalid_argument("pipeline sizes must be >= 1");
  Pipeline pl;
  pl.pp = pp;
  pl.vpp = vpp;
  pl.counts.assign(static_cast<size_t>(pp * vpp), 0);
  std::vector<int64_t> per_stage;
  if (stage_layers.empty()) {
    if (num_layers % (static_cast<int64_t>(pp) * vpp) != 0)
      throw std::invalid_argument(std::to_string(num_layers) + " layers do not divide into " + std::to_string(pp) +
                                  " pipeline stages x " + std::to_string(vpp) +
                                  " virtual stages (give --pp-layers for uneven stages)");
    per_stage.assign(static_cast<size_t>(pp), num_layers / pp);
  } else {
    // One count per stage, or (VPP) one per virtual stage in Megatron's order v * PP + p (MindSpeed-MM's nested
    // llm_pp_layers [[chunk 0 of each stage], [chunk 1 ...], ...] flattened).
    const bool per_virtual = vpp > 1 && static_cast<int64_t>(stage_layers.size()) == static_cast<int64_t>(pp) * vpp;
    if (!per_virtual && static_cast<int>(stage_layers.size()) != pp)
      throw std::invalid_argument("--pp-layers has " + std::to_string(stage_layers.size()) + " entries but --pp is " +
                                  std::to_string(pp) + (vpp > 1 ? " (or one per virtual stage: " + std::to_string(pp * vpp) + ")" : ""));
    int64_t sum = 0;
    for (int64_t c : stage_layers) {
      if (c < 0) throw std::invalid_argument("--pp-layers entries must be >= 0");
      sum += c;
    }
    if (sum != num_layers)
      throw std::invalid_argument("--pp-layers adds up to " + std::to_string(sum) + " layers, the model has " +
                                  std::to_string(num_layers));
    if (per_virtual) {
      pl.counts = stage_layers;
      return pl;
    }
    per_stage = stage_layers;
  }
  for (int p = 0; p < pp; ++p) {
    const int64_t c = per_stage[static_cast<size_t>(p)];
    if (c % vpp != 0)
      throw std::invalid_argument("pipeline stage " + std::to_string(p) + " has " + std::to_string(c) +
                                  " layers, not divisible into " + std::to_string(vpp) + " virtual stages");
    for (int v = 0; v < vpp; ++v) pl.counts[static_cast<size_t>(v * pp + p)] = c / vpp;
  }
  return pl;
}

std::map<int, std::vector<int64_t>> parse_stack_pp_layers(const std::string &spec) {
  std::map<int, std::vector<int64_t>> r;
  const std::string usage = "--stack-pp-layers expects STACK=COUNTS per tower, ';' between towers (e.g. 1=32,0,0,0)";
  size_t at = 0;
  while (at <= spec.size() && !spec.empty()) {
    size_t end = spec.find(';', at);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(at, end - at);
    at = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) throw std::invalid_argument(usage + ", got '" + item + "'");
    int stack = 0;
    std::vector<int64_t> counts;
    try {
      size_t used = 0;
      stack = std::stoi(item.substr(0, eq), &used);
      if (used != eq) throw std::invalid_argument("stack");
      size_t q = eq + 1;
      while (q <= item.size()) {
        size_t c = item.find(',', q);
        if (c == std::string::npos) c = item.size();
        const std::string n = item.substr(q, c - q);
        size_t u2 = 0;
        counts.push_back(std::stoll(n, &u2));
        if (u2 != n.size() || counts.back() < 0) throw std::invalid_argument("count");
        q = c + 1;
      }
    } catch (const std::exception &) {
      throw std::invalid_argument(usage + ", got '" + item + "'");
    }
    if (stack < 1) throw std::invalid_argument("--stack-pp-layers: stack " + std::to_string(stack) +
                                               " is the decoder (stack 0 takes --pp-layers); towers are 1, 2, ...");
    if (!r.emplace(stack, counts).second)
      throw std::invalid_argument("--stack-pp-layers names stack " + std::to_string(stack) + " twice");
  }
  return r;
}

const Pipeline &StackPipelines::of(int stack) const {
  auto it = stacks.find(stack);
  if (it == stacks.end()) throw std::out_of_range("no pipeline distribution for stack " + std::to_string(stack));
  return it->second;
}

int StackPipelines::first_stage(int stack) const {
  const Pipeline &pl = of(stack);
  for (int s = 0; s < pl.pp * pl.vpp; ++s)
    if (pl.counts[static_cast<size_t>(s)] > 0) return s;
  return 0;
}

int StackPipelines::last_stage(int stack) const {
  const Pipeline &pl = of(stack);
  for (int s = pl.pp * pl.vpp - 1; s >= 0; --s)
    if (pl.counts[static_cast<size_t>(s)] > 0) return s;
  return pl.pp * pl.vpp - 1;
}

StackPipelines make_stack_pipelines(const std::map<int, int64_t> &layers, int pp, int vpp,
                                    const std::vector<int64_t> &decoder_layers,
                                    const std::map<int, std::vector<int64_t>> &stack_layers) {
  StackPipelines r;
  r.pp = pp;
  r.vpp = vpp;
  for (const auto &[stack, counts] : stack_layers)
    if (!layers.count(stack))
      throw std::invalid_argument("--stack-pp-layers gives stack " + std::to_string(stack) + ", the model has no such tower");
  for (const auto &[stack, n] : layers) {
    if (stack == 0) {
      r.stacks[0] = make_pipeline(n, pp, vpp, decoder_layers);
      continue;
    }
    auto it = stack_layers.find(stack);
    if (it == stack_layers.end() && pp > 1)
      throw std::invalid_argument("stack " + std::to_string(stack) + " (a tower beside the decoder, " + std::to_string(n) +
                                  " layers) needs its own pipeline distribution: --stack-pp-layers " +
                                  std::to_string(stack) + "=<" + std::to_string(pp) + " counts>");
    try {
      r.stacks[stack] = make_pipeline(n, pp, vpp, it == stack_layers.end() ? std::vector<int64_t>{} : it->second);
    } catch (const std::invalid_argument &e) {
      throw std::invalid_argument("stack " + std::to_string(stack) + ": " + std::string(e.what()));
    }
  }
  return r;
}

std::optional<LayerName> find_layer_name(const std::string &name, int64_t layer) {
  const std::string top = "blocks." + std::to_string(layer) + ".";  // a DiT's top-level blocks.<L>.
  if (name.rfind(top, 0) == 0) {
    LayerName ln;
    ln.prefix = "blocks.";
    ln.layer = layer;
    ln.rest = name.substr(top.size());
    return ln;
  }
  const std::string key = "layers." + std::to_string(layer) + ".";
  for (size_t at = name.find(key); at != std::string::npos; at = name.find(key, at + 1)) {
    if (at > 0 && name[at - 1] != '.') continue;
    LayerName ln;
    ln.prefix = name.substr(0, at + 7);
    ln.layer = layer;
    ln.rest = name.substr(at + key.size());
    return ln;
  }
  return std::nullopt;
}

ExpertParallel make_expert_parallel(int64_t experts, int ep) {
  if (ep < 1) throw std::invalid_argument("--ep must be >= 1");
  if (experts < 1) throw std::invalid_argument("expert parallelism needs a model with experts");
  if (experts % ep != 0)
    throw std::invalid_argument("--ep " + std::to_string(ep) + " does not divide the " + std::to_string(experts) +
                                " experts (each EP rank holds the same number of experts)");
  ExpertParallel r;
  r.ep = ep;
  r.experts = experts;
  return r;
}

std::string codes_of_scale(const std::string &name) {
  const size_t k = sizeof kScaleSuffix - 1;
  return name.size() > k && name.compare(name.size() - k, k, kScaleSuffix) == 0 ? name.substr(0, name.size() - k)
                                                                                 : std::string();
}

std::string ExpertName::with(int64_t e) const {
  return grouped ? prefix + std::to_string(e) + rest : prefix + std::to_string(e) + "." + rest;
}

std::optional<ExpertName> parse_expert_name(const std::string &name) {
  auto digits = [&](size_t i, size_t &j) {
    j = i;
    while (j < name.size() && name[j] >= '0' && name[j] <= '9') ++j;
    return j > i && j - i <= 9;
  };
  const std::string seq = "experts.local_experts.";
  size_t at = name.find(seq);
  if (at != std::string::npos) {
    size_t i = at + seq.size(), j = 0;
    if (!digits(i, j) || j >= name.size() || name[j] != '.') return std::nullopt;
    ExpertName n;
    n.prefix = name.substr(0, i);
    n.expert = std::stoll(name.substr(i, j - i));
    n.rest = name.substr(j + 1);
    return n;
  }
  for (const char *p : {"experts.linear_fc1.weight", "experts.linear_fc2.weight", "experts.linear_fc1.bias",
                        "experts.linear_fc2.bias"}) {
    const std::string key(p);
    at = name.find(key);
    if (at == std::string::npos || (at > 0 && name[at - 1] != '.')) continue;
    size_t i = at + key.size(), j = 0;
    // The block scales of FP8 codes follow the codes' name: "weight<e>_scale_inv".
    if (!digits(i, j) || (j != name.size() && name.compare(j, std::string::npos, kScaleSuffix) != 0)) continue;
    ExpertName n;
    n.prefix = name.substr(0, i);
    n.expert = std::stoll(name.substr(i, j - i));
    n.rest = name.substr(j);
    n.grouped = true;
    return n;
  }
  return std::nullopt;
}

void check_expert_cover(const std::string &what, const std::vector<int64_t> &found, int64_t experts) {
  std::vector<int> seen(static_cast<size_t>(std::max<int64_t>(experts, 0)), 0);
  for (int64_t e : found) {
    if (e < 0 || e >= experts)
      throw std::invalid_argument(what + ": expert " + std::to_string(e) + " is outside 0.." + std::to_string(experts - 1));
    if (seen[static_cast<size_t>(e)]++)
      throw std::invalid_argument(what + ": expert " + std::to_string(e) + " appears twice (colliding local expert ids?)");
  }
  for (int64_t e = 0; e < experts; ++e)
    if (!seen[static_cast<size_t>(e)])
      throw std::invalid_argument(what + ": expert " + std::to_string(e) + " of " + std::to_string(experts) + " is missing");
}

std::string rank_dir(int tp_rank, int pp_rank, int ep_rank, int pp, int ep) {
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "mp_rank_%02d", tp_rank);
  if (pp > 1) n += std::snprintf(buf + n, sizeof buf - static_cast<size_t>(n), "_%03d", pp_rank);
  if (ep > 1) std::snprintf(buf + n, sizeof buf - static_cast<size_t>(n), "_%03d", ep_rank);
  return buf;
}

std::optional<RankId> parse_rank_dir(const std::string &name, int pp, int ep) {
  const std::string pre = "mp_rank_";
  if (name.compare(0, pre.size(), pre) != 0) return std::nullopt;
  std::vector<int> parts;
  std::string cur;
  for (size_t i = pre.size(); i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '_') {
      if (cur.empty() || cur.size() > 6) return std::nullopt;
      parts.push_back(std::stoi(cur));
      cur.clear();
    } else if (name[i] >= '0' && name[i] <= '9') {
      cur += name[i];
    } else {
      return std::nullopt;
    }
  }
  const size_t want = 1 + (pp > 1 ? 1 : 0) + (ep > 1 ? 1 : 0);
  if (parts.size() != want) return std::nullopt;
  RankId r;
  r.tp = parts[0];
  size_t k = 1;
  if (pp > 1) r.pp = parts[k++];
  if (ep > 1) r.ep = parts[k++];
  return r;
}

int64_t padded_vocab(int64_t vocab, int64_t divisible_by, int tp) {
  const int64_t m = divisible_by * tp;
  if (m <= 0) return vocab;
  return (vocab + m - 1) / m * m;
}

std::string iteration_dir(int64_t iteration, bool release) {
  if (release) return "release";
  char buf[32];
  std::snprintf(buf, sizeof buf, "iter_%07lld", static_cast<long long>(iteration));
  return buf;
}

}  // namespace ckh::megatron
