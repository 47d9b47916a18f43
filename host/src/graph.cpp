// graph.cpp — expression nodes with shape/dtype checks, and the C builders handed to plugins.
#include "ckhost/host/graph.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <sstream>

#include "ckhost/host/error.hpp"
#include "ckhost/host/registry.hpp"
#include "ckhost/host/services.hpp"

namespace ckh::host {

std::string Shape::str() const {
  std::string s = "[";
  for (uint32_t i = 0; i < ndim; ++i) {
    if (i) s += ", ";
    s += std::to_string(d[i]);
  }
  return s + "]";
}

std::string dtype_name(ckh_dtype dt) {
  switch (dt) {
    case CKH_DT_F32: return "F32";
    case CKH_DT_F16: return "F16";
    case CKH_DT_BF16: return "BF16";
    case CKH_DT_F8_E4M3FN: return "F8_E4M3";
    case CKH_DT_F8_E5M2: return "F8_E5M2";
    case CKH_DT_F64: return "F64";
    case CKH_DT_I8: return "I8";
    case CKH_DT_U8: return "U8";
    case CKH_DT_I16: return "I16";
    case CKH_DT_U16: return "U16";
    case CKH_DT_I32: return "I32";
    case CKH_DT_U32: return "U32";
    case CKH_DT_I64: return "I64";
    case CKH_DT_U64: return "U64";
    case CKH_DT_BOOL: return "BOOL";
    case CKH_DT_F8_E8M0: return "F8_E8M0";
    case CKH_DT_Q8_0: return "Q8_0";
    case CKH_DT_Q4_0: return "Q4_0";
    case CKH_DT_Q4_1: return "Q4_1";
    case CKH_DT_Q5_0: return "Q5_0";
    case CKH_DT_Q5_1: return "Q5_1";
    case CKH_DT_Q2_K: return "Q2_K";
    case CKH_DT_Q3_K: return "Q3_K";
    case CKH_DT_Q4_K: return "Q4_K";
    case CKH_DT_Q5_K: return "Q5_K";
    case CKH_DT_Q6_K: return "Q6_K";
    default: return "dtype(" + std::to_string(dt) + ")";
  }
}

uint32_t storage_size(ckh_dtype dt) {
  ckh_dtype_traits_t t;
  return ckh_dtype_traits(dt, &t) ? t.block_bytes : 0;
}

uint32_t block_elems(ckh_dtype dt) {
  ckh_dtype_traits_t t;
  return ckh_dtype_traits(dt, &t) && t.is_block ? t.block_elems : 1;
}

Shape logical_shape(ckh_dtype dt, const Shape &s) {
  const uint32_t b = block_elems(dt);
  Shape r = s;
  if (b > 1 && r.ndim) r.d[r.ndim - 1] *= b;
  return r;
}

Shape storage_shape(ckh_dtype dt, const Shape &s, const std::string &what) {
  const uint32_t b = block_elems(dt);
  if (b == 1) return s;
  if (s.ndim == 0 || s.d[s.ndim - 1] % b != 0)
    fail(what + ": dtype " + dtype_name(dt) + " stores blocks of " + std::to_string(b) +
             " elements along the last dim, shape " + s.str() + " does not divide into them",
         CKH_E_FORMAT);
  Shape r = s;
  r.d[r.ndim - 1] /= b;
  return r;
}

uint64_t Quant::bytes_per_block() const {
  uint64_t n = extra_bytes_per_block;
  auto add = [&](const QuantPort &p) {
    if (p.rows_per_block <= 0) return;
    Shape row = p.shape;
    if (row.ndim) row.d[0] = 1;
    n += static_cast<uint64_t>(p.rows_per_block) * static_cast<uint64_t>(row.numel()) * storage_size(p.dtype);
  };
  for (const auto &p : in) add(p);
  for (const auto &p : out) add(p);
  return n;
}

ckh_dtype dtype_from_name(const std::string &s0) {
  std::string s;
  for (char c : s0) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::map<std::string, ckh_dtype> names = {
      {"f32", CKH_DT_F32}, {"float32", CKH_DT_F32}, {"float", CKH_DT_F32}, {"fp32", CKH_DT_F32},
      {"f16", CKH_DT_F16}, {"float16", CKH_DT_F16}, {"half", CKH_DT_F16}, {"fp16", CKH_DT_F16},
      {"bf16", CKH_DT_BF16}, {"bfloat16", CKH_DT_BF16}, {"f64", CKH_DT_F64}, {"float64", CKH_DT_F64},
      {"f8_e4m3", CKH_DT_F8_E4M3FN}, {"f8_e4m3fn", CKH_DT_F8_E4M3FN}, {"float8_e4m3fn", CKH_DT_F8_E4M3FN},
      {"f8_e5m2", CKH_DT_F8_E5M2}, {"float8_e5m2", CKH_DT_F8_E5M2}};
  auto it = names.find(s);
  return it == names.end() ? CKH_DT_INVALID : it->second;
}

Annot Annot::from(const ckh_tensor_annot_t *a) {
  Annot r;
  if (!a) return r;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, role)) r.role = a->role;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, layer)) r.layer = a->layer;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, expert)) r.expert = a->expert;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, parallel)) r.parallel = a->parallel;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, split_dim)) r.split_dim = a->split_dim;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, init)) r.init = a->init;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, extra_json) && a->extra_json) r.extra_json = a->extra_json;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, group)) r.group = a->group;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, stack)) r.stack = a->stack;
  if (CKH_HAS_FIELD(a, ckh_tensor_annot_t, kind)) r.kind = a->kind;
  return r;
}

