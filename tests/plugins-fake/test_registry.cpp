// Plugin loading: every misbehaviour is refused with its reason and never crashes the host.
#include <cstdlib>
#include <thread>

#include <gtest/gtest.h>

#include "ckhost/host/registry.hpp"
#include "ckhost/host/services.hpp"

using namespace ckh::host;

namespace {
std::string dir(const char *c) { return std::string(CKH_FAKE_ROOT) + "/" + c; }

std::string only_refusal(const char *c) {
  Registry r;
  r.load({dir(c)});
  EXPECT_TRUE(r.plugins().empty()) << c;
  EXPECT_EQ(r.refused().size(), 1u) << c;
  return r.refused().empty() ? "" : r.refused()[0].reason;
}
}  // namespace

TEST(Registry, LoadsAGoodPluginAndFindsItsComponents) {
  Registry r;
  r.load({dir("ok")});
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_EQ(r.plugins()[0]->id, "org.test.fake");
  for (int32_t k : {CKH_COMPONENT_READER, CKH_COMPONENT_WRITER, CKH_COMPONENT_MAPPER, CKH_COMPONENT_QUANTIZER})
    EXPECT_NE(r.find(k, "fake"), nullptr) << k;
  EXPECT_EQ(r.find(CKH_COMPONENT_READER, "nope"), nullptr);
  auto j = r.describe_json();
  EXPECT_EQ(j["plugins"][0]["components"].size(), 4u);
  EXPECT_EQ(j["plugins"][0]["abi"], "1.0");
  EXPECT_NE(r.describe_text().find("org.test.fake"), std::string::npos);
}

TEST(Registry, RefusalReasons) {
  EXPECT_NE(only_refusal("no_entry").find("no symbol ckh_plugin_entry"), std::string::npos);
  EXPECT_NE(only_refusal("null_entry").find("returned NULL"), std::string::npos);
  EXPECT_NE(only_refusal("abi_major2").find("ABI major 2, host supports 1"), std::string::npos);
  EXPECT_NE(only_refusal("small_struct").find("too small"), std::string::npos);
  EXPECT_NE(only_refusal("init_fails").find("init failed: fake plugin refuses to start: no licence"), std::string::npos);
  EXPECT_NE(only_refusal("throws_in_init").find("init failed"), std::string::npos);
  EXPECT_NE(only_refusal("missing_symbol").find("cannot load"), std::string::npos);
}

TEST(Registry, DuplicatePluginIdFirstByNameWins) {
  Registry r;
  r.load({dir("dup_plugin_id")});
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_NE(r.plugins()[0]->path.find("ckh-a.so"), std::string::npos);
  ASSERT_EQ(r.refused().size(), 1u);
  EXPECT_NE(r.refused()[0].reason.find("already provided by"), std::string::npos);
}

TEST(Registry, DuplicateComponentIsRefusedAlone) {
  Registry r;
  r.load({dir("dup_component")});
  ASSERT_EQ(r.plugins().size(), 2u);
  EXPECT_EQ(r.find(CKH_COMPONENT_READER, "fake")->plugin->id, "org.test.first");
  bool found = false;
  for (const auto &f : r.refused())
    found = found || f.reason.find("reader 'fake' already provided by plugin org.test.first") != std::string::npos;
  EXPECT_TRUE(found);
}

TEST(Registry, BadCapabilitiesRefuseTheComponent) {
  Registry r;
  r.load({dir("bad_caps")});
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_EQ(r.find(CKH_COMPONENT_READER, "fake"), nullptr);
  EXPECT_NE(r.find(CKH_COMPONENT_WRITER, "fake"), nullptr);
}

TEST(Registry, SearchOrderCliThenEnvThenDefault) {
  ::setenv("CKHOST_PLUGIN_PATH", (dir("dup_component") + "::" + dir("ok")).c_str(), 1);
  auto d = Registry::search_dirs({dir("init_fails")});
  ASSERT_GE(d.size(), 4u);
  EXPECT_EQ(d[0], dir("init_fails"));
  EXPECT_EQ(d[1], dir("dup_component"));
  EXPECT_EQ(d[2], dir("ok"));
  EXPECT_NE(d.back().find("lib/ckhost/plugins"), std::string::npos);
  ::unsetenv("CKHOST_PLUGIN_PATH");
  // Missing directories are skipped silently; the same dir twice is scanned once.
  Registry r;
  r.load(Registry::search_dirs({"/nonexistent/plugins", dir("ok"), dir("ok")}));
  int fakes = 0;
  for (const auto &p : r.plugins()) fakes += p->id == "org.test.fake";
  EXPECT_EQ(fakes, 1);
  EXPECT_TRUE(r.refused().empty()) << r.refused()[0].reason;
}

TEST(Services, LastErrorIsPerThreadAndAllocAligns) {
  const ckh_host_t *h = host_table();
  h->set_error(h, CKH_E_FORMAT, "main thread");
  std::thread([&] {
    auto e = take_last_error();
    EXPECT_EQ(e.first, CKH_OK);
    h->set_error(h, CKH_E_IO, "worker");
    EXPECT_EQ(take_last_error().second, "worker");
  }).join();
  auto e = take_last_error();
  EXPECT_EQ(e.first, CKH_E_FORMAT);
  EXPECT_EQ(e.second, "main thread");
  void *p = h->alloc(h, 1000, 4096);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 4096, 0u);
  h->free(h, p);
  EXPECT_EQ(h->alloc(h, 10, 3), nullptr);
  EXPECT_EQ(h->get_extension(h, CKH_KERNELS_EXTENSION_ID), h->kernels);
  EXPECT_EQ(h->get_extension(h, "com.example.none/1"), nullptr);
}
