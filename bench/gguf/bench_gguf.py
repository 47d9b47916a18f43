#!/usr/bin/env python3
"""HF -> GGUF benchmark (issue 13): ckhost against `cat` of the same source bytes and against llama.cpp's own tools.

Synthesises the TinyLlama-1.1B-shaped checkpoint (2.2 GB bf16, plus a made-up 32000-piece SentencePiece
tokenizer.model so that llama.cpp's converter accepts it) once, then times, alternating (median of --runs):
  * cat of the source shards                                        (baseline)
  * ckhost -> GGUF F16      (--dtype f16)
  * ckhost -> GGUF Q8_0     (--quantize ggml --ggml-type q8_0)
  * ckhost -> GGUF Q4_K_M   (--quantize ggml --ggml-type q4_k_m)
  * llama.cpp: convert_hf_to_gguf.py --outtype f16, and for Q8_0 / Q4_K_M its converter (--outtype bf16) followed
    by llama-quantize's own function (llama_model_quantize of libllama, 2 threads): the route llama.cpp documents
and prints every ratio to cat, ckhost against llama.cpp, and each side's peak RSS (llama.cpp's: the larger of its
two processes). The Q8_0 and Q4_K_M files of both sides are then compared tensor by tensor (types and bytes): the
converter's BF16 keeps the source's values, so llama.cpp's quantizer sees the same f32 rows as ckhost's.

llama.cpp's converter is that of the llama-cpp-python the interop venv holds (scripts/interop_venv.sh unpacks it
from its sdist into <venv>/share/llama.cpp).
  bench/gguf/bench_gguf.py [--ckhost build/bin/ckhost] [--dir build/bench-data] [--runs 3] [--no-llama-cpp]
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import TINYLLAMA, clean_output, ensure_source, ensure_spm_tokenizer, interop_venv, timed, timed_cat  # noqa: E402

QUANTIZE = """
import ctypes, sys
import llama_cpp as lc
p = lc.llama_model_quantize_default_params()
p.ftype = int(sys.argv[3])
p.nthread = 2
sys.exit(lc.llama_model_quantize(sys.argv[1].encode(), sys.argv[2].encode(), ctypes.byref(p)))
"""
FTYPE = {"q8_0": 7, "q4_k_m": 15}

COMPARE = """
import sys
from gguf import GGUFReader
a, b = GGUFReader(sys.argv[1]), GGUFReader(sys.argv[2])
ta = {t.name: t for t in a.tensors}
tb = {t.name: t for t in b.tensors}
assert set(ta) == set(tb), sorted(set(ta) ^ set(tb))
diff = [n for n in ta if ta[n].tensor_type != tb[n].tensor_type or bytes(ta[n].data.tobytes()) != bytes(tb[n].data.tobytes())]
print("%d tensors, %d differ%s" % (len(ta), len(diff), (": " + ", ".join(diff[:5])) if diff else ""))
"""


def llama_cpp_converter(venv_dir):
    """convert_hf_to_gguf.py of the venv's llama-cpp-python (scripts/interop_venv.sh unpacks it from the sdist)."""
    conv = os.path.join(venv_dir, "share", "llama.cpp", "convert_hf_to_gguf.py")
    if not os.path.exists(conv):
        sys.exit("no %s: rebuild the interop venv with scripts/interop_venv.sh" % conv)
    return conv


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-llama-cpp", action="store_true", help="time ckhost and cat only")
    a = ap.parse_args()
    src = ensure_source(a.ckhost, a.dir, TINYLLAMA)
    vd = interop_venv()
    py = os.path.join(vd, "bin", "python")
    ensure_spm_tokenizer(py, src, 32000)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    gb = sum(os.path.getsize(s) for s in shards) / 1e9
    out = os.path.join(a.dir, "gguf-out")
    keep = os.path.join(a.dir, "gguf-keep")
    os.makedirs(keep, exist_ok=True)
    ck = {"f16": ["--dtype", "f16"], "q8_0": ["--quantize", "ggml", "--ggml-type", "q8_0"],
          "q4_k_m": ["--quantize", "ggml", "--ggml-type", "q4_k_m"]}
    conv = None if a.no_llama_cpp else llama_cpp_converter(vd)
    res = {k: [] for k in ["cat", *ck, *([] if conv is None else ["lc_" + k for k in ck])]}
    for r in range(a.runs):
        res["cat"].append(timed_cat(shards, out))
        for k, args in ck.items():
            clean_output(out)
            res[k].append(timed([a.ckhost, "convert", src, out, "--to", "gguf", *args, "--progress", "none", "-q"]))
            if k != "f16" and r == 0:
                os.replace(os.path.join(out, "model.gguf"), os.path.join(keep, "ckhost-%s.gguf" % k))
            if conv is None:
                continue
            clean_output(out)
            os.makedirs(out)
            mid = os.path.join(out, "model-%s.gguf" % ("f16" if k == "f16" else "bf16"))
            t1, m1 = timed([py, conv, src, "--outtype", "f16" if k == "f16" else "bf16", "--outfile", mid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            t2, m2 = 0.0, 0
            if k != "f16":
                fin = os.path.join(out, "model-%s.gguf" % k)
                t2, m2 = timed([py, "-c", QUANTIZE, mid, fin, str(FTYPE[k])], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                if r == 0:
                    os.replace(fin, os.path.join(keep, "llama-%s.gguf" % k))
            res["lc_" + k].append((t1 + t2, max(m1, m2)))
    clean_output(out)
    med = {k: statistics.median(t for t, _ in v) for k, v in res.items()}
    rss = {k: max(m for _, m in v) for k, v in res.items()}
    print("source: %s, %.2f GB bf16 in %d files; %d cores, runs=%d" % (src, gb, len(shards), os.cpu_count(), a.runs))
    print("%-52s %9s %8s %10s" % ("job", "median s", "vs cat", "peak RSS"))
    print("%-52s %9.2f %8.2f %6.0f MiB" % ("cat of the source", med["cat"], 1.0, rss["cat"] / 2**20))
    for k in ck:
        print("%-52s %9.2f %8.2f %6.0f MiB" % ("ckhost -> GGUF " + k.upper(), med[k], med[k] / med["cat"], rss[k] / 2**20))
        if conv is not None:
            what = "llama.cpp convert --outtype f16" if k == "f16" else "llama.cpp convert bf16 + llama-quantize " + k.upper()
            print("%-52s %9.2f %8.2f %6.0f MiB" % (what, med["lc_" + k], med["lc_" + k] / med["cat"], rss["lc_" + k] / 2**20))
    if conv is not None:
        print()
        for k in ck:
            print("%s: ckhost %.2f s vs llama.cpp %.2f s = %.2fx llama.cpp's time; peak RSS %.0f vs %.0f MiB"
                  % (k.upper(), med[k], med["lc_" + k], med[k] / med["lc_" + k], rss[k] / 2**20, rss["lc_" + k] / 2**20))
        for k in ("q8_0", "q4_k_m"):
            p = subprocess.run([py, "-c", COMPARE, os.path.join(keep, "ckhost-%s.gguf" % k), os.path.join(keep, "llama-%s.gguf" % k)],
                               capture_output=True, text=True)
            print("%s files, ckhost vs llama.cpp: %s" % (k.upper(), (p.stdout or p.stderr).strip().splitlines()[-1]))


if __name__ == "__main__":
    main()
