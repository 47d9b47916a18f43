// services.cpp — the ckh_host_t table handed to plugins, logging, last-error slot, cancellation.
#include "ckhost/host/services.hpp"

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <ckhost/ckh_version.h>
#include <ckhost/kernels/kernels.hpp>

namespace ckh::host {

namespace {

std::atomic<int> g_level{CKH_LOG_INFO};
// Written from a SIGINT handler: only a lock-free atomic store is async-signal-safe.
std::atomic<bool> g_cancel{false};
static_assert(std::atomic<bool>::is_always_lock_free, "request_cancel() must be async-signal-safe");
std::mutex g_log_mutex;

struct LastError {
  ckh_status code = CKH_OK;
  std::string msg;
};
LastError &slot() {
  static thread_local LastError e;
  return e;
}

const char *level_name(int level) {
  switch (level) {
    case CKH_LOG_DEBUG: return "debug";
    case CKH_LOG_INFO: return "info";
    case CKH_LOG_WARN: return "warning";
    default: return "error";
  }
}

// The table's entries: plugins call them through C function pointers, so nothing may escape them.
void h_log(const ckh_host_t *, int32_t level, const char *msg) noexcept {
  try {
    log(level, msg ? msg : "");
  } catch (...) {
  }
}
void h_set_error(const ckh_host_t *, ckh_status code, const char *msg) noexcept {
  try {
    set_last_error(code, msg ? msg : "");
  } catch (...) {  // out of memory while copying the message: keep the code at least
    slot().code = code ? code : CKH_E_INTERNAL;
  }
}
void *h_alloc(const ckh_host_t *, uint64_t size, uint64_t align) noexcept {
  if (align == 0) align = 16;
  // A power of two, at most 1 MiB (larger alignments are a plugin bug, not a request to honour).
  if ((align & (align - 1)) != 0 || align > (1u << 20)) return nullptr;
  if (size > SIZE_MAX - align) return nullptr;
  if (align < sizeof(void *)) align = sizeof(void *);
  void *p = nullptr;
  if (::posix_memalign(&p, static_cast<size_t>(align), size ? static_cast<size_t>(size) : 1) != 0) return nullptr;
  return p;
}
void h_free(const ckh_host_t *, void *p) noexcept { std::free(p); }
const void *h_get_extension(const ckh_host_t *, const char *id) noexcept {
  if (id && std::strcmp(id, CKH_KERNELS_EXTENSION_ID) == 0) return host_table()->kernels;
  return nullptr;
}
uint8_t h_is_cancelled(const ckh_host_t *) noexcept { return cancelled() ? 1 : 0; }

ckh_kernels_t &kernel_table() {
  static ckh_kernels_t k = *ckh::kernels::best();
  return k;
}
std::atomic<uint64_t> g_work_block{1u << 20};

}  // namespace

void set_kernel_table(const ckh_kernels_t &k) { kernel_table() = k; }
const ckh_kernels_t &builtin_kernels() { return *ckh::kernels::best(); }
uint64_t work_block_bytes() { return g_work_block.load(); }
void set_work_block_bytes(uint64_t n) { g_work_block = n; }

const ckh_host_t *host_table() {
  static const ckh_host_t table = [] {
    ckh_host_t h{};
    h.struct_size = sizeof h;
    h.abi_major = CKH_ABI_MAJOR;
    h.abi_minor = CKH_ABI_MINOR;
    h.host_name = "ckhost";
    h.host_version = CKH_VERSION_STRING;
    h.log = h_log;
    h.set_error = h_set_error;
    h.alloc = h_alloc;
    h.free = h_free;
    h.get_extension = h_get_extension;
    h.is_cancelled = h_is_cancelled;
    h.kernels = &kernel_table();  // the built-in table, merged with kernel providers once plugins load
    return h;
  }();
  return &table;
}

void set_log_level(int level) { g_level = level; }

void log(int level, const std::string &msg) {
  if (level < g_level.load()) return;
  std::lock_guard<std::mutex> lk(g_log_mutex);
  std::fprintf(stderr, "ckhost: %s: %s\n", level_name(level), msg.c_str());
}

void set_last_error(ckh_status code, const std::string &msg) {
  slot().code = code ? code : CKH_E_INTERNAL;
  slot().msg = msg;
}

std::pair<ckh_status, std::string> take_last_error() {
  auto r = std::make_pair(slot().code, slot().msg);
  slot() = LastError{};
  return r;
}

void clear_last_error() { slot() = LastError{}; }

void request_cancel() { g_cancel.store(true, std::memory_order_relaxed); }
bool cancelled() { return g_cancel.load(std::memory_order_relaxed); }

}  // namespace ckh::host
