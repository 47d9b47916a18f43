// Executor: chunking, in-kernel copies, CRC digests, literal bytes, atomic commit and cleanup.
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "ckhost/host/error.hpp"
#include "ckhost/host/executor.hpp"

namespace fs = std::filesystem;
using namespace ckh::host;

namespace {

std::string slurp(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Env {
  fs::path dir;
  Graph g;
  std::string data;
  Env() {
    dir = fs::temp_directory_path() / ("ckh_exec_" + std::to_string(::getpid()) + "_" + std::to_string(rand()));
    fs::create_directories(dir);
    std::mt19937 rng(7);
    data.resize(3 << 20);
    for (auto &c : data) c = static_cast<char>(rng());
    std::ofstream(dir / "src.bin", std::ios::binary).write(data.data(), static_cast<std::streamsize>(data.size()));
    g.files.push_back((dir / "src.bin").string());
  }
  ~Env() { fs::remove_all(dir); }
  // A U8 tensor [rows, cols] at byte offset `at` of src.bin.
  int32_t tensor(int64_t rows, int64_t cols, uint64_t at) {
    Source s;
    s.name = "t" + std::to_string(g.sources.size());
    s.dtype = CKH_DT_U8;
    s.shape.ndim = 2;
    s.shape.d[0] = rows;
    s.shape.d[1] = cols;
    Piece p;
    p.byte_offset = at;
    p.size[0] = rows;
    p.size[1] = cols;
    p.stride[0] = cols;
    p.stride[1] = 1;
    s.pieces.push_back(p);
    g.sources.push_back(s);
    return g.source_node(static_cast<int32_t>(g.sources.size() - 1));
  }
};

}  // namespace

TEST(Executor, WritesRegionsBytesAndCrcs) {
  Env e;
  int32_t a = e.tensor(1024, 1000, 17);    // ~1 MB, split into several chunks at 256 KiB
  int32_t b = e.tensor(300, 7, 2000000);
  int32_t bt = e.g.permute(b, {1, 0});       // needs evaluation, not a plain copy
  OutFile f;
  f.relpath = "sub/out.bin";
  const uint64_t na = 1024 * 1000, nb = 300 * 7;
  f.size = 8 + na + nb + 5;
  f.blobs.push_back({0, "HEADER!!"});
  f.blobs.push_back({8 + na + nb, "TAIL."});
  e.g.layout.files.push_back(f);
  e.g.layout.regions.push_back({0, 8, a, CKH_REGION_CRC32, na});
  e.g.layout.regions.push_back({0, 8 + na, bt, 0, nb});
  OutFile small;
  small.relpath = "note.txt";
  small.small = true;
  small.size = 3;
  small.blobs.push_back({0, "hi\n"});
  e.g.layout.files.push_back(small);
  check_sources(e.g);
  ExecOptions opt;
  opt.threads = 3;
  opt.max_memory = 3 << 20;  // 256 KiB chunks
  opt.progress = 0;
  std::vector<ckh_region_digest_t> got;
  ExecStats st = execute(e.g, (e.dir / "out").string(), opt, [&](const std::vector<ckh_region_digest_t> &d, ckh_patcher_t *p) {
    got = d;
    const char patch[] = "PATCHED!";
    ASSERT_EQ(p->put_bytes(p, 0, 0, patch, 8), CKH_OK);
    EXPECT_NE(p->put_bytes(p, 0, f.size - 2, patch, 8), CKH_OK);  // outside the file
  });
  const std::string out = slurp(e.dir / "out" / "sub" / "out.bin");
  ASSERT_EQ(out.size(), f.size);
  EXPECT_EQ(out.substr(0, 8), "PATCHED!");
  EXPECT_EQ(out.substr(8, na), e.data.substr(17, na));
  for (int64_t r = 0; r < 7; ++r)
    for (int64_t c = 0; c < 300; ++c)
      ASSERT_EQ(out[8 + na + static_cast<size_t>(r * 300 + c)], e.data[2000000 + static_cast<size_t>(c * 7 + r)]);
  EXPECT_EQ(out.substr(8 + na + nb), "TAIL.");
  EXPECT_EQ(slurp(e.dir / "out" / "note.txt"), "hi\n");
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].crc32, ::crc32(0, reinterpret_cast<const Bytef *>(e.data.data() + 17), na));
  EXPECT_EQ(got[0].size, na);
  EXPECT_GT(st.threads, 1u);
  EXPECT_EQ(st.bytes, na + nb);
  for (auto &ent : fs::directory_iterator(e.dir)) EXPECT_EQ(ent.path().filename().string().find(".ckhost-tmp"), std::string::npos);
}

