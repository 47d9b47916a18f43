// reader.hpp — the Megatron per-rank layout read into a catalog of global tensors (see reader.cpp).
#pragma once
#include <cstdint>
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
void open_megatron(const std::string &path, const nlohmann::json &options, Catalog &cat);

}  // namespace ckh::megatron

const ckh_component_t *megatron_writer_component();
const ckh_component_t *megatron_reader_component();
