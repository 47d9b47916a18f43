// writer_glue.hpp — the C writer vtable (ckh_writer_t) around a C++ writer object, for the in-tree
// plugins. A writer class Impl provides
//   explicit Impl(const nlohmann::json &options);   // may throw ckh::sdk::Error to refuse the options
//   void plan(const nlohmann::json &meta, ckh_layout_builder_t *lb);
//   void finish(const ckh_region_digest_t *digests, uint64_t n, ckh_patcher_t *p);   // optional
// and its component names `ckh::plugins::create_writer<Impl>` as the class's create function. Options
// and metadata that are not JSON objects are refused; exceptions become statuses with the message
// kept by the host (ckh::sdk::guard).
#pragma once
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_writer.h>
#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::plugins {

// `text` parsed as a JSON object ("{}" when null or empty). Throws CKH_E_INVALID_ARG naming `what`.
nlohmann::json parse_json_object(const char *text, const char *what);

namespace detail {
template <class T, class = void>
struct has_finish : std::false_type {};
template <class T>
struct has_finish<T, std::void_t<decltype(std::declval<T &>().finish(static_cast<const ckh_region_digest_t *>(nullptr),
                                                                     uint64_t{0}, static_cast<ckh_patcher_t *>(nullptr)))>>
    : std::true_type {};

template <class Impl>
struct WriterBox {
  ckh_writer_t vt{};
  Impl impl;
  explicit WriterBox(const nlohmann::json &options) : impl(options) {}
  static Impl &of(ckh_writer_t *w) { return static_cast<WriterBox *>(w->impl)->impl; }
};
}  // namespace detail

template <class Impl>
ckh_status create_writer(const ckh_writer_class_t *, const char *options_json, ckh_writer_t **out) {
  if (out) *out = nullptr;
  return ckh::sdk::guard([&] {
    if (!out) ckh::sdk::fail(CKH_E_INVALID_ARG, "create: null output");
    using Box = detail::WriterBox<Impl>;
    auto box = std::make_unique<Box>(parse_json_object(options_json, "writer options"));
    box->vt.struct_size = sizeof box->vt;
    box->vt.impl = box.get();
    box->vt.plan = [](ckh_writer_t *x, const char *meta, ckh_layout_builder_t *lb) -> ckh_status {
      return ckh::sdk::guard([&] {
        if (!lb || !lb->expr) ckh::sdk::fail(CKH_E_INVALID_ARG, "plan: no layout builder");
        Box::of(x).plan(parse_json_object(meta, "writer metadata"), lb);
      });
    };
    if constexpr (detail::has_finish<Impl>::value)
      box->vt.finish = [](ckh_writer_t *x, const ckh_region_digest_t *d, uint64_t n, ckh_patcher_t *p) -> ckh_status {
        return ckh::sdk::guard([&] { Box::of(x).finish(d, n, p); });
      };
    box->vt.destroy = [](ckh_writer_t *x) {
      if (x) delete static_cast<Box *>(x->impl);
    };
    *out = &box.release()->vt;
  });
}

}  // namespace ckh::plugins
