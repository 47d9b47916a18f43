#!/usr/bin/env python3
"""Two ckhost builds side by side on the benchmark jobs: timings pair by pair, and byte-identical outputs.

For refactors that must not change speed or bytes (e.g. the SDK 1.1 work): every job runs with the old
and the new binary alternately (order swapped every pair, a sync before each run), on the
TinyLlama-1.1B-shaped checkpoint the other benchmarks use (2.2 GB bf16); the first pair's outputs are
hashed and must be identical. Prints median seconds, new/old ratio (median and range over pairs) and
peak RSS. Usage:
  bench/compare_builds.py --old /path/to/old/bin/ckhost [--new build/bin/ckhost] [--pairs 5]
"""
import argparse
import hashlib
import os
import shutil
import statistics
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import TINYLLAMA, ensure_source, timed  # noqa: E402


def tree_hash(d):
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(d)):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(root, fn)
            h.update(os.path.relpath(p, d).encode())
            with open(p, "rb") as f:
                while True:
                    b = f.read(1 << 24)
                    if not b:
                        break
                    h.update(b)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--old", required=True)
    ap.add_argument("--new", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--pairs", type=int, default=5)
    a = ap.parse_args()
    src = ensure_source(a.new, a.dir, TINYLLAMA)
    td_src = os.path.join(a.dir, "cmp-td-src")
    if not os.path.exists(td_src):
        import subprocess
        subprocess.run([a.new, "convert", src, td_src, "--to", "torch-dist", "--progress", "none", "-q"], check=True)
    jobs = [
        ("reshard to 500 MB shards", src, ["--to", "hf", "--max-shard-size", "500MB"]),
        ("bf16 -> f32 cast", src, ["--to", "hf", "--dtype", "f32"]),
        ("HF -> Megatron TP2 x PP2", src, ["--to", "megatron", "--tp", "2", "--pp", "2"]),
        ("HF -> torch_dist, 2 files", src, ["--to", "torch-dist", "--dist-files", "2"]),
        ("torch_dist -> HF", td_src, ["--to", "hf"]),
    ]
    out = {"old": os.path.join(a.dir, "cmp-old"), "new": os.path.join(a.dir, "cmp-new")}
    bins = {"old": a.old, "new": a.new}
    rows = []
    for name, s, args in jobs:
        t = {"old": [], "new": []}
        rss = {"old": 0, "new": 0}
        digest = {}
        for p in range(a.pairs):
            order = ["old", "new"] if p % 2 == 0 else ["new", "old"]
            for who in order:
                # Every run starts from the same state: no earlier output on disk, writeback settled
                # (an earlier run's dirty pages otherwise slow the next one down by up to 5x here).
                for d in out.values():
                    shutil.rmtree(d, ignore_errors=True)
                os.sync()
                time.sleep(1)
                sec, r = timed([bins[who], "convert", s, out[who], "--progress", "none", "-q", *args])
                t[who].append(sec)
                rss[who] = max(rss[who], r)
                if p == 0:
                    digest[who] = tree_hash(out[who])
        for d in out.values():
            shutil.rmtree(d, ignore_errors=True)
        same = digest["old"] == digest["new"]
        ratios = [n / o for n, o in zip(t["new"], t["old"])]
        print(f"{name}: old {[round(x, 2) for x in t['old']]} new {[round(x, 2) for x in t['new']]}", flush=True)
        rows.append((name, statistics.median(t["old"]), statistics.median(t["new"]), statistics.median(ratios),
                     min(ratios), max(ratios), rss["old"], rss["new"], same))
    print(f"\npairs={a.pairs}, cores={os.cpu_count()}, source {src}")
    print(f"{'job':28s} {'old s':>7s} {'new s':>7s} {'new/old':>8s} {'range':>13s} {'RSS old':>8s} {'RSS new':>8s}  bytes")
    for name, o, n, r, lo, hi, ro, rn, same in rows:
        print(f"{name:28s} {o:7.2f} {n:7.2f} {r:8.2f} {lo:6.2f}-{hi:<6.2f} {ro / 2**20:6.0f}Mi {rn / 2**20:6.0f}Mi  "
              f"{'identical' if same else 'DIFFERENT'}")
    if not all(r[-1] for r in rows):
        sys.exit("outputs differ between the builds")


if __name__ == "__main__":
    main()
