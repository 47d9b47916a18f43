#!/usr/bin/env python3
"""Planning at full scale: a header-only Qwen3-235B-A22B checkpoint (94 layers, 128 experts of 1536, hidden
4096, GQA 64/4, vocab 151936; 36,192 expert tensors, 438 GiB bf16 as sparse files: the safetensors headers
are real, the data is holes) planned by `ckhost convert --dry-run -q` into
  - Megatron legacy per-rank files TP4 x PP8 x EP32 (1,024 rank files; experts numbered per EP rank),
  - Megatron-Core torch_dist with args TP4 PP8 EP32 (global tensors, expert axis),
timed (wall, peak RSS) with the file list, bytes per output file and the total printed. Tensor names are
those transformers 5.24 save_pretrained writes for Qwen3-MoE (checked in tests/interop/test_moe_hf.py),
shard layout as on the hub (about 4 GB per file, layers in order). DeepSeek-V3 671B: bench_plan_deepseek.py.
  bench/moe/bench_plan_large.py [--ckhost build/bin/ckhost] [--dir build/bench-data]"""
import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import timed, write_safetensors_checkpoint  # noqa: E402

CFG = dict(architectures=["Qwen3MoeForCausalLM"], model_type="qwen3_moe", hidden_size=4096, intermediate_size=12288,
           moe_intermediate_size=1536, num_hidden_layers=94, num_attention_heads=64, num_key_value_heads=4, head_dim=128,
           num_experts=128, num_experts_per_tok=8, norm_topk_prob=True, vocab_size=151936, max_position_embeddings=40960,
           rms_norm_eps=1e-6, rope_theta=1000000.0, tie_word_embeddings=False, decoder_sparse_step=1, mlp_only_layers=[],
           torch_dtype="bfloat16")


def tensors(c):
    h, q, kv, d = c["hidden_size"], c["num_attention_heads"] * c["head_dim"], c["num_key_value_heads"] * c["head_dim"], c["head_dim"]
    f = c["moe_intermediate_size"]
    yield "model.embed_tokens.weight", [c["vocab_size"], h]
    for l in range(c["num_hidden_layers"]):
        p = "model.layers.%d." % l
        yield p + "input_layernorm.weight", [h]
        yield p + "self_attn.q_proj.weight", [q, h]
        yield p + "self_attn.k_proj.weight", [kv, h]
        yield p + "self_attn.v_proj.weight", [kv, h]
        yield p + "self_attn.o_proj.weight", [h, q]
        yield p + "self_attn.q_norm.weight", [d]
        yield p + "self_attn.k_norm.weight", [d]
        yield p + "post_attention_layernorm.weight", [h]
        yield p + "mlp.gate.weight", [c["num_experts"], h]
        for e in range(c["num_experts"]):
            x = p + "mlp.experts.%d." % e
            yield x + "gate_proj.weight", [f, h]
            yield x + "up_proj.weight", [f, h]
            yield x + "down_proj.weight", [h, f]
    yield "model.norm.weight", [h]
    yield "lm_head.weight", [c["vocab_size"], h]


def make(d):
    write_safetensors_checkpoint(d, ((name, shape, "BF16") for name, shape in tensors(CFG)), CFG)



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    a = ap.parse_args()
    src = os.path.join(a.dir, "qwen3-235b-headers")
    make(src)
    with open(os.path.join(src, "model.safetensors.index.json")) as fh:
        idx = json.load(fh)
    print("source: %s, %d tensors in %d files, %.1f GiB (sparse)" % (
        src, len(idx["weight_map"]), len(set(idx["weight_map"].values())), idx["metadata"]["total_size"] / 2**30))
    # 94 layers over 8 stages: uneven, LoongForge-style custom pipeline layers.
    pp = ["--pp", "8", "--pp-layers", "11,12,12,12,12,12,12,11"]
    for label, args in (("megatron TP4 PP8 (11,12x6,11) EP32", ["--to", "megatron", "--tp", "4", *pp, "--ep", "32"]),
                        ("torch-dist TP4 PP8 (11,12x6,11) EP32", ["--to", "torch-dist", "--tp", "4", *pp, "--ep", "32"])):
        plan = os.path.join(a.dir, "plan.txt")
        with open(plan, "w") as fh:
            wall, rss = timed([a.ckhost, "convert", src, os.path.join(a.dir, "plan-out"), *args, "--dry-run", "-q"],
                              stdout=fh)
        with open(plan) as fh:
            lines = fh.read().splitlines()
        files = [l for l in lines if not l.startswith(("stage:", "total:"))]
        print("\n%s: planned in %.2f s, peak RSS %.0f MiB (targets <= 10 s, <= 1024 MiB)" % (label, wall, rss / 2**20))
        for l in files[:3] + ["..."] + files[-3:]:
            print("  " + l)
        print("  " + [l for l in lines if l.startswith("total:")][0])


if __name__ == "__main__":
    main()
