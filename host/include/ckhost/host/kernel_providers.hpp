// kernel_providers.hpp — merging kernel-provider components (SDK 1.1) into the host's kernel table.
//
// Rule (also in ckh_kernels.h): member by member, the provider with the highest priority (> 0) wins,
// then the first loaded; the built-in table (best ISA of this CPU) fills the rest. CKHOST_KERNELS=builtin
// ignores every provider. The executor's block size becomes the largest preferred_work_bytes of the
// providers in use, clamped to [1 MiB, 64 MiB].
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ckh::host {

class Registry;

struct KernelUse {
  std::string member;    // "f32_to_bf16"
  std::string provider;  // "builtin (avx2)" or "<plugin id>: kernels '<component id>' (priority P)"
};

// Installs the merged table (set_kernel_table, set_work_block_bytes) and returns where each member
// comes from, in ckh_kernels_t order. Call once, after loading the plugins and before converting.
std::vector<KernelUse> apply_kernel_providers(const Registry &reg);

// What the last apply_kernel_providers() installed (every member built-in before the first call).
const std::vector<KernelUse> &kernel_uses();

// --list-plugins: "kernels:" lines naming each member's provider, or {"member": "provider"} as JSON.
std::string describe_kernels(const std::vector<KernelUse> &uses);
nlohmann::json kernels_json(const std::vector<KernelUse> &uses);

// Counters plugins report through the "ckh.stats/1" extension, as "plugin id: name = value" lines.
std::vector<std::string> plugin_stats(const Registry &reg);

}  // namespace ckh::host
