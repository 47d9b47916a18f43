// writer_glue.hpp: the C writer vtable around a C++ writer class — options and metadata parsed and
// checked, exceptions turned into statuses with the message passed to the host, finish only when the
// class has one, destroy frees the object.
#include <gtest/gtest.h>

#include <string>

#include "writer_glue.hpp"

namespace {

std::string g_error;
ckh_status g_code = CKH_OK;

const ckh_host_t *test_host() {
  static ckh_host_t h = [] {
    ckh_host_t t{};
    t.struct_size = sizeof t;
    t.log = [](const ckh_host_t *, int32_t, const char *) {};
    t.set_error = [](const ckh_host_t *, ckh_status c, const char *m) {
      g_code = c;
      g_error = m;
    };
    return t;
  }();
  return &h;
}

int g_live = 0;

struct Plain {
  int64_t n;
  std::string seen;
  explicit Plain(const nlohmann::json &o) : n(o.value("n", int64_t{1})) {
    if (n < 0) ckh::sdk::fail(CKH_E_INVALID_ARG, "--n must be >= 0");
    ++g_live;
  }
  ~Plain() { --g_live; }
  void plan(const nlohmann::json &meta, ckh_layout_builder_t *) {
    seen = meta.value("model", std::string());
    if (seen == "boom") throw std::runtime_error("boom");
  }
};

struct WithFinish : Plain {
  using Plain::Plain;
  int finished = 0;
  void finish(const ckh_region_digest_t *, uint64_t n, ckh_patcher_t *) { finished += static_cast<int>(n) + 1; }
};

template <class Impl>
Impl &impl_of(ckh_writer_t *w) {
  return static_cast<ckh::plugins::detail::WriterBox<Impl> *>(w->impl)->impl;
}

}  // namespace

TEST(WriterGlue, CreatePlanFinishDestroy) {
  ckh::sdk::set_host(test_host());
  ckh_expr_builder_t eb{};
  ckh_layout_builder_t lb{};
  lb.expr = &eb;

  ckh_writer_t *w = nullptr;
  ASSERT_EQ(ckh::plugins::create_writer<WithFinish>(nullptr, R"({"n": 3})", &w), CKH_OK);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->struct_size, sizeof(ckh_writer_t));
  EXPECT_EQ(impl_of<WithFinish>(w).n, 3);
  EXPECT_EQ(w->plan(w, R"({"model": "llama"})", &lb), CKH_OK);
  EXPECT_EQ(impl_of<WithFinish>(w).seen, "llama");
  ASSERT_NE(w->finish, nullptr);
  EXPECT_EQ(w->finish(w, nullptr, 2, nullptr), CKH_OK);
  EXPECT_EQ(impl_of<WithFinish>(w).finished, 3);
  // Plan errors: metadata that is not an object, no layout builder, a plugin exception.
  EXPECT_EQ(w->plan(w, "[1]", &lb), CKH_E_INVALID_ARG);
  EXPECT_EQ(g_error, "writer metadata: not a JSON object");
  EXPECT_EQ(w->plan(w, "{}", nullptr), CKH_E_INVALID_ARG);
  EXPECT_EQ(w->plan(w, R"({"model": "boom"})", &lb), CKH_E_INTERNAL);
  EXPECT_EQ(g_error, "internal error: boom");
  EXPECT_EQ(g_live, 1);
  w->destroy(w);
  EXPECT_EQ(g_live, 0);

  // No finish member: no finish entry (the host skips it).
  ASSERT_EQ(ckh::plugins::create_writer<Plain>(nullptr, "", &w), CKH_OK);
  EXPECT_EQ(w->finish, nullptr);
  EXPECT_EQ(impl_of<Plain>(w).n, 1);
  w->destroy(w);
  EXPECT_EQ(g_live, 0);
}

TEST(WriterGlue, RefusedOptions) {
  ckh::sdk::set_host(test_host());
  ckh_writer_t *w = reinterpret_cast<ckh_writer_t *>(0x1);
  EXPECT_EQ(ckh::plugins::create_writer<Plain>(nullptr, "not json", &w), CKH_E_INVALID_ARG);
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(g_error, "writer options: not a JSON object");
  EXPECT_EQ(g_code, CKH_E_INVALID_ARG);
  EXPECT_EQ(ckh::plugins::create_writer<Plain>(nullptr, R"({"n": -1})", &w), CKH_E_INVALID_ARG);
  EXPECT_EQ(g_error, "--n must be >= 0");
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(g_live, 0);
  EXPECT_EQ(ckh::plugins::create_writer<Plain>(nullptr, "{}", nullptr), CKH_E_INVALID_ARG);
}