TEST(Executor, PlainCopiesMoveInKernelAndForceReplaces) {
  Env e;
  int32_t a = e.tensor(2048, 1024, 0);
  OutFile f;
  f.relpath = "x.bin";
  f.size = 2048 * 1024;
  e.g.layout.files.push_back(f);
  e.g.layout.regions.push_back({0, 0, a, 0, f.size});
  ExecOptions opt;
  opt.progress = 0;
  fs::create_directories(e.dir / "dst");
  std::ofstream(e.dir / "dst" / "old.txt") << "old";
  EXPECT_THROW(execute(e.g, (e.dir / "dst").string(), opt, nullptr), Error);
  EXPECT_TRUE(fs::exists(e.dir / "dst" / "old.txt"));
  opt.force = true;
  ExecStats st = execute(e.g, (e.dir / "dst").string(), opt, nullptr);
  EXPECT_FALSE(fs::exists(e.dir / "dst" / "old.txt"));
  EXPECT_EQ(slurp(e.dir / "dst" / "x.bin"), e.data.substr(0, f.size));
  EXPECT_EQ(st.direct_bytes, 0u);  // pread + pwrite through a block by default
  opt.copy_file_range = true;
  st = execute(e.g, (e.dir / "dst").string(), opt, nullptr);
  EXPECT_EQ(slurp(e.dir / "dst" / "x.bin"), e.data.substr(0, f.size));
  EXPECT_EQ(st.direct_bytes, f.size);  // same filesystem: copy_file_range
}

TEST(Executor, FailureLeavesNothing) {
  Env e;
  int32_t a = e.tensor(10, 10, 0);
  e.g.sources.back().pieces[0].byte_offset = (3 << 20) - 50;  // runs past the end of the file
  OutFile f;
  f.relpath = "x.bin";
  f.size = 100;
  e.g.layout.files.push_back(f);
  e.g.layout.regions.push_back({0, 0, a, 0, 100});
  EXPECT_THROW(check_sources(e.g), Error);
  ExecOptions opt;
  opt.progress = 0;
  EXPECT_THROW(execute(e.g, (e.dir / "out").string(), opt, nullptr), Error);
  EXPECT_FALSE(fs::exists(e.dir / "out"));
  for (auto &ent : fs::directory_iterator(e.dir)) EXPECT_EQ(ent.path().filename().string().find(".ckhost-tmp"), std::string::npos);
}

TEST(Executor, DestinationChecks) {
  Env e;
  EXPECT_THROW(check_destination(e.dir.string(), (e.dir / "inner").string(), true), Error);
  EXPECT_THROW(check_destination((e.dir / "inner").string(), e.dir.string(), true), Error);
  EXPECT_THROW(check_destination(e.dir.string(), "/nonexistent-parent/x", false), Error);
  EXPECT_NO_THROW(check_destination((e.dir / "a").string(), (e.dir / "b").string(), false));
  EXPECT_EQ(parse_size("500MB"), 500000000u);
  EXPECT_EQ(parse_size("2GiB"), 2ull << 30);
  EXPECT_EQ(parse_size("123"), 123u);
  EXPECT_THROW(parse_size("12XB"), Error);
  EXPECT_THROW(parse_size("MB"), Error);
}

