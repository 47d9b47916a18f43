// Plugin-level tests of ckh-format-safetensors.so through its C ABI: descriptor, probe, reader catalogs
// and error messages on real files (single, directory, sharded + index), and writer layouts (shards,
// index, header bytes, side files) checked with a fake layout builder and read back.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "st_harness.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string read_all(const std::string &p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void write_all(const std::string &p, const std::string &data) {
  std::ofstream o(p, std::ios::binary);
  o.write(data.data(), static_cast<std::streamsize>(data.size()));
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

struct T {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};

// Deterministic bytes for a tensor.
std::string pattern(size_t n, int seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + static_cast<size_t>(seed) * 17 + 7) & 0xFF);
  return s;
}

// A spec-conforming safetensors file (tensors in the given order, packed).
std::string st_file(const std::vector<T> &ts, const json &meta = json{{"format", "pt"}}) {
  json h = json::object();
  if (!meta.is_null()) h["__metadata__"] = meta;
  uint64_t off = 0;
  std::string data;
  for (const auto &t : ts) {
    h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {off, off + t.bytes.size()}}};
    off += t.bytes.size();
    data += t.bytes;
  }
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  return le64(hs.size()) + hs + data;
}

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "ckh-st-test-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string &n) const { return path_ + "/" + n; }
  const std::string &str() const { return path_; }

 private:
  std::string path_;
};

std::vector<T> two_tensors() {
  return {{"model.embed_tokens.weight", "BF16", {4, 3}, pattern(24, 1)}, {"model.norm.weight", "F32", {3}, pattern(12, 2)}};
}

::testing::AssertionResult has_all(const std::string &msg, std::initializer_list<std::string> needles) {
  for (const auto &n : needles)
    if (msg.find(n) == std::string::npos) return ::testing::AssertionFailure() << "'" << msg << "' lacks '" << n << "'";
  if (msg.find('\n') != std::string::npos) return ::testing::AssertionFailure() << "multi-line: " << msg;
  return ::testing::AssertionSuccess();
}

std::string abs_path(const std::string &p) { return fs::absolute(p).lexically_normal().string(); }

// Bytes of a tensor as the host would pread them from the reported piece.
std::string piece_bytes(const sth::Catalog &c, const sth::TensorRec &t) {
  uint64_t n = ckh_dtype_size(t.dtype);
  for (int64_t d : t.shape) n *= static_cast<uint64_t>(d);
  return read_all(c.files.at(t.piece.file)).substr(t.piece.byte_offset, n);
}

}  // namespace

// ---- descriptor ---------------------------------------------------------------------------------------

TEST(Plugin, DescriptorAndComponents) {
  const sth::Plugin &p = sth::plugin();
  EXPECT_STREQ(p.desc->id, "org.ckhost.format.safetensors");
  EXPECT_EQ(p.desc->component_count, 2u);
  ASSERT_NE(p.reader_comp, nullptr);
  ASSERT_NE(p.writer_comp, nullptr);
  EXPECT_STREQ(p.reader_comp->id, "hf");
  EXPECT_STREQ(p.writer_comp->id, "hf");
  EXPECT_EQ(json::parse(p.reader_comp->capabilities_json),
            json::parse(R"({"container":"safetensors","layout":"hf","extensions":[".safetensors"]})"));
  const json wcaps = json::parse(p.writer_comp->capabilities_json);
  EXPECT_EQ(wcaps["container"], "safetensors");
  EXPECT_EQ(wcaps["layout"], "hf");
  // SDK 1.1: the writer declares --max-shard-size (a size, handed over as bytes under max_shard_size).
  ASSERT_EQ(wcaps["options"].size(), 1u);
  EXPECT_EQ(wcaps["options"][0]["name"], "max-shard-size");
  EXPECT_EQ(wcaps["options"][0]["type"], "size");
}

// ---- probe ----------------------------------------------------------------------------------------

TEST(Probe, DirectoriesAndFiles) {
  const sth::Plugin &p = sth::plugin();
  sth::clear_error();
  TempDir d;
  auto probe = [&](const std::string &path) { return p.reader->probe(p.reader, path.c_str()); };
  EXPECT_EQ(probe(d.str()), 0);  // empty directory
  write_all(d / "notes.txt", "hello");
  EXPECT_EQ(probe(d.str()), 0);
  EXPECT_EQ(probe(d / "notes.txt"), 0);
  write_all(d / "x.safetensors", st_file(two_tensors()));
  EXPECT_EQ(probe(d.str()), 90);
  EXPECT_EQ(probe(d / "x.safetensors"), 90);
  EXPECT_EQ(probe(d / "missing"), 0);
  EXPECT_EQ(p.reader->probe(p.reader, ""), 0);
  EXPECT_EQ(p.reader->probe(p.reader, nullptr), 0);
  TempDir e;
  write_all(e / "model.safetensors.index.json", "{}");
  EXPECT_EQ(probe(e.str()), 90);
  // Plausible length but no '{', and '{' but a length past the end.
  write_all(e / "a.bin", le64(2) + "[]");
  EXPECT_EQ(probe(e / "a.bin"), 0);
  write_all(e / "b.bin", le64(1000) + "{}");
  EXPECT_EQ(probe(e / "b.bin"), 0);
  write_all(e / "c.bin", le64(2) + "{}");
  EXPECT_EQ(probe(e / "c.bin"), 90);
  write_all(e / "short", "abc");
  EXPECT_EQ(probe(e / "short"), 0);
  EXPECT_TRUE(sth::g_error.empty());
}

