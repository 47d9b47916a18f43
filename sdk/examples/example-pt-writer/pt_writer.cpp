// example-pt-writer — an out-of-tree writer built on the installed plugin kit (ckhost::kit).
//
// `ckhost convert SRC DST --to example.pt` writes every tensor into one DST/model.pt, a torch.save
// archive (an OrderedDict name -> tensor) that torch.load(weights_only=True) accepts. The kit does the
// format work: Pickler builds data.pkl, ArchiveLayout lays out the zip records and patches their CRCs
// in finish(), create_writer<> wraps the class in the C writer vtable. The kit is versioned with the
// host and linked statically; only the C ABI crosses the plugin boundary.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "torch_archive.hpp"
#include "torch_save.hpp"
#include "writer_glue.hpp"

namespace {

using ckh::torchfmt::ArchiveLayout;
using ckh::torchfmt::Pickler;

struct PtWriter {
  ArchiveLayout archive;
  explicit PtWriter(const nlohmann::json &) {}
  void plan(const nlohmann::json &, ckh_layout_builder_t *lb) {
    ckh::sdk::Builder b(lb->expr);
    Pickler pk;
    pk.global("collections", "OrderedDict");
    pk.empty_tuple();
    pk.reduce();
    std::vector<ckh_expr> exprs;
    std::vector<uint64_t> sizes;
    if (b.input_count()) pk.mark();
    for (uint64_t i = 0; i < b.input_count(); ++i) {
      const ckh_tensor_info_t t = b.input_info(i);
      if (!*ckh::torchfmt::storage_class(t.dtype))
        ckh::sdk::fail(CKH_E_UNSUPPORTED, std::string("example.pt: tensor '") + t.name + "' has no torch storage type");
      uint64_t bytes = ckh_dtype_size(t.dtype);
      for (uint32_t d = 0; d < t.ndim; ++d) bytes *= static_cast<uint64_t>(t.shape[d]);
      pk.str(t.name);
      pk.tensor(std::to_string(i), t.dtype, std::vector<int64_t>(t.shape, t.shape + t.ndim));
      exprs.push_back(b.input_at(i));
      sizes.push_back(bytes);
    }
    if (b.input_count()) pk.setitems();
    pk.stop();
    archive.plan(lb, "model.pt", pk.bytes(), exprs, sizes);
  }
  void finish(const ckh_region_digest_t *d, uint64_t n, ckh_patcher_t *p) const { archive.finish(d, n, p); }
};

const ckh_writer_class_t kWriter = {sizeof(ckh_writer_class_t), 0, ckh::plugins::create_writer<PtWriter>};
const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "example.pt",
                               "one torch.save file model.pt (plugin-kit example)", R"({"layout":"hf"})", &kWriter};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "com.example.pt-writer", "1.0.0",
                              "Example Corp", "single-file torch writer on the plugin kit", init, nullptr, kComps,
                              nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
