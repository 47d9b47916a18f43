#!/usr/bin/env python3
"""KTransformers AMX expert export benchmark (issue 13: "AMX packing runs at >= 50% of memcpy bandwidth").

1. Packing: build/bin/ckh-bench-kt-pack evaluates the kt-amx writer's tile layout (AMX 32 x 64-byte tiles, 16 x 16
   word transposes) with the host's evaluator over the expert parts of DeepSeek-V3 at threadpool count 2, INT8 and
   INT4, on one thread, next to memcpy of the same bytes, and prints the ratio.
2. End to end: a DeepSeek-V3-shaped checkpoint (hidden 7168, moe_intermediate 2048, one dense and one MoE layer of
   32 experts: 3.8 GB BF16, synthesised once) -> kt-amx INT8 and INT4 (quantize, split, pack, write) against `cat`
   of the source, with ckhost's peak RSS; and, when the venv has kt_kernel, kt-kernel's own writer on the same
   experts as convert_cpu_weights.py drives it (safetensors -> stacked BF16 [E, I, H] -> KTMoEWrapper(cpu_save=True)
   .load_weights_from_tensors), timed in the same way.
3. Scale: the released DeepSeek-V3 671B tensor list (FP8, header-only sparse files, bench/moe/bench_plan_deepseek.py)
   planned into AMXINT4 with --dtype bf16 (`--dry-run`): wall time, peak RSS and the files.
  bench/kt/bench_kt_amx.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 3] [--python VENV_PYTHON]
Measured here (2 cores, median of 3, source in the page cache): packing 64% to 118% of memcpy (14.5 GB/s); INT8
1.34 s = 1.00x cat, 125 MiB peak RSS (kt-kernel's writer 6.32 s, 9,647 MiB); INT4 1.28 s, 59 MiB (4.18 s, 8,975 MiB);
the 671B plan 5.4 s, 782 MiB.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "bench", "moe"))
from benchlib import clean_output, interop_venv, timed, timed_cat  # noqa: E402
import bench_plan_deepseek as P671  # noqa: E402

CONFIG = os.path.join(ROOT, "plugins", "model-deepseek", "configs", "deepseek-v3.json")

# kt-kernel's side, run by the venv's Python: one MoE layer's experts stacked and quantized by its own writer.
KT_WRITE = r"""
import glob, json, os, sys, torch
sys.path.insert(0, %(interop)r)
import kt_lib as K
K._write(%(src)r, %(out)r, %(method)r, 2)
"""


def source(ckhost, d):
    src = os.path.join(d, "kt-src")
    if not os.path.exists(os.path.join(src, "config.json")):
        with open(CONFIG) as fh:
            c = json.load(fh)
        c.update(num_hidden_layers=2, first_k_dense_replace=1, n_routed_experts=32, n_group=4, topk_group=2,
                 vocab_size=1024, num_nextn_predict_layers=0, intermediate_size=2048)
        c.pop("quantization_config", None)
        os.makedirs(d, exist_ok=True)
        cfg = os.path.join(d, "kt-src-config.json")
        with open(cfg, "w") as fh:
            json.dump(c, fh)
        print("synthesising", src, "...", flush=True)
        subprocess.run([ckhost, "synth", "--model", "deepseek", "--config", cfg, src, "--force", "--progress", "none",
                        "--max-shard-size", "10GB"], check=True)
    return src


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--python", default="",
                    help="a Python with kt_kernel (default: the interop venv of scripts/interop_venv.sh); kt-kernel's "
                         "writer is skipped without one")
    a = ap.parse_args()
    if not a.python:
        try:
            a.python = os.path.join(interop_venv(), "bin", "python")
        except subprocess.CalledProcessError:
            a.python = ""

    pack = os.path.join(os.path.dirname(a.ckhost), "ckh-bench-kt-pack")
    print("== packing (one thread) ==", flush=True)
    subprocess.run([pack, "9"], check=True)

    src = source(a.ckhost, a.dir)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    gb = sum(os.path.getsize(s) for s in shards) / 1e9
    out = os.path.join(a.dir, "kt-out")
    kt = os.path.exists(a.python) and subprocess.run([a.python, "-c", "import kt_kernel"], capture_output=True).returncode == 0
    cats, res, ref = [], {"int8": [], "int4": []}, {"int8": [], "int4": []}
    for _ in range(a.runs):
        cats.append(timed_cat(shards, out))
        clean_output(out)
        for m in res:
            res[m].append(timed([a.ckhost, "convert", src, out, "--to", "kt-amx", "--kt-method", m, "--progress", "none", "-q"]))
            if m == "int8":
                size = sum(os.path.getsize(f) for f in glob.glob(os.path.join(out, "*.safetensors")))
            clean_output(out)
            if kt:
                code = KT_WRITE % dict(interop=os.path.join(ROOT, "tests", "interop"), src=src, out=out,
                                       method="AMXINT8" if m == "int8" else "AMXINT4")
                ref[m].append(timed([a.python, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                clean_output(out)
    c = statistics.median(t for t, _ in cats)
    print("== end to end ==")
    print("source: %s, %.2f GB in %d files (one MoE layer of 32 experts, hidden 7168, moe_intermediate 2048)" % (src, gb, len(shards)))
    print("cat of the source:  %.2f s (runs %s)" % (c, ", ".join("%.2f" % t for t, _ in cats)))
    for m in res:
        t = statistics.median(x for x, _ in res[m])
        print("ckhost -> kt-amx %s  %.2f s (runs %s) = %.2fx cat, peak RSS %.0f MiB" %
              (m, t, ", ".join("%.2f" % x for x, _ in res[m]), t / c, max(r for _, r in res[m]) / 2**20))
        if ref[m]:
            k = statistics.median(x for x, _ in ref[m])
            print("kt-kernel's writer %s %.2f s (runs %s) = %.2fx ckhost, peak RSS %.0f MiB" %
                  (m, k, ", ".join("%.2f" % x for x, _ in ref[m]), k / t, max(r for _, r in ref[m]) / 2**20))
    print("(int8 output: %.2f GB)" % (size / 1e9))
    if not kt:
        print("kt-kernel's writer: skipped (no kt_kernel in %s)" % a.python)

    big = os.path.join(a.dir, "deepseek-v3-671b-headers")
    P671.make(big)
    plan = os.path.join(a.dir, "kt-plan.txt")
    with open(plan, "w") as fh:
        wall, rss = timed([a.ckhost, "convert", big, os.path.join(a.dir, "kt-plan-out"), "--to", "kt-amx", "--kt-method", "int4",
                           "--dtype", "bf16", "--dry-run", "-q"], stdout=fh)
    with open(plan) as fh:
        lines = fh.read().splitlines()
    print("== DeepSeek-V3 671B (FP8 headers) -> kt-amx int4, --dtype bf16, planned: %.2f s, peak RSS %.0f MiB ==" % (wall, rss / 2**20))
    files = [ln for ln in lines if ln.endswith(".safetensors") or "tensors" in ln and not ln.startswith(("stage:", "total:"))]
    for ln in files[:2] + ["..."] + files[-2:]:
        print("  " + ln)
    print("  " + [ln for ln in lines if ln.startswith("total:")][0])


if __name__ == "__main__":
    main()
