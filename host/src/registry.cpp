// registry.cpp — plugin discovery with Boost.DLL; every failure is recorded, never fatal.
#include "ckhost/host/registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <boost/dll/shared_library.hpp>

#include "ckhost/host/services.hpp"

namespace fs = std::filesystem;

namespace ckh::host {

const char *component_kind_name(int32_t kind) {
  switch (kind) {
    case CKH_COMPONENT_READER: return "reader";
    case CKH_COMPONENT_WRITER: return "writer";
    case CKH_COMPONENT_MAPPER: return "mapper";
    case CKH_COMPONENT_QUANTIZER: return "quantizer";
    default: return "?";
  }
}

namespace {

// Smallest struct sizes the host accepts (ABI 1.0 layouts).
constexpr size_t kMinPlugin = offsetof(ckh_plugin_t, components) + sizeof(void *);
constexpr size_t kMinComponent = offsetof(ckh_component_t, vtable) + sizeof(void *);

uint32_t vtable_size(int32_t kind) {
  switch (kind) {
    case CKH_COMPONENT_READER: return offsetof(ckh_reader_class_t, open) + sizeof(void *);
    case CKH_COMPONENT_WRITER: return offsetof(ckh_writer_class_t, create) + sizeof(void *);
    case CKH_COMPONENT_MAPPER: return offsetof(ckh_mapper_class_t, map) + sizeof(void *);
    case CKH_COMPONENT_QUANTIZER: return offsetof(ckh_quantizer_class_t, release) + sizeof(void *);
    default: return 0;
  }
}

bool vtable_complete(int32_t kind, const void *vt) {
  switch (kind) {
    case CKH_COMPONENT_READER: {
      auto *c = static_cast<const ckh_reader_class_t *>(vt);
      return c->probe && c->open;
    }
    case CKH_COMPONENT_WRITER: return static_cast<const ckh_writer_class_t *>(vt)->create != nullptr;
    case CKH_COMPONENT_MAPPER: {
      auto *c = static_cast<const ckh_mapper_class_t *>(vt);
      return c->probe && c->map;
    }
    case CKH_COMPONENT_QUANTIZER: {
      auto *c = static_cast<const ckh_quantizer_class_t *>(vt);
      return c->prepare && c->quantize && c->release;
    }
    default: return false;
  }
}

std::string exe_dir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}

}  // namespace

std::vector<std::string> Registry::search_dirs(const std::vector<std::string> &cli_dirs) {
  std::vector<std::string> dirs(cli_dirs.begin(), cli_dirs.end());
  if (const char *env = std::getenv("CKHOST_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) dirs.push_back(d);
  }
  const std::string ed = exe_dir();
  if (!ed.empty()) dirs.push_back((fs::path(ed).parent_path() / CKH_PLUGIN_SUBDIR).string());
  // Canonicalise and drop duplicates, keeping the first occurrence.
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto &d : dirs) {
    std::error_code ec;
    fs::path c = fs::weakly_canonical(fs::absolute(d), ec);
    std::string s = ec ? d : c.string();
    if (seen.insert(s).second) out.push_back(s);
  }
  return out;
}

