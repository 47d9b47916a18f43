"""Outputs are byte-identical across refactors (SDK 1.1 acceptance).

The demo's conversions and the benchmarks' conversions (on small synthesised models of the same
families) are run and every output file is hashed; the hashes must equal those recorded in
golden_outputs.json, taken before the SDK 1.1 changes. A change that alters any byte of any output
fails here; when a change is meant to alter outputs, rerun with --update and say why in the commit.

    /usr/bin/python3 tests/integration/test_golden_outputs.py --ckhost=build/bin/ckhost [--update]
"""
import hashlib
import json
import os
import sys

import ckh_testlib as L
from ckh_testlib import run

GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden_outputs.json")
UPDATE = "--update" in sys.argv
if UPDATE:
    sys.argv.remove("--update")

# (name, source, args): sources are "synth:<config>" or an earlier output's name.
JOBS = [
    # scripts/demo.sh
    ("demo-hf", "synth:tiny-llama.json", []),
    ("demo-hf-sharded", "demo-hf", ["--to", "hf", "--max-shard-size", "1MB"]),
    ("demo-hf-f32", "demo-hf", ["--to", "hf", "--dtype", "f32"]),
    ("demo-megatron", "demo-hf", ["--to", "megatron", "--tp", "2", "--pp", "2"]),
    ("demo-hf-back", "demo-megatron", ["--to", "hf"]),
    ("demo-torch-dist", "demo-megatron", ["--to", "torch-dist", "--dist-files", "2"]),
    ("demo-hf-from-dist", "demo-torch-dist", ["--to", "hf"]),
    # bench/convert (reshard, cast), bench/megatron (TP2 x PP2), bench/torch-dist (both directions,
    # 1 and 2 files), on a Qwen2 model (biases, tied) and a Qwen3 model (q/k norm)
    ("b-qwen2", "synth:tiny-qwen2.json", []),
    ("b-reshard", "b-qwen2", ["--to", "hf", "--max-shard-size", "500KB"]),
    ("b-cast", "b-qwen2", ["--to", "hf", "--dtype", "f32"]),
    ("b-cast-f16", "b-qwen2", ["--to", "hf", "--dtype", "f16"]),
    ("b-megatron", "b-qwen2", ["--to", "megatron", "--tp", "2", "--pp", "2", "--pp-layers", "2,1"]),
    ("b-megatron-vpp", "b-qwen2", ["--to", "megatron", "--tp", "2", "--pp", "3", "--vpp", "1", "--megatron-spec", "local"]),
    ("b-td1", "b-qwen2", ["--to", "torch-dist", "--dist-files", "1"]),
    ("b-td2", "b-qwen2", ["--to", "torch-dist", "--dist-files", "2", "--tp", "2"]),
    ("b-td-back", "b-td2", ["--to", "hf"]),
    ("b-qwen3", "synth:tiny-qwen3.json", []),
    ("b-q3-dcp", "b-qwen3", ["--to", "dcp", "--dist-files", "3", "--dcp-torch", "1.13"]),
    ("b-q3-dcp-back", "b-q3-dcp", ["--to", "hf"]),
    ("b-q3-torch", "b-qwen3", ["--to", "torch", "--max-shard-size", "200KB"]),
    ("b-q2-legacy", "b-qwen2", ["--to", "megatron", "--tp", "2", "--megatron-spec", "legacy"]),
]


def hashes(d):
    out = {}
    for root, dirs, files in os.walk(d):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(root, fn)
            with open(p, "rb") as f:
                out[os.path.relpath(p, d)] = hashlib.sha256(f.read()).hexdigest()
    return out


class GoldenOutputs(L.CkhostTestCase):
    def test_outputs_unchanged(self):
        got = {}
        for name, src, args in JOBS:
            out = self.path(name)
            if src.startswith("synth:"):
                cfg = os.path.join(L.CONFIGS, src[6:])
                run("synth", "--model", "llama", "--config", cfg, out, "--seed", "1", "--progress", "none", "-q")
            else:
                run("convert", self.path(src), out, "--progress", "none", "-q", *args)
            got[name] = hashes(out)
        if UPDATE:
            with open(GOLDEN, "w") as f:
                json.dump(got, f, indent=1, sort_keys=True)
                f.write("\n")
            print(f"wrote {GOLDEN}")
            return
        with open(GOLDEN) as f:
            want = json.load(f)
        self.assertEqual(sorted(want), sorted(got))
        for name in want:
            self.assertEqual(sorted(want[name]), sorted(got[name]), f"{name}: file list changed")
            for fn in want[name]:
                self.assertEqual(want[name][fn], got[name][fn], f"{name}/{fn} changed")


if __name__ == "__main__":
    L.main()
