// st_tool — a small driver of the safetensors plugin for the Python cross-check (crosscheck.py):
//   st_tool read <path>                 prints the catalog as JSON
//   st_tool write <spec.json> <outdir>  plans a checkpoint with the writer (fake layout builder filling in
//                                       the raw tensor bytes named by the spec) and writes it to outdir
// Both print {"status": N, "error": "..."} on failure and exit 0 either way (the caller checks).
#include <fstream>
#include <iostream>
#include <iterator>
#include <string>

#include <nlohmann/json.hpp>

#include "header.hpp"
#include "st_harness.hpp"

using nlohmann::json;

namespace {

std::string read_all(const std::string &p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

int cmd_read(const std::string &path) {
  sth::Catalog c = sth::open_catalog(path);
  json out = {{"status", c.status}, {"error", c.error}};
  if (c.status == CKH_OK) {
    out["files"] = c.files;
    out["tensors"] = json::array();
    for (const auto &t : c.tensors)
      out["tensors"].push_back({{"name", t.name},
                                {"dtype", ckh::st::dtype_to_string(t.dtype)},
                                {"shape", t.shape},
                                {"pieces", t.npieces},
                                {"file", t.piece.file},
                                {"offset", t.piece.byte_offset}});
    out["metadata"] = json::parse(c.metadata);
  }
  std::cout << out.dump() << "\n";
  return 0;
}

int cmd_write(const std::string &spec_path, const std::string &outdir) {
  const json spec = json::parse(read_all(spec_path));
  std::vector<sth::Input> ins;
  for (const auto &t : spec["tensors"]) {
    const ckh_dtype dt = t.contains("ckh_dtype") ? t["ckh_dtype"].get<ckh_dtype>()
                                                 : ckh::st::dtype_from_string(t["dtype"].get<std::string>());
    ins.push_back({t["name"], dt, t["shape"].get<std::vector<int64_t>>(), read_all(t["data"])});
  }
  sth::Layout l = sth::plan(ins, spec.value("options", json::object()).dump(), spec.value("metadata", json::object()).dump());
  json out = {{"status", l.status}, {"error", l.error}, {"problems", l.problems}};
  if (l.status == CKH_OK) {
    sth::materialize(l, outdir);
    out["files"] = json::array();
    for (const auto &f : l.files) out["files"].push_back({{"relpath", f.relpath}, {"copied", !f.copy_from.empty()}});
  }
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace

int main(int argc, char **argv) {
  try {
    const std::string cmd = argc > 1 ? argv[1] : "";
    if (cmd == "read" && argc == 3) return cmd_read(argv[2]);
    if (cmd == "write" && argc == 4) return cmd_write(argv[2], argv[3]);
    std::cerr << "usage: st_tool read <path> | st_tool write <spec.json> <outdir>\n";
    return 2;
  } catch (const std::exception &e) {
    std::cerr << "st_tool: " << e.what() << "\n";
    return 1;
  }
}
