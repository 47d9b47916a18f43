// ckh_reader.h — reader components: turn a checkpoint on disk into a catalog.
//
// A reader knows bytes and directory conventions of one format, never a model family. It lists the
// tensors of a checkpoint (name, dtype, shape) and where their bytes are (pieces: file, offset,
// strides); the host then reads exactly the byte ranges a plan needs, in parallel, with pread. Readers
// never change their input.
#ifndef CKHOST_CKH_READER_H
#define CKHOST_CKH_READER_H

#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckh_reader ckh_reader_t;
typedef struct ckh_reader_class ckh_reader_class_t;

// The vtable of a reader component (ckh_component_t.vtable when kind == CKH_COMPONENT_READER).
// Owner: the plugin; static lifetime. [thread-safe]
struct ckh_reader_class {
  uint32_t struct_size;
  uint32_t reserved0;
  // How sure this reader is that `path` (file or directory) is its format: 0 = no, 100 = certain.
  // Must be cheap: a stat and a few bytes. Never sets an error.
  int32_t (*probe)(const ckh_reader_class_t *cls, const char *path);
  // Opens `path` and builds the catalog. `options_json` is a JSON object with the user's options
  // (unknown keys are ignored); both strings are borrowed for the call. On success *out is a reader owned by the caller, released with
  // (*out)->destroy. On failure returns non-zero, sets an error naming the file and what is wrong,
  // and leaves *out NULL.
  ckh_status (*open)(const ckh_reader_class_t *cls, const char *path, const char *options_json,
                     ckh_reader_t **out);
};

// An open checkpoint. Owner: the caller of open(). All strings returned are owned by the reader and
// valid until destroy(). Threading: every const function is [thread-safe] after open() returned.
struct ckh_reader {
  uint32_t struct_size;
  uint32_t reserved0;
  void *impl;  // plugin-private

  // Files whose bytes the pieces point into, as absolute paths.
  uint32_t (*file_count)(const ckh_reader_t *r);
  const char *(*file_path)(const ckh_reader_t *r, uint32_t i);

  uint64_t (*tensor_count)(const ckh_reader_t *r);
  ckh_status (*tensor_info)(const ckh_reader_t *r, uint64_t i, ckh_tensor_info_t *out);
  // Optional (may be NULL): annotations a parallel-layout reader knows (layer, role, parallel kind).
  ckh_status (*tensor_annot)(const ckh_reader_t *r, uint64_t i, ckh_tensor_annot_t *out);
  uint32_t (*piece_count)(const ckh_reader_t *r, uint64_t i);
  ckh_status (*piece)(const ckh_reader_t *r, uint64_t i, uint32_t j, ckh_piece_t *out);

  // A JSON object describing the checkpoint beyond its tensors. Keys the host understands:
  //   "format":     reader id (string)
  //   "layout":     naming convention of the tensors: "hf", "megatron", ... (string)
  //   "config":     the model configuration, e.g. the parsed HF config.json (object)
  //   "side_files": [{"name": "tokenizer.json", "path": "/abs/path"}] to carry to the output
  //   "skipped":    [{"name": "...", "reason": "..."}] non-tensor content deliberately not read
  // Other keys are format specific. Never NULL.
  const char *(*metadata_json)(const ckh_reader_t *r);

  void (*destroy)(ckh_reader_t *r);

  // ---- 1.1 (read after CKH_HAS_FIELD) -------------------------------------------------------------
  // Optional (may be NULL): the second phase of a two-phase open, for readers whose catalog depends on
  // the model. The host calls it exactly once, after open() and metadata_json() and before any
  // tensor_*() or piece*() call, with the hints of the model plugin that will map this checkpoint
  // (ckh_mapper_class_t.reader_hints; "{}" when none gave any). Such a reader builds or completes its
  // catalog here, and fails naming what it could not decide when neither its files nor a hint say.
  // Hint keys (unknown keys are ignored):
  //   "gated_mlp": bool   the MLP input projection holds [gate; up] (SwiGLU/GeGLU), so a tensor-parallel
  //                       fc1 is merged per half
  // metadata_json() may change. [single-thread]
  ckh_status (*apply_hints)(ckh_reader_t *r, const char *hints_json);
};

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_READER_H
