#!/usr/bin/env python3
"""HF -> Megatron TP2 x PP2 of the TinyLlama-1.1B-shaped checkpoint (2.2 GB bf16), side by side with
`cat` of the same bytes and with the Python baseline (python_baseline.py), alternating runs, median.
  bench/megatron/bench_megatron.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 3]"""
import argparse
import glob
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import clean_output, ensure_source, timed, timed_cat  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--python-runs", type=int, default=1)
    a = ap.parse_args()
    src = ensure_source(a.ckhost, a.dir)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    gb = sum(os.path.getsize(s) for s in shards) / 1e9
    out = os.path.join(a.dir, "mg-out")

    def clean():
        clean_output(out)

    def cat():
        return timed_cat(shards, out)

    def ck():
        clean()
        return timed([a.ckhost, "convert", src, out, "--to", "megatron", "--tp", "2", "--pp", "2", "--progress", "none", "-q"])

    def py():
        clean()
        return timed(["/usr/bin/python3", os.path.join(ROOT, "bench", "megatron", "python_baseline.py"), src, out, "2", "2"])

    cat()
    res = {"cat": [], "ckhost": [], "python": []}
    for i in range(a.runs):
        res["cat"].append(cat())
        res["ckhost"].append(ck())
        if i < a.python_runs:
            res["python"].append(py())
    clean()
    med = {k: statistics.median(t for t, _ in v) for k, v in res.items()}
    rss = {k: max(r for _, r in v) for k, v in res.items()}
    print(f"\nHF -> Megatron TP2 x PP2, {gb:.2f} GB bf16 TinyLlama-1.1B shape, cores={os.cpu_count()}")
    print(f"{'job':34s} {'median s':>9s} {'vs cat':>8s} {'peak RSS':>10s}")
    for k, label in [("cat", "cat of the source bytes"), ("ckhost", "ckhost convert --to megatron"),
                     ("python", "Python script (torch.cat/chunk/save)")]:
        print(f"{label:34s} {med[k]:9.2f} {med[k] / med['cat']:8.2f} {rss[k] / 2**20:8.0f} MiB")
    print(f"\nckhost / cat = {med['ckhost'] / med['cat']:.2f} (target <= 1.5); python / ckhost = "
          f"{med['python'] / med['ckhost']:.1f}x (target >= 8); ckhost peak RSS {rss['ckhost'] / 2**20:.0f} MiB (target <= 1024)")


if __name__ == "__main__":
    main()
