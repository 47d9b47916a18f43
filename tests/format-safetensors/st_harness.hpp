// st_harness.hpp — drives the built ckh-format-safetensors.so through its C ABI only, the way the host
// does: dlopen + ckh_plugin_entry, init with a minimal fake host whose set_error records the message,
// readers through their vtable, and writers through a fake layout builder that checks the layout
// (files, bounds, no overlaps) and assembles the output files from given input bytes.
#pragma once
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include <ckhost/ckh.h>

namespace sth {

// ---- fake host ----------------------------------------------------------------------------------
inline thread_local std::string g_error;
inline thread_local ckh_status g_code = CKH_OK;

inline void host_log(const ckh_host_t *, int32_t, const char *) {}
inline void host_set_error(const ckh_host_t *, ckh_status code, const char *msg) {
  g_code = code;
  g_error = msg ? msg : "";
}
inline void *host_alloc(const ckh_host_t *, uint64_t size, uint64_t align) {
  if (align < 16) align = 16;
  return std::aligned_alloc(align, (size + align - 1) / align * align);
}
inline void host_free(const ckh_host_t *, void *p) { std::free(p); }
inline const void *host_ext(const ckh_host_t *, const char *) { return nullptr; }
inline uint8_t host_cancelled(const ckh_host_t *) { return 0; }

inline const ckh_host_t *fake_host() {
  static ckh_host_t h = [] {
    ckh_host_t x{};
    x.struct_size = sizeof x;
    x.abi_major = CKH_ABI_MAJOR;
    x.abi_minor = CKH_ABI_MINOR;
    x.host_name = "st-test";
    x.host_version = "0";
    x.log = host_log;
    x.set_error = host_set_error;
    x.alloc = host_alloc;
    x.free = host_free;
    x.get_extension = host_ext;
    x.is_cancelled = host_cancelled;
    x.kernels = nullptr;
    return x;
  }();
  return &h;
}

inline void clear_error() {
  g_error.clear();
  g_code = CKH_OK;
}

// ---- the plugin ----------------------------------------------------------------------------------
struct Plugin {
  void *so = nullptr;
  const ckh_plugin_t *desc = nullptr;
  const ckh_component_t *reader_comp = nullptr;
  const ckh_component_t *writer_comp = nullptr;
  const ckh_reader_class_t *reader = nullptr;
  const ckh_writer_class_t *writer = nullptr;
};

// Loads the plugin once (path from the CKH_ST_PLUGIN environment variable, else the compiled-in one).
inline const Plugin &plugin() {
  static Plugin p = [] {
    Plugin x;
    const char *env = std::getenv("CKH_ST_PLUGIN");
#ifdef CKH_ST_PLUGIN_PATH
    const char *path = env ? env : CKH_ST_PLUGIN_PATH;
#else
    const char *path = env;
#endif
    if (!path) throw std::runtime_error("set CKH_ST_PLUGIN to the path of ckh-format-safetensors.so");
    x.so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!x.so) throw std::runtime_error(std::string("dlopen: ") + dlerror());
    auto entry = reinterpret_cast<ckh_plugin_entry_fn>(dlsym(x.so, CKH_ENTRY_SYMBOL));
    if (!entry) throw std::runtime_error("no ckh_plugin_entry");
    x.desc = entry();
    if (!x.desc || x.desc->abi_major != CKH_ABI_MAJOR) throw std::runtime_error("bad descriptor");
    if (x.desc->init(fake_host()) != CKH_OK) throw std::runtime_error("init failed: " + g_error);
    for (uint32_t i = 0; i < x.desc->component_count; ++i) {
      const ckh_component_t *c = x.desc->components[i];
      if (c->kind == CKH_COMPONENT_READER) {
        x.reader_comp = c;
        x.reader = static_cast<const ckh_reader_class_t *>(c->vtable);
      } else if (c->kind == CKH_COMPONENT_WRITER) {
        x.writer_comp = c;
        x.writer = static_cast<const ckh_writer_class_t *>(c->vtable);
      }
    }
    return x;
  }();
  return p;
}

// ---- reader --------------------------------------------------------------------------------------
struct TensorRec {
  std::string name;
  ckh_dtype dtype;
  std::vector<int64_t> shape;
  uint32_t npieces;
  ckh_piece_t piece;  // the first piece
};

struct Catalog {
  ckh_status status = CKH_OK;
  std::string error;
  std::vector<std::string> files;
  std::vector<TensorRec> tensors;
  std::string metadata;
  const TensorRec *find(const std::string &n) const {
    for (const auto &t : tensors)
      if (t.name == n) return &t;
    return nullptr;
  }
};

