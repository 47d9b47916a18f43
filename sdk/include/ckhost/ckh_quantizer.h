// ckh_quantizer.h — quantizer components: numbers only (block FP8, INT8/INT4 groups, GGUF blocks, ...).
//
// A quantizer turns rows of an f32 tensor into one or more outputs (e.g. fp8 data + f32 scales). It
// appears in plans as the expression node quantize(e, quantizer_id, params, output) (ckh_expr.h); the
// host evaluates e to f32 in chunks of whole row blocks and calls quantize() on each chunk, possibly
// from several threads at once.
//
// Rows: dim 0 of the input. A row is the product of the remaining dims. Output k has `rows_per_block[k]`
// rows for every `row_block` input rows (a trailing partial block counts as a whole block).
#ifndef CKHOST_CKH_QUANTIZER_H
#define CKHOST_CKH_QUANTIZER_H

#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKH_MAX_QUANT_OUTPUTS 4

typedef struct ckh_quantizer_class ckh_quantizer_class_t;

// Filled by prepare(); caller-allocated. Output names are suffixes (borrowed, valid until release()).
typedef struct ckh_quant_layout {
  uint32_t struct_size;
  uint32_t n_outputs;                                  // 1..CKH_MAX_QUANT_OUTPUTS
  int64_t row_block;                                   // input rows per block, >= 1
  int64_t rows_per_block[CKH_MAX_QUANT_OUTPUTS];       // output rows per input block
  ckh_tensor_info_t outputs[CKH_MAX_QUANT_OUTPUTS];    // dtype and full shape of each output
} ckh_quant_layout_t;

// Owner: the plugin; static lifetime. Every member is [thread-safe].
struct ckh_quantizer_class {
  uint32_t struct_size;
  uint32_t reserved0;
  // Validates `params_json` for input `in` (both borrowed for the call) and describes the outputs in the
  // caller-allocated `layout`. On success *state is an opaque plugin-owned object passed to quantize()
  // and freed by release(); the host calls release() exactly once per successful prepare().
  ckh_status (*prepare)(const ckh_quantizer_class_t *cls, const char *params_json, const ckh_tensor_info_t *in,
                        ckh_quant_layout_t *layout, void **state);
  // Quantizes input rows [row0, row0 + nrows) given as f32 in `src` (row-major). row0 is a multiple of
  // row_block; nrows is too, unless the chunk ends the tensor. dst[k] points at the first output row of
  // output k that these input rows produce. `src` and the `dst` buffers are host-owned and valid for
  // the call. [thread-safe] for concurrent calls on disjoint rows.
  ckh_status (*quantize)(const ckh_quantizer_class_t *cls, void *state, int64_t row0, int64_t nrows,
                         const float *src, void *const *dst);
  void (*release)(const ckh_quantizer_class_t *cls, void *state);
};

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_QUANTIZER_H
