// reader.hpp — the Megatron per-rank layout read into a catalog of global tensors (see reader.cpp).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_plugin.h>

#include "catalog.hpp"

namespace ckh::megatron {

using CatPiece = ckh::plugins::CatPiece;
using CatTensor = ckh::plugins::CatTensor;
using Catalog = ckh::plugins::Catalog;

// Reads a checkpoint root (with latest_checkpointed_iteration.txt) or an iteration directory.
// Options: "hf_config": a directory with the HF config.json and tokenizer files (default <root>/hf).
// Throws ckh::sdk::Error with a one-line message.
// When the args do not say whether linear_fc1 is gated (`swiglu`) and TP > 1, `gating` (if given) gets
// the gated merge of every such tensor, and the catalog holds the ungated one until apply_gating()
// picks one with the model plugin's hint {"gated_mlp": bool} (two-phase open, SDK 1.1).
struct Gating {
  bool undecided = false;
  std::vector<std::pair<size_t, std::vector<CatPiece>>> gated;  // tensor index -> gated pieces
  // MindSpeed-MM: TP rank 0's whole shard of every tensor merged over TP ranks, for the hints that say a
  // tensor is replicated although Megatron's naming rule splits it.
  std::map<std::string, CatPiece> rank0;
};
void open_megatron(const std::string &path, const nlohmann::json &options, Catalog &cat, Gating *gating = nullptr);
// Throws naming a tensor when the choice is still open and the hints do not make it.
void apply_gating(Catalog &cat, Gating &g, const std::string &hints_json);

}  // namespace ckh::megatron

const ckh_component_t *megatron_writer_component();
const ckh_component_t *mindspeed_mm_writer_component();
const ckh_component_t *megatron_reader_component();
