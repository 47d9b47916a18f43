#!/usr/bin/env bash
# Builds and runs every libFuzzer target (fuzz_*) for a bounded time each.
#
#   scripts/fuzz.sh [seconds]        default 30 seconds per target
#
# Configures a separate build directory (build-fuzz, or $CKH_FUZZ_BUILD) with clang and
# -DCKH_BUILD_FUZZERS=ON, builds only the fuzz_* targets, generates a seed corpus of valid inputs for the
# targets it knows, and runs each with -max_total_time. Exits non-zero if any target crashes, leaks,
# times out on one input, or fails to build; crashing inputs are kept in build-fuzz/fuzz/artifacts/.
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
case "$SECONDS_PER_TARGET" in
  ''|*[!0-9]*) echo "usage: $0 [seconds]" >&2; exit 2 ;;
esac
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CKH_FUZZ_BUILD:-$ROOT/build-fuzz}"
JOBS="${CKH_JOBS:-2}"
WORK="$BUILD/fuzz"
PY="$(command -v python3 || true)"

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (apt-get install clang)" >&2; exit 2; }
done

gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCKH_BUILD_FUZZERS=ON -DCKH_BUILD_BENCH=OFF >/dev/null
else
  cmake -S "$ROOT" -B "$BUILD" -DCKH_BUILD_FUZZERS=ON >/dev/null
fi

# Every fuzz_* target the build defines (works for Ninja and Makefile generators).
mapfile -t TARGETS < <(cmake --build "$BUILD" --target help 2>/dev/null |
  grep -oE '(^|[ ./])fuzz_[A-Za-z0-9_]+' | sed -E 's/^[ .\/]//' | sort -u)
