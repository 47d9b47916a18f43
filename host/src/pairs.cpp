// pairs.cpp — see pairs.hpp.
#include "ckhost/host/pairs.hpp"

#include <algorithm>
#include <set>
#include <unordered_map>

#include "ckhost/host/error.hpp"

namespace ckh::host {

namespace {

int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The block along one dim: codes extent n, scale extent ns. The hint (the block the reader annotated)
// when given, and only when it fits: a grid that does not follow it (e.g. scales of TP shards each on
// their own grid, concatenated) is no uniform grid, and guessing another block would pair every scale
// with the wrong codes; else the exact quotient; 0 when the grid does not say (a lone partial block, or
// no block size fits).
int64_t block_of(int64_t n, int64_t ns, int64_t hint) {
  if (ns < 1 || n < 1) return 0;
  if (hint > 0) return cdiv(n, hint) == ns ? hint : 0;
  if (ns == n) return 1;
  if (n % ns == 0 && ns > 1) return n / ns;
  return 0;
}

std::string dim_text(const Graph &g, int32_t e, uint32_t d) {
  return "dim " + std::to_string(d) + " of " + g.node(e).shape.str();
}

}  // namespace

void seed_pairs(Graph &g, const Stage &s) {
  for (const StageTensor &t : s.tensors) {
    const Node &n = g.node(t.node);
    if (n.op != Op::Source) continue;
    const Source &src = g.sources[static_cast<size_t>(n.source)];
    if (src.quant != QuantRole::Codes || src.quant_pair.empty()) continue;
    auto it = s.index.find(src.quant_pair);
    if (it == s.index.end()) continue;
    const StageTensor &st = s.tensors[it->second];
    const Node &sn = g.node(st.node);
    if (sn.op != Op::Source || g.sources[static_cast<size_t>(sn.source)].quant != QuantRole::Scale) continue;
    const uint32_t nd = n.shape.ndim;
    if (nd < 2 || sn.shape.ndim != nd) continue;
    PairInfo p;
    p.scale = st.node;
    bool ok = true;
    for (uint32_t d = 0; d + 2 < nd; ++d) {
      ok = ok && sn.shape.d[d] == n.shape.d[d];
      p.block[d] = 1;
    }
    p.block[nd - 2] = block_of(n.shape.d[nd - 2], sn.shape.d[nd - 2], src.quant_block[0]);
    p.block[nd - 1] = block_of(n.shape.d[nd - 1], sn.shape.d[nd - 1], src.quant_block[1]);
    // Block scales beside their codes that do not follow the block the checkpoint states: no reading of
    // them is right (e.g. tensor-parallel shards quantized each on its own grid, then concatenated).
    if (ok && src.quant_block[0] > 0 && (p.block[nd - 2] == 0 || p.block[nd - 1] == 0) &&
        src.quant_pair == src.name + "_scale_inv")
      fail("tensor '" + src.quant_pair + "': block scales " + sn.shape.str() + " do not fit codes '" + src.name + "' " +
               n.shape.str() + " in blocks of " + std::to_string(src.quant_block[0]) + " x " + std::to_string(src.quant_block[1]) +
               " (the config's weight_block_size): expected " + std::to_string(cdiv(n.shape.d[nd - 2], src.quant_block[0])) +
               " x " + std::to_string(cdiv(n.shape.d[nd - 1], src.quant_block[1])) +
               " scales (shards quantized each on its own grid are not supported)",
           CKH_E_FORMAT);
    if (!ok || p.block[nd - 2] == 0 || p.block[nd - 1] == 0) continue;
    for (uint32_t d = nd; d < CKH_MAX_DIMS; ++d) p.block[d] = 1;
    p.suffix = src.quant_pair.compare(0, src.name.size(), src.name) == 0 ? src.quant_pair.substr(src.name.size())
                                                                          : std::string("_scale_inv");
    if (p.suffix.empty()) continue;
    g.pairs[t.node] = p;
  }
}

const PairInfo *lift_pair(Graph &g, int32_t e, std::string *why) {
  if (auto it = g.pairs.find(e); it != g.pairs.end()) return &it->second;
  if (auto it = g.pair_failures.find(e); it != g.pair_failures.end()) {
    if (why) *why = it->second;
    return nullptr;
  }
  const Node n = g.node(e);  // a copy: g.nodes grows below
  std::string bad;
  PairInfo out;
  auto give_up = [&](const std::string &w) -> const PairInfo * {
    g.pair_failures[e] = w;
    if (why) *why = w;
    return nullptr;
  };
  auto sub = [&](int32_t in) -> const PairInfo * {
    const PairInfo *p = lift_pair(g, in, &bad);
    return p;
  };
  switch (n.op) {
    case Op::Source:
      return give_up("'" + g.sources[static_cast<size_t>(n.source)].name + "' has no block scales beside it");
    case Op::Slice: {
      const PairInfo *p = sub(n.in[0]);
      if (!p) return give_up(bad);
      const int64_t b = p->block[n.dim];
      if (n.start % b)
        return give_up("a cut at " + std::to_string(n.start) + " of " + dim_text(g, n.in[0], n.dim) +
                       " falls inside a block of " + std::to_string(b));
      out = *p;
      out.scale = g.slice(p->scale, n.dim, n.start / b, cdiv(n.length, b));
      break;
    }
    case Op::Concat: {
      std::vector<int32_t> parts;
      const PairInfo *first = nullptr;
      for (size_t i = 0; i < n.in.size(); ++i) {
        const PairInfo *p = sub(n.in[i]);
        if (!p) return give_up(bad);
        if (!first) first = p;
        if (p->block != first->block || p->suffix != first->suffix)
          return give_up("it joins parts with different block grids");
        const int64_t ext = g.node(n.in[i]).shape.d[n.dim], b = p->block[n.dim];
        if (i + 1 < n.in.size() && ext % b)
          return give_up("part " + std::to_string(i) + " of a concat along dim " + std::to_string(n.dim) + " ends inside a block (" +
                         std::to_string(ext) + " is not a multiple of " + std::to_string(b) + ")");
        parts.push_back(p->scale);
      }
      out = *first;
      out.scale = g.concat(parts, n.dim);
      break;
    }
    case Op::Permute: {
      const PairInfo *p = sub(n.in[0]);
      if (!p) return give_up(bad);
      out.suffix = p->suffix;
      out.block.fill(1);
      std::vector<uint32_t> perm(n.shape.ndim);
      for (uint32_t i = 0; i < n.shape.ndim; ++i) {
        perm[i] = n.perm[i];
        out.block[i] = p->block[n.perm[i]];
      }
      out.scale = g.permute(p->scale, perm);
      break;
    }
    case Op::Reshape: {
      const PairInfo *p = sub(n.in[0]);
      if (!p) return give_up(bad);
      const PairInfo pin = *p;
      const Shape &os = g.node(n.in[0]).shape, &ns = n.shape;
      // Group the dims: runs of old and new dims with equal products (dims of extent 1 belong to no
      // group: their scale extent is 1). In each group at most one old dim is blocked, and it must be
      // the group's innermost; the block then moves to the innermost new dim of the group. That is
      // exact when both extents are whole blocks, or when the group is one dim renamed.
      std::vector<uint32_t> od, nd;
      for (uint32_t i = 0; i < os.ndim; ++i)
        if (os.d[i] != 1) od.push_back(i);
      for (uint32_t i = 0; i < ns.ndim; ++i)
        if (ns.d[i] != 1) nd.push_back(i);
      Shape ss;
      ss.ndim = ns.ndim;
      for (uint32_t i = 0; i < ns.ndim; ++i) ss.d[i] = 1;
      out.block.fill(1);
      out.suffix = pin.suffix;
      size_t i = 0, j = 0;
      while (i < od.size() || j < nd.size()) {
        if (i >= od.size() || j >= nd.size()) return give_up("reshape " + os.str() + " -> " + ns.str() + " has unmatched dims");
        size_t i1 = i, j1 = j;
        int64_t po = os.d[od[i1++]], pn = ns.d[nd[j1++]];
        while (po != pn) {
          if (po < pn) {
            if (i1 >= od.size()) return give_up("reshape " + os.str() + " -> " + ns.str() + " has unmatched dims");
            po *= os.d[od[i1++]];
          } else {
            if (j1 >= nd.size()) return give_up("reshape " + os.str() + " -> " + ns.str() + " has unmatched dims");
            pn *= ns.d[nd[j1++]];
          }
        }
        int blocked = -1;
        for (size_t k = i; k < i1; ++k)
          if (pin.block[od[k]] > 1) {
            if (blocked >= 0) return give_up("reshape " + os.str() + " -> " + ns.str() + " merges two blocked dims");
            blocked = static_cast<int>(k);
          }
        for (size_t k = j; k < j1; ++k) ss.d[nd[k]] = ns.d[nd[k]];
        if (blocked >= 0) {
          const int64_t b = pin.block[od[static_cast<size_t>(blocked)]];
          if (static_cast<size_t>(blocked) + 1 != i1)
            return give_up("reshape " + os.str() + " -> " + ns.str() + " moves blocked dim " + std::to_string(od[static_cast<size_t>(blocked)]) +
                           " inside a merged dim");
          const int64_t eo = os.d[od[static_cast<size_t>(blocked)]], en = ns.d[nd[j1 - 1]];
          const bool renamed = i1 - i == 1 && j1 - j == 1;
          if (!renamed && (eo % b || en % b))
            return give_up("reshape " + os.str() + " -> " + ns.str() + " splits or merges dim " +
                           std::to_string(od[static_cast<size_t>(blocked)]) + " inside a block of " + std::to_string(b));
          ss.d[nd[j1 - 1]] = cdiv(en, b);
          out.block[nd[j1 - 1]] = b;
        }
        i = i1;
        j = j1;
      }
      out.scale = g.reshape(pin.scale, ss);
      break;
    }
    case Op::Pad: return give_up("it is padded (" + g.describe(e) + ")");
    case Op::Cast: return give_up("it is cast to " + dtype_name(n.dtype));
    case Op::Scale: return give_up("it is scaled");
    case Op::Quantize: return give_up("it is the output of a quantizer");
  }
  auto res = g.pairs.emplace(e, out);
  return &res.first->second;
}

std::vector<uint8_t> pair_taint(const Graph &g) {
  std::vector<uint8_t> t(g.nodes.size(), 0);
  std::set<int32_t> scales;
  for (const auto &kv : g.pairs)
    if (g.node(kv.first).op == Op::Source || g.node(kv.first).op == Op::Quantize) {  // roots: read or quantized here
      t[static_cast<size_t>(kv.first)] = 1;
      scales.insert(kv.second.scale);
    }
  for (int32_t s : scales) t[static_cast<size_t>(s)] = 2;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (t[i]) continue;
    const Node &n = g.nodes[i];
    if (n.op == Op::Quantize) continue;  // a quantizer's outputs are its own
    for (int32_t in : n.in)
      if (in >= 0 && static_cast<size_t>(in) < i && t[static_cast<size_t>(in)]) {
        t[i] = t[static_cast<size_t>(in)];
        break;
      }
  }
  return t;
}