// One queue per output file: with fewer and with more workers than files, every file gets its bytes
// and every region's CRC combines its chunks in order, whichever worker wrote them.
TEST(Executor, ManyFilesAnyThreadCount) {
  for (unsigned threads : {1u, 2u, 3u, 8u}) {
    Env e;
    const int nfiles = 5;
    std::vector<std::pair<uint64_t, uint64_t>> want;  // (source offset, bytes) per file
    for (int f = 0; f < nfiles; ++f) {
      const int64_t rows = 1500 + 300 * f, cols = 1000;  // 1.5-2.7 MB: two or three 1 MiB chunks each
      const uint64_t at = static_cast<uint64_t>(f) * 50000 + 3;
      int32_t t = e.tensor(rows, cols, at);
      OutFile of;
      of.relpath = "f" + std::to_string(f) + ".bin";
      of.size = static_cast<uint64_t>(rows * cols);
      e.g.layout.files.push_back(of);
      e.g.layout.regions.push_back({f, 0, t, CKH_REGION_CRC32, of.size});
      want.push_back({at, of.size});
    }
    ExecOptions opt;
    opt.threads = threads;
    opt.max_memory = 1 << 20;  // 1 MiB chunks: several per file
    opt.progress = 0;
    std::vector<ckh_region_digest_t> got;
    execute(e.g, (e.dir / "out").string(), opt, [&](const std::vector<ckh_region_digest_t> &d, ckh_patcher_t *) { got = d; });
    ASSERT_EQ(got.size(), static_cast<size_t>(nfiles));
    for (int f = 0; f < nfiles; ++f) {
      const std::string expect = e.data.substr(want[static_cast<size_t>(f)].first, want[static_cast<size_t>(f)].second);
      EXPECT_EQ(slurp(e.dir / "out" / ("f" + std::to_string(f) + ".bin")), expect) << "threads " << threads << " file " << f;
      EXPECT_EQ(got[static_cast<size_t>(f)].crc32, ::crc32(0, reinterpret_cast<const Bytef *>(expect.data()), static_cast<uInt>(expect.size())))
          << "threads " << threads << " file " << f;
    }
  }
}

// Evaluated chunks larger than the 1 MiB evaluation block: computed, checksummed and written block by
// block, giving the same bytes and CRC as the whole.
TEST(Executor, EvaluatedChunksInBlocks) {
  Env e;
  const int64_t rows = 1500, cols = 1900;  // 2.85 MB, transposed: several 1 MiB blocks per chunk
  int32_t t = e.g.permute(e.tensor(rows, cols, 11), {1, 0});
  OutFile f;
  f.relpath = "t.bin";
  f.size = static_cast<uint64_t>(rows * cols);
  e.g.layout.files.push_back(f);
  e.g.layout.regions.push_back({0, 0, t, CKH_REGION_CRC32, f.size});
  ExecOptions opt;
  opt.threads = 2;
  opt.max_memory = 1ull << 30;  // 64 MiB chunks: the whole tensor is one chunk
  opt.progress = 0;
  std::vector<ckh_region_digest_t> got;
  execute(e.g, (e.dir / "out").string(), opt, [&](const std::vector<ckh_region_digest_t> &d, ckh_patcher_t *) { got = d; });
  std::string want(f.size, '\0');
  for (int64_t c = 0; c < cols; ++c)
    for (int64_t r = 0; r < rows; ++r) want[static_cast<size_t>(c * rows + r)] = e.data[11 + static_cast<size_t>(r * cols + c)];
  EXPECT_EQ(slurp(e.dir / "out" / "t.bin"), want);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].crc32, ::crc32(0, reinterpret_cast<const Bytef *>(want.data()), static_cast<uInt>(want.size())));
}

