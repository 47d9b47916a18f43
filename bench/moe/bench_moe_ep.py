#!/usr/bin/env python3
"""HF -> Megatron-Core with expert parallelism on a Mixtral-8x7B-shaped checkpoint at real width
(hidden 4096, 8 experts x 14336, bf16; 2.9 GB per layer), the first --layers of its 32 layers,
synthesised once. Side by side with `cat` of the same source bytes, alternating runs, median:
  - ckhost HF -> torch-dist --tp 2 --ep 8 (global tensors with an expert axis: output bytes = source);
  - ckhost HF -> megatron --tp 2 --ep 8 (ETP = TP: 16 rank files, each EP rank's experts split over
    its 2 TP files; the attention and embeddings are repeated in every EP rank, so more bytes than the
    source are written: the ratio is also given against `cat` of the output's bytes).
Peak RSS is measured for every run. With --layers 11 (31.5 GB) the checkpoint is larger than this
machine's RAM (24 GB): then the whole-model-in-RAM way of the Python converters is tried too (the
load step of bench/megatron/python_baseline.py, /usr/bin/python3 with Debian's torch), under an
address-space limit of the machine's RAM so that it fails with MemoryError instead of summoning the
OOM killer; what happens is printed.
  bench/moe/bench_moe_ep.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--layers 2] [--runs 3]"""
import argparse
import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import clean_output, timed, timed_cat  # noqa: E402

CONFIG = os.path.join(ROOT, "bench", "moe", "mixtral-8x7b.json")


def ensure_source(ckhost, data_dir, layers):
    src = os.path.join(data_dir, "mixtral-%dl" % layers)
    if not os.path.exists(os.path.join(src, "config.json")):
        os.makedirs(data_dir, exist_ok=True)
        with open(CONFIG) as f:
            cfg = json.load(f)
        cfg["num_hidden_layers"] = layers
        cfg_path = os.path.join(data_dir, "mixtral-%dl.json" % layers)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        print("synthesising", src, "...", flush=True)
        subprocess.run([ckhost, "synth", "--model", "llama", "--config", cfg_path, src, "--force", "--progress", "none",
                        "--max-shard-size", "5GB"], check=True)
    return src


def mem_total():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep-source", action="store_true", help="keep the synthesised checkpoint")
    ap.add_argument("--jobs", default="torch-dist,megatron",
                    help="comma-separated: torch-dist, megatron (the per-rank layout writes more bytes than the source, "
                         "and its cat baseline a second copy: leave it out where the disk is short)")
    a = ap.parse_args()
    src = ensure_source(a.ckhost, a.dir, a.layers)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    src_bytes = sum(os.path.getsize(s) for s in shards)
    out = os.path.join(a.dir, "moe-out")
    all_jobs = {
        "torch-dist": ["--to", "torch-dist", "--tp", "2", "--ep", "8"],
        "megatron": ["--to", "megatron", "--tp", "2", "--ep", "8"],
    }
    jobs = {k: all_jobs[k] for k in a.jobs.split(",")}
    res = {k: [] for k in ("cat", *jobs, *(["cat_out"] if "megatron" in jobs else []))}
    out_bytes = {}
    for i in range(a.runs):
        res["cat"].append(timed_cat(shards, out))
        for name, args in (jobs.items() if i % 2 == 0 else reversed(list(jobs.items()))):
            clean_output(out)
            res[name].append(timed([a.ckhost, "convert", src, out, *args, "--progress", "none", "-q"]))
            files = [p for p in glob.glob(os.path.join(out, "**"), recursive=True) if os.path.isfile(p)]
            out_bytes[name] = sum(os.path.getsize(p) for p in files)
            if name == "megatron":
                big = sorted(p for p in files if p.endswith(".pt"))
                keep = os.path.join(a.dir, "moe-out-files")
                shutil.rmtree(keep, ignore_errors=True)
                os.rename(out, keep)  # cat of the output's bytes, from the same files
                res["cat_out"].append(timed_cat([p.replace(out, keep, 1) for p in big], out))
                shutil.rmtree(keep, ignore_errors=True)
    clean_output(out)
    med = {k: statistics.median(t for t, _ in v) for k, v in res.items()}
    rss = {k: max(r for _, r in v) for k, v in res.items()}
    ram = mem_total()
    print(f"\nHF -> Megatron-Core EP8 TP2, Mixtral-8x7B shape, {a.layers} of 32 layers, {src_bytes / 1e9:.2f} GB bf16 "
          f"(RAM {ram / 2**30:.1f} GiB), cores={os.cpu_count()}, runs={a.runs}")
    print(f"{'job':50s} {'median s':>9s} {'vs cat':>8s} {'GB out':>7s} {'peak RSS':>10s}")
    print(f"{'cat of the HF shards':50s} {med['cat']:9.2f} {1:8.2f} {src_bytes / 1e9:7.2f} {rss['cat'] / 2**20:8.0f} MiB")
    for name in jobs:
        print(f"{'ckhost ' + ' '.join(jobs[name]):50s} {med[name]:9.2f} {med[name] / med['cat']:8.2f} "
              f"{out_bytes[name] / 1e9:7.2f} {rss[name] / 2**20:8.0f} MiB")
    if "megatron" in jobs:
        print(f"{'cat of the megatron output bytes':50s} {med['cat_out']:9.2f} {med['cat_out'] / med['cat']:8.2f} "
              f"{out_bytes['megatron'] / 1e9:7.2f} {rss['cat_out'] / 2**20:8.0f} MiB")
    ratios = []
    if "torch-dist" in jobs:
        ratios.append(f"torch-dist / cat = {med['torch-dist'] / med['cat']:.2f}")
    if "megatron" in jobs:
        ratios.append(f"megatron / cat of its output bytes = {med['megatron'] / med['cat_out']:.2f}")
    print("\n" + "; ".join(ratios) + f" (targets <= 1.5); peak RSS {max(rss[k] for k in jobs) / 2**20:.0f} MiB "
          "(target <= 1024)")
    if src_bytes > ram:
        code = ("import sys; sys.path.insert(0, %r); import python_baseline as B; sd = B.load_hf(%r); "
                "print('loaded', len(sd))" % (os.path.join(ROOT, "bench", "megatron"), src))
        t0 = time.monotonic()
        p = subprocess.run(["prlimit", "--as=%d" % ram, "/usr/bin/python3", "-c", code], capture_output=True, text=True)
        last = (p.stderr.strip().splitlines() or [p.stdout.strip()])[-1]
        print(f"whole-model-in-RAM Python baseline (load step) under an address-space limit of {ram / 2**30:.1f} GiB: "
              f"exit {p.returncode} after {time.monotonic() - t0:.1f} s: {last[:200]}")
    if not a.keep_source and a.layers > 2:
        shutil.rmtree(src, ignore_errors=True)


if __name__ == "__main__":
    main()
