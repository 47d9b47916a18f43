// options.hpp — options that plugins declare in their components' capabilities (SDK 1.1).
//
// A component lists its options under "options" in capabilities_json:
//   {"options": [{"name": "tp", "type": "uint", "default": 1, "help": "tensor-parallel size",
//                 "group": "megatron", "choices": [...], "key": "tp"}]}
// name: the command-line spelling without "--" ([a-z0-9][a-z0-9-]*); key: the key of the options JSON
// object handed to plugins (default: name with '-' -> '_'); type: bool | int | uint | float | string |
// size ("5GB", "500MiB": bytes as an integer) | json (any JSON value); default and choices are shown in
// --help and checked (choices) by the host; group titles the --help section.
//
// The host builds the CLI (--help, parsing, --config / --print-config, validation) of convert, synth,
// inspect and verify from these declarations, so it names no format or model itself. Several
// components may declare the same option (e.g. "tp" by two writers): the declarations must agree in
// type and key; a component whose declaration conflicts with an earlier one, or that takes a name the
// host reserves, is refused at load with the reason (ckhost --list-plugins).
#pragma once
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ckh::host {

class Registry;

struct OptionDecl {
  std::string name, key, type, help, group;
  nlohmann::json def;                 // null when none
  std::vector<std::string> choices;   // empty = any value
  std::vector<std::string> owners;    // "writer megatron", ... (filled by declared_options)
  // "policy": true: a guarantee that holds whether or not the component runs (fp8-no-requant), so the
  // host accepts it in a conversion that runs none of its owners; any other option is refused there.
  bool policy = false;
};

// The declared options given in `given` (option name -> set) whose owners all stay out of a conversion
// that runs the components `used` ("reader hf", "writer megatron", "quantizer fp8-block", ...): each
// with the reason, e.g. "--tp is an option of writer megatron, writer torch-dist, which this conversion
// (reader hf, mapper llama, writer hf) does not run". Policy options are never listed.
std::vector<std::string> unused_options(const std::vector<OptionDecl> &decls, const std::set<std::string> &given,
                                        const std::vector<std::string> &used);

// The options a capabilities object declares. Throws std::invalid_argument naming the bad entry.
std::vector<OptionDecl> parse_option_decls(const nlohmann::json &capabilities);

// Names the host itself owns; a plugin may not declare them.
bool host_reserved_option(const std::string &name);

// Every accepted component's declarations merged by name, in load order, with their owners.
std::vector<OptionDecl> declared_options(const Registry &reg);

// The JSON value of a declared option given on the command line (or in a --config file) as text.
// Throws ckh::host::Error (CKH_E_INVALID_ARG) with "--NAME: ..." when the text does not fit the type
// or choices.
nlohmann::json option_value(const OptionDecl &d, const std::string &text);

// One line of --help: "type, default X, one of a|b; declared by writer megatron".
std::string option_help(const OptionDecl &d);

}  // namespace ckh::host
