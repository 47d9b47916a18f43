// megatron_layout.hpp — Megatron-LM knowledge that is independent of bytes and of model families:
// which Megatron-Core / legacy parameter is split how across tensor-parallel ranks, how layers are
// distributed over pipeline and virtual-pipeline stages, rank directory names, vocabulary padding.
// (Facts: ../shared/research/megatron.md §0, §1a, §2a-2g, checked against Megatron-LM sources.)
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <ckhost/ckh_types.h>

namespace ckh::megatron {

enum class Split {
  Replicated,  // every TP rank holds the whole tensor (norms, row-parallel biases, routers)
  Column,      // dim 0 cut into TP contiguous blocks (qkv, fc1 without SwiGLU, column biases)
  Row,         // dim 1 cut into TP contiguous blocks (linear_proj, fc2)
  Vocab,       // dim 0 (padded vocabulary rows) cut into TP blocks (embedding, output layer)
  Swiglu,      // dim 0 is [gate; up]; each TP rank holds [gate_r; up_r]
};
const char *split_name(Split s);

// The TP rule of a parameter by its name (mcore or legacy naming); `swiglu` says whether fc1 is gated.
// Readers only, which rebuild global tensors from rank files that carry no annotations; writers
// take the rule from the mapper's annotation (split_from_annot).
Split split_of(const std::string &name, bool swiglu);

// The TP rule a mapper stated for tensor `name` (SDK 1.1: layouts come from annotations, never from
// names). For an expert tensor (group EP or ETP) it is the split inside one expert over the ETP ranks.
// Throws std::invalid_argument naming the tensor when it has no parallel annotation, an unknown group,
// or an expert group without an expert index.
Split split_from_annot(const ckh_tensor_annot_t &a, const std::string &name);
// Whether the annotation puts the tensor in one expert (group EP or ETP with expert >= 0): whole
// experts go to the EP rank of `expert`, their split runs over ETP ranks.
bool is_expert(const ckh_tensor_annot_t &a);

// Position of a decoder layer name: "decoder.layers.<L>.<rest>" (mcore) or
// "language_model.encoder.layers.<L>.<rest>" (legacy). Returns L and fills prefix/rest.
struct LayerName {
  std::string prefix;  // up to and including "layers."
  int64_t layer = -1;
  std::string rest;    // after "<L>."
};
std::optional<LayerName> parse_layer_name(const std::string &name);

// Layer distribution over pipeline (pp) and virtual pipeline (vpp) stages. Virtual stage s = v*pp + p
// (model chunk v on pipeline rank p) holds the layers after those of virtual stages 0..s-1.
struct Pipeline {
  int pp = 1, vpp = 1;
  std::vector<int64_t> counts;  // layers per virtual stage, indexed v*pp + p
  int64_t num_layers() const;
  int64_t first_layer(int p, int v) const;  // global index of chunk (p, v)'s first layer
  int64_t count(int p, int v) const { return counts[static_cast<size_t>(v * pp + p)]; }
  // (p, v, local index) of a global layer.
  void locate(int64_t global, int &p, int &v, int64_t &local) const;
};
// Even split, or `stage_layers` (one count per pipeline rank, --pp-layers) each split evenly over vpp.
// Throws std::invalid_argument with a one-line reason when the numbers do not divide.
Pipeline make_pipeline(int64_t num_layers, int pp, int vpp, const std::vector<int64_t> &stage_layers = {});
// "--pp-layers 3,2,2" -> {3, 2, 2}; throws std::invalid_argument on anything but comma-separated counts.
std::vector<int64_t> parse_pp_layers(const std::string &spec);

// Pipeline placement per stack (annotation `stack`, SDK 1.1). Stack 0 is the decoder (--pp-layers or an
// even split); every other stack (a vision tower, ...) has its own distribution of its own layers over
// the same pp x vpp stages, from "--stack-pp-layers S=c0,c1,...;T=...". A tower with pp > 1 and no
// distribution is refused (there is no safe default). Layers of a stack count from 0 within it.
struct StackPipelines {
  int pp = 1, vpp = 1;
  std::map<int, Pipeline> stacks;
  const Pipeline &of(int stack) const;  // throws std::out_of_range for an unknown stack
  int first_stage(int stack) const;     // virtual stage (v*pp + p) of the stack's first layer
  int last_stage(int stack) const;      // ... and of its last layer
};
std::map<int, std::vector<int64_t>> parse_stack_pp_layers(const std::string &spec);
// `layers`: layer count per stack present in the model (stack 0 included).
StackPipelines make_stack_pipelines(const std::map<int, int64_t> &layers, int pp, int vpp,
                                    const std::vector<int64_t> &decoder_layers,
                                    const std::map<int, std::vector<int64_t>> &stack_layers);
// The "layers.<layer>." segment of any name (a tower's own prefix), for renumbering within a stage.
std::optional<LayerName> find_layer_name(const std::string &name, int64_t layer);

// Expert parallelism (issue 11 groundwork): E global experts in EP contiguous groups of E/EP; each EP
// rank's files number their experts from 0 (global = ep_rank * E_local + local; Megatron-Core
// experts.py, Pai's load_megatron_model/save_mgmodel).
struct ExpertParallel {
  int ep = 1;
  int64_t experts = 0;
  int64_t local_count() const { return experts / ep; }
  int rank_of(int64_t global) const { return static_cast<int>(global / local_count()); }
  int64_t local_of(int64_t global) const { return global % local_count(); }
  int64_t global_of(int ep_rank, int64_t local) const { return ep_rank * local_count() + local; }
};
// Throws std::invalid_argument when ep < 1, experts < 1 or EP does not divide the experts.
ExpertParallel make_expert_parallel(int64_t experts, int ep);

// The expert index in a Megatron-Core expert parameter name: SequentialMLP
// "<p>experts.local_experts.<e>.<rest>" or TEGroupedMLP "<p>experts.linear_fc{1,2}.{weight,bias}<e>".
// FP8 block scales sit beside their codes under the codes' key plus this suffix ("…weight_scale_inv",
// grouped experts "…weight<e>_scale_inv"): the name the host gives lifted scales.
inline constexpr char kScaleSuffix[] = "_scale_inv";
// The codes' name when `name` ends with kScaleSuffix, else "".
std::string codes_of_scale(const std::string &name);

struct ExpertName {
  std::string prefix;   // up to and including "local_experts." or the parameter ("…linear_fc1.weight")
  int64_t expert = -1;
  std::string rest;     // after "<e>." (SequentialMLP); for TEGroupedMLP what follows "<e>" ("" or "_scale_inv")
  bool grouped = false; // TEGroupedMLP naming
  std::string with(int64_t e) const;  // the same name for expert e
};
std::optional<ExpertName> parse_expert_name(const std::string &name);

// Every expert 0..experts-1 exactly once among `found` (global ids); throws std::invalid_argument naming
// `what` and the first missing or repeated expert (an EP merge that collides local ids loses experts).
void check_expert_cover(const std::string &what, const std::vector<int64_t> &found, int64_t experts);

// "mp_rank_TT", "mp_rank_TT_PPP", with "_EEE" appended when ep > 1.
std::string rank_dir(int tp_rank, int pp_rank, int ep_rank, int pp, int ep);
// Inverse: parses a directory name given the world sizes; nullopt if it does not match.
struct RankId {
  int tp = 0, pp = 0, ep = 0;
};
std::optional<RankId> parse_rank_dir(const std::string &name, int pp, int ep);

// ceil(vocab / (divisible_by * tp)) * (divisible_by * tp)
int64_t padded_vocab(int64_t vocab, int64_t divisible_by, int tp);

// The Megatron-Core modules whose `_extra_state` a GPTModel's sharded_state_dict() asks for, given the
// parameter names of the model (Megatron-Core naming, global layer numbers; legacy names are ignored)
// and the layer spec:
//   local (Megatron's own modules): the linear layers (linear_qkv, linear_proj, linear_fc1, linear_fc2,
//     ... every module named linear_*), whose Column/RowParallelLinear save None; checked exactly
//     against megatron-core 0.16.1 with dist_checkpointing.load(strict=RAISE_ALL);
//   te (Transformer Engine): every module that owns a tensor except embeddings (TE linears carry FP8
//     metadata, TE norms have extra state in TE 2.x) plus TEDotProductAttention (core_attention, next
//     to each linear_qkv): a superset of what a given TE version asks for, which Megatron's default
//     strictness accepts (unexpected objects are ignored, missing ones fail).
// Never output_layer: GPTModel.sharded_state_dict() drops its _extra_state. Returned in order of first
// appearance, layer modules as "decoder.layers.<L>.<module>".
std::vector<std::string> extra_state_modules(const std::vector<std::string> &param_names, bool transformer_engine = true);

// "iter_0001000" or "release".
std::string iteration_dir(int64_t iteration, bool release);

}  // namespace ckh::megatron
