// registry.hpp — plugin discovery and loading (Boost.DLL), and the component lookup.
//
// Search order: --plugin-dir values, then CKHOST_PLUGIN_PATH (':'-separated), then the default
// directory <dir of the executable>/../lib/ckhost/plugins (the same relative layout in the build tree
// and the install prefix). Inside a directory, files named ckh-*.so are loaded in name order.
// Load mode RTLD_NOW | RTLD_LOCAL. A plugin is refused (recorded with the reason, never fatal) when:
// the file cannot be loaded; it lacks ckh_plugin_entry; the entry returns NULL; struct_size is too
// small; abi_major != CKH_ABI_MAJOR; a field is NULL that must not be; its plugin id is already
// taken; init() fails (the plugin's message is kept). A component whose (kind, id) is already taken
// is refused alone. Libraries are never unloaded before process exit (deinit is called in ~Registry).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_plugin.h>

#include "ckhost/host/options.hpp"

namespace ckh::host {

struct LoadedPlugin;

struct Component {
  int32_t kind = 0;              // CKH_COMPONENT_*
  std::string id;
  std::string description;
  nlohmann::json capabilities;   // parsed capabilities_json (an object; {} if the plugin's was invalid)
  std::vector<OptionDecl> options;  // capabilities "options", parsed and checked at load (options.hpp)
  const void *vtable = nullptr;  // the kind's class struct
  const LoadedPlugin *plugin = nullptr;

  const ckh_reader_class_t *reader() const { return static_cast<const ckh_reader_class_t *>(vtable); }
  const ckh_writer_class_t *writer() const { return static_cast<const ckh_writer_class_t *>(vtable); }
  const ckh_mapper_class_t *mapper() const { return static_cast<const ckh_mapper_class_t *>(vtable); }
  const ckh_quantizer_class_t *quantizer() const { return static_cast<const ckh_quantizer_class_t *>(vtable); }
  const ckh_kernel_provider_t *kernel_provider() const { return static_cast<const ckh_kernel_provider_t *>(vtable); }
  const ckh_command_class_t *command() const { return static_cast<const ckh_command_class_t *>(vtable); }
};

struct LoadedPlugin {
  std::string path;      // absolute path of the .so
  std::string id, version, vendor, description;
  uint32_t abi_major = 0, abi_minor = 0;
  const ckh_plugin_t *desc = nullptr;
  std::shared_ptr<void> library;  // keeps the shared library mapped
  std::vector<Component> components;
};

struct Refusal {
  std::string path;      // absolute path of the .so file
  std::string reason;    // one line; a refused component's reason starts with "<kind> '<id>'" or "component #<i>"
};

const char *component_kind_name(int32_t kind);  // "reader", "writer", "mapper", "quantizer", "kernels", "?"

class Registry {
 public:
  Registry() = default;
  Registry(const Registry &) = delete;
  Registry &operator=(const Registry &) = delete;
  ~Registry();  // calls deinit() of every initialised plugin, in reverse load order

  // The directories to scan for the given --plugin-dir values (env and default appended).
  static std::vector<std::string> search_dirs(const std::vector<std::string> &cli_dirs);

  // Scans dirs in order. Missing directories are skipped silently. Never throws for a bad plugin.
  void load(const std::vector<std::string> &dirs);

  const std::vector<std::unique_ptr<LoadedPlugin>> &plugins() const { return plugins_; }
  const std::vector<Refusal> &refused() const { return refused_; }

  // The accepted component of that kind and id, or nullptr.
  const Component *find(int32_t kind, const std::string &id) const;
  std::vector<const Component *> all(int32_t kind) const;

  // --list-plugins output: human text, or JSON {"plugins": [...], "refused": [...]}.
  std::string describe_text() const;
  nlohmann::json describe_json() const;

 private:
  struct OptionOwner {
    std::string type, key, owner;
  };
  std::vector<std::unique_ptr<LoadedPlugin>> plugins_;
  std::vector<Refusal> refused_;
  std::map<std::string, OptionOwner> option_owner_;  // declared option name -> first declaration
};

}  // namespace ckh::host
