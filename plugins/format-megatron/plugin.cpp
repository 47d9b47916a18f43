// plugin.cpp — the format-megatron plugin: reader and writer of the legacy per-rank layout.
#include <filesystem>
#include <memory>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "reader.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

struct Reader {
  ckh_reader_t vt{};
  ckh::megatron::Catalog cat;
};
Reader *R(const ckh_reader_t *r) { return static_cast<Reader *>(r->impl); }

int32_t probe(const ckh_reader_class_t *, const char *path) {
  try {
    std::error_code ec;
    const fs::path p(path ? path : "");
    if (fs::exists(p / "latest_checkpointed_iteration.txt", ec)) return 95;
    for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory() && it->path().filename().string().rfind("mp_rank_", 0) == 0) return 90;
  } catch (...) {
  }
  return 0;
}

ckh_status open(const ckh_reader_class_t *, const char *path, const char *options_json, ckh_reader_t **out) {
  *out = nullptr;
  return ckh::sdk::guard([&] {
    auto r = std::make_unique<Reader>();
    json o = json::parse(options_json ? options_json : "{}", nullptr, false);
    ckh::megatron::open_megatron(path ? path : "", o.is_discarded() ? json::object() : o, r->cat);
    ckh_reader_t &v = r->vt;
    v.struct_size = sizeof v;
    v.impl = r.get();
    v.file_count = [](const ckh_reader_t *x) { return static_cast<uint32_t>(R(x)->cat.files.size()); };
    v.file_path = [](const ckh_reader_t *x, uint32_t i) -> const char * {
      return i < R(x)->cat.files.size() ? R(x)->cat.files[i].c_str() : nullptr;
    };
    v.tensor_count = [](const ckh_reader_t *x) { return static_cast<uint64_t>(R(x)->cat.tensors.size()); };
    v.tensor_info = [](const ckh_reader_t *x, uint64_t i, ckh_tensor_info_t *t) -> ckh_status {
      return ckh::sdk::guard([&] {
        const auto &c = R(x)->cat.tensors.at(i);
        const uint32_t sz = t->struct_size;
        std::memset(t, 0, std::min<size_t>(sz, sizeof *t));
        t->struct_size = sz;
        t->name = c.name.c_str();
        t->dtype = c.dtype;
        t->ndim = static_cast<uint32_t>(c.shape.size());
        for (size_t d = 0; d < c.shape.size(); ++d) t->shape[d] = c.shape[d];
      });
    };
    v.tensor_annot = nullptr;
    v.piece_count = [](const ckh_reader_t *x, uint64_t i) {
      return i < R(x)->cat.tensors.size() ? static_cast<uint32_t>(R(x)->cat.tensors[i].pieces.size()) : 0u;
    };
    v.piece = [](const ckh_reader_t *x, uint64_t i, uint32_t j, ckh_piece_t *p) -> ckh_status {
      return ckh::sdk::guard([&] {
        const auto &c = R(x)->cat.tensors.at(i).pieces.at(j);
        const uint32_t sz = p->struct_size;
        std::memset(p, 0, std::min<size_t>(sz, sizeof *p));
        p->struct_size = sz;
        p->file = c.file;
        p->byte_offset = c.byte_offset;
        for (size_t d = 0; d < c.offset.size(); ++d) {
          p->offset[d] = c.offset[d];
          p->size[d] = c.size[d];
          p->stride[d] = c.stride[d];
        }
      });
    };
    v.metadata_json = [](const ckh_reader_t *x) { return R(x)->cat.meta.c_str(); };
    v.destroy = [](ckh_reader_t *x) { delete R(x); };
    *out = &r.release()->vt;
  });
}

const ckh_reader_class_t kReader = {sizeof(ckh_reader_class_t), 0, probe, open};
const ckh_component_t kReaderComp = {sizeof(ckh_component_t), CKH_COMPONENT_READER, "megatron",
                                     "Megatron-LM per-rank torch checkpoints (any TP/PP/VPP), read as global tensors",
                                     R"({"container":"torch-zip","layout":"megatron"})", &kReader};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_component_t *const *components() {
  static const ckh_component_t *const c[] = {&kReaderComp, megatron_writer_component()};
  return c;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 2, "org.ckhost.format.megatron",
                              "0.1.0", "ckhost", "Megatron-LM checkpoint layouts", init, nullptr, components()};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
