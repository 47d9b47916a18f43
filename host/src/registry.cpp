// registry.cpp — plugin discovery with Boost.DLL; every failure is recorded, never fatal.
#include "ckhost/host/registry.hpp"
#include "ckhost/host/options.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <utility>

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
    case CKH_COMPONENT_KERNELS: return "kernels";
    case CKH_COMPONENT_COMMAND: return "command";
    default: return "?";
  }
}

namespace {

using Library = boost::dll::shared_library;

// Smallest struct sizes the host accepts: the ABI 1.0 layouts (later minors only append).
constexpr uint32_t kPluginHead = offsetof(ckh_plugin_t, abi_major) + sizeof(uint32_t);  // enough to read abi_major
constexpr uint32_t kMinPlugin = offsetof(ckh_plugin_t, components) + sizeof(void *);
constexpr uint32_t kMinComponent = offsetof(ckh_component_t, vtable) + sizeof(void *);

uint32_t min_vtable_size(int32_t kind) {
  switch (kind) {
    case CKH_COMPONENT_READER: return offsetof(ckh_reader_class_t, open) + sizeof(void *);
    case CKH_COMPONENT_WRITER: return offsetof(ckh_writer_class_t, create) + sizeof(void *);
    case CKH_COMPONENT_MAPPER: return offsetof(ckh_mapper_class_t, map) + sizeof(void *);  // canonical is optional
    case CKH_COMPONENT_QUANTIZER: return offsetof(ckh_quantizer_class_t, release) + sizeof(void *);
    case CKH_COMPONENT_KERNELS: return offsetof(ckh_kernel_provider_t, kernels) + sizeof(void *);
    case CKH_COMPONENT_COMMAND: return offsetof(ckh_command_class_t, translate) + sizeof(void *);
    default: return 0;
  }
}

// The first required member of the kind's class struct that is NULL, or nullptr when all are set.
const char *missing_member(int32_t kind, const void *vt) {
  switch (kind) {
    case CKH_COMPONENT_READER: {
      auto *c = static_cast<const ckh_reader_class_t *>(vt);
      return !c->probe ? "probe" : !c->open ? "open" : nullptr;
    }
    case CKH_COMPONENT_WRITER: return static_cast<const ckh_writer_class_t *>(vt)->create ? nullptr : "create";
    case CKH_COMPONENT_MAPPER: {
      auto *c = static_cast<const ckh_mapper_class_t *>(vt);
      return !c->probe ? "probe" : !c->map ? "map" : nullptr;
    }
    case CKH_COMPONENT_QUANTIZER: {
      auto *c = static_cast<const ckh_quantizer_class_t *>(vt);
      if (!c->release) return "release";
      // SDK 1.1: prepare_n/port/quantize_n together replace prepare/quantize.
      if (CKH_HAS_FIELD(c, ckh_quantizer_class_t, quantize_n) && (c->prepare_n || c->port || c->quantize_n))
        return !c->prepare_n ? "prepare_n" : !c->port ? "port" : !c->quantize_n ? "quantize_n" : nullptr;
      return !c->prepare ? "prepare" : !c->quantize ? "quantize" : nullptr;
    }
    case CKH_COMPONENT_KERNELS: {
      auto *c = static_cast<const ckh_kernel_provider_t *>(vt);
      return !c->kernels || c->kernels->struct_size < offsetof(ckh_kernels_t, bf16_to_f32) ? "kernels" : nullptr;
    }
    case CKH_COMPONENT_COMMAND: return static_cast<const ckh_command_class_t *>(vt)->translate ? nullptr : "translate";
    default: return "?";
  }
}

std::string too_small(const char *what, uint32_t have, uint32_t need) {
  return std::string(what) + " struct_size " + std::to_string(have) + " is too small (need at least " +
         std::to_string(need) + ")";
}

// Libraries stay mapped until process exit. dlclose would run a plugin's static destructors while the
// host may still hold its pointers, and once a library's constructors (or its entry and init) have run,
// unmapping it is never safe in general, so refused libraries are kept too. Leaked on purpose.
void keep_mapped(std::shared_ptr<Library> lib) {
  static auto *mutex = new std::mutex;
  static auto *kept = new std::vector<std::shared_ptr<Library>>;
  std::lock_guard<std::mutex> lk(*mutex);
  kept->push_back(std::move(lib));
}

// Boost.DLL 1.74 reports every dlopen failure as EBADF; the loader's own text (missing file, wrong ELF
// class, undefined symbol, ...) is still pending in this thread's dlerror() slot. It usually starts
// with the path, which the refusal already names.
std::string load_error(const std::string &path, const boost::dll::fs::error_code &ec) {
  const char *e = ::dlerror();
  std::string msg = e ? e : ec.message();
  if (msg.compare(0, path.size() + 2, path + ": ") == 0) msg.erase(0, path.size() + 2);
  return msg;
}

std::string exe_dir() {
  std::error_code ec;
  fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : p.parent_path().string();
}

std::string canonical_dir(const std::string &d) {
  std::error_code ec;
  fs::path abs = fs::absolute(d, ec);
  if (ec) return d;
  fs::path c = fs::weakly_canonical(abs, ec);
  return ec ? abs.lexically_normal().string() : c.string();
}

bool is_plugin_name(const std::string &name) {
  return name.size() > 7 && name.compare(0, 4, "ckh-") == 0 && name.compare(name.size() - 3, 3, ".so") == 0;
}

// ckh-*.so regular files (or links to them) in `dir`, sorted by name; empty when unreadable.
std::vector<std::string> plugin_files(const std::string &dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code fec;
    if (is_plugin_name(it->path().filename().string()) && it->is_regular_file(fec))
      files.push_back(it->path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string exception_text(const char *what) {
  try {
    throw;
  } catch (const std::exception &e) {
    return std::string(what) + " threw an exception: " + e.what();
  } catch (...) {
    return std::string(what) + " threw an exception";
  }
}

}  // namespace

std::vector<std::string> Registry::search_dirs(const std::vector<std::string> &cli_dirs) {
  std::vector<std::string> dirs;
  for (const auto &d : cli_dirs)
    if (!d.empty()) dirs.push_back(d);
  if (const char *env = std::getenv("CKHOST_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) dirs.push_back(d);
  }
  const std::string ed = exe_dir();
  if (!ed.empty()) dirs.push_back((fs::path(ed).parent_path() / CKH_PLUGIN_SUBDIR).string());
  // Canonicalise and drop duplicates, keeping the first occurrence (its place in the order).
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const auto &d : dirs) {
    std::string c = canonical_dir(d);
    if (seen.insert(c).second) out.push_back(c);
  }
  return out;
}

void Registry::load(const std::vector<std::string> &dirs) {
  std::map<std::string, std::string> plugin_ids;  // plugin id -> path of the winner
  std::map<std::pair<int32_t, std::string>, const LoadedPlugin *> comp_ids;
  for (const auto &p : plugins_) {
    plugin_ids[p->id] = p->path;
    for (const auto &c : p->components) comp_ids[{c.kind, c.id}] = p.get();
  }
  std::set<std::string> scanned;
  for (const auto &raw_dir : dirs) {
    const std::string dir = canonical_dir(raw_dir);
    std::error_code ec;
    if (!scanned.insert(dir).second || !fs::is_directory(dir, ec)) continue;  // missing: skipped silently
    for (const auto &path : plugin_files(dir)) {
      auto refuse = [&](const std::string &why) { refused_.push_back({path, why}); };

      // Load: absolute path, RTLD_NOW so unresolved symbols fail here and not mid-conversion.
      boost::dll::fs::error_code lec;
      auto lib = std::make_shared<Library>();
      ::dlerror();  // clear any stale message
      lib->load(boost::dll::fs::path(path), boost::dll::load_mode::rtld_now | boost::dll::load_mode::rtld_local, lec);
      if (lec || !lib->is_loaded()) {
        refuse("cannot load: " + load_error(path, lec));
        continue;
      }
      keep_mapped(lib);
      if (!lib->has(CKH_ENTRY_SYMBOL)) {
        refuse(std::string("no symbol ") + CKH_ENTRY_SYMBOL);
        continue;
      }

      // The descriptor.
      const ckh_plugin_t *d = nullptr;
      try {
        d = lib->get<const ckh_plugin_t *()>(CKH_ENTRY_SYMBOL)();
      } catch (...) {
        refuse(exception_text(CKH_ENTRY_SYMBOL "()"));
        continue;
      }
      if (!d) {
        refuse(CKH_ENTRY_SYMBOL "() returned NULL");
        continue;
      }
      // abi_major is checked before the full size: a plugin of another major may have another layout.
      if (d->struct_size < kPluginHead) {
        refuse(too_small("descriptor", d->struct_size, kMinPlugin));
        continue;
      }
      if (d->abi_major != CKH_ABI_MAJOR) {
        refuse("ABI major " + std::to_string(d->abi_major) + ", host supports " + std::to_string(CKH_ABI_MAJOR));
        continue;
      }
      if (d->struct_size < kMinPlugin) {
        refuse(too_small("descriptor", d->struct_size, kMinPlugin));
        continue;
      }
      if (!d->id || !*d->id) {
        refuse("descriptor has no plugin id");
        continue;
      }
      if (!d->init) {
        refuse(std::string("plugin ") + d->id + ": descriptor has no init()");
        continue;
      }
      if (d->component_count > 0 && !d->components) {
        refuse(std::string("plugin ") + d->id + ": descriptor lists " + std::to_string(d->component_count) +
               " components but components is NULL");
        continue;
      }
      auto taken = plugin_ids.find(d->id);
      if (taken != plugin_ids.end()) {
        refuse(std::string("plugin id ") + d->id + " already provided by " + taken->second);
        continue;
      }

      // init(), once; the plugin explains a failure through host->set_error.
      clear_last_error();
      ckh_status st = CKH_E_INTERNAL;
      try {
        st = d->init(host_table());
      } catch (...) {
        st = CKH_E_INTERNAL;
        set_last_error(st, exception_text("init()"));
      }
      auto le = take_last_error();
      if (st != CKH_OK) {
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

      // Components: each is accepted or refused on its own.
      for (uint32_t i = 0; i < d->component_count; ++i) {
        const ckh_component_t *c = d->components[i];
        const std::string where = "component #" + std::to_string(i);
        if (!c) {
          refuse(where + " is NULL");
          continue;
        }
        if (c->struct_size < kMinComponent) {
          refuse(where + ": " + too_small("component", c->struct_size, kMinComponent));
          continue;
        }
        const uint32_t need = min_vtable_size(c->kind);
        if (need == 0) {
          refuse(where + ": invalid kind " + std::to_string(c->kind));
          continue;
        }
        const char *kind = component_kind_name(c->kind);
        if (!c->id || !*c->id) {
          refuse(where + " (" + kind + "): NULL or empty id");
          continue;
        }
        const std::string cid = c->id;
        const std::string label = std::string(kind) + " '" + cid + "'";
        if (!c->vtable) {
          refuse(label + ": NULL vtable");
          continue;
        }
        const uint32_t vsize = *static_cast<const uint32_t *>(c->vtable);
        if (vsize < need) {
          refuse(label + ": " + too_small("vtable", vsize, need));
          continue;
        }
        if (const char *m = missing_member(c->kind, c->vtable)) {
          refuse(label + ": vtable member " + m + " is NULL");
          continue;
        }
        nlohmann::json caps;
        std::string caps_error;
        try {
          caps = nlohmann::json::parse(c->capabilities_json ? c->capabilities_json : "{}");
          if (!caps.is_object()) caps_error = std::string("a JSON ") + caps.type_name() + ", not an object";
        } catch (const nlohmann::json::exception &e) {
          caps_error = e.what();  // "[json.exception.parse_error.101] parse error at line 1, column 2: ..."
          const size_t b = caps_error.find("] ");
          if (caps_error.compare(0, 1, "[") == 0 && b != std::string::npos) caps_error.erase(0, b + 2);
        }
        if (!caps_error.empty()) {
          refuse(label + ": invalid capabilities_json: " + caps_error);
          continue;
        }
        const auto key = std::make_pair(c->kind, cid);
        auto winner = comp_ids.find(key);
        if (winner != comp_ids.end()) {
          refuse(label + " already provided by plugin " + winner->second->id + " (" + winner->second->path + ")");
          continue;
        }
        // Declared options (SDK 1.1): well formed, and of one type and key across components.
        std::vector<OptionDecl> decls;
        try {
          decls = parse_option_decls(caps);
        } catch (const std::exception &e) {
          refuse(label + ": invalid option declaration: " + e.what());
          continue;
        }
        std::string conflict;
        for (const auto &d : decls) {
          auto it = option_owner_.find(d.name);
          if (it != option_owner_.end() && (it->second.type != d.type || it->second.key != d.key))
            conflict = "option --" + d.name + " is declared as " + d.type + " (key '" + d.key + "'), but " +
                       it->second.owner + " declares it as " + it->second.type + " (key '" + it->second.key + "')";
        }
        if (!conflict.empty()) {
          refuse(label + ": " + conflict);
          continue;
        }
        for (const auto &d : decls)
          option_owner_.emplace(d.name, OptionOwner{d.type, d.key, std::string(kind) + " " + cid});
        Component comp;
        comp.kind = c->kind;
        comp.id = cid;
        comp.description = c->description ? c->description : "";
        comp.capabilities = std::move(caps);
        comp.options = std::move(decls);
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
  // Column widths over all components, so every line of the listing aligns.
  size_t kind_w = 9, id_w = 8, desc_w = 0;
  for (const auto &p : plugins_)
    for (const auto &c : p->components) {
      id_w = std::max(id_w, c.id.size());
      desc_w = std::max(desc_w, c.description.size());
    }
  desc_w = std::min<size_t>(desc_w, 60);
  auto pad = [](const std::string &s, size_t w) { return s.size() >= w ? s : s + std::string(w - s.size(), ' '); };
  std::ostringstream os;
  for (const auto &p : plugins_) {
    os << p->id << " " << p->version << " (" << p->vendor << ") " << p->path << "\n";
    if (!p->description.empty()) os << "  " << p->description << "\n";
    for (const auto &c : p->components)
      os << "  " << pad(component_kind_name(c.kind), kind_w) << "  " << pad(c.id, id_w) << "  "
         << pad(c.description, desc_w) << "  " << c.capabilities.dump() << "\n";
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
    j["plugins"].push_back(std::move(pj));
  }
  j["refused"] = nlohmann::json::array();
  for (const auto &r : refused_) j["refused"].push_back({{"path", r.path}, {"reason", r.reason}});
  return j;
}

}  // namespace ckh::host