// ---- reader: catalogs -------------------------------------------------------------------------------

TEST(Reader, SingleFileCatalogPiecesAndMetadata) {
  TempDir d;
  const auto ts = two_tensors();
  write_all(d / "w.safetensors", st_file(ts, {{"format", "pt"}, {"note", "hi"}}));
  const std::string before = read_all(d / "w.safetensors");
  sth::Catalog c = sth::open_catalog(d / "w.safetensors");
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  ASSERT_EQ(c.files.size(), 1u);
  EXPECT_EQ(c.files[0], abs_path(d / "w.safetensors"));
  ASSERT_EQ(c.tensors.size(), 2u);
  EXPECT_EQ(c.tensors[0].name, "model.embed_tokens.weight");
  EXPECT_EQ(c.tensors[0].dtype, CKH_DT_BF16);
  EXPECT_EQ(c.tensors[0].shape, (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(c.tensors[1].dtype, CKH_DT_F32);
  for (size_t i = 0; i < ts.size(); ++i) {
    const auto &t = c.tensors[i];
    EXPECT_EQ(t.npieces, 1u);
    EXPECT_EQ(t.piece.file, 0u);
    for (int k = 0; k < CKH_MAX_DIMS; ++k) {
      EXPECT_EQ(t.piece.offset[k], 0);
      EXPECT_EQ(t.piece.stride[k], 0);
      EXPECT_EQ(t.piece.size[k], k < static_cast<int>(t.shape.size()) ? t.shape[k] : 0);
    }
    EXPECT_EQ(piece_bytes(c, t), ts[i].bytes) << t.name;
  }
  const uint64_t hlen = static_cast<uint8_t>(before[0]) | (static_cast<uint64_t>(static_cast<uint8_t>(before[1])) << 8);
  EXPECT_EQ(c.tensors[0].piece.byte_offset, 8 + hlen);
  const json m = json::parse(c.metadata);
  EXPECT_EQ(m["format"], "hf");
  EXPECT_EQ(m["layout"], "hf");
  EXPECT_TRUE(m["config"].is_null());
  EXPECT_EQ(m["side_files"], json::array());
  EXPECT_EQ(m["skipped"], json::array());
  EXPECT_EQ(m["safetensors_metadata"], json({{"format", "pt"}, {"note", "hi"}}));
  EXPECT_EQ(read_all(d / "w.safetensors"), before);
}

TEST(Reader, DirectoryWithSideFilesAndConfig) {
  TempDir d;
  write_all(d / "model.safetensors", st_file(two_tensors()));
  write_all(d / "config.json", R"({"model_type":"llama","hidden_size":3})");
  for (const char *n : {"generation_config.json", "tokenizer.json", "tokenizer_config.json", "tokenizer.model",
                        "special_tokens_map.json", "chat_template.jinja", "modeling_x.py", "README.md"})
    write_all(d / n, n);
  for (const char *n : {"pytorch_model.bin", "pytorch_model.bin.index.json", "x.pt", "x.pth", "x.ckpt", "m.gguf",
                        "tf_model.h5", "flax_model.msgpack", "model.onnx", ".hidden", ".gitattributes"})
    write_all(d / n, "w");
  fs::create_directory(d / "subdir");
  write_all(d / "subdir/inner.txt", "x");
  sth::Catalog c = sth::open_catalog(d.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  EXPECT_EQ(c.tensors.size(), 2u);
  const json m = json::parse(c.metadata);
  EXPECT_EQ(m["config"]["model_type"], "llama");
  std::vector<std::string> names;
  for (const auto &sf : m["side_files"]) {
    names.push_back(sf["name"]);
    EXPECT_EQ(sf["path"], abs_path(d / sf["name"].get<std::string>()));
  }
  EXPECT_EQ(names, (std::vector<std::string>{"README.md", "chat_template.jinja", "config.json", "generation_config.json",
                                             "modeling_x.py", "special_tokens_map.json", "tokenizer.json",
                                             "tokenizer.model", "tokenizer_config.json"}));
}

TEST(Reader, RelativePathsBecomeAbsolute) {
  TempDir d;
  fs::create_directory(d / "m");
  write_all(d / "m/model.safetensors", st_file(two_tensors()));
  const fs::path cwd = fs::current_path();
  fs::current_path(d.str());
  sth::Catalog c = sth::open_catalog("m");
  fs::current_path(cwd);
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  EXPECT_EQ(c.files[0], abs_path(d / "m/model.safetensors"));
}

TEST(Reader, SymlinkedFilesLikeTheHfCache) {
  // huggingface_hub snapshots are directories of symlinks into a blob store.
  TempDir blobs, snap;
  write_all(blobs / "b1", st_file(two_tensors()));
  write_all(blobs / "b2", R"({"model_type":"llama"})");
  write_all(blobs / "b3", "tok");
  fs::create_symlink(blobs / "b1", snap / "model.safetensors");
  fs::create_symlink(blobs / "b2", snap / "config.json");
  fs::create_symlink(blobs / "b3", snap / "tokenizer.json");
  fs::create_symlink(blobs / "missing", snap / "dangling.txt");
  EXPECT_EQ(sth::plugin().reader->probe(sth::plugin().reader, snap.str().c_str()), 90);
  sth::Catalog c = sth::open_catalog(snap.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  EXPECT_EQ(c.tensors.size(), 2u);
  EXPECT_EQ(piece_bytes(c, c.tensors[1]), two_tensors()[1].bytes);
  const json m = json::parse(c.metadata);
  EXPECT_EQ(m["config"]["model_type"], "llama");
  ASSERT_EQ(m["side_files"].size(), 2u);
  EXPECT_EQ(m["side_files"][0]["name"], "config.json");
  EXPECT_EQ(m["side_files"][1]["name"], "tokenizer.json");
}

TEST(Reader, DirectoryPrefersModelSafetensorsElseAllInNameOrder) {
  TempDir d;
  write_all(d / "b.safetensors", st_file({{"b", "U8", {1}, "b"}}));
  write_all(d / "a.safetensors", st_file({{"a", "U8", {1}, "a"}, {"a2", "I16", {2}, "xxxx"}}));
  sth::Catalog c = sth::open_catalog(d.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  ASSERT_EQ(c.files.size(), 2u);
  EXPECT_EQ(fs::path(c.files[0]).filename(), "a.safetensors");
  EXPECT_EQ(fs::path(c.files[1]).filename(), "b.safetensors");
  ASSERT_EQ(c.tensors.size(), 3u);
  EXPECT_EQ(c.tensors[2].name, "b");
  EXPECT_EQ(c.tensors[2].piece.file, 1u);
  EXPECT_EQ(piece_bytes(c, c.tensors[1]), "xxxx");
  write_all(d / "model.safetensors", st_file({{"m", "U8", {1}, "m"}}));
  sth::Catalog c2 = sth::open_catalog(d.str());
  ASSERT_EQ(c2.status, CKH_OK) << c2.error;
  ASSERT_EQ(c2.tensors.size(), 1u);
  EXPECT_EQ(c2.tensors[0].name, "m");
}

TEST(Reader, ShardedWithIndex) {
  TempDir d;
  write_all(d / "model-00001-of-00002.safetensors", st_file({{"a", "F32", {2}, pattern(8, 1)}}));
  write_all(d / "model-00002-of-00002.safetensors",
            st_file({{"b", "BF16", {2, 2}, pattern(8, 2)}, {"c", "I64", {}, pattern(8, 3)}}));
  write_all(d / "model.safetensors.index.json",
            R"({"metadata":{"total_size":24},"weight_map":{"c":"model-00002-of-00002.safetensors",)"
            R"("a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})");
  write_all(d / "stray.safetensors", "not read: the index decides");
  sth::Catalog c = sth::open_catalog(d.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  ASSERT_EQ(c.files.size(), 2u);
  ASSERT_EQ(c.tensors.size(), 3u);
  EXPECT_EQ(c.tensors[0].name, "a");
  EXPECT_EQ(c.tensors[0].piece.file, 0u);
  EXPECT_EQ(c.tensors[2].name, "c");
  EXPECT_TRUE(c.tensors[2].shape.empty());
  EXPECT_EQ(c.tensors[2].piece.file, 1u);
  EXPECT_EQ(piece_bytes(c, c.tensors[2]), pattern(8, 3));
  const json m = json::parse(c.metadata);
  for (const auto &sf : m["side_files"]) EXPECT_NE(sf["name"], "model.safetensors.index.json");
}

TEST(Reader, EveryDtypeAndEdgeShapes) {
  TempDir d;
  const std::vector<std::pair<const char *, ckh_dtype>> dts = {
      {"BOOL", CKH_DT_BOOL}, {"U8", CKH_DT_U8},   {"I8", CKH_DT_I8},   {"F8_E5M2", CKH_DT_F8_E5M2},
      {"F8_E4M3", CKH_DT_F8_E4M3FN}, {"I16", CKH_DT_I16}, {"U16", CKH_DT_U16}, {"F16", CKH_DT_F16},
      {"BF16", CKH_DT_BF16}, {"I32", CKH_DT_I32}, {"U32", CKH_DT_U32}, {"F32", CKH_DT_F32},
      {"F64", CKH_DT_F64},   {"I64", CKH_DT_I64}, {"U64", CKH_DT_U64}, {"F8_E8M0", CKH_DT_F8_E8M0}};
  std::vector<T> ts;
  int seed = 0;
  for (const auto &[n, dt] : dts) ts.push_back({std::string("t.") + n, n, {2, 3}, pattern(6 * ckh_dtype_size(dt), ++seed)});
  ts.push_back({"scalar", "F32", {}, pattern(4, 99)});
  ts.push_back({"empty", "BF16", {0, 5}, ""});
  write_all(d / "model.safetensors", st_file(ts));
  sth::Catalog c = sth::open_catalog(d.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  ASSERT_EQ(c.tensors.size(), ts.size());
  for (size_t i = 0; i < dts.size(); ++i) {
    const sth::TensorRec *t = c.find(std::string("t.") + dts[i].first);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->dtype, dts[i].second);
    EXPECT_EQ(piece_bytes(c, *t), ts[i].bytes);
  }
  EXPECT_TRUE(c.find("scalar")->shape.empty());
  EXPECT_EQ(c.find("empty")->shape, (std::vector<int64_t>{0, 5}));
}

// ---- reader: errors ---------------------------------------------------------------------------------

TEST(ReaderErrors, HeaderErrorsNameFileAndTensor) {
  TempDir d;
  const std::string name = "model-00002-of-00003.safetensors";
  std::string f = le64(0);
  const std::string h =
      R"({"model.layers.3.mlp.up_proj.weight":{"dtype":"BF16","shape":[5632,2048],"data_offsets":[0,23068670]}})";
  f = le64(h.size()) + h + std::string(64, '\0');
  write_all(d / name, f);
  sth::Catalog c = sth::open_catalog(d / name);
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_EQ(c.error, abs_path(d / name) +
                         ": tensor 'model.layers.3.mlp.up_proj.weight': shape [5632, 2048] x BF16 needs 23068672 bytes "
                         "but data_offsets span 23068670");
}

TEST(ReaderErrors, TruncatedAndGarbageFiles) {
  TempDir d;
  std::string f = st_file(two_tensors());
  write_all(d / "model.safetensors", f.substr(0, f.size() - 5));
  sth::Catalog c = sth::open_catalog(d.str());
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"model.safetensors", "'model.norm.weight'", "truncated"}));
  write_all(d / "model.safetensors", "abc");
  c = sth::open_catalog(d.str());
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"model.safetensors", "3 bytes"}));
  write_all(d / "model.safetensors", le64(100) + "{}");
  c = sth::open_catalog(d.str());
  EXPECT_TRUE(has_all(c.error, {"model.safetensors", "header length 100"}));
  write_all(d / "model.safetensors", le64(5) + R"({"a":)");
  c = sth::open_catalog(d.str());
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"model.safetensors", "not valid JSON"}));
  const std::string dup = R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})";
  write_all(d / "model.safetensors", le64(dup.size()) + dup + "ab");
  c = sth::open_catalog(d.str());
  EXPECT_TRUE(has_all(c.error, {"model.safetensors", "'w'", "twice"}));
}