void Annot::to(ckh_tensor_annot_t *a) const {
  ckh_tensor_annot_t full{};
  full.struct_size = sizeof full;
  full.role = role;
  full.layer = layer;
  full.expert = expert;
  full.parallel = parallel;
  full.split_dim = split_dim;
  full.init = init;
  full.extra_json = extra_json.empty() ? nullptr : extra_json.c_str();
  full.group = group;
  full.stack = stack;
  full.kind = kind;
  uint32_t n = std::min<uint32_t>(a->struct_size, sizeof full);
  std::memcpy(reinterpret_cast<char *>(a) + sizeof(uint32_t), reinterpret_cast<char *>(&full) + sizeof(uint32_t),
              n > sizeof(uint32_t) ? n - sizeof(uint32_t) : 0);
}

void Stage::add(StageTensor t) {
  if (index.count(t.name)) fail("tensor '" + t.name + "' emitted twice");
  index.emplace(t.name, tensors.size());
  tensors.push_back(std::move(t));
}

Graph::~Graph() {
  for (auto &q : quants)
    if (q.cls && q.cls->release && q.state) q.cls->release(q.cls, q.state);
}

Stage &Graph::add_stage(const std::string &producer) {
  stages.emplace_back();
  stages.back().producer = producer;
  return stages.back();
}

const Node &Graph::node(int32_t e) const {
  if (e < 0 || static_cast<size_t>(e) >= nodes.size()) fail("invalid expression handle " + std::to_string(e));
  return nodes[static_cast<size_t>(e)];
}

uint64_t Graph::node_bytes(int32_t e) const {
  const Node &n = node(e);
  return static_cast<uint64_t>(n.shape.numel()) * storage_size(n.dtype);
}

namespace {

uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= h >> 31;
  h *= 0xbf58476d1ce4e5b9ull;
  return h;
}

// Every field takes part, whatever the op: the fields an op does not use keep their defaults.
uint64_t node_hash(const Node &n) {
  uint64_t h = mix(static_cast<uint64_t>(n.op), static_cast<uint64_t>(n.dtype));
  h = mix(h, n.shape.ndim);
  for (uint32_t i = 0; i < n.shape.ndim; ++i) h = mix(h, static_cast<uint64_t>(n.shape.d[i]));
  for (int32_t x : n.in) h = mix(h, static_cast<uint32_t>(x));
  h = mix(h, static_cast<uint32_t>(n.source));
  h = mix(h, n.dim);
  h = mix(h, static_cast<uint64_t>(n.start));
  h = mix(h, static_cast<uint64_t>(n.length));
  h = mix(h, static_cast<uint32_t>(n.mode));
  for (uint32_t p : n.perm) h = mix(h, p);
  uint64_t f;
  std::memcpy(&f, &n.factor, sizeof f);
  h = mix(h, f);
  h = mix(h, static_cast<uint32_t>(n.quant));
  return mix(h, n.output);
}

bool node_equal(const Node &a, const Node &b) {
  return a.op == b.op && a.dtype == b.dtype && a.shape == b.shape && a.in == b.in && a.source == b.source &&
         a.dim == b.dim && a.start == b.start && a.length == b.length && a.mode == b.mode && a.perm == b.perm &&
         std::memcmp(&a.factor, &b.factor, sizeof a.factor) == 0 && a.quant == b.quant && a.output == b.output;
}

}  // namespace

int32_t Graph::push(Node n) {
  const uint64_t h = node_hash(n);
  if ((interned_ + 1) * 2 > intern_.size()) {
    std::vector<uint64_t> grown(std::max<size_t>(1024, intern_.size() * 2), 0);
    const size_t mask = grown.size() - 1;
    for (uint64_t slot : intern_) {
      if (!slot) continue;
      size_t i = node_hash(nodes[(slot & 0xffffffffu) - 1]) & mask;
      while (grown[i]) i = (i + 1) & mask;
      grown[i] = slot;
    }
    intern_.swap(grown);
  }
  const size_t mask = intern_.size() - 1;
  const uint64_t tag = h >> 32 << 32;
  size_t i = h & mask;
  for (; intern_[i]; i = (i + 1) & mask)
    if ((intern_[i] & ~0xffffffffull) == tag && node_equal(nodes[(intern_[i] & 0xffffffffu) - 1], n))
      return static_cast<int32_t>((intern_[i] & 0xffffffffu) - 1);
  if (nodes.size() >= static_cast<size_t>(INT32_MAX) - 1) fail("expression graph too large");
  nodes.push_back(std::move(n));
  intern_[i] = tag | static_cast<uint64_t>(nodes.size());
  ++interned_;
  return static_cast<int32_t>(nodes.size() - 1);
}

int32_t Graph::source_node(int32_t s) {
  Node n;
  n.op = Op::Source;
  n.source = s;
  n.dtype = sources.at(static_cast<size_t>(s)).dtype;
  n.shape = sources.at(static_cast<size_t>(s)).shape;
  return push(std::move(n));
}

int32_t Graph::slice(int32_t e, uint32_t dim, int64_t start, int64_t length) {
  const Node &a = node(e);
  if (dim >= a.shape.ndim) fail("slice: dim " + std::to_string(dim) + " out of range for shape " + a.shape.str());
  if (start < 0 || length < 0 || start > a.shape.d[dim] || length > a.shape.d[dim] - start)
    fail("slice: [" + std::to_string(start) + ", +" + std::to_string(length) + ") exceeds dim " + std::to_string(dim) +
         " of shape " + a.shape.str());
  Node n;
  n.op = Op::Slice;
  n.in = {e};
  n.dtype = a.dtype;
  n.shape = a.shape;
  n.shape.d[dim] = length;
  n.dim = dim;
  n.start = start;
  n.length = length;
  return push(std::move(n));
}

