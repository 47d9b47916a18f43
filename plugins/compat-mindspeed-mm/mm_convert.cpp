// mm_convert.cpp — MindSpeed-MM's `mm-convert` command line (checkpoint/convert_cli.py, jsonargparse) as a
// ckhost command component: `ckhost mm-convert Qwen2_5_VLConverter hf_to_mm --cfg.mm_dir ... ` becomes the
// equivalent `ckhost convert` line. It accepts what mm-convert documents: --cfg.* flags (values as JSON:
// nested lists for hf_to_mm, flat ones for mm_to_hf and resplit), --config FILE.yaml (a top-level `cfg:`),
// --print_config, and with JSONARGPARSE_DEFAULT_ENV=true the MM_CONVERT_<CLASS>__<METHOD>__CFG__<FIELD>
// environment variables. The mistakes mm-convert's FAQ warns about are refused here, before anything runs:
// llm and vit lists of different lengths, a nested list where a flat one is expected and the reverse, and a
// tp_size that does not match the checkpoint being read. Layer sums are checked by the conversion itself
// (the writer refuses a distribution that does not add up, by tower, before any byte is written).
#include <algorithm>
#include <array>
#include <sstream>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <ckhost/cpp/ckh_plugin.hpp>

using nlohmann::json;
using ckh::sdk::fail;
namespace fs = std::filesystem;