// The executor in phases: files created and written in disjoint subsets (as separate processes or
// nodes would), then one finish and commit, give the same bytes and digests as one execute().
TEST(Executor, PhasesOverFileSubsets) {
  Env e;
  const int nfiles = 4;
  std::vector<std::pair<uint64_t, uint64_t>> want;
  for (int f = 0; f < nfiles; ++f) {
    const int64_t rows = 1200 + 100 * f, cols = 1000;
    const uint64_t at = static_cast<uint64_t>(f) * 70000 + 5;
    int32_t t = e.tensor(rows, cols, at);
    OutFile of;
    of.relpath = "f" + std::to_string(f) + ".bin";
    of.size = static_cast<uint64_t>(rows * cols) + 4;
    of.blobs.push_back({of.size - 4, "END!"});
    e.g.layout.files.push_back(of);
    e.g.layout.regions.push_back({f, 0, t, CKH_REGION_CRC32, static_cast<uint64_t>(rows * cols)});
    want.push_back({at, static_cast<uint64_t>(rows * cols)});
  }
  ExecOptions opt;
  opt.threads = 2;
  opt.max_memory = 1 << 20;
  opt.progress = 0;
  std::vector<ckh_region_digest_t> whole, parts;
  execute(e.g, (e.dir / "whole").string(), opt, [&](const std::vector<ckh_region_digest_t> &d, ckh_patcher_t *) { whole = d; });
  {
    Execution x(e.g, (e.dir / "parts").string(), opt);
    EXPECT_GT(x.task_count(), static_cast<size_t>(nfiles));
    EXPECT_THROW(x.run({0}), Error);  // not created yet
    x.create({3, 1});
    x.create({0, 2});
    const ExecStats a = x.run({3, 1});
    EXPECT_THROW(x.run({1}), Error);     // written already
    EXPECT_THROW(x.digests(), Error);    // files 0 and 2 not written yet
    EXPECT_THROW(x.commit(), Error);     // not finished
    const ExecStats b = x.run({2, 0});
    EXPECT_EQ(a.bytes + b.bytes, want[0].second + want[1].second + want[2].second + want[3].second);
    x.finish([&](const std::vector<ckh_region_digest_t> &d, ckh_patcher_t *p) {
      parts = d;
      // The 1.1 counted accessor gives the same digests as the array.
      ASSERT_TRUE(CKH_HAS_FIELD(p, ckh_patcher_t, digest));
      ASSERT_EQ(p->digest_count(p), d.size());
      for (uint64_t i = 0; i < d.size(); ++i) {
        ckh_region_digest_t g{};
        g.struct_size = sizeof g;
        ASSERT_EQ(p->digest(p, i, &g), CKH_OK);
        EXPECT_EQ(g.crc32, d[i].crc32);
        EXPECT_EQ(g.size, d[i].size);
        EXPECT_EQ(g.region, d[i].region);
      }
      ckh_region_digest_t g{};
      g.struct_size = sizeof g;
      EXPECT_EQ(p->digest(p, d.size(), &g), CKH_E_NOT_FOUND);
    });
    EXPECT_TRUE(fs::exists(x.temp_dir()));
    x.commit();
  }
  ASSERT_EQ(parts.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(parts[i].crc32, whole[i].crc32) << i;
    EXPECT_EQ(parts[i].size, whole[i].size) << i;
  }
  for (int f = 0; f < nfiles; ++f) {
    const std::string name = "f" + std::to_string(f) + ".bin";
    EXPECT_EQ(slurp(e.dir / "parts" / name), slurp(e.dir / "whole" / name)) << name;
    EXPECT_EQ(slurp(e.dir / "parts" / name), e.data.substr(want[static_cast<size_t>(f)].first, want[static_cast<size_t>(f)].second) + "END!");
  }
  // An execution dropped before its commit leaves nothing behind.
  std::string tmp;
  {
    Execution x(e.g, (e.dir / "dropped").string(), opt);
    x.create();
    x.run({0});
    tmp = x.temp_dir();
    EXPECT_TRUE(fs::exists(tmp));
  }
  EXPECT_FALSE(fs::exists(tmp));
  EXPECT_FALSE(fs::exists(e.dir / "dropped"));
}