int32_t Graph::concat(const std::vector<int32_t> &parts, uint32_t dim) {
  if (parts.empty()) fail("concat: no parts");
  const Node first = node(parts[0]);
  if (dim >= first.shape.ndim) fail("concat: dim " + std::to_string(dim) + " out of range for shape " + first.shape.str());
  Node n;
  n.op = Op::Concat;
  n.dtype = first.dtype;
  n.shape = first.shape;
  n.dim = dim;
  n.shape.d[dim] = 0;
  for (int32_t p : parts) {
    const Node &b = node(p);
    if (b.dtype != first.dtype)
      fail("concat: dtype " + dtype_name(b.dtype) + " differs from " + dtype_name(first.dtype));
    if (b.shape.ndim != first.shape.ndim) fail("concat: shape " + b.shape.str() + " vs " + first.shape.str());
    for (uint32_t i = 0; i < b.shape.ndim; ++i)
      if (i != dim && b.shape.d[i] != first.shape.d[i])
        fail("concat along dim " + std::to_string(dim) + ": shape " + b.shape.str() + " does not match " +
             first.shape.str());
    n.shape.d[dim] += b.shape.d[dim];
  }
  if (parts.size() == 1) return parts[0];
  n.in = parts;
  return push(std::move(n));
}

int32_t Graph::reshape(int32_t e, const Shape &shape) {
  const Node &a = node(e);
  if (shape.ndim > CKH_MAX_DIMS) fail("reshape: too many dims");
  for (uint32_t i = 0; i < shape.ndim; ++i)
    if (shape.d[i] < 0) fail("reshape: negative dim in " + shape.str());
  if (shape.numel() != a.shape.numel())
    fail("reshape: " + a.shape.str() + " has " + std::to_string(a.shape.numel()) + " elements, " + shape.str() +
         " needs " + std::to_string(shape.numel()));
  if (shape == a.shape) return e;
  Node n;
  n.op = Op::Reshape;
  n.in = {e};
  n.dtype = a.dtype;
  n.shape = shape;
  return push(std::move(n));
}

int32_t Graph::permute(int32_t e, const std::vector<uint32_t> &perm) {
  const Node &a = node(e);
  if (perm.size() != a.shape.ndim) fail("permute: " + std::to_string(perm.size()) + " axes for shape " + a.shape.str());
  std::vector<bool> seen(perm.size(), false);
  Node n;
  n.op = Op::Permute;
  n.in = {e};
  n.dtype = a.dtype;
  n.shape.ndim = a.shape.ndim;
  bool identity = true;
  for (size_t i = 0; i < perm.size(); ++i) {
    if (perm[i] >= perm.size() || seen[perm[i]]) fail("permute: invalid axis order");
    seen[perm[i]] = true;
    n.perm[i] = perm[i];
    n.shape.d[i] = a.shape.d[perm[i]];
    identity = identity && perm[i] == i;
  }
  if (identity) return e;
  return push(std::move(n));
}

int32_t Graph::pad(int32_t e, uint32_t dim, int64_t before, int64_t after, int32_t mode) {
  const Node &a = node(e);
  if (dim >= a.shape.ndim) fail("pad: dim " + std::to_string(dim) + " out of range for shape " + a.shape.str());
  if (before < 0 || after < 0) fail("pad: negative amount");
  if (mode != CKH_PAD_ZEROS && mode != CKH_PAD_REPEAT_EDGE) fail("pad: unknown mode " + std::to_string(mode));
  if (mode == CKH_PAD_REPEAT_EDGE && a.shape.d[dim] == 0) fail("pad: cannot repeat the edge of an empty dim");
  if (before == 0 && after == 0) return e;
  Node n;
  n.op = Op::Pad;
  n.in = {e};
  n.dtype = a.dtype;
  n.shape = a.shape;
  n.shape.d[dim] += before + after;
  n.dim = dim;
  n.start = before;
  n.length = after;
  n.mode = mode;
  return push(std::move(n));
}

int32_t Graph::cast(int32_t e, ckh_dtype to) {
  const Node &a = node(e);
  if (a.dtype == to) return e;
  if (block_elems(to) > 1 || block_elems(a.dtype) > 1)
    fail("cast: " + dtype_name(a.dtype) + " to " + dtype_name(to) +
         ": block-quantized data is only converted by a quantizer (quantize_n)", CKH_E_UNSUPPORTED);
  if (ckh_dtype_size(to) == 0) fail("cast: unknown dtype " + std::to_string(to));
  Node n;
  n.op = Op::Cast;
  n.in = {e};
  n.dtype = to;
  n.shape = a.shape;
  return push(std::move(n));
}

int32_t Graph::scale(int32_t e, double factor) {
  const Node &a = node(e);
  if (!ckh_dtype_is_float(a.dtype)) fail("scale: " + dtype_name(a.dtype) + " is not a floating-point dtype");
  Node n;
  n.op = Op::Scale;
  n.in = {e};
  n.dtype = a.dtype;
  n.shape = a.shape;
  n.factor = factor;
  return push(std::move(n));
}

int32_t Graph::quantize(int32_t e, const std::string &id, const std::string &params, uint32_t output) {
  return quantize_n({e}, id, params, output);
}

namespace {

std::string status_text(const std::string &id, const char *what) {
  auto le = take_last_error();
  return "quantizer '" + id + "': " + (le.second.empty() ? std::string(what) : le.second);
}

Shape shape_of(const ckh_tensor_info_t &t) {
  Shape s;
  s.ndim = std::min<uint32_t>(t.ndim, CKH_MAX_DIMS);
  for (uint32_t i = 0; i < s.ndim; ++i) s.d[i] = t.shape[i];
  return s;
}

}  // namespace

