// megatron_state.hpp — what a Megatron-LM checkpoint records besides tensors, shared by the legacy
// (format-megatron) and torch_dist (format-torch-dist) writers: the parallel layout in `args`, and the
// common entries of the saved state dict. (Facts: ../shared/research/megatron.md §1.)
#pragma once
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "torch_save.hpp"

namespace ckh::megatron {

struct ParallelArgs {
  int64_t tp = 1, pp = 1, vpp = 1;
  std::vector<int64_t> stage_layers;  // --pp-layers (uneven stages), empty for an even split
  int64_t num_layers = 0;
  int64_t divisible_by = 128;         // make_vocab_size_divisible_by
  int64_t padded_vocab = -1;          // -1: no vocabulary tensor
  int64_t iteration = 0;
  int64_t ep = 1, etp = 0;            // expert-parallel and expert tensor-parallel sizes (etp 0: dense, not recorded)
};

// Sets the args Megatron records for a layout (TP/PP/VPP sizes, uneven first/last stages, vocabulary
// padding, iteration); other args are kept.
inline void record_parallel_args(nlohmann::json &args, const ParallelArgs &p) {
  using nlohmann::json;
  args["tensor_model_parallel_size"] = p.tp;
  args["pipeline_model_parallel_size"] = p.pp;
  args["virtual_pipeline_model_parallel_size"] = p.vpp > 1 ? json(p.vpp) : json(nullptr);
  args["num_layers_per_virtual_pipeline_stage"] =
      p.vpp > 1 && p.stage_layers.empty() ? json(p.num_layers / p.pp / p.vpp) : json(nullptr);
  if (!p.stage_layers.empty()) {
    args["decoder_first_pipeline_num_layers"] = p.stage_layers.front();
    args["decoder_last_pipeline_num_layers"] = p.stage_layers.back();
  }
  args["expert_model_parallel_size"] = p.ep;
  if (p.etp > 0) args["expert_tensor_parallel_size"] = p.etp;
  args["make_vocab_size_divisible_by"] = p.divisible_by;
  if (p.padded_vocab > 0) args["padded_vocab_size"] = p.padded_vocab;
  args["iteration"] = p.iteration;
}

// The common state-dict entries "args" (an argparse.Namespace), "checkpoint_version" (3.0) and
// "iteration", as key/value pairs inside a dict the caller has opened with mark().
inline void put_common_entries(ckh::torchfmt::Pickler &pk, const nlohmann::json &args, int64_t iteration) {
  pk.str("args");
  pk.namespace_obj(args);
  pk.str("checkpoint_version");
  pk.real(3.0);
  pk.str("iteration");
  pk.integer(iteration);
}

}  // namespace ckh::megatron
