// Plugin registry and host services. The fake plugins (tests/plugins-fake) each sit in their own
// directory; every misbehaviour must be refused with a precise one-line reason and never crash the host.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include <ckhost/ckh_version.h>

#include "ckhost/host/error.hpp"
#include "ckhost/host/options.hpp"
#include "ckhost/host/registry.hpp"
#include "ckhost/host/services.hpp"

namespace fs = std::filesystem;
using namespace ckh::host;

namespace {

const std::string &root() {
  static const std::string r = fs::canonical(CKH_FAKE_OK_DIR).parent_path().string();
  return r;
}
std::string dir(const std::string &c) { return root() + "/" + c; }
std::string so(const std::string &c, const std::string &name) { return dir(c) + "/ckh-" + name + ".so"; }

bool has(const std::string &hay, const std::string &needle) { return hay.find(needle) != std::string::npos; }

// Sets (or unsets) an environment variable for one scope.
class EnvGuard {
 public:
  EnvGuard(const char *name, const char *value) : name_(name) {
    if (const char *old = std::getenv(name)) old_ = old;
    if (value)
      ::setenv(name, value, 1);
    else
      ::unsetenv(name);
  }
  ~EnvGuard() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }

 private:
  const char *name_;
  std::optional<std::string> old_;
};

// Restores the log threshold at scope exit.
struct LogLevelGuard {
  explicit LogLevelGuard(int level) { set_log_level(level); }
  ~LogLevelGuard() { set_log_level(CKH_LOG_INFO); }
};

const int32_t kAllKinds[] = {CKH_COMPONENT_READER, CKH_COMPONENT_WRITER, CKH_COMPONENT_MAPPER, CKH_COMPONENT_QUANTIZER};

}  // namespace

// ---------------------------------------------------------------------------------------------------
// Accepted plugins

TEST(Registry, OkPluginComponentsAreFoundByKindAndId) {
  Registry r;
  r.load({dir("ok")});
  EXPECT_TRUE(r.refused().empty()) << r.describe_text();
  ASSERT_EQ(r.plugins().size(), 1u);
  const LoadedPlugin &p = *r.plugins()[0];
  EXPECT_EQ(p.id, "org.test.fake");
  EXPECT_EQ(p.version, "1.0");
  EXPECT_EQ(p.vendor, "Test");
  EXPECT_EQ(p.description, "fake plugin");
  EXPECT_EQ(p.path, so("ok", "ok"));
  EXPECT_EQ(p.abi_major, uint32_t(CKH_ABI_MAJOR));
  EXPECT_EQ(p.abi_minor, uint32_t(CKH_ABI_MINOR));
  EXPECT_NE(p.desc, nullptr);
  EXPECT_TRUE(p.library);
  ASSERT_EQ(p.components.size(), 4u);
  for (int32_t k : kAllKinds) {
    const Component *c = r.find(k, "fake");
    ASSERT_NE(c, nullptr) << component_kind_name(k);
    EXPECT_EQ(c->kind, k);
    EXPECT_EQ(c->plugin, &p);
    EXPECT_EQ(c->description, std::string("fake ") + component_kind_name(k));
    EXPECT_TRUE(c->capabilities.is_object());
    EXPECT_NE(c->vtable, nullptr);
    EXPECT_EQ(r.all(k).size(), 1u);
    EXPECT_EQ(r.find(k, "nope"), nullptr);
  }
  EXPECT_EQ(r.find(CKH_COMPONENT_READER, "fake")->capabilities["layout"], "test");
  EXPECT_EQ(r.find(CKH_COMPONENT_MAPPER, "fake")->capabilities["family"], "fake");
  // The typed accessors see the plugin's vtables.
  EXPECT_NE(r.find(CKH_COMPONENT_READER, "fake")->reader()->open, nullptr);
  EXPECT_NE(r.find(CKH_COMPONENT_WRITER, "fake")->writer()->create, nullptr);
  EXPECT_NE(r.find(CKH_COMPONENT_MAPPER, "fake")->mapper()->map, nullptr);
  EXPECT_NE(r.find(CKH_COMPONENT_QUANTIZER, "fake")->quantizer()->quantize, nullptr);
  EXPECT_EQ(r.find(CKH_COMPONENT_MAPPER, "fake")->mapper()->canonical, nullptr);  // optional member
  EXPECT_EQ(r.find(99, "fake"), nullptr);
  EXPECT_TRUE(r.all(99).empty());
}

