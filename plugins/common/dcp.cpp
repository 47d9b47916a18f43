// dcp.cpp — see dcp.hpp.
#include "dcp.hpp"

#include <algorithm>
#include <map>
#include <stdexcept>

#include "torch_save.hpp"

namespace ckh::torchfmt {

namespace {

[[noreturn]] void bad(const std::string &m) { throw std::runtime_error(m); }

std::string dims_str(const std::vector<int64_t> &v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// The attribute dict of an inert object rebuilt through NEWOBJ/REDUCE + BUILD (dataclasses), also
// when BUILD got Python's (dict, slotstate) pair. Null when it has none.
VP state_dict(const VP &obj) {
  if (!obj || obj->kind != Kind::Object || !obj->state) return nullptr;
  const VP &s = obj->state;
  if (s->kind == Kind::Dict) return s;
  if (s->kind == Kind::Tuple && s->items.size() == 2) {
    for (const auto &x : s->items)
      if (x->kind == Kind::Dict) return x;
  }
  return nullptr;
}

VP field(const VP &dict, const char *name) {
  if (!dict) return nullptr;
  for (const auto &e : dict->entries)
    if (e.first->kind == Kind::Str && e.first->s == name) return e.second;
  return nullptr;
}

bool ends_with(const std::string &s, const char *suf) {
  const size_t n = std::char_traits<char>::length(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

int64_t as_int(const VP &v, const std::string &what) {
  if (!v || v->kind != Kind::Int || v->big) bad(what + " is not an integer");
  return v->i;
}

std::vector<int64_t> as_dims(const VP &v, const std::string &what) {
  if (!v || (v->kind != Kind::Tuple && v->kind != Kind::List)) bad(what + " is not a torch.Size");
  if (v->items.size() > CKH_MAX_DIMS) bad(what + " has " + std::to_string(v->items.size()) + " dims (at most " +
                                          std::to_string(CKH_MAX_DIMS) + " are supported)");
  std::vector<int64_t> r;
  for (const auto &x : v->items) {
    const int64_t i = as_int(x, what);
    if (i < 0 || i > (int64_t{1} << 48)) bad(what + " has an out-of-range entry " + std::to_string(i));
    r.push_back(i);
  }
  return r;
}

DcpStorage storage_of(const VP &info, const std::string &fqn) {
  const VP d = state_dict(info);
  if (!d) bad("storage of '" + fqn + "' is not a _StorageInfo");
  DcpStorage s;
  const VP rp = field(d, "relative_path");
  if (!rp || rp->kind != Kind::Str) bad("storage of '" + fqn + "' has no relative_path");
  s.relative_path = rp->s;
  if (s.relative_path.empty() || s.relative_path.size() > 4096 || s.relative_path[0] == '/' ||
      s.relative_path.find('\0') != std::string::npos || s.relative_path == ".." ||
      s.relative_path.rfind("../", 0) == 0 || s.relative_path.find("/../") != std::string::npos ||
      ends_with(s.relative_path, "/.."))
    bad("storage of '" + fqn + "' names the file '" + s.relative_path.substr(0, 64) + "' outside the checkpoint");
  const int64_t off = as_int(field(d, "offset"), "storage offset of '" + fqn + "'");
  const int64_t len = as_int(field(d, "length"), "storage length of '" + fqn + "'");
  if (off < 0 || len < 0) bad("storage of '" + fqn + "' has a negative offset or length");
  s.offset = static_cast<uint64_t>(off);
  s.length = static_cast<uint64_t>(len);
  const VP td = field(d, "transform_descriptors");
  if (td && td->kind != Kind::None && !((td->kind == Kind::List || td->kind == Kind::Tuple) && td->items.empty()))
    bad("storage of '" + fqn + "' uses stream transforms (transform_descriptors), which are not supported");
  s.present = true;
  return s;
}

// ---- writing ---------------------------------------------------------------------------------------

// Where the pickled classes are found. torch 2.x keeps them in torch.distributed.checkpoint.*;
// torch 1.13 in torch.distributed._shard.checkpoint.*. torch 2.x aliases the package
// torch.distributed._shard.checkpoint to torch.distributed.checkpoint, but importing
// "torch.distributed._shard.checkpoint.metadata" there loads metadata.py a second time, as a module
// with classes of its own: MetadataIndex keys of another class never match and dcp.load fails with a
// KeyError. So for 1.13 the classes are named through the package, "metadata.MetadataIndex" in
// module "torch.distributed._shard.checkpoint" (a dotted name, resolved attribute by attribute by
// pickle protocol >= 4): that is the real class under both torch 1.13 and 2.x.
struct ClassPath {
  std::string module, prefix;
};
struct Paths {
  ClassPath meta, fs, props;
  int protocol = 2;
};
Paths paths_of(DcpTarget t) {
  if (t == DcpTarget::Torch113)
    return {{"torch.distributed._shard.checkpoint", "metadata."}, {"torch.distributed._shard.checkpoint", "filesystem."},
            {"torch.distributed._shard.sharded_tensor.metadata", ""}, 4};
  return {{"torch.distributed.checkpoint.metadata", ""}, {"torch.distributed.checkpoint.filesystem", ""},
          {"torch.distributed._shard.sharded_tensor.metadata", ""}, 2};
}

void ints_tuple(Pickler &pk, const std::vector<int64_t> &v) {
  if (v.empty()) {
    pk.empty_tuple();
    return;
  }
  if (v.size() > 3) pk.mark();
  for (int64_t x : v) pk.integer(x);
  pk.tuple(v.size());
}

void torch_size(Pickler &pk, const std::vector<int64_t> &v) {
  pk.global("torch", "Size");
  ints_tuple(pk, v);
  pk.tuple(1);
  pk.reduce();
}

void new_object(Pickler &pk, const ClassPath &at, const std::string &cls) {
  pk.global(at.module, at.prefix + cls);
  pk.empty_tuple();
  pk.newobj();
}

}  // namespace

const char *torch_dtype_short_name(ckh_dtype dt) {
  switch (dt) {
    case CKH_DT_F32: return "float32";
    case CKH_DT_F64: return "float64";
    case CKH_DT_F16: return "float16";
    case CKH_DT_BF16: return "bfloat16";
    case CKH_DT_I64: return "int64";
    case CKH_DT_I32: return "int32";
    case CKH_DT_I16: return "int16";
    case CKH_DT_I8: return "int8";
    case CKH_DT_U8: return "uint8";
    case CKH_DT_BOOL: return "bool";
    case CKH_DT_F8_E4M3FN: return "float8_e4m3fn";
    case CKH_DT_F8_E5M2: return "float8_e5m2";
    default: return nullptr;
  }
}

DcpMetadata parse_dcp_metadata(const uint8_t *data, size_t n) {
  std::unique_ptr<Pickled> p = unpickle(data, n);
  DcpMetadata m;
  const VP root = p->root;
  const VP st = state_dict(root);
  const VP sdm = field(st, "state_dict_metadata");
  if (!st || !sdm || sdm->kind != Kind::Dict)
    bad("not a DCP Metadata object (no state_dict_metadata)");
  m.class_name = root->cls;
  if (const VP pd = field(st, "planner_data")) m.planner_data = to_json(pd);
  if (const VP md = field(st, "mcore_data"); md && md->kind != Kind::None) {
    m.has_mcore_data = true;
    m.mcore_data = to_json(md);
  }
  // storage_data: MetadataIndex(fqn, offset) -> _StorageInfo.
  std::map<std::pair<std::string, std::vector<int64_t>>, DcpStorage> tensor_items;
  std::map<std::string, DcpStorage> byte_items;
  const VP sd = field(st, "storage_data");
  if (!sd || sd->kind != Kind::Dict) bad("Metadata.storage_data is not a dict (not written by a file-system writer)");
  for (const auto &[k, v] : sd->entries) {
    const VP kd = state_dict(k);
    const VP fqn = field(kd, "fqn");
    if (!fqn || fqn->kind != Kind::Str) bad("storage_data key is not a MetadataIndex");
    const VP off = field(kd, "offset");
    DcpStorage s = storage_of(v, fqn->s);
    if (!off || off->kind == Kind::None) byte_items[fqn->s] = s;
    else tensor_items[{fqn->s, as_dims(off, "MetadataIndex offset of '" + fqn->s + "'")}] = s;
  }
  for (const auto &[k, v] : sdm->entries) {
    if (k->kind != Kind::Str) bad("state_dict_metadata has a non-string key");
    DcpEntry e;
    e.fqn = k->s;
    const VP vd = state_dict(v);
    const bool is_bytes = v->kind == Kind::Object && (ends_with(v->cls, ".BytesStorageMetadata") || !field(vd, "chunks"));
    if (is_bytes) {
      e.is_bytes = true;
      auto it = byte_items.find(e.fqn);
      if (it == byte_items.end()) bad("bytes item '" + e.fqn + "' has no storage_data entry");
      e.bytes = it->second;
      m.entries.push_back(std::move(e));
      continue;
    }
    if (!vd) bad("entry '" + e.fqn + "' is neither TensorStorageMetadata nor BytesStorageMetadata");
    e.size = as_dims(field(vd, "size"), "size of '" + e.fqn + "'");
    // TensorProperties: its __getstate__ tuple (dtype, layout, requires_grad, memory_format, pin_memory),
    // or a plain attribute dict.
    const VP props = field(vd, "properties");
    VP dt;
    if (props && props->kind == Kind::Object && props->state) {
      if (props->state->kind == Kind::Tuple && !props->state->items.empty()) dt = props->state->items[0];
      else if (const VP pd = state_dict(props)) dt = field(pd, "dtype");
    }
    if (!dt || dt->kind != Kind::Global) bad("tensor '" + e.fqn + "' has no dtype in its TensorProperties");
    e.dtype_name = dt->s;
    e.dtype = dtype_of_torch_name(dt->s);
    const VP chunks = field(vd, "chunks");
    if (!chunks || chunks->kind != Kind::List) bad("tensor '" + e.fqn + "' has no chunk list");
    for (const auto &c : chunks->items) {
      const VP cd = state_dict(c);
      if (!cd) bad("tensor '" + e.fqn + "' has a chunk that is not a ChunkStorageMetadata");
      DcpChunk ch;
      ch.offsets = as_dims(field(cd, "offsets"), "chunk offsets of '" + e.fqn + "'");
      ch.sizes = as_dims(field(cd, "sizes"), "chunk sizes of '" + e.fqn + "'");
      auto it = tensor_items.find({e.fqn, ch.offsets});
      if (it == tensor_items.end())
        bad("chunk " + dims_str(ch.offsets) + " of '" + e.fqn + "' has no storage_data entry");
      ch.where = it->second;
      e.chunks.push_back(std::move(ch));
    }
    m.entries.push_back(std::move(e));
  }
  return m;
}

void check_dcp_chunks(const DcpEntry &e) {
  const size_t nd = e.size.size();
  unsigned __int128 total = 1, covered = 0;
  for (int64_t d : e.size) total *= static_cast<uint64_t>(d);
  struct Box {
    const DcpChunk *c;
    unsigned __int128 vol;
  };
  std::vector<Box> boxes;
  for (const auto &c : e.chunks) {
    if (c.offsets.size() != nd || c.sizes.size() != nd)
      bad("tensor '" + e.fqn + "': chunk " + dims_str(c.offsets) + " has " + std::to_string(c.offsets.size()) +
          " dims, the tensor has " + std::to_string(nd));
    unsigned __int128 vol = 1;
    for (size_t d = 0; d < nd; ++d) {
      if (c.offsets[d] + c.sizes[d] > e.size[d])
        bad("tensor '" + e.fqn + "': chunk at " + dims_str(c.offsets) + " of size " + dims_str(c.sizes) +
            " exceeds the global shape " + dims_str(e.size) + " in dim " + std::to_string(d));
      vol *= static_cast<uint64_t>(c.sizes[d]);
    }
    if (vol == 0) continue;
    covered += vol;
    boxes.push_back({&c, vol});
  }
  // Overlaps: sweep along dim 0 (chunks are usually cut by layer or row blocks).
  if (nd == 0) {
    if (boxes.size() > 1) bad("tensor '" + e.fqn + "': " + std::to_string(boxes.size()) + " chunks of a scalar overlap");
  } else {
    std::sort(boxes.begin(), boxes.end(), [](const Box &a, const Box &b) { return a.c->offsets < b.c->offsets; });
    for (size_t i = 0; i < boxes.size(); ++i) {
      const DcpChunk &a = *boxes[i].c;
      for (size_t j = i + 1; j < boxes.size() && boxes[j].c->offsets[0] < a.offsets[0] + a.sizes[0]; ++j) {
        const DcpChunk &b = *boxes[j].c;
        bool inter = true;
        for (size_t d = 0; d < nd && inter; ++d)
          inter = b.offsets[d] < a.offsets[d] + a.sizes[d] && a.offsets[d] < b.offsets[d] + b.sizes[d];
        if (inter)
          bad("tensor '" + e.fqn + "': chunks at " + dims_str(a.offsets) + " (size " + dims_str(a.sizes) + ") and " +
              dims_str(b.offsets) + " (size " + dims_str(b.sizes) + ") overlap");
      }
    }
  }
  if (covered != total)
    bad("tensor '" + e.fqn + "': its chunks cover " + std::to_string(static_cast<uint64_t>(covered)) + " of " +
        std::to_string(static_cast<uint64_t>(total)) + " elements of the global shape " + dims_str(e.size) +
        " (a gap)");
}

std::string write_dcp_metadata(const DcpMetadata &m, DcpTarget target) {
  const Paths P = paths_of(target);
  Pickler pk(P.protocol);
  new_object(pk, P.meta, "Metadata");
  pk.empty_dict();
  pk.mark();
  pk.str("state_dict_metadata");
  pk.empty_dict();
  if (!m.entries.empty()) {
    pk.mark();
    for (const auto &e : m.entries) {
      pk.str(e.fqn);
      if (e.is_bytes) {
        new_object(pk, P.meta, "BytesStorageMetadata");
        continue;
      }
      const char *dn = torch_dtype_short_name(e.dtype);
      if (!dn) throw std::invalid_argument("tensor '" + e.fqn + "': dtype has no torch name");
      new_object(pk, P.meta, "TensorStorageMetadata");
      pk.empty_dict();
      pk.mark();
      pk.str("properties");
      new_object(pk, P.props, "TensorProperties");
      pk.mark();
      pk.global("torch", dn);
      pk.global("torch", "strided");
      pk.boolean(false);
      pk.global(P.props.module, P.props.prefix + "MEM_FORMAT_ENCODING");  // the value call MEM_FORMAT_ENCODING(0): contiguous
      pk.integer(0);
      pk.tuple(1);
      pk.reduce();
      pk.boolean(false);
      pk.tuple(5);
      pk.build();
      pk.str("size");
      torch_size(pk, e.size);
      pk.str("chunks");
      pk.empty_list();
      if (!e.chunks.empty()) {
        pk.mark();
        for (const auto &c : e.chunks) {
          new_object(pk, P.meta, "ChunkStorageMetadata");
          pk.empty_dict();
          pk.mark();
          pk.str("offsets");
          torch_size(pk, c.offsets);
          pk.str("sizes");
          torch_size(pk, c.sizes);
          pk.setitems();
          pk.build();
        }
        pk.appends();
      }
      pk.setitems();
      pk.build();
    }
    pk.setitems();
  }
  pk.str("planner_data");
  if (m.planner_data.is_object() && !m.planner_data.empty()) {
    pk.empty_dict();
    pk.mark();
    for (auto it = m.planner_data.begin(); it != m.planner_data.end(); ++it) {
      pk.str(it.key());
      const auto &path = it.value();
      if (path.size() > 3 || path.empty()) pk.mark();
      for (const auto &x : path) pk.json(x);
      pk.tuple(path.size());
    }
    pk.setitems();
  } else {
    pk.none();
  }
  pk.str("storage_data");
  pk.empty_dict();
  // One storage_data item: MetadataIndex(fqn, index[, offset]) -> _StorageInfo. Bytes items have no
  // offset and index None.
  auto item = [&](const std::string &fqn, const std::vector<int64_t> *offsets, int64_t index, const DcpStorage &s) {
    new_object(pk, P.meta, "MetadataIndex");
    pk.empty_dict();
    pk.mark();
    pk.str("fqn");
    pk.str(fqn);
    pk.str("index");
    if (offsets) pk.integer(index);
    else pk.none();
    if (offsets) {
      pk.str("offset");
      torch_size(pk, *offsets);
    }
    pk.setitems();
    pk.build();
    new_object(pk, P.fs, "_StorageInfo");
    pk.empty_dict();
    pk.mark();
    pk.str("relative_path");
    pk.str(s.relative_path);
    pk.str("offset");
    pk.integer(static_cast<int64_t>(s.offset));
    pk.str("length");
    pk.integer(static_cast<int64_t>(s.length));
    pk.setitems();
    pk.build();
  };
  bool any = false;
  for (const auto &e : m.entries) any = any || e.is_bytes || !e.chunks.empty();
  if (any) {
    pk.mark();
    for (const auto &e : m.entries) {
      if (e.is_bytes) item(e.fqn, nullptr, 0, e.bytes);
      for (size_t i = 0; !e.is_bytes && i < e.chunks.size(); ++i)
        item(e.fqn, &e.chunks[i].offsets, static_cast<int64_t>(i), e.chunks[i].where);
    }
    pk.setitems();
  }
  pk.setitems();
  pk.build();
  pk.stop();
  return pk.bytes();
}

BlobTensor read_tensor_blob(const ReadAt &read, uint64_t base, uint64_t length) {
  const std::vector<ZipEntry> entries = read_zip(read, base, length);
  std::map<std::string, const ZipEntry *> by_name;
  const ZipEntry *pkl = nullptr;
  for (const auto &z : entries) {
    const auto slash = z.name.find('/');
    const std::string rel = slash == std::string::npos ? z.name : z.name.substr(slash + 1);
    by_name[rel] = &z;
    if (rel == "data.pkl") pkl = &z;
  }
  if (!pkl) bad("no data.pkl record (not a torch.save blob)");
  if (pkl->method != 0) bad("compressed data.pkl is not supported");
  if (pkl->size > (64u << 20)) bad("data.pkl of " + std::to_string(pkl->size) + " bytes in a tensor chunk");
  std::vector<uint8_t> buf(pkl->size);
  if (!read(pkl->data_offset, pkl->size, buf.data())) bad("cannot read data.pkl");
  std::unique_ptr<Pickled> p = unpickle(buf.data(), buf.size());
  if (p->root->kind != Kind::Tensor) bad("the blob holds no single tensor");
  const TensorRef &t = *p->root->tensor;
  auto rec = by_name.find("data/" + t.storage_key);
  if (rec == by_name.end()) bad("tensor storage " + t.storage_key + " has no record");
  if (rec->second->method != 0) bad("compressed storage records are not supported");
  const uint64_t es = ckh_dtype_size(t.dtype);
  if (static_cast<uint64_t>(t.storage_numel) * es > rec->second->size)
    bad("storage of " + std::to_string(t.storage_numel) + " elements needs " + std::to_string(t.storage_numel * es) +
        " bytes, its record has " + std::to_string(rec->second->size));
  __int128 extent = t.offset, numel = 1;
  for (size_t d = 0; d < t.size.size(); ++d) {
    if (t.size[d] < 0 || t.stride[d] < 0 || t.size[d] > (int64_t{1} << 48) || t.stride[d] > (int64_t{1} << 48))
      bad("tensor size or stride out of range");
    numel *= t.size[d];
    if (t.size[d] > 0) extent += static_cast<__int128>(t.size[d] - 1) * t.stride[d];
  }
  if (numel > 0 && (t.offset < 0 || extent >= t.storage_numel))
    bad("tensor reaches element " + std::to_string(static_cast<int64_t>(extent)) + " of a storage with " +
        std::to_string(t.storage_numel));
  BlobTensor b;
  b.dtype = t.dtype;
  b.size = t.size;
  b.stride = t.stride;
  b.byte_offset = rec->second->data_offset + static_cast<uint64_t>(t.offset) * es;
  return b;
}

}  // namespace ckh::torchfmt
