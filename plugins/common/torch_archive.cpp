// torch_archive.cpp — see torch_archive.hpp.
#include "torch_archive.hpp"

#include <zlib.h>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::torchfmt {

namespace {
void check(ckh_status s) {
  if (s != CKH_OK) throw ckh::sdk::Error(s, "layout builder call failed", true);
}
}  // namespace

namespace {
const std::string kVersion = "3\n", kOrder = "little";
}  // namespace

uint64_t ArchiveLayout::prepare(const std::string &pickle, const std::vector<uint64_t> &bytes) {
  zip_ = ZipLayout("archive");
  r_pkl_ = zip_.add("data.pkl", pickle.size());
  r_data_.clear();
  for (size_t i = 0; i < bytes.size(); ++i) r_data_.push_back(zip_.add("data/" + std::to_string(i), bytes[i]));
  r_ver_ = zip_.add("version", kVersion.size());
  r_ord_ = zip_.add("byteorder", kOrder.size());
  return zip_.total_size();
}

void ArchiveLayout::place(ckh_layout_builder_t *lb, int32_t file, uint64_t base, const std::string &pickle,
                          const std::vector<ckh_expr> &tensors) {
  if (tensors.size() != r_data_.size()) ckh::sdk::fail(CKH_E_INTERNAL, "archive: tensor count differs from prepare()");
  file_ = file;
  base_ = base;
  region_of_record_.assign(zip_.count(), -1);
  literal_crc_.assign(zip_.count(), 0);
  auto literal = [&](size_t r, const std::string &data) {
    check(lb->put_bytes(lb, file_, base_ + zip_.record(r).payload_offset, data.data(), data.size()));
    literal_crc_[r] = static_cast<uint32_t>(::crc32(0, reinterpret_cast<const Bytef *>(data.data()),
                                                    static_cast<uInt>(data.size())));
  };
  literal(r_pkl_, pickle);
  literal(r_ver_, kVersion);
  literal(r_ord_, kOrder);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int32_t reg =
        lb->put_tensor(lb, file_, base_ + zip_.record(r_data_[i]).payload_offset, tensors[i], CKH_REGION_CRC32);
    if (reg < 0) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "put_tensor failed", true);
    region_of_record_[r_data_[i]] = reg;
  }
  // Headers now with the literal records' CRCs; the tensors' CRCs are patched in finish().
  for (const auto &blob : zip_.header_blobs(literal_crc_))
    check(lb->put_bytes(lb, file_, base_ + blob.first, blob.second.data(), blob.second.size()));
}

void ArchiveLayout::plan(ckh_layout_builder_t *lb, const std::string &relpath, const std::string &pickle,
                         const std::vector<ckh_expr> &tensors, const std::vector<uint64_t> &bytes) {
  const uint64_t size = prepare(pickle, bytes);
  const int32_t file = lb->add_file(lb, relpath.c_str(), size);
  if (file < 0) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_file failed", true);
  place(lb, file, 0, pickle, tensors);
}

void ArchiveLayout::finish(const ckh_region_digest_t *digests, uint64_t n, ckh_patcher_t *p) const {
  std::vector<uint32_t> crcs = literal_crc_;
  for (size_t r = 0; r < crcs.size(); ++r) {
    const int32_t reg = region_of_record_[r];
    if (reg < 0) continue;
    if (static_cast<uint64_t>(reg) >= n) ckh::sdk::fail(CKH_E_INTERNAL, "missing digest for region " + std::to_string(reg));
    crcs[r] = digests[reg].crc32;
  }
  for (const auto &blob : zip_.header_blobs(crcs))
    if (p->put_bytes(p, file_, base_ + blob.first, blob.second.data(), blob.second.size()) != CKH_OK)
      throw ckh::sdk::Error(CKH_E_INTERNAL, "patch failed", true);
}

}  // namespace ckh::torchfmt