TEST(Registry, ComponentKindNames) {
  EXPECT_STREQ(component_kind_name(CKH_COMPONENT_READER), "reader");
  EXPECT_STREQ(component_kind_name(CKH_COMPONENT_WRITER), "writer");
  EXPECT_STREQ(component_kind_name(CKH_COMPONENT_MAPPER), "mapper");
  EXPECT_STREQ(component_kind_name(CKH_COMPONENT_QUANTIZER), "quantizer");
  EXPECT_STREQ(component_kind_name(0), "?");
  EXPECT_STREQ(component_kind_name(CKH_COMPONENT_KERNELS), "kernels");
  EXPECT_STREQ(component_kind_name(CKH_COMPONENT_COMMAND), "command");
  EXPECT_STREQ(component_kind_name(7), "?");
}

TEST(Registry, NewerMinorWithAppendedFieldsIsAccepted) {
  Registry r;
  r.load({dir("newer_minor")});
  EXPECT_TRUE(r.refused().empty()) << r.describe_text();
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_EQ(r.plugins()[0]->abi_minor, uint32_t(CKH_ABI_MINOR + 1));
  EXPECT_EQ(r.describe_json()["plugins"][0]["abi"],
            std::to_string(CKH_ABI_MAJOR) + "." + std::to_string(CKH_ABI_MINOR + 1));
  EXPECT_EQ(r.plugins()[0]->components.size(), 4u);
}

// ---------------------------------------------------------------------------------------------------
// Refused plugins: one case directory, one refusal, the expected reason, nothing accepted.

struct RefusalCase {
  const char *dir;
  std::string reason;  // expected substring
};
void PrintTo(const RefusalCase &c, std::ostream *os) { *os << c.dir; }

class PluginRefusal : public ::testing::TestWithParam<RefusalCase> {};

TEST_P(PluginRefusal, IsReportedWithItsReason) {
  const RefusalCase &c = GetParam();
  Registry r;
  r.load({dir(c.dir)});
  EXPECT_TRUE(r.plugins().empty()) << r.describe_text();
  ASSERT_EQ(r.refused().size(), 1u) << r.describe_text();
  EXPECT_EQ(r.refused()[0].path, so(c.dir, c.dir));
  const std::string &why = r.refused()[0].reason;
  EXPECT_TRUE(has(why, c.reason)) << "reason: " << why << "\nexpected: " << c.reason;
  EXPECT_FALSE(has(why, "\n")) << why;
  for (int32_t k : kAllKinds) EXPECT_TRUE(r.all(k).empty());
  // The refusal is listed, in both forms.
  EXPECT_TRUE(has(r.describe_text(), "refused:\n  " + so(c.dir, c.dir) + ": " + why + "\n")) << r.describe_text();
  auto j = r.describe_json();
  ASSERT_EQ(j["refused"].size(), 1u);
  EXPECT_EQ(j["refused"][0]["path"], so(c.dir, c.dir));
  EXPECT_EQ(j["refused"][0]["reason"], why);
}

INSTANTIATE_TEST_SUITE_P(
    FakePlugins, PluginRefusal,
    ::testing::Values(
        RefusalCase{"no_entry", "no symbol ckh_plugin_entry"},
        RefusalCase{"null_entry", "ckh_plugin_entry() returned NULL"},
        RefusalCase{"abi_major2", "ABI major 2, host supports " + std::to_string(CKH_ABI_MAJOR)},
        RefusalCase{"small_struct",
                    "descriptor struct_size 8 is too small (need at least " +
                        std::to_string(offsetof(ckh_plugin_t, get_extension)) + ")"},  // the 1.0 layout
        RefusalCase{"no_id", "descriptor has no plugin id"},
        RefusalCase{"no_init", "plugin org.test.fake: descriptor has no init()"},
        RefusalCase{"null_components", "plugin org.test.fake: descriptor lists 4 components but components is NULL"},
        RefusalCase{"init_fails", "init failed: fake plugin refuses to start: no licence"},
        RefusalCase{"throws_in_init", "init failed: init() threw an exception: boom"},
        // dlerror()'s text, not Boost.DLL's generic EBADF.
        RefusalCase{"missing_symbol", "cannot load: undefined symbol: ckh_fake_symbol_that_does_not_exist"}),
    [](const ::testing::TestParamInfo<RefusalCase> &i) { return std::string(i.param.dir); });

