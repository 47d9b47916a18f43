#!/usr/bin/env python3
"""Planning DeepSeek-V3 671B at full scale: a header-only checkpoint with the released tensor list (61 layers,
the first 3 dense, 256 routed experts of 2048 and a shared one, MLA with q_lora 1536 / kv_lora 512, the MTP
layer 61 with its copies of the embedding and the LM head; FP8 E4M3 weights with a float32 weight_scale_inv
per 128 x 128 block for every linear except the embedding, the LM head and the routers, as the released
model.safetensors.index.json lists them; about 642 GiB as sparse files: real headers, the data is holes)
planned by `ckhost convert --dry-run -q`, with `--dtype bf16` (FP8 dequantized on the way) and without (FP8
codes and scales kept, each cut lifted to the scale grid), into
  - Megatron legacy per-rank files TP8 x PP8 x EP32 (2,048 rank files) with uneven custom pipeline layers,
  - Megatron-Core torch_dist with args TP8 PP8 EP32,
timed (wall, peak RSS), with bytes per output file and the total printed.
  bench/moe/bench_plan_deepseek.py [--ckhost build/bin/ckhost] [--dir build/bench-data]"""
import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
from benchlib import timed, write_safetensors_checkpoint  # noqa: E402

with open(os.path.join(ROOT, "plugins", "model-deepseek", "configs", "deepseek-v3.json")) as _fh:
    CFG = json.load(_fh)


def tensors(c):
    """(name, shape, fp8) in the released order: fp8 weights get a weight_scale_inv right after them."""
    h, H = c["hidden_size"], c["num_attention_heads"]
    qk, v = c["qk_nope_head_dim"] + c["qk_rope_head_dim"], c["v_head_dim"]
    yield "model.embed_tokens.weight", [c["vocab_size"], h], False

    def layer(l, moe):
        p = "model.layers.%d." % l
        yield p + "input_layernorm.weight", [h], False
        yield p + "self_attn.q_a_proj.weight", [c["q_lora_rank"], h], True
        yield p + "self_attn.q_a_layernorm.weight", [c["q_lora_rank"]], False
        yield p + "self_attn.q_b_proj.weight", [H * qk, c["q_lora_rank"]], True
        yield p + "self_attn.kv_a_proj_with_mqa.weight", [c["kv_lora_rank"] + c["qk_rope_head_dim"], h], True
        yield p + "self_attn.kv_a_layernorm.weight", [c["kv_lora_rank"]], False
        yield p + "self_attn.kv_b_proj.weight", [H * (c["qk_nope_head_dim"] + v), c["kv_lora_rank"]], True
        yield p + "self_attn.o_proj.weight", [h, H * v], True
        yield p + "post_attention_layernorm.weight", [h], False
        if not moe:
            f = c["intermediate_size"]
            yield p + "mlp.gate_proj.weight", [f, h], True
            yield p + "mlp.up_proj.weight", [f, h], True
            yield p + "mlp.down_proj.weight", [h, f], True
            return
        f = c["moe_intermediate_size"]
        yield p + "mlp.gate.weight", [c["n_routed_experts"], h], False
        yield p + "mlp.gate.e_score_correction_bias", [c["n_routed_experts"]], False
        for e in range(c["n_routed_experts"]):
            x = p + "mlp.experts.%d." % e
            yield x + "gate_proj.weight", [f, h], True
            yield x + "up_proj.weight", [f, h], True
            yield x + "down_proj.weight", [h, f], True
        sf = f * c["n_shared_experts"]
        yield p + "mlp.shared_experts.gate_proj.weight", [sf, h], True
        yield p + "mlp.shared_experts.up_proj.weight", [sf, h], True
        yield p + "mlp.shared_experts.down_proj.weight", [h, sf], True

    for l in range(c["num_hidden_layers"]):
        yield from layer(l, l >= c["first_k_dense_replace"])
    yield "model.norm.weight", [h], False
    yield "lm_head.weight", [c["vocab_size"], h], False
    m = "model.layers.%d." % c["num_hidden_layers"]
    yield m + "embed_tokens.weight", [c["vocab_size"], h], False
    yield m + "enorm.weight", [h], False
    yield m + "hnorm.weight", [h], False
    yield m + "eh_proj.weight", [h, 2 * h], False
    yield from layer(c["num_hidden_layers"], True)
    yield m + "shared_head.norm.weight", [h], False
    yield m + "shared_head.head.weight", [c["vocab_size"], h], False


def entries(c):
    for name, shape, fp8 in tensors(c):
        if not fp8:
            yield name, shape, "F32" if name.endswith(("gate.weight", "e_score_correction_bias")) else "BF16"
            continue
        yield name, shape, "F8_E4M3"
        yield name[: -len("weight")] + "weight_scale_inv", [-(-shape[0] // 128), -(-shape[1] // 128)], "F32"


def make(d):
    write_safetensors_checkpoint(d, entries(CFG), CFG)



def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckhost", default=os.path.join(ROOT, "build", "bin", "ckhost"))
    ap.add_argument("--dir", default=os.path.join(ROOT, "build", "bench-data"))
    a = ap.parse_args()
    src = os.path.join(a.dir, "deepseek-v3-671b-headers")
    make(src)
    with open(os.path.join(src, "model.safetensors.index.json")) as fh:
        idx = json.load(fh)
    print("source: %s, %d tensors in %d files, %.1f GiB (sparse)" % (
        src, len(idx["weight_map"]), len(set(idx["weight_map"].values())), idx["metadata"]["total_size"] / 2**30))
    # 61 layers over 8 stages, LoongForge-style custom pipeline layers (the last stage also runs MTP).
    pp = ["--pp", "8", "--pp-layers", "8,8,8,8,8,8,8,5"]
    for label, args in (("megatron TP8 PP8 (8x7,5) EP32 ETP1", ["--to", "megatron", "--tp", "8", *pp, "--ep", "32", "--etp", "1"]),
                        ("torch-dist TP8 PP8 (8x7,5) EP32 ETP1", ["--to", "torch-dist", "--tp", "8", *pp, "--ep", "32", "--etp", "1"])):
      for what, extra in (("bf16", ["--dtype", "bf16"]), ("FP8 kept", [])):
        plan = os.path.join(a.dir, "plan.txt")
        label_w = "%s, %s" % (label, what)
        with open(plan, "w") as fh:
            wall, rss = timed([a.ckhost, "convert", src, os.path.join(a.dir, "plan-out"), *args, *extra,
                               "--dry-run", "-q"], stdout=fh)
        with open(plan) as fh:
            lines = fh.read().splitlines()
        files = [l for l in lines if not l.startswith(("stage:", "total:"))]
        print("\n%s: planned in %.2f s, peak RSS %.0f MiB (targets <= 10 s, <= 1024 MiB)" % (label_w, wall, rss / 2**20))
        for l in files[:3] + ["..."] + files[-3:]:
            print("  " + l)
        print("  " + [l for l in lines if l.startswith("total:")][0])


if __name__ == "__main__":
    main()
