#!/usr/bin/env python3
"""HF -> torch_dist (Megatron-Core DCP) and torch_dist -> HF for the TinyLlama-1.1B-shaped checkpoint
(2.2 GB bf16), each side by side with `cat` of the same bytes, alternating runs, median.

It also measures what `--dist-files N` gains, pair by pair (order alternated each round):
  - ckhost --dist-files 1 vs 2, wall time and CPU seconds (writers of one file serialise on its inode
    lock; with one file per worker the workers do not spin on it);
  - ckhost --threads 1 vs all cores with one data file (one file is still written by every thread).
  bench/torch-dist/bench_torch_dist.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 7]"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import clean_output, ensure_source, timed, timed_cat, timed_cpu  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=7)
    a = ap.parse_args()
    src = ensure_source(a.ckhost, a.dir)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    gb = sum(os.path.getsize(s) for s in shards) / 1e9
    td = os.path.join(a.dir, "td-src")  # the torch_dist input of the read benchmark
    out = os.path.join(a.dir, "td-out")
    cores = os.cpu_count() or 1

    def clean():
        clean_output(out)

    def cat(files):
        return timed_cat(files, out)

    cpu = {1: [], 2: []}

    def write(nfiles, threads=0):
        clean()
        cmd = [a.ckhost, "convert", src, out, "--to", "torch-dist", "--dist-files", str(nfiles), "--progress", "none", "-q"]
        wall, rss, secs = timed_cpu(cmd + (["--threads", str(threads)] if threads else []))
        if not threads:
            cpu[nfiles].append(secs)
        return wall, rss

    def read():
        clean()
        return timed([a.ckhost, "convert", td, out, "--to", "hf", "--max-shard-size", "10GB", "--progress", "none", "-q"])

    shutil.rmtree(td, ignore_errors=True)
    subprocess.run([a.ckhost, "convert", src, td, "--to", "torch-dist", "--dist-files", "2", "--progress", "none", "-q"],
                   check=True)
    td_files = sorted(glob.glob(os.path.join(td, "release", "__*.distcp")))
    cat(shards)
    keys = ("cat_src", "write1", "write2", "write1_t1", "cat_td", "read")
    res = {k: [] for k in keys}
    for i in range(a.runs):
        res["cat_src"].append(cat(shards))
        res["write1_t1"].append(write(1, threads=1))
        res["cat_td"].append(cat(td_files))
        res["read"].append(read())
    # The file-count comparison on its own, back to back, twice as many pairs: its effect is small and
    # other jobs' after-effects (page reclaim, writeback) would drown it.
    for i in range(2 * a.runs):
        for n in ((1, 2) if i % 2 == 0 else (2, 1)):
            res["write%d" % n].append(write(n))
    clean()
    shutil.rmtree(td, ignore_errors=True)
    med = {k: statistics.median(t for t, _ in v) for k, v in res.items()}
    rss = {k: max(r for _, r in v) for k, v in res.items()}
    print(f"\nHF <-> torch_dist, {gb:.2f} GB bf16 TinyLlama-1.1B shape, cores={cores}, runs={a.runs}")
    print(f"{'job':52s} {'median s':>9s} {'vs cat':>8s} {'peak RSS':>10s}")
    rows = [("cat_src", "cat of the HF shards", "cat_src"),
            ("write1", "ckhost HF -> torch-dist --dist-files 1", "cat_src"),
            ("write2", "ckhost HF -> torch-dist --dist-files 2", "cat_src"),
            ("write1_t1", "ckhost HF -> torch-dist --dist-files 1 --threads 1", "cat_src"),
            ("cat_td", "cat of the .distcp files", "cat_td"),
            ("read", "ckhost torch-dist -> HF", "cat_td")]
    for k, label, base in rows:
        print(f"{label:52s} {med[k]:9.2f} {med[k] / med[base]:8.2f} {rss[k] / 2**20:8.0f} MiB")

    def pairs(x, y):
        r = [p / q for p, q in zip(x, y)]
        return statistics.median(r), min(r), max(r)

    files = pairs([t for t, _ in res["write1"]], [t for t, _ in res["write2"]])
    threads = pairs([t for t, _ in res["write1_t1"]], [t for t, _ in res["write1"]])
    print(f"\nwrite / cat = {med['write2'] / med['cat_src']:.2f} (--dist-files 2), "
          f"{med['write1'] / med['cat_src']:.2f} (--dist-files 1); read / cat = {med['read'] / med['cat_td']:.2f} "
          f"(targets <= 1.5); peak RSS {max(rss['write1'], rss['write2'], rss['read']) / 2**20:.0f} MiB (target <= 1024)")
    cpus = pairs(cpu[1], cpu[2])
    print(f"--dist-files 2 vs 1 (time 1 / time 2, pair by pair): median {files[0]:.2f}x (min {files[1]:.2f}, max {files[2]:.2f}); "
          f"CPU seconds {statistics.median(cpu[1]):.2f} vs {statistics.median(cpu[2]):.2f}, "
          f"pair by pair {cpus[0]:.2f}x (min {cpus[1]:.2f}, max {cpus[2]:.2f})")
    print(f"one file, {cores} threads vs 1 thread: median {threads[0]:.2f}x (min {threads[1]:.2f}, max {threads[2]:.2f})")


if __name__ == "__main__":
    main()