TEST(Registry, UnreadableFileIsRefusedWithTheLoaderMessage) {
  // A file that only looks like a plugin.
  const fs::path tmp = fs::temp_directory_path() / ("ckh-reg-" + std::to_string(::getpid()));
  fs::create_directories(tmp);
  {
    FILE *f = std::fopen((tmp / "ckh-text.so").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs("not an ELF file\n", f);
    std::fclose(f);
  }
  fs::create_directories(tmp / "ckh-dir.so");   // a directory with a plugin's name: not a plugin
  fs::copy_file(so("ok", "ok"), tmp / "libckh-x.so");  // wrong prefix: ignored
  fs::copy_file(so("ok", "ok"), tmp / "ckh-y.so.1");   // wrong suffix: ignored
  Registry r;
  r.load({tmp.string()});
  EXPECT_TRUE(r.plugins().empty());
  ASSERT_EQ(r.refused().size(), 1u) << r.describe_text();
  EXPECT_EQ(r.refused()[0].path, (fs::canonical(tmp) / "ckh-text.so").string());
  EXPECT_TRUE(has(r.refused()[0].reason, "cannot load: ")) << r.refused()[0].reason;
  EXPECT_FALSE(has(r.refused()[0].reason, "Bad file descriptor")) << r.refused()[0].reason;
  fs::remove_all(tmp);
}

TEST(Registry, EachBrokenComponentIsRefusedAlone) {
  Registry r;
  r.load({dir("bad_components")});
  ASSERT_EQ(r.plugins().size(), 1u) << r.describe_text();
  const std::string path = so("bad_components", "bad_components");
  ASSERT_EQ(r.plugins()[0]->components.size(), 1u);
  EXPECT_NE(r.find(CKH_COMPONENT_READER, "good"), nullptr);
  const std::vector<std::string> expected = {
      "component #0 is NULL",
      "component #1: component struct_size 8 is too small (need at least " + std::to_string(sizeof(ckh_component_t)) + ")",
      "component #2: invalid kind 9",
      "component #3 (reader): NULL or empty id",
      "reader 'novtable': NULL vtable",
      "reader 'vtsmall': vtable struct_size 16 is too small (need at least " +
          std::to_string(sizeof(ckh_reader_class_t)) + ")",
      "reader 'noopen': vtable member open is NULL",
      "reader 'good' already provided by plugin org.test.badcomponents (" + path + ")",
      "reader 'capsarray': invalid capabilities_json: a JSON array, not an object",
  };
  ASSERT_EQ(r.refused().size(), expected.size()) << r.describe_text();
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(r.refused()[i].path, path);
    EXPECT_EQ(r.refused()[i].reason, expected[i]);
  }
}

TEST(Registry, InvalidCapabilitiesJsonRefusesTheComponent) {
  Registry r;
  r.load({dir("bad_caps_json")});
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_EQ(r.find(CKH_COMPONENT_READER, "fake"), nullptr);
  EXPECT_NE(r.find(CKH_COMPONENT_WRITER, "fake"), nullptr);
  EXPECT_NE(r.find(CKH_COMPONENT_MAPPER, "fake"), nullptr);
  EXPECT_NE(r.find(CKH_COMPONENT_QUANTIZER, "fake"), nullptr);
  ASSERT_EQ(r.refused().size(), 1u);
  EXPECT_EQ(r.refused()[0].path, so("bad_caps_json", "bad_caps_json"));
  EXPECT_TRUE(has(r.refused()[0].reason, "reader 'fake': invalid capabilities_json: parse error at line 1"))
      << r.refused()[0].reason;
  EXPECT_FALSE(has(r.refused()[0].reason, "[json.exception")) << r.refused()[0].reason;
}

TEST(Registry, DeclaredOptionsAreCheckedAtLoad) {
  Registry r;
  r.load({dir("bad_options")});
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_NE(r.find(CKH_COMPONENT_READER, "fake"), nullptr);
  EXPECT_EQ(r.find(CKH_COMPONENT_WRITER, "fake"), nullptr);
  EXPECT_EQ(r.find(CKH_COMPONENT_MAPPER, "fake"), nullptr);
  EXPECT_EQ(r.find(CKH_COMPONENT_QUANTIZER, "fake"), nullptr);
  ASSERT_EQ(r.refused().size(), 3u);
  EXPECT_TRUE(has(r.refused()[0].reason, "writer 'fake': option --level is declared as string (key 'level'), but "
                                         "reader fake declares it as uint (key 'level')"))
      << r.refused()[0].reason;
  EXPECT_TRUE(has(r.refused()[1].reason, "mapper 'fake': invalid option declaration: option --dtype is reserved by the host"))
      << r.refused()[1].reason;
  EXPECT_TRUE(has(r.refused()[2].reason, "quantizer 'fake': invalid option declaration: option --bits: unknown type 'complex'"))
      << r.refused()[2].reason;
  const auto decls = declared_options(r);
  ASSERT_EQ(decls.size(), 1u);
  EXPECT_EQ(decls[0].name, "level");
  EXPECT_EQ(decls[0].owners, std::vector<std::string>{"reader fake"});
  EXPECT_EQ(option_help(decls[0]), "how much (default 3) [reader fake]");
}

