// dist.hpp — the torch-dist plugin: PyTorch Distributed Checkpoint directories, plain ("dcp", HF
// state-dict names as FSDP2 trainers save them) and Megatron-Core's "torch_dist" (metadata.json,
// common state, layer-stacked keys). Facts: ../shared/research/torch_formats.md §4,
// ../shared/research/megatron.md §1b.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_plugin.h>

#include "catalog.hpp"

namespace ckh::dist {

enum class Flavor {
  Plain,     // any DCP directory; tensors keep their keys (less an optional prefix), layout "hf"
  Megatron,  // Megatron-Core torch_dist; stacked layers and experts become per-layer tensors, layout "megatron"
};

// Opens a checkpoint directory (Megatron: the save root with latest_checkpointed_iteration.txt, or an
// iteration directory). Throws ckh::sdk::Error with a one-line message naming the file.
void open_dist(const std::string &path, const nlohmann::json &options, Flavor flavor, ckh::plugins::Catalog &cat);

// The iteration directory holding metadata.json for a Megatron save root or iteration dir, or "".
std::string megatron_dist_dir(const std::string &path);
// The DCP directory of MindSpeed-MM's FSDP2 layout at `path` (tracker file + release/ or iter_N/ with .metadata
// and no metadata.json), or "".
std::string mindspeed_dcp_dir(const std::string &path);

}  // namespace ckh::dist

const ckh_component_t *dist_writer_component();
const ckh_component_t *dcp_writer_component();
