#!/usr/bin/env python3
"""Conversion benchmark: ckhost vs `cat` of the same bytes on the same disk.

Synthesises the TinyLlama-1.1B-shaped checkpoint (2.2 GB bf16) once, then times, side by side and
alternating (median of --runs):
  * cat-copying the source shards                       (baseline)
  * ckhost reshard to 500 MB shards                     (pure byte movement)
  * ckhost bf16 -> f32 cast                             (compute + twice the output bytes)
and prints ratios and ckhost's peak RSS (from wait4). Usage:
  bench/convert/bench_convert.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 3]
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import TINYLLAMA, clean_output, ensure_source, timed, timed_cat  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--config", default=TINYLLAMA)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", default="")
    a = ap.parse_args()
    src = ensure_source(a.ckhost, a.dir, a.config)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    src_bytes = sum(os.path.getsize(s) for s in shards)
    out = os.path.join(a.dir, "out")
    thr = ["--threads", a.threads] if a.threads else []

    def clean():
        clean_output(out)

    def cat():
        return timed_cat(shards, out)

    def reshard():
        clean()
        return timed([a.ckhost, "convert", src, out, "--to", "hf", "--max-shard-size", "500MB", "--progress", "none",
                      "-q", *thr])

    def cast():
        clean()
        return timed([a.ckhost, "convert", src, out, "--to", "hf", "--dtype", "f32", "--progress", "none", "-q", *thr])

    def cat_out():  # cat of the f32 output's bytes (the same bytes the cast writes)
        clean()
        cast_dir = os.path.join(a.dir, "f32")
        if not os.path.exists(cast_dir):
            subprocess.run([a.ckhost, "convert", src, cast_dir, "--to", "hf", "--dtype", "f32", "--progress", "none",
                            "-q"], check=True)
        return timed_cat(sorted(glob.glob(os.path.join(cast_dir, "*.safetensors"))), out)

    res = {k: [] for k in ["cat", "reshard", "cast", "cat_out"]}
    cat()  # warm the page cache
    for _ in range(a.runs):
        for k, f in [("cat", cat), ("reshard", reshard), ("cat_out", cat_out), ("cast", cast)]:
            res[k].append(f())
    clean()
    med = {k: statistics.median(t for t, _ in v) for k, v in res.items()}
    rss = {k: max(r for _, r in v) for k, v in res.items()}
    gb = src_bytes / 1e9
    print(f"\nsource: {len(shards)} file(s), {gb:.2f} GB bf16 ({os.path.basename(a.config)}), runs={a.runs}, "
          f"cores={os.cpu_count()}")
    print(f"{'job':38s} {'median s':>9s} {'GB/s':>7s} {'ratio':>7s} {'peak RSS':>10s}")
    print(f"{'cat source shards (baseline)':38s} {med['cat']:9.2f} {gb / med['cat']:7.2f} {1.0:7.2f} {rss['cat'] / 1e6:8.0f} MB")
    print(f"{'ckhost reshard to 500 MB shards':38s} {med['reshard']:9.2f} {gb / med['reshard']:7.2f} "
          f"{med['reshard'] / med['cat']:7.2f} {rss['reshard'] / 1e6:8.0f} MB")
    print(f"{'cat of the f32 output bytes':38s} {med['cat_out']:9.2f} {2 * gb / med['cat_out']:7.2f} "
          f"{med['cat_out'] / med['cat']:7.2f} {rss['cat_out'] / 1e6:8.0f} MB")
    print(f"{'ckhost bf16 -> f32 cast':38s} {med['cast']:9.2f} {gb / med['cast']:7.2f} "
          f"{med['cast'] / med['cat']:7.2f} {rss['cast'] / 1e6:8.0f} MB")
    print(f"\nreshard / cat = {med['reshard'] / med['cat']:.2f}  (target <= 1.30), peak RSS "
          f"{rss['reshard'] / 2**20:.0f} MiB (target <= 512)")
    print(f"cast / cat of source = {med['cast'] / med['cat']:.2f}; cast / cat of output bytes = "
          f"{med['cast'] / med['cat_out']:.2f}; peak RSS {rss['cast'] / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