TEST(Options, ParseDeclarations) {
  const auto caps = nlohmann::json::parse(R"({"options":[
      {"name":"tp","type":"uint","default":1,"help":"tensor-parallel size","group":"megatron"},
      {"name":"pp-layers"},
      {"name":"mode","choices":["a","b"],"key":"the_mode"}]})");
  const auto d = parse_option_decls(caps);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].key, "tp");
  EXPECT_EQ(d[0].def, 1);
  EXPECT_EQ(d[1].type, "string");
  EXPECT_EQ(d[1].key, "pp_layers");
  EXPECT_EQ(d[2].key, "the_mode");
  EXPECT_TRUE(parse_option_decls(nlohmann::json::object()).empty());
  for (const char *bad : {R"({"options":{}})", R"({"options":[{"name":"Bad_Name"}]})", R"({"options":[{"name":"x"},{"name":"x"}]})",
                          R"({"options":[{"name":"force"}]})", R"({"options":[{"name":"x","choices":[1]}]})",
                          R"({"options":[{"name":"x","help":3}]})", R"({"options":[7]})"})
    EXPECT_THROW(parse_option_decls(nlohmann::json::parse(bad)), std::invalid_argument) << bad;
}

// Options whose owners a conversion does not run are named with their owners; policy options never.
TEST(Options, UnusedOptionsAreNamed) {
  const auto d = parse_option_decls(nlohmann::json::parse(R"({"options":[
      {"name":"tp"}, {"name":"guard","type":"bool","policy":true}, {"name":"scale"}]})"));
  ASSERT_EQ(d.size(), 3u);
  EXPECT_FALSE(d[0].policy);
  EXPECT_TRUE(d[1].policy);
  std::vector<OptionDecl> decls = d;
  decls[0].owners = {"writer megatron", "writer torch-dist"};
  decls[1].owners = {"quantizer q"};
  decls[2].owners = {"quantizer q"};
  const std::vector<std::string> ran = {"reader hf", "mapper llama", "writer hf"};
  const auto bad = unused_options(decls, {"tp", "guard", "scale"}, ran);
  ASSERT_EQ(bad.size(), 2u);
  EXPECT_EQ(bad[0], "--tp is an option of writer megatron, writer torch-dist, which this conversion (reader hf, mapper llama, "
                    "writer hf) does not run");
  EXPECT_NE(bad[1].find("--scale is an option of quantizer q"), std::string::npos);
  EXPECT_TRUE(unused_options(decls, {"tp"}, {"reader hf", "writer torch-dist"}).empty());
  EXPECT_TRUE(unused_options(decls, {}, ran).empty());
  EXPECT_THROW(parse_option_decls(nlohmann::json::parse(R"({"options":[{"name":"x","policy":"yes"}]})")), std::invalid_argument);
}

TEST(Options, ValuesAreTypedAndChecked) {
  auto decl = [](const char *type, std::vector<std::string> choices = {}) {
    OptionDecl d;
    d.name = "x";
    d.key = "x";
    d.type = type;
    d.choices = std::move(choices);
    return d;
  };
  EXPECT_EQ(option_value(decl("uint"), "12"), 12u);
  EXPECT_EQ(option_value(decl("int"), "-3"), -3);
  EXPECT_EQ(option_value(decl("float"), "0.5"), 0.5);
  EXPECT_EQ(option_value(decl("size"), "2KiB"), 2048u);
  EXPECT_EQ(option_value(decl("json"), R"([["a","b"]])"), nlohmann::json::parse(R"([["a","b"]])"));
  EXPECT_EQ(option_value(decl("string", {"te", "local"}), "local"), "local");
  EXPECT_EQ(option_value(decl("bool"), "false"), false);
  for (const auto &[t, v] : std::vector<std::pair<const char *, const char *>>{
           {"uint", "-1"}, {"uint", "3x"}, {"int", ""}, {"float", "fast"}, {"size", "big"}, {"json", "[1,"}, {"bool", "maybe"}})
    EXPECT_THROW(option_value(decl(t), v), Error) << t << " " << v;
  try {
    option_value(decl("string", {"te", "local"}), "bert");
    FAIL();
  } catch (const Error &e) {
    EXPECT_STREQ(e.what(), "--x: expected one of te, local, got 'bert'");
  }
}

