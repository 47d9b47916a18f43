// ckh_types.h — scalar types, status codes, dtypes and limits of the ckhost SDK.
//
// Contract: C99, no allocation, no global state. Every value below is part of the ABI: constants are
// never renumbered and gaps stay gaps. Structs that cross the boundary start with `struct_size`
// (set by whoever fills the struct) and only ever grow at the end.
//
// Pointers, everywhere in the SDK unless a member says otherwise:
//   - a pointer passed INTO a call (strings, JSON text, structs, buffers) is borrowed for that call:
//     the callee copies what it keeps and never frees it;
//   - a pointer RETURNED or stored in a filled struct is owned by the object that produced it and
//     valid until that object is destroyed (a reader's strings until destroy(), a builder's until the
//     call it was passed to returns, the host's tables until the plugin's deinit());
//   - whoever allocates frees (host->alloc pairs with host->free; a plugin object with its destroy);
//   - no array of a struct that may grow crosses the boundary: such data comes one element at a time
//     through a counted accessor that fills a caller-sized struct (ckh_patcher_t.digest).
// Threading tags: [thread-safe] = callable concurrently; [single-thread] = one thread at a time, the
// one that received the object; [main-thread] = the thread that loaded the plugin.
#ifndef CKHOST_CKH_TYPES_H
#define CKHOST_CKH_TYPES_H

#include <stddef.h>
#include <stdint.h>

#include "ckh_macros.h"