TEST(ReaderErrors, MissingPathsAndEmptyDirectories) {
  TempDir d;
  sth::Catalog c = sth::open_catalog(d / "nope");
  EXPECT_EQ(c.status, CKH_E_IO);
  EXPECT_TRUE(has_all(c.error, {"nope"}));
  c = sth::open_catalog(d.str());
  EXPECT_NE(c.status, CKH_OK);
  EXPECT_TRUE(has_all(c.error, {d.str(), "no .safetensors"}));
  c = sth::open_catalog("");
  EXPECT_NE(c.status, CKH_OK);
}

TEST(ReaderErrors, FifoOrDeviceIsRefusedWithoutBlocking) {
  TempDir d;
  ASSERT_EQ(mkfifo((d / "pipe.safetensors").c_str(), 0600), 0);
  EXPECT_EQ(sth::plugin().reader->probe(sth::plugin().reader, (d / "pipe.safetensors").c_str()), 0);
  sth::Catalog c = sth::open_catalog(d / "pipe.safetensors");
  EXPECT_EQ(c.status, CKH_E_IO);
  EXPECT_TRUE(has_all(c.error, {"pipe.safetensors", "not a regular file"}));
  EXPECT_EQ(sth::plugin().reader->probe(sth::plugin().reader, "/dev/zero"), 0);
  c = sth::open_catalog("/dev/zero");
  EXPECT_EQ(c.status, CKH_E_IO);
}

