#!/usr/bin/env python3
"""A checkpoint larger than RAM to GGUF Q4_K_M (issue 13): Mixtral-8x7B at real width (hidden 4096, 8 experts x
14336, bf16; 2.9 GB per layer), its first --layers of 32 layers (11: 31.5 GB, more than this machine's 24 GB),
synthesised once with a made-up 32000-piece SentencePiece tokenizer.model. One run each, from a synced disk:
  - cat of the source shards into /dev/null (the baseline: reading the bytes only, since a second 31.5 GB copy
    does not fit the disk beside the source; it flatters cat, so the ratio is conservative);
  - ckhost -> GGUF Q4_K_M (--quantize ggml --ggml-type q4_k_m: experts stacked into ffn_*_exps, every weight
    quantized with llama.cpp's mix; 8 experts: attn_v / attn_k Q8_0, attn_output Q5_K as llama.cpp decides);
then llama.cpp (llama-cpp-python of the interop venv) loads the file with mmap and evaluates one token (finite
logits), and gguf-py's reader lists its tensor types. Prints wall time, ratio to cat and peak RSS (target <= 1 GiB).
  bench/gguf/bench_gguf_moe.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--layers 11] [--keep-source]
"""
import argparse
import glob
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import clean_output, ensure_spm_tokenizer, interop_venv, timed  # noqa: E402

CONFIG = os.path.join(ROOT, "bench", "moe", "mixtral-8x7b.json")

CHECK = """
import collections, sys
from gguf import GGUFReader
r = GGUFReader(sys.argv[1])
c = collections.Counter(t.tensor_type.name for t in r.tensors)
print("tensor types:", ", ".join("%s x%d" % kv for kv in sorted(c.items())))
import llama_cpp
import llama_cpp.llama as _ll
_p = llama_cpp.llama_model_default_params
def _q():  # llama.cpp's repacked AVX-512/AMX CPU kernels off, as in test_gguf.py: the plain CPU path
    p = _p(); p.use_extra_bufts = False; return p
llama_cpp.llama_model_default_params = _ll.llama_cpp.llama_model_default_params = _q
m = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=64, n_threads=2, verbose=False, logits_all=True, use_mmap=True)
m.eval([1, 300, 301])
import numpy as np
lg = np.array(m.scores[2][: m.n_vocab()], dtype=np.float32)
assert np.isfinite(lg).all(), "non-finite logits"
print("llama.cpp loaded it and evaluated 3 tokens: logits finite, max |logit| %.3f" % float(np.abs(lg).max()))
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--layers", type=int, default=11)
    ap.add_argument("--keep-source", action="store_true")
    a = ap.parse_args()
    py = os.path.join(interop_venv(), "bin", "python")
    src = os.path.join(a.dir, "mixtral-%dl" % a.layers)
    if not os.path.exists(os.path.join(src, "config.json")):
        os.makedirs(a.dir, exist_ok=True)
        with open(CONFIG) as f:
            cfg = json.load(f)
        cfg["num_hidden_layers"] = a.layers
        cfg_path = os.path.join(a.dir, "mixtral-%dl.json" % a.layers)
        with open(cfg_path, "w") as f:
            json.dump(cfg, f)
        print("synthesising", src, "...", flush=True)
        subprocess.run([a.ckhost, "synth", "--model", "llama", "--config", cfg_path, src, "--force", "--progress", "none",
                        "--max-shard-size", "5GB"], check=True)
    ensure_spm_tokenizer(py, src, 32000)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    src_bytes = sum(os.path.getsize(s) for s in shards)
    out = os.path.join(a.dir, "gguf-moe-out")
    clean_output(out)
    with open(os.devnull, "wb") as null:
        tc, rc = timed(["cat", *shards], stdout=null)
    t, r = timed([a.ckhost, "convert", src, out, "--to", "gguf", "--quantize", "ggml", "--ggml-type", "q4_k_m",
                  "--progress", "none", "-q"])
    gguf = os.path.join(out, "model.gguf")
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    print(f"\nHF -> GGUF Q4_K_M, Mixtral-8x7B shape, {a.layers} of 32 layers, {src_bytes / 1e9:.2f} GB bf16 "
          f"(RAM {ram / 2**30:.1f} GiB), {os.cpu_count()} cores")
    print(f"cat of the source > /dev/null: {tc:8.1f} s, peak RSS {rc / 2**20:6.0f} MiB")
    print(f"ckhost -> GGUF Q4_K_M:   {t:8.1f} s = {t / tc:.2f}x cat, {os.path.getsize(gguf) / 1e9:.2f} GB out, "
          f"{src_bytes / 2 / t / 1e6:.0f} M params/s, peak RSS {r / 2**20:.0f} MiB (target <= 1024)")
    p = subprocess.run([py, "-c", CHECK, gguf], capture_output=True, text=True)
    print((p.stdout + p.stderr).strip()[-2000:])
    clean_output(out)
    if not a.keep_source:
        shutil.rmtree(src, ignore_errors=True)


if __name__ == "__main__":
    main()
