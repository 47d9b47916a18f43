#!/usr/bin/env python3
"""The baseline ckhost is compared with: HF -> Megatron-Core (TE names) TP x PP the way the Python
converters do it — the whole model in memory, torch.cat / torch.chunk per parameter, torch.save per
rank. Run with /usr/bin/python3 (Debian python3-torch).
  python_baseline.py HF_DIR OUT TP PP"""
import argparse
import json
import os
import struct
import sys

import torch

DT = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def load_hf(d):
    sd = {}
    files = sorted(f for f in os.listdir(d) if f.endswith(".safetensors"))
    for fn in files:
        with open(os.path.join(d, fn), "rb") as f:
            n = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(n))
            data = f.read()
        for k, v in header.items():
            if k == "__metadata__":
                continue
            b, e = v["data_offsets"]
            sd[k] = torch.frombuffer(bytearray(data[b:e]), dtype=DT[v["dtype"]]).reshape(v["shape"])
    return sd


def main():
    hf, out, tp, pp = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    cfg = json.load(open(os.path.join(hf, "config.json")))
    sd = load_hf(hf)
    h, H = cfg["hidden_size"], cfg["num_attention_heads"]
    G = cfg.get("num_key_value_heads", H)
    d = h // H
    L, V = cfg["num_hidden_layers"], cfg["vocab_size"]
    Vp = -(-V // (128 * tp)) * (128 * tp)
    args = argparse.Namespace(num_layers=L, hidden_size=h, num_attention_heads=H, num_query_groups=G,
                              tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, padded_vocab_size=Vp)

    def pad(w):
        return torch.cat([w, w[-1:].expand(Vp - V, -1)]) if Vp > V else w

    per = L // pp
    os.makedirs(os.path.join(out, "release"), exist_ok=True)
    with open(os.path.join(out, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("release")
    for p in range(pp):
        for t in range(tp):
            m = {}
            if p == 0:
                m["embedding.word_embeddings.weight"] = pad(sd["model.embed_tokens.weight"]).chunk(tp)[t].clone()
            for l in range(per):
                g = p * per + l
                s, o = f"model.layers.{g}.", f"decoder.layers.{l}."
                q = sd[s + "self_attn.q_proj.weight"].view(G, H // G * d, h)
                k = sd[s + "self_attn.k_proj.weight"].view(G, d, h)
                v = sd[s + "self_attn.v_proj.weight"].view(G, d, h)
                m[o + "self_attention.linear_qkv.weight"] = torch.cat([q, k, v], 1).reshape(-1, h).chunk(tp)[t].clone()
                m[o + "self_attention.linear_qkv.layer_norm_weight"] = sd[s + "input_layernorm.weight"].clone()
                m[o + "self_attention.linear_proj.weight"] = sd[s + "self_attn.o_proj.weight"].chunk(tp, 1)[t].clone()
                m[o + "mlp.linear_fc1.layer_norm_weight"] = sd[s + "post_attention_layernorm.weight"].clone()
                m[o + "mlp.linear_fc1.weight"] = torch.cat([sd[s + "mlp.gate_proj.weight"].chunk(tp)[t],
                                                             sd[s + "mlp.up_proj.weight"].chunk(tp)[t]])
                m[o + "mlp.linear_fc2.weight"] = sd[s + "mlp.down_proj.weight"].chunk(tp, 1)[t].clone()
            if p == pp - 1:
                m["decoder.final_layernorm.weight"] = sd["model.norm.weight"].clone()
                m["output_layer.weight"] = pad(sd["lm_head.weight"]).chunk(tp)[t].clone()
            name = f"mp_rank_{t:02d}" + (f"_{p:03d}" if pp > 1 else "")
            os.makedirs(os.path.join(out, "release", name), exist_ok=True)
            torch.save({"args": args, "checkpoint_version": 3.0, "iteration": 0, "model": m},
                       os.path.join(out, "release", name, "model_optim_rng.pt"))


if __name__ == "__main__":
    main()
