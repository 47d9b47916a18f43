// ckh_writer.h — writer components: lay out output files for a set of logical tensors.
//
// A writer does not write tensor bytes. In plan() it declares the output files, their exact sizes,
// the header bytes it already knows, and where each tensor's bytes go (as expressions over the logical
// tensors: slices for shards, reshapes, ...). The host preallocates the files in a temporary directory,
// fills them in parallel with pwrite, hands the writer checksums of regions it asked for (finish(), for
// formats whose headers carry CRC32 such as zip), then renames the directory into place.
#ifndef CKHOST_CKH_WRITER_H
#define CKHOST_CKH_WRITER_H

#include "ckh_expr.h"
#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckh_writer ckh_writer_t;
typedef struct ckh_writer_class ckh_writer_class_t;
typedef struct ckh_layout_builder ckh_layout_builder_t;
typedef struct ckh_patcher ckh_patcher_t;

#define CKH_REGION_CRC32 1u  // put_tensor flag: report the zlib CRC-32 of the region in finish()

// Host-owned; valid only during ckh_writer_t.plan. [single-thread]
struct ckh_layout_builder {
  uint32_t struct_size;
  uint32_t reserved0;
  void *ctx;  // host-private
  // Builder over the logical tensors to write (inputs = what the last mapper emitted). Its emit,
  // ignore and set_metadata members are NULL.
  ckh_expr_builder_t *expr;
  // Declares a file of exactly `size` bytes at `relpath` inside the output directory ('/'-separated,
  // no '..', no leading '/'). Returns a file id >= 0, or < 0 with an error set.
  int32_t (*add_file)(ckh_layout_builder_t *lb, const char *relpath, uint64_t size);
  // Literal bytes at `offset` of `file` (headers, padding). Copied by the host.
  ckh_status (*put_bytes)(ckh_layout_builder_t *lb, int32_t file, uint64_t offset, const void *data,
                          uint64_t len);
  // The bytes of node `e` (row-major, its dtype) at `offset` of `file`. Returns a region id >= 0
  // (used by finish()), or < 0 with an error set. Regions and literal bytes must not overlap and
  // must lie inside the file; bytes of a file covered by neither are zero.
  int32_t (*put_tensor)(ckh_layout_builder_t *lb, int32_t file, uint64_t offset, ckh_expr e, uint32_t flags);
  // A whole small file (an index, a config) with the given content. Copied by the host.
  ckh_status (*add_small_file)(ckh_layout_builder_t *lb, const char *relpath, const void *data, uint64_t len);
  // Copies the file at absolute path `src_path` verbatim to `relpath` (side files: tokenizer, ...).
  ckh_status (*copy_file)(ckh_layout_builder_t *lb, const char *src_path, const char *relpath);
};

// A region's digest handed to finish(). Frozen at its 1.0 layout: finish() receives an array of it, so
// it can never grow (an array of a growing struct has no stable stride). Digest information added in a
// later minor comes through ckh_patcher_t.digest(), which fills a caller-sized struct.
typedef struct ckh_region_digest {
  uint32_t struct_size;
  int32_t region;   // id returned by put_tensor
  uint32_t crc32;   // zlib crc32 of the region's bytes (when CKH_REGION_CRC32 was asked), else 0
  uint32_t reserved0;
  uint64_t size;    // bytes in the region
} ckh_region_digest_t;

// Host-owned; valid only during ckh_writer_t.finish. [single-thread]
struct ckh_patcher {
  uint32_t struct_size;
  uint32_t reserved0;
  void *ctx;  // host-private
  // Writes bytes over a range of a file declared in plan() (e.g. CRC fields). `data` is borrowed for the
  // call and copied by the host.
  ckh_status (*put_bytes)(ckh_patcher_t *p, int32_t file, uint64_t offset, const void *data, uint64_t len);
  // ---- 1.1 (test CKH_HAS_FIELD(p, ckh_patcher_t, digest) before use) --------------------------------
  // The digests as a counted accessor: how many regions, and region i's digest copied into `out`, of
  // which the caller sets out->struct_size (the host fills what both sides know).
  uint64_t (*digest_count)(const ckh_patcher_t *p);
  ckh_status (*digest)(const ckh_patcher_t *p, uint64_t i, ckh_region_digest_t *out);
};

// The vtable of a writer component. Owner: the plugin; static lifetime. [thread-safe]
struct ckh_writer_class {
  uint32_t struct_size;
  uint32_t reserved0;
  // Creates a writer for one conversion. `options_json` (borrowed for the call) holds the user's options
  // (e.g. "max_shard_size", "tp", "pp"); unknown keys are ignored, invalid values fail with an error.
  ckh_status (*create)(const ckh_writer_class_t *cls, const char *options_json, ckh_writer_t **out);
};

// Owner: the caller of create(). Threading: [single-thread]; plan, then finish, then destroy.
struct ckh_writer {
  uint32_t struct_size;
  uint32_t reserved0;
  void *impl;
  // Lays out the output. `metadata_json` (borrowed for the call) is the metadata of the last stage (see
  // ckh_reader.h: "config", "side_files", ...). `lb` is valid only during this call.
  ckh_status (*plan)(ckh_writer_t *w, const char *metadata_json, ckh_layout_builder_t *lb);
  // Optional (may be NULL): called after every region was written, with one digest per region
  // (`digests`: n entries of the frozen 1.0 layout, host-owned, valid for the call; also reachable as
  // p->digest(p, i, &d) from 1.1 on).
  ckh_status (*finish)(ckh_writer_t *w, const ckh_region_digest_t *digests, uint64_t n, ckh_patcher_t *p);
  void (*destroy)(ckh_writer_t *w);
};

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_WRITER_H