TEST(Registry, EveryCaseAtOnceNeverCrashes) {
  std::vector<std::string> dirs;
  for (const auto &e : fs::directory_iterator(root()))
    if (e.is_directory()) dirs.push_back(e.path().string());
  Registry r;
  r.load(dirs);
  r.load(dirs);  // a second scan of the same directories refuses every id as taken, and still survives
  EXPECT_FALSE(r.plugins().empty());
  EXPECT_GT(r.refused().size(), 10u);
  EXPECT_FALSE(r.describe_text().empty());
  EXPECT_TRUE(r.describe_json()["plugins"].is_array());
}

// ---------------------------------------------------------------------------------------------------
// Duplicate rules

TEST(Registry, DuplicatePluginIdFirstByNameWins) {
  Registry r;
  r.load({dir("dup_plugin_id")});
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_EQ(r.plugins()[0]->path, so("dup_plugin_id", "a"));
  EXPECT_NE(r.find(CKH_COMPONENT_READER, "one"), nullptr);
  EXPECT_EQ(r.find(CKH_COMPONENT_READER, "two"), nullptr);
  ASSERT_EQ(r.refused().size(), 1u);
  EXPECT_EQ(r.refused()[0].path, so("dup_plugin_id", "b"));
  EXPECT_EQ(r.refused()[0].reason, "plugin id org.test.fake already provided by " + so("dup_plugin_id", "a"));
}

TEST(Registry, DuplicateComponentIsRefusedAloneAndNamesTheWinner) {
  Registry r;
  r.load({dir("dup_component")});
  ASSERT_EQ(r.plugins().size(), 2u);
  EXPECT_EQ(r.plugins()[0]->id, "org.test.first");
  EXPECT_EQ(r.plugins()[1]->id, "org.test.second");
  EXPECT_TRUE(r.plugins()[1]->components.empty());  // all four of its components were taken
  for (int32_t k : kAllKinds) {
    ASSERT_NE(r.find(k, "fake"), nullptr);
    EXPECT_EQ(r.find(k, "fake")->plugin->id, "org.test.first");
  }
  ASSERT_EQ(r.refused().size(), 4u);
  const std::string winner = " already provided by plugin org.test.first (" + so("dup_component", "a") + ")";
  EXPECT_EQ(r.refused()[0].reason, "reader 'fake'" + winner);
  EXPECT_EQ(r.refused()[1].reason, "writer 'fake'" + winner);
  EXPECT_EQ(r.refused()[2].reason, "mapper 'fake'" + winner);
  EXPECT_EQ(r.refused()[3].reason, "quantizer 'fake'" + winner);
  for (const auto &f : r.refused()) EXPECT_EQ(f.path, so("dup_component", "b"));
}

TEST(Registry, EarlierDirectoryWinsAcrossDirectories) {
  {
    Registry r;
    r.load({dir("ok"), dir("dup_component")});
    EXPECT_EQ(r.find(CKH_COMPONENT_READER, "fake")->plugin->id, "org.test.fake");
    EXPECT_EQ(r.plugins().size(), 3u);
    EXPECT_EQ(r.refused().size(), 8u);
  }
  {
    Registry r;
    r.load({dir("dup_component"), dir("ok")});
    EXPECT_EQ(r.find(CKH_COMPONENT_READER, "fake")->plugin->id, "org.test.first");
  }
  {
    // A second load() into the same registry keeps what is already there.
    Registry r;
    r.load({dir("ok")});
    r.load({dir("dup_plugin_id")});
    ASSERT_EQ(r.plugins().size(), 1u);
    EXPECT_EQ(r.refused().size(), 2u);
    EXPECT_TRUE(has(r.refused()[0].reason, "plugin id org.test.fake already provided by " + so("ok", "ok")));
  }
}

// ---------------------------------------------------------------------------------------------------
// Search directories

