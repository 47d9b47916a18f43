// hf_files.cpp — see hf_files.hpp.
#include "hf_files.hpp"

#include <algorithm>
#include <fstream>
#include <vector>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace fs = std::filesystem;
using nlohmann::json;

namespace ckh::plugins {

namespace {
bool ends_with(const std::string &s, const char *suf) {
  const size_t n = std::char_traits<char>::length(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}
void check(ckh_status s) {
  if (s != CKH_OK) throw ckh::sdk::Error(s, "layout builder call failed", true);
}
}  // namespace

bool is_weight_file(const std::string &n) {
  for (const char *e : {".safetensors", ".safetensors.index.json", ".bin", ".bin.index.json", ".pt", ".pth", ".ckpt",
                        ".gguf", ".h5", ".msgpack", ".msgpack.index.json", ".onnx", ".onnx_data", ".npy", ".distcp"})
    if (ends_with(n, e)) return true;
  return false;
}

json list_side_files(const fs::path &dir) {
  std::vector<std::string> side;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string n = it->path().filename().string();
    std::error_code ec2;
    // The Megatron / MindSpeed tracker file belongs to the checkpoint's layout, not to the model's side files.
    if (n.empty() || n[0] == '.' || is_weight_file(n) || n == "latest_checkpointed_iteration.txt" || !it->is_regular_file(ec2)) continue;
    side.push_back(n);
  }
  if (ec) ckh::sdk::fail(CKH_E_IO, dir.string() + ": cannot list: " + ec.message());
  std::sort(side.begin(), side.end());
  json out = json::array();
  for (const auto &n : side) out.push_back({{"name", n}, {"path", (dir / n).string()}});
  return out;
}

void add_hf_side(json &meta, const json &options, const fs::path &default_dir) {
  std::error_code ec;
  const bool given = options.contains("hf_config") && options["hf_config"].is_string();
  const fs::path hfdir = given ? fs::path(options["hf_config"].get<std::string>()) : default_dir;
  meta["config"] = nullptr;
  meta["side_files"] = json::array();
  if (fs::is_directory(hfdir, ec)) {
    meta["side_files"] = list_side_files(fs::absolute(hfdir));
    if (fs::exists(hfdir / "config.json", ec)) {
      std::ifstream in(hfdir / "config.json");
      json c = json::parse(in, nullptr, false);
      if (c.is_discarded() || !c.is_object())
        ckh::sdk::fail(CKH_E_FORMAT, (hfdir / "config.json").string() + ": not a JSON object");
      meta["config"] = c;
    }
  } else if (given) {
    ckh::sdk::fail(CKH_E_NOT_FOUND, "--hf-config " + hfdir.string() + ": no such directory");
  }
}

void copy_side_files_to(ckh_layout_builder_t *lb, const json &meta, const std::string &dir) {
  const bool have_config = meta.contains("config") && meta["config"].is_object();
  const bool regen = have_config && meta.contains("config_modified") && meta["config_modified"].is_boolean() &&
                     meta["config_modified"].get<bool>();
  if (meta.contains("side_files") && meta["side_files"].is_array())
    for (const auto &sf : meta["side_files"]) {
      const std::string name = sf.value("name", ""), path = sf.value("path", "");
      if (name.empty() || path.empty() || is_weight_file(name)) continue;
      if (regen && name == "config.json") continue;  // stale: written from the metadata below
      check(lb->copy_file(lb, path.c_str(), (dir + "/" + name).c_str()));
    }
  // A changed config (a cast, dequantization or quantization) goes out as it now is, so that the way
  // back does not read a config that no longer describes the weights.
  if (regen) {
    const std::string c = meta["config"].dump(2) + "\n";
    check(lb->add_small_file(lb, (dir + "/config.json").c_str(), c.data(), c.size()));
  }
}

void carry_side_files(ckh_layout_builder_t *lb, const json &meta, const std::set<std::string> &written) {
  const bool have_config = meta.contains("config") && meta["config"].is_object();
  const bool regen = have_config && meta.contains("config_modified") && meta["config_modified"].is_boolean() &&
                     meta["config_modified"].get<bool>();
  bool config_done = false;
  if (meta.contains("side_files") && meta["side_files"].is_array())
    for (const auto &sf : meta["side_files"]) {
      if (!sf.is_object() || !sf.contains("name") || !sf["name"].is_string() || !sf.contains("path") ||
          !sf["path"].is_string())
        ckh::sdk::fail(CKH_E_INVALID_ARG, "metadata side_files entry " + sf.dump() + " needs a \"name\" and a \"path\"");
      const std::string name = sf["name"].get<std::string>(), path = sf["path"].get<std::string>();
      // Never let a side file replace the weights or index this writer lays out.
      if (written.count(name) || is_weight_file(name)) continue;
      if (name == "config.json") {
        if (regen) continue;
        config_done = true;
      }
      check(lb->copy_file(lb, path.c_str(), name.c_str()));
    }
  // A changed config (e.g. torch_dtype after a cast), or a config that came without a file (another
  // format's reader, a mapper), is written out: an HF checkpoint needs config.json.
  if (have_config && !config_done && !written.count("config.json")) {
    const std::string c = meta["config"].dump(2) + "\n";
    check(lb->add_small_file(lb, "config.json", c.data(), c.size()));
  }
}

}  // namespace ckh::plugins
