// torch.save archives written by ckhost's pickler + zip layout load in the real PyTorch
// (/usr/bin/python3, Debian python3-torch), with weights_only=True where the content allows it.
#include <zlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "torch_save.hpp"

using namespace ckh::torchfmt;

namespace {

struct Item {
  std::string name;
  ckh_dtype dt;
  std::vector<int64_t> shape;
  std::string bytes;
};

// Writes an archive whose data.pkl is `pk` and whose data/<i> records hold items[i].
void write_archive(const std::string &path, const Pickler &pk, const std::vector<Item> &items) {
  ZipLayout z("archive");
  std::vector<size_t> idx;
  const size_t p = z.add("data.pkl", pk.bytes().size());
  for (size_t i = 0; i < items.size(); ++i) idx.push_back(z.add("data/" + std::to_string(i), items[i].bytes.size()));
  const std::string version = "3\n", order = "little";
  const size_t v = z.add("version", version.size());
  const size_t b = z.add("byteorder", order.size());
  std::string file(z.total_size(), '\0');
  std::vector<uint32_t> crcs(z.count());
  auto place = [&](size_t r, const std::string &data) {
    std::memcpy(&file[z.record(r).payload_offset], data.data(), data.size());
    crcs[r] = static_cast<uint32_t>(::crc32(0, reinterpret_cast<const Bytef *>(data.data()), data.size()));
  };
  place(p, pk.bytes());
  for (size_t i = 0; i < items.size(); ++i) place(idx[i], items[i].bytes);
  place(v, version);
  place(b, order);
  for (const auto &blob : z.header_blobs(crcs)) std::memcpy(&file[blob.first], blob.second.data(), blob.second.size());
  std::ofstream(path, std::ios::binary).write(file.data(), static_cast<std::streamsize>(file.size()));
}

std::string floats(std::initializer_list<float> v) {
  std::string s;
  for (float f : v) s.append(reinterpret_cast<const char *>(&f), 4);
  return s;
}

int python(const std::string &code) {
  const std::string path = "/tmp/ckh_torch_check.py";
  std::ofstream(path) << code;
  return std::system(("/usr/bin/python3 " + path).c_str());
}

bool have_torch() { return std::system("/usr/bin/python3 -c 'import torch' 2>/dev/null") == 0; }

}  // namespace

TEST(TorchSave, StateDictLoadsWithWeightsOnly) {
  if (!have_torch()) GTEST_SKIP() << "no torch in /usr/bin/python3";
  std::vector<Item> items = {{"w", CKH_DT_F32, {2, 3}, floats({1, 2, 3, 4, 5, 6})},
                             {"b", CKH_DT_F32, {}, floats({7.5f})},
                             {"i", CKH_DT_I64, {2}, std::string("\x05\0\0\0\0\0\0\0\xff\xff\xff\xff\xff\xff\xff\xff", 16)},
                             {"h", CKH_DT_BF16, {1, 1, 1, 2}, std::string("\x80\x3f\x00\x40", 4)}};
  Pickler pk;
  pk.global("collections", "OrderedDict");
  pk.empty_tuple();
  pk.reduce();
  pk.mark();
  for (size_t i = 0; i < items.size(); ++i) {
    pk.str(items[i].name);
    pk.tensor(std::to_string(i), items[i].dt, items[i].shape);
  }
  pk.setitems();
  pk.stop();
  write_archive("/tmp/ckh_sd.pt", pk, items);
  EXPECT_EQ(python(R"(
import torch, zipfile, sys
sd = torch.load('/tmp/ckh_sd.pt', weights_only=True)
assert list(sd) == ['w', 'b', 'i', 'h'], list(sd)
assert torch.equal(sd['w'], torch.tensor([[1., 2, 3], [4, 5, 6]]))
assert sd['b'].shape == () and sd['b'].item() == 7.5
assert sd['i'].tolist() == [5, -1]
assert sd['h'].dtype == torch.bfloat16 and sd['h'].flatten().tolist() == [1.0, 2.0]
z = zipfile.ZipFile('/tmp/ckh_sd.pt')
assert z.testzip() is None  # every CRC is right
for i in z.infolist():
    assert i.header_offset >= 0
)"),
            0);
}

TEST(TorchSave, MegatronStyleObjects) {
  if (!have_torch()) GTEST_SKIP() << "no torch in /usr/bin/python3";
  std::vector<Item> items = {{"x", CKH_DT_F32, {3}, floats({1, 2, 3})}};
  Pickler pk;
  pk.empty_dict();
  pk.mark();
  pk.str("args");
  pk.namespace_obj({{"num_layers", 2}, {"hidden_size", 64}, {"swiglu", true}, {"norm_epsilon", 1e-5},
                    {"tokenizer_type", "HuggingFaceTokenizer"}, {"big", 1ll << 40}, {"neg", -70000},
                    {"pp_layers", {3, 2}}, {"none", nullptr}});
  pk.str("checkpoint_version");
  pk.real(3.0);
  pk.str("iteration");
  pk.integer(1000);
  pk.str("model");
  pk.global("collections", "OrderedDict");
  pk.empty_tuple();
  pk.reduce();
  pk.mark();
  pk.str("decoder.layers.0.x");
  pk.tensor("0", CKH_DT_F32, {3});
  pk.setitems();
  pk.setitems();
  pk.stop();
  write_archive("/tmp/ckh_mg.pt", pk, items);
  EXPECT_EQ(python(R"(
import torch, argparse
d = torch.load('/tmp/ckh_mg.pt', weights_only=False)
a = d['args']
assert isinstance(a, argparse.Namespace)
assert a.num_layers == 2 and a.hidden_size == 64 and a.swiglu is True and a.norm_epsilon == 1e-5
assert a.big == 1 << 40 and a.neg == -70000 and a.pp_layers == [3, 2] and a.none is None
assert d['checkpoint_version'] == 3.0 and d['iteration'] == 1000
assert d['model']['decoder.layers.0.x'].tolist() == [1.0, 2.0, 3.0]
)"),
            0);
}

TEST(TorchSave, AlignmentAndZip64Layout) {
  ZipLayout z("archive");
  const size_t a = z.add("data.pkl", 100);
  const size_t b = z.add("data/0", 5ull << 30);  // 5 GiB payload: ZIP64 sizes
  const size_t c = z.add("data/1", 10);          // header beyond 4 GiB: ZIP64 offset
  for (size_t i : {a, b, c}) EXPECT_EQ(z.record(i).payload_offset % 64, 0u);
  EXPECT_FALSE(z.record(a).zip64);
  EXPECT_TRUE(z.record(b).zip64);
  EXPECT_TRUE(z.record(c).zip64);
  EXPECT_GT(z.total_size(), 5ull << 30);
  auto blobs = z.header_blobs({1, 2, 3});
  EXPECT_EQ(blobs.size(), 7u);  // 3 local headers + 3 descriptors + central directory/end records
}