int32_t Graph::quantize_n(const std::vector<int32_t> &inputs, const std::string &id, const std::string &params,
                          uint32_t output) {
  if (inputs.empty()) fail("quantize: no inputs");
  if (!registry_) fail("quantize: no plugin registry");
  auto interned = param_texts.emplace(params, static_cast<uint32_t>(param_texts.size())).first;
  std::string key = id + '\0' + std::to_string(interned->second);
  for (int32_t e : inputs) {
    node(e);
    key += '\0' + std::to_string(e);
  }
  int32_t qi = -1;
  auto hit = quant_index.find(key);
  if (hit != quant_index.end()) {
    qi = hit->second;
  } else {
    const Component *c = registry_->find(CKH_COMPONENT_QUANTIZER, id);
    if (!c) fail("quantize: no quantizer '" + id + "' (see ckhost --list-plugins)", CKH_E_NOT_FOUND);
    quants.emplace_back();
    Quant &q = quants.back();
    q.cls = c->quantizer();
    q.id = id;
    q.params = &interned->first;
    q.v11 = CKH_HAS_FIELD(q.cls, ckh_quantizer_class_t, quantize_n) && q.cls->prepare_n && q.cls->port &&
            q.cls->quantize_n;
    // The infos the quantizer sees: element shapes, the inputs' own dtypes.
    std::vector<ckh_tensor_info_t> infos(inputs.size());
    std::vector<const ckh_tensor_info_t *> ptrs;
    std::vector<std::string> names(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      const Node &a = node(inputs[i]);
      const Shape ls = logical_shape(a.dtype, a.shape);
      names[i] = describe(inputs[i]);
      ckh_tensor_info_t &t = infos[i];
      t.struct_size = sizeof t;
      t.name = names[i].c_str();
      t.dtype = a.dtype;
      t.ndim = ls.ndim;
      for (uint32_t d = 0; d < ls.ndim; ++d) t.shape[d] = ls.d[d];
      ptrs.push_back(&t);
    }
    auto drop = [&] {
      if (q.state && q.cls->release) q.cls->release(q.cls, q.state);
      quants.pop_back();
    };
    try {
      clear_last_error();
      if (q.v11) {
        ckh_quant_desc_t desc{};
        desc.struct_size = sizeof desc;
        ckh_status st = q.cls->prepare_n(q.cls, params.c_str(), static_cast<uint32_t>(inputs.size()), ptrs.data(),
                                         &desc, &q.state);
        if (st != CKH_OK) fail(status_text(id, "prepare failed"), st);
        if (desc.n_outputs < 1 || desc.n_outputs > 64 || desc.n_blocks < 1)
          fail("quantizer '" + id + "': invalid description (" + std::to_string(desc.n_outputs) + " outputs, " +
               std::to_string(desc.n_blocks) + " blocks)");
        q.n_blocks = desc.n_blocks;
        q.extra_bytes_per_block = desc.work_bytes_per_block;
        if (CKH_HAS_FIELD(&desc, ckh_quant_desc_t, info_json) && desc.info_json) q.info = desc.info_json;
        auto port = [&](int32_t dir, uint32_t k) {
          ckh_quant_port_t p{};
          p.struct_size = sizeof p;
          p.info.struct_size = sizeof p.info;
          clear_last_error();
          ckh_status st2 = q.cls->port(q.cls, q.state, dir, k, &p);
          if (st2 != CKH_OK) fail(status_text(id, "port failed"), st2);
          QuantPort r;
          r.rows_per_block = p.rows_per_block;
          r.dtype = p.info.dtype;
          r.shape = shape_of(p.info);
          r.name = p.info.name ? p.info.name : "";
          return r;
        };
        for (uint32_t i = 0; i < inputs.size(); ++i) q.in.push_back(port(CKH_QUANT_INPUT, i));
        for (uint32_t k = 0; k < desc.n_outputs; ++k) q.out.push_back(port(CKH_QUANT_OUTPUT, k));
      } else {
        if (inputs.size() != 1)
          fail("quantizer '" + id + "' is an SDK 1.0 quantizer: it takes one input, not " + std::to_string(inputs.size()),
               CKH_E_UNSUPPORTED);
        if (!q.cls->prepare || !q.cls->quantize) fail("quantizer '" + id + "' has no prepare/quantize", CKH_E_ABI);
        q.layout.struct_size = sizeof q.layout;
        ckh_tensor_info_t in = infos[0];
        in.dtype = CKH_DT_F32;
        ckh_status st = q.cls->prepare(q.cls, params.c_str(), &in, &q.layout, &q.state);
        if (st != CKH_OK) fail(status_text(id, "prepare failed"), st);
        const ckh_quant_layout_t &L = q.layout;
        if (L.n_outputs < 1 || L.n_outputs > CKH_MAX_QUANT_OUTPUTS || L.row_block < 1)
          fail("quantizer '" + id + "': invalid layout");
        QuantPort ip;
        ip.rows_per_block = L.row_block;
        ip.dtype = CKH_DT_F32;
        q.in.push_back(ip);
        for (uint32_t k = 0; k < L.n_outputs; ++k) {
          QuantPort op;
          op.rows_per_block = L.rows_per_block[k];
          op.dtype = L.outputs[k].dtype;
          op.shape = shape_of(L.outputs[k]);
          op.name = L.outputs[k].name ? L.outputs[k].name : "";
          q.out.push_back(op);
        }
        const Node &a = node(inputs[0]);
        const int64_t rows = a.shape.ndim ? a.shape.d[0] : 1;
        q.n_blocks = std::max<int64_t>(1, (rows + L.row_block - 1) / L.row_block);
      }
      // Inputs: the dtypes the ports ask for (floats converted), shapes as given, rows in blocks.
      for (size_t i = 0; i < inputs.size(); ++i) {
        QuantPort &p = q.in[i];
        const Node &a = node(inputs[i]);
        const std::string what = "quantizer '" + id + "' input " + std::to_string(i) + " (" + names[i] + ")";
        if (p.dtype == CKH_DT_INVALID) p.dtype = a.dtype;
        p.shape = a.shape;
        int32_t e = inputs[i];
        if (p.dtype != a.dtype) {
          if (!ckh_dtype_is_float(p.dtype) || !ckh_dtype_is_float(a.dtype))
            fail(what + ": wants " + dtype_name(p.dtype) + ", the input is " + dtype_name(a.dtype) +
                     " (only floating-point inputs are converted)",
                 CKH_E_UNSUPPORTED);
          e = cast(e, p.dtype);
        }
        q.inputs.push_back(e);
        if (p.rows_per_block < 0) fail(what + ": negative rows per block");
        if (p.rows_per_block > 0) {
          const int64_t rows = a.shape.ndim ? a.shape.d[0] : 1;
          const int64_t nb = std::max<int64_t>(1, (rows + p.rows_per_block - 1) / p.rows_per_block);
          if (nb != q.n_blocks)
            fail(what + ": " + std::to_string(rows) + " rows in blocks of " + std::to_string(p.rows_per_block) +
                 " make " + std::to_string(nb) + " blocks, the quantizer said " + std::to_string(q.n_blocks));
          if (a.shape.ndim == 0) fail(what + ": a scalar input must be whole (rows per block 0)");
        }
      }
      for (size_t k = 0; k < q.out.size(); ++k) {
        QuantPort &p = q.out[k];
        const std::string what = "quantizer '" + id + "' output " + std::to_string(k);
        if (storage_size(p.dtype) == 0) fail(what + ": unknown dtype " + std::to_string(p.dtype));
        p.shape = storage_shape(p.dtype, p.shape, what);
        const int64_t rows = p.shape.ndim ? p.shape.d[0] : 0;
        if (p.shape.ndim == 0 || p.rows_per_block <= 0)
          fail(what + ": outputs need rows and a positive rows_per_block");
        if (rows > q.n_blocks * p.rows_per_block || rows <= (q.n_blocks - 1) * p.rows_per_block)
          fail(what + ": " + std::to_string(rows) + " rows do not make " + std::to_string(q.n_blocks) + " blocks of " +
               std::to_string(p.rows_per_block));
      }
    } catch (...) {
      drop();
      throw;
    }
    qi = static_cast<int32_t>(quants.size() - 1);
    quant_index.emplace(key, qi);
  }
  const Quant &q = quants[static_cast<size_t>(qi)];
  if (output >= q.out.size())
    fail("quantizer '" + id + "' has " + std::to_string(q.out.size()) + " outputs, asked for output " +
         std::to_string(output));
  Node n;
  n.op = Op::Quantize;
  n.in = q.inputs;
  n.quant = qi;
  n.output = output;
  n.dtype = q.out[output].dtype;
  n.shape = q.out[output].shape;
  return push(std::move(n));
}

