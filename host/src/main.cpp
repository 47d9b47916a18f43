// main.cpp — the ckhost command line.
#include <fcntl.h>
#include <unistd.h>

extern char **environ;

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>

#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>

#include "ckhost/host/chain.hpp"
#include "ckhost/host/error.hpp"
#include "ckhost/host/executor.hpp"
#include "ckhost/host/kernel_providers.hpp"
#include "ckhost/host/options.hpp"
#include "ckhost/host/registry.hpp"
#include "ckhost/host/services.hpp"
#include "ckhost/host/verify.hpp"

namespace po = boost::program_options;
using nlohmann::json;
using namespace ckh::host;

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char *kMainHelp =
    "ckhost — convert large-model checkpoints between training and inference formats.\n"
    "\n"
    "usage: ckhost [--plugin-dir DIR]... COMMAND [ARGS]\n"
    "       ckhost --list-plugins [--json]\n"
    "\n"
    "commands:\n"
    "  convert SRC DST --to FORMAT   convert a checkpoint (streaming, parallel, atomic)\n"
    "  inspect PATH                  detected format and model family, tensor table, totals\n"
    "  verify A B                    compare two checkpoints tensor by tensor\n"
    "  synth --model M --config C OUT  write a random checkpoint with the exact layout of a config\n"
    "  NAME ARGS...                  a plugin's command (ckhost --list-plugins: kind 'command'), e.g.\n"
    "                                mm-convert, MindSpeed-MM's command line run as ckhost conversions\n"
    "\n"
    "Run 'ckhost COMMAND --help' for the options of a command.\n";

po::options_description common_options() {
  po::options_description o("common options");
  o.add_options()("help,h", "show this help")("plugin-dir", po::value<std::vector<std::string>>()->composing(),
                                                "extra plugin directory (repeatable; searched before CKHOST_PLUGIN_PATH)")(
      "verbose,v", po::bool_switch(), "debug log lines")("quiet,q", po::bool_switch(), "only warnings and errors");
  return o;
}

void setup_logging(const po::variables_map &vm) {
  if (vm.count("verbose") && vm["verbose"].as<bool>()) set_log_level(CKH_LOG_DEBUG);
  if (vm.count("quiet") && vm["quiet"].as<bool>()) set_log_level(CKH_LOG_WARN);
}

std::vector<std::string> plugin_dirs(const po::variables_map &vm) {
  return vm.count("plugin-dir") ? vm["plugin-dir"].as<std::vector<std::string>>() : std::vector<std::string>{};
}

// Loads the plugins of `cli_dirs` (then CKHOST_PLUGIN_PATH and the default directory) and installs the
// kernel providers among them (kernel_providers.hpp), once per command.
void load_plugins(Registry &reg, const std::vector<std::string> &cli_dirs) {
  reg.load(Registry::search_dirs(cli_dirs));
  for (const auto &r : reg.refused()) log(CKH_LOG_DEBUG, "plugin refused: " + r.path + ": " + r.reason);
  apply_kernel_providers(reg);
}

void load_registry(Registry &reg, const po::variables_map &vm) { load_plugins(reg, plugin_dirs(vm)); }

po::variables_map parse(const std::vector<std::string> &args, const po::options_description &opts,
                        const po::positional_options_description &pos) {
  po::variables_map vm;
  try {
    po::store(po::command_line_parser(args).options(opts).positional(pos).run(), vm);
  } catch (const po::error &e) {
    throw UsageError(e.what());
  }
  return vm;
}

// --option KEY=VALUE pairs (VALUE parsed as JSON when it is valid JSON, else a string) merged into
// the options object handed to plugins.
void add_plugin_options(json &o, const po::variables_map &vm) {
  if (!vm.count("option")) return;
  for (const auto &kv : vm["option"].as<std::vector<std::string>>()) {
    const auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throw UsageError("--option expects KEY=VALUE, got '" + kv + "'");
    const std::string k = kv.substr(0, eq), v = kv.substr(eq + 1);
    auto j = json::parse(v, nullptr, false);
    o[k] = j.is_discarded() ? json(v) : j;
  }
}

struct Opened {
  Graph g;
  OpenedSource src;
  std::string canonical_note;
  explicit Opened(const Registry &r) : g(&r) {}
};

std::vector<int> open_fds(const Graph &g) {
  std::vector<int> fds;
  for (const auto &f : g.files) {
    int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail(f + ": cannot open", CKH_E_IO);
    fds.push_back(fd);
  }
  return fds;
}

void close_fds(const std::vector<int> &fds) {
  for (int fd : fds) ::close(fd);
}

std::string stage_summary(const Stage &s, const Graph &g) {
  uint64_t bytes = 0;
  for (const auto &t : s.tensors) bytes += g.node_bytes(t.node);
  return std::to_string(s.tensors.size()) + " tensors, " + human_bytes(static_cast<double>(bytes));
}

