// torch_archive.hpp — laying out one torch.save archive through a writer's layout builder, and
// patching its CRC-32s afterwards. Shared by the writers that produce torch.save files (torch,
// megatron): they build the pickle (tensors referencing storages "0".."n-1" in order) and list the
// tensor expressions; this class places records, header bytes and tensor regions.
#pragma once
#include <string>
#include <vector>

#include <ckhost/ckh_writer.h>

#include "torch_save.hpp"

namespace ckh::torchfmt {

class ArchiveLayout {
 public:
  // Declares the file `relpath` holding data.pkl = `pickle` and data/<i> = the bytes of tensors[i]
  // (each of `bytes[i]` bytes), plus version and byteorder records. Throws ckh::sdk::Error when a
  // builder call fails (the host holds the message).
  void plan(ckh_layout_builder_t *lb, const std::string &relpath, const std::string &pickle,
            const std::vector<ckh_expr> &tensors, const std::vector<uint64_t> &bytes);
  // The same in two steps, for archives embedded in a bigger file (DCP .distcp items): prepare()
  // lays out the records and returns the archive's size; place() puts it at [base, base + size) of a
  // file declared by the caller. Offsets inside the archive count from its start, as torch.save into
  // a stream writes them.
  uint64_t prepare(const std::string &pickle, const std::vector<uint64_t> &bytes);
  void place(ckh_layout_builder_t *lb, int32_t file, uint64_t base, const std::string &pickle,
             const std::vector<ckh_expr> &tensors);
  // Writes the final headers with every record's CRC-32.
  void finish(const ckh_region_digest_t *digests, uint64_t n, ckh_patcher_t *p) const;

 private:
  ZipLayout zip_{"archive"};
  int32_t file_ = -1;
  uint64_t base_ = 0;
  size_t r_pkl_ = 0, r_ver_ = 0, r_ord_ = 0;
  std::vector<size_t> r_data_;
  std::vector<int32_t> region_of_record_;  // -1 for literal records
  std::vector<uint32_t> literal_crc_;
};

}  // namespace ckh::torchfmt
