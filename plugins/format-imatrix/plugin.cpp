// plugin.cpp — reader "imatrix-dat": llama.cpp's legacy importance matrix (imatrix.dat) as the tensors a GGUF
// imatrix has, so that `--quantize ggml --imatrix FILE` takes either: per entry NAME
//   NAME.in_sum2  F32 [nval]  the file's sums (bytes in place)
//   NAME.counts   I32 [1]     the file's ncall (bytes in place): the ggml quantizer divides by it as llama.cpp's
//                             quantize tool does for this format (sums / ncall, the sums themselves when ncall <= 0)
// Metadata: {"format": "imatrix-dat", "layout": "imatrix", "imatrix": {"legacy": true, "chunk_count", "datasets"}}.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "catalog.hpp"
#include "fd_read.hpp"
#include "imatrix_dat.hpp"

namespace {

using json = nlohmann::json;
using ckh::sdk::fail;
namespace fs = std::filesystem;

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int32_t probe(const ckh_reader_class_t *, const char *path) {
  try {
    std::error_code ec;
    if (!path || !fs::is_regular_file(path, ec)) return 0;
    Fd f;
    f.fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) return 0;
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) return 0;
    if (!ckh::imatrix::looks_like(ckh::plugins::fd_read_at(f.fd), static_cast<uint64_t>(st.st_size))) return 0;
    return fs::path(path).extension() == ".dat" ? 80 : 40;
  } catch (...) {
    return 0;
  }
}

ckh_status open_reader(const ckh_reader_class_t *, const char *path, const char *, ckh_reader_t **out) {
  *out = nullptr;
  return ckh::sdk::guard([&] {
    const std::string file = path ? path : "";
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) fail(CKH_E_NOT_FOUND, file + ": not a file (an imatrix.dat is one file)");
    Fd f;
    f.fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (f.fd < 0) fail(CKH_E_IO, file + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(f.fd, &st) != 0) fail(CKH_E_IO, file + ": cannot stat: " + std::strerror(errno));
    ckh::imatrix::File im;
    try {
      im = ckh::imatrix::parse(ckh::plugins::fd_read_at(f.fd), static_cast<uint64_t>(st.st_size));
    } catch (const std::runtime_error &e) {
      fail(CKH_E_FORMAT, file + ": not a legacy imatrix file: " + e.what());
    }
    auto cat = std::make_unique<ckh::plugins::Catalog>();
    cat->files.push_back(fs::absolute(file).string());
    auto add = [&](const std::string &name, ckh_dtype dt, int64_t n, uint64_t off) {
      ckh::plugins::CatTensor t;
      t.name = name;
      t.dtype = dt;
      t.shape = {n};
      ckh::plugins::CatPiece p;
      p.byte_offset = off;
      p.offset = {0};
      p.size = {n};
      t.pieces.push_back(std::move(p));
      cat->tensors.push_back(std::move(t));
    };
    for (const auto &e : im.entries) {
      add(e.name + ".in_sum2", CKH_DT_F32, e.nval, e.sums_offset);
      add(e.name + ".counts", CKH_DT_I32, 1, e.ncall_offset);
    }
    json info = {{"legacy", true}, {"datasets", im.dataset.empty() ? json::array() : json::array({im.dataset})}};
    if (im.chunk_count >= 0) info["chunk_count"] = im.chunk_count;
    cat->meta = json{{"format", "imatrix-dat"}, {"layout", "imatrix"}, {"config", nullptr}, {"side_files", json::array()},
                     {"imatrix", info}}.dump();
    *out = ckh::plugins::make_catalog_reader(std::move(cat));
  });
}

const ckh_reader_class_t kReader = {sizeof(ckh_reader_class_t), 0, probe, open_reader};
const ckh_component_t kReaderComp = {
    sizeof(ckh_component_t), CKH_COMPONENT_READER, "imatrix-dat",
    "llama.cpp's legacy importance matrix (imatrix.dat) as <tensor>.in_sum2 / <tensor>.counts, every length checked",
    R"({"container":"imatrix-dat","layout":"imatrix","extensions":[".dat"]})", &kReader};
const ckh_component_t *const kComponents[] = {&kReaderComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.format.imatrix", "0.1.0",
                              "ckhost", "llama.cpp legacy importance matrix reader", init, nullptr, kComponents, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
