#!/usr/bin/env python3
"""HF -> GGUF benchmark: ckhost vs `cat` of the same source bytes on the same disk (issue 13).

Synthesises the TinyLlama-1.1B-shaped checkpoint (2.2 GB bf16) once, then times, alternating (median of --runs):
  * cat-copying the source shards                             (baseline)
  * ckhost -> GGUF F16      (--to gguf --dtype f16: the Q/K rows permuted, every tensor cast)
  * ckhost -> GGUF Q8_0     (--quantize ggml --ggml-type q8_0: every 2-D weight quantized)
and prints the ratios to cat and ckhost's peak RSS. llama.cpp's own converter is not run here yet (it needs the
model's tokenizer, which the synthesised checkpoint has none of).
  bench/gguf/bench_gguf.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 3]
"""
import argparse
import glob
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import TINYLLAMA, clean_output, ensure_source, timed, timed_cat  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    src = ensure_source(a.ckhost, a.dir, TINYLLAMA)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    gb = sum(os.path.getsize(s) for s in shards) / 1e9
    out = os.path.join(a.dir, "gguf-out")
    jobs = {"f16": ["--dtype", "f16"], "q8_0": ["--dtype", "f32", "--quantize", "ggml", "--ggml-type", "q8_0"]}
    cats, res = [], {k: [] for k in jobs}
    for _ in range(a.runs):
        cats.append(timed_cat(shards, out))
        clean_output(out)
        for k, args in jobs.items():
            res[k].append(timed([a.ckhost, "convert", src, out, "--to", "gguf", *args, "--progress", "none", "-q"]))
            clean_output(out)
    c = statistics.median(t for t, _ in cats)
    print("source: %s, %.2f GB in %d files" % (src, gb, len(shards)))
    print("cat of the source:  %.2f s (runs %s)" % (c, ", ".join("%.2f" % t for t, _ in cats)))
    for k in jobs:
        t = statistics.median(x for x, _ in res[k])
        print("ckhost -> GGUF %-5s %.2f s (runs %s) = %.2fx cat, peak RSS %.0f MiB" %
              (k, t, ", ".join("%.2f" % x for x, _ in res[k]), t / c, max(r for _, r in res[k]) / 2**20))


if __name__ == "__main__":
    main()