TEST(ReaderErrors, UnreadableFileIsAnIoError) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads anything";
  TempDir d;
  write_all(d / "model.safetensors", st_file(two_tensors()));
  chmod((d / "model.safetensors").c_str(), 0);
  sth::Catalog c = sth::open_catalog(d.str());
  EXPECT_EQ(c.status, CKH_E_IO);
  EXPECT_TRUE(has_all(c.error, {"model.safetensors", "cannot open"}));
}

TEST(ReaderErrors, InvalidConfigJson) {
  TempDir d;
  write_all(d / "model.safetensors", st_file(two_tensors()));
  write_all(d / "config.json", R"({"hidden_size": 3,)");
  sth::Catalog c = sth::open_catalog(d.str());
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"config.json", "not valid JSON"}));
  write_all(d / "config.json", "[1]");
  c = sth::open_catalog(d.str());
  EXPECT_TRUE(has_all(c.error, {"config.json", "not a JSON object"}));
}

class ShardedErrors : public ::testing::Test {
 protected:
  void SetUp() override {
    write_all(d / "s1.safetensors", st_file({{"a", "F32", {1}, "aaaa"}, {"b", "F32", {1}, "bbbb"}}));
    write_all(d / "s2.safetensors", st_file({{"c", "F32", {1}, "cccc"}}));
  }
  void index(const std::string &weight_map) {
    write_all(d / "model.safetensors.index.json", R"({"metadata":{},"weight_map":)" + weight_map + "}");
  }
  sth::Catalog open() { return sth::open_catalog(d.str()); }
  TempDir d;
};

