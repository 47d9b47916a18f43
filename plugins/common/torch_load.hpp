// torch_load.hpp — reading torch.save archives without Python or libtorch, and without executing
// anything.
//
// ZipReader: bounded reader of the zip container (EOCD search, ZIP64, central directory, local
// headers) over a "read bytes at offset" callback, so an archive embedded in a bigger file works.
// unpickle(): a symbolic pickle machine (protocols 0-5): globals become inert names, REDUCE/NEWOBJ/BUILD
// build inert objects, except for an allowlist that gets meaning (OrderedDict, torch tensor rebuild
// functions, argparse.Namespace, ...). Memo entries are shared, never copied. Every count, length,
// index and depth is bounded.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_types.h>

namespace ckh::torchfmt {

// ---- zip ---------------------------------------------------------------------------------------
struct ZipEntry {
  std::string name;
  uint64_t data_offset = 0;  // absolute offset of the payload within the file
  uint64_t size = 0;
  uint16_t method = 0;
};

// read(offset, len, dst) must fill dst fully or return false.
using ReadAt = std::function<bool(uint64_t offset, uint64_t len, void *dst)>;

// A ReadAt over an open file descriptor (pread until done; false on EOF or error).
ReadAt fd_reader(int fd);

// Parses the archive occupying [base, base + size) of a file. Throws std::runtime_error with a
// one-line reason on any inconsistency.
std::vector<ZipEntry> read_zip(const ReadAt &read, uint64_t base, uint64_t size);

// ---- pickle ------------------------------------------------------------------------------------
struct Value;
using VP = std::shared_ptr<Value>;

enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Global, Object, PersId, Tensor, Mark };

struct TensorRef {
  std::string storage_key;
  ckh_dtype dtype = CKH_DT_INVALID;
  int64_t storage_numel = 0;  // elements of dtype in the storage (bytes for untyped storages)
  int64_t offset = 0;         // storage offset in elements
  std::vector<int64_t> size, stride;
};

struct Value {
  Kind kind = Kind::None;
  bool b = false;
  int64_t i = 0;
  bool big = false;  // an integer beyond int64 (kept inert)
  double f = 0;
  std::string s;     // Str, Bytes, Global ("module.name")
  std::vector<VP> items;                    // List, Tuple; Object: [callable, args]
  std::vector<std::pair<VP, VP>> entries;   // Dict (insertion order)
  VP state;                                 // Object: BUILD state
  std::shared_ptr<TensorRef> tensor;        // Tensor
  std::string cls;                          // Object: "module.name" of its class/callable ("argparse.Namespace")
};

struct PickleLimits {
  size_t max_depth = 256;          // nested containers on the stack
  size_t max_memo = 1u << 20;      // memo index
  size_t max_values = 50u << 20;   // values created
  uint64_t max_string = 1u << 30;  // bytes in one string
};

// The result of unpickling: the root value, and ownership of every value created. Pickles can build
// cycles (a list appended to itself through the memo); the destructor breaks them, so keep this
// object alive while using any value reached from `root`.
struct Pickled {
  VP root;
  std::vector<std::weak_ptr<Value>> all;
  Pickled() = default;
  Pickled(const Pickled &) = delete;
  Pickled &operator=(const Pickled &) = delete;
  ~Pickled();
};

// Evaluates a pickle. Throws std::runtime_error with a one-line reason on malformed input or when a
// limit is hit.
std::unique_ptr<Pickled> unpickle(const uint8_t *data, size_t n, const PickleLimits &lim = {});

// Plain data of a value as JSON (dicts with string keys, lists, numbers, strings; a Namespace as an
// object; tensors as {"__tensor__": [shape]}; anything inert as {"__object__": "module.name"}).
// Walks at most `budget` nodes.
nlohmann::json to_json(const VP &v, size_t budget = 1u << 20);

// The dtype of a torch dtype global ("torch.bfloat16", "torch.float", ...), or CKH_DT_INVALID.
ckh_dtype dtype_of_torch_name(const std::string &name);

}  // namespace ckh::torchfmt
