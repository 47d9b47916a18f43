// quant_pairs.hpp — which tensors of an HF-style checkpoint are quantized codes and which are their
// scales, from the file conventions alone (dtypes and name suffixes), as readers report them to the
// host in the tensor annotation {"quant": {...}}.
//
// Conventions recognised (HF block FP8 as DeepSeek-V3 and transformers' finegrained FP8 write it,
// compressed-tensors / FBGEMM per-tensor or per-channel FP8):
//   codes  X        dtype F8_E4M3FN or F8_E5M2
//   scales X_scale_inv, X_scale (e.g. weight_scale_inv, weight_scale), and the activation scale
//          <module>.input_scale when <module>.weight is FP8 codes
// A scale is only recognised next to its codes; an F8_E8M0 tensor is a scale whatever its name.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_types.h>

namespace ckh::plugins {

// For tensors (names[i], dtypes[i]): the annotation extra_json of each tensor, "" for plain tensors:
//   codes: {"quant":{"role":"codes","scales":["X_scale_inv"],"block":[bm,bn]}}
//   scale: {"quant":{"role":"scale","of":"X"}}
// "block" is the HF config's quantization_config.weight_block_size (`config`: the parsed config.json, or
// null), given when it is two positive integers: the host needs it where a scale grid alone leaves the
// block open (a tensor of one partial block).
std::vector<std::string> quant_annotations(const std::vector<std::string> &names, const std::vector<ckh_dtype> &dtypes,
                                           const nlohmann::json &config = nlohmann::json());

}  // namespace ckh::plugins