TEST_F(ShardedErrors, ConsistentIndexOpens) {
  index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"})");
  sth::Catalog c = open();
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  EXPECT_EQ(c.tensors.size(), 3u);
}

TEST_F(ShardedErrors, IndexNamesMissingShard) {
  index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s3.safetensors"})");
  sth::Catalog c = open();
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"model.safetensors.index.json", "s3.safetensors", "does not exist"}));
}

TEST_F(ShardedErrors, IndexedTensorNotInItsShard) {
  index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors","zz":"s2.safetensors"})");
  sth::Catalog c = open();
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"s2.safetensors", "'zz'", "listed in model.safetensors.index.json", "not in this shard"}));
}

TEST_F(ShardedErrors, ShardTensorNotInIndex) {
  index(R"({"a":"s1.safetensors","c":"s2.safetensors"})");
  sth::Catalog c = open();
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"s1.safetensors", "'b'", "not listed"}));
}

TEST_F(ShardedErrors, TensorListedUnderAnotherShard) {
  index(R"({"a":"s1.safetensors","b":"s2.safetensors","c":"s2.safetensors"})");
  sth::Catalog c = open();
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"s1.safetensors", "'b'", "'s2.safetensors'"}));
}

TEST_F(ShardedErrors, SameTensorInTwoShards) {
  write_all(d / "s2.safetensors", st_file({{"c", "F32", {1}, "cccc"}, {"a", "F32", {1}, "aaaa"}}));
  sth::Catalog c = open();  // no index: every shard in name order
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"s2.safetensors", "'a'", "also appears in s1.safetensors"}));
}

TEST_F(ShardedErrors, IndexInvalidJsonDuplicateKeysAndBadShape) {
  write_all(d / "model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors",}})");
  sth::Catalog c = open();
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"model.safetensors.index.json", "not valid JSON"}));
  write_all(d / "model.safetensors.index.json",
            R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors","a":"s2.safetensors"}})");
  c = open();
  EXPECT_TRUE(has_all(c.error, {"model.safetensors.index.json", "'a'", "twice"}));
  index("[]");
  c = open();
  EXPECT_TRUE(has_all(c.error, {"model.safetensors.index.json", "weight_map"}));
  index(R"({"a":3})");
  c = open();
  EXPECT_TRUE(has_all(c.error, {"model.safetensors.index.json", "'a'"}));
  index(R"({"a":"../s1.safetensors"})");
  c = open();
  EXPECT_TRUE(has_all(c.error, {"model.safetensors.index.json", "invalid shard name"}));
}

