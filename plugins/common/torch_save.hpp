// torch_save.hpp — writing torch.save archives without Python or libtorch.
//
// Pickler: a protocol-2 pickle emitter producing what Python's pickle writes for torch.save content
// (dicts, lists, tuples, ints, floats, strings, argparse.Namespace, OrderedDicts of tensors through
// torch._utils._rebuild_tensor_v2 with persistent storage ids).
// ZipLayout: the byte layout of the zip container torch writes (stored records under one root folder,
// payloads 64-byte aligned through an 'FB' extra field, data descriptors, ZIP64 end records), computed
// up front so a writer plugin can lay the file out and let the host fill tensor payloads in parallel;
// CRC-32s are patched in afterwards. Facts: ../shared/research/torch_formats.md §1-2.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_types.h>

namespace ckh::torchfmt {

class Pickler {
 public:
  // Writes PROTO `protocol` (2 by default; 4 lets GLOBAL name a dotted attribute path). Only
  // protocol-2 opcodes are emitted, which every later protocol reads.
  explicit Pickler(int protocol = 2);
  void none();
  void boolean(bool v);
  void integer(int64_t v);
  void real(double v);
  void str(const std::string &s);
  void global(const std::string &module, const std::string &name);
  void mark();
  void empty_dict();
  void empty_list();
  void empty_tuple();
  void tuple(size_t n);  // n items on the stack: TUPLE1/2/3; n >= 4 (or 0) needs a preceding mark()
  void setitems();       // after mark() and key/value pairs
  void appends();        // after mark() and items
  void reduce();
  void newobj();
  void build();
  void binpersid();
  void stop();

  // A JSON value as Python objects (null -> None, object -> dict, array -> list).
  void json(const nlohmann::json &v);
  // argparse.Namespace(**attrs): NEWOBJ + BUILD, as Python pickles it.
  void namespace_obj(const nlohmann::json &attrs);
  // collections.OrderedDict() (empty), e.g. backward hooks.
  void empty_ordered_dict();
  // A contiguous tensor over the whole storage `key`.
  void tensor(const std::string &key, ckh_dtype dt, const std::vector<int64_t> &shape);

  const std::string &bytes() const { return out_; }

 private:
  void op(uint8_t o) { out_.push_back(static_cast<char>(o)); }
  void u32(uint32_t v);
  std::string out_;
};

// "FloatStorage", "BFloat16Storage", ... for the classic dtypes torch 1.13 can load; "" otherwise.
const char *storage_class(ckh_dtype dt);
// True when Pickler::tensor can write `dt`: a torch 1.13 storage class, or (FP8) torch >= 2.1's
// UntypedStorage + _rebuild_tensor_v3 form.
bool picklable(ckh_dtype dt);

class ZipLayout {
 public:
  struct Record {
    std::string name;        // full name inside the archive ("<root>/data/0")
    uint64_t size = 0;
    uint64_t header_offset = 0;
    uint64_t payload_offset = 0;  // multiple of 64
    uint64_t descriptor_offset = 0;
    bool zip64 = false;
  };

  explicit ZipLayout(std::string root) : root_(std::move(root)) {}
  // Appends a record of `size` bytes named <root>/<name>; returns its index.
  size_t add(const std::string &name, uint64_t size);
  const Record &record(size_t i) const { return recs_[i]; }
  size_t count() const { return recs_.size(); }
  // Total archive size (valid after all records were added).
  uint64_t total_size() const;
  // Every non-payload byte range of the archive given the records' CRC-32s (one per record).
  std::vector<std::pair<uint64_t, std::string>> header_blobs(const std::vector<uint32_t> &crcs) const;

 private:
  uint64_t central_size() const;
  std::string root_;
  std::vector<Record> recs_;
  uint64_t cursor_ = 0;
};

}  // namespace ckh::torchfmt
