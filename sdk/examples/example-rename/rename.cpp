// example-rename — a complete third-party mapper plugin, built out of tree against an installed ckhost.
//
// It renames tensors by literal prefix rules given in the option "rename", a JSON array of
// [from_prefix, to_prefix] pairs (the first matching rule applies), and passes every other tensor
// through unchanged:
//
//     ckhost convert SRC DST --to hf --map example.rename --rename '[["model.", ""]]'
//
// (--option rename=... works too). The option is declared in the component's capabilities (SDK 1.1).
//
// It never touches bytes: each output is the input expression itself, with the input's annotations
// (role, layer, parallel hints), so any writer downstream still knows what each tensor is.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace {

using Rules = std::vector<std::pair<std::string, std::string>>;

Rules parse_rules(const char *options_json) {
  const auto opts = nlohmann::json::parse(options_json ? options_json : "{}", nullptr, false);
  Rules rules;
  if (opts.is_discarded() || !opts.is_object() || !opts.contains("rename")) return rules;
  nlohmann::json r = opts["rename"];
  if (r.is_string()) r = nlohmann::json::parse(r.get<std::string>(), nullptr, false);  // from a config file
  if (!r.is_array())
    ckh::sdk::fail(CKH_E_INVALID_ARG, "example.rename: option 'rename' must be [[from_prefix, to_prefix], ...], got " +
                                          opts["rename"].dump());
  for (const auto &p : r) {
    if (!p.is_array() || p.size() != 2 || !p[0].is_string() || !p[1].is_string())
      ckh::sdk::fail(CKH_E_INVALID_ARG, "example.rename: each rule must be [from_prefix, to_prefix], got " + p.dump());
    rules.emplace_back(p[0].get<std::string>(), p[1].get<std::string>());
  }
  return rules;
}

std::string renamed(const std::string &name, const Rules &rules) {
  for (const auto &[from, to] : rules)
    if (name.compare(0, from.size(), from) == 0) return to + name.substr(from.size());
  return name;
}

// A generic mapper ("family": "*") is never chosen automatically: only with --map example.rename.
int32_t probe(const ckh_mapper_class_t *, const char *) { return 1; }

ckh_status map(const ckh_mapper_class_t *, const char *options_json, const char *, ckh_expr_builder_t *raw) {
  return ckh::sdk::guard([&] {
    const Rules rules = parse_rules(options_json);
    ckh::sdk::Builder b(raw);
    for (uint64_t i = 0; i < b.input_count(); ++i) {
      const std::string from = b.input_info(i).name;
      const std::string to = renamed(from, rules);
      if (to.empty()) ckh::sdk::fail(CKH_E_INVALID_ARG, "example.rename: tensor '" + from + "' would get an empty name");
      const ckh_tensor_annot_t a = b.input_annot(i);
      b.emit(to, b.input_at(i), &a);  // two inputs renamed to one name: the host refuses the duplicate
    }
  });
}

const ckh_mapper_class_t kMapper = {sizeof(ckh_mapper_class_t), 0, probe, map, nullptr, nullptr};
const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "example.rename",
                               "renames tensors by literal prefix rules (option 'rename': [[from, to], ...])",
                               // SDK 1.1: the option is declared, so `ckhost convert --help` lists --rename,
                               // --print-config / --config carry it, and it arrives here as JSON.
                               R"({"family":"*","from":"hf","to":"hf","options":[{"name":"rename","type":"json",)"
                               R"("group":"example.rename","help":"prefix rules [[from, to], ...], first match wins"}]})",
                               &kMapper};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "com.example.rename", "1.0.0",
                              "Example Corp", "prefix renaming mapper (ckhost SDK example)", init, nullptr, kComps, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
