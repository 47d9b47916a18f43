// convert_cpu_weights.cpp — `ckhost convert-cpu-weights ARGS`: the command line of KTransformers'
// kt-kernel/scripts/convert_cpu_weights.py (its argparse flags, spelled as it spells them) run as
//   ckhost convert INPUT OUTPUT --to kt-amx --kt-method int4|int8 --kt-threadpool-count N
// With --input-type fp8 the kt-amx writer dequantizes the block-FP8 experts on the CPU (the script needs a CUDA GPU and
// Triton for it) and keeps the other FP8 tensors with their scales, as the script does. Accepted and not needed: --cpuinfer-threads (ckhost takes --threads, default all cores), --gpu,
// --fp8-expert-batch, --profile. Refused with the reason: --input-type awq / --quant-method awq (the AWQ repack),
// moe_int4 / moe_int8 (the AMD BLIS / Arm KML layouts), --no-merge-safetensor (ckhost writes the merged safetensors
// only), --resume-layer N > 0 (the output appears whole or not at all, so there is nothing to resume) and
// --save-backward-weights.
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_command.h>
#include <ckhost/cpp/ckh_plugin.hpp>

using nlohmann::json;
using ckh::sdk::fail;

namespace {

const char kHelp[] =
    "usage: ckhost convert-cpu-weights --input-path DIR --input-type {fp8,fp16,bf16} --output DIR\n"
    "                                  [--quant-method {int4,int8}] [--threadpool-count N] [--cpuinfer-threads N]\n"
    "                                  [--gpu] [--fp8-expert-batch N] [--resume-layer 0]\n"
    "\n"
    "KTransformers' kt-kernel/scripts/convert_cpu_weights.py, run as a ckhost conversion:\n"
    "  ckhost convert INPUT OUTPUT --to kt-amx --kt-method int4|int8 --kt-threadpool-count N\n"
    "The routed experts become kt-kernel's AMXINT4 / AMXINT8 buffers split into --threadpool-count NUMA parts\n"
    "(blk.L.ffn_{gate,up,down}_exps.E.numa.i.{weight,scale}), the other tensors keep their dtype under the\n"
    "script's names (FP8 ones with their weight_scale_inv); the output is the merged safetensors. FP8 experts are\n"
    "dequantized on the CPU (no GPU). --input-type only has to name one of fp8, fp16, bf16: the checkpoint says which.\n"
    "--cpuinfer-threads, --gpu and --fp8-expert-batch are accepted and not needed (ckhost: --threads).\n"
    "Not supported: awq, moe_int4, moe_int8, --no-merge-safetensor, --resume-layer > 0, --save-backward-weights.\n";

[[noreturn]] void bad(const std::string &m) { fail(CKH_E_INVALID_ARG, m); }

ckh_status translate(const ckh_command_class_t *, uint32_t argc, const char *const *argv, const char *const *, void *ctx,
                     ckh_text_sink_fn sink) {
  return ckh::sdk::guard([&] {
    auto answer = [&](const json &j) {
      const std::string s = j.dump();
      if (sink(ctx, s.c_str()) != CKH_OK) fail(CKH_E_INTERNAL, "sink failed");
    };
    // argparse's spellings: --flag VALUE and --flag=VALUE; -i / -o for the paths.
    static const std::map<std::string, std::string> kValued = {
        {"--input-path", "input"}, {"-i", "input"},       {"--input-type", "type"},          {"--output", "output"},
        {"-o", "output"},          {"--quant-method", "method"}, {"--cpuinfer-threads", "cpuinfer"},
        {"--threadpool-count", "tp"}, {"--resume-layer", "resume"}, {"--fp8-expert-batch", "fp8batch"}};
    static const std::map<std::string, std::string> kFlags = {
        {"--gpu", "gpu"}, {"--no-merge-safetensor", "nomerge"}, {"--save-backward-weights", "bwd"}, {"--profile", "profile"}};
    std::map<std::string, std::string> v;
    for (uint32_t i = 0; i < argc; ++i) {
      std::string a = argv[i];
      if (a == "-h" || a == "--help") return answer({{"print", kHelp}});
      std::string val;
      bool has_val = false;
      if (const size_t eq = a.find('='); a.rfind("--", 0) == 0 && eq != std::string::npos) {
        val = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_val = true;
      }
      if (auto f = kFlags.find(a); f != kFlags.end()) {
        if (has_val) bad("argument " + a + ": ignored explicit argument '" + val + "'");
        v[f->second] = "1";
        continue;
      }
      auto k = kValued.find(a);
      if (k == kValued.end()) bad("unrecognized arguments: " + a);
      if (!has_val) {
        if (i + 1 >= argc) bad("argument " + a + ": expected one argument");
        val = argv[++i];
      }
      v[k->second] = val;
    }
    auto int_arg = [&](const char *key, const char *flag, long def) {
      if (!v.count(key)) return def;
      char *end = nullptr;
      const long n = std::strtol(v[key].c_str(), &end, 10);
      if (v[key].empty() || *end) bad(std::string("argument ") + flag + ": invalid int value: '" + v[key] + "'");
      return n;
    };
    for (const char *req : {"input", "type", "output"})
      if (!v.count(req))
        bad(std::string("the following arguments are required: ") +
            (std::string(req) == "input" ? "--input-path/-i" : std::string(req) == "type" ? "--input-type" : "--output/-o"));
    const std::string type = v["type"], method = v.count("method") ? v["method"] : "int4";
    if (type != "fp8" && type != "fp16" && type != "bf16" && type != "awq")
      bad("argument --input-type: invalid choice: '" + type + "' (choose from 'awq', 'fp8', 'fp16', 'bf16')");
    if (method != "int4" && method != "int8" && method != "awq" && method != "moe_int4" && method != "moe_int8")
      bad("argument --quant-method: invalid choice: '" + method + "' (choose from 'int4', 'int8', 'awq', 'moe_int4', 'moe_int8')");
    if (type == "awq" || method == "awq") bad("the AWQ repack (--input-type awq / --quant-method awq) is not supported by ckhost");
    if (method == "moe_int4" || method == "moe_int8")
      bad("--quant-method " + method + " (kt-kernel's AMD BLIS / Arm KML layouts) is not supported by ckhost; int4 and int8 (AMX) are");
    if (v.count("nomerge")) bad("--no-merge-safetensor: ckhost writes the merged safetensors only (kt-kernel loads them as it loads the layer folders)");
    if (v.count("bwd")) bad("--save-backward-weights is not supported by ckhost");
    if (int_arg("resume", "--resume-layer", 0) != 0)
      bad("--resume-layer " + v["resume"] + ": ckhost writes the output whole or not at all (a failed run leaves nothing behind), so there is "
          "no layer to resume from: run the conversion again without it");
    const long tp = int_arg("tp", "--threadpool-count", 2);
    if (tp < 1) bad("--threadpool-count " + std::to_string(tp) + ": expected at least 1");
    int_arg("cpuinfer", "--cpuinfer-threads", 60);
    int_arg("fp8batch", "--fp8-expert-batch", 16);
    std::vector<std::string> line = {"convert", v["input"], v["output"], "--to", "kt-amx", "--kt-method", method,
                                     "--kt-threadpool-count", std::to_string(tp)};
    answer({{"run", json::array({line})}});
  });
}

const ckh_command_class_t kCommand = {sizeof(ckh_command_class_t), 0, translate};
const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_COMMAND, "convert-cpu-weights",
                               "KTransformers' convert_cpu_weights.py (--input-type fp8|fp16|bf16, --quant-method int4|int8, "
                               "--threadpool-count) run as a ckhost conversion to kt-amx, FP8 experts dequantized on the CPU",
                               "{}", &kCommand};
const ckh_component_t *const kComps[] = {&kComp};

ckh_status init(const ckh_host_t *host) {
  ckh::sdk::set_host(host);
  return CKH_OK;
}

const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.ckhost.compat.ktransformers", "0.1.0",
                              "ckhost", "KTransformers convert_cpu_weights.py command line", init, nullptr, kComps, nullptr};

}  // namespace

extern "C" CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
