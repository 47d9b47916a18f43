// ckh_mapper.h — mapper components: names and layouts of one model family between two conventions.
//
// A mapper knows a model family (Llama, Qwen, Mixtral, ...) in one direction between two layouts
// (e.g. "hf" -> "megatron"), and the config translation between them. It never touches bytes: it
// describes each output tensor as an expression over its input tensors (ckh_expr.h). The canonical
// layout is "hf": HF names, HF tensor layout, one unsharded tensor per name. A conversion A -> B is
// composed as A -> hf -> B by the host; no intermediate checkpoint is ever materialised.
//
// Capabilities JSON of a mapper component (ckh_component_t.capabilities_json), keys the host reads:
//   {"family": "llama", "from": "hf", "to": "megatron", "model_types": ["llama", "mistral"],
//    "options": [...]}
// "from"/"to" are layout names as readers report them in metadata "layout" and writers ask for them in
// their capabilities "layout" ("hf", "megatron", ...). "options": see sdk/README.md (SDK 1.1).
#ifndef CKHOST_CKH_MAPPER_H
#define CKHOST_CKH_MAPPER_H

#include "ckh_expr.h"
#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckh_mapper_class ckh_mapper_class_t;

// Receives one canonical tensor from ckh_mapper_class_t.canonical. `t` and `a` are borrowed for the
// call. Return non-zero to stop the enumeration (that status is passed through).
typedef ckh_status (*ckh_tensor_sink_fn)(void *ctx, const ckh_tensor_info_t *t, const ckh_tensor_annot_t *a);
// Receives one NUL-terminated text (1.1: reader hints as a JSON object), borrowed for the call.
typedef ckh_status (*ckh_text_sink_fn)(void *ctx, const char *text);

// Owner: the plugin; static lifetime. Every member is [thread-safe].
struct ckh_mapper_class {
  uint32_t struct_size;
  uint32_t reserved0;
  // How well this mapper fits the model described by `metadata_json` (the incoming stage's metadata,
  // see ckh_reader.h): 0 = not this family, 100 = exactly. Cheap; never sets an error.
  int32_t (*probe)(const ckh_mapper_class_t *cls, const char *metadata_json);
  // Builds the mapping with `b`: emit every output tensor, ignore what is deliberately dropped, and
  // set the outgoing metadata when it changes (e.g. HF config.json -> Megatron args). `options_json`
  // holds the user's options (unknown keys ignored); both JSON strings are borrowed for the call, and
  // `b` is valid only during it. Errors name the tensor and both values.
  ckh_status (*map)(const ckh_mapper_class_t *cls, const char *options_json, const char *metadata_json,
                    ckh_expr_builder_t *b);
  // Optional (may be NULL): enumerates the canonical (HF) tensors, shapes and dtypes that a model
  // configuration implies (`config_json` = the HF config.json object), with annotations (role, layer,
  // init hint). Used to synthesise checkpoints and to report missing or unexpected tensors.
  ckh_status (*canonical)(const ckh_mapper_class_t *cls, const char *config_json, void *ctx,
                          ckh_tensor_sink_fn sink);
  // ---- 1.1 (read after CKH_HAS_FIELD) -------------------------------------------------------------
  // Optional (may be NULL): what the model knows that a reader cannot tell from the files alone, for
  // the second phase of a two-phase open (ckh_reader_t.apply_hints). The host calls it on the mapper
  // that fits the reader's metadata (`metadata_json`, probe() > 0) before the catalog is read; the
  // mapper hands one JSON object to `sink` (keys: see ckh_reader.h) or returns without calling it.
  ckh_status (*reader_hints)(const ckh_mapper_class_t *cls, const char *options_json, const char *metadata_json,
                             void *ctx, ckh_text_sink_fn sink);
};

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_MAPPER_H
