// plugin.cpp — the format-torch-dist plugin: readers and writers of PyTorch Distributed Checkpoint
// directories, Megatron-Core's torch_dist ("torch-dist") and plain DCP with HF names ("dcp").
#include <filesystem>
#include <memory>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "option_decls.hpp"
#include "dist.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

int32_t probe_dist(const ckh_reader_class_t *, const char *path) {
  try {
    return ckh::dist::megatron_dist_dir(path ? path : "").empty() ? 0 : 97;
  } catch (...) {
    return 0;
  }
}

int32_t probe_dcp(const ckh_reader_class_t *, const char *path) {
  try {
    std::error_code ec;
    const fs::path p(path ? path : "");
    if (fs::is_regular_file(p / ".metadata", ec)) return fs::exists(p / "metadata.json", ec) ? 40 : 90;
    if (!ckh::dist::mindspeed_dcp_dir(p.string()).empty()) return 90;
  } catch (...) {
  }
  return 0;
}

template <ckh::dist::Flavor F>
ckh_status open(const ckh_reader_class_t *, const char *path, const char *options_json, ckh_reader_t **out) {
  *out = nullptr;
  return ckh::sdk::guard([&] {
    auto cat = std::make_unique<ckh::plugins::Catalog>();
    json o = json::parse(options_json ? options_json : "{}", nullptr, false);
    ckh::dist::open_dist(path ? path : "", o.is_discarded() || !o.is_object() ? json::object() : o, F, *cat);
    *out = ckh::plugins::make_catalog_reader(std::move(cat));
  });
}

const ckh_reader_class_t kDistReader = {sizeof(ckh_reader_class_t), 0, probe_dist, open<ckh::dist::Flavor::Megatron>};
const ckh_component_t kDistReaderComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_READER, "torch-dist",
    "Megatron-Core distributed checkpoints (torch_dist), read as global per-layer tensors with the training args",
    R"({"container":"dcp","layout":"megatron","options":[)" CKH_OPT_HF_CONFIG "]}", &kDistReader};
const ckh_reader_class_t kDcpReader = {sizeof(ckh_reader_class_t), 0, probe_dcp, open<ckh::dist::Flavor::Plain>};
const ckh_component_t kDcpReaderComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_READER, "dcp",
    "PyTorch Distributed Checkpoint directories (torch 1.13 and 2.x), tensors assembled from their chunks",
    R"({"container":"dcp","layout":"hf","options":[)" CKH_OPT_HF_CONFIG "," CKH_OPT_DCP_PREFIX "]}", &kDcpReader};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_component_t *const *components() {
  static const ckh_component_t *const c[] = {&kDistReaderComp, &kDcpReaderComp, dist_writer_component(),
                                             dcp_writer_component()};
  return c;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 4, "org.ckhost.format.torch-dist",
                              "0.1.0", "ckhost", "PyTorch DCP and Megatron-Core torch_dist checkpoints", init, nullptr,
                              components(), nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