#ifdef __cplusplus
extern "C" {
#endif

// ---- status --------------------------------------------------------------------------------------
// Every fallible SDK call returns a ckh_status. A non-zero status is accompanied by a message that the
// callee handed to ckh_host_t.set_error (plugins) or that the host reports (host services).
typedef int32_t ckh_status;
#define CKH_OK 0
#define CKH_E_INVALID_ARG 1   // caller passed something the API does not allow
#define CKH_E_IO 2            // a read, write, open or stat failed
#define CKH_E_FORMAT 3        // input bytes are corrupt or not what the format says
#define CKH_E_UNSUPPORTED 4   // input is valid but uses a feature this component lacks
#define CKH_E_NOMEM 5         // an allocation failed or a configured memory bound was hit
#define CKH_E_CANCELLED 6     // the host asked to stop
#define CKH_E_ABI 7           // struct or version mismatch between host and plugin
#define CKH_E_NOT_FOUND 8     // a named thing (tensor, file, component) does not exist
#define CKH_E_INTERNAL 9      // a bug; the message says where

// ---- dtypes --------------------------------------------------------------------------------------
// Element types. Values are stable. Names follow safetensors where one exists.
typedef int32_t ckh_dtype;
#define CKH_DT_INVALID (-1)
#define CKH_DT_F32 0
#define CKH_DT_F16 1
#define CKH_DT_BF16 2
#define CKH_DT_F8_E4M3FN 3    // OCP E4M3 "FN": bias 7, no infinities, NaN = S.1111.111, max 448
#define CKH_DT_F8_E5M2 4      // OCP E5M2: bias 15, IEEE-like with infinities, max 57344
#define CKH_DT_F64 5
#define CKH_DT_I8 6
#define CKH_DT_U8 7
#define CKH_DT_I16 8
#define CKH_DT_U16 9
#define CKH_DT_I32 10
#define CKH_DT_U32 11
#define CKH_DT_I64 12
#define CKH_DT_U64 13
#define CKH_DT_BOOL 14        // one byte per element, 0 or 1
#define CKH_DT_F8_E8M0 15     // unsigned power-of-two scale (MX formats), 0xFF = NaN
// 16..63 reserved for further element types; 64.. reserved for block-quantized types (GGUF, AMX).

// Block-quantized types (1.1): a block of `block_elems` consecutive elements of the last dim is stored
// in `block_bytes` bytes (codes and the block's own scales together), so these never pose as U8: the
// last dim must be a multiple of block_elems, and a tensor's bytes are numel / block_elems * block_bytes.
// Layouts are ggml's (block_q8_0, block_q4_K, ...); see ckh_dtype_traits().
#define CKH_DT_Q8_0 64         // 32 elements: f16 scale + 32 x int8                      = 34 bytes
#define CKH_DT_Q4_0 65         // 32 elements: f16 scale + 16 bytes of 4-bit codes         = 18 bytes
#define CKH_DT_Q4_1 66         // 32 elements: f16 scale, f16 min + 16 bytes               = 20 bytes
#define CKH_DT_Q5_0 67         // 32 elements: f16 scale + 4 bytes high bits + 16 bytes    = 22 bytes
#define CKH_DT_Q5_1 68         // 32 elements: f16 scale, f16 min + 4 + 16 bytes           = 24 bytes
#define CKH_DT_Q2_K 69         // 256 elements: 16 scales + 64 codes + f16 d, dmin          = 84 bytes
#define CKH_DT_Q3_K 70         // 256 elements: 32 hmask + 64 codes + 12 scales + f16 d      = 110 bytes
#define CKH_DT_Q4_K 71         // 256 elements: f16 d, dmin + 12 scales + 128 codes          = 144 bytes
#define CKH_DT_Q5_K 72         // 256 elements: f16 d, dmin + 12 scales + 32 qh + 128 codes  = 176 bytes
#define CKH_DT_Q6_K 73         // 256 elements: 128 ql + 64 qh + 16 scales + f16 d           = 210 bytes



// Bytes per element of a plain (non-block) dtype, 0 for an unknown or block type.
static inline uint32_t ckh_dtype_size(ckh_dtype dt) {
  switch (dt) {
    case CKH_DT_F64: case CKH_DT_I64: case CKH_DT_U64: return 8;
    case CKH_DT_F32: case CKH_DT_I32: case CKH_DT_U32: return 4;
    case CKH_DT_F16: case CKH_DT_BF16: case CKH_DT_I16: case CKH_DT_U16: return 2;
    case CKH_DT_F8_E4M3FN: case CKH_DT_F8_E5M2: case CKH_DT_F8_E8M0:
    case CKH_DT_I8: case CKH_DT_U8: case CKH_DT_BOOL: return 1;
    default: return 0;
  }
}

// 1 when the dtype is a floating-point type that a cast may convert, else 0.
static inline int ckh_dtype_is_float(ckh_dtype dt) {
  return dt == CKH_DT_F32 || dt == CKH_DT_F16 || dt == CKH_DT_BF16 || dt == CKH_DT_F64 ||
         dt == CKH_DT_F8_E4M3FN || dt == CKH_DT_F8_E5M2;
}

// Byte arithmetic of any dtype: plain types are blocks of 1 element of ckh_dtype_size() bytes.
typedef struct ckh_dtype_traits {
  uint32_t block_elems;        // elements per block (1 for plain types)
  uint32_t block_bytes;        // bytes per block
  uint32_t is_block;           // 1 for the block-quantized types above
  uint32_t reserved0;
} ckh_dtype_traits_t;

// Fills *out and returns 1 for a known dtype; returns 0 (and zeroes *out) for an unknown one.
static inline int ckh_dtype_traits(ckh_dtype dt, ckh_dtype_traits_t *out) {
  static const uint16_t kBlock[10][2] = {{32, 34}, {32, 18}, {32, 20}, {32, 22}, {32, 24},
                                         {256, 84}, {256, 110}, {256, 144}, {256, 176}, {256, 210}};
  out->reserved0 = 0;
  if (dt >= CKH_DT_Q8_0 && dt <= CKH_DT_Q6_K) {
    out->block_elems = kBlock[dt - CKH_DT_Q8_0][0];
    out->block_bytes = kBlock[dt - CKH_DT_Q8_0][1];
    out->is_block = 1;
    return 1;
  }
  out->block_elems = 1;
  out->block_bytes = ckh_dtype_size(dt);
  out->is_block = 0;
  if (out->block_bytes == 0) {
    out->block_elems = 0;
    return 0;
  }
  return 1;
}

// ---- tensors -------------------------------------------------------------------------------------
#define CKH_MAX_DIMS 8

// Name, element type and shape of one tensor. Filled by the callee into a caller-provided struct.
// `name` is borrowed: its owner and lifetime are stated by the function that fills the struct.
typedef struct ckh_tensor_info {
  uint32_t struct_size;          // sizeof(ckh_tensor_info_t) of the filler's SDK
  uint32_t ndim;                 // 0..CKH_MAX_DIMS (0 = scalar)
  const char *name;              // UTF-8, NUL-terminated
  ckh_dtype dtype;
  int32_t reserved0;             // keeps shape 8-byte aligned; always 0
  int64_t shape[CKH_MAX_DIMS];   // entries past ndim are 0
} ckh_tensor_info_t;

// Where one rectangular piece of a source tensor's bytes lives. A tensor is the union of its pieces;
// pieces must not overlap and must cover the whole tensor (the host checks both). A safetensors tensor
// is one contiguous piece; a torch view is one strided piece; a DCP tensor is one piece per chunk; a
// Megatron tensor merged over TP ranks is one piece per rank file.
typedef struct ckh_piece {
  uint32_t struct_size;          // sizeof(ckh_piece_t) of the filler's SDK
  uint32_t file;                 // index into the reader's file list (ckh_reader_t.file_path)
  uint64_t byte_offset;          // file offset of the piece's first element (all-zero index)
  int64_t offset[CKH_MAX_DIMS];  // position of the piece inside the tensor, per dim
  int64_t size[CKH_MAX_DIMS];    // extent of the piece per dim
  int64_t stride[CKH_MAX_DIMS];  // element strides in the file; all zero = contiguous row-major
} ckh_piece_t;

// Roles and parallel hints a mapper attaches to the tensors it emits. Writers of parallel layouts
// (Megatron, MindSpeed) read them; readers of such layouts attach them to their catalogs. Every field
// has a neutral value meaning "not stated", so a zero-initialised struct with struct_size set is valid.
#define CKH_ROLE_OTHER 0
#define CKH_ROLE_EMBEDDING 1     // token embedding (vocab rows)
#define CKH_ROLE_LAYER 2         // belongs to transformer layer `layer`
#define CKH_ROLE_FINAL_NORM 3
#define CKH_ROLE_OUTPUT 4        // LM head (vocab rows)
#define CKH_ROLE_POSITION 5      // learned position embedding
#define CKH_ROLE_ENCODER 6       // vision/audio tower, projector: outside the decoder stack
#define CKH_ROLE_MTP 7           // multi-token-prediction layer `layer` (0, 1, ...) after the decoder: it
                                 // sits with the LM head (last pipeline stage) and is not a decoder layer

#define CKH_PARALLEL_UNSTATED 0  // the writer applies its own naming rules
#define CKH_PARALLEL_REPLICATED 1
#define CKH_PARALLEL_COLUMN 2    // split along `split_dim` (default 0) into contiguous blocks
#define CKH_PARALLEL_ROW 3       // split along `split_dim` (default 1)
#define CKH_PARALLEL_VOCAB 4     // column-parallel over padded vocabulary rows
#define CKH_PARALLEL_SWIGLU 5    // [gate; up] along dim 0, each half split separately

// Parallel group of a split (1.1): which ranks a COLUMN/ROW/SWIGLU/VOCAB split runs over.
#define CKH_GROUP_TP 0           // tensor-parallel ranks (dense layers; the default)
#define CKH_GROUP_EP 1           // expert-parallel ranks: whole experts (by `expert`) go to one EP rank
#define CKH_GROUP_ETP 2          // expert tensor-parallel ranks: the split inside one expert

// What a tensor is (1.1), for quantization mixes and per-kind rules; the layer and stack say where.
#define CKH_KIND_UNSTATED 0
#define CKH_KIND_EMBEDDING 1     // token embedding
#define CKH_KIND_OUTPUT 2        // LM head
#define CKH_KIND_NORM 3          // any norm scale or bias
#define CKH_KIND_ATTN_Q 4
#define CKH_KIND_ATTN_K 5
#define CKH_KIND_ATTN_V 6
#define CKH_KIND_ATTN_QKV 7      // fused q/k/v
#define CKH_KIND_ATTN_OUT 8      // attention output projection
#define CKH_KIND_FFN_GATE 9
#define CKH_KIND_FFN_UP 10
#define CKH_KIND_FFN_GATE_UP 11  // fused gate and up
#define CKH_KIND_FFN_DOWN 12
#define CKH_KIND_ROUTER 13       // MoE router (gate) weights and biases
#define CKH_KIND_OTHER 14

#define CKH_INIT_NORMAL 0        // synthetic data: small random weights
#define CKH_INIT_ONES 1          // synthetic data: ones plus small noise (norm scales)
#define CKH_INIT_ZEROS 2         // synthetic data: small noise around zero (biases)

typedef struct ckh_tensor_annot {
  uint32_t struct_size;
  int32_t role;                  // CKH_ROLE_*
  int32_t layer;                 // global layer index, -1 when none
  int32_t expert;                // global expert index, -1 when none
  int32_t parallel;              // CKH_PARALLEL_*
  int32_t split_dim;             // for COLUMN/ROW; -1 = the kind's default
  int32_t init;                  // CKH_INIT_*
  int32_t reserved0;
  const char *extra_json;        // optional JSON object with further hints, or NULL; borrowed
  // ---- 1.1 (read after CKH_HAS_FIELD; a 1.0 filler leaves them at their neutral values) ----------
  int32_t group;                 // CKH_GROUP_* of the split (TP when 0)
  int32_t stack;                 // 0 = the decoder; 1.. other towers (vision encoder, ...), each with its
                                 // own pipeline layer distribution; `layer` counts within the stack
  int32_t kind;                  // CKH_KIND_*
  int32_t reserved1;
} ckh_tensor_annot_t;

// Log levels for ckh_host_t.log.
#define CKH_LOG_DEBUG 0
#define CKH_LOG_INFO 1
#define CKH_LOG_WARN 2
#define CKH_LOG_ERROR 3

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_TYPES_H
