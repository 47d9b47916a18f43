// kernel_providers.cpp — see kernel_providers.hpp.
#include "ckhost/host/kernel_providers.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <ckhost/ckh_plugin.h>

#include "ckhost/host/registry.hpp"
#include "ckhost/host/services.hpp"

namespace ckh::host {

namespace {

struct Member {
  const char *name;
  size_t offset;
};
#define CKH_MEMBER(m) {#m, offsetof(ckh_kernels_t, m)}
const Member kMembers[] = {
    CKH_MEMBER(bf16_to_f32),        CKH_MEMBER(f16_to_f32),         CKH_MEMBER(e4m3_to_f32),
    CKH_MEMBER(e5m2_to_f32),        CKH_MEMBER(f32_to_bf16),        CKH_MEMBER(f32_to_f16),
    CKH_MEMBER(f32_to_e4m3),        CKH_MEMBER(f32_to_e5m2),        CKH_MEMBER(f32_to_e4m3_scaled),
    CKH_MEMBER(f32_to_e5m2_scaled), CKH_MEMBER(f32_to_i8_scaled),   CKH_MEMBER(scale_f32),
    CKH_MEMBER(absmax_f32),         CKH_MEMBER(sumsq_f32),          CKH_MEMBER(maxabsdiff_f32),
    CKH_MEMBER(sumsqdiff_f32),      CKH_MEMBER(e4m3_scaled_to_bf16), CKH_MEMBER(e4m3_grouped_to_bf16),
};
#undef CKH_MEMBER

// A function pointer member read generically (all members are function pointers of one size).
using AnyFn = void (*)(void);
AnyFn member_at(const ckh_kernels_t *k, size_t off) {
  AnyFn f = nullptr;
  if (k->struct_size >= off + sizeof(AnyFn)) std::memcpy(&f, reinterpret_cast<const char *>(k) + off, sizeof f);
  return f;
}

std::vector<KernelUse> &installed() {
  static std::vector<KernelUse> u = [] {
    const ckh_kernels_t &b = builtin_kernels();
    std::vector<KernelUse> v;
    for (const auto &m : kMembers) v.push_back({m.name, std::string("builtin (") + (b.isa ? b.isa : "?") + ")"});
    return v;
  }();
  return u;
}

}  // namespace

const std::vector<KernelUse> &kernel_uses() { return installed(); }

std::vector<KernelUse> apply_kernel_providers(const Registry &reg) {
  const ckh_kernels_t &builtin = builtin_kernels();
  ckh_kernels_t merged = builtin;
  std::vector<KernelUse> uses;
  const std::string base = std::string("builtin (") + (builtin.isa ? builtin.isa : "?") + ")";
  for (const auto &m : kMembers) uses.push_back({m.name, base});
  struct Cand {
    const Component *c;
    int32_t priority;
    size_t order;
  };
  std::vector<Cand> cands;
  const char *env = std::getenv("CKHOST_KERNELS");
  const bool builtin_only = env && std::string(env) == "builtin";
  if (!builtin_only)
    for (const Component *c : reg.all(CKH_COMPONENT_KERNELS))
      if (c->kernel_provider()->priority > 0) cands.push_back({c, c->kernel_provider()->priority, cands.size()});
  std::stable_sort(cands.begin(), cands.end(), [](const Cand &a, const Cand &b) { return a.priority > b.priority; });
  std::vector<char> taken(std::size(kMembers), 0);
  uint64_t block = 1u << 20;
  for (const Cand &cd : cands) {
    const ckh_kernel_provider_t *p = cd.c->kernel_provider();
    bool used = false;
    for (size_t i = 0; i < std::size(kMembers); ++i) {
      if (taken[i]) continue;
      AnyFn f = member_at(p->kernels, kMembers[i].offset);
      if (!f) continue;
      std::memcpy(reinterpret_cast<char *>(&merged) + kMembers[i].offset, &f, sizeof f);
      taken[i] = 1;
      used = true;
      uses[i].provider = cd.c->plugin->id + ": kernels '" + cd.c->id + "' (priority " + std::to_string(cd.priority) + ")";
    }
    if (used && CKH_HAS_FIELD(p, ckh_kernel_provider_t, preferred_work_bytes))
      block = std::max<uint64_t>(block, p->preferred_work_bytes);
  }
  merged.isa = builtin.isa;
  set_kernel_table(merged);
  set_work_block_bytes(std::clamp<uint64_t>(block, 1u << 20, 64u << 20));
  installed() = uses;
  return uses;
}

std::string describe_kernels(const std::vector<KernelUse> &uses) {
  std::string s = "kernels (work block " + std::to_string(work_block_bytes() >> 10) + " KiB):\n";
  for (const auto &u : uses) s += "  " + u.member + std::string(u.member.size() < 20 ? 20 - u.member.size() : 1, ' ') + u.provider + "\n";
  return s;
}

nlohmann::json kernels_json(const std::vector<KernelUse> &uses) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto &u : uses) j[u.member] = u.provider;
  return j;
}

std::vector<std::string> plugin_stats(const Registry &reg) {
  std::vector<std::string> out;
  for (const auto &p : reg.plugins()) {
    const ckh_plugin_t *d = p->desc;
    if (!CKH_HAS_FIELD(d, ckh_plugin_t, get_extension) || !d->get_extension) continue;
    const auto *st = static_cast<const ckh_stats_extension_t *>(d->get_extension(CKH_STATS_EXTENSION_ID));
    if (!st || st->struct_size < sizeof(ckh_stats_extension_t) || !st->count || !st->name || !st->value) continue;
    const uint32_t n = std::min<uint32_t>(st->count(), 1024);
    for (uint32_t i = 0; i < n; ++i) {
      const char *nm = st->name(i);
      out.push_back(p->id + ": " + (nm ? nm : "?") + " = " + std::to_string(st->value(i)));
    }
  }
  return out;
}

}  // namespace ckh::host
