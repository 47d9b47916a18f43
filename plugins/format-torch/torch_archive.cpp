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

void ArchiveLayout::plan(ckh_layout_builder_t *lb, const std::string &relpath, const std::string &pickle,
                         const std::vector<ckh_expr> &tensors, const std::vector<uint64_t> &bytes) {
  const std::string version = "3\n", order = "little";
  const size_t r_pkl = zip_.add("data.pkl", pickle.size());
  std::vector<size_t> r_data;
  for (size_t i = 0; i < tensors.size(); ++i) r_data.push_back(zip_.add("data/" + std::to_string(i), bytes[i]));
  const size_t r_ver = zip_.add("version", version.size());
  const size_t r_ord = zip_.add("byteorder", order.size());
  file_ = lb->add_file(lb, relpath.c_str(), zip_.total_size());
  if (file_ < 0) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "add_file failed", true);
  region_of_record_.assign(zip_.count(), -1);
  literal_crc_.assign(zip_.count(), 0);
  auto literal = [&](size_t r, const std::string &data) {
    check(lb->put_bytes(lb, file_, zip_.record(r).payload_offset, data.data(), data.size()));
    literal_crc_[r] = static_cast<uint32_t>(::crc32(0, reinterpret_cast<const Bytef *>(data.data()),
                                                    static_cast<uInt>(data.size())));
  };
  literal(r_pkl, pickle);
  literal(r_ver, version);
  literal(r_ord, order);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const int32_t reg = lb->put_tensor(lb, file_, zip_.record(r_data[i]).payload_offset, tensors[i], CKH_REGION_CRC32);
    if (reg < 0) throw ckh::sdk::Error(CKH_E_INVALID_ARG, "put_tensor failed", true);
    region_of_record_[r_data[i]] = reg;
  }
  // Headers now with the literal records' CRCs; the tensors' CRCs are patched in finish().
  for (const auto &blob : zip_.header_blobs(literal_crc_))
    check(lb->put_bytes(lb, file_, blob.first, blob.second.data(), blob.second.size()));
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
    if (p->put_bytes(p, file_, blob.first, blob.second.data(), blob.second.size()) != CKH_OK)
      throw ckh::sdk::Error(CKH_E_INTERNAL, "patch failed", true);
}

}  // namespace ckh::torchfmt