// ------------------------------------------------------------------------------------------------

int cmd_list_plugins(const po::variables_map &vm, bool as_json) {
  Registry reg;
  load_registry(reg, vm);
  const std::vector<KernelUse> &uses = kernel_uses();
  if (as_json) {
    json j = reg.describe_json();
    j["kernels"] = kernels_json(uses);
    std::cout << j.dump(2) << "\n";
  } else {
    std::cout << reg.describe_text() << describe_kernels(uses);
  }
  return 0;
}

po::options_description convert_options() {
  po::options_description o("convert options");
  o.add_options()("to", po::value<std::string>(), "output format (hf, ...; see --list-plugins)")(
      "from", po::value<std::string>(), "input format (default: detected)")(
      "dtype", po::value<std::string>(), "cast floating-point tensors: bf16 | f16 | f32")(
      "quantize", po::value<std::string>(), "quantize the linear weights with this quantizer, e.g. fp8-block (see --list-plugins)")(
      "quantize-skip", po::value<std::vector<std::string>>()->composing(),
      "module pattern left in high precision by --quantize (transformers' modules_to_not_convert rules; repeatable)")(
      "threads", po::value<unsigned>(), "worker threads (default: all cores)")(
      "max-memory", po::value<std::string>(), "bound on conversion buffers (default 1GiB)")(
      "force", po::bool_switch(), "replace a non-empty destination")(
      "copy-file-range", po::bool_switch(), "move plain byte runs in-kernel (pays on reflink filesystems and NFS 4.2)")(
      "dry-run", po::bool_switch(), "print the plan, write nothing (with -q: files, sizes and the total only)")(
      "config", po::value<std::string>(), "read options from a JSON file (as written by --print-config)")(
      "print-config", po::bool_switch(), "print the effective options as JSON and exit")(
      "map", po::value<std::vector<std::string>>()->composing(), "extra mapper component after the canonical stage (repeatable)")(
      "option", po::value<std::vector<std::string>>()->composing(), "plugin option KEY=VALUE (repeatable)")(
      "progress", po::value<std::string>(), "auto | bar | plain | none (default auto: a bar on a terminal)");
  return o;
}

// The options the loaded plugins declare (options.hpp), one --help section per group, in the order the
// groups first appear.
std::vector<po::options_description> declared_sections(const std::vector<OptionDecl> &decls) {
  std::vector<std::string> groups;
  for (const auto &d : decls)
    if (std::find(groups.begin(), groups.end(), d.group) == groups.end()) groups.push_back(d.group);
  std::vector<po::options_description> out;
  for (const auto &gname : groups) {
    po::options_description sec((gname.empty() ? std::string("plugin") : gname) + " options (declared by plugins)");
    for (const auto &d : decls) {
      if (d.group != gname) continue;
      const std::string help = option_help(d);
      if (d.type == "bool") sec.add_options()(d.name.c_str(), po::bool_switch(), help.c_str());
      else sec.add_options()(d.name.c_str(), po::value<std::string>(), help.c_str());
    }
    out.push_back(std::move(sec));
  }
  return out;
}

// Host options, then the declared sections, then the common options.
po::options_description with_declared(const po::options_description &host, const std::vector<OptionDecl> &decls) {
  po::options_description o;
  o.add(host);
  for (auto &sec : declared_sections(decls)) o.add(sec);
  o.add(common_options());
  return o;
}

const OptionDecl *find_decl(const std::vector<OptionDecl> &decls, const std::string &name) {
  for (const auto &d : decls)
    if (d.name == name) return &d;
  return nullptr;
}

json effective_config(const po::variables_map &vm, const std::vector<OptionDecl> &decls) {
  json c = json::object();
  for (const char *k : {"src", "dst", "to", "from", "dtype", "quantize", "max-memory", "progress"})
    if (vm.count(k)) c[k] = vm[k].as<std::string>();
  if (vm.count("threads")) c["threads"] = vm["threads"].as<unsigned>();
  for (const char *k : {"force", "dry-run", "copy-file-range"}) c[k] = vm.count(k) ? vm[k].as<bool>() : false;
  for (const char *k : {"map", "option", "quantize-skip"})
    c[k] = vm.count(k) ? json(vm[k].as<std::vector<std::string>>()) : json::array();
  for (const auto &d : decls) {
    if (d.type == "bool") {
      c[d.name] = vm.count(d.name) ? vm[d.name].as<bool>() : false;
    } else if (vm.count(d.name)) {
      const std::string t = vm[d.name].as<std::string>();
      // Numbers and JSON as values; sizes and strings as the text given (so --config reads them back).
      c[d.name] = (d.type == "size" || d.type == "string") ? json(t) : option_value(d, t);
    }
  }
  return c;
}