TEST(Registry, SearchDirsCliThenEnvThenDefault) {
  const std::string exe_dir = fs::canonical("/proc/self/exe").parent_path().string();
  const std::string def = fs::weakly_canonical(fs::path(exe_dir).parent_path() / CKH_PLUGIN_SUBDIR).string();
  {
    EnvGuard env("CKHOST_PLUGIN_PATH", (":" + dir("dup_component") + "::" + dir("ok") + ":").c_str());
    auto d = Registry::search_dirs({dir("init_fails"), dir("no_entry")});
    const std::vector<std::string> want = {dir("init_fails"), dir("no_entry"), dir("dup_component"), dir("ok"), def};
    EXPECT_EQ(d, want);
  }
  {
    EnvGuard env("CKHOST_PLUGIN_PATH", nullptr);
    EXPECT_EQ(Registry::search_dirs({}), std::vector<std::string>{def});
    EXPECT_EQ(Registry::search_dirs({dir("ok")}), (std::vector<std::string>{dir("ok"), def}));
  }
  {
    EnvGuard env("CKHOST_PLUGIN_PATH", "");
    EXPECT_EQ(Registry::search_dirs({""}), std::vector<std::string>{def});
  }
}

TEST(Registry, SearchDirsAreCanonicalAndDeduplicated) {
  // The same directory spelled three ways, in the CLI and in the environment, appears once, first.
  const std::string messy = root() + "/./ok/../ok/";
  EnvGuard env("CKHOST_PLUGIN_PATH", (dir("ok") + ":" + messy + ":" + dir("null_entry")).c_str());
  auto d = Registry::search_dirs({messy, dir("no_entry"), dir("ok")});
  ASSERT_GE(d.size(), 4u);
  EXPECT_EQ(d[0], dir("ok"));
  EXPECT_EQ(d[1], dir("no_entry"));
  EXPECT_EQ(d[2], dir("null_entry"));
  EXPECT_EQ(d.size(), 4u);  // + the default
  for (const auto &x : d) EXPECT_TRUE(fs::path(x).is_absolute()) << x;
  // A relative directory becomes absolute.
  const fs::path cwd = fs::current_path();
  fs::current_path(root());
  auto rel = Registry::search_dirs({"ok"});
  fs::current_path(cwd);
  EXPECT_EQ(rel[0], dir("ok"));
}

TEST(Registry, CliDirectoryBeatsEnvironmentWhenLoading) {
  {
    EnvGuard env("CKHOST_PLUGIN_PATH", dir("dup_component").c_str());
    Registry r;
    r.load(Registry::search_dirs({dir("ok")}));
    EXPECT_EQ(r.find(CKH_COMPONENT_READER, "fake")->plugin->id, "org.test.fake");
  }
  {
    EnvGuard env("CKHOST_PLUGIN_PATH", dir("ok").c_str());
    Registry r;
    r.load(Registry::search_dirs({dir("dup_component")}));
    EXPECT_EQ(r.find(CKH_COMPONENT_READER, "fake")->plugin->id, "org.test.first");
  }
}

TEST(Registry, MissingDirectoriesAreSkippedAndRepeatsScannedOnce) {
  Registry r;
  r.load({"/nonexistent/ckhost/plugins", dir("ok"), dir("ok"), root() + "/ok/.", so("ok", "ok")});
  ASSERT_EQ(r.plugins().size(), 1u);
  EXPECT_TRUE(r.refused().empty()) << r.describe_text();
}

// ---------------------------------------------------------------------------------------------------
// init / deinit