namespace {

const char *const kSupported[] = {"Qwen2VLConverter", "Qwen2_5_VLConverter", "InternVLConverter", "Qwen3VLMegatronConverter", "WanConverter"};
const char *const kKnown[] = {
                              "DeepSeekVL2Converter", "GlmConverter", "Mistral3Converter", "Qwen2_5_OmniConverter",
                              "Qwen35Converter", "GenericDCPConverter"};
const char *const kMethods[] = {"hf_to_mm", "mm_to_hf", "resplit"};

[[noreturn]] void bad(const std::string &msg) { fail(CKH_E_INVALID_ARG, msg); }

std::string upper(std::string s) {
  for (char &c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}
std::string lower(std::string s) {
  for (char &c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A flag value as jsonargparse reads it: JSON/YAML scalars and lists, anything else a string.
json value_of(const std::string &v) {
  json j = json::parse(v, nullptr, false);
  if (!j.is_discarded()) return j;
  if (v == "True" || v == "true") return true;
  if (v == "False" || v == "false") return false;
  if (v == "None" || v == "null") return nullptr;
  return v;
}

void set_path(json &root, const std::string &dotted, const json &v) {
  json *at = &root;
  size_t start = 0;
  while (true) {
    const size_t dot = dotted.find('.', start);
    const std::string key = dotted.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (key.empty()) bad("--cfg." + dotted + ": empty field name");
    if (dot == std::string::npos) {
      (*at)[key] = v;
      return;
    }
    if (!at->contains(key) || !(*at)[key].is_object()) (*at)[key] = json::object();
    at = &(*at)[key];
    start = dot + 1;
  }
}

void merge(json &into, const json &from) {
  for (auto it = from.begin(); it != from.end(); ++it) {
    if (it.value().is_object() && into.contains(it.key()) && into[it.key()].is_object()) merge(into[it.key()], it.value());
    else into[it.key()] = it.value();
  }
}

json from_yaml(const YAML::Node &n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      json o = json::object();
      for (const auto &kv : n) o[kv.first.as<std::string>()] = from_yaml(kv.second);
      return o;
    }
    case YAML::NodeType::Sequence: {
      json a = json::array();
      for (const auto &x : n) a.push_back(from_yaml(x));
      return a;
    }
    case YAML::NodeType::Scalar: return value_of(n.Scalar());
    default: return nullptr;
  }
}

// What --print_config=comments says of a field (its path below cfg: "parallel_config.tp_size").
const char *field_doc(const std::string &path) {
  static const std::pair<const char *, const char *> kDocs[] = {
      {"mm_dir", "MindSpeed-MM checkpoint directory (written by hf_to_mm, read by mm_to_hf)"},
      {"save_hf_dir", "output directory of mm_to_hf"},
      {"hf_config.hf_dir", "HF model directory: safetensors, config.json, tokenizer"},
      {"llm_pp_layers", "decoder layers per pipeline stage (hf_to_mm: one list per virtual pipeline chunk)"},
      {"vit_pp_layers", "vision tower layers per pipeline stage, as llm_pp_layers"},
      {"tp_size", "tensor parallel size"},
      {"source_dir", "MindSpeed-MM checkpoint to resplit"},
      {"target_dir", "output directory of resplit"},
      {"source_path", "input directory"},
      {"target_path", "output directory (a new one: ckhost never writes into its input)"},
      {"hf_dir", "the original HF directory (config.json and the side files)"},
      {"pp_layers", "blocks per pipeline stage (nested: one list per virtual pipeline chunk)"}};
  const std::string p = path.rfind("cfg.", 0) == 0 ? path.substr(4) : path;
  const size_t dot = p.rfind('.');
  const std::string leaf = dot == std::string::npos ? p : p.substr(dot + 1);
  for (const auto &[k, d] : kDocs)
    if (p == k || leaf == k) return d;
  return nullptr;
}

void to_yaml(YAML::Emitter &e, const json &j, bool comments = false, const std::string &path = "") {
  if (j.is_object()) {
    e << YAML::BeginMap;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string sub = path.empty() ? it.key() : path + "." + it.key();
      e << YAML::Key << it.key() << YAML::Value;
      to_yaml(e, it.value(), comments, sub);
      if (comments && !it.value().is_object())
        if (const char *d = field_doc(sub)) e << YAML::Comment(d);
    }
    e << YAML::EndMap;
  } else if (j.is_array()) {
    e << YAML::Flow << YAML::BeginSeq;
    for (const auto &x : j) to_yaml(e, x);
    e << YAML::EndSeq;
  } else if (j.is_string()) {
    e << j.get<std::string>();
  } else if (j.is_null()) {
    e << YAML::Null;
  } else {
    e << j.dump();
  }
}

const json *find(const json &cfg, std::initializer_list<const char *> path) {
  const json *at = &cfg;
  for (const char *k : path) {
    if (!at->is_object() || !at->contains(k)) return nullptr;
    at = &(*at)[k];
  }
  return at;
}

std::string need_str(const json &cfg, std::initializer_list<const char *> path) {
  const json *v = find(cfg, path);
  std::string name = "cfg";
  for (const char *k : path) name += std::string(".") + k;
  if (!v || v->is_null()) bad("--" + name + " is required");
  if (!v->is_string()) bad("--" + name + " must be a path, got " + v->dump());
  return v->get<std::string>();
}

int64_t opt_int(const json &cfg, std::initializer_list<const char *> path, int64_t def) {
  const json *v = find(cfg, path);
  std::string name = "cfg";
  for (const char *k : path) name += std::string(".") + k;
  if (!v || v->is_null()) return def;
  if (!v->is_number_integer() || v->get<int64_t>() < 1) bad("--" + name + " must be a positive integer, got " + v->dump());
  return v->get<int64_t>();
}

bool is_int_list(const json &v) {
  return v.is_array() && std::all_of(v.begin(), v.end(), [](const json &x) { return x.is_number_integer() && x.get<int64_t>() >= 0; });
}

// `v` as layer counts per stage (a non-empty list of non-negative integers), or a refusal ending in `how`.
std::vector<int64_t> layer_counts(const json &v, const std::string &what, const char *how) {
  if (!is_int_list(v) || v.empty()) bad(what + " " + how);
  return v.get<std::vector<int64_t>>();
}

// A flat list (mm_to_hf, resplit), or a nested list (hf_to_mm: one inner list per VPP chunk, each with one count
// per pipeline stage) flattened in Megatron's virtual-stage order v * PP + p; *vpp gets the number of chunks.
std::vector<int64_t> pp_list(const json &cfg, const char *section, const char *field, bool nested, int64_t *vpp = nullptr) {
  const json *v = find(cfg, {section, field});
  const std::string name = std::string("--cfg.") + section + "." + field;
  if (!v || v->is_null()) bad(name + " is required");
  const bool is_nested = v->is_array() && !v->empty() && std::all_of(v->begin(), v->end(), [](const json &x) { return x.is_array(); });
  if (nested && !is_nested)
    bad(name + " " + v->dump() + ": hf_to_mm takes nested lists, one per virtual pipeline chunk, e.g. [" + v->dump() + "]");
  if (!nested && is_nested)
    bad(name + " " + v->dump() + ": this method takes a flat list, e.g. " + (*v)[0].dump() + " (nested lists are for hf_to_mm)");
  if (nested) {
    std::vector<int64_t> flat;
    for (const json &chunk : *v) {
      const auto c = layer_counts(chunk, name + " " + v->dump(), "must hold non-negative layer counts");
      if (!flat.empty() && c.size() != (*v)[0].size())
        bad(name + " " + v->dump() + ": every virtual pipeline chunk needs one count per pipeline stage (" +
            std::to_string((*v)[0].size()) + "), one has " + std::to_string(c.size()));
      flat.insert(flat.end(), c.begin(), c.end());
    }
    if (vpp) *vpp = static_cast<int64_t>(v->size());
    return flat;
  }
  if (vpp) *vpp = 1;
  return layer_counts(*v, name + " " + v->dump(), "must be a list of non-negative layer counts");
}

std::string joined(const std::vector<int64_t> &v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s;
}

// The TP and PP sizes of a MindSpeed-MM checkpoint directory, from its rank directory names.
// TP, and the counts of the second and third index of mp_rank_TT[_NNN][_MMM] (MindSpeed-MM adds _PPP only with PP > 1
// and _EEE only with EP > 1), of the checkpoint in `dir`.
std::array<int64_t, 3> checkpoint_ranks(const std::string &dir) {
  std::error_code ec;
  fs::path iter = fs::path(dir) / "release";
  std::ifstream tracker(fs::path(dir) / "latest_checkpointed_iteration.txt");
  std::string t;
  if (tracker && std::getline(tracker, t) && t != "release" && !t.empty() && t.find_first_not_of("0123456789") == std::string::npos) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "iter_%07lld", std::stoll(t));
    iter = fs::path(dir) / buf;
  }
  std::array<int64_t, 3> n = {0, 1, 1};
  for (fs::directory_iterator it(iter, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind("mp_rank_", 0) != 0) continue;
    std::vector<int64_t> parts;
    std::stringstream ss(name.substr(8));
    for (std::string x; std::getline(ss, x, '_');) {
      if (x.empty() || x.size() > 3 || x.find_first_not_of("0123456789") != std::string::npos || parts.size() == 3)
        bad(it->path().string() + ": not a MindSpeed-MM rank directory");
      parts.push_back(std::stoll(x));
    }
    for (size_t k = 0; k < parts.size(); ++k) n[k] = std::max<int64_t>(n[k], parts[k] + 1);
  }
  if (n[0] == 0) bad(dir + ": no MindSpeed-MM rank directories (" + iter.string() + "/mp_rank_*)");
  return n;
}