// Reads a --config file into the variables map; values given on the command line win.
void apply_config_file(po::variables_map &vm, const po::options_description &opts, const std::vector<OptionDecl> &decls) {
  if (!vm.count("config")) return;
  const std::string path = vm["config"].as<std::string>();
  std::ifstream in(path);
  if (!in) fail(path + ": cannot read config file", CKH_E_IO);
  json c = json::parse(in, nullptr, false);
  if (c.is_discarded() || !c.is_object()) fail(path + ": not a JSON object", CKH_E_FORMAT);
  std::vector<std::string> args;
  for (auto it = c.begin(); it != c.end(); ++it) {
    std::string key = it.key();
    for (char &ch : key)
      if (ch == '_') ch = '-';
    if (key == "src" || key == "dst") continue;
    if (!opts.find_nothrow(key, false)) fail(path + ": unknown option '" + it.key() + "'", CKH_E_FORMAT);
    const json &v = it.value();
    const OptionDecl *d = find_decl(decls, key);
    if (d && d->type == "json") {
      args.push_back("--" + key + "=" + v.dump());
    } else if (v.is_boolean()) {
      if (v.get<bool>()) args.push_back("--" + key);
    } else if (v.is_array()) {
      for (const auto &e : v) args.push_back("--" + key + "=" + (e.is_string() ? e.get<std::string>() : e.dump()));
    } else if (v.is_string()) {
      args.push_back("--" + key + "=" + v.get<std::string>());
    } else if (!v.is_null()) {
      args.push_back("--" + key + "=" + v.dump());
    }
  }
  po::store(po::command_line_parser(args).options(opts).run(), vm);
  if (!vm.count("src") && c.contains("src")) vm.insert({"src", po::variable_value(c["src"].get<std::string>(), false)});
  if (!vm.count("dst") && c.contains("dst")) vm.insert({"dst", po::variable_value(c["dst"].get<std::string>(), false)});
}

ExecOptions exec_options(const po::variables_map &vm) {
  ExecOptions e;
  if (vm.count("threads")) e.threads = vm["threads"].as<unsigned>();
  if (vm.count("max-memory")) e.max_memory = parse_size(vm["max-memory"].as<std::string>());
  e.force = vm.count("force") && vm["force"].as<bool>();
  e.copy_file_range = vm.count("copy-file-range") && vm["copy-file-range"].as<bool>();
  if (vm.count("progress")) {
    const std::string p = vm["progress"].as<std::string>();
    if (p == "auto") e.progress = -1;
    else if (p == "bar") e.progress = 2;
    else if (p == "plain") e.progress = 1;
    else if (p == "none") e.progress = 0;
    else throw UsageError("--progress must be auto, bar, plain or none");
  }
  if (vm.count("quiet") && vm["quiet"].as<bool>()) e.progress = 0;
  return e;
}

// The options JSON handed to plugins: --dtype, every declared option given (under its key, typed),
// and --option KEY=VALUE pairs.
json plugin_options(const po::variables_map &vm, const std::vector<OptionDecl> &decls) {
  json o = json::object();
  if (vm.count("dtype")) o["dtype"] = vm["dtype"].as<std::string>();
  for (const auto &d : decls) {
    if (!vm.count(d.name)) continue;
    if (d.type == "bool") {
      if (vm[d.name].as<bool>()) o[d.key] = true;
    } else {
      o[d.key] = option_value(d, vm[d.name].as<std::string>());
    }
  }
  add_plugin_options(o, vm);
  return o;
}

// --plugin-dir values in raw arguments (the registry is loaded before the full parse, because the
// plugins' declared options are part of it).
std::vector<std::string> raw_plugin_dirs(const std::vector<std::string> &args) {
  std::vector<std::string> dirs;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--plugin-dir" && i + 1 < args.size()) dirs.push_back(args[++i]);
    else if (args[i].rfind("--plugin-dir=", 0) == 0) dirs.push_back(args[i].substr(13));
  }
  return dirs;
}

// For commands whose options the plugins declare: the registry is loaded before the full parse.
void load_registry_for(Registry &reg, const std::vector<std::string> &args) { load_plugins(reg, raw_plugin_dirs(args)); }

std::vector<std::string> skip_patterns(const po::variables_map &vm) {
  return vm.count("quantize-skip") ? vm["quantize-skip"].as<std::vector<std::string>>() : std::vector<std::string>();
}

ckh_dtype parse_dtype_opt(const po::variables_map &vm) {
  if (!vm.count("dtype")) return CKH_DT_INVALID;
  const std::string s = vm["dtype"].as<std::string>();
  ckh_dtype dt = dtype_from_name(s);
  if (dt != CKH_DT_BF16 && dt != CKH_DT_F16 && dt != CKH_DT_F32)
    throw UsageError("--dtype must be bf16, f16 or f32 (got '" + s + "')");
  return dt;
}