TEST(Registry, InitOncePerAcceptedPluginDeinitInReverseOrder) {
  LogLevelGuard level(CKH_LOG_DEBUG);
  ::testing::internal::CaptureStderr();
  {
    Registry r;
    r.load({dir("dup_component"), dir("init_fails"), dir("no_init")});
    EXPECT_EQ(r.plugins().size(), 2u);
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  const auto i1 = err.find("ckhost: debug: fake init org.test.first\n");
  const auto i2 = err.find("ckhost: debug: fake init org.test.second\n");
  const auto d2 = err.find("ckhost: debug: fake deinit org.test.second\n");
  const auto d1 = err.find("ckhost: debug: fake deinit org.test.first\n");
  ASSERT_NE(i1, std::string::npos) << err;
  ASSERT_NE(i2, std::string::npos) << err;
  ASSERT_NE(d1, std::string::npos) << err;
  ASSERT_NE(d2, std::string::npos) << err;
  EXPECT_LT(i1, i2);
  EXPECT_LT(i2, d2);
  EXPECT_LT(d2, d1);  // reverse load order
  EXPECT_EQ(err.find("fake init org.test.first\n", i1 + 30), std::string::npos);  // once
  // Neither the plugin whose init failed nor the one that has no init is deinitialised.
  EXPECT_FALSE(has(err, "org.test.fake")) << err;
}

// ---------------------------------------------------------------------------------------------------
// Listings

TEST(Registry, DescribeJsonStructure) {
  Registry r;
  r.load({dir("ok"), dir("abi_major2")});
  auto j = r.describe_json();
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.size(), 2u);
  ASSERT_TRUE(j["plugins"].is_array());
  ASSERT_EQ(j["plugins"].size(), 1u);
  const auto &p = j["plugins"][0];
  for (const char *k : {"id", "version", "vendor", "description", "path", "abi"}) {
    ASSERT_TRUE(p.contains(k)) << k;
    EXPECT_TRUE(p[k].is_string()) << k;
  }
  EXPECT_EQ(p["id"], "org.test.fake");
  EXPECT_EQ(p["version"], "1.0");
  EXPECT_EQ(p["vendor"], "Test");
  EXPECT_EQ(p["description"], "fake plugin");
  EXPECT_EQ(p["path"], so("ok", "ok"));
  EXPECT_EQ(p["abi"], std::to_string(CKH_ABI_MAJOR) + "." + std::to_string(CKH_ABI_MINOR));
  ASSERT_TRUE(p["components"].is_array());
  ASSERT_EQ(p["components"].size(), 4u);
  const char *kinds[] = {"reader", "writer", "mapper", "quantizer"};
  for (size_t i = 0; i < 4; ++i) {
    const auto &c = p["components"][i];
    EXPECT_EQ(c.size(), 4u);
    EXPECT_EQ(c["kind"], kinds[i]);
    EXPECT_EQ(c["id"], "fake");
    EXPECT_EQ(c["description"], std::string("fake ") + kinds[i]);
    EXPECT_TRUE(c["capabilities"].is_object());
  }
  EXPECT_EQ(p["components"][0]["capabilities"], nlohmann::json({{"layout", "test"}}));
  ASSERT_TRUE(j["refused"].is_array());
  ASSERT_EQ(j["refused"].size(), 1u);
  EXPECT_EQ(j["refused"][0].size(), 2u);
  EXPECT_EQ(j["refused"][0]["path"], so("abi_major2", "abi_major2"));
  EXPECT_EQ(j["refused"][0]["reason"], "ABI major 2, host supports " + std::to_string(CKH_ABI_MAJOR));
  // Round-trips through text.
  EXPECT_EQ(nlohmann::json::parse(j.dump()), j);
}

TEST(Registry, DescribeText) {
  Registry r;
  r.load({dir("ok"), dir("abi_major2")});
  const std::string t = r.describe_text();
  EXPECT_EQ(t.rfind("org.test.fake 1.0 (Test) " + so("ok", "ok") + "\n", 0), 0u) << t;
  EXPECT_TRUE(has(t, "\n  fake plugin\n")) << t;
  EXPECT_TRUE(has(t, "\n  reader     fake      fake reader     {\"layout\":\"test\"}\n")) << t;
  EXPECT_TRUE(has(t, "\n  quantizer  fake      fake quantizer  {}\n")) << t;
  EXPECT_TRUE(has(t, "\nrefused:\n  " + so("abi_major2", "abi_major2") + ": ABI major 2, host supports 1\n")) << t;

  Registry empty;
  empty.load({"/nonexistent"});
  EXPECT_TRUE(has(empty.describe_text(), "no plugins found")) << empty.describe_text();
  EXPECT_EQ(empty.describe_json(), nlohmann::json::parse(R"({"plugins":[],"refused":[]})"));
}

// ---------------------------------------------------------------------------------------------------
// Host services

TEST(Services, HostTable) {
  const ckh_host_t *h = host_table();
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(h, host_table());
  EXPECT_EQ(h->struct_size, sizeof(ckh_host_t));
  EXPECT_EQ(h->abi_major, uint32_t(CKH_ABI_MAJOR));
  EXPECT_EQ(h->abi_minor, uint32_t(CKH_ABI_MINOR));
  EXPECT_STREQ(h->host_name, "ckhost");
  EXPECT_STREQ(h->host_version, CKH_VERSION_STRING);
  EXPECT_TRUE(h->log && h->set_error && h->alloc && h->free && h->get_extension && h->is_cancelled);
  ASSERT_NE(h->kernels, nullptr);
  EXPECT_GE(h->kernels->struct_size, sizeof(ckh_kernels_t));
  EXPECT_NE(h->kernels->bf16_to_f32, nullptr);
  EXPECT_EQ(h->get_extension(h, CKH_KERNELS_EXTENSION_ID), h->kernels);
  EXPECT_EQ(h->get_extension(h, "ckh.kernels/2"), nullptr);
  EXPECT_EQ(h->get_extension(h, "com.example.none/1"), nullptr);
  EXPECT_EQ(h->get_extension(h, nullptr), nullptr);
}

