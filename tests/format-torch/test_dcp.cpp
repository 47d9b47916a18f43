// DCP metadata: what write_dcp_metadata produces parses back to the same entries (both class-path
// targets), chunk checks name the tensor and the offending chunks, and torch.save chunk blobs are
// located (dtype, shape, strides, absolute offset) inside a bigger buffer.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <stdexcept>

#include "dcp.hpp"
#include "torch_save.hpp"

using namespace ckh::torchfmt;

namespace {

DcpMetadata sample() {
  DcpMetadata m;
  DcpEntry a;
  a.fqn = "decoder.layers.mlp.linear_fc1.weight";
  a.dtype = CKH_DT_BF16;
  a.size = {3, 8, 4};
  for (int64_t l = 0; l < 3; ++l)
    a.chunks.push_back(DcpChunk{{l, 0, 0}, {1, 8, 4}, {"__0_" + std::to_string(l % 2) + ".distcp", uint64_t(100 * l), 77, true}});
  m.entries.push_back(a);
  DcpEntry s;
  s.fqn = "scalar";
  s.dtype = CKH_DT_F32;
  s.chunks.push_back(DcpChunk{{}, {}, {"__0_0.distcp", 500, 9, true}});
  m.entries.push_back(s);
  DcpEntry b;
  b.fqn = "common_state/shard_0_1";
  b.is_bytes = true;
  b.bytes = {"__0_1.distcp", 0, 431, true};
  m.entries.push_back(b);
  return m;
}

std::string what(const std::function<void()> &f) {
  try {
    f();
  } catch (const std::runtime_error &e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Dcp, MetadataRoundTripsForBothTargets) {
  for (DcpTarget t : {DcpTarget::Torch2, DcpTarget::Torch113}) {
    DcpMetadata m = sample();
    m.planner_data = {{"decoder.layers.mlp.linear_fc1.weight", {"decoder", "layers.mlp.linear_fc1.weight"}}};
    const std::string bytes = write_dcp_metadata(m, t);
    const DcpMetadata r = parse_dcp_metadata(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
    EXPECT_EQ(r.class_name, t == DcpTarget::Torch2 ? "torch.distributed.checkpoint.metadata.Metadata"
                                                   : "torch.distributed._shard.checkpoint.metadata.Metadata");
    ASSERT_EQ(r.entries.size(), 3u);
    EXPECT_EQ(r.entries[0].fqn, m.entries[0].fqn);
    EXPECT_EQ(r.entries[0].dtype, CKH_DT_BF16);
    EXPECT_EQ(r.entries[0].dtype_name, "torch.bfloat16");
    EXPECT_EQ(r.entries[0].size, (std::vector<int64_t>{3, 8, 4}));
    ASSERT_EQ(r.entries[0].chunks.size(), 3u);
    EXPECT_EQ(r.entries[0].chunks[2].offsets, (std::vector<int64_t>{2, 0, 0}));
    EXPECT_EQ(r.entries[0].chunks[2].where.relative_path, "__0_0.distcp");
    EXPECT_EQ(r.entries[0].chunks[2].where.offset, 200u);
    EXPECT_EQ(r.entries[0].chunks[2].where.length, 77u);
    EXPECT_TRUE(r.entries[1].size.empty());
    EXPECT_EQ(r.entries[1].chunks.at(0).where.offset, 500u);
    EXPECT_TRUE(r.entries[2].is_bytes);
    EXPECT_EQ(r.entries[2].bytes.length, 431u);
    EXPECT_EQ(r.planner_data["decoder.layers.mlp.linear_fc1.weight"][1], "layers.mlp.linear_fc1.weight");
    for (const auto &e : r.entries) {
      if (!e.is_bytes) {
        EXPECT_NO_THROW(check_dcp_chunks(e));
      }
    }
  }
}

TEST(Dcp, ChunkChecksNameTheTensorAndChunks) {
  DcpEntry e = sample().entries[0];
  DcpEntry overlap = e;
  overlap.chunks[0].sizes = {2, 8, 4};
  EXPECT_NE(what([&] { check_dcp_chunks(overlap); }).find("[0, 0, 0] (size [2, 8, 4]) and [1, 0, 0] (size [1, 8, 4]) overlap"),
            std::string::npos);
  DcpEntry gap = e;
  gap.chunks.erase(gap.chunks.begin() + 1);
  EXPECT_NE(what([&] { check_dcp_chunks(gap); }).find("cover 64 of 96 elements"), std::string::npos);
  DcpEntry out = e;
  out.chunks[2].offsets = {2, 1, 0};
  EXPECT_NE(what([&] { check_dcp_chunks(out); }).find("exceeds the global shape [3, 8, 4] in dim 1"), std::string::npos);
  DcpEntry rank = e;
  rank.chunks[1].offsets = {1, 0};
  EXPECT_NE(what([&] { check_dcp_chunks(rank); }).find("has 2 dims, the tensor has 3"), std::string::npos);
  // Zero-size chunks (FSDP2's last ranks) are fine.
  DcpEntry zero = e;
  zero.chunks.push_back(DcpChunk{{3, 0, 0}, {0, 8, 4}, {}});
  EXPECT_NO_THROW(check_dcp_chunks(zero));
}

TEST(Dcp, RejectsMetadataThatIsNotDcp) {
  const std::string s("\x80\x02}q\x00.", 6);
  EXPECT_NE(what([&] { parse_dcp_metadata(reinterpret_cast<const uint8_t *>(s.data()), s.size()); }).find("not a DCP Metadata"),
            std::string::npos);
  // A relative path that leaves the checkpoint directory.
  DcpMetadata m = sample();
  m.entries[0].chunks[0].where.relative_path = "../../etc/passwd";
  const std::string bytes = write_dcp_metadata(m, DcpTarget::Torch2);
  EXPECT_NE(what([&] { parse_dcp_metadata(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size()); })
                .find("outside the checkpoint"),
            std::string::npos);
}

TEST(Dcp, LocatesTheTensorOfAChunkBlobInsideAFile) {
  // A torch.save blob of a [1, 2, 3] f32 tensor, laid out by ZipLayout, placed at offset 37 of a file.
  Pickler pk;
  pk.tensor("0", CKH_DT_F32, {1, 2, 3});
  pk.stop();
  ZipLayout z("archive");
  const size_t rp = z.add("data.pkl", pk.bytes().size());
  const size_t rd = z.add("data/0", 24);
  z.add("version", 2);
  const uint64_t base = 37, size = z.total_size();
  std::string file(base + size, '\0');
  for (const auto &blob : z.header_blobs({0, 0, 0})) std::memcpy(&file[base + blob.first], blob.second.data(), blob.second.size());
  std::memcpy(&file[base + z.record(rp).payload_offset], pk.bytes().data(), pk.bytes().size());
  std::memcpy(&file[base + z.record(z.count() - 1).payload_offset], "3\n", 2);
  ReadAt rd_at = [&](uint64_t off, uint64_t len, void *dst) {
    if (off > file.size() || len > file.size() - off) return false;
    std::memcpy(dst, file.data() + off, len);
    return true;
  };
  const BlobTensor b = read_tensor_blob(rd_at, base, size);
  EXPECT_EQ(b.dtype, CKH_DT_F32);
  EXPECT_EQ(b.size, (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(b.stride, (std::vector<int64_t>{6, 3, 1}));
  EXPECT_EQ(b.byte_offset, base + z.record(rd).payload_offset);
  // The blob cut short: a clear error, no crash.
  EXPECT_FALSE(what([&] { read_tensor_blob(rd_at, base, size - 10); }).empty());
}