TEST_F(ShardedErrors, BadShardHeaderNamesTheShard) {
  write_all(d / "s2.safetensors", le64(8) + "{\"c\":   " + "xxxx");
  index(R"({"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"})");
  sth::Catalog c = open();
  EXPECT_EQ(c.status, CKH_E_FORMAT);
  EXPECT_TRUE(has_all(c.error, {"s2.safetensors", "not valid JSON"}));
}

// ---- writer -------------------------------------------------------------------------------------------

namespace {
sth::Input in(const std::string &name, ckh_dtype dt, std::vector<int64_t> shape, int seed = 0) {
  uint64_t n = ckh_dtype_size(dt);
  for (int64_t s : shape) n *= static_cast<uint64_t>(s);
  return {name, dt, std::move(shape), pattern(n, seed)};
}

const std::string kMeta = R"({"format":"hf","layout":"hf","config":null,"side_files":[]})";
}  // namespace

TEST(Writer, SingleShardExactHeaderBytesAndRoundTrip) {
  std::vector<sth::Input> ins = {in("z.bias", CKH_DT_F32, {3}, 1), in("a.weight", CKH_DT_BF16, {2, 2}, 2),
                                 in("b.mask", CKH_DT_BOOL, {3}, 3), in("c.big", CKH_DT_I64, {2}, 4),
                                 in("scalar", CKH_DT_F64, {}, 5), in("empty", CKH_DT_F16, {0, 7}, 6)};
  sth::Layout l = sth::plan(ins, "{}", kMeta);
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  EXPECT_TRUE(l.problems.empty()) << l.problems[0];
  ASSERT_EQ(l.files.size(), 1u);
  const sth::OutFile &f = l.files[0];
  EXPECT_EQ(f.relpath, "model.safetensors");
  // (element size descending, then name): c.big, scalar (8); z.bias (4); a.weight, empty (2); b.mask (1)
  const std::string expect =
      R"({"__metadata__":{"format":"pt"},)"
      R"("c.big":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},)"
      R"("scalar":{"dtype":"F64","shape":[],"data_offsets":[16,24]},)"
      R"("z.bias":{"dtype":"F32","shape":[3],"data_offsets":[24,36]},)"
      R"("a.weight":{"dtype":"BF16","shape":[2,2],"data_offsets":[36,44]},)"
      R"("empty":{"dtype":"F16","shape":[0,7],"data_offsets":[44,44]},)"
      R"("b.mask":{"dtype":"BOOL","shape":[3],"data_offsets":[44,47]}})";
  std::string padded = expect;
  padded.append((8 - padded.size() % 8) % 8, ' ');
  EXPECT_EQ(f.size, 8 + padded.size() + 47);
  EXPECT_EQ(f.data.substr(0, 8), le64(padded.size()));
  EXPECT_EQ(f.data.substr(8, padded.size()), padded);
  // Natural alignment of every tensor in the file.
  TempDir d;
  sth::materialize(l, d.str());
  sth::Catalog c = sth::open_catalog(d.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  ASSERT_EQ(c.tensors.size(), ins.size());
  for (const auto &i : ins) {
    const sth::TensorRec *t = c.find(i.name);
    ASSERT_NE(t, nullptr) << i.name;
    EXPECT_EQ(t->dtype, i.dtype);
    EXPECT_EQ(t->shape, i.shape);
    EXPECT_EQ(t->piece.byte_offset % ckh_dtype_size(i.dtype), 0u) << i.name;
    EXPECT_EQ(piece_bytes(c, *t), i.bytes) << i.name;
  }
  EXPECT_EQ(json::parse(c.metadata)["safetensors_metadata"], json({{"format", "pt"}}));
}

TEST(Writer, GreedyShardsHfNamesAndIndex) {
  // 40 + 40 | 100 (alone: larger than the limit) | 30 + 50 | 60
  std::vector<sth::Input> ins = {in("l0.a", CKH_DT_F32, {10}), in("l0.b", CKH_DT_F32, {10}),
                                 in("huge", CKH_DT_U8, {100}),  in("l1.a", CKH_DT_I16, {15}),
                                 in("l1.b", CKH_DT_U8, {50}),   in("l2", CKH_DT_F32, {15})};
  sth::Layout l = sth::plan(ins, R"({"max_shard_size": 80})", kMeta);
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  EXPECT_TRUE(l.problems.empty());
  std::vector<std::string> names;
  for (const auto &f : l.files) names.push_back(f.relpath);
  EXPECT_EQ(names, (std::vector<std::string>{"model-00001-of-00004.safetensors", "model-00002-of-00004.safetensors",
                                             "model-00003-of-00004.safetensors", "model-00004-of-00004.safetensors",
                                             "model.safetensors.index.json"}));
  const sth::OutFile *idx = l.find("model.safetensors.index.json");
  ASSERT_NE(idx, nullptr);
  EXPECT_TRUE(idx->small);
  const std::string expect_index = R"({
  "metadata": {
    "total_size": 320
  },
  "weight_map": {
    "huge": "model-00002-of-00004.safetensors",
    "l0.a": "model-00001-of-00004.safetensors",
    "l0.b": "model-00001-of-00004.safetensors",
    "l1.a": "model-00003-of-00004.safetensors",
    "l1.b": "model-00003-of-00004.safetensors",
    "l2": "model-00004-of-00004.safetensors"
  }
}
)";
  EXPECT_EQ(idx->data, expect_index);
  TempDir d;
  sth::materialize(l, d.str());
  sth::Catalog c = sth::open_catalog(d.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  EXPECT_EQ(c.files.size(), 4u);
  for (const auto &i : ins) EXPECT_EQ(piece_bytes(c, *c.find(i.name)), i.bytes) << i.name;
}