// Writes the planned graph (shared by convert and synth).
// A declared option given to a conversion that runs none of its owners would be silently ignored
// (--tp with --to hf, --fp8-pow2-scales without --quantize): refused, before anything is planned.
void check_options_used(const Registry &reg, const Graph &g, const po::variables_map &vm, const std::string &to) {
  const std::vector<OptionDecl> decls = declared_options(reg);
  std::set<std::string> given;
  for (const auto &d : decls)
    if (vm.count(d.name) && !vm[d.name].defaulted() && (d.type != "bool" || vm[d.name].as<bool>())) given.insert(d.name);
  if (given.empty()) return;
  std::vector<std::string> used;
  auto use = [&](const std::string &u) {
    if (std::find(used.begin(), used.end(), u) == used.end()) used.push_back(u);
  };
  for (const Stage &s : g.stages)
    if (s.producer.rfind("reader ", 0) == 0 || s.producer.rfind("mapper ", 0) == 0) use(s.producer);
  // A quantizer's options are its quantization parameters: they reach it through --quantize only
  // (dequantization takes none).
  if (vm.count("quantize")) use("quantizer " + vm["quantize"].as<std::string>());
  use("writer " + to);
  const std::vector<std::string> bad = unused_options(decls, given, used);
  if (!bad.empty())
    throw UsageError(bad.front() + (bad.size() > 1 ? " (and " + std::to_string(bad.size() - 1) + " more such options)" : "") +
                     ": drop it, or choose the output, mapper or --quantize that takes it");
}

int run_plan(const Registry &reg, Graph &g, const po::variables_map &vm, const std::string &to, const std::string &dst,
             const json &popts, const std::string &what, std::string note) {
  WriterPtr writer = plan_writer(reg, g, to, popts, &note);  // adds the writer's target mapper, if any
  check_options_used(reg, g, vm, to);
  if (vm.count("dry-run") && vm["dry-run"].as<bool>()) {
    std::cout << describe_plan(g, !(vm.count("quiet") && vm["quiet"].as<bool>()));
    return 0;
  }
  ckh_writer_t *w = writer.get();
  ExecStats st = execute(g, dst, exec_options(vm), [&](const std::vector<ckh_region_digest_t> &d, ckh_patcher_t *p) {
    if (!w->finish) return;
    clear_last_error();
    check_plugin(w->finish(w, d.data(), d.size(), p), "writer " + to);
  });
  if (!(vm.count("quiet") && vm["quiet"].as<bool>())) {
    std::printf("%s -> %s (%s, %llu files, %s)\n", what.c_str(), dst.c_str(), to.c_str(),
                static_cast<unsigned long long>(st.files), human_bytes(static_cast<double>(st.file_bytes)).c_str());
    if (!note.empty()) std::printf("  model: %s\n", note.c_str());
    for (const auto &u : kernel_uses())
      if (u.provider.rfind("builtin", 0) != 0) log(CKH_LOG_DEBUG, "kernel " + u.member + " from " + u.provider);
    for (const auto &line : plugin_stats(reg)) log(CKH_LOG_DEBUG, "stats " + line);
    std::printf("  %llu tensors, %s in %.2f s (%s/s), %u threads, %s moved in-kernel\n",
                static_cast<unsigned long long>(st.regions), human_bytes(static_cast<double>(st.bytes)).c_str(), st.seconds,
                human_bytes(st.seconds > 0 ? static_cast<double>(st.bytes) / st.seconds : 0).c_str(), st.threads,
                human_bytes(static_cast<double>(st.direct_bytes)).c_str());
    if (st.quant_calls)
      std::printf("  quantizers: %llu calls over %llu blocks, %llu blocks computed twice\n",
                  static_cast<unsigned long long>(st.quant_calls), static_cast<unsigned long long>(st.quant_blocks),
                  static_cast<unsigned long long>(st.quant_recomputed_blocks));
  }
  return 0;
}

