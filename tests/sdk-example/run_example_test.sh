#!/usr/bin/env bash
# The third-party plugin story, end to end:
#   1. install ckhost (binary, plugins, SDK package) from the main build into a temporary prefix;
#   2. build sdk/examples/example-rename out of tree against it (find_package(ckhost));
#   3. drop ckh-example-rename.so into a directory on CKHOST_PLUGIN_PATH;
#   4. the installed ckhost lists the plugin and its component, and converts with --map example.rename;
#   5. the output has the renamed names and byte-identical data.
# Usage: run_example_test.sh MAIN_BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD="$1"
SRC="$2"
PY=/usr/bin/python3
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
step() { echo "-- $*"; }

step "install ckhost into a temporary prefix"
cmake --install "$BUILD" --prefix "$T/prefix" >"$T/install.log"
test -f "$T/prefix/lib/cmake/ckhost/ckhostConfig.cmake"

step "build the example plugin out of tree"
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$SRC/sdk/examples/example-rename" -B "$T/ex" "${gen[@]}" -DCMAKE_PREFIX_PATH="$T/prefix" >"$T/configure.log"
cmake --build "$T/ex" >"$T/build.log"
mkdir -p "$T/plugins"
cp "$T/ex/ckh-example-rename.so" "$T/plugins/"
if command -v nm >/dev/null; then
  exported="$(nm -D --defined-only "$T/plugins/ckh-example-rename.so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}')"
  [ "$exported" = "ckh_plugin_entry" ] || { echo "exports: $exported"; exit 1; }
fi

CK="$T/prefix/bin/ckhost"
export CKHOST_PLUGIN_PATH="$T/plugins"

step "ckhost --list-plugins --json lists it"
"$CK" --list-plugins --json >"$T/list.json"
"$PY" - "$T/list.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ids = {p["id"]: p for p in j["plugins"]}
assert "com.example.rename" in ids, sorted(ids)
p = ids["com.example.rename"]
assert p["vendor"] == "Example Corp", p
comps = [c for c in p["components"] if c["id"] == "example.rename"]
assert len(comps) == 1 and comps[0]["kind"] == "mapper", p["components"]
caps = comps[0]["capabilities"]
assert {k: caps[k] for k in ("family", "from", "to")} == {"family": "*", "from": "hf", "to": "hf"}, caps
assert [o["name"] for o in caps["options"]] == ["rename"], caps
# The installed host also finds its own plugins in <prefix>/lib/ckhost/plugins.
assert "org.ckhost.format.safetensors" in ids and "org.ckhost.model.llama" in ids, sorted(ids)
assert not any("example" in json.dumps(r) for r in j.get("refused", [])), j["refused"]
PY

step "convert --map example.rename"
"$CK" synth --model llama --config "$SRC/plugins/model-llama/configs/tiny-llama.json" "$T/src" --progress none >/dev/null
"$CK" convert "$T/src" "$T/dst" --to hf --map example.rename --option 'rename=[["model.", ""]]' --progress none >/dev/null
"$CK" inspect "$T/dst" --json >"$T/inspect.json"
"$PY" - "$T/inspect.json" "$T/src" "$T/dst" <<'PY'
import json, os, struct, sys
names = [t["name"] for t in json.load(open(sys.argv[1]))["tensors"]]
assert "embed_tokens.weight" in names and "layers.0.mlp.up_proj.weight" in names, names[:5]
assert not any(n.startswith("model.") for n in names), names
assert "lm_head.weight" in names

def tensors(d):
    """name -> (dtype, shape, bytes) of every safetensors file in d (plain parser, no torch)."""
    out = {}
    for f in sorted(os.listdir(d)):
        if not f.endswith(".safetensors"):
            continue
        b = open(os.path.join(d, f), "rb").read()
        (n,) = struct.unpack("<Q", b[:8])
        for k, v in json.loads(b[8:8 + n]).items():
            if k != "__metadata__":
                s, e = v["data_offsets"]
                out[k] = (v["dtype"], v["shape"], b[8 + n + s:8 + n + e])
    return out

src, dst = tensors(sys.argv[2]), tensors(sys.argv[3])
assert len(src) == len(dst) == len(names), (len(src), len(dst), len(names))
for k, v in src.items():
    k2 = k[len("model."):] if k.startswith("model.") else k
    assert dst[k2] == v, k
assert os.path.exists(os.path.join(sys.argv[3], "config.json"))
PY

step "its declared option shows in convert --help and --print-config, and reaches the plugin"
"$CK" convert --help >"$T/help.txt"
grep -q -- "--rename arg" "$T/help.txt" || { cat "$T/help.txt"; exit 1; }
grep -q "example.rename options (declared by plugins)" "$T/help.txt" || { cat "$T/help.txt"; exit 1; }
"$CK" convert "$T/src" "$T/dst2" --to hf --map example.rename --rename '[["model.", "m."]]' --print-config >"$T/cfg.json"
"$PY" - "$T/cfg.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
assert c["rename"] == [["model.", "m."]], c
assert c["map"] == ["example.rename"], c
PY
"$CK" convert --config "$T/cfg.json" --progress none >/dev/null
"$CK" inspect "$T/dst2" --json >"$T/inspect2.json"
"$PY" - "$T/inspect2.json" <<'PY'
import json, sys
names = [t["name"] for t in json.load(open(sys.argv[1]))["tensors"]]
assert "m.embed_tokens.weight" in names and not any(n.startswith("model.") for n in names), names[:5]
PY