inline Catalog open_catalog(const std::string &path, const char *options = "{}") {
  Catalog c;
  const Plugin &p = plugin();
  clear_error();
  ckh_reader_t *r = reinterpret_cast<ckh_reader_t *>(uintptr_t{1});
  c.status = p.reader->open(p.reader, path.c_str(), options, &r);
  if (c.status != CKH_OK) {
    c.error = g_error;
    if (r != nullptr) c.error += " [reader not NULL on failure]";
    return c;
  }
  for (uint32_t i = 0; i < r->file_count(r); ++i) c.files.push_back(r->file_path(r, i));
  for (uint64_t i = 0; i < r->tensor_count(r); ++i) {
    TensorRec t{};
    ckh_tensor_info_t ti{};
    ti.struct_size = sizeof ti;
    if (r->tensor_info(r, i, &ti) != CKH_OK) throw std::runtime_error("tensor_info: " + g_error);
    t.name = ti.name;
    t.dtype = ti.dtype;
    t.shape.assign(ti.shape, ti.shape + ti.ndim);
    t.npieces = r->piece_count(r, i);
    t.piece = ckh_piece_t{};
    t.piece.struct_size = sizeof t.piece;
    if (t.npieces && r->piece(r, i, 0, &t.piece) != CKH_OK) throw std::runtime_error("piece: " + g_error);
    c.tensors.push_back(std::move(t));
  }
  c.metadata = r->metadata_json(r);
  r->destroy(r);
  return c;
}

// ---- writer --------------------------------------------------------------------------------------
struct Input {
  std::string name;
  ckh_dtype dtype;
  std::vector<int64_t> shape;
  std::string bytes;  // row-major, dtype-sized elements
};

struct OutFile {
  std::string relpath;
  uint64_t size = 0;
  std::string data;       // assembled content (laid-out and small files)
  std::string copy_from;  // copy_file source, else empty
  bool small = false;
  struct Span {
    uint64_t off, len;
    int64_t tensor;  // input index, -1 for literal bytes
  };
  std::vector<Span> spans;
};

struct Layout {
  ckh_status status = CKH_OK;
  std::string error;
  std::vector<OutFile> files;
  std::vector<std::string> problems;  // layout rule violations found by the fake builder
  const OutFile *find(const std::string &rel) const {
    for (const auto &f : files)
      if (f.relpath == rel) return &f;
    return nullptr;
  }
};

struct FakeBuilder {
  ckh_layout_builder_t lb{};
  ckh_expr_builder_t eb{};
  const std::vector<Input> *inputs = nullptr;
  Layout *out = nullptr;

  static FakeBuilder &self(const ckh_layout_builder_t *l) { return *static_cast<FakeBuilder *>(l->ctx); }
  static FakeBuilder &selfe(const ckh_expr_builder_t *b) { return *static_cast<FakeBuilder *>(b->ctx); }
  static ckh_status err(ckh_status c, const std::string &m) {
    host_set_error(nullptr, c, m.c_str());
    return c;
  }
  bool declared(const std::string &rel) const {
    for (const auto &f : out->files)
      if (f.relpath == rel) return true;
    return false;
  }

