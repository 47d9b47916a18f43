#!/usr/bin/env bash
# Installs ckhost into a temporary prefix, builds sdk/examples/example-rename against it with
# find_package(ckhost), drops the plugin into a directory on CKHOST_PLUGIN_PATH, and checks that the
# installed ckhost lists it and uses it in a conversion.
set -euo pipefail
BUILD="$1"
SRC="$2"
T="$(mktemp -d)"
trap 'rm -rf "$T"' EXIT
cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$SRC/sdk/examples/example-rename" -B "$T/ex" "${gen[@]}" -DCMAKE_PREFIX_PATH="$T/prefix" >/dev/null
cmake --build "$T/ex" >/dev/null
mkdir -p "$T/plugins"
cp "$T/ex/ckh-example-rename.so" "$T/plugins/"
CK="$T/prefix/bin/ckhost"
export CKHOST_PLUGIN_PATH="$T/plugins"
"$CK" --list-plugins --json > "$T/list.json"
/usr/bin/python3 - "$T/list.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
ids = {p["id"]: p for p in j["plugins"]}
assert "com.example.rename" in ids, ids.keys()
assert ids["com.example.rename"]["vendor"] == "Example Corp"
assert any(c["id"] == "example.rename" and c["kind"] == "mapper" for c in ids["com.example.rename"]["components"])
# The installed host also finds its own plugins in <prefix>/lib/ckhost/plugins.
assert "org.ckhost.format.safetensors" in ids and "org.ckhost.model.llama" in ids
PY
"$CK" synth --model llama --config "$SRC/plugins/model-llama/configs/tiny-llama.json" "$T/src" --progress none >/dev/null
"$CK" convert "$T/src" "$T/dst" --to hf --map example.rename --option 'rename=[["model.", ""]]' --progress none >/dev/null
"$CK" inspect "$T/dst" --json > "$T/inspect.json"
/usr/bin/python3 - "$T/inspect.json" <<'PY'
import json, sys
names = [t["name"] for t in json.load(open(sys.argv[1]))["tensors"]]
assert "embed_tokens.weight" in names and "layers.0.mlp.up_proj.weight" in names, names[:5]
assert not any(n.startswith("model.") for n in names)
assert "lm_head.weight" in names
PY
echo "1 passed, 0 failed"
