// catalog.cpp — see catalog.hpp.
#include "catalog.hpp"

#include <algorithm>
#include <cstring>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "quant_pairs.hpp"

namespace ckh::plugins {

namespace {
struct Reader {
  ckh_reader_t vt{};
  std::unique_ptr<Catalog> cat;
  HintsFn on_hints;
};
const Catalog &C(const ckh_reader_t *r) { return *static_cast<Reader *>(r->impl)->cat; }
}  // namespace

void clip_rows(CatTensor &t, int64_t rows) {
  if (t.shape.empty() || rows < 0 || rows >= t.shape[0]) return;
  std::vector<CatPiece> kept;
  for (auto p : t.pieces) {
    if (p.offset[0] >= rows) continue;
    p.size[0] = std::min(p.size[0], rows - p.offset[0]);
    kept.push_back(std::move(p));
  }
  t.pieces = std::move(kept);
  t.shape[0] = rows;
}

void annotate_quantized(Catalog &cat) {
  std::vector<std::string> names;
  std::vector<ckh_dtype> dts;
  for (const auto &t : cat.tensors) {
    names.push_back(t.name);
    dts.push_back(t.dtype);
  }
  const auto meta = nlohmann::json::parse(cat.meta.empty() ? "{}" : cat.meta, nullptr, false);
  const nlohmann::json config = meta.is_object() ? meta.value("config", nlohmann::json()) : nlohmann::json();
  const auto a = quant_annotations(names, dts, config);
  for (size_t i = 0; i < a.size(); ++i) cat.tensors[i].annot_json = a[i];
}

ckh_reader_t *make_catalog_reader(std::unique_ptr<Catalog> cat, HintsFn on_hints) {
  auto r = std::make_unique<Reader>();
  r->cat = std::move(cat);
  r->on_hints = std::move(on_hints);
  annotate_quantized(*r->cat);
  ckh_reader_t &v = r->vt;
  v.struct_size = sizeof v;
  v.impl = r.get();
  v.file_count = [](const ckh_reader_t *x) { return static_cast<uint32_t>(C(x).files.size()); };
  v.file_path = [](const ckh_reader_t *x, uint32_t i) -> const char * {
    return i < C(x).files.size() ? C(x).files[i].c_str() : nullptr;
  };
  v.tensor_count = [](const ckh_reader_t *x) { return static_cast<uint64_t>(C(x).tensors.size()); };
  v.tensor_info = [](const ckh_reader_t *x, uint64_t i, ckh_tensor_info_t *t) -> ckh_status {
    return ckh::sdk::guard([&] {
      const auto &c = C(x).tensors.at(i);
      const uint32_t sz = t->struct_size;
      std::memset(t, 0, std::min<size_t>(sz, sizeof *t));
      t->struct_size = sz;
      t->name = c.name.c_str();
      t->dtype = c.dtype;
      t->ndim = static_cast<uint32_t>(c.shape.size());
      for (size_t d = 0; d < c.shape.size() && d < CKH_MAX_DIMS; ++d) t->shape[d] = c.shape[d];
    });
  };
  v.tensor_annot = [](const ckh_reader_t *x, uint64_t i, ckh_tensor_annot_t *a) -> ckh_status {
    return ckh::sdk::guard([&] {
      const auto &c = C(x).tensors.at(i);
      ckh_tensor_annot_t v = ckh::sdk::annot();
      v.extra_json = c.annot_json.empty() ? nullptr : c.annot_json.c_str();
      const uint32_t sz = std::min<uint32_t>(a->struct_size, sizeof v);
      std::memcpy(reinterpret_cast<char *>(a) + sizeof(uint32_t), reinterpret_cast<char *>(&v) + sizeof(uint32_t),
                  sz > sizeof(uint32_t) ? sz - sizeof(uint32_t) : 0);
    });
  };
  v.piece_count = [](const ckh_reader_t *x, uint64_t i) {
    return i < C(x).tensors.size() ? static_cast<uint32_t>(C(x).tensors[i].pieces.size()) : 0u;
  };
  v.piece = [](const ckh_reader_t *x, uint64_t i, uint32_t j, ckh_piece_t *p) -> ckh_status {
    return ckh::sdk::guard([&] {
      const auto &c = C(x).tensors.at(i).pieces.at(j);
      const uint32_t sz = p->struct_size;
      std::memset(p, 0, std::min<size_t>(sz, sizeof *p));
      p->struct_size = sz;
      p->file = c.file;
      p->byte_offset = c.byte_offset;
      for (size_t d = 0; d < c.offset.size() && d < CKH_MAX_DIMS; ++d) {
        p->offset[d] = c.offset[d];
        p->size[d] = c.size[d];
        p->stride[d] = d < c.stride.size() ? c.stride[d] : 0;
      }
    });
  };
  v.metadata_json = [](const ckh_reader_t *x) { return C(x).meta.c_str(); };
  v.destroy = [](ckh_reader_t *x) { delete static_cast<Reader *>(x->impl); };
  if (r->on_hints)
    v.apply_hints = [](ckh_reader_t *x, const char *hints) -> ckh_status {
      return ckh::sdk::guard([&] {
        Reader &rd = *static_cast<Reader *>(x->impl);
        rd.on_hints(*rd.cat, hints ? hints : "{}");
        annotate_quantized(*rd.cat);
      });
    };
  return &r.release()->vt;
}

}  // namespace ckh::plugins
