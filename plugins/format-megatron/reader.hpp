// reader.hpp — the Megatron per-rank layout read into a catalog of global tensors (see reader.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_plugin.h>

namespace ckh::megatron {

struct CatPiece {
  uint32_t file = 0;
  uint64_t byte_offset = 0;
  std::vector<int64_t> offset, size, stride;
};
struct CatTensor {
  std::string name;
  ckh_dtype dtype = CKH_DT_INVALID;
  std::vector<int64_t> shape;
  std::vector<CatPiece> pieces;
};
struct Catalog {
  std::vector<std::string> files;
  std::vector<CatTensor> tensors;
  std::string meta;
};

// Reads a checkpoint root (with latest_checkpointed_iteration.txt) or an iteration directory.
// Options: "hf_config": a directory with the HF config.json and tokenizer files (default <root>/hf).
// Throws ckh::sdk::Error with a one-line message.
void open_megatron(const std::string &path, const nlohmann::json &options, Catalog &cat);

}  // namespace ckh::megatron

const ckh_component_t *megatron_writer_component();
const ckh_component_t *megatron_reader_component();