std::pair<int64_t, int64_t> checkpoint_tp_pp(const std::string &dir) {
  const auto n = checkpoint_ranks(dir);
  return {n[0], n[1]};
}

void check_read_sizes(const std::string &dir, const std::vector<int64_t> &llm, int64_t tp, const char *what, int64_t ep = 1) {
  const auto n = checkpoint_ranks(dir);
  const int64_t ctp = n[0], cpp = ep > 1 && llm.size() == 1 ? 1 : n[1], cep = ep > 1 ? (llm.size() == 1 ? n[1] : n[2]) : 1;
  if (ctp != tp)
    bad(std::string("--cfg.") + what + ".tp_size " + std::to_string(tp) + " does not match the checkpoint being read: " + dir +
        " has TP " + std::to_string(ctp) + " (mp_rank_00.." + std::to_string(ctp - 1) + ")");
  if (cpp != static_cast<int64_t>(llm.size()))
    bad(std::string("--cfg.") + what + ".llm_pp_layers has " + std::to_string(llm.size()) + " stages but " + dir + " has PP " +
        std::to_string(cpp));
  if (cep != ep)
    bad(std::string("--cfg.") + what + ".ep_size " + std::to_string(ep) + " does not match the checkpoint being read: " + dir + " has EP " +
        std::to_string(cep));
}

