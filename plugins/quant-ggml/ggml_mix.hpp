// ggml_mix.hpp — which ggml type each tensor of a checkpoint gets under one of llama-quantize's file types
// (Q4_K_M, ...), as llama.cpp's llama_tensor_get_type decides it. Names and facts in, a dtype out.
#ifndef CKHOST_QUANT_GGML_MIX_HPP
#define CKHOST_QUANT_GGML_MIX_HPP

#include <cstdint>
#include <string>

#include <ckhost/ckh_types.h>

namespace ggmlq {

// llama-quantize's file types this quantizer writes (values: llama.h's LLAMA_FTYPE_MOSTLY_*).
enum class Ftype : int32_t {
  Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9, Q2_K = 10, Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13,
  Q4_K_S = 14, Q4_K_M = 15, Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18,
};

// The file type of a --ggml-type name (llama-quantize's spelling, any case; q3_k, q4_k and q5_k are its
// aliases of the _m mixes). False for an unknown name.
bool parse_ftype(const std::string &name, Ftype *out);
// The names parse_ftype accepts, for messages.
const char *ftype_names();

// What the mix needs to know about one tensor and its model.
struct TensorFacts {
  std::string name;       // the output tensor name (GGUF: blk.N.attn_v.weight, token_embd.weight, ...)
  int32_t kind = CKH_KIND_UNSTATED;  // used when the name is not a GGUF name
  int32_t layer = -1;     // decoder layer, -1 when none
  int32_t n_layers = 0;   // 1 + the largest decoder layer of the checkpoint
  int32_t n_experts = 0;  // routed experts (0: dense)
  bool has_output = true; // the checkpoint has its own output (LM head) tensor
  int32_t ndim = 2;       // ggml's n_dims: outer dimensions of size 1 do not count ([1, C] is 1-D)
  int64_t cols = 0;       // elements per row (ggml's ne[0])
  int32_t n_gqa = 1;      // attention heads per key/value head (integer quotient; 0 when unknown kv heads = 0)
  bool is_70b = false;    // llama.cpp would call the model a 70B (its per-architecture layer-count rule)
  bool has_imatrix = false;  // an importance matrix was given for the conversion
  bool pure = false;      // llama-quantize --pure: the default type everywhere, only shape fallbacks
};

// The dtype the tensor becomes: a block dtype, CKH_DT_F16 (a shape no block fits), or CKH_DT_INVALID when the
// mix leaves the tensor as it is (llama.cpp's tensor_allows_quantization refuses it).
ckh_dtype tensor_type(Ftype ft, const TensorFacts &t);

}  // namespace ggmlq

#endif  // CKHOST_QUANT_GGML_MIX_HPP
