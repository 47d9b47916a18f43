// ckh_plugin.h — the one symbol a plugin exports, and the descriptor it returns.
//
//     CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void);
//
// The host dlopens ckh-*.so files from its plugin directories (RTLD_NOW | RTLD_LOCAL), calls
// ckh_plugin_entry, refuses the plugin when the result is NULL, its abi_major differs from the host's
// CKH_ABI_MAJOR, its struct_size is too small, its id is already taken, or init() fails, and reports
// every refusal with the reason (`ckhost --list-plugins`). A plugin never crashes discovery.
//
// Duplicate rule: plugins are scanned in search order (--plugin-dir, then CKHOST_PLUGIN_PATH entries,
// then the default directory; files sorted by name inside each directory). The first plugin with a
// given plugin id wins; a later one with the same id is refused. Likewise, the first component of a
// given (kind, id) wins and later duplicates are refused with the name of the winner.
#ifndef CKHOST_CKH_PLUGIN_H
#define CKHOST_CKH_PLUGIN_H

#include "ckh_command.h"
#include "ckh_host.h"
#include "ckh_mapper.h"
#include "ckh_quantizer.h"
#include "ckh_reader.h"
#include "ckh_types.h"
#include "ckh_version.h"
#include "ckh_writer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKH_COMPONENT_READER 1     // vtable: const ckh_reader_class_t *
#define CKH_COMPONENT_WRITER 2     // vtable: const ckh_writer_class_t *
#define CKH_COMPONENT_MAPPER 3     // vtable: const ckh_mapper_class_t *
#define CKH_COMPONENT_QUANTIZER 4  // vtable: const ckh_quantizer_class_t *
#define CKH_COMPONENT_KERNELS 5    // vtable: const ckh_kernel_provider_t * (ckh_kernels.h), SDK 1.1
#define CKH_COMPONENT_COMMAND 6    // vtable: const ckh_command_class_t * (ckh_command.h), SDK 1.2

// One component. Owner: the plugin; static lifetime (valid until the library is unloaded).
typedef struct ckh_component {
  uint32_t struct_size;
  int32_t kind;                   // CKH_COMPONENT_*
  const char *id;                 // unique per kind; readers/writers use the CLI format name ("hf")
  const char *description;        // one line
  const char *capabilities_json;  // JSON object (see the kind's header), never NULL
  const void *vtable;             // the kind's class struct
} ckh_component_t;

// The plugin descriptor. Owner: the plugin; static lifetime.
typedef struct ckh_plugin {
  uint32_t struct_size;
  uint32_t abi_major;             // CKH_ABI_MAJOR the plugin was built with
  uint32_t abi_minor;             // CKH_ABI_MINOR the plugin was built with
  uint32_t component_count;
  const char *id;                 // reverse DNS, e.g. "org.ckhost.format.safetensors"
  const char *version;            // semver of the plugin
  const char *vendor;
  const char *description;
  // Called once after loading, before any component is used. `host` stays valid until deinit()
  // returns. Return non-zero (with host->set_error) to be refused. [main-thread]
  ckh_status (*init)(const ckh_host_t *host);
  // Called once at shutdown after every object the plugin created was destroyed. May be NULL.
  void (*deinit)(void);
  // Array of component_count pointers (pointers, so ckh_component_t may grow).
  const ckh_component_t *const *components;
  // ---- 1.1 (the host reads it only when struct_size covers it) ------------------------------------
  // Optional (may be NULL): plugin-side extensions by id, in the style of CLAP's get_extension; NULL
  // for an unknown id. The returned table is plugin-owned with static lifetime. [thread-safe]
  // Ids the host asks for: CKH_STATS_EXTENSION_ID.
  const void *(*get_extension)(const char *id);
} ckh_plugin_t;

// "ckh.stats/1": counters a plugin reports (e.g. calls of its provided kernels); `ckhost convert -v`
// prints them after a conversion. Every member is [thread-safe]; names have static lifetime.
#define CKH_STATS_EXTENSION_ID "ckh.stats/1"
typedef struct ckh_stats_extension {
  uint32_t struct_size;
  uint32_t reserved0;
  uint32_t (*count)(void);
  const char *(*name)(uint32_t i);
  uint64_t (*value)(uint32_t i);
} ckh_stats_extension_t;

#define CKH_ENTRY_SYMBOL "ckh_plugin_entry"
typedef const ckh_plugin_t *(*ckh_plugin_entry_fn)(void);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_PLUGIN_H