Stage mapper_view(const Graph &g, const Stage &in, std::map<std::string, std::string> &hidden) {
  std::unordered_map<int32_t, std::string> scale_nodes;  // scale node -> codes name
  for (const StageTensor &t : in.tensors)
    if (auto it = g.pairs.find(t.node); it != g.pairs.end()) scale_nodes[it->second.scale] = t.name;
  Stage v;
  v.producer = in.producer;
  v.metadata = in.metadata;
  for (const StageTensor &t : in.tensors) {
    if (auto it = scale_nodes.find(t.node); it != scale_nodes.end()) {
      hidden[t.name] = it->second;
      continue;
    }
    v.add(t);
  }
  return v;
}

std::string with_quant(const std::string &extra, const nlohmann::json &q) {
  nlohmann::json j = extra.empty() ? nlohmann::json::object() : nlohmann::json::parse(extra, nullptr, false);
  if (j.is_discarded() || !j.is_object()) j = nlohmann::json::object();
  j["quant"] = q;
  return j.dump();
}

void add_lifted_scales(Graph &g, Stage &in, const Stage &view, Stage &out, const std::map<std::string, std::string> &hidden,
                       const std::string &who) {
  for (const auto &kv : view.ignored) in.ignored[kv.first] = kv.second;
  for (const auto &kv : hidden)
    if (view.ignored.count(kv.second)) in.ignored[kv.first] = "the scales of '" + kv.second + "', ignored with it";
  const std::vector<uint8_t> taint = pair_taint(g);
  const size_t n_out = out.tensors.size();
  for (size_t i = 0; i < n_out; ++i) {
    const StageTensor t = out.tensors[i];
    if (static_cast<size_t>(t.node) >= taint.size() || taint[static_cast<size_t>(t.node)] != 1) continue;
    std::string why;
    const PairInfo *p = lift_pair(g, t.node, &why);
    if (!p)
      fail(who + " (to '" + t.name + "'): block-quantized codes cannot be cut there: " + why +
               "; the codes and their block scales are copied as they are, so every cut must fall on a block boundary "
               "(choose a layout that does, or dequantize with --dtype bf16)",
           CKH_E_UNSUPPORTED);
    const std::string sname = t.name + p->suffix;
    if (out.index.count(sname)) fail(who + ": '" + sname + "' would hold the block scales of '" + t.name + "' but is taken", CKH_E_UNSUPPORTED);
    const int32_t scale_node = p->scale;
    StageTensor s{sname, scale_node, t.annot};
    s.annot.extra_json = with_quant(t.annot.extra_json, {{"role", "scale"}, {"of", t.name}});
    out.tensors[i].annot.extra_json = with_quant(t.annot.extra_json, {{"role", "codes"}, {"scales", {sname}}});
    out.add(std::move(s));
  }
}