TEST(Writer, ShardSizeStringsAndDefault) {
  std::vector<sth::Input> ins = {in("a", CKH_DT_U8, {600}), in("b", CKH_DT_U8, {600})};
  EXPECT_EQ(sth::plan(ins, R"({"max_shard_size":"1KB"})", kMeta).files.size(), 3u);
  EXPECT_EQ(sth::plan(ins, R"({"max_shard_size":"1KiB"})", kMeta).files.size(), 3u);
  EXPECT_EQ(sth::plan(ins, R"({"max_shard_size":"2kb"})", kMeta).files.size(), 1u);
  EXPECT_EQ(sth::plan(ins, R"({"max_shard_size":1200})", kMeta).files.size(), 1u);
  EXPECT_EQ(sth::plan(ins, R"({"max_shard_size":1199})", kMeta).files.size(), 3u);
  EXPECT_EQ(sth::plan(ins, R"({"other":"ignored"})", kMeta).files.size(), 1u);
  EXPECT_EQ(sth::plan(ins, "", kMeta).files.size(), 1u);
  for (const char *bad : {R"({"max_shard_size":0})", R"({"max_shard_size":-5})", R"({"max_shard_size":"lots"})",
                          R"({"max_shard_size":"5XB"})", R"({"max_shard_size":1.5})", R"({"max_shard_size":[1]})",
                          R"({"max_shard_size":"99999999999999999999GB"})", "not json", "[]"}) {
    sth::Layout l = sth::plan(ins, bad, kMeta);
    EXPECT_EQ(l.status, CKH_E_INVALID_ARG) << bad;
    EXPECT_FALSE(l.error.empty()) << bad;
  }
}

TEST(Writer, ManyShardsNumbering) {
  std::vector<sth::Input> ins;
  for (int i = 0; i < 12; ++i) ins.push_back(in("t" + std::to_string(100 + i), CKH_DT_F32, {4}));
  sth::Layout l = sth::plan(ins, R"({"max_shard_size":16})", kMeta);
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  ASSERT_EQ(l.files.size(), 13u);
  EXPECT_EQ(l.files[0].relpath, "model-00001-of-00012.safetensors");
  EXPECT_EQ(l.files[11].relpath, "model-00012-of-00012.safetensors");
}

TEST(Writer, NoTensorsGivesAnEmptyModelFile) {
  sth::Layout l = sth::plan({}, "{}", kMeta);
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  ASSERT_EQ(l.files.size(), 1u);
  EXPECT_EQ(l.files[0].data, le64(32) + R"({"__metadata__":{"format":"pt"}})");
}

TEST(Writer, UnsupportedDtypeNamesTheTensor) {
  std::vector<sth::Input> ins = {in("ok", CKH_DT_F32, {1}), {"model.q4.weight", 64, {32}, std::string(18, '\0')}};
  sth::Layout l = sth::plan(ins, "{}", kMeta);
  EXPECT_EQ(l.status, CKH_E_UNSUPPORTED);
  EXPECT_TRUE(has_all(l.error, {"'model.q4.weight'", "safetensors cannot store dtype 64"}));
}

TEST(Writer, NonUtf8NameIsRefused) {
  std::vector<sth::Input> ins = {in("bad\xff", CKH_DT_F32, {1})};
  sth::Layout l = sth::plan(ins, "{}", kMeta);
  EXPECT_NE(l.status, CKH_OK);
  EXPECT_TRUE(has_all(l.error, {"UTF-8"}));
}

