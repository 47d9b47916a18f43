// dcp.hpp — PyTorch Distributed Checkpoint (DCP) bytes, without Python: the `.metadata` pickle (read
// with the class paths of torch 1.13 and 2.x, written with either), the torch.save blob of one tensor
// chunk inside a `.distcp` file, and the checks a loader relies on (chunks inside the global shape,
// no overlaps, full coverage). Facts: ../shared/research/torch_formats.md §4.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_types.h>

#include "torch_load.hpp"

namespace ckh::torchfmt {

// Where an item's bytes are: _StorageInfo.
struct DcpStorage {
  std::string relative_path;
  uint64_t offset = 0, length = 0;
  bool present = false;
};

struct DcpChunk {
  std::vector<int64_t> offsets, sizes;  // global element offsets, chunk extents
  DcpStorage where;
};

struct DcpEntry {
  std::string fqn;
  bool is_bytes = false;        // BytesStorageMetadata (a torch.save'd object) instead of a tensor
  ckh_dtype dtype = CKH_DT_INVALID;
  std::string dtype_name;       // "torch.bfloat16" as stored (for messages about unsupported dtypes)
  std::vector<int64_t> size;    // global shape
  std::vector<DcpChunk> chunks;
  DcpStorage bytes;             // the BYTE_IO item (is_bytes)
};

struct DcpMetadata {
  std::vector<DcpEntry> entries;       // state_dict_metadata, in stored order
  nlohmann::json planner_data;         // flattened fqn -> original path (list of keys), or null
  bool has_mcore_data = false;         // Megatron's flattened-tensor notes (attribute or MCoreMetadata)
  nlohmann::json mcore_data;
  std::string class_name;              // "torch.distributed.checkpoint.metadata.Metadata", ...
};

// Parses a `.metadata` pickle. Throws std::runtime_error with a one-line reason (without the file
// name) when it is not a DCP Metadata or an index/size is out of range.
DcpMetadata parse_dcp_metadata(const uint8_t *data, size_t n);

// Checks that the chunks of a tensor entry lie inside its global shape, do not overlap and cover it
// completely. Throws std::runtime_error naming the fqn and the offending chunks.
void check_dcp_chunks(const DcpEntry &e);

enum class DcpTarget {
  Torch2,    // torch.distributed.checkpoint.* (2.0 and later)
  Torch113,  // torch.distributed._shard.checkpoint.* (1.13)
};

// The `.metadata` pickle (protocol 2) for entries whose storage is set. planner_data: null, or an
// object fqn -> array of path keys (written as tuples).
std::string write_dcp_metadata(const DcpMetadata &m, DcpTarget target);

// The tensor stored as a torch.save archive at [base, base + length) of a file.
struct BlobTensor {
  ckh_dtype dtype = CKH_DT_INVALID;
  std::vector<int64_t> size, stride;  // elements
  uint64_t byte_offset = 0;           // absolute file offset of element (0, ..., 0)
};
// Throws std::runtime_error with a one-line reason.
BlobTensor read_tensor_blob(const ReadAt &read, uint64_t base, uint64_t length);

// The torch name of a dtype ("bfloat16"), or nullptr.
const char *torch_dtype_short_name(ckh_dtype dt);

}  // namespace ckh::torchfmt
