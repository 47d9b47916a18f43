// chain.hpp — composing reader -> mappers -> (cast) -> writer into one validated plan.
#pragma once
#include <memory>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckhost/host/executor.hpp"
#include "ckhost/host/graph.hpp"
#include "ckhost/host/registry.hpp"

namespace ckh::host {

// Throws an Error carrying the plugin's message when st != CKH_OK.
void check_plugin(ckh_status st, const std::string &who);

struct ReaderDeleter {
  void operator()(ckh_reader_t *r) const;
};
using ReaderPtr = std::unique_ptr<ckh_reader_t, ReaderDeleter>;
struct WriterDeleter {
  void operator()(ckh_writer_t *w) const;
};
using WriterPtr = std::unique_ptr<ckh_writer_t, WriterDeleter>;

// A source checkpoint opened into a graph: stage 0 is its catalog.
struct OpenedSource {
  const Component *reader = nullptr;
  ReaderPtr handle;
  std::string hints;      // what the reader's apply_hints got (two-phase open), "" when it has none
  std::string hinted_by;  // the mapper that gave them ("" when none did)
};

// Picks the reader (`from` or the best probe), opens `path` and imports its catalog as stage 0.
OpenedSource open_source(const Registry &reg, Graph &g, const std::string &path, const std::string &from,
                         const nlohmann::json &options);
// The two halves of open_source: pick and open the reader (with the two-phase hints), then import its
// catalog as sources of `g`, their tensors into `into` (a stage of g, or a side stage such as the
// auxiliary inputs of a quantizer).
OpenedSource open_reader(const Registry &reg, const std::string &path, const std::string &from, const nlohmann::json &options);
void import_catalog(Graph &g, const OpenedSource &os, Stage &into);

// A synthetic source: the canonical tensors `model`'s mapper lists for `config`, with random content.
void synth_source(const Registry &reg, Graph &g, const std::string &model, const nlohmann::json &config, uint64_t seed);

// The model mapper whose probe fits the last stage best among those going from -> to, or nullptr.
const Component *find_mapper(const Registry &reg, const Graph &g, const std::string &from, const std::string &to);

// Runs one mapper over the last stage, adding a stage.
void apply_mapper(Graph &g, const Component &m, const nlohmann::json &options);

// Brings the last stage to the canonical "hf" layout (source mapper, or the family's hf check).
// Returns a note on what was done, e.g. "llama (hf -> hf)" or "no model plugin for model_type X".
std::string to_canonical(const Registry &reg, Graph &g, const nlohmann::json &options);

// Adds a stage casting every floating tensor to `dt` (and records torch_dtype in the config).
// Quantized (codes, scales) pairs are dequantized as one logical tensor through a quantizer whose
// capabilities say "dequantize" (the scales leave the stage, quantization_config leaves the config);
// a pair none accepts, codes without their scales, or a scale without its codes is refused by name
// with each quantizer's reason. Codes are never cast alone.
// `one_d_f32`: 1-D float tensors (norms, biases) go to f32 instead (a writer's "one_d_f32" capability: GGUF, whose
// ggml element-wise kernels take f32 operands).
void cast_stage(const Registry &reg, Graph &g, ckh_dtype dt, bool one_d_f32 = false);

// `--quantize ID`: adds a stage in which every linear weight (annotation kind q/k/v/qkv/out, gate/up/
// down, of a decoder or MTP layer; [N, K] or stacked [E, N, K]; floating) becomes the (codes, scales)
// pair of quantizer `id` (capability "quantize"; params: mode "quantize", the model config, and the
// options the quantizer declares, taken from `options`), carried on as a pair (pairs.hpp). Modules that
// match a pattern of `skip` or of the source's own quantization_config.modules_to_not_convert
// (transformers' matching rules), and every other tensor, stay as they are. Quantized sources are
// dequantized to f32 first and requantized. The quantizer's info_json "config" entries go into the
// config (with "$unquantized" = the modules of the 2-D weights left in high precision). Refused with
// one line when no model plugin annotated the tensors. Returns a one-line summary.
std::string quantize_stage(const Registry &reg, Graph &g, const std::string &id, const nlohmann::json &options,
                           const std::vector<std::string> &skip);

// For `verify`: the codes of `g` whose namesake in `other` is a plain floating tensor (codes name ->
// that tensor's dtype), and a stage that dequantizes exactly those pairs (their scales leave the stage),
// so that a quantized checkpoint compares with its dequantized conversion as one logical tensor.
std::map<std::string, ckh_dtype> pairs_to_compare(const Graph &g, const Graph &other);
void dequantize_stage(const Registry &reg, Graph &g, const std::map<std::string, ckh_dtype> &want);

// For every node of g, the first quantized source (codes or scales) it depends on, or -1. Without
// with_pairs, the seeded block-quantized pairs (pairs.hpp, checked there) do not count.
std::vector<int32_t> quantized_inputs(const Graph &g, bool with_pairs = true);

// Every output region that depends on quantized codes or scales must be an unchanged copy of one
// such source tensor (a rename, a reshard); anything else (cast, slice, concat, reshape, ...) is
// refused with one line naming the tensor. Called by plan_writer.
void check_quantized(const Graph &g);

// Plans the writer over the last stage and validates the whole plan (layout, consumption, sources).
// `note`, when given, gets ", <mapper> (<from> -> <to>)" appended for a mapper the writer's layout needed.
// Applies the mapper from the current layout to writer `to`'s layout, when they differ (plan_writer does
// it too; a quantizer with capability "stage": "target" quantizes the writer's tensors, so convert maps
// first). Returns the writer's component.
const Component *map_to_writer_layout(const Registry &reg, Graph &g, const std::string &to, const nlohmann::json &options,
                                      std::string *note);
bool quantizes_in_target_layout(const Registry &reg, const std::string &id);
WriterPtr plan_writer(const Registry &reg, Graph &g, const std::string &to, const nlohmann::json &options,
                      std::string *note = nullptr);

// Human-readable plan for --dry-run.
// The plan as text: stages, every output file with its size and, with_tensors, each tensor's offset, type and
// expression; then the total. (--dry-run; --dry-run --quiet leaves the tensors out.)
std::string describe_plan(const Graph &g, bool with_tensors = true);

// The JSON string handed to plugins as metadata_json for the last stage.
std::string stage_metadata(const Graph &g);

}  // namespace ckh::host