int cmd_convert(const std::vector<std::string> &args) {
  Registry reg;
  load_registry_for(reg, args);
  const std::vector<OptionDecl> decls = declared_options(reg);
  po::options_description opts = with_declared(convert_options(), decls);
  po::options_description hidden;
  hidden.add_options()("src", po::value<std::string>())("dst", po::value<std::string>());
  po::options_description all;
  all.add(opts).add(hidden);
  po::positional_options_description pos;
  pos.add("src", 1).add("dst", 1);
  po::variables_map vm = parse(args, all, pos);
  if (vm.count("help")) {
    std::cout << "usage: ckhost convert SRC DST --to FORMAT [options]\n\n" << opts;
    return 0;
  }
  apply_config_file(vm, all, decls);
  po::notify(vm);
  setup_logging(vm);
  if (vm.count("print-config") && vm["print-config"].as<bool>()) {
    std::cout << effective_config(vm, decls).dump(2) << "\n";
    return 0;
  }
  if (!vm.count("src") || !vm.count("dst")) throw UsageError("convert needs SRC and DST (see ckhost convert --help)");
  if (!vm.count("to")) throw UsageError("convert needs --to FORMAT (see ckhost --list-plugins)");
  const std::string src = vm["src"].as<std::string>(), dst = vm["dst"].as<std::string>(), to = vm["to"].as<std::string>();
  const ckh_dtype dt = parse_dtype_opt(vm);
  const json popts = plugin_options(vm, decls);
  (void)exec_options(vm);
  check_destination(src, dst, vm["force"].as<bool>());

  Opened o(reg);
  o.src = open_source(reg, o.g, src, vm.count("from") ? vm["from"].as<std::string>() : "", popts);
  const std::string what = src + " (" + o.src.reader->id + ", " + stage_summary(o.g.stages[0], o.g) + ")";
  std::string note = to_canonical(reg, o.g, popts);
  if (note.rfind("no model plugin", 0) == 0) log(CKH_LOG_WARN, note);
  if (vm.count("map"))
    for (const auto &id : vm["map"].as<std::vector<std::string>>()) {
      const Component *m = reg.find(CKH_COMPONENT_MAPPER, id);
      if (!m) fail("no mapper '" + id + "' (see ckhost --list-plugins)", CKH_E_NOT_FOUND);
      apply_mapper(o.g, *m, popts);
      note += ", " + id;
    }
  if (dt != CKH_DT_INVALID) {
    const Component *w = reg.find(CKH_COMPONENT_WRITER, to);
    cast_stage(reg, o.g, dt, w && w->capabilities.value("one_d_f32", false));
  }
  if (vm.count("quantize")) {
    const std::string q = vm["quantize"].as<std::string>();
    if (quantizes_in_target_layout(reg, q)) map_to_writer_layout(reg, o.g, to, popts, &note);
    note += ", " + quantize_stage(reg, o.g, q, popts, skip_patterns(vm));
  }
  return run_plan(reg, o.g, vm, to, dst, popts, what, note);
}

int cmd_synth(const std::vector<std::string> &args) {
  Registry reg;
  load_registry_for(reg, args);
  const std::vector<OptionDecl> decls = declared_options(reg);
  po::options_description host("synth options");
  host.add_options()("model", po::value<std::string>(), "model family (e.g. llama)")(
      "config", po::value<std::string>(), "HF config.json describing the model")("seed", po::value<uint64_t>()->default_value(0),
                                                                                  "random seed")(
      "to", po::value<std::string>()->default_value("hf"), "output format")(
      "dtype", po::value<std::string>(), "dtype of floating tensors (default: config torch_dtype)")(
      "quantize", po::value<std::string>(), "quantize the linear weights with this quantizer, e.g. fp8-block")(
      "quantize-skip", po::value<std::vector<std::string>>()->composing(), "module pattern --quantize leaves alone (repeatable)")(
      "threads", po::value<unsigned>(), "worker threads")("max-memory", po::value<std::string>(), "bound on buffers")(
      "force", po::bool_switch(), "replace a non-empty destination")("dry-run", po::bool_switch(), "print the plan only")(
      "option", po::value<std::vector<std::string>>()->composing(), "plugin option KEY=VALUE")(
      "progress", po::value<std::string>(), "auto | bar | plain | none");
  po::options_description opts = with_declared(host, decls);
  po::options_description all;
  all.add(opts).add_options()("out", po::value<std::string>());
  po::positional_options_description pos;
  pos.add("out", 1);
  po::variables_map vm = parse(args, all, pos);
  if (vm.count("help")) {
    std::cout << "usage: ckhost synth --model MODEL --config CONFIG.json OUT [--seed N]\n\n" << opts;
    return 0;
  }
  po::notify(vm);
  setup_logging(vm);
  if (!vm.count("model") || !vm.count("config") || !vm.count("out"))
    throw UsageError("synth needs --model, --config and OUT (see ckhost synth --help)");
  const std::string cfg_path = vm["config"].as<std::string>(), out = vm["out"].as<std::string>();
  std::ifstream in(cfg_path);
  if (!in) fail(cfg_path + ": cannot read", CKH_E_IO);
  json cfg = json::parse(in, nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object()) fail(cfg_path + ": not a JSON object", CKH_E_FORMAT);
  check_destination(cfg_path, out, vm["force"].as<bool>());
  Graph g(&reg);
  synth_source(reg, g, vm["model"].as<std::string>(), cfg, vm["seed"].as<uint64_t>());
  const ckh_dtype dt = parse_dtype_opt(vm);
  if (dt != CKH_DT_INVALID) cast_stage(reg, g, dt);
  const json popts = plugin_options(vm, decls);
  std::string note;
  if (vm.count("quantize")) {
    const std::string q = vm["quantize"].as<std::string>();
    if (quantizes_in_target_layout(reg, q)) map_to_writer_layout(reg, g, vm["to"].as<std::string>(), popts, &note);
    note += quantize_stage(reg, g, q, popts, skip_patterns(vm));
  }
  return run_plan(reg, g, vm, vm["to"].as<std::string>(), out, popts,
                  "synth " + vm["model"].as<std::string>() + " (" + stage_summary(g.stages[0], g) + ")", note);
}