std::string Graph::describe(int32_t e, int depth) const {
  const Node &n = node(e);
  if (depth > 6) return "...";
  auto sub = [&](size_t i) { return describe(n.in[i], depth + 1); };
  switch (n.op) {
    case Op::Source: {
      const Source &s = sources[static_cast<size_t>(n.source)];
      return (s.generated ? "random:" : "") + s.name;
    }
    case Op::Slice:
      return "slice(" + sub(0) + ", dim=" + std::to_string(n.dim) + ", " + std::to_string(n.start) + ":" +
             std::to_string(n.start + n.length) + ")";
    case Op::Concat: {
      std::string s = "concat(dim=" + std::to_string(n.dim);
      for (size_t i = 0; i < n.in.size(); ++i) s += ", " + sub(i);
      return s + ")";
    }
    case Op::Reshape: return "reshape(" + sub(0) + ", " + n.shape.str() + ")";
    case Op::Permute: {
      std::string s = "permute(" + sub(0) + ", [";
      for (uint32_t i = 0; i < n.shape.ndim; ++i) s += (i ? "," : "") + std::to_string(n.perm[i]);
      return s + "])";
    }
    case Op::Pad:
      return "pad(" + sub(0) + ", dim=" + std::to_string(n.dim) + ", " + std::to_string(n.start) + "+" +
             std::to_string(n.length) + (n.mode == CKH_PAD_ZEROS ? ", zeros)" : ", repeat)");
    case Op::Cast: return "cast(" + sub(0) + ", " + dtype_name(n.dtype) + ")";
    case Op::Scale: {
      std::ostringstream os;
      os << "scale(" << sub(0) << ", " << n.factor << ")";
      return os.str();
    }
    case Op::Quantize: {
      std::string s = "quantize(";
      for (size_t i = 0; i < n.in.size(); ++i) s += sub(i) + ", ";
      return s + quants[static_cast<size_t>(n.quant)].id + ", out=" + std::to_string(n.output) + ")";
    }
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------------
// C builder callbacks. Every callback catches everything and records the message in the thread's
// last-error slot, which the host reads when the plugin call returns.

namespace {

BuilderImpl *self(const ckh_expr_builder_t *b) { return static_cast<BuilderImpl *>(b->ctx); }

template <class F>
ckh_expr node_call(const ckh_expr_builder_t *b, F &&f) noexcept {
  try {
    return f();
  } catch (const Error &e) {
    set_last_error(e.code, self(b)->who() + ": " + e.what());
  } catch (const std::exception &e) {
    set_last_error(CKH_E_INTERNAL, self(b)->who() + ": " + e.what());
  }
  return CKH_EXPR_ERROR;
}

template <class F>
ckh_status status_call(const ckh_expr_builder_t *b, F &&f) noexcept {
  try {
    f();
    return CKH_OK;
  } catch (const Error &e) {
    set_last_error(e.code, self(b)->who() + ": " + e.what());
    return e.code;
  } catch (const std::exception &e) {
    set_last_error(CKH_E_INTERNAL, self(b)->who() + ": " + e.what());
    return CKH_E_INTERNAL;
  }
}

void fill_info(const Graph &g, int32_t node, const char *name, ckh_tensor_info_t *out) {
  if (!out || out->struct_size < offsetof(ckh_tensor_info_t, shape)) fail("tensor info struct too small", CKH_E_ABI);
  const Node &n = g.node(node);
  ckh_tensor_info_t t{};
  t.struct_size = out->struct_size;
  const Shape ls = logical_shape(n.dtype, n.shape);
  t.ndim = ls.ndim;
  t.name = name;
  t.dtype = n.dtype;
  for (uint32_t i = 0; i < ls.ndim; ++i) t.shape[i] = ls.d[i];
  std::memcpy(out, &t, std::min<size_t>(out->struct_size, sizeof t));
}

ckh_expr b_input(ckh_expr_builder_t *b, const char *name) {
  return node_call(b, [&] {
    auto &in = self(b)->in();
    auto it = name ? in.index.find(name) : in.index.end();
    if (it == in.index.end())
      fail("missing tensor '" + std::string(name ? name : "(null)") + "'", CKH_E_NOT_FOUND);
    return in.tensors[it->second].node;
  });
}

}  // namespace

BuilderImpl::BuilderImpl(Graph &g, Stage &in, Stage *out, std::string who)
    : g_(g), in_(in), out_(out), who_(std::move(who)) {
  vt_.struct_size = sizeof vt_;
  vt_.ctx = this;
  vt_.input_count = [](const ckh_expr_builder_t *b) -> uint64_t { return self(b)->in().tensors.size(); };
  vt_.input_info = [](const ckh_expr_builder_t *b, uint64_t i, ckh_tensor_info_t *out) {
    return status_call(b, [&] {
      auto &in = self(b)->in();
      if (i >= in.tensors.size()) fail("input index " + std::to_string(i) + " out of range", CKH_E_NOT_FOUND);
      fill_info(self(b)->graph(), in.tensors[i].node, in.tensors[i].name.c_str(), out);
    });
  };
  vt_.input_annot = [](const ckh_expr_builder_t *b, uint64_t i, ckh_tensor_annot_t *out) {
    return status_call(b, [&] {
      auto &in = self(b)->in();
      if (i >= in.tensors.size()) fail("input index out of range", CKH_E_NOT_FOUND);
      if (!out) fail("null annotation", CKH_E_INVALID_ARG);
      in.tensors[i].annot.to(out);
    });
  };
  vt_.find_input = [](const ckh_expr_builder_t *b, const char *name) -> int64_t {
    if (!name) return -1;
    auto &in = self(b)->in();
    auto it = in.index.find(name);
    return it == in.index.end() ? -1 : static_cast<int64_t>(it->second);
  };
  vt_.input = b_input;
  vt_.input_at = [](ckh_expr_builder_t *b, uint64_t i) {
    return node_call(b, [&] {
      auto &in = self(b)->in();
      if (i >= in.tensors.size()) fail("input index " + std::to_string(i) + " out of range", CKH_E_NOT_FOUND);
      return in.tensors[i].node;
    });
  };
  vt_.slice = [](ckh_expr_builder_t *b, ckh_expr e, uint32_t dim, int64_t start, int64_t len) {
    return node_call(b, [&] {
      const Node &a = self(b)->graph().node(e);
      const int64_t be = block_elems(a.dtype);
      if (be > 1 && dim + 1 == a.shape.ndim) {  // element units -> blocks
        if (start % be || len % be)
          fail("slice: [" + std::to_string(start) + ", +" + std::to_string(len) + ") of the last dim cuts " +
               dtype_name(a.dtype) + " blocks of " + std::to_string(be) + " elements", CKH_E_UNSUPPORTED);
        start /= be;
        len /= be;
      }
      return self(b)->graph().slice(e, dim, start, len);
    });
  };
  vt_.concat = [](ckh_expr_builder_t *b, const ckh_expr *parts, uint32_t n, uint32_t dim) {
    return node_call(b, [&] {
      if (!parts && n) fail("concat: null parts");
      return self(b)->graph().concat(std::vector<int32_t>(parts, parts + n), dim);
    });
  };
  vt_.reshape = [](ckh_expr_builder_t *b, ckh_expr e, uint32_t ndim, const int64_t *shape) {
    return node_call(b, [&] {
      if (ndim > CKH_MAX_DIMS || (!shape && ndim)) fail("reshape: invalid shape");
      Shape s;
      s.ndim = ndim;
      for (uint32_t i = 0; i < ndim; ++i) s.d[i] = shape[i];
      const ckh_dtype dt = self(b)->graph().node(e).dtype;
      return self(b)->graph().reshape(e, storage_shape(dt, s, "reshape to " + s.str()));
    });
  };
  vt_.permute = [](ckh_expr_builder_t *b, ckh_expr e, const uint32_t *perm) {
    return node_call(b, [&] {
      const Node &a = self(b)->graph().node(e);
      uint32_t nd = a.shape.ndim;
      if (!perm && nd) fail("permute: null axes");
      if (block_elems(a.dtype) > 1 && nd && perm[nd - 1] != nd - 1)
        fail("permute: " + dtype_name(a.dtype) + " blocks lie along the last dim, which must stay last",
             CKH_E_UNSUPPORTED);
      return self(b)->graph().permute(e, std::vector<uint32_t>(perm, perm + nd));
    });
  };
  vt_.pad = [](ckh_expr_builder_t *b, ckh_expr e, uint32_t dim, int64_t before, int64_t after, int32_t mode) {
    return node_call(b, [&] {
      const ckh_dtype dt = self(b)->graph().node(e).dtype;
      if (block_elems(dt) > 1) fail("pad: " + dtype_name(dt) + " is block-quantized; pad before quantizing", CKH_E_UNSUPPORTED);
      return self(b)->graph().pad(e, dim, before, after, mode);
    });
  };
  vt_.cast = [](ckh_expr_builder_t *b, ckh_expr e, ckh_dtype to) {
    return node_call(b, [&] { return self(b)->graph().cast(e, to); });
  };
  vt_.scale = [](ckh_expr_builder_t *b, ckh_expr e, double f) {
    return node_call(b, [&] { return self(b)->graph().scale(e, f); });
  };
  vt_.quantize = [](ckh_expr_builder_t *b, ckh_expr e, const char *id, const char *params, uint32_t out) {
    return node_call(b, [&] {
      return self(b)->graph().quantize(e, id ? id : "", params ? params : "{}", out);
    });
  };
  vt_.quantize_n = [](ckh_expr_builder_t *b, const ckh_expr *inputs, uint32_t n, const char *id, const char *params,
                       uint32_t out) {
    return node_call(b, [&] {
      if (!inputs || n == 0) fail("quantize_n: no inputs");
      return self(b)->graph().quantize_n(std::vector<int32_t>(inputs, inputs + n), id ? id : "", params ? params : "{}",
                                         out);
    });
  };
  vt_.info = [](const ckh_expr_builder_t *b, ckh_expr e, ckh_tensor_info_t *out) {
    return status_call(b, [&] { fill_info(self(b)->graph(), e, nullptr, out); });
  };
  if (out_) {
    vt_.emit = [](ckh_expr_builder_t *b, const char *name, ckh_expr e, const ckh_tensor_annot_t *a) {
      return status_call(b, [&] {
        if (!name || !*name) fail("emit: empty tensor name");
        self(b)->graph().node(e);
        self(b)->out()->add(StageTensor{name, e, Annot::from(a)});
      });
    };
    vt_.ignore = [](ckh_expr_builder_t *b, const char *name, const char *reason) {
      return status_call(b, [&] {
        auto &in = self(b)->in();
        if (!name || !in.index.count(name))
          fail("ignore: no input tensor '" + std::string(name ? name : "(null)") + "'", CKH_E_NOT_FOUND);
        in.ignored[name] = reason ? reason : "";
      });
    };
    vt_.set_metadata = [](ckh_expr_builder_t *b, const char *json) {
      return status_call(b, [&] {
        auto j = nlohmann::json::parse(json ? json : "", nullptr, false);
        if (j.is_discarded() || !j.is_object()) fail("set_metadata: not a JSON object");
        self(b)->metadata = std::move(j);
        self(b)->metadata_set = true;
      });
    };
  }
}

// ---------------------------------------------------------------------------------------------------

namespace {

LayoutBuilderImpl *lself(const ckh_layout_builder_t *lb) { return static_cast<LayoutBuilderImpl *>(lb->ctx); }

template <class F>
auto layout_call(const ckh_layout_builder_t *lb, F &&f, decltype(f()) on_error) noexcept -> decltype(f()) {
  try {
    return f();
  } catch (const Error &e) {
    set_last_error(e.code, lself(lb)->who() + ": " + e.what());
  } catch (const std::exception &e) {
    set_last_error(CKH_E_INTERNAL, lself(lb)->who() + ": " + e.what());
  }
  return on_error;
}

void check_relpath(const std::string &p) {
  if (p.empty() || p.size() > 4096 || p[0] == '/') fail("invalid output path '" + p + "'");
  std::string part;
  std::istringstream is(p);
  while (std::getline(is, part, '/'))
    if (part.empty() || part == "." || part == "..") fail("invalid output path '" + p + "'");
}

OutFile &file_at(Graph &g, int32_t f) {
  if (f < 0 || static_cast<size_t>(f) >= g.layout.files.size()) fail("unknown output file id " + std::to_string(f));
  return g.layout.files[static_cast<size_t>(f)];
}

int32_t new_file(Graph &g, const std::string &relpath) {
  check_relpath(relpath);
  if (!g.layout.by_path.emplace(relpath, static_cast<int32_t>(g.layout.files.size())).second)
    fail("output file '" + relpath + "' declared twice");
  g.layout.files.emplace_back();
  g.layout.files.back().relpath = relpath;
  return static_cast<int32_t>(g.layout.files.size() - 1);
}

}  // namespace

LayoutBuilderImpl::LayoutBuilderImpl(Graph &g, Stage &in, std::string who)
    : g_(g), expr_(g, in, nullptr, who), who_(std::move(who)) {
  vt_.struct_size = sizeof vt_;
  vt_.ctx = this;
  vt_.expr = expr_.c();
  vt_.add_file = [](ckh_layout_builder_t *lb, const char *relpath, uint64_t size) -> int32_t {
    return layout_call(
        lb,
        [&]() -> int32_t {
          int32_t f = new_file(lself(lb)->graph(), relpath ? relpath : "");
          lself(lb)->graph().layout.files[static_cast<size_t>(f)].size = size;
          return f;
        },
        -1);
  };
  vt_.put_bytes = [](ckh_layout_builder_t *lb, int32_t file, uint64_t offset, const void *data, uint64_t len) {
    return layout_call(
        lb,
        [&]() -> ckh_status {
          OutFile &f = file_at(lself(lb)->graph(), file);
          if (f.small || !f.copy_from.empty()) fail("put_bytes: '" + f.relpath + "' is not a laid-out file");
          if (!data && len) fail("put_bytes: null data");
          if (offset > f.size || len > f.size - offset)
            fail("put_bytes: [" + std::to_string(offset) + ", +" + std::to_string(len) + ") outside '" + f.relpath +
                 "' of " + std::to_string(f.size) + " bytes");
          f.blobs.add(offset, data, static_cast<size_t>(len));
          return CKH_OK;
        },
        CKH_E_INVALID_ARG);
  };
  vt_.put_tensor = [](ckh_layout_builder_t *lb, int32_t file, uint64_t offset, ckh_expr e, uint32_t flags) -> int32_t {
    return layout_call(
        lb,
        [&]() -> int32_t {
          Graph &g = lself(lb)->graph();
          OutFile &f = file_at(g, file);
          if (f.small || !f.copy_from.empty()) fail("put_tensor: '" + f.relpath + "' is not a laid-out file");
          uint64_t bytes = g.node_bytes(e);
          if (offset > f.size || bytes > f.size - offset)
            fail("put_tensor: " + std::to_string(bytes) + " bytes at offset " + std::to_string(offset) + " exceed '" +
                 f.relpath + "' of " + std::to_string(f.size) + " bytes");
          Region r;
          r.file = file;
          r.offset = offset;
          r.node = e;
          r.flags = flags;
          r.bytes = bytes;
          g.layout.regions.push_back(r);
          return static_cast<int32_t>(g.layout.regions.size() - 1);
        },
        -1);
  };
  vt_.add_small_file = [](ckh_layout_builder_t *lb, const char *relpath, const void *data, uint64_t len) {
    return layout_call(
        lb,
        [&]() -> ckh_status {
          if (!data && len) fail("add_small_file: null data");
          if (len > (64ull << 20)) fail("add_small_file: " + std::to_string(len) + " bytes is not small");
          Graph &g = lself(lb)->graph();
          int32_t f = new_file(g, relpath ? relpath : "");
          OutFile &of = g.layout.files[static_cast<size_t>(f)];
          of.small = true;
          of.size = len;
          of.blobs.add(0, data, static_cast<size_t>(len));
          return CKH_OK;
        },
        CKH_E_INVALID_ARG);
  };
  vt_.copy_file = [](ckh_layout_builder_t *lb, const char *src, const char *relpath) {
    return layout_call(
        lb,
        [&]() -> ckh_status {
          if (!src || src[0] != '/') fail("copy_file: source must be an absolute path");
          Graph &g = lself(lb)->graph();
          int32_t f = new_file(g, relpath ? relpath : "");
          g.layout.files[static_cast<size_t>(f)].copy_from = src;
          return CKH_OK;
        },
        CKH_E_INVALID_ARG);
  };
}

void validate_layout(const Graph &g) {
  // File by file: header blobs (what -1) and tensor regions (what = region index), described only on an error.
  struct Span {
    uint64_t lo, hi;
    int64_t what;
  };
  const size_t nf = g.layout.files.size();
  std::vector<size_t> first(nf + 1, 0);  // regions grouped by file (a counting sort)
  for (const Region &r : g.layout.regions) ++first[static_cast<size_t>(r.file) + 1];
  for (size_t i = 0; i < nf; ++i) first[i + 1] += first[i];
  std::vector<uint32_t> order(g.layout.regions.size());
  {
    std::vector<size_t> next(first.begin(), first.end() - 1);
    for (size_t r = 0; r < g.layout.regions.size(); ++r)
      order[next[static_cast<size_t>(g.layout.regions[r].file)]++] = static_cast<uint32_t>(r);
  }
  auto what = [&](const Span &s) {
    return s.what < 0 ? std::string("header bytes")
                      : "tensor " + g.describe(g.layout.regions[static_cast<size_t>(s.what)].node, 5);
  };
  std::vector<Span> v;
  for (size_t i = 0; i < nf; ++i) {
    const OutFile &f = g.layout.files[i];
    v.clear();
    if (!f.small && f.copy_from.empty())
      for (const auto &b : f.blobs)
        if (!b.second.empty()) v.push_back({b.first, b.first + b.second.size(), -1});
    for (size_t k = first[i]; k < first[i + 1]; ++k) {
      const Region &reg = g.layout.regions[order[k]];
      if (reg.bytes) v.push_back({reg.offset, reg.offset + reg.bytes, static_cast<int64_t>(order[k])});
    }
    std::sort(v.begin(), v.end(), [](const Span &a, const Span &b) { return a.lo < b.lo; });
    for (size_t k = 1; k < v.size(); ++k)
      if (v[k].lo < v[k - 1].hi)
        fail("writer layout error in '" + f.relpath + "': " + what(v[k]) + " at byte " + std::to_string(v[k].lo) +
                 " overlaps " + what(v[k - 1]) + " ending at byte " + std::to_string(v[k - 1].hi),
             CKH_E_INTERNAL);
  }
}

std::vector<std::string> unused_tensors(const Graph &g, size_t stage) {
  std::vector<char> reach(g.nodes.size(), 0);
  std::vector<int32_t> stack;
  for (const auto &t : g.stages.back().tensors) stack.push_back(t.node);
  while (!stack.empty()) {
    const int32_t n = stack.back();
    stack.pop_back();
    if (reach[static_cast<size_t>(n)]) continue;
    reach[static_cast<size_t>(n)] = 1;
    for (int32_t c : g.nodes[static_cast<size_t>(n)].in) stack.push_back(c);
  }
  std::vector<std::string> out;
  const Stage &st = g.stages[stage];
  for (const auto &t : st.tensors)
    if (!reach[static_cast<size_t>(t.node)] && !st.ignored.count(t.name)) out.push_back(t.name);
  return out;
}

void check_consumption(const Graph &g) {
  std::vector<char> reach(g.nodes.size(), 0);
  std::vector<int32_t> stack;
  for (const Region &r : g.layout.regions) stack.push_back(r.node);
  // A tensor a later mapper ignores (with its reason) consumes what it was made of, e.g. a source
  // tensor an hf -> hf check passed through unchanged and the next mapper drops.
  for (const Stage &st : g.stages)
    for (const auto &t : st.tensors)
      if (st.ignored.count(t.name)) stack.push_back(t.node);
  while (!stack.empty()) {
    int32_t n = stack.back();
    stack.pop_back();
    if (reach[static_cast<size_t>(n)]) continue;
    reach[static_cast<size_t>(n)] = 1;
    for (int32_t c : g.nodes[static_cast<size_t>(n)].in) stack.push_back(c);
  }
  for (size_t s = 0; s < g.stages.size(); ++s) {
    const Stage &st = g.stages[s];
    std::vector<std::string> lost;
    for (const auto &t : st.tensors)
      if (!reach[static_cast<size_t>(t.node)] && !st.ignored.count(t.name)) lost.push_back(t.name);
    if (lost.empty()) continue;
    std::string list;
    for (size_t i = 0; i < lost.size() && i < 8; ++i) list += (i ? ", " : "") + lost[i];
    if (lost.size() > 8) list += " (and " + std::to_string(lost.size() - 8) + " more)";
    if (s == 0)
      fail(std::to_string(lost.size()) + " unexpected tensor(s) in the source that the model mapping does not use: " +
               list,
           CKH_E_FORMAT);
    fail(std::to_string(lost.size()) + " tensor(s) produced by " + st.producer + " are not written by the output: " + list,
         CKH_E_INTERNAL);
  }
}

}  // namespace ckh::host