std::vector<std::string> layout_args(const std::vector<int64_t> &llm, const std::vector<int64_t> &vit, int64_t tp, int64_t vpp = 1) {
  std::vector<std::string> a = {"--tp", std::to_string(tp)};
  const int64_t pp = static_cast<int64_t>(llm.size()) / vpp;
  if (vpp > 1 && pp < 2) bad("virtual pipeline chunks need more than one pipeline stage (each chunk list has " + std::to_string(pp) + ")");
  if (llm.size() > 1) {
    a.insert(a.end(), {"--pp", std::to_string(pp)});
    if (vpp > 1) a.insert(a.end(), {"--vpp", std::to_string(vpp)});
    a.insert(a.end(), {"--pp-layers", joined(llm), "--stack-pp-layers", "1=" + joined(vit)});
  }
  return a;
}

// A directory's config.json ({} when it has none or it does not parse: the conversion itself then says why).
json read_config(const std::string &dir) {
  std::ifstream f(fs::path(dir) / "config.json");
  if (!f) return json::object();
  const json j = json::parse(f, nullptr, false);
  return j.is_object() ? j : json::object();
}

void same_stages(const std::vector<int64_t> &llm, const std::vector<int64_t> &vit, const char *section) {
  if (llm.size() != vit.size())
    bad(std::string("--cfg.") + section + ": llm_pp_layers has " + std::to_string(llm.size()) + " pipeline stages and vit_pp_layers " +
        std::to_string(vit.size()) + "; give both towers one count per stage (e.g. llm [1,10,10,7] with vit [32,0,0,0])");
}

const char *kHelp =
    "usage: ckhost mm-convert CONVERTER METHOD [--cfg.FIELD VALUE]... [--config FILE.yaml] [--print_config] [--force]\n"
    "\n"
    "MindSpeed-MM's mm-convert command line, run by ckhost (streaming, bounded memory, atomic output).\n"
    "converters: Qwen2VLConverter, Qwen2_5_VLConverter, InternVLConverter, WanConverter, Qwen3VLConverter, ExpertMergeDcpConverter\n"
    "methods:\n"
    "  hf_to_mm   --cfg.mm_dir --cfg.hf_config.hf_dir --cfg.parallel_config.{llm_pp_layers,vit_pp_layers} [[...]]\n"
    "             [--cfg.parallel_config.tp_size N]\n"
    "  mm_to_hf   --cfg.mm_dir --cfg.save_hf_dir --cfg.hf_config.hf_dir --cfg.parallel_config.{llm_pp_layers,vit_pp_layers}\n"
    "             [...] [--cfg.parallel_config.tp_size N]\n"
    "  resplit    --cfg.source_dir --cfg.target_dir --cfg.{source,target}_parallel_config.{llm_pp_layers,vit_pp_layers,\n"
    "             tp_size}\n"
    "WanConverter: hf_to_mm / resplit --cfg.source_path --cfg.target_path [--cfg.target_parallel_config.pp_layers [...]],\n"
    "             mm_to_hf --cfg.source_path --cfg.target_path --cfg.hf_dir\n"
    "             [--cfg.parallel_config.ep_size N] (MoE: experts over EP rank directories mp_rank_TT[_PPP]_EEE)\n"
    "Qwen3VLMegatronConverter: as the Qwen converters (Qwen3VLMegatronConverter's names; resplit is ckhost's own)\n"
    "InternVLConverter: as the Qwen converters; mm_to_hf writes the naming of --cfg.hf_config.hf_dir's config.json\n"
    "             (InternVL chat for an InternVLChatConfig, transformers' otherwise); resplit is ckhost's own (MindSpeed-MM's is empty)\n"
    "ExpertMergeDcpConverter (InternVL3.5-MoE): hf_to_dcp --hf_dir --save_dir; dcp_to_hf --hf_dir --dcp_dir --save_dir\n"
    "Qwen3VLConverter: hf_to_dcp --hf_dir --dcp_dir; dcp_to_hf --load_dir --save_dir --model_assets_dir [--to_bf16 true]\n"
    "With JSONARGPARSE_DEFAULT_ENV=true, MM_CONVERT_<CONVERTER>__<METHOD>__CFG__<FIELD> variables give defaults.\n";