int cmd_inspect(const std::vector<std::string> &args) {
  po::options_description opts("inspect options");
  opts.add_options()("from", po::value<std::string>(), "input format (default: detected)")("json", po::bool_switch(),
                                                                                          "machine-readable output");
  opts.add(common_options());
  po::options_description all;
  all.add(opts).add_options()("path", po::value<std::string>());
  po::positional_options_description pos;
  pos.add("path", 1);
  po::variables_map vm = parse(args, all, pos);
  if (vm.count("help")) {
    std::cout << "usage: ckhost inspect PATH [--json]\n\n" << opts;
    return 0;
  }
  po::notify(vm);
  setup_logging(vm);
  if (!vm.count("path")) throw UsageError("inspect needs PATH");
  const std::string path = vm["path"].as<std::string>();
  Registry reg;
  load_registry(reg, vm);
  Opened o(reg);
  o.src = open_source(reg, o.g, path, vm.count("from") ? vm["from"].as<std::string>() : "", json::object());
  const Stage &s0 = o.g.stages[0];
  json j;
  j["path"] = path;
  j["format"] = o.src.reader->id;
  j["layout"] = s0.metadata.value("layout", std::string("hf"));
  const Component *fam = find_mapper(reg, o.g, j["layout"].get<std::string>(), "hf");
  j["model_family"] = fam ? json(fam->capabilities.value("family", fam->id)) : json(nullptr);
  if (s0.metadata.contains("config") && s0.metadata["config"].is_object()) {
    // diffusers configs (ConfigMixin) name their class instead of a model_type.
    const auto &cf = s0.metadata["config"];
    j["model_type"] = !cf.contains("model_type") && cf.contains("_class_name") && cf["_class_name"].is_string()
                          ? cf["_class_name"].get<std::string>()
                          : cf.value("model_type", std::string());
  }
  std::string check = "not checked (no model plugin)";
  if (fam) {
    try {
      to_canonical(reg, o.g, json::object());
      const std::vector<std::string> unexpected = unused_tensors(o.g, 0);
      check = unexpected.empty() ? "complete: every tensor the config implies is present"
                                 : std::to_string(unexpected.size()) + " unexpected tensor(s), e.g. " + unexpected[0];
    } catch (const Error &e) {
      check = e.what();
    }
  }
  j["check"] = check;
  uint64_t bytes = 0, params = 0;
  j["tensors"] = json::array();
  for (const auto &t : s0.tensors) {
    const Node &n = o.g.node(t.node);
    const uint64_t b = o.g.node_bytes(t.node);
    bytes += b;
    params += static_cast<uint64_t>(n.shape.numel());
    json sh = json::array();
    for (uint32_t i = 0; i < n.shape.ndim; ++i) sh.push_back(n.shape.d[i]);
    j["tensors"].push_back({{"name", t.name}, {"dtype", dtype_name(n.dtype)}, {"shape", sh}, {"bytes", b}});
  }
  j["totals"] = {{"tensors", s0.tensors.size()}, {"parameters", params}, {"bytes", bytes}, {"files", o.g.files.size()}};
  if (vm["json"].as<bool>()) {
    std::cout << j.dump(2) << "\n";
    return 0;
  }
  std::printf("path:     %s\nformat:   %s (layout %s)\nmodel:    %s%s\ncheck:    %s\n", path.c_str(),
              o.src.reader->id.c_str(), j["layout"].get<std::string>().c_str(),
              fam ? j["model_family"].get<std::string>().c_str() : "unknown",
              j.contains("model_type") ? (" (model_type " + j["model_type"].get<std::string>() + ")").c_str() : "",
              check.c_str());
  std::printf("\n%-64s %-8s %-20s %12s\n", "tensor", "dtype", "shape", "bytes");
  for (const auto &t : j["tensors"]) {
    std::string sh = "[";
    for (size_t i = 0; i < t["shape"].size(); ++i) sh += (i ? ", " : "") + t["shape"][i].dump();
    sh += "]";
    std::printf("%-64s %-8s %-20s %12llu\n", t["name"].get<std::string>().c_str(), t["dtype"].get<std::string>().c_str(),
                sh.c_str(), static_cast<unsigned long long>(t["bytes"].get<uint64_t>()));
  }
  std::printf("\n%zu tensors, %llu parameters, %s in %zu file(s)\n", s0.tensors.size(),
              static_cast<unsigned long long>(params), human_bytes(static_cast<double>(bytes)).c_str(), o.g.files.size());
  return 0;
}

