// pairs.hpp — block-quantized (codes, scales) pairs carried through mappers and writers unchanged.
//
// A block-FP8 weight is two tensors: codes [.., N, K] and one scale per bm x bn block [.., N/bm, K/bn].
// Mappers and writers know models and files, not quantization: they cut, fuse, stack and reorder the
// codes like any tensor and never see the scales. The host then "lifts" each expression over codes to
// the same expression over the scale grid, one block per scale value: a slice whose start is on a block
// boundary, a concat whose parts (but the last) are whole blocks, a reshape that splits or merges dims
// along whole blocks, any permute. The codes bytes and the scale values are copied as they are, so a
// round trip is bit-exact. A cut inside a block cannot be lifted: the conversion is refused with the
// tensor, the dim and the offset (requantization of such cuts is not implemented).
// Pairs made by `--quantize` (a quantizer's two outputs, chain.hpp quantize_stage) are carried the same way.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "ckhost/host/graph.hpp"

namespace ckh::host {

// Seeds g.pairs from stage `s` (a reader's catalog): every codes source whose paired scales (the
// reader's annotation, or the dtype rule) are in `s` with a block grid that fits the codes' shape. The
// block the reader annotated (Source::quant_block, e.g. from the config's weight_block_size) settles
// grids the shapes leave ambiguous.
void seed_pairs(Graph &g, const Stage &s);

// The scales of codes expression `e`, built over the seeded scales (memoised in g.pairs), or nullptr
// with `why` set to the first cut that falls inside a block.
const PairInfo *lift_pair(Graph &g, int32_t e, std::string *why);

// For every node: 1 when it depends on seeded codes (so must be lifted), 2 on seeded scales, 0 otherwise
// (a quantizer's outputs are its own).
std::vector<uint8_t> pair_taint(const Graph &g);

// Stage `in` as a mapper sees it: the scales of seeded pairs left out (hidden[scale name] = codes name).
Stage mapper_view(const Graph &g, const Stage &in, std::map<std::string, std::string> &hidden);

// After a mapper filled `out` from mapper_view(in): every output tensor over codes gets its scales
// beside it (name + suffix, the codes' annotation, quant role "scale"); a scale whose codes the mapper
// ignored is ignored with it. Throws naming the tensor and the cut when one cannot be lifted.
void add_lifted_scales(Graph &g, Stage &in, const Stage &view, Stage &out, const std::map<std::string, std::string> &hidden,
                       const std::string &who);

// The writer's layout: every region over codes must be liftable and the scales of exactly that cut
// must be a region too; every region over scales must be the scales of some codes region. Throws with
// the first mismatch.
void check_layout_pairs(Graph &g);

// An annotation's extra JSON with its "quant" entry set to `q` (the reader annotation of pairs).
std::string with_quant(const std::string &extra, const nlohmann::json &q);

// Structural equality of two expressions (same ops, parameters and sources).
bool same_expr(const Graph &g, int32_t a, int32_t b);

}  // namespace ckh::host