step "bad options are refused with one line, and leave nothing behind"
if "$CK" convert "$T/src" "$T/bad" --to hf --map example.rename --option 'rename=5' --progress none 2>"$T/err"; then
  echo "convert with rename=5 succeeded"; exit 1
fi
grep -q "example.rename: option 'rename' must be" "$T/err" || { cat "$T/err"; exit 1; }
[ "$(wc -l <"$T/err")" -eq 1 ] || { cat "$T/err"; exit 1; }
[ ! -e "$T/bad" ]
if "$CK" convert "$T/src" "$T/bad" --to hf --map example.rename \
    --option 'rename=[["model.embed_tokens.", "lm_head."]]' --progress none 2>"$T/err"; then
  echo "convert renaming two tensors to one name succeeded"; exit 1
fi
grep -q "lm_head.weight" "$T/err" || { cat "$T/err"; exit 1; }
[ ! -e "$T/bad" ]

step "an out-of-tree kernel provider replaces a kernel; the host uses it (counted); the output is unchanged"
cmake -S "$SRC/sdk/examples/example-kernels" -B "$T/exk" "${gen[@]}" -DCMAKE_PREFIX_PATH="$T/prefix" >"$T/configure-k.log"
cmake --build "$T/exk" >"$T/build-k.log"
mkdir -p "$T/kplugins"
cp "$T/exk/ckh-example-kernels.so" "$T/kplugins/"
"$CK" synth --model llama --config "$SRC/plugins/model-llama/configs/tiny-llama.json" "$T/src32" --dtype f32 --progress none >/dev/null
CKHOST_PLUGIN_PATH= "$CK" convert "$T/src32" "$T/bf16-builtin" --to hf --dtype bf16 --progress none >/dev/null
CKHOST_PLUGIN_PATH="$T/kplugins" "$CK" --list-plugins >"$T/klist.txt"
grep -Eq "f32_to_bf16 +com.example.kernels: kernels 'example.bf16' \(priority 10\)" "$T/klist.txt" || { cat "$T/klist.txt"; exit 1; }
grep -Eq "bf16_to_f32 +builtin" "$T/klist.txt" || { cat "$T/klist.txt"; exit 1; }
CKHOST_PLUGIN_PATH="$T/kplugins" "$CK" convert "$T/src32" "$T/bf16-provider" --to hf --dtype bf16 --progress none -v 2>"$T/kv.txt" >/dev/null
grep -q "kernel f32_to_bf16 from com.example.kernels" "$T/kv.txt" || { cat "$T/kv.txt"; exit 1; }
calls="$(sed -n 's/.*stats com.example.kernels: f32_to_bf16 elements = \([0-9]*\).*/\1/p' "$T/kv.txt")"
[ -n "$calls" ] && [ "$calls" -gt 0 ] || { echo "the provider was not called"; cat "$T/kv.txt"; exit 1; }
cmp "$T/bf16-builtin/model.safetensors" "$T/bf16-provider/model.safetensors"
# CKHOST_KERNELS=builtin ignores providers.
CKHOST_KERNELS=builtin CKHOST_PLUGIN_PATH="$T/kplugins" "$CK" --list-plugins >"$T/klist2.txt"
grep -Eq "f32_to_bf16 +builtin" "$T/klist2.txt" || { cat "$T/klist2.txt"; exit 1; }
echo "-- the provider converted $calls elements; output identical to the built-in kernel's"

step "an out-of-tree writer on the installed plugin kit (ckhost::kit) writes a torch.save file torch loads"
test -f "$T/prefix/include/ckhost/kit/torch_archive.hpp"
cmake -S "$SRC/sdk/examples/example-pt-writer" -B "$T/expt" "${gen[@]}" -DCMAKE_PREFIX_PATH="$T/prefix" >"$T/configure-pt.log"
cmake --build "$T/expt" >"$T/build-pt.log"
mkdir -p "$T/ptplugins"
cp "$T/expt/ckh-example-pt-writer.so" "$T/ptplugins/"
CKHOST_PLUGIN_PATH="$T/ptplugins" "$CK" convert "$T/src" "$T/pt" --to example.pt --progress none >/dev/null
"$PY" - "$T/pt/model.pt" "$T/src" <<'PY'
import json, os, struct, sys, torch
sd = torch.load(sys.argv[1], weights_only=True)
b = open(os.path.join(sys.argv[2], "model.safetensors"), "rb").read()
(n,) = struct.unpack("<Q", b[:8])
hdr = {k: v for k, v in json.loads(b[8:8 + n]).items() if k != "__metadata__"}
assert sorted(sd) == sorted(hdr), (len(sd), len(hdr))
for k, v in hdr.items():
    s, e = v["data_offsets"]
    t = sd[k]
    assert list(t.shape) == v["shape"], k
    assert t.contiguous().view(torch.uint8).numpy().tobytes() == b[8 + n + s:8 + n + e], k
print("-- example.pt: %d tensors, bytes identical, torch.load(weights_only=True) accepts it" % len(sd))
PY

echo "1 passed, 0 failed"