int cmd_verify(const std::vector<std::string> &args) {
  po::options_description opts("verify options");
  opts.add_options()("json", po::bool_switch(), "machine-readable output")("atol", po::value<double>()->default_value(0.0),
                                                                            "largest allowed |a-b| per element")(
      "from-a", po::value<std::string>(), "format of A (default: detected)")("from-b", po::value<std::string>(),
                                                                            "format of B (default: detected)")(
      "threads", po::value<unsigned>(), "worker threads")("max-memory", po::value<std::string>(), "bound on buffers")(
      "option", po::value<std::vector<std::string>>()->composing(), "plugin option KEY=VALUE");
  opts.add(common_options());
  po::options_description all;
  all.add(opts).add_options()("a", po::value<std::string>())("b", po::value<std::string>());
  po::positional_options_description pos;
  pos.add("a", 1).add("b", 1);
  po::variables_map vm = parse(args, all, pos);
  if (vm.count("help")) {
    std::cout << "usage: ckhost verify A B [--atol X] [--json]\n\nExit status 0 only when both hold the same tensor names "
                 "and every tensor matches within --atol.\n\n"
              << opts;
    return 0;
  }
  po::notify(vm);
  setup_logging(vm);
  if (!vm.count("a") || !vm.count("b")) throw UsageError("verify needs A and B");
  json popts = json::object();
  add_plugin_options(popts, vm);
  Registry reg;
  load_registry(reg, vm);
  Opened a(reg), b(reg);
  a.src = open_source(reg, a.g, vm["a"].as<std::string>(), vm.count("from-a") ? vm["from-a"].as<std::string>() : "", popts);
  b.src = open_source(reg, b.g, vm["b"].as<std::string>(), vm.count("from-b") ? vm["from-b"].as<std::string>() : "", popts);
  to_canonical(reg, a.g, popts);
  to_canonical(reg, b.g, popts);
  // A quantized pair against a plain tensor of the other side compares as one logical tensor:
  // dequantized, through the quantizer, into that tensor's dtype.
  {
    const auto wa = pairs_to_compare(a.g, b.g), wb = pairs_to_compare(b.g, a.g);
    if (!wa.empty()) dequantize_stage(reg, a.g, wa);
    if (!wb.empty()) dequantize_stage(reg, b.g, wb);
  }
  check_sources(a.g);
  check_sources(b.g);
  auto fa = open_fds(a.g), fb = open_fds(b.g);
  uint64_t mm = vm.count("max-memory") ? parse_size(vm["max-memory"].as<std::string>()) : (1ull << 30);
  VerifyReport rep = verify(a.g, fa, b.g, fb, vm["atol"].as<double>(), vm.count("threads") ? vm["threads"].as<unsigned>() : 0, mm);
  close_fds(fa);
  close_fds(fb);
  if (vm["json"].as<bool>()) std::cout << rep.to_json().dump(2) << "\n";
  else std::cout << rep.to_text();
  return rep.ok ? 0 : kExitError;
}

std::string one_line(std::string s) {
  for (char &c : s)
    if (c == '\n' || c == '\r') c = ' ';
  return s;
}

int run_command_line(const std::vector<std::string> &line) {
  if (line.empty()) throw UsageError("a command gave an empty command line to run");
  const std::vector<std::string> a(line.begin() + 1, line.end());
  if (line[0] == "convert") return cmd_convert(a);
  if (line[0] == "inspect") return cmd_inspect(a);
  if (line[0] == "verify") return cmd_verify(a);
  if (line[0] == "synth") return cmd_synth(a);
  throw UsageError("a command asked to run '" + line[0] + "', which is not a ckhost command");
}