// mm-convert's arguments after CONVERTER METHOD, as jsonargparse reads them: the VLM and DiT converters take one
// pydantic `cfg` (--cfg.a.b VALUE, a --config YAML with a top-level cfg:, MM_CONVERT_<CLASS>__<METHOD>__CFG__A__B
// variables), the FSDP2 (DCP) converters flat keyword arguments (--hf_dir VALUE, a --config YAML of them,
// MM_CONVERT_<CLASS>__<METHOD>__HF_DIR). Defaults < environment (JSONARGPARSE_DEFAULT_ENV=true) < --config < flags.
struct Args {
  json cfg = json::object();
  bool print = false, comments = false, force = false, help = false;
};
Args read_args(const std::string &conv, const std::string &method, const std::vector<std::string> &a, const char *const *env, bool flat) {
  Args r;
  json cli = json::object(), file = json::object();
  for (size_t i = 2; i < a.size(); ++i) {
    std::string k = a[i], v;
    const size_t eq = k.find('=');
    const bool has_eq = k.rfind("--", 0) == 0 && eq != std::string::npos;
    if (has_eq) {
      v = k.substr(eq + 1);
      k = k.substr(0, eq);
    }
    if (k == "--print_config") {
      r.print = true;
      if (has_eq && v != "comments" && !v.empty()) bad("--print_config=" + v + ": the only flag is comments");
      r.comments = has_eq && v == "comments";
      continue;
    }
    if (k == "--force") {
      r.force = true;
      continue;
    }
    if (k == "-h" || k == "--help") {
      r.help = true;
      return r;
    }
    if (k.rfind("--", 0) != 0) bad("unexpected argument '" + k + "' (see ckhost mm-convert --help)");
    if (!has_eq) {
      if (i + 1 >= a.size()) bad(k + " needs a value");
      v = a[++i];
    }
    if (k == "--config") {
      YAML::Node n;
      try {
        n = YAML::LoadFile(v);
      } catch (const YAML::Exception &e) {
        bad("--config " + v + ": " + e.what());
      }
      const json j = from_yaml(n);
      if (flat && !j.is_object()) bad("--config " + v + ": not a mapping of " + conv + "." + method + "'s arguments");
      if (!flat && (!j.is_object() || !j.contains("cfg") || !j["cfg"].is_object())) bad("--config " + v + ": no top-level 'cfg:' mapping");
      merge(file, flat ? j : j["cfg"]);
    } else if (flat) {
      cli[k.substr(2)] = value_of(v);
    } else if (k.rfind("--cfg.", 0) == 0) {
      set_path(cli, k.substr(6), value_of(v));
    } else {
      bad("unknown option " + k + " (see ckhost mm-convert --help)");
    }
  }
  const char *denv = nullptr;
  for (const char *const *e = env; e && *e; ++e)
    if (std::strncmp(*e, "JSONARGPARSE_DEFAULT_ENV=", 25) == 0) denv = *e + 25;
  if (denv && lower(denv) == "true") {
    const std::string pre = "MM_CONVERT_" + upper(conv) + "__" + upper(method) + (flat ? "__" : "__CFG__");
    for (const char *const *e = env; e && *e; ++e) {
      const std::string s = *e;
      if (s.rfind(pre, 0) != 0) continue;
      const size_t eq = s.find('=');
      std::string path = lower(s.substr(pre.size(), eq - pre.size()));
      for (size_t p; (p = path.find("__")) != std::string::npos;) path.replace(p, 2, ".");
      set_path(r.cfg, path, value_of(s.substr(eq + 1)));
    }
  }
  merge(r.cfg, file);
  merge(r.cfg, cli);
  return r;
}

std::string flat_str(const json &cfg, const char *key) {
  if (!cfg.contains(key) || !cfg[key].is_string() || cfg[key].get<std::string>().empty()) bad(std::string("--") + key + " is required");
  return cfg[key].get<std::string>();
}