void Registry::load(const std::vector<std::string> &dirs) {
  std::map<std::string, std::string> plugin_ids;  // id -> path
  std::map<std::pair<int32_t, std::string>, const LoadedPlugin *> comp_ids;
  for (const auto &p : plugins_) {
    plugin_ids[p->id] = p->path;
    for (const auto &c : p->components) comp_ids[{c.kind, c.id}] = p.get();
  }
  for (const auto &dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) continue;
    std::vector<std::string> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.rfind("ckh-", 0) == 0 && name.size() > 7 && name.compare(name.size() - 3, 3, ".so") == 0)
        files.push_back(it->path().string());
    }
    std::sort(files.begin(), files.end());
    for (const auto &path : files) {
      auto refuse = [&](const std::string &why) { refused_.push_back({path, why}); };
      boost::dll::fs::error_code lec;
      auto lib = std::make_shared<boost::dll::shared_library>();
      lib->load(boost::dll::fs::path(path), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, lec);
      if (lec) {
        refuse("cannot load: " + lec.message());
        continue;
      }
      if (!lib->has(CKH_ENTRY_SYMBOL)) {
        refuse(std::string("no symbol ") + CKH_ENTRY_SYMBOL);
        continue;
      }
      const ckh_plugin_t *d = nullptr;
      try {
        auto entry = lib->get<const ckh_plugin_t *()>(CKH_ENTRY_SYMBOL);
        d = entry();
      } catch (...) {
        refuse("ckh_plugin_entry threw");
        continue;
      }
      if (!d) {
        refuse("ckh_plugin_entry returned NULL");
        continue;
      }
      if (d->struct_size < offsetof(ckh_plugin_t, component_count) + sizeof(uint32_t)) {
        refuse("descriptor struct_size " + std::to_string(d->struct_size) + " is too small (need at least " +
               std::to_string(kMinPlugin) + ")");
        continue;
      }
      if (d->abi_major != CKH_ABI_MAJOR) {
        refuse("ABI major " + std::to_string(d->abi_major) + ", host supports " + std::to_string(CKH_ABI_MAJOR));
        continue;
      }
      if (d->struct_size < kMinPlugin) {
        refuse("descriptor struct_size " + std::to_string(d->struct_size) + " is too small (need at least " +
               std::to_string(kMinPlugin) + ")");
        continue;
      }
      if (!d->id || !*d->id || !d->init || (d->component_count && !d->components)) {
        refuse("descriptor lacks an id, init() or its components");
        continue;
      }
      if (plugin_ids.count(d->id)) {
        refuse(std::string("plugin id ") + d->id + " already provided by " + plugin_ids[d->id]);
        continue;
      }
      clear_last_error();
      ckh_status st = CKH_E_INTERNAL;
      try {
        st = d->init(host_table());
      } catch (...) {
        st = CKH_E_INTERNAL;
        set_last_error(st, "init() threw an exception");
      }
      if (st != CKH_OK) {
        auto le = take_last_error();
        refuse("init failed: " + (le.second.empty() ? "status " + std::to_string(st) : le.second));
        continue;
      }
      auto lp = std::make_unique<LoadedPlugin>();
      lp->path = path;
      lp->id = d->id;
      lp->version = d->version ? d->version : "";
      lp->vendor = d->vendor ? d->vendor : "";
      lp->description = d->description ? d->description : "";
      lp->abi_major = d->abi_major;
      lp->abi_minor = d->abi_minor;
      lp->desc = d;
      lp->library = lib;
      // Never unloaded before exit: a plugin's code may still be referenced by statics.
      static auto *keep = new std::vector<std::shared_ptr<boost::dll::shared_library>>();
      keep->push_back(lib);
      for (uint32_t i = 0; i < d->component_count; ++i) {
        const ckh_component_t *c = d->components[i];
        const std::string where = path + ": component #" + std::to_string(i);
        if (!c || c->struct_size < kMinComponent) {
          refused_.push_back({where, "component descriptor missing or too small"});
          continue;
        }
        const std::string cid = c->id ? c->id : "";
        const std::string label = std::string(component_kind_name(c->kind)) + " '" + cid + "'";
        if (vtable_size(c->kind) == 0) {
          refused_.push_back({where, "unknown component kind " + std::to_string(c->kind)});
          continue;
        }
        if (cid.empty() || !c->vtable) {
          refused_.push_back({where, label + " lacks an id or a vtable"});
          continue;
        }
        if (*static_cast<const uint32_t *>(c->vtable) < vtable_size(c->kind) || !vtable_complete(c->kind, c->vtable)) {
          refused_.push_back({where, label + ": vtable too small or incomplete"});
          continue;
        }
        auto caps = nlohmann::json::parse(c->capabilities_json ? c->capabilities_json : "{}", nullptr, false);
        if (caps.is_discarded() || !caps.is_object()) {
          refused_.push_back({where, label + ": capabilities are not a JSON object"});
          continue;
        }
        auto key = std::make_pair(c->kind, cid);
        if (comp_ids.count(key)) {
          const LoadedPlugin *w = comp_ids[key];
          refused_.push_back({where, label + " already provided by plugin " + w->id + " (" + w->path + ")"});
          continue;
        }
        Component comp;
        comp.kind = c->kind;
        comp.id = cid;
        comp.description = c->description ? c->description : "";
        comp.capabilities = std::move(caps);
        comp.vtable = c->vtable;
        comp.plugin = lp.get();
        lp->components.push_back(std::move(comp));
        comp_ids[key] = lp.get();
      }
      plugin_ids[lp->id] = path;
      plugins_.push_back(std::move(lp));
    }
  }
}

Registry::~Registry() {
  for (auto it = plugins_.rbegin(); it != plugins_.rend(); ++it) {
    const ckh_plugin_t *d = (*it)->desc;
    if (d && d->deinit) {
      try {
        d->deinit();
      } catch (...) {
      }
    }
  }
}

const Component *Registry::find(int32_t kind, const std::string &id) const {
  for (const auto &p : plugins_)
    for (const auto &c : p->components)
      if (c.kind == kind && c.id == id) return &c;
  return nullptr;
}

std::vector<const Component *> Registry::all(int32_t kind) const {
  std::vector<const Component *> v;
  for (const auto &p : plugins_)
    for (const auto &c : p->components)
      if (c.kind == kind) v.push_back(&c);
  return v;
}

std::string Registry::describe_text() const {
  std::ostringstream os;
  for (const auto &p : plugins_) {
    os << p->id << " " << p->version << " (" << p->vendor << ") " << p->path << "\n";
    if (!p->description.empty()) os << "  " << p->description << "\n";
    for (const auto &c : p->components) {
      char line[512];
      std::snprintf(line, sizeof line, "  %-10s %-16s %s  %s\n", component_kind_name(c.kind), c.id.c_str(),
                    c.description.c_str(), c.capabilities.dump().c_str());
      os << line;
    }
  }
  if (plugins_.empty()) os << "no plugins found (searched --plugin-dir, CKHOST_PLUGIN_PATH and the default directory)\n";
  if (!refused_.empty()) {
    os << "refused:\n";
    for (const auto &r : refused_) os << "  " << r.path << ": " << r.reason << "\n";
  }
  return os.str();
}

nlohmann::json Registry::describe_json() const {
  nlohmann::json j;
  j["plugins"] = nlohmann::json::array();
  for (const auto &p : plugins_) {
    nlohmann::json pj = {{"id", p->id},
                         {"version", p->version},
                         {"vendor", p->vendor},
                         {"description", p->description},
                         {"path", p->path},
                         {"abi", std::to_string(p->abi_major) + "." + std::to_string(p->abi_minor)},
                         {"components", nlohmann::json::array()}};
    for (const auto &c : p->components)
      pj["components"].push_back({{"kind", component_kind_name(c.kind)},
                                  {"id", c.id},
                                  {"description", c.description},
                                  {"capabilities", c.capabilities}});
    j["plugins"].push_back(pj);
  }
  j["refused"] = nlohmann::json::array();
  for (const auto &r : refused_) j["refused"].push_back({{"path", r.path}, {"reason", r.reason}});
  return j;
}

}  // namespace ckh::host