// `ckhost NAME ARGS`: a plugin's command component (ckh_command.h) translates ARGS into ckhost command
// lines, which run here in order; the host knows no other tool's flags.
int cmd_plugin_command(const std::string &name, const std::vector<std::string> &fwd, const std::vector<std::string> &args) {
  Registry reg;
  load_registry_for(reg, fwd);
  const Component *c = reg.find(CKH_COMPONENT_COMMAND, name);
  if (!c) {
    std::string names;
    for (const Component *k : reg.all(CKH_COMPONENT_COMMAND)) names += ", " + k->id;
    throw UsageError("unknown command '" + name + "' (commands: convert, inspect, verify, synth" + names + ")");
  }
  std::vector<const char *> argv;
  for (const auto &a : args) argv.push_back(a.c_str());
  std::string answer;
  auto sink = [](void *ctx, const char *text) -> ckh_status {
    *static_cast<std::string *>(ctx) = text ? text : "";
    return CKH_OK;
  };
  clear_last_error();
  const ckh_status st = c->command()->translate(c->command(), static_cast<uint32_t>(argv.size()), argv.data(),
                                                const_cast<const char *const *>(environ), &answer, sink);
  const auto le = take_last_error();
  if (st != CKH_OK) {
    const std::string msg = name + ": " + (le.second.empty() ? "failed with status " + std::to_string(st) : le.second);
    if (st == CKH_E_INVALID_ARG) throw UsageError(msg);
    throw Error(msg, st);
  }
  const json j = json::parse(answer, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !(j.contains("print") || j.contains("run")))
    throw Error(name + ": the command answered neither {\"print\": ...} nor {\"run\": [...]}", CKH_E_INTERNAL);
  if (j.contains("print")) {
    std::cout << j["print"].get<std::string>();
    return 0;
  }
  for (const auto &line : j["run"]) {
    std::vector<std::string> l;
    for (const auto &x : line) l.push_back(x.is_string() ? x.get<std::string>() : x.dump());
    if (!l.empty()) l.insert(l.begin() + 1, fwd.begin(), fwd.end());  // --plugin-dir and the like
    const int rc = run_command_line(l);
    if (rc != 0) return rc;
  }
  return 0;
}

extern "C" void on_sigint(int) {
  static volatile sig_atomic_t count = 0;
  if (++count > 1) std::_Exit(130);
  request_cancel();
}

}  // namespace

int main(int argc, char **argv) {
  std::signal(SIGINT, on_sigint);
  std::signal(SIGTERM, on_sigint);
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    // Global options may precede the command.
    std::vector<std::string> global_args;
    size_t i = 0;
    for (; i < args.size(); ++i) {
      const std::string &a = args[i];
      if (a.empty() || a[0] != '-') break;
      global_args.push_back(a);
      if ((a == "--plugin-dir") && i + 1 < args.size()) global_args.push_back(args[++i]);
    }
    po::options_description g;
    g.add(common_options()).add_options()("list-plugins", po::bool_switch(), "list plugins and exit")(
        "json", po::bool_switch(), "JSON output for --list-plugins")("version", po::bool_switch(), "print the version");
    po::variables_map gvm = parse(global_args, g, po::positional_options_description());
    setup_logging(gvm);
    std::vector<std::string> rest(args.begin() + static_cast<long>(i), args.end());
    // Global options (e.g. --plugin-dir) are forwarded to the command.
    std::vector<std::string> fwd;
    for (const auto &a : global_args)
      if (a != "--list-plugins" && a != "--json" && a != "--version") fwd.push_back(a);
    if (gvm["version"].as<bool>()) {
      std::cout << "ckhost " << CKH_VERSION_STRING << " (SDK ABI " << CKH_ABI_MAJOR << "." << CKH_ABI_MINOR << ")\n";
      return 0;
    }
    if (gvm["list-plugins"].as<bool>()) return cmd_list_plugins(gvm, gvm["json"].as<bool>());
    if (rest.empty() || gvm.count("help")) {
      std::cout << kMainHelp;
      return rest.empty() && !gvm.count("help") ? kExitUsage : 0;
    }
    const std::string cmd = rest[0];
    std::vector<std::string> cargs(fwd);
    cargs.insert(cargs.end(), rest.begin() + 1, rest.end());
    if (cmd == "convert") return cmd_convert(cargs);
    if (cmd == "inspect") return cmd_inspect(cargs);
    if (cmd == "verify") return cmd_verify(cargs);
    if (cmd == "synth") return cmd_synth(cargs);
    return cmd_plugin_command(cmd, fwd, std::vector<std::string>(rest.begin() + 1, rest.end()));
  } catch (const UsageError &e) {
    std::fprintf(stderr, "ckhost: usage error: %s\n", one_line(e.what()).c_str());
    return kExitUsage;
  } catch (const po::error &e) {
    std::fprintf(stderr, "ckhost: usage error: %s\n", one_line(e.what()).c_str());
    return kExitUsage;
  } catch (const Error &e) {
    std::fprintf(stderr, "ckhost: error: %s\n", one_line(e.what()).c_str());
    return e.code == CKH_E_CANCELLED ? 130 : kExitError;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "ckhost: error: %s\n", one_line(e.what()).c_str());
    return kExitError;
  }
}
