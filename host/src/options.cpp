// options.cpp — see options.hpp.
#include "ckhost/host/options.hpp"

#include <cerrno>
#include <cstdlib>
#include <map>
#include <algorithm>
#include <set>
#include <stdexcept>

#include "ckhost/host/error.hpp"
#include "ckhost/host/executor.hpp"
#include "ckhost/host/registry.hpp"

namespace ckh::host {

namespace {

const std::set<std::string> &types() {
  static const std::set<std::string> t = {"bool", "int", "uint", "float", "string", "size", "json"};
  return t;
}

bool valid_name(const std::string &n) {
  if (n.empty() || n.size() > 64 || n[0] == '-') return false;
  for (char c : n)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

[[noreturn]] void bad(const std::string &d, const std::string &text, const std::string &want) {
  fail("--" + d + ": expected " + want + ", got '" + text + "'", CKH_E_INVALID_ARG);
}

}  // namespace

bool host_reserved_option(const std::string &name) {
  static const std::set<std::string> r = {"to", "from", "dtype", "threads", "max-memory", "force", "copy-file-range",
                                          "dry-run", "config", "print-config", "map", "option", "progress", "help",
                                          "plugin-dir", "verbose", "quiet", "json", "atol", "from-a", "from-b",
                                          "model", "seed", "src", "dst", "out", "path", "a", "b", "version",
                                          "list-plugins", "quantize", "quantize-skip"};
  return r.count(name) > 0;
}

std::vector<OptionDecl> parse_option_decls(const nlohmann::json &caps) {
  std::vector<OptionDecl> out;
  if (!caps.is_object() || !caps.contains("options")) return out;
  const auto &arr = caps["options"];
  if (!arr.is_array()) throw std::invalid_argument("\"options\" must be an array");
  std::set<std::string> seen;
  for (size_t i = 0; i < arr.size(); ++i) {
    const auto &o = arr[i];
    const std::string where = "option #" + std::to_string(i);
    if (!o.is_object()) throw std::invalid_argument(where + " is not an object");
    OptionDecl d;
    if (!o.contains("name") || !o["name"].is_string()) throw std::invalid_argument(where + " has no \"name\"");
    d.name = o["name"].get<std::string>();
    if (!valid_name(d.name)) throw std::invalid_argument(where + ": name '" + d.name + "' is not [a-z0-9][a-z0-9-]*");
    if (host_reserved_option(d.name)) throw std::invalid_argument("option --" + d.name + " is reserved by the host");
    if (!seen.insert(d.name).second) throw std::invalid_argument("option --" + d.name + " declared twice");
    d.type = o.value("type", std::string("string"));
    if (!types().count(d.type)) throw std::invalid_argument("option --" + d.name + ": unknown type '" + d.type + "'");
    d.key = d.name;
    for (char &c : d.key)
      if (c == '-') c = '_';
    if (o.contains("key")) {
      if (!o["key"].is_string() || o["key"].get<std::string>().empty())
        throw std::invalid_argument("option --" + d.name + ": \"key\" must be a non-empty string");
      d.key = o["key"].get<std::string>();
    }
    auto str = [&](const char *k) {
      if (!o.contains(k)) return std::string();
      if (!o[k].is_string()) throw std::invalid_argument("option --" + d.name + ": \"" + k + "\" must be a string");
      return o[k].get<std::string>();
    };
    d.help = str("help");
    d.group = str("group");
    if (o.contains("default")) d.def = o["default"];
    if (o.contains("policy")) {
      if (!o["policy"].is_boolean()) throw std::invalid_argument("option --" + d.name + ": \"policy\" must be true or false");
      d.policy = o["policy"].get<bool>();
    }
    if (o.contains("choices")) {
      if (!o["choices"].is_array()) throw std::invalid_argument("option --" + d.name + ": \"choices\" must be an array");
      for (const auto &c : o["choices"]) {
        if (!c.is_string()) throw std::invalid_argument("option --" + d.name + ": choices must be strings");
        d.choices.push_back(c.get<std::string>());
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<std::string> unused_options(const std::vector<OptionDecl> &decls, const std::set<std::string> &given,
                                        const std::vector<std::string> &used) {
  std::vector<std::string> out;
  std::string ran;
  for (const auto &u : used) ran += (ran.empty() ? "" : ", ") + u;
  for (const auto &d : decls) {
    if (!given.count(d.name) || d.policy) continue;
    bool runs = false;
    for (const auto &o : d.owners) runs = runs || std::find(used.begin(), used.end(), o) != used.end();
    if (runs) continue;
    std::string own;
    for (const auto &o : d.owners) own += (own.empty() ? "" : ", ") + o;
    out.push_back("--" + d.name + " is an option of " + own + ", which this conversion (" + ran + ") does not run");
  }
  return out;
}

std::vector<OptionDecl> declared_options(const Registry &reg) {
  std::vector<OptionDecl> out;
  std::map<std::string, size_t> at;
  for (const auto &p : reg.plugins())
    for (const auto &c : p->components) {
      const std::string owner = std::string(component_kind_name(c.kind)) + " " + c.id;
      for (OptionDecl d : c.options) {
        auto it = at.find(d.name);
        if (it == at.end()) {
          d.owners = {owner};
          at[d.name] = out.size();
          out.push_back(std::move(d));
        } else {
          OptionDecl &e = out[it->second];
          e.owners.push_back(owner);
          if (e.help.empty()) e.help = d.help;
          if (e.group.empty()) e.group = d.group;
        }
      }
    }
  return out;
}

nlohmann::json option_value(const OptionDecl &d, const std::string &text) {
  nlohmann::json v;
  if (d.type == "bool") {
    if (text == "true" || text == "1" || text.empty()) v = true;
    else if (text == "false" || text == "0") v = false;
    else bad(d.name, text, "true or false");
  } else if (d.type == "int" || d.type == "uint") {
    errno = 0;
    char *end = nullptr;
    const long long x = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || errno != 0 || *end != '\0') bad(d.name, text, d.type == "uint" ? "a non-negative integer" : "an integer");
    if (d.type == "uint" && x < 0) bad(d.name, text, "a non-negative integer");
    v = static_cast<int64_t>(x);
    if (d.type == "uint") v = static_cast<uint64_t>(x);
  } else if (d.type == "float") {
    errno = 0;
    char *end = nullptr;
    const double x = std::strtod(text.c_str(), &end);
    if (text.empty() || errno != 0 || *end != '\0') bad(d.name, text, "a number");
    v = x;
  } else if (d.type == "size") {
    try {
      v = parse_size(text);
    } catch (const Error &) {
      bad(d.name, text, "a size such as 5GB, 500MB or 2GiB");
    }
  } else if (d.type == "json") {
    v = nlohmann::json::parse(text, nullptr, false);
    if (v.is_discarded()) bad(d.name, text, "JSON");
  } else {
    v = text;
  }
  if (!d.choices.empty()) {
    bool ok = false;
    for (const auto &c : d.choices) ok = ok || c == text;
    if (!ok) {
      std::string all;
      for (const auto &c : d.choices) all += (all.empty() ? "" : ", ") + c;
      bad(d.name, text, "one of " + all);
    }
  }
  return v;
}

std::string option_help(const OptionDecl &d) {
  std::string h = d.help;
  std::string extra;
  if (!d.choices.empty()) {
    extra += "one of ";
    for (size_t i = 0; i < d.choices.size(); ++i) extra += (i ? "|" : "") + d.choices[i];
  }
  if (!d.def.is_null()) {
    if (!extra.empty()) extra += ", ";
    extra += "default " + (d.def.is_string() ? d.def.get<std::string>() : d.def.dump());
  }
  if (!extra.empty()) h += (h.empty() ? "" : " ") + std::string("(") + extra + ")";
  std::string own;
  for (const auto &o : d.owners) own += (own.empty() ? "" : ", ") + o;
  if (!own.empty()) h += " [" + own + "]";
  return h;
}

}  // namespace ckh::host
