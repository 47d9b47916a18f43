// The C99 format-npy plugin through its C ABI, without the host: dlopen ckh-format-npy.so, hand it a
// fake host table, open directories written by NumPy, and plan outputs with a fake layout builder whose
// files are then loaded back by NumPy.
#include <dlfcn.h>

#include <cstring>
#include <map>

#include <nlohmann/json.hpp>

#include <ckhost/ckh.h>

#include "npy_fixtures.hpp"
#include "npy_header.h"

using nlohmann::json;
using npytest::fixtures;
using npytest::slurp;
using npytest::spit;
namespace fs = std::filesystem;

namespace {

std::string g_error;
ckh_status g_code = CKH_OK;

ckh_host_t make_host() {
  ckh_host_t h{};
  h.struct_size = sizeof h;
  h.abi_major = CKH_ABI_MAJOR;
  h.abi_minor = CKH_ABI_MINOR;
  h.host_name = "fake";
  h.host_version = "0";
  h.log = [](const ckh_host_t *, int32_t, const char *) {};
  h.set_error = [](const ckh_host_t *, ckh_status c, const char *m) {
    g_code = c;
    g_error = m ? m : "";
  };
  h.alloc = [](const ckh_host_t *, uint64_t n, uint64_t) -> void * { return malloc(n); };
  h.free = [](const ckh_host_t *, void *p) { free(p); };
  h.get_extension = [](const ckh_host_t *, const char *) -> const void * { return nullptr; };
  h.is_cancelled = [](const ckh_host_t *) -> uint8_t { return 0; };
  return h;
}

const ckh_plugin_t *g_plugin;
ckh_host_t g_host_table;

const ckh_plugin_t *plugin() {
  if (!g_plugin) {
    void *lib = dlopen(CKH_NPY_PLUGIN, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return nullptr;
    auto entry = reinterpret_cast<ckh_plugin_entry_fn>(dlsym(lib, CKH_ENTRY_SYMBOL));
    if (!entry) return nullptr;
    g_host_table = make_host();
    g_plugin = entry();
    if (g_plugin && g_plugin->init(&g_host_table) != CKH_OK) g_plugin = nullptr;
  }
  return g_plugin;
}

const ckh_component_t *component(int32_t kind) {
  const ckh_plugin_t *p = plugin();
  for (uint32_t i = 0; p && i < p->component_count; ++i)
    if (p->components[i]->kind == kind && std::string(p->components[i]->id) == "npy") return p->components[i];
  return nullptr;
}
const ckh_reader_class_t *reader_class() {
  return static_cast<const ckh_reader_class_t *>(component(CKH_COMPONENT_READER)->vtable);
}
const ckh_writer_class_t *writer_class() {
  return static_cast<const ckh_writer_class_t *>(component(CKH_COMPONENT_WRITER)->vtable);
}

struct Reader {
  ckh_reader_t *r = nullptr;
  ckh_status st = CKH_OK;
  explicit Reader(const fs::path &p) {
    g_error.clear();
    st = reader_class()->open(reader_class(), p.c_str(), "{}", &r);
  }
  ~Reader() {
    if (r) r->destroy(r);
  }
};

ckh_tensor_info_t info(const ckh_reader_t *r, uint64_t i) {
  ckh_tensor_info_t t{};
  t.struct_size = sizeof t;
  EXPECT_EQ(r->tensor_info(r, i, &t), CKH_OK);
  return t;
}

ckh_piece_t piece(const ckh_reader_t *r, uint64_t i) {
  ckh_piece_t p{};
  p.struct_size = sizeof p;
  EXPECT_EQ(r->piece(r, i, 0, &p), CKH_OK);
  return p;
}

fs::path copy_of_reader_dir(const char *tag) {
  const fs::path d = npytest::make_temp_dir(tag);
  fs::copy(fixtures() / "reader", d, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
  return d;
}

struct TempDir {
  fs::path p;
  explicit TempDir(fs::path d) : p(std::move(d)) {}
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(p, ec);
  }
};

}  // namespace

TEST(NpyPlugin, Descriptor) {
  const ckh_plugin_t *p = plugin();
  ASSERT_NE(p, nullptr) << dlerror();
  EXPECT_EQ(std::string(p->id), "org.ckhost.format.npy");
  EXPECT_EQ(p->abi_major, static_cast<uint32_t>(CKH_ABI_MAJOR));
  ASSERT_NE(component(CKH_COMPONENT_READER), nullptr);
  ASSERT_NE(component(CKH_COMPONENT_WRITER), nullptr);
  EXPECT_EQ(json::parse(component(CKH_COMPONENT_READER)->capabilities_json),
            json::parse(R"({"container":"npy","layout":"hf","extensions":[".npy"]})"));
  EXPECT_EQ(json::parse(component(CKH_COMPONENT_WRITER)->capabilities_json),
            json::parse(R"({"container":"npy","layout":"hf"})"));
}

TEST(NpyPlugin, Probe) {
  NPY_NEED_FIXTURES();
  ASSERT_NE(plugin(), nullptr);
  auto probe = [](const fs::path &p) { return reader_class()->probe(reader_class(), p.c_str()); };
  EXPECT_EQ(probe(fixtures() / "reader"), 60);
  EXPECT_EQ(probe(fixtures() / "cases"), 60);
  EXPECT_EQ(probe(fixtures() / "reader" / "w.npy"), 0);  // a file, not a directory
  EXPECT_EQ(probe(fixtures() / "nope"), 0);
  EXPECT_EQ(probe(fixtures()), 0);  // no .npy at its top level
  EXPECT_EQ(reader_class()->probe(reader_class(), nullptr), 0);
  TempDir d(copy_of_reader_dir("probe"));
  spit(d.p / "model.safetensors", "x");
  EXPECT_EQ(probe(d.p), 0);  // a safetensors checkpoint with extra .npy files is not ours
  EXPECT_EQ(g_error, "");
}

TEST(NpyPlugin, ReaderCatalog) {
  NPY_NEED_FIXTURES();
  ASSERT_NE(plugin(), nullptr);
  const json manifest = json::parse(slurp(fixtures() / "reader.json"));
  Reader rd(fixtures() / "reader");
  ASSERT_EQ(rd.st, CKH_OK) << g_error;
  const ckh_reader_t *r = rd.r;
  ASSERT_EQ(r->tensor_count(r), manifest.size());
  ASSERT_EQ(r->file_count(r), manifest.size());
  EXPECT_EQ(r->tensor_annot, nullptr);
  const std::string dir = fs::canonical(fixtures() / "reader").string();
  std::string prev;
  for (uint64_t i = 0; i < r->tensor_count(r); ++i) {
    const ckh_tensor_info_t t = info(r, i);
    const std::string name = t.name;
    SCOPED_TRACE(name);
    EXPECT_LT(prev, name);  // sorted
    prev = name;
    ASSERT_TRUE(manifest.contains(name));
    const json &m = manifest[name];
    EXPECT_EQ(std::vector<int64_t>(t.shape, t.shape + t.ndim), m["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(t.dtype == CKH_DT_F32, m["descr"] == "<f4");
    EXPECT_EQ(std::string(r->file_path(r, static_cast<uint32_t>(i))), dir + "/" + name + ".npy");
    EXPECT_EQ(r->piece_count(r, i), 1u);
    const ckh_piece_t p = piece(r, i);
    EXPECT_EQ(p.file, i);
    EXPECT_EQ(p.byte_offset, m["offset"].get<uint64_t>());
    for (uint32_t d = 0; d < CKH_MAX_DIMS; ++d) {
      EXPECT_EQ(p.offset[d], 0);
      EXPECT_EQ(p.size[d], d < t.ndim ? t.shape[d] : 0);
    }
    int64_t expect = 1;
    for (uint32_t d = 0; d < CKH_MAX_DIMS; ++d) {
      if (m["fortran"].get<bool>() && d < t.ndim) {
        EXPECT_EQ(p.stride[d], expect) << d;
        expect *= t.shape[d];
      } else {
        EXPECT_EQ(p.stride[d], 0) << d;
      }
    }
  }
  EXPECT_EQ(r->file_path(r, 999), nullptr);
  ckh_tensor_info_t t{};
  t.struct_size = sizeof t;
  EXPECT_EQ(r->tensor_info(r, 999, &t), CKH_E_NOT_FOUND);
  ckh_piece_t p{};
  p.struct_size = sizeof p;
  EXPECT_EQ(r->piece(r, 0, 1, &p), CKH_E_NOT_FOUND);
}

TEST(NpyPlugin, FortranPiecesAddressTheRightElements) {
  NPY_NEED_FIXTURES();
  ASSERT_NE(plugin(), nullptr);
  Reader rd(fixtures() / "reader");
  ASSERT_EQ(rd.st, CKH_OK) << g_error;
  int checked = 0;
  for (uint64_t i = 0; i < rd.r->tensor_count(rd.r); ++i) {
    const ckh_tensor_info_t t = info(rd.r, i);
    const std::string name = t.name;
    if (name != "fortran" && name != "fortran2d" && name != "w") continue;
    const ckh_piece_t p = piece(rd.r, i);
    const std::string bytes = slurp(rd.r->file_path(rd.r, p.file));
    const uint32_t item = ckh_dtype_size(t.dtype);
    bool contiguous = true;
    for (uint32_t d = 0; d < t.ndim; ++d) contiguous &= p.stride[d] == 0;
    // Walk every element in C order; the value stored is its C-order linear index.
    int64_t numel = 1;
    for (uint32_t d = 0; d < t.ndim; ++d) numel *= t.shape[d];
    for (int64_t lin = 0; lin < numel; ++lin) {
      int64_t rem = lin, off = 0, cstride = 1;
      for (int d = static_cast<int>(t.ndim) - 1; d >= 0; --d) {
        const int64_t idx = rem % t.shape[d];
        rem /= t.shape[d];
        off += idx * (contiguous ? cstride : p.stride[d]);
        cstride *= t.shape[d];
      }
      const char *at = bytes.data() + p.byte_offset + static_cast<uint64_t>(off) * item;
      double v;
      if (t.dtype == CKH_DT_I64) {
        int64_t x;
        std::memcpy(&x, at, 8);
        v = static_cast<double>(x);
      } else {
        float x;
        std::memcpy(&x, at, 4);
        v = x;
      }
      ASSERT_EQ(v, static_cast<double>(lin)) << name << " element " << lin;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 3);
}

TEST(NpyPlugin, ReaderMetadata) {
  NPY_NEED_FIXTURES();
  ASSERT_NE(plugin(), nullptr);
  Reader rd(fixtures() / "reader");
  ASSERT_EQ(rd.st, CKH_OK) << g_error;
  const json m = json::parse(rd.r->metadata_json(rd.r));
  const std::string dir = fs::canonical(fixtures() / "reader").string();
  EXPECT_EQ(m["format"], "npy");
  EXPECT_EQ(m["layout"], "hf");
  EXPECT_EQ(m["config"], json::parse(slurp(fixtures() / "reader" / "config.json")));
  EXPECT_EQ(m["config"]["name"], "caf\xc3\xa9 \"q\"");
  EXPECT_EQ(m["side_files"], json::parse(R"([{"name":"README.md","path":")" + dir + R"(/README.md"},
      {"name":"config.json","path":")" + dir + R"(/config.json"},
      {"name":"tokenizer.json","path":")" + dir + R"(/tokenizer.json"}])"));
  ASSERT_EQ(m["skipped"].size(), 1u);
  EXPECT_EQ(m["skipped"][0]["name"], "sub");

  // No config.json: "config" is null.
  TempDir d(copy_of_reader_dir("nocfg"));
  fs::remove(d.p / "config.json");
  Reader r2(d.p);
  ASSERT_EQ(r2.st, CKH_OK) << g_error;
  EXPECT_TRUE(json::parse(r2.r->metadata_json(r2.r))["config"].is_null());
  // A side file whose name is not UTF-8 is skipped and says so (the metadata stays valid JSON).
  spit(d.p / "bad\xff.txt", "x");
  Reader r3(d.p);
  ASSERT_EQ(r3.st, CKH_OK) << g_error;
  const json m3 = json::parse(r3.r->metadata_json(r3.r));
  EXPECT_EQ(m3["side_files"].size(), 2u);
  EXPECT_EQ(m3["skipped"].size(), 2u);
}

TEST(NpyPlugin, ReaderErrorsNameTheFile) {
  NPY_NEED_FIXTURES();
  ASSERT_NE(plugin(), nullptr);
  for (const char *bad : {"bad_big_endian", "bad_header_past_eof", "bad_data_truncated", "bad_shape_overflow",
                          "bad_dict_key", "bad_empty"}) {
    SCOPED_TRACE(bad);
    TempDir d(copy_of_reader_dir("bad"));
    fs::copy_file(fixtures() / "cases" / (std::string(bad) + ".npy"), d.p / "zz.npy");
    Reader rd(d.p);
    EXPECT_EQ(rd.st, CKH_E_FORMAT);
    EXPECT_EQ(rd.r, nullptr);
    const std::string file = fs::canonical(d.p).string() + "/zz.npy: ";
    EXPECT_EQ(g_error.rfind(file, 0), 0u) << g_error;
    EXPECT_EQ(g_error.find('\n'), std::string::npos);
  }
  TempDir d(copy_of_reader_dir("cfg"));
  const std::string cfg = fs::canonical(d.p).string() + "/config.json";
  spit(d.p / "config.json", "{\"a\": 1,}");
  {
    Reader rd(d.p);
    EXPECT_EQ(rd.st, CKH_E_FORMAT);
    EXPECT_EQ(g_error, cfg + ": not valid JSON (expected a member name at byte 8)");
  }
  spit(d.p / "config.json", "[1, 2]");
  {
    Reader rd(d.p);
    EXPECT_EQ(rd.st, CKH_E_FORMAT);
    EXPECT_EQ(g_error, cfg + ": not a JSON object");
  }
  {
    Reader rd(fixtures() / "reader" / "w.npy");
    EXPECT_NE(rd.st, CKH_OK);
    EXPECT_NE(g_error.find("not a directory"), std::string::npos) << g_error;
  }
  {
    Reader rd(fixtures() / "missing");
    EXPECT_EQ(rd.st, CKH_E_NOT_FOUND);
  }
  {
    Reader rd(fixtures());
    EXPECT_EQ(rd.st, CKH_E_NOT_FOUND);
    EXPECT_NE(g_error.find("no .npy files"), std::string::npos) << g_error;
  }
}

// ---- writer through a fake layout builder --------------------------------------------------------

namespace {

struct In {
  std::string name;
  ckh_dtype dtype;
  std::vector<int64_t> shape;
  std::string data;
};

struct Plan {
  std::vector<In> inputs;
  struct File {
    std::string rel;
    std::string bytes;
    std::string copy_from;
  };
  std::vector<File> files;
  int regions = 0;
};

Plan &P(const void *ctx) { return *static_cast<Plan *>(const_cast<void *>(ctx)); }

ckh_status lb_fail(ckh_status c, const std::string &m) {
  g_code = c;
  g_error = m;
  return c;
}

struct FakeLayout {
  Plan plan;
  ckh_expr_builder_t eb{};
  ckh_layout_builder_t lb{};
  FakeLayout() {
    eb.struct_size = sizeof eb;
    eb.ctx = &plan;
    eb.input_count = [](const ckh_expr_builder_t *b) -> uint64_t { return P(b->ctx).inputs.size(); };
    eb.input_info = [](const ckh_expr_builder_t *b, uint64_t i, ckh_tensor_info_t *t) -> ckh_status {
      const In &x = P(b->ctx).inputs.at(i);
      t->name = x.name.c_str();
      t->dtype = x.dtype;
      t->ndim = static_cast<uint32_t>(x.shape.size());
      for (size_t d = 0; d < x.shape.size(); ++d) t->shape[d] = x.shape[d];
      return CKH_OK;
    };
    eb.input_at = [](ckh_expr_builder_t *b, uint64_t i) -> ckh_expr {
      return i < P(b->ctx).inputs.size() ? static_cast<ckh_expr>(i) : -1;
    };
    lb.struct_size = sizeof lb;
    lb.ctx = &plan;
    lb.expr = &eb;
    lb.add_file = [](ckh_layout_builder_t *l, const char *rel, uint64_t size) -> int32_t {
      for (const auto &f : P(l->ctx).files)
        if (f.rel == rel) return lb_fail(CKH_E_INVALID_ARG, std::string("duplicate file ") + rel), -1;
      P(l->ctx).files.push_back({rel, std::string(size, '\0'), ""});
      return static_cast<int32_t>(P(l->ctx).files.size() - 1);
    };
    lb.put_bytes = [](ckh_layout_builder_t *l, int32_t f, uint64_t off, const void *d, uint64_t n) -> ckh_status {
      auto &b = P(l->ctx).files.at(static_cast<size_t>(f)).bytes;
      if (off + n > b.size()) return lb_fail(CKH_E_INVALID_ARG, "put_bytes past the end");
      std::memcpy(&b[off], d, n);
      return CKH_OK;
    };
    lb.put_tensor = [](ckh_layout_builder_t *l, int32_t f, uint64_t off, ckh_expr e, uint32_t) -> int32_t {
      auto &b = P(l->ctx).files.at(static_cast<size_t>(f)).bytes;
      const std::string &d = P(l->ctx).inputs.at(static_cast<size_t>(e)).data;
      if (off + d.size() != b.size()) return lb_fail(CKH_E_INVALID_ARG, "tensor does not end the file"), -1;
      std::memcpy(&b[off], d.data(), d.size());
      return P(l->ctx).regions++;
    };
    lb.add_small_file = [](ckh_layout_builder_t *l, const char *rel, const void *d, uint64_t n) -> ckh_status {
      P(l->ctx).files.push_back({rel, std::string(static_cast<const char *>(d), n), ""});
      return CKH_OK;
    };
    lb.copy_file = [](ckh_layout_builder_t *l, const char *src, const char *rel) -> ckh_status {
      if (!fs::exists(src)) return lb_fail(CKH_E_IO, std::string(src) + ": no such file");
      P(l->ctx).files.push_back({rel, slurp(src), src});
      return CKH_OK;
    };
  }
  const Plan::File *file(const std::string &rel) const {
    for (const auto &f : plan.files)
      if (f.rel == rel) return &f;
    return nullptr;
  }
  ckh_status run(const std::string &meta) {
    ckh_writer_t *w = nullptr;
    g_error.clear();
    ckh_status st = writer_class()->create(writer_class(), "{}", &w);
    if (st != CKH_OK) return st;
    st = w->plan(w, meta.c_str(), &lb);
    if (st == CKH_OK && w->finish) st = w->finish(w, nullptr, 0, nullptr);
    w->destroy(w);
    return st;
  }
};

template <class T>
std::string raw(std::initializer_list<T> v) {
  return std::string(reinterpret_cast<const char *>(std::data(v)), v.size() * sizeof(T));
}

}  // namespace

TEST(NpyPlugin, WriterFilesLoadInNumpy) {
  NPY_NEED_FIXTURES();
  ASSERT_NE(plugin(), nullptr);
  FakeLayout fl;
  fl.plan.inputs = {
      {"w", CKH_DT_F32, {3, 4}, raw<float>({0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11.5f})},
      {"half", CKH_DT_F16, {2}, raw<uint16_t>({0x3C00, 0xC000})},
      {"count", CKH_DT_I64, {}, raw<int64_t>({-42})},
      {"mask", CKH_DT_BOOL, {3}, std::string("\1\0\1", 3)},
      {"empty", CKH_DT_U8, {0, 5}, ""},
      {"model.layers.0.mlp.up_proj.weight", CKH_DT_I32, {2, 1}, raw<int32_t>({7, -7})},
  };
  ASSERT_EQ(fl.run(R"({"format":"x","layout":"hf","config":null,"side_files":[]})"), CKH_OK) << g_error;
  ASSERT_EQ(fl.plan.files.size(), fl.plan.inputs.size());  // no config: no config.json
  EXPECT_EQ(fl.plan.regions, static_cast<int>(fl.plan.inputs.size()));
  TempDir out(npytest::make_temp_dir("npyout"));
  for (const auto &f : fl.plan.files) {
    const npytest::fs::path p = out.p / f.rel;
    spit(p, f.bytes);
    // Our own parser reads what we wrote.
    npy_header h;
    char err[256];
    ASSERT_EQ(npy_parse_header(reinterpret_cast<const unsigned char *>(f.bytes.data()), f.bytes.size(), f.bytes.size(),
                               &h, err, sizeof err),
              0)
        << f.rel << ": " << err;
    EXPECT_EQ(h.data_offset % 64, 0u);
  }
  // NumPy reads them too, with the dtype, shape and bytes we gave.
  const std::string script =
      "import json,os,sys,numpy as np\n"
      "d=sys.argv[1]\n"
      "print(json.dumps({f[:-4]: [a.dtype.str, list(a.shape), a.tobytes().hex()] for f in sorted(os.listdir(d))"
      " for a in [np.load(os.path.join(d, f))]}))\n";
  const std::string py = out.p.string() + ".py", res = out.p.string() + ".json";
  spit(py, script);
  const std::string cmd = std::string(CKH_NUMPY_PYTHON) + " " + py + " " + out.p.string() + " > " + res;
  const int rc = std::system(cmd.c_str());
  const std::string result = slurp(res);
  fs::remove(py);
  fs::remove(res);
  ASSERT_EQ(rc, 0) << cmd;
  const json got = json::parse(result);
  const std::map<ckh_dtype, std::string> descr = {{CKH_DT_F32, "<f4"}, {CKH_DT_F16, "<f2"}, {CKH_DT_I64, "<i8"},
                                                  {CKH_DT_BOOL, "|b1"}, {CKH_DT_U8, "|u1"}, {CKH_DT_I32, "<i4"}};
  ASSERT_EQ(got.size(), fl.plan.inputs.size());
  for (const auto &in : fl.plan.inputs) {
    SCOPED_TRACE(in.name);
    ASSERT_TRUE(got.contains(in.name));
    EXPECT_EQ(got[in.name][0], descr.at(in.dtype));
    EXPECT_EQ(got[in.name][1].get<std::vector<int64_t>>(), in.shape);
    std::string hex;
    for (unsigned char c : in.data) {
      char b[3];
      std::snprintf(b, sizeof b, "%02x", c);
      hex += b;
    }
    EXPECT_EQ(got[in.name][2], hex);
  }
}

TEST(NpyPlugin, WriterSideFilesAndConfig) {
  NPY_NEED_FIXTURES();
  ASSERT_NE(plugin(), nullptr);
  const std::string dir = fs::canonical(fixtures() / "reader").string();
  const In one{"x", CKH_DT_F32, {1}, raw<float>({1})};
  const std::string side = R"("side_files":[{"name":"config.json","path":")" + dir + R"(/config.json"},
      {"name":"tokenizer.json","path":")" + dir + R"(/tokenizer.json"},{"name":"x.npy","path":")" + dir + R"(/w.npy"}])";
  {  // config unchanged: config.json is copied, a side file named like a tensor file is not
    FakeLayout fl;
    fl.plan.inputs = {one};
    ASSERT_EQ(fl.run(R"({"config":{"model_type":"llama"},)" + side + "}"), CKH_OK) << g_error;
    ASSERT_EQ(fl.plan.files.size(), 3u);
    ASSERT_NE(fl.file("config.json"), nullptr);
    EXPECT_EQ(fl.file("config.json")->copy_from, dir + "/config.json");
    EXPECT_EQ(fl.file("tokenizer.json")->copy_from, dir + "/tokenizer.json");
    EXPECT_EQ(fl.file("x.npy")->copy_from, "");
  }
  {  // config changed (e.g. a cast): config.json is written from the metadata
    FakeLayout fl;
    fl.plan.inputs = {one};
    ASSERT_EQ(fl.run(R"({"config":{"model_type":"llama","torch_dtype":"float32"},"config_modified":true,)" + side + "}"),
              CKH_OK)
        << g_error;
    ASSERT_NE(fl.file("config.json"), nullptr);
    EXPECT_EQ(fl.file("config.json")->copy_from, "");
    EXPECT_EQ(json::parse(fl.file("config.json")->bytes), json::parse(R"({"model_type":"llama","torch_dtype":"float32"})"));
    EXPECT_EQ(fl.file("config.json")->bytes.back(), '\n');
    EXPECT_NE(fl.file("tokenizer.json"), nullptr);
  }
  {  // a config without a file (synthesised, another reader): written
    FakeLayout fl;
    fl.plan.inputs = {one};
    ASSERT_EQ(fl.run(R"({"config":{"hidden_size":64}})"), CKH_OK) << g_error;
    ASSERT_NE(fl.file("config.json"), nullptr);
    EXPECT_EQ(fl.file("config.json")->bytes, "{\"hidden_size\":64}\n");
  }
  {  // malformed metadata
    FakeLayout fl;
    fl.plan.inputs = {one};
    EXPECT_EQ(fl.run(R"({"side_files":[{"name":"a"}]})"), CKH_E_INVALID_ARG);
    EXPECT_EQ(g_error, R"(npy writer: metadata side_files entry {"name":"a"} needs a "name" and a "path")");
  }
  {
    FakeLayout fl;
    fl.plan.inputs = {one};
    EXPECT_EQ(fl.run("{oops"), CKH_E_INVALID_ARG);
    EXPECT_NE(g_error.find("metadata is not valid JSON"), std::string::npos) << g_error;
  }
}

TEST(NpyPlugin, WriterRefusals) {
  ASSERT_NE(plugin(), nullptr);
  auto refuse = [](const In &in) {
    FakeLayout fl;
    fl.plan.inputs = {{"ok", CKH_DT_F32, {1}, raw<float>({1})}, in};
    EXPECT_NE(fl.run("{}"), CKH_OK);
    return g_error;
  };
  EXPECT_EQ(refuse({"model.norm.weight", CKH_DT_BF16, {2}, std::string(4, '\0')}),
            "npy cannot store BF16 (tensor model.norm.weight): cast with --dtype f32");
  EXPECT_EQ(refuse({"q", CKH_DT_F8_E4M3FN, {2}, std::string(2, '\0')}),
            "npy cannot store F8_E4M3 (tensor q): cast with --dtype f32");
  EXPECT_EQ(refuse({"a/b", CKH_DT_F32, {1}, raw<float>({1})}),
            "npy cannot store tensor 'a/b': one file per tensor, named after it (no '/', no leading '.')");
  EXPECT_NE(refuse({".hidden", CKH_DT_F32, {1}, raw<float>({1})}).find("no leading '.'"), std::string::npos);
  EXPECT_NE(refuse({std::string(300, 'n'), CKH_DT_F32, {1}, raw<float>({1})}).find("longer than a file name"),
            std::string::npos);
}