TEST(Writer, NamesAreJsonEscaped) {
  std::vector<sth::Input> ins = {in("we\"ird\\name\n\xc3\xa9", CKH_DT_U8, {1})};
  sth::Layout l = sth::plan(ins, "{}", kMeta);
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  TempDir d;
  sth::materialize(l, d.str());
  sth::Catalog c = sth::open_catalog(d.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  EXPECT_EQ(c.tensors[0].name, ins[0].name);
}

TEST(Writer, SideFilesCopiedAndConfigRegenerated) {
  TempDir src;
  for (const char *n : {"config.json", "tokenizer.json", "README.md"}) write_all(src / n, n);
  json meta = {{"format", "hf"},
               {"config", {{"model_type", "llama"}, {"torch_dtype", "float32"}}},
               {"side_files",
                {{{"name", "config.json"}, {"path", src / "config.json"}},
                 {{"name", "tokenizer.json"}, {"path", src / "tokenizer.json"}},
                 {{"name", "README.md"}, {"path", src / "README.md"}},
                 {{"name", "model.safetensors"}, {"path", src / "model.safetensors"}}}}};
  std::vector<sth::Input> ins = {in("w", CKH_DT_F32, {2})};
  // Unmodified config: copied verbatim like every side file; weights in side_files never collide.
  sth::Layout l = sth::plan(ins, "{}", meta.dump());
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  ASSERT_NE(l.find("config.json"), nullptr);
  EXPECT_EQ(l.find("config.json")->copy_from, src / "config.json");
  EXPECT_EQ(l.find("tokenizer.json")->copy_from, src / "tokenizer.json");
  EXPECT_EQ(l.find("README.md")->copy_from, src / "README.md");
  EXPECT_EQ(l.find("model.safetensors")->copy_from, "");
  EXPECT_EQ(l.files.size(), 4u);
  // Modified config: written from metadata, dump(2) + newline.
  meta["config_modified"] = true;
  l = sth::plan(ins, "{}", meta.dump());
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  const sth::OutFile *cfg = l.find("config.json");
  ASSERT_NE(cfg, nullptr);
  EXPECT_TRUE(cfg->small);
  EXPECT_EQ(cfg->data, meta["config"].dump(2) + "\n");
  EXPECT_EQ(l.find("tokenizer.json")->copy_from, src / "tokenizer.json");
  // A config without a file (another format's reader or a mapper made it) is written too.
  json meta2 = {{"config", {{"a", 1}}}, {"side_files", json::array()}};
  l = sth::plan(ins, "{}", meta2.dump());
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  ASSERT_NE(l.find("config.json"), nullptr);
  EXPECT_EQ(l.find("config.json")->data, "{\n  \"a\": 1\n}\n");
  // No config at all: no config.json.
  l = sth::plan(ins, "{}", R"({"config":null,"side_files":[]})");
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  EXPECT_EQ(l.find("config.json"), nullptr);
  // Malformed side file entries are an error, malformed metadata too.
  l = sth::plan(ins, "{}", R"({"side_files":[{"name":"x"}]})");
  EXPECT_EQ(l.status, CKH_E_INVALID_ARG);
  EXPECT_TRUE(has_all(l.error, {"side_files"}));
  l = sth::plan(ins, "{}", "[1]");
  EXPECT_EQ(l.status, CKH_E_INVALID_ARG);
  // A refused builder call: its status and the host's message come back unchanged.
  l = sth::plan(ins, "{}", R"({"side_files":[{"name":"tok.json","path":"relative/tok.json"}]})");
  EXPECT_EQ(l.status, CKH_E_INVALID_ARG);
  EXPECT_EQ(l.error, "copy_file: source must be absolute");
}

TEST(Writer, ReaderToWriterCarriesSideFilesEndToEnd) {
  TempDir src, dst;
  write_all(src / "model.safetensors",
            st_file({{"b", "F32", {2}, pattern(8, 1)}, {"a", "BF16", {3}, pattern(6, 2)}}));
  write_all(src / "config.json", "{\"x\": 1}\n");
  write_all(src / "tokenizer.json", "{}");
  sth::Catalog c = sth::open_catalog(src.str());
  ASSERT_EQ(c.status, CKH_OK) << c.error;
  std::vector<sth::Input> ins;
  for (const auto &t : c.tensors) ins.push_back({t.name, t.dtype, t.shape, piece_bytes(c, t)});
  sth::Layout l = sth::plan(ins, "{}", c.metadata);
  ASSERT_EQ(l.status, CKH_OK) << l.error;
  sth::materialize(l, dst.str());
  EXPECT_EQ(read_all(dst / "config.json"), "{\"x\": 1}\n");
  EXPECT_EQ(read_all(dst / "tokenizer.json"), "{}");
  sth::Catalog c2 = sth::open_catalog(dst.str());
  ASSERT_EQ(c2.status, CKH_OK) << c2.error;
  for (const auto &t : c.tensors) EXPECT_EQ(piece_bytes(c2, *c2.find(t.name)), piece_bytes(c, t));
}