  FakeBuilder(const std::vector<Input> &in, Layout &o) : inputs(&in), out(&o) {
    eb.struct_size = sizeof eb;
    eb.ctx = this;
    eb.input_count = [](const ckh_expr_builder_t *b) -> uint64_t { return selfe(b).inputs->size(); };
    eb.input_info = [](const ckh_expr_builder_t *b, uint64_t i, ckh_tensor_info_t *t) -> ckh_status {
      const auto &in = *selfe(b).inputs;
      if (i >= in.size()) return err(CKH_E_NOT_FOUND, "input index");
      ckh_tensor_info_t v{};
      v.struct_size = sizeof v;
      v.name = in[i].name.c_str();
      v.dtype = in[i].dtype;
      v.ndim = static_cast<uint32_t>(in[i].shape.size());
      for (size_t d = 0; d < in[i].shape.size(); ++d) v.shape[d] = in[i].shape[d];
      *t = v;
      return CKH_OK;
    };
    eb.input_annot = nullptr;
    eb.find_input = [](const ckh_expr_builder_t *b, const char *n) -> int64_t {
      const auto &in = *selfe(b).inputs;
      for (size_t i = 0; i < in.size(); ++i)
        if (in[i].name == n) return static_cast<int64_t>(i);
      return -1;
    };
    eb.input = [](ckh_expr_builder_t *b, const char *n) -> ckh_expr {
      const int64_t i = b->find_input(b, n);
      if (i < 0) return err(CKH_E_NOT_FOUND, std::string("missing tensor ") + n), CKH_EXPR_ERROR;
      return static_cast<ckh_expr>(i);
    };
    eb.input_at = [](ckh_expr_builder_t *b, uint64_t i) -> ckh_expr {
      if (i >= selfe(b).inputs->size()) return err(CKH_E_NOT_FOUND, "input index"), CKH_EXPR_ERROR;
      return static_cast<ckh_expr>(i);
    };
    eb.info = [](const ckh_expr_builder_t *b, ckh_expr e, ckh_tensor_info_t *t) -> ckh_status {
      ckh_status s = b->input_info(b, static_cast<uint64_t>(e), t);
      t->name = nullptr;
      return s;
    };
    // slice/concat/... are never needed by this writer: left NULL so a call would crash the test.

    lb.struct_size = sizeof lb;
    lb.ctx = this;
    lb.expr = &eb;
    lb.add_file = [](ckh_layout_builder_t *l, const char *rel, uint64_t size) -> int32_t {
      FakeBuilder &s = self(l);
      if (s.declared(rel)) return err(CKH_E_INVALID_ARG, std::string("declared twice: ") + rel), -1;
      if (size > (1ull << 32)) return err(CKH_E_INVALID_ARG, "test file too large"), -1;
      OutFile f;
      f.relpath = rel;
      f.size = size;
      f.data.assign(size, '\0');
      s.out->files.push_back(std::move(f));
      return static_cast<int32_t>(s.out->files.size() - 1);
    };
    lb.put_bytes = [](ckh_layout_builder_t *l, int32_t fi, uint64_t off, const void *data, uint64_t len) -> ckh_status {
      FakeBuilder &s = self(l);
      if (fi < 0 || static_cast<size_t>(fi) >= s.out->files.size()) return err(CKH_E_INVALID_ARG, "bad file id");
      OutFile &f = s.out->files[fi];
      if (off > f.size || len > f.size - off) {
        s.out->problems.push_back("put_bytes outside " + f.relpath);
        return err(CKH_E_INVALID_ARG, "put_bytes outside file");
      }
      std::memcpy(&f.data[off], data, len);
      f.spans.push_back({off, len, -1});
      return CKH_OK;
    };
    lb.put_tensor = [](ckh_layout_builder_t *l, int32_t fi, uint64_t off, ckh_expr e, uint32_t) -> int32_t {
      FakeBuilder &s = self(l);
      if (fi < 0 || static_cast<size_t>(fi) >= s.out->files.size()) return err(CKH_E_INVALID_ARG, "bad file id"), -1;
      if (e < 0 || static_cast<size_t>(e) >= s.inputs->size()) return err(CKH_E_INVALID_ARG, "bad node"), -1;
      OutFile &f = s.out->files[fi];
      const Input &in = (*s.inputs)[e];
      const uint64_t len = in.bytes.size();
      if (off > f.size || len > f.size - off) {
        s.out->problems.push_back("put_tensor " + in.name + " outside " + f.relpath);
        return err(CKH_E_INVALID_ARG, "put_tensor outside file"), -1;
      }
      std::memcpy(&f.data[off], in.bytes.data(), len);
      f.spans.push_back({off, len, e});
      static int32_t region = 0;
      return region++;
    };
    lb.add_small_file = [](ckh_layout_builder_t *l, const char *rel, const void *data, uint64_t len) -> ckh_status {
      FakeBuilder &s = self(l);
      if (s.declared(rel)) return err(CKH_E_INVALID_ARG, std::string("declared twice: ") + rel);
      OutFile f;
      f.relpath = rel;
      f.size = len;
      f.small = true;
      f.data.assign(static_cast<const char *>(data), len);
      s.out->files.push_back(std::move(f));
      return CKH_OK;
    };
    lb.copy_file = [](ckh_layout_builder_t *l, const char *src, const char *rel) -> ckh_status {
      FakeBuilder &s = self(l);
      if (s.declared(rel)) return err(CKH_E_INVALID_ARG, std::string("declared twice: ") + rel);
      if (!src || src[0] != '/') return err(CKH_E_INVALID_ARG, "copy_file: source must be absolute");
      OutFile f;
      f.relpath = rel;
      f.copy_from = src;
      s.out->files.push_back(std::move(f));
      return CKH_OK;
    };
  }

  // Overlap check of the literal and tensor spans of each laid-out file.
  void check_overlaps() {
    for (auto &f : out->files) {
      auto sp = f.spans;
      std::sort(sp.begin(), sp.end(), [](const OutFile::Span &a, const OutFile::Span &b) { return a.off < b.off; });
      for (size_t i = 1; i < sp.size(); ++i)
        if (sp[i].len && sp[i - 1].len && sp[i].off < sp[i - 1].off + sp[i - 1].len)
          out->problems.push_back("overlapping regions in " + f.relpath);
    }
  }
};

inline Layout plan(const std::vector<Input> &inputs, const std::string &options, const std::string &metadata) {
  Layout out;
  const Plugin &p = plugin();
  clear_error();
  ckh_writer_t *w = nullptr;
  out.status = p.writer->create(p.writer, options.c_str(), &w);
  if (out.status != CKH_OK) {
    out.error = g_error;
    return out;
  }
  FakeBuilder fb(inputs, out);
  out.status = w->plan(w, metadata.c_str(), &fb.lb);
  if (out.status != CKH_OK) out.error = g_error;
  else fb.check_overlaps();
  if (out.status == CKH_OK && w->finish) out.problems.push_back("unexpected finish()");
  w->destroy(w);
  return out;
}

// Writes a planned layout to `dir` (which must exist); copy_file entries are copied.
inline void materialize(const Layout &l, const std::string &dir) {
  for (const auto &f : l.files) {
    std::string data = f.data;
    if (!f.copy_from.empty()) {
      std::ifstream in(f.copy_from, std::ios::binary);
      data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    std::ofstream o(dir + "/" + f.relpath, std::ios::binary);
    o.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!o) throw std::runtime_error("cannot write " + dir + "/" + f.relpath);
  }
}

}  // namespace sth
