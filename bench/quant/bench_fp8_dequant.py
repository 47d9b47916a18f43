#!/usr/bin/env python3
"""Block-FP8 dequantization through the SDK 1.1 quantizer path: ckhost --dtype bf16 vs `cat`.

Writes once a DeepSeek-V3-style block-FP8 checkpoint (64 weights of 4096 x 4096 F8_E4M3 codes with
weight_scale_inv [32, 32] f32, 1.07 GB, quantization_config weight_block_size [128, 128]; random codes
without NaNs), then times, alternating (median of --runs, a sync before each):
  * cat of the source file                       (baseline: reading the input bytes)
  * cat of the bf16 output's bytes (2.15 GB)      (baseline: writing the output bytes)
  * ckhost convert --dtype bf16                   (codes + scales -> bf16 through fp8-block, once per chunk)
and prints ratios, peak RSS and the quantizer counter. Usage:
  bench/quant/bench_fp8_dequant.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 3]
"""
import argparse
import json
import os
import re
import statistics
import struct
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import clean_output, timed, timed_cat  # noqa: E402

N = K = 4096
COUNT = 64


def make_source(d):
    if os.path.exists(os.path.join(d, "config.json")):
        return
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(7)
    sr = N // 128
    header, off = {"__metadata__": {"format": "pt"}}, 0
    for i in range(COUNT):
        w = f"model.layers.{i}.mlp.w.weight"
        header[w] = {"dtype": "F8_E4M3", "shape": [N, K], "data_offsets": [off, off + N * K]}
        off += N * K
        header[w + "_scale_inv"] = {"dtype": "F32", "shape": [sr, sr], "data_offsets": [off, off + sr * sr * 4]}
        off += sr * sr * 4
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for i in range(COUNT):
            codes = rng.integers(0, 256, size=N * K, dtype=np.uint8)
            codes[(codes & 0x7F) == 0x7F] = 0  # no NaNs
            f.write(codes.tobytes())
            f.write((rng.random(sr * sr, dtype=np.float32) * 1e-3 + 1e-4).astype(np.float32).tobytes())
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"model_type": "deepseek_v3", "torch_dtype": "bfloat16",
                   "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "weight_block_size": [128, 128]}}, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    src = os.path.join(a.dir, "fp8-src")
    make_source(src)
    out, ref = os.path.join(a.dir, "fp8-out"), os.path.join(a.dir, "fp8-bf16")
    src_file = os.path.join(src, "model.safetensors")
    if not os.path.exists(ref):
        subprocess.run([a.ckhost, "convert", src, ref, "--to", "hf", "--dtype", "bf16", "--progress", "none", "-q"],
                       check=True)
    ref_files = sorted(os.path.join(ref, f) for f in os.listdir(ref) if f.endswith(".safetensors"))

    def clean():
        clean_output(out)

    def cat(files):
        return timed_cat(files, out)

    counter = {}

    def dequant():
        clean()
        r = timed([a.ckhost, "convert", src, out, "--to", "hf", "--dtype", "bf16", "--progress", "none"],
                  stdout=open(os.path.join(a.dir, "fp8-log.txt"), "w"))
        with open(os.path.join(a.dir, "fp8-log.txt")) as f:
            m = re.search(r"quantizers: .*", f.read())
        counter["line"] = m.group(0) if m else "(none)"
        return r

    res = {"cat_src": [], "cat_out": [], "dequant": []}
    cat([src_file])
    for _ in range(a.runs):
        res["cat_src"].append(cat([src_file]))
        res["cat_out"].append(cat(ref_files))
        res["dequant"].append(dequant())
    clean()
    med = {k: statistics.median(t for t, _ in v) for k, v in res.items()}
    rss = {k: max(r for _, r in v) for k, v in res.items()}
    gin = os.path.getsize(src_file) / 1e9
    gout = sum(os.path.getsize(f) for f in ref_files) / 1e9
    print(f"\nsource: {COUNT} x [{N}, {K}] F8_E4M3 + scales, {gin:.2f} GB -> {gout:.2f} GB bf16, runs={a.runs}, "
          f"cores={os.cpu_count()}")
    print(f"{'job':34s} {'median s':>9s} {'ratio':>7s} {'peak RSS':>10s}")
    for k, label in [("cat_src", "cat of the FP8 source"), ("cat_out", "cat of the bf16 output bytes"),
                     ("dequant", "ckhost --dtype bf16 (fp8-block)")]:
        print(f"{label:34s} {med[k]:9.2f} {med[k] / med['cat_out']:7.2f} {rss[k] / 1e6:8.0f} MB")
    print(f"\ndequant / cat of output bytes = {med['dequant'] / med['cat_out']:.2f}; "
          f"dequant / cat of source = {med['dequant'] / med['cat_src']:.2f}; peak RSS {rss['dequant'] / 2**20:.0f} MiB")
    print("counter:", counter.get("line"))


if __name__ == "__main__":
    main()
