// plugin.cpp — the format-megatron plugin: reader and writer of the legacy per-rank layout.
#include <filesystem>
#include <memory>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "option_decls.hpp"
#include "reader.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

int32_t probe(const ckh_reader_class_t *, const char *path) {
  try {
    std::error_code ec;
    const fs::path p(path ? path : "");
    if (fs::exists(p / "latest_checkpointed_iteration.txt", ec)) {
      // The same tracker file marks Megatron-Core distributed checkpoints (torch_dist) and MindSpeed-MM's
      // FSDP2 DCP checkpoints: leave those to their readers.
      for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_directory() && (fs::exists(it->path() / "metadata.json", ec) || fs::exists(it->path() / ".metadata", ec))) return 0;
      return 95;
    }
    for (fs::directory_iterator it(p, ec), end; !ec && it != end; it.increment(ec))
      if (it->is_directory() && it->path().filename().string().rfind("mp_rank_", 0) == 0) return 90;
  } catch (...) {
  }
  return 0;
}

ckh_status open(const ckh_reader_class_t *, const char *path, const char *options_json, ckh_reader_t **out) {
  *out = nullptr;
  return ckh::sdk::guard([&] {
    auto cat = std::make_unique<ckh::megatron::Catalog>();
    json o = json::parse(options_json ? options_json : "{}", nullptr, false);
    auto gating = std::make_shared<ckh::megatron::Gating>();
    ckh::megatron::open_megatron(path ? path : "", o.is_discarded() ? json::object() : o, *cat, gating.get());
    *out = ckh::plugins::make_catalog_reader(std::move(cat), [gating](ckh::megatron::Catalog &c, const std::string &h) {
      ckh::megatron::apply_gating(c, *gating, h);
    });
  });
}

const ckh_reader_class_t kReader = {sizeof(ckh_reader_class_t), 0, probe, open};
const ckh_component_t kReaderComp = {sizeof(ckh_component_t), CKH_COMPONENT_READER, "megatron",
                                     "Megatron-LM per-rank torch checkpoints (any TP/PP/VPP), read as global tensors",
                                     R"({"container":"torch-zip","layout":"megatron","options":[)" CKH_OPT_HF_CONFIG "]}", &kReader};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_component_t *const *components() {
  static const ckh_component_t *const c[] = {&kReaderComp, megatron_writer_component(), mindspeed_mm_writer_component()};
  return c;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 3, "org.ckhost.format.megatron",
                              "0.1.0", "ckhost", "Megatron-LM checkpoint layouts", init, nullptr, components(), nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
