#!/usr/bin/env python3
"""HF -> MindSpeed-MM of a VLM at its released sizes (synthesised once), laid out as mm-convert's documented examples,
next to `cat` of the same source files (alternating runs, page cache as it comes, no sync inside a run), with peak RSS;
and the whole-model load that mm-convert's hf_to_mm starts with (safetensors load_file of every shard into one state
dict, then torch.save of it), as the floor of that path's RSS. Models (--model):
  qwen2.5-vl-7b   Qwen2.5-VL-7B (text 3584 x 28 layers, GQA 28/4, vocab 152064; vision 1280 x 32 blocks, 16 heads;
                  16.6 GB bf16) at TP2, llm_pp_layers [1,10,10,7], vit_pp_layers [32,0,0,0]:
                  ckhost convert SRC OUT --to mindspeed-mm --tp 2 --pp 4 --pp-layers 1,10,10,7 --stack-pp-layers 1=32,0,0,0
  internvl2.5-8b  InternVL2.5-8B (InternViT-300M 1024 x 24 blocks, 16 heads; InternLM2.5-7B as transformers' Llama,
                  4096 x 32 layers, GQA 32/8, vocab 92553, odd: MindSpeed-MM's unaligned vocabulary split; 16.2 GB bf16)
                  at TP2, llm [6,9,9,8], vit [24,0,0,0]
  bench/mm/bench_mm.py [--model qwen2.5-vl-7b|internvl2.5-8b] [--ckhost build/bin/ckhost] [--dir build/bench-data]
                       [--runs 2] [--no-python]"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import clean_output, interop_venv, timed, timed_cat  # noqa: E402

# The released config.json sizes (transformers 5 nesting): name -> (synth model, config, mm layout arguments).
MODELS = {
    "qwen2.5-vl-7b": ("qwen-vl", {
        "architectures": ["Qwen2_5_VLForConditionalGeneration"], "model_type": "qwen2_5_vl", "dtype": "bfloat16",
        "tie_word_embeddings": False, "image_token_id": 151655, "video_token_id": 151656,
        "vision_start_token_id": 151652, "vision_end_token_id": 151653,
        "text_config": {"model_type": "qwen2_5_vl_text", "hidden_size": 3584, "intermediate_size": 18944,
                        "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                        "vocab_size": 152064, "rms_norm_eps": 1e-6, "max_position_embeddings": 128000,
                        "rope_parameters": {"rope_type": "default", "type": "mrope", "mrope_section": [16, 24, 24],
                                            "rope_theta": 1000000.0}},
        "vision_config": {"model_type": "qwen2_5_vl_vision", "depth": 32, "hidden_size": 1280, "intermediate_size": 3420,
                          "num_heads": 16, "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2,
                          "temporal_patch_size": 2, "in_channels": 3, "window_size": 112,
                          "fullatt_block_indexes": [7, 15, 23, 31], "hidden_act": "silu"},
    }, ["--tp", "2", "--pp", "4", "--pp-layers", "1,10,10,7", "--stack-pp-layers", "1=32,0,0,0"]),
    "internvl2.5-8b": ("internvl", {
        "architectures": ["InternVLForConditionalGeneration"], "model_type": "internvl", "dtype": "bfloat16",
        "tie_word_embeddings": False, "image_token_id": 92546, "downsample_ratio": 0.5, "image_seq_length": 256,
        "projector_hidden_act": "gelu", "vision_feature_layer": -1, "vision_feature_select_strategy": "default",
        "text_config": {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                        "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 92553, "rms_norm_eps": 1e-5,
                        "max_position_embeddings": 32768, "attention_bias": False,
                        "rope_parameters": {"rope_type": "dynamic", "factor": 2.0, "rope_theta": 1000000.0}},
        "vision_config": {"model_type": "internvl_vision", "hidden_size": 1024, "intermediate_size": 4096,
                          "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": [448, 448],
                          "patch_size": [14, 14], "attention_bias": True, "norm_type": "layer_norm", "use_qk_norm": False},
    }, ["--tp", "2", "--pp", "4", "--pp-layers", "6,9,9,8", "--stack-pp-layers", "1=24,0,0,0"]),
}

PY_LOAD = r"""
import sys, glob, os, torch
from safetensors.torch import load_file
sd = {}
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.safetensors"))):
    sd.update(load_file(f))
os.makedirs(sys.argv[2], exist_ok=True)
torch.save({"model": sd, "checkpoint_version": 3.0}, os.path.join(sys.argv[2], "model_optim_rng.pt"))
"""


def venv_python():
    return os.path.join(interop_venv(), "bin", "python")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--no-python", action="store_true")
    ap.add_argument("--model", choices=sorted(MODELS), default="qwen2.5-vl-7b")
    a = ap.parse_args()
    synth_model, config, args = MODELS[a.model]
    src = os.path.join(a.dir, a.model)
    if not os.path.exists(os.path.join(src, "config.json")):
        os.makedirs(a.dir, exist_ok=True)
        cfg = os.path.join(a.dir, a.model + ".json")
        with open(cfg, "w") as fh:
            json.dump(config, fh)
        print("synthesising", src, "...", flush=True)
        subprocess.run([a.ckhost, "synth", "--model", synth_model, "--config", cfg, src, "--force", "--progress", "none",
                        "--max-shard-size", "4GB"], check=True)
    shards = sorted(glob.glob(os.path.join(src, "*.safetensors")))
    gb = sum(os.path.getsize(s) for s in shards) / 1e9
    out = os.path.join(a.dir, "mm-out")
    args = ["--to", "mindspeed-mm", *args]
    cats, cks = [], []
    for _ in range(a.runs):
        cats.append(timed_cat(shards, out))
        clean_output(out)
        cks.append(timed([a.ckhost, "convert", src, out, *args, "--progress", "none", "-q"]))
    files = sorted(glob.glob(os.path.join(out, "release", "*", "model_optim_rng.pt")))
    out_gb = sum(os.path.getsize(f) for f in files) / 1e9
    c = statistics.median(t for t, _ in cats)
    k = statistics.median(t for t, _ in cks)
    print("source: %s, %.2f GB in %d files; output %d rank files, %.2f GB" % (src, gb, len(shards), len(files), out_gb))
    print("cat of the source:      %.2f s (runs %s)" % (c, ", ".join("%.1f" % t for t, _ in cats)))
    print("ckhost -> mindspeed-mm: %.2f s (runs %s) = %.2fx cat, peak RSS %.0f MiB (target <= 1.3x, <= 1024 MiB)"
          % (k, ", ".join("%.1f" % t for t, _ in cks), k / c, max(r for _, r in cks) / 2**20))
    clean_output(out)
    if not a.no_python:
        t, rss = timed([venv_python(), "-c", PY_LOAD, src, out])
        print("whole-model load + torch.save (the start of mm-convert's hf_to_mm): %.2f s, peak RSS %.0f MiB" % (t, rss / 2**20))
        clean_output(out)


if __name__ == "__main__":
    main()
