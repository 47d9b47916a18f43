#!/usr/bin/env python3
"""A DeepSeek-V3 slice at real width in block FP8, HF -> Megatron-Core torch_dist at EP8 (issue 11).

The source is the released DeepSeek-V3 tensor list (bench_plan_deepseek.tensors) cut to two layers: layer
0 dense (intermediate 18432), layer 1 MoE (256 routed experts x 2048 and a shared one), MLA attention,
the embedding and the LM head (vocab 129280, bf16); every linear is F8_E4M3 with a float32
weight_scale_inv per 128 x 128 block, as released; 15.6 GB with real bytes on disk (random codes, scales
around 1e-3). Side by side, alternating runs, median, each from a synced disk:
  - `cat` of the source files into one file (the baseline, no sync on either side);
  - ckhost --to torch-dist --ep 8 --etp 1 (FP8 codes and scales copied, no requantization: output bytes
    = source bytes), the ratio to cat;
  - ckhost --to torch-dist --ep 8 --etp 1 --dtype bf16 (every pair dequantized by the fp8-block
    quantizer, output 2x the codes), with the dequantization kernel's own speed from ckh-bench-kernels;
  - ckhost --to torch-dist --ep 8 --etp 1 --quantize fp8-block --fp8-pow2-scales (every pair dequantized
    exactly to f32 and quantized again, power-of-two scales: the requantization path);
peak RSS of every ckhost run (target <= 1 GiB).
  bench/moe/bench_fp8_slice.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 3]"""
import argparse
import os
import statistics
import struct
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, os.path.join(ROOT, "bench", "moe"))
from benchlib import clean_output, timed, timed_cat, write_safetensors_checkpoint  # noqa: E402
import bench_plan_deepseek as P  # noqa: E402

def slice_config():
    c = dict(P.CFG)
    c["num_hidden_layers"] = 2
    c["first_k_dense_replace"] = 1
    c["num_nextn_predict_layers"] = 0
    return c


def entries(c):
    mtp = "model.layers.%d." % c["num_hidden_layers"]
    for name, shape, dt in P.entries(c):
        if not name.startswith(mtp):
            yield name, shape, dt


def fill(fh, n, dt, block, codes):
    """n bytes of plausible data: random codes (never the NaN code, so that they requantize) and bf16
    values, f32 scales near 1e-3."""
    if dt == "F32":
        vals = struct.pack("<f", 1e-3) * (n // 4)
        fh.write(vals)
        return
    b = codes if dt.startswith("F8") else block
    while n > 0:
        k = min(n, len(b))
        fh.write(b[:k])
        n -= k


def make(d):
    block = os.urandom(64 << 20)
    codes = bytes(x & 0xFE for x in block[: 16 << 20])  # e4m3fn NaN is S.1111.111: the low bit cleared never is
    write_safetensors_checkpoint(d, entries(slice_config()), slice_config(),
                                 lambda fh, n, dt: fill(fh, n, dt, block, codes))



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    src = os.path.join(a.dir, "deepseek-v3-fp8-slice-v2")
    print("making", src, "(once) ...", flush=True)
    make(src)
    files = sorted(os.path.join(src, f) for f in os.listdir(src) if f.endswith(".safetensors"))
    nbytes = sum(os.path.getsize(f) for f in files)
    print("source: %d files, %.2f GB" % (len(files), nbytes / 1e9), flush=True)
    out = os.path.join(a.dir, "fp8-slice-out")
    layout = ["--to", "torch-dist", "--ep", "8", "--etp", "1", "--progress", "none", "-q"]
    cat, copy, deq, req = [], [], [], []
    for r in range(a.runs):
        cat.append(timed_cat(files, out))
        clean_output(out)
        copy.append(timed([a.ckhost, "convert", src, out, *layout]))
        if r == 0:
            out_bytes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs)
        clean_output(out)
        deq.append(timed([a.ckhost, "convert", src, out, *layout, "--dtype", "bf16"]))
        if r == 0:
            deq_bytes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(out) for f in fs)
        clean_output(out)
        req.append(timed([a.ckhost, "convert", src, out, *layout, "--quantize", "fp8-block", "--fp8-pow2-scales"]))
        clean_output(out)
        print("run %d: cat %.2f s, FP8 copy %.2f s (%.0f MiB), dequant bf16 %.2f s (%.0f MiB), requant %.2f s (%.0f MiB)" % (
            r + 1, cat[-1][0], copy[-1][0], copy[-1][1] / 2**20, deq[-1][0], deq[-1][1] / 2**20, req[-1][0],
            req[-1][1] / 2**20), flush=True)
    med = lambda xs: statistics.median(x[0] for x in xs)  # noqa: E731
    peak = lambda xs: max(x[1] for x in xs) / 2**20  # noqa: E731
    print("\ncat %.2f GB: %.2f s (%.2f GB/s)" % (nbytes / 1e9, med(cat), nbytes / 1e9 / med(cat)))
    print("ckhost FP8 no-requant -> torch_dist EP8: %.2f s, %.2fx cat (target <= 1.3x), peak RSS %.0f MiB (target <= 1024), "
          "output %.2f GB" % (med(copy), med(copy) / med(cat), peak(copy), out_bytes / 1e9))
    print("ckhost FP8 -> bf16 torch_dist EP8:      %.2f s, %.2fx cat, peak RSS %.0f MiB (target <= 1024), output %.2f GB" % (
        med(deq), med(deq) / med(cat), peak(deq), deq_bytes / 1e9))
    print("ckhost FP8 -> requantized FP8 (pow2 scales) torch_dist EP8: %.2f s, %.2fx cat, peak RSS %.0f MiB (target <= 1024)" % (
        med(req), med(req) / med(cat), peak(req)))
    kb = os.path.join(os.path.dirname(a.ckhost), "ckh-bench-kernels")
    if os.path.exists(kb):
        lines = subprocess.run([kb], capture_output=True, text=True).stdout.splitlines()
        for l in lines:
            if "fp8" in l.lower() and ("block" in l.lower() or "memcpy" in l.lower()):
                print("kernel: " + l.strip())


if __name__ == "__main__":
    main()