TEST(Services, LastErrorIsPerThread) {
  const ckh_host_t *h = host_table();
  clear_last_error();
  h->set_error(h, CKH_E_FORMAT, "main thread");
  std::vector<std::thread> workers;
  std::vector<std::pair<ckh_status, std::string>> seen(8);
  for (int i = 0; i < 8; ++i)
    workers.emplace_back([&, i] {
      auto before = take_last_error();  // a new thread starts clean
      EXPECT_EQ(before.first, CKH_OK);
      EXPECT_EQ(before.second, "");
      for (int k = 0; k < 1000; ++k) h->set_error(h, CKH_E_IO, ("worker " + std::to_string(i)).c_str());
      seen[i] = take_last_error();
    });
  for (auto &w : workers) w.join();
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(seen[i].first, CKH_E_IO);
    EXPECT_EQ(seen[i].second, "worker " + std::to_string(i));
  }
  auto e = take_last_error();
  EXPECT_EQ(e.first, CKH_E_FORMAT);
  EXPECT_EQ(e.second, "main thread");
  EXPECT_EQ(take_last_error().first, CKH_OK);  // taken = cleared
  // The last call wins; clear_last_error clears; a NULL message is an empty one.
  h->set_error(h, CKH_E_IO, "first");
  h->set_error(h, CKH_E_NOMEM, "second");
  EXPECT_EQ(take_last_error(), std::make_pair(ckh_status(CKH_E_NOMEM), std::string("second")));
  set_last_error(CKH_E_NOT_FOUND, "host side");
  clear_last_error();
  EXPECT_EQ(take_last_error().first, CKH_OK);
  h->set_error(h, CKH_E_IO, nullptr);
  EXPECT_EQ(take_last_error(), std::make_pair(ckh_status(CKH_E_IO), std::string()));
}

TEST(Services, AllocAlignsAndFrees) {
  const ckh_host_t *h = host_table();
  for (uint64_t align : {0ull, 1ull, 2ull, 8ull, 16ull, 32ull, 64ull, 4096ull, 1ull << 20}) {
    for (uint64_t size : {0ull, 1ull, 3ull, 1000ull, 1ull << 20}) {
      void *p = h->alloc(h, size, align);
      ASSERT_NE(p, nullptr) << size << " " << align;
      const uint64_t want = align ? align : 16;
      EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % want, 0u) << size << " " << align;
      if (size) static_cast<unsigned char *>(p)[size - 1] = 1;  // usable up to its size
      h->free(h, p);
    }
  }
  EXPECT_EQ(h->alloc(h, 10, 3), nullptr);    // not a power of two
  EXPECT_EQ(h->alloc(h, 10, 48), nullptr);
  EXPECT_EQ(h->alloc(h, UINT64_MAX, 16), nullptr);  // cannot be satisfied
  h->free(h, nullptr);                          // no-op
}

TEST(Services, LogHonoursTheLevel) {
  const ckh_host_t *h = host_table();
  {
    LogLevelGuard level(CKH_LOG_WARN);
    ::testing::internal::CaptureStderr();
    h->log(h, CKH_LOG_DEBUG, "hidden debug");
    h->log(h, CKH_LOG_INFO, "hidden info");
    h->log(h, CKH_LOG_WARN, "shown warning");
    h->log(h, CKH_LOG_ERROR, "shown error");
    log(CKH_LOG_ERROR, "from the host");
    EXPECT_EQ(::testing::internal::GetCapturedStderr(),
              "ckhost: warning: shown warning\nckhost: error: shown error\nckhost: error: from the host\n");
  }
  {
    LogLevelGuard level(CKH_LOG_DEBUG);
    ::testing::internal::CaptureStderr();
    h->log(h, CKH_LOG_DEBUG, "d");
    h->log(h, CKH_LOG_INFO, "i");
    h->log(h, CKH_LOG_INFO, nullptr);
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "ckhost: debug: d\nckhost: info: i\nckhost: info: \n");
  }
}

// Last: cancellation cannot be undone within the process.
TEST(Services, ZzCancellation) {
  const ckh_host_t *h = host_table();
  EXPECT_FALSE(cancelled());
  EXPECT_EQ(h->is_cancelled(h), 0);
  request_cancel();
  EXPECT_TRUE(cancelled());
  EXPECT_EQ(h->is_cancelled(h), 1);
}