// ExpertMergeDcpConverter (InternVL3.5-MoE; its Qwen3-Omni and GLM-4.5V branches are not supported) and the FSDP2 DCP
// layout of MindSpeed-MM: {"model": {"model." + name}, "checkpoint_version": 3.0} in <save_dir>/release/.
std::vector<std::string> dcp_line(const std::string &conv, const std::string &method, const json &cfg) {
  if (conv == "ExpertMergeDcpConverter") {
    const std::string hf = flat_str(cfg, "hf_dir");
    const json c = read_config(hf);
    if (c.value("model_type", std::string()) != "internvl_chat")
      bad("ExpertMergeDcpConverter: --hf_dir " + hf + " is not an InternVLChatConfig model (ckhost converts InternVL3.5 here; "
          "Qwen3-Omni and GLM-4.5V are not supported)");
    if (method == "hf_to_dcp")
      return {"convert", hf, flat_str(cfg, "save_dir"), "--to", "dcp", "--dcp-layout", "mindspeed", "--internvl-names", "custom",
              "--internvl-experts", "merged"};
    return {"convert", flat_str(cfg, "dcp_dir"), flat_str(cfg, "save_dir"), "--to", "hf", "--hf-config", hf, "--dcp-prefix",
            "model.model.", "--internvl-names", "custom"};
  }
  if (conv == "Qwen3VLConverter") {  // checkpoint/vlm_model/converters/qwen3vl.py
    auto flag = [&](const char *key) {
      if (!cfg.contains(key)) return false;
      const json &v = cfg[key];
      if (v.is_boolean()) return v.get<bool>();
      const std::string t = v.is_string() ? lower(v.get<std::string>()) : v.dump();
      if (t == "true" || t == "1") return true;
      if (t == "false" || t == "0") return false;
      bad(std::string("--") + key + " " + v.dump() + ": expected true or false");
    };
    if (method == "hf_to_dcp") {
      if (flag("is_lora_base")) bad("--is_lora_base true (LoRA base prefix base_model.model.model.) is not supported by ckhost's mm-convert yet");
      if (flag("tie_weight"))
        bad("--tie_weight true is not supported: ckhost keeps the checkpoint's own lm_head (a tied model has none; transformers ties "
            "it on load), where MindSpeed-MM copies the embedding into lm_head.weight even for an untied model");
      return {"convert", flat_str(cfg, "hf_dir"), flat_str(cfg, "dcp_dir"), "--to", "dcp", "--dcp-layout", "mindspeed"};
    }
    std::vector<std::string> line = {"convert", flat_str(cfg, "load_dir"), flat_str(cfg, "save_dir"), "--to", "hf", "--hf-config",
                                     flat_str(cfg, "model_assets_dir"), "--dcp-prefix", "model.model."};
    if (flag("to_bf16")) line.insert(line.end(), {"--dtype", "bf16"});
    return line;
  }
  bad(conv + " " + method + " is not supported by ckhost's mm-convert");
}