if [ ${#TARGETS[@]} -eq 0 ]; then
  echo "fuzz.sh: no fuzz_* targets defined" >&2
  exit 1
fi
echo "fuzz.sh: targets: ${TARGETS[*]}"
cmake --build "$BUILD" -j "$JOBS" --target "${TARGETS[@]}"

# ---- seed corpora and dictionaries ----------------------------------------------------------------
# fuzz_safetensors_header input: u64 LE "extra file size" + the first bytes of a safetensors file.
seed_fuzz_safetensors_header() {
  local dir="$1" dict="$2"
  [ -n "$PY" ] || { echo "fuzz.sh: no python3; starting without seeds" >&2; return 0; }
  "$PY" - "$dir" "$dict" <<'EOF'
import json, os, struct, sys
out, dict_path = sys.argv[1], sys.argv[2]
sizes = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2,
         "U16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1}
def header(tensors, meta=None, pad=True):
    h, off = {}, 0
    if meta is not None:
        h["__metadata__"] = meta
    for name, dt, shape in tensors:
        n = sizes[dt]
        for s in shape:
            n *= s
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        off += n
    b = json.dumps(h, separators=(",", ":")).encode()
    if pad:
        b += b" " * ((8 - len(b) % 8) % 8)
    return b, off
seeds = []
def add(tensors, meta={"format": "pt"}, whole=True, pad=True):
    b, data = header(tensors, meta, pad)
    # the whole file; the header only, with the data size passed as "extra"; and a truncated data section
    if whole:
        seeds.append(struct.pack("<Q", 0) + struct.pack("<Q", len(b)) + b + b"\0" * data)
    seeds.append(struct.pack("<Q", data) + struct.pack("<Q", len(b)) + b)
    if data:
        seeds.append(struct.pack("<Q", data - 1) + struct.pack("<Q", len(b)) + b)
add([])
add([], meta=None)
add([("w", dt, [2, 3]) for dt in ["F32"]])
for i, dt in enumerate(sizes):
    add([("t.%d" % i, dt, [3, 1, 2])])
add([("scalar", "F64", []), ("empty", "BF16", [0, 4]), ("model.layers.0.mlp.up_proj.weight", "BF16", [8, 4])])
add([("a", "U8", [1, 1, 1, 1, 1, 1, 1, 2]), ("caf\u00e9\U0001F600", "I16", [5])], meta={"format": "pt", "k": "v\n"})
add([("model.layers.%d.self_attn.q_proj.weight" % i, "BF16", [4, 4]) for i in range(12)])
add([("big", "BF16", [5632, 2048])], whole=False)
add([("w", "F32", [2])], pad=False)
for i, s in enumerate(seeds):
    with open(os.path.join(out, "seed-%03d" % i), "wb") as f:
        f.write(s)
tokens = ['"dtype"', '"shape"', '"data_offsets"', '"__metadata__"', '"format"', '"pt"', "{", "}", "[", "]",
          ":", ",", "[]", "{}", "null", "true", "false", "-1", "0", "1e3", "1.5", "18446744073709551615",
          "18446744073709551616", "9223372036854775807", "4294967296", '"\\u0000"', '"\\ud83d\\ude00"', '"\\u00e9"',
          '"\\"', "\\n"] + ['"%s"' % d for d in sizes]
with open(dict_path, "w") as f:
    for t in tokens:
        f.write('"%s"\n' % t.replace("\\", "\\\\").replace('"', '\\"'))
EOF
}

# fuzz_torch_dcp input: a DCP .metadata pickle. Seeds are pickled by Python itself (protocols 2 and 4)
# from stand-in classes registered under torch's module paths (1.13 and 2.x), with tensor, bytes and
# MetadataIndex entries, Megatron's mcore_data, and planner_data.
seed_fuzz_torch_dcp() {
  local dir="$1" dict="$2"
  [ -n "$PY" ] || { echo "fuzz.sh: no python3; starting without seeds" >&2; return 0; }
  "$PY" - "$dir" "$dict" <<'EOF'
import os, pickle, sys, types
out, dict_path = sys.argv[1], sys.argv[2]
def module(name):
    m = sys.modules.get(name) or types.ModuleType(name)
    sys.modules[name] = m
    return m
def cls(mod, name):
    c = type(name, (object,), {"__module__": mod, "__qualname__": name})
    setattr(module(mod), name, c)
    return c
class Size(tuple):
    def __reduce__(self):
        return (Size, (tuple(self),))
Size.__module__, Size.__qualname__ = "torch", "Size"
setattr(module("torch"), "Size", Size)
class DType:
    def __init__(self, n): self.n = n
    def __reduce__(self): return self.n
DType.__module__ = "torch"
for n in ("bfloat16", "float32", "float8_e4m3fn", "complex64"):
    setattr(module("torch"), n, DType(n))
class Props:
    def __init__(self, dt): self.state = (dt, None, False, 0, False)
    def __reduce__(self): return (object.__new__, (Props,), self.state)
    def __setstate__(self, s): self.state = s
props_mod = "torch.distributed._shard.sharded_tensor.metadata"
Props.__module__, Props.__qualname__ = props_mod, "TensorProperties"
setattr(module(props_mod), "TensorProperties", Props)
def obj(c, **kw):
    o = c.__new__(c)
    o.__dict__.update(kw)
    return o
seeds = []
for meta, fs in (("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem"),
                 ("torch.distributed._shard.checkpoint.metadata", "torch.distributed._shard.checkpoint.filesystem")):
    Meta, TSM, CSM, BSM, MI = (cls(meta, n) for n in ("Metadata", "TensorStorageMetadata", "ChunkStorageMetadata",
                                                      "BytesStorageMetadata", "MetadataIndex"))
    SI = cls(fs, "_StorageInfo")
    for L, dt in ((3, "bfloat16"), (1, "float32"), (2, "float8_e4m3fn"), (1, "complex64")):
        sdm, sd = {}, {}
        d = getattr(module("torch"), dt)
        chunks = [obj(CSM, offsets=Size((l, 0)), sizes=Size((1, 4))) for l in range(L)]
        sdm["decoder.layers.w"] = obj(TSM, properties=Props(d), size=Size((L, 4)), chunks=chunks)
        for i, c in enumerate(chunks):
            sd[obj(MI, fqn="decoder.layers.w", index=i, offset=c.offsets)] = obj(
                SI, relative_path="__0_%d.distcp" % (i % 2), offset=64 * i, length=700)
        sdm["s"] = obj(TSM, properties=Props(d), size=Size(()), chunks=[obj(CSM, offsets=Size(()), sizes=Size(()))])
        sd[obj(MI, fqn="s", index=0, offset=Size(()))] = obj(SI, relative_path="__0_0.distcp", offset=0, length=5)
        sdm["common_state/shard_0_1"] = obj(BSM)
        sd[obj(MI, fqn="common_state/shard_0_1", index=None)] = obj(
            SI, relative_path="__0_1.distcp", offset=0, length=431, transform_descriptors=None)
        m = obj(Meta, state_dict_metadata=sdm, planner_data={"decoder.layers.w": ("decoder", "layers.w")}, storage_data=sd)
        if L == 2:
            m.mcore_data = {"optimizer.x": {"nd_reformulated_orig_global_shape": (4, 4)}}
        for proto in (2, 4):
            seeds.append(pickle.dumps(m, protocol=proto))
for i, s in enumerate(seeds):
    with open(os.path.join(out, "seed-%03d" % i), "wb") as f:
        f.write(s)
tokens = ["state_dict_metadata", "storage_data", "planner_data", "chunks", "offsets", "sizes", "relative_path",
          "offset", "length", "fqn", "index", "properties", "size", "mcore_data", "transform_descriptors"]
with open(dict_path, "w") as f:
    for t in tokens:
        f.write('"%s"\n' % t)
EOF
}

# fuzz_gguf input: a whole GGUF file. Seeds: small valid v3 files (key-values of several types, arrays of strings and
# integers, F32 / F16 / Q8_0 tensors, general.alignment 32 and 64) written here byte by byte.
seed_fuzz_gguf() {
  local out="$1" dict_path="$2"
  python3 - "$out" "$dict_path" <<'EOF'
import os, struct, sys
out, dict_path = sys.argv[1], sys.argv[2]
def s(x):
    b = x.encode()
    return struct.pack("<Q", len(b)) + b
def kv(key, t, payload):
    return s(key) + struct.pack("<I", t) + payload
def gguf(tensors, kvs, align=32):
    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    infos, data = b"", b""
    for name, ne, typ, payload in tensors:
        data += b"\0" * ((-len(data)) % align)
        infos += s(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", n) for n in ne) + struct.pack("<IQ", typ, len(data))
        data += payload
    body = head + infos
    return body + b"\0" * ((-len(body)) % align) + data
kvs = [kv("general.architecture", 8, s("llama")), kv("llama.block_count", 4, struct.pack("<I", 1)),
       kv("llama.rope.freq_base", 6, struct.pack("<f", 10000.0)), kv("flag", 7, b"\1"), kv("n64", 10, struct.pack("<Q", 7)),
       kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 3) + s("a") + s("b") + s("<s>")),
       kv("tokenizer.ggml.token_type", 9, struct.pack("<IQ", 5, 3) + struct.pack("<3i", 1, 1, 3))]
seeds = [gguf([("w", [4, 2], 0, struct.pack("<8f", *range(8))), ("h", [4], 1, b"\0\x3c" * 4)], kvs),
         gguf([("q", [32, 2], 8, b"\0\x3c" + bytes(32) + b"\0\x3c" + bytes(range(32)))], kvs[:2]),
         gguf([("w", [2], 0, struct.pack("<2f", 1, 2))], [kv("general.alignment", 4, struct.pack("<I", 64))], align=64)]
for i, b in enumerate(seeds):
    with open(os.path.join(out, "seed-%03d" % i), "wb") as f:
        f.write(b)
with open(dict_path, "w") as f:
    for t in ["GGUF", "general.alignment", "general.architecture", "tokenizer.ggml.tokens"]:
        f.write('"%s"\n' % t)
EOF
}

# fuzz_imatrix input: a legacy imatrix.dat. Seeds written here byte by byte: two entries (one with ncall 0) with the
# optional trailer (chunk count, dataset name), and one entry without it.
seed_fuzz_imatrix() {
  local out="$1" dict_path="$2"
  python3 - "$out" "$dict_path" <<'EOF'
import os, struct, sys
out, dict_path = sys.argv[1], sys.argv[2]
def dat(entries, trailer=True):
    b = struct.pack("<i", len(entries))
    for name, ncall, vals in entries:
        n = name.encode()
        b += struct.pack("<i", len(n)) + n + struct.pack("<ii", ncall, len(vals)) + struct.pack("<%df" % len(vals), *vals)
    if trailer:
        b += struct.pack("<ii", 10, 8) + b"data.txt"
    return b
seeds = [dat([("blk.0.attn_q.weight", 5, [1.0, 2.0, 3.0]), ("output.weight", 0, [0.5] * 4)]), dat([("a", 1, [1.0])], False)]
for i, b in enumerate(seeds):
    with open(os.path.join(out, "seed-%03d" % i), "wb") as f:
        f.write(b)
with open(dict_path, "w") as f:
    for t in ["blk.", ".weight", "attn_q", "ffn_down_exps"]:
        f.write('"%s"\n' % t)
EOF
}

# fuzz_spm input: a SentencePiece tokenizer.model (protobuf ModelProto). Seeds written here byte by byte: pieces of every
# type with scores, a trainer_spec (model_type, byte_fallback, unknown fields of each wire type) and a normalizer_spec.
seed_fuzz_spm() {
  local out="$1" dict_path="$2"
  python3 - "$out" "$dict_path" <<'EOF'
import os, struct, sys
out, dict_path = sys.argv[1], sys.argv[2]
def varint(n):
    b = b""
    while True:
        c = n & 0x7f
        n >>= 7
        if not n:
            return b + bytes([c])
        b += bytes([c | 0x80])
def key(field, wire):
    return varint(field << 3 | wire)
def ld(field, payload):
    return key(field, 2) + varint(len(payload)) + payload
def vi(field, n):
    return key(field, 0) + varint(n)
def piece(text, score, typ=None):
    b = ld(1, text.encode()) + key(2, 5) + struct.pack("<f", score)
    return ld(1, b + (vi(3, typ) if typ is not None else b""))
trainer = ld(2, vi(3, 2) + vi(4, 300) + vi(35, 1) + vi(40, 0) + vi(41, 1) + key(99, 1) + bytes(8) + key(98, 5) + bytes(4) + ld(45, b"<unk>"))
norm = ld(3, ld(1, b"identity") + vi(3, 1) + vi(4, 0) + vi(5, 1) + ld(2, b""))
base = [piece("<unk>", 0, 2), piece("<s>", 0, 3), piece("</s>", 0, 3), piece("<|im_start|>", 0, 4)]
base += [piece("<0x%02X>" % i, 0, 6) for i in range(256)]
base += [piece("\u2581t", -1.0), piece("he", -2.0), piece("\u4f60\u597d", -3.5), piece("\u2581\u041f\u0440", -4.0, 1), piece("x", -5.0, 5)]
seeds = [b"".join(base) + trainer + norm, trainer + b"".join(base), b"".join(base[:3]), norm + b"".join(base) + ld(200, b"ext")]
for i, b in enumerate(seeds):
    with open(os.path.join(out, "seed-%03d" % i), "wb") as f:
        f.write(b)
with open(dict_path, "w") as f:
    for t in ["<unk>", "<s>", "</s>", "identity", "nmt_nfkc"]:
        f.write('"%s"\n' % t)
EOF
}

status=0
summary=()
mkdir -p "$WORK/artifacts"
for t in "${TARGETS[@]}"; do
  bin="$(find "$BUILD" -type f -name "$t" -perm -u+x -print -quit)"
  if [ -z "$bin" ]; then
    echo "fuzz.sh: $t: binary not found after the build" >&2
    status=1
    continue
  fi
  corpus="$WORK/corpus/$t"
  seeds="$WORK/seeds/$t"
  dict="$WORK/$t.dict"
  rm -rf "$seeds"
  mkdir -p "$corpus" "$seeds"
  args=()
  if declare -F "seed_$t" >/dev/null; then
    "seed_$t" "$seeds" "$dict"
    [ -s "$dict" ] && args+=("-dict=$dict")
  fi
  log="$WORK/$t.log"
  echo "fuzz.sh: running $t for ${SECONDS_PER_TARGET}s (log: $log)"
  set +e
  "$bin" -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
    -print_final_stats=1 -artifact_prefix="$WORK/artifacts/$t-" "${args[@]}" "$corpus" "$seeds" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' | tail -1 || true)"
  cov="$(grep -oE 'cov: [0-9]+' "$log" | tail -1 || true)"
  if [ $rc -ne 0 ]; then
    status=1
    summary+=("$t: FAILED (exit $rc) after ${execs:-?} runs; see $log and $WORK/artifacts/")
    grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -5 >&2 || true
  else
    summary+=("$t: ok, ${execs:-?} runs in ${SECONDS_PER_TARGET}s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) files")
  fi
done
printf 'fuzz.sh: %s\n' "${summary[@]}"
exit $status
