// ckh_quantizer.h — quantizer components: numbers only (block FP8, INT8/INT4 groups, GGUF blocks, ...).
//
// A quantizer turns one or more input tensors into one or more outputs: a weight into codes plus
// scales, codes plus scales back into a weight (dequantization), a weight plus an importance matrix
// into GGUF blocks. It appears in plans as the expression node quantize_n(inputs, quantizer_id, params,
// output) (ckh_expr.h): one node per output, and the nodes of one (inputs, id, params) share a single
// prepared state, so the quantizer runs once per chunk for all its outputs (the host keeps the outputs
// of a chunk in its scratch memory, within --max-memory, until each has been written).
//
// Blocks (1.1). Rows are dim 0 of each tensor ("port"). Block b covers rows [b*R, (b+1)*R) of every
// port whose rows_per_block is R (the last block may be partial); a port with rows_per_block 0 is whole
// in every call (e.g. an importance matrix). The host evaluates chunks of whole blocks, in parallel.
//
// Capabilities JSON keys the host reads: "dequantize": true when prepare_n accepts
// {"mode": "dequantize", "to": "<DTYPE>", "config": {..}} for a (codes, scales) pair, so that
// `--dtype` on a quantized checkpoint dequantizes through this quantizer.
// "quantize": true when prepare_n accepts {"mode": "quantize", "config": {..}, ...} for one weight and
// gives (codes, scales) with the scales' suffix as output 1's name, so that `--quantize ID` quantizes
// the linear weights of a checkpoint through it (the host adds the plugin options to the params: the
// keys of the options the quantizer declares).
//
// SDK 1.0 quantizers (prepare/quantize) still load: the host runs them as one f32 input whose rows
// come in `row_block` blocks, with the outputs of their fixed ckh_quant_layout_t.
#ifndef CKHOST_CKH_QUANTIZER_H
#define CKHOST_CKH_QUANTIZER_H

#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKH_MAX_QUANT_OUTPUTS 4

typedef struct ckh_quantizer_class ckh_quantizer_class_t;

// 1.0 only (prepare()): filled by the plugin; caller-allocated. Output names are suffixes (borrowed, valid
// until release()). Kept for 1.0 plugins; 1.1 quantizers describe outputs with port(), which fills one
// caller-sized struct at a time, so no array of a growing struct crosses the boundary.
typedef struct ckh_quant_layout {
  uint32_t struct_size;
  uint32_t n_outputs;                                  // 1..CKH_MAX_QUANT_OUTPUTS
  int64_t row_block;                                   // input rows per block, >= 1
  int64_t rows_per_block[CKH_MAX_QUANT_OUTPUTS];       // output rows per input block
  ckh_tensor_info_t outputs[CKH_MAX_QUANT_OUTPUTS];    // dtype and full shape of each output
} ckh_quant_layout_t;

// 1.1: filled by prepare_n(); caller-allocated (struct_size set by the caller).
typedef struct ckh_quant_desc {
  uint32_t struct_size;
  uint32_t n_outputs;            // >= 1
  int64_t n_blocks;              // blocks the inputs make (>= 1; see "Blocks" above)
  uint64_t work_bytes_per_block; // optional: scratch the quantizer needs per block beyond its ports (0)
  // ---- 1.1, later addition (write after CKH_HAS_FIELD(desc, ckh_quant_desc_t, info_json)) -----------
  // Optional JSON object about the outputs, borrowed from the state until release(); NULL when none:
  //   "scale_block": [b0, b1, ..]  output 1 holds one value per block of b0 x b1 x .. elements of output 0
  //                                (one extent per dim of output 0): the host then carries the two as a
  //                                (codes, scales) pair, the scales cut with their codes (host pairs);
  //   "config": {..}               entries this quantization adds to the model's config when the host
  //                                quantizes a checkpoint (`ckhost convert --quantize ID`), e.g.
  //                                {"quantization_config": {..}} for an HF config. A string value
  //                                "$unquantized" in it is replaced by the module names (tensor names
  //                                less their last component) of the linear weights left unquantized.
  const char *info_json;
} ckh_quant_desc_t;

#define CKH_QUANT_INPUT 0
#define CKH_QUANT_OUTPUT 1

// 1.1: one input or output of a prepared quantizer, filled by port() into a caller-sized struct.
typedef struct ckh_quant_port {
  uint32_t struct_size;
  uint32_t reserved0;
  int64_t rows_per_block;        // rows of this port per block; 0 = the whole tensor in every call
  // Output: name = suffix (borrowed from the state, valid until release()), dtype and full shape (in
  // elements, also for block dtypes). Input: dtype = the dtype the rows are handed over in (the
  // input's own dtype for native access; the host converts floats when it differs); name and shape
  // are the host's.
  ckh_tensor_info_t info;
} ckh_quant_port_t;

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
  // Frees a state of prepare() or prepare_n().
  void (*release)(const ckh_quantizer_class_t *cls, void *state);

  // ---- 1.1 (read after CKH_HAS_FIELD; a 1.1 quantizer may leave prepare and quantize NULL) ---------
  // Validates `params_json` for the `n_inputs` inputs (infos borrowed for the call; names are the
  // tensors', for messages) and fills `desc`. On success *state is plugin-owned until release().
  ckh_status (*prepare_n)(const ckh_quantizer_class_t *cls, const char *params_json, uint32_t n_inputs,
                          const ckh_tensor_info_t *const *inputs, ckh_quant_desc_t *desc, void **state);
  // Describes input (`dir` CKH_QUANT_INPUT) or output (CKH_QUANT_OUTPUT) `index` into `out`, whose
  // struct_size the caller set. [thread-safe]
  ckh_status (*port)(const ckh_quantizer_class_t *cls, const void *state, int32_t dir, uint32_t index,
                     ckh_quant_port_t *out);
  // Computes blocks [block0, block0 + nblocks). src[i] holds input i's rows of those blocks (all rows
  // when its rows_per_block is 0), dense row-major in the port's dtype; dst[k] receives output k's rows
  // of those blocks, dense row-major. Buffers are host-owned and valid for the call. [thread-safe] for
  // concurrent calls on disjoint blocks.
  ckh_status (*quantize_n)(const ckh_quantizer_class_t *cls, void *state, int64_t block0, int64_t nblocks,
                           const void *const *src, void *const *dst);
};

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_QUANTIZER_H