bool same_expr(const Graph &g, int32_t a, int32_t b) {
  if (a == b) return true;
  const Node &x = g.node(a), &y = g.node(b);
  if (x.op != y.op || x.dtype != y.dtype || x.shape != y.shape || x.in.size() != y.in.size()) return false;
  switch (x.op) {
    case Op::Source: return x.source == y.source;
    case Op::Slice:
      if (x.dim != y.dim || x.start != y.start || x.length != y.length) return false;
      break;
    case Op::Concat:
      if (x.dim != y.dim) return false;
      break;
    case Op::Reshape: break;
    case Op::Permute:
      if (x.perm != y.perm) return false;
      break;
    case Op::Pad:
      if (x.dim != y.dim || x.start != y.start || x.length != y.length || x.mode != y.mode) return false;
      break;
    case Op::Cast: break;
    case Op::Scale:
      if (x.factor != y.factor) return false;
      break;
    case Op::Quantize:
      if (x.quant != y.quant || x.output != y.output) return false;
      break;
  }
  for (size_t i = 0; i < x.in.size(); ++i)
    if (!same_expr(g, x.in[i], y.in[i])) return false;
  return true;
}

void check_layout_pairs(Graph &g) {
  if (g.pairs.empty()) return;
  const std::vector<uint8_t> taint = pair_taint(g);
  std::vector<size_t> codes, scales;
  for (size_t i = 0; i < g.layout.regions.size(); ++i) {
    const int32_t e = g.layout.regions[i].node;
    if (e < 0 || static_cast<size_t>(e) >= taint.size()) continue;
    if (taint[static_cast<size_t>(e)] == 1) codes.push_back(i);
    else if (taint[static_cast<size_t>(e)] == 2) scales.push_back(i);
  }
  if (codes.empty() && scales.empty()) return;
  auto where = [&](size_t r) {
    const Region &reg = g.layout.regions[r];
    return "'" + g.layout.files[static_cast<size_t>(reg.file)].relpath + "' @" + std::to_string(reg.offset);
  };
  std::vector<int32_t> want(codes.size(), -1);
  for (size_t k = 0; k < codes.size(); ++k) {
    std::string why;
    const int32_t e = g.layout.regions[codes[k]].node;
    const PairInfo *p = lift_pair(g, e, &why);
    if (!p)
      fail("the writer's layout cuts block-quantized codes inside a block (" + g.describe(e, 3) + " in " + where(codes[k]) +
               "): " + why + "; every cut of codes and block scales must fall on a block boundary (choose a layout that does, "
               "or dequantize with --dtype bf16)",
           CKH_E_UNSUPPORTED);
    want[k] = p->scale;
  }
  // The graph is hash-consed (Graph::push): structurally equal expressions are one node, so a weight
  // replicated over hundreds of rank files is matched in constant time per region by its node.
  std::unordered_map<int32_t, std::vector<size_t>> by_canon;
  for (size_t r : scales) by_canon[g.layout.regions[r].node].push_back(r);
  std::vector<char> matched(g.layout.regions.size(), 0);
  for (size_t k = 0; k < codes.size(); ++k) {
    // The scales of this cut, preferably not yet claimed and in the same file (a replicated weight is
    // written once per rank, its scales too).
    const int32_t file = g.layout.regions[codes[k]].file;
    int64_t best = -1;
    int rank = 0;
    if (auto found = by_canon.find(want[k]); found != by_canon.end())
      for (size_t cand : found->second) {
        const int r = (matched[cand] ? 0 : 2) + (g.layout.regions[cand].file == file ? 1 : 0) + 1;
        if (r > rank) {
          rank = r;
          best = static_cast<int64_t>(cand);
        }
        if (rank == 4) break;  // unclaimed and in the same file: none better
      }
    if (best >= 0) matched[static_cast<size_t>(best)] = 1;
    if (best < 0)
      fail("the writer's layout holds block-quantized codes (" + g.describe(g.layout.regions[codes[k]].node, 3) + " in " +
               where(codes[k]) + ") without the block scales of exactly that cut (" + g.describe(want[k], 3) + ")",
           CKH_E_UNSUPPORTED);
  }
  for (size_t r : scales)
    if (!matched[r])
      fail("the writer's layout holds block scales (" + g.describe(g.layout.regions[r].node, 3) + " in " + where(r) +
               ") that are not the scales of any codes it writes (a cut that does not match its codes)",
           CKH_E_UNSUPPORTED);
}

}  // namespace ckh::host
