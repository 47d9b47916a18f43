// ckh_plugin.hpp — optional header-only C++17 helpers for plugin authors.
//
// Compiled into the plugin, never part of the ABI: every function here is inline and every symbol has
// the plugin's own (hidden) visibility. It gives
//   * ckh::sdk::set_host()/host(): the host table stored at init();
//   * ckh::sdk::Error + fail(): throw inside plugin code, and
//   * ckh::sdk::guard(f): run f, turning any exception into a status plus host->set_error, so nothing
//     ever unwinds through the C ABI;
//   * ckh::sdk::Builder: a throwing wrapper of ckh_expr_builder_t.
#ifndef CKHOST_CPP_CKH_PLUGIN_HPP
#define CKHOST_CPP_CKH_PLUGIN_HPP

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "../ckh.h"

namespace ckh::sdk {

inline const ckh_host_t *&host_slot() {
  static const ckh_host_t *h = nullptr;
  return h;
}
inline void set_host(const ckh_host_t *h) { host_slot() = h; }
inline const ckh_host_t *host() { return host_slot(); }
// Members appended to ckh_host_t after 1.0 are read only when the running host has them (a plugin
// built against newer headers may run on an older host): CKH_HAS_FIELD checks host->struct_size.
inline const ckh_kernels_t *kernels() {
  const ckh_host_t *h = host_slot();
  return CKH_HAS_FIELD(h, ckh_host_t, kernels) ? h->kernels : nullptr;
}
inline bool cancelled() {
  const ckh_host_t *h = host_slot();
  return CKH_HAS_FIELD(h, ckh_host_t, is_cancelled) && h->is_cancelled && h->is_cancelled(h) != 0;
}
inline const void *extension(const char *id) {
  const ckh_host_t *h = host_slot();
  return CKH_HAS_FIELD(h, ckh_host_t, get_extension) && h->get_extension ? h->get_extension(h, id) : nullptr;
}

inline void log(int32_t level, const std::string &msg) {
  if (host_slot()) host_slot()->log(host_slot(), level, msg.c_str());
}

// An error raised inside plugin code. `already_set` means the host already holds the message (a
// builder call failed), so guard() must not overwrite it.
struct Error : std::runtime_error {
  ckh_status code;
  bool already_set;
  Error(ckh_status c, const std::string &m, bool set = false) : std::runtime_error(m), code(c), already_set(set) {}
};

[[noreturn]] inline void fail(ckh_status code, const std::string &msg) { throw Error(code, msg); }

inline ckh_status report(ckh_status code, const std::string &msg) {
  if (host_slot()) host_slot()->set_error(host_slot(), code, msg.c_str());
  return code;
}

// Runs f() and maps exceptions to statuses. Use at every C entry point of a C++ plugin.
template <class F>
ckh_status guard(F &&f) noexcept {
  try {
    f();
    return CKH_OK;
  } catch (const Error &e) {
    return e.already_set ? e.code : report(e.code, e.what());
  } catch (const std::bad_alloc &) {
    return report(CKH_E_NOMEM, "out of memory");
  } catch (const std::exception &e) {
    return report(CKH_E_INTERNAL, std::string("internal error: ") + e.what());
  } catch (...) {
    return report(CKH_E_INTERNAL, "internal error: unknown exception");
  }
}

// Throwing view of a host expression builder. Valid only during the call that received it.
class Builder {
 public:
  explicit Builder(ckh_expr_builder_t *b) : b_(b) {}
  ckh_expr_builder_t *raw() const { return b_; }

  uint64_t input_count() const { return b_->input_count(b_); }
  ckh_tensor_info_t input_info(uint64_t i) const {
    ckh_tensor_info_t t{};
    t.struct_size = sizeof t;
    check(b_->input_info(b_, i, &t));
    return t;
  }
  ckh_tensor_annot_t input_annot(uint64_t i) const {
    ckh_tensor_annot_t a{};
    a.struct_size = sizeof a;
    check(b_->input_annot(b_, i, &a));
    return a;
  }
  bool has(const std::string &name) const { return b_->find_input(b_, name.c_str()) >= 0; }
  int64_t find(const std::string &name) const { return b_->find_input(b_, name.c_str()); }

  ckh_expr input(const std::string &name) { return node(b_->input(b_, name.c_str())); }
  ckh_expr input_at(uint64_t i) { return node(b_->input_at(b_, i)); }
  ckh_expr slice(ckh_expr e, uint32_t dim, int64_t start, int64_t len) {
    return node(b_->slice(b_, e, dim, start, len));
  }
  ckh_expr concat(const std::vector<ckh_expr> &parts, uint32_t dim) {
    return node(b_->concat(b_, parts.data(), static_cast<uint32_t>(parts.size()), dim));
  }
  ckh_expr reshape(ckh_expr e, const std::vector<int64_t> &shape) {
    return node(b_->reshape(b_, e, static_cast<uint32_t>(shape.size()), shape.data()));
  }
  ckh_expr permute(ckh_expr e, const std::vector<uint32_t> &perm) { return node(b_->permute(b_, e, perm.data())); }
  ckh_expr pad(ckh_expr e, uint32_t dim, int64_t before, int64_t after, int32_t mode) {
    return node(b_->pad(b_, e, dim, before, after, mode));
  }
  ckh_expr cast(ckh_expr e, ckh_dtype to) { return node(b_->cast(b_, e, to)); }
  ckh_expr scale(ckh_expr e, double f) { return node(b_->scale(b_, e, f)); }
  ckh_expr quantize(ckh_expr e, const std::string &id, const std::string &params, uint32_t out) {
    return node(b_->quantize(b_, e, id.c_str(), params.c_str(), out));
  }
  ckh_tensor_info_t info(ckh_expr e) const {
    ckh_tensor_info_t t{};
    t.struct_size = sizeof t;
    check(b_->info(b_, e, &t));
    return t;
  }
  void emit(const std::string &name, ckh_expr e, const ckh_tensor_annot_t *annot = nullptr) {
    check(b_->emit(b_, name.c_str(), e, annot));
  }
  void ignore(const std::string &name, const std::string &reason) {
    check(b_->ignore(b_, name.c_str(), reason.c_str()));
  }
  void set_metadata(const std::string &json) { check(b_->set_metadata(b_, json.c_str())); }

 private:
  static ckh_expr node(ckh_expr e) {
    if (e < 0) throw Error(CKH_E_INVALID_ARG, "expression builder failed", true);
    return e;
  }
  static void check(ckh_status s) {
    if (s != CKH_OK) throw Error(s, "expression builder failed", true);
  }
  ckh_expr_builder_t *b_;
};

inline ckh_tensor_annot_t annot(int32_t role = CKH_ROLE_OTHER, int32_t layer = -1) {
  ckh_tensor_annot_t a{};
  a.struct_size = sizeof a;
  a.role = role;
  a.layer = layer;
  a.expert = -1;
  a.split_dim = -1;
  return a;
}

}  // namespace ckh::sdk

#endif  // CKHOST_CPP_CKH_PLUGIN_HPP
