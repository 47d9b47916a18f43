// ckh_expr.h — building tensor expressions (the lazy plan) through a host-owned builder.
//
// Mappers and writers never move bytes. They describe every tensor they produce as an expression over
// their input tensors, with a small closed set of operations:
//
//     input(name) | slice | concat | reshape | permute | pad | cast | scale | quantize
//
// The host checks each node's shape and dtype when it is built (a bad node returns a negative handle
// and sets an error naming the shapes), composes the expressions of a whole reader -> mappers ->
// writer chain into one graph, simplifies it and evaluates it chunk by chunk with bounded memory.
//
// Owner of the builder and of every node: the host. Lifetime: the builder is valid only during the call
// it is passed to (ckh_mapper_class_t.map, ckh_writer_t.plan); handles are small integers valid for that
// call. Threading: [single-thread] — use a builder only from the thread that received it.
#ifndef CKHOST_CKH_EXPR_H
#define CKHOST_CKH_EXPR_H

#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t ckh_expr;  // >= 0: a node; < 0: the call failed and an error was set
#define CKH_EXPR_ERROR (-1)

#define CKH_PAD_ZEROS 0        // new elements are 0 (in the tensor's dtype)
#define CKH_PAD_REPEAT_EDGE 1  // new elements repeat the nearest edge slice along `dim`

typedef struct ckh_expr_builder ckh_expr_builder_t;

struct ckh_expr_builder {
  uint32_t struct_size;
  uint32_t reserved0;
  void *ctx;  // host-private

  // ---- the inputs (a reader's catalog, or the tensors the previous mapper emitted) ----------------
  uint64_t (*input_count)(const ckh_expr_builder_t *b);
  // Name (borrowed, valid for the call) and shape of input i.
  ckh_status (*input_info)(const ckh_expr_builder_t *b, uint64_t i, ckh_tensor_info_t *out);
  // Annotations of input i; all neutral when the producer stated none.
  ckh_status (*input_annot)(const ckh_expr_builder_t *b, uint64_t i, ckh_tensor_annot_t *out);
  // Index of the input called `name`, or -1 (no error is set: use this to test for optional tensors).
  int64_t (*find_input)(const ckh_expr_builder_t *b, const char *name);
  // A node reading a whole input. Fails with CKH_E_NOT_FOUND ("missing tensor NAME") when absent.
  ckh_expr (*input)(ckh_expr_builder_t *b, const char *name);
  ckh_expr (*input_at)(ckh_expr_builder_t *b, uint64_t i);

  // ---- operations (each returns a new node; inputs are not modified) ------------------------------
  // Elements [start, start+length) along dim.
  ckh_expr (*slice)(ckh_expr_builder_t *b, ckh_expr e, uint32_t dim, int64_t start, int64_t length);
  // Concatenation along dim; all parts agree in dtype and in every other dim. n >= 1.
  ckh_expr (*concat)(ckh_expr_builder_t *b, const ckh_expr *parts, uint32_t n, uint32_t dim);
  // Same elements in row-major order, new shape (same element count).
  ckh_expr (*reshape)(ckh_expr_builder_t *b, ckh_expr e, uint32_t ndim, const int64_t *shape);
  // Output dim i is input dim perm[i]; perm has ndim(e) entries.
  ckh_expr (*permute)(ckh_expr_builder_t *b, ckh_expr e, const uint32_t *perm);
  // Grows dim by `before` and `after` elements filled per `mode` (CKH_PAD_*).
  ckh_expr (*pad)(ckh_expr_builder_t *b, ckh_expr e, uint32_t dim, int64_t before, int64_t after, int32_t mode);
  // Element type conversion (RNE; floats only, or identity).
  ckh_expr (*cast)(ckh_expr_builder_t *b, ckh_expr e, ckh_dtype to);
  // Multiplies every element by `factor`, computed in f32, result in e's dtype (floats only).
  ckh_expr (*scale)(ckh_expr_builder_t *b, ckh_expr e, double factor);
  // Output `output` of quantizer `quantizer_id` applied to e with `params_json` (see ckh_quantizer.h).
  ckh_expr (*quantize)(ckh_expr_builder_t *b, ckh_expr e, const char *quantizer_id, const char *params_json,
                       uint32_t output);

  // dtype and shape of a node (out->name is set to NULL).
  ckh_status (*info)(const ckh_expr_builder_t *b, ckh_expr e, ckh_tensor_info_t *out);

  // ---- results (mappers only; NULL in a writer's builder) -----------------------------------------
  // Declares output tensor `name` = e. Names are unique. `annot` may be NULL; it is copied.
  ckh_status (*emit)(ckh_expr_builder_t *b, const char *name, ckh_expr e, const ckh_tensor_annot_t *annot);
  // Declares that input `name` is deliberately not carried over (optimizer state, rotary inv_freq,
  // _extra_state, ...). Every input must end up used by the written output or ignored; the host
  // refuses the plan otherwise and lists the stragglers.
  ckh_status (*ignore)(ckh_expr_builder_t *b, const char *input_name, const char *reason);
  // Replaces the metadata JSON (config, args, ...) handed to the next stage. Copied.
  ckh_status (*set_metadata)(ckh_expr_builder_t *b, const char *json);

  // ---- 1.1 (read after CKH_HAS_FIELD) -------------------------------------------------------------
  // Output `output` of quantizer `quantizer_id` over `n` inputs (e.g. weight; or codes and scales),
  // each in its own dtype (see ckh_quantizer.h). Calls with the same inputs, id and params share one
  // prepared quantizer, which runs once per chunk for all the outputs used.
  ckh_expr (*quantize_n)(ckh_expr_builder_t *b, const ckh_expr *inputs, uint32_t n, const char *quantizer_id,
                         const char *params_json, uint32_t output);
};

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_EXPR_H
