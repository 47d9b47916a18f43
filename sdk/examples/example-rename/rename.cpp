// example-rename — a complete third-party mapper plugin. It renames tensors by prefix rules given in
// the option "rename" (e.g. --option rename='[["model.", ""]]') and passes everything else through.
// It never touches bytes: each output is the input expression itself.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace {

int32_t probe(const ckh_mapper_class_t *, const char *) { return 1; }

ckh_status map(const ckh_mapper_class_t *, const char *options_json, const char *, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    const auto opts = nlohmann::json::parse(options_json ? options_json : "{}", nullptr, false);
    std::vector<std::pair<std::string, std::string>> rules;
    if (!opts.is_discarded() && opts.contains("rename")) {
      const auto &r = opts["rename"];
      if (!r.is_array()) ckh::sdk::fail(CKH_E_INVALID_ARG, "example.rename: option 'rename' must be [[from, to], ...]");
      for (const auto &p : r) {
        if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_string())
          ckh::sdk::fail(CKH_E_INVALID_ARG, "example.rename: each rule must be [from_prefix, to_prefix]");
        rules.emplace_back(p[0].get<std::string>(), p[1].get<std::string>());
      }
    }
    ckh::sdk::Builder b(raw);
    for (uint64_t i = 0; i < b.input_count(); ++i) {
      std::string name = b.input_info(i).name;
      for (const auto &[from, to] : rules)
        if (name.compare(0, from.size(), from) == 0) {
          name = to + name.substr(from.size());
          break;
        }
      const ckh_tensor_annot_t a = b.input_annot(i);
      b.emit(name, b.input_at(i), &a);
    }
  });
}

const ckh_mapper_class_t kMapper = {sizeof(ckh_mapper_class_t), 0, probe, map, nullptr};
const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "example.rename",
                               "renames tensors by prefix rules (option 'rename')",
                               R"({"family":"*","from":"hf","to":"hf"})", &kMapper};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "com.example.rename", "1.0.0",
                              "Example Corp", "prefix renaming mapper (SDK example)", init, nullptr, kComps};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