ckh_status translate(const ckh_command_class_t *, uint32_t argc, const char *const *argv, const char *const *env, void *ctx,
                     ckh_text_sink_fn sink) {
  return ckh::sdk::guard([&] {
    std::vector<std::string> a(argv, argv + argc);
    auto answer = [&](const json &j) {
      const std::string s = j.dump();
      if (sink(ctx, s.c_str()) != CKH_OK) fail(CKH_E_INTERNAL, "sink failed");
    };
    if (a.empty() || a[0] == "-h" || a[0] == "--help") return answer({{"print", kHelp}});
    const std::string conv = a[0];
    if (conv == "ExpertMergeDcpConverter" || conv == "Qwen3VLConverter") {
      if (a.size() < 2 || a[1] == "-h" || a[1] == "--help") return answer({{"print", kHelp}});
      const std::string method = a[1];
      if (method != "hf_to_dcp" && method != "dcp_to_hf")
        bad(conv + " " + method + " is not supported by ckhost's mm-convert (hf_to_dcp, dcp_to_hf)" +
            (conv == "Qwen3VLConverter" && (method == "hf_to_mm" || method == "mm_to_hf" || method == "resplit")
                 ? std::string("; MindSpeed-MM's own Qwen3VLConverter has only stubs for it")
                 : std::string()));
      const Args args = read_args(conv, method, a, env, true);
      if (args.help) return answer({{"print", kHelp}});
      if (args.print) {
        YAML::Emitter e;
        to_yaml(e, args.cfg, args.comments);
        return answer({{"print", std::string(e.c_str()) + "\n"}});
      }
      std::vector<std::string> line = dcp_line(conv, method, args.cfg);
      line.insert(line.end(), {"--progress", "none"});
      if (args.force) line.push_back("--force");
      return answer({{"run", json::array({line})}});
    }
    if (std::none_of(std::begin(kSupported), std::end(kSupported), [&](const char *s) { return conv == s; })) {
      if (std::any_of(std::begin(kKnown), std::end(kKnown), [&](const char *s) { return conv == s; }))
        bad(conv + " is not supported by ckhost's mm-convert yet (supported: Qwen2VLConverter, Qwen2_5_VLConverter, InternVLConverter, Qwen3VLMegatronConverter, WanConverter, Qwen3VLConverter, ExpertMergeDcpConverter)");
      bad("unknown converter '" + conv + "' (supported: Qwen2VLConverter, Qwen2_5_VLConverter, InternVLConverter, Qwen3VLMegatronConverter, WanConverter, Qwen3VLConverter, ExpertMergeDcpConverter)");
    }
    if (a.size() < 2 || a[1] == "-h" || a[1] == "--help") return answer({{"print", kHelp}});
    const std::string method = a[1];
    if (std::none_of(std::begin(kMethods), std::end(kMethods), [&](const char *s) { return method == s; }))
      bad(conv + " has no method '" + method + "' in ckhost's mm-convert (hf_to_mm, mm_to_hf, resplit)");
    const Args args = read_args(conv, method, a, env, false);
    if (args.help) return answer({{"print", kHelp}});
    const json &cfg = args.cfg;
    const bool force = args.force;
    if (args.print) {
      YAML::Emitter e;
      to_yaml(e, json{{"cfg", cfg}}, args.comments, "");
      return answer({{"print", std::string(e.c_str()) + "\n"}});
    }
    std::vector<std::string> line;
    if (conv == "WanConverter") {
      // checkpoint/sora_model: ConvertConfig{source_path, hf_dir, target_path, target_parallel_config{pp_layers, tp_size}}.
      const std::string src = need_str(cfg, {"source_path"}), dst = need_str(cfg, {"target_path"});
      std::error_code ec;
      if (fs::weakly_canonical(src, ec) == fs::weakly_canonical(dst, ec))
        bad("--cfg.target_path is --cfg.source_path: mm-convert writes release/ into the source directory, ckhost writes a new "
            "directory atomically and never into its input; give another --cfg.target_path");
      // target_parallel_config.pp_layers: flat, or nested (one list per VPP chunk, flattened in the order
      // v * PP + p as _pp_vpp_split does); absent or empty for one stage.
      int64_t vpp = 1;
      auto wan_layers = [&]() -> std::vector<int64_t> {
        const json *v = find(cfg, {"target_parallel_config", "pp_layers"});
        if (!v || v->is_null() || (v->is_array() && v->empty())) return {};
        const std::string what = "--cfg.target_parallel_config.pp_layers " + v->dump();
        if (v->is_array() && (*v)[0].is_array()) return pp_list(cfg, "target_parallel_config", "pp_layers", true, &vpp);
        return layer_counts(*v, what, "must be a list of non-negative layer counts");
      };
      const json *tps = find(cfg, {"target_parallel_config", "tp_size"});
      if (tps && tps->is_number_integer() && tps->get<int64_t>() > 1)
        bad("--cfg.target_parallel_config.tp_size " + tps->dump() + ": WanConverter splits nothing over TP (_enable_tp = False); use 1");
      if (method == "mm_to_hf") {
        line = {"convert", src, dst, "--to", "hf", "--hf-config", need_str(cfg, {"hf_dir"})};
      } else {
        const auto pp = wan_layers();
        if (method == "resplit") checkpoint_tp_pp(src);  // a MindSpeed-MM checkpoint, or a one-line refusal
        line = {"convert", src, dst, "--to", "mindspeed-mm"};
        const int64_t stages = static_cast<int64_t>(pp.size()) / vpp;
        if (vpp > 1 && stages < 2) bad("virtual pipeline chunks need more than one pipeline stage (each chunk list has " + std::to_string(stages) + ")");
        if (pp.size() > 1) line.insert(line.end(), {"--pp", std::to_string(stages), "--pp-layers", joined(pp)});
        if (vpp > 1) line.insert(line.end(), {"--vpp", std::to_string(vpp)});
      }
    } else if (method == "hf_to_mm") {
      int64_t vpp = 1, vit_vpp = 1;
      const auto llm = pp_list(cfg, "parallel_config", "llm_pp_layers", true, &vpp);
      const auto vit = pp_list(cfg, "parallel_config", "vit_pp_layers", true, &vit_vpp);
      if (vpp != vit_vpp)
        bad("--cfg.parallel_config: llm_pp_layers has " + std::to_string(vpp) + " virtual pipeline chunks and vit_pp_layers " +
            std::to_string(vit_vpp));
      same_stages(llm, vit, "parallel_config");
      line = {"convert", need_str(cfg, {"hf_config", "hf_dir"}), need_str(cfg, {"mm_dir"}), "--to", "mindspeed-mm"};
      const auto lay = layout_args(llm, vit, opt_int(cfg, {"parallel_config", "tp_size"}, 1), vpp);
      line.insert(line.end(), lay.begin(), lay.end());
      if (const int64_t ep = opt_int(cfg, {"parallel_config", "ep_size"}, 1); ep > 1) line.insert(line.end(), {"--ep", std::to_string(ep)});
    } else if (method == "mm_to_hf") {
      const auto llm = pp_list(cfg, "parallel_config", "llm_pp_layers", false);
      const auto vit = pp_list(cfg, "parallel_config", "vit_pp_layers", false);
      same_stages(llm, vit, "parallel_config");
      const std::string mm = need_str(cfg, {"mm_dir"});
      check_read_sizes(mm, llm, opt_int(cfg, {"parallel_config", "tp_size"}, 1), "parallel_config",
                       opt_int(cfg, {"parallel_config", "ep_size"}, 1));
      const std::string hf_dir = need_str(cfg, {"hf_config", "hf_dir"});
      line = {"convert", mm, need_str(cfg, {"save_hf_dir"}), "--to", "hf", "--hf-config", hf_dir};
      // InternVLConverter gives back the layout of the HF directory it was given: OpenGVLab's chat layout for an
      // InternVLChatConfig (with InternLM2 names for an InternLM2 LLM), transformers' otherwise.
      if (conv == "InternVLConverter") {
        const json c = read_config(hf_dir);
        if (c.value("model_type", std::string()) == "internvl_chat") {
          const json llm = c.value("llm_config", json::object());
          const json archs = llm.value("architectures", json::array());
          const bool internlm2 = (archs.is_array() && !archs.empty() && archs[0] == "InternLM2ForCausalLM") ||
                                 llm.value("model_type", std::string()) == "internlm2";
          line.insert(line.end(), {"--internvl-names", internlm2 ? "custom-internlm2" : "custom"});
        }
      }
    } else {
      const auto sl = pp_list(cfg, "source_parallel_config", "llm_pp_layers", false);
      const auto sv = pp_list(cfg, "source_parallel_config", "vit_pp_layers", false);
      const auto tl = pp_list(cfg, "target_parallel_config", "llm_pp_layers", false);
      const auto tv = pp_list(cfg, "target_parallel_config", "vit_pp_layers", false);
      same_stages(sl, sv, "source_parallel_config");
      same_stages(tl, tv, "target_parallel_config");
      const std::string src = need_str(cfg, {"source_dir"});
      check_read_sizes(src, sl, opt_int(cfg, {"source_parallel_config", "tp_size"}, 1), "source_parallel_config",
                       opt_int(cfg, {"source_parallel_config", "ep_size"}, 1));
      line = {"convert", src, need_str(cfg, {"target_dir"}), "--to", "mindspeed-mm"};
      const auto lay = layout_args(tl, tv, opt_int(cfg, {"target_parallel_config", "tp_size"}, 1));
      line.insert(line.end(), lay.begin(), lay.end());
      if (const int64_t ep = opt_int(cfg, {"target_parallel_config", "ep_size"}, 1); ep > 1) line.insert(line.end(), {"--ep", std::to_string(ep)});
    }
    line.insert(line.end(), {"--progress", "none"});
    if (force) line.push_back("--force");
    answer({{"run", json::array({line})}});
  });
}

const ckh_command_class_t kCommand = {sizeof(ckh_command_class_t), 0, translate};
const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_COMMAND, "mm-convert",
                               "MindSpeed-MM's mm-convert (Qwen2VLConverter, Qwen2_5_VLConverter, InternVLConverter, WanConverter: hf_to_mm, mm_to_hf, resplit) "
                               "run as ckhost conversions",
                               "{}", &kCommand};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.compat.mindspeed-mm", "0.1.0",
                              "ckhost", "MindSpeed-MM mm-convert command line", init, nullptr, kComps, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
