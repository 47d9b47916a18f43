// catalog.hpp — a reader's catalog held in memory (tensors, their pieces in files, metadata) and the
// ckh_reader_t over it, for in-tree readers that build the whole catalog in open() (Megatron rank
// files, DCP directories).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ckhost/ckh_reader.h>

namespace ckh::plugins {

struct CatPiece {
  uint32_t file = 0;
  uint64_t byte_offset = 0;
  std::vector<int64_t> offset, size, stride;  // stride empty or all zero: contiguous row-major
};
struct CatTensor {
  std::string name;
  ckh_dtype dtype = CKH_DT_INVALID;
  std::vector<int64_t> shape;
  std::vector<CatPiece> pieces;
  std::string annot_json;  // tensor annotation extra_json ("" = none), e.g. from quant_annotations()
};
struct Catalog {
  std::vector<std::string> files;  // absolute paths
  std::vector<CatTensor> tensors;
  std::string meta;                // metadata_json
};

// Keeps the first `rows` rows (dim 0) of `t`, dropping or cutting the pieces beyond them (e.g. the
// vocabulary padding of a tensor-parallel layout). No-op when the tensor has no more rows.
void clip_rows(CatTensor &t, int64_t rows);

// Sets annot_json of the quantized codes and scales among `cat`'s tensors (see quant_pairs.hpp).
void annotate_quantized(Catalog &cat);

// A reader owning `cat` (annotated with annotate_quantized); released with its destroy(). With
// `on_hints`, the reader has apply_hints (SDK 1.1 two-phase open): the host's hints JSON reaches
// on_hints, which completes the catalog (it throws ckh::sdk::Error to refuse).
using HintsFn = std::function<void(Catalog &, const std::string &hints_json)>;
ckh_reader_t *make_catalog_reader(std::unique_ptr<Catalog> cat, HintsFn on_hints = {});

}  // namespace ckh::plugins
