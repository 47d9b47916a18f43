#!/usr/bin/env python3
"""HF -> torch_dist (Megatron-Core DCP) and torch_dist -> HF for the TinyLlama-1.1B-shaped checkpoint
(2.2 GB bf16), each side by side with `cat` of the same bytes, alternating runs, median; plus
--dist-files 1 vs 2 for the write.
  bench/torch-dist/bench_torch_dist.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 3]"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import ensure_source, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    src = ensure_source(a.ckhost, a.dir)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    gb = sum(os.path.getsize(s) for s in shards) / 1e9
    td = os.path.join(a.dir, "td-src")  # the torch_dist input of the read benchmark
    out = os.path.join(a.dir, "td-out")

    def clean():
        shutil.rmtree(out, ignore_errors=True)
        os.sync()

    def cat(files):
        clean()
        os.makedirs(out)
        with open(os.path.join(out, "copy"), "wb") as f:
            return timed(["cat", *files], stdout=f)

    def write(nfiles):
        clean()
        return timed([a.ckhost, "convert", src, out, "--to", "torch-dist", "--dist-files", str(nfiles),
                      "--progress", "none", "-q"])

    def read():
        clean()
        return timed([a.ckhost, "convert", td, out, "--to", "hf", "--max-shard-size", "10GB", "--progress", "none", "-q"])

    shutil.rmtree(td, ignore_errors=True)
    subprocess.run([a.ckhost, "convert", src, td, "--to", "torch-dist", "--dist-files", "2", "--progress", "none", "-q"],
                   check=True)
    td_files = sorted(glob.glob(os.path.join(td, "release", "__*.distcp")))
    cat(shards)
    res = {k: [] for k in ("cat_src", "write1", "write2", "cat_td", "read")}
    for _ in range(a.runs):
        res["cat_src"].append(cat(shards))
        res["write1"].append(write(1))
        res["write2"].append(write(2))
        res["cat_td"].append(cat(td_files))
        res["read"].append(read())
    clean()
    shutil.rmtree(td, ignore_errors=True)
    med = {k: statistics.median(t for t, _ in v) for k, v in res.items()}
    rss = {k: max(r for _, r in v) for k, v in res.items()}
    print(f"\nHF <-> torch_dist, {gb:.2f} GB bf16 TinyLlama-1.1B shape, cores={os.cpu_count()}, runs={a.runs}")
    print(f"{'job':44s} {'median s':>9s} {'vs cat':>8s} {'peak RSS':>10s}")
    rows = [("cat_src", "cat of the HF shards", "cat_src"),
            ("write1", "ckhost HF -> torch-dist --dist-files 1", "cat_src"),
            ("write2", "ckhost HF -> torch-dist --dist-files 2", "cat_src"),
            ("cat_td", "cat of the .distcp files", "cat_td"),
            ("read", "ckhost torch-dist -> HF", "cat_td")]
    for k, label, base in rows:
        print(f"{label:44s} {med[k]:9.2f} {med[k] / med[base]:8.2f} {rss[k] / 2**20:8.0f} MiB")
    print(f"\nwrite / cat = {med['write2'] / med['cat_src']:.2f} (--dist-files 2), "
          f"{med['write1'] / med['cat_src']:.2f} (--dist-files 1); read / cat = {med['read'] / med['cat_td']:.2f} "
          f"(targets <= 1.5); --dist-files 2 vs 1: {med['write1'] / med['write2']:.2f}x; "
          f"peak RSS {max(rss['write1'], rss['write2'], rss['read']) / 2**20:.0f} MiB (target <= 1024)")


if __name__ == "__main__":
    main()
