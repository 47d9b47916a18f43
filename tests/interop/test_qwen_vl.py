"""Qwen2-VL and Qwen2.5-VL (vision tower + Qwen2 decoder) HF side, checked by transformers 5.24.

Sources are transformers save_pretrained checkpoints of small configs that keep the real key sets
(Qwen2.5-VL: RMSNorm, gated vision MLP with biases, windowed and full-attention blocks; Qwen2-VL:
LayerNorm with biases, fc1/fc2), with random weights in every tensor. ckhost reads them with the qwen-vl
model plugin (every tensor the config implies, with its shape) and writes them back as HF safetensors:
every tensor bit-identical, and transformers' forward of the output on an image+text input (pixel_values
and image_grid_thw passed directly) gives the source's logits exactly; --dtype bf16 equals transformers'
own cast. A missing tensor and a wrong shape are refused by name, with no output.

Run: tests/interop/run_interop.sh tests/interop/test_qwen_vl.py --ckhost=build/bin/ckhost
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import interop_lib as L  # noqa: E402

IMAGE, VSTART, VEND, VIDEO = 250, 251, 252, 253
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            vocab_size=300, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]}, bos_token_id=1, eos_token_id=2)
CONFIGS = {
    "qwen2_5_vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration",
                   dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64,
                        fullatt_block_indexes=[2], window_size=28, patch_size=14, spatial_merge_size=2,
                        temporal_patch_size=2)),
    "qwen2_vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration",
                 dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2)),
}
GRID = (1, 4, 4)  # one image of 4 x 4 patches: 16 patches, 4 tokens after the 2 x 2 merge


def make(fam, out, seed=0):
    transformers = L._quiet_transformers()
    cfg_cls, model_cls, vision = CONFIGS[fam]
    cfg = getattr(transformers, cfg_cls)(text_config=dict(TEXT), vision_config=dict(vision), image_token_id=IMAGE,
                                         video_token_id=VIDEO, vision_start_token_id=VSTART, vision_end_token_id=VEND)
    torch.manual_seed(seed)
    m = getattr(transformers, model_cls)(cfg)
    L.randomize_(m, seed)
    m.save_pretrained(out)
    return out


def inputs(fam):
    _, _, v = CONFIGS[fam]
    t, h, w = GRID
    n_tokens = t * h * w // (v["spatial_merge_size"] ** 2)
    ids = [1, 17, VSTART] + [IMAGE] * n_tokens + [VEND, 42, 99, 3, 128, 77]
    g = torch.Generator().manual_seed(7)
    pixels = torch.randn(t * h * w, 3 * v["temporal_patch_size"] * v["patch_size"] ** 2, generator=g)
    types = [1 if i == IMAGE else 0 for i in ids]  # text 0, image 1 (what the processor returns)
    return torch.tensor([ids]), pixels, torch.tensor([list(GRID)]), torch.tensor([types])


def logits(fam, d):
    transformers = L._quiet_transformers()
    cls = getattr(transformers, CONFIGS[fam][1])
    m = cls.from_pretrained(d, local_files_only=True, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    ids, pixels, grid, types = inputs(fam)
    with torch.no_grad():
        return m(input_ids=ids, pixel_values=pixels, image_grid_thw=grid, mm_token_type_ids=types).logits[0]


class QwenVL(L.InteropCase):
    def source(self, fam):
        d = self.path("hf-" + fam)
        if not os.path.isdir(d):
            make(fam, d)
        return d

    def round_trip(self, fam):
        src = self.source(fam)
        info = L.run("inspect", src).stdout
        self.assertIn("qwen-vl", info)
        out = L.convert(src, self.path(fam + "-hf"), "--to", "hf", "--max-shard-size", "100KB")
        a, b = L.safe_open_all(src), L.safe_open_all(out)
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), "%s: %s differs" % (fam, k))
        self.assertGreater(len([f for f in os.listdir(out) if f.endswith(".safetensors")]), 1)
        ref = logits(fam, src)
        got = logits(fam, out)
        self.assertTrue(torch.equal(ref, got), "%s: logits differ by %g" % (fam, (ref - got).abs().max()))
        L.report("%s HF -> HF (sharded): %d tensors bit-identical, image+text logits identical (max |logit| %.3g)"
                 % (fam, len(a), ref.abs().max()))
        bf = L.convert(src, self.path(fam + "-bf16"), "--to", "hf", "--dtype", "bf16")
        c = L.safe_open_all(bf)
        for k in a:
            self.assertTrue(torch.equal(c[k], a[k].to(torch.bfloat16)), "%s: %s bf16 cast differs" % (fam, k))
        return src

    def test_qwen2_5_vl(self):
        src = self.round_trip("qwen2_5_vl")
        # Negative twin: two ViT heads swapped in one block's value rows ([Q; K; V], 2 heads of 16) move
        # the image+text logits. (Queries alone would not show: with these small random weights the
        # attention is nearly uniform.)
        sw = self.path("q25-swapped-heads")
        shutil.copytree(src, sw)
        f = os.path.join(sw, "model.safetensors")
        sd = load_file(f)
        for k in ("visual.blocks.0.attn.qkv.weight", "visual.blocks.0.attn.qkv.bias"):
            t, v0 = sd[k].clone(), 64  # V starts after Q and K (2 x width 32)
            t[v0:v0 + 16], t[v0 + 16:v0 + 32] = sd[k][v0 + 16:v0 + 32], sd[k][v0:v0 + 16]
            sd[k] = t
        save_file(sd, f, metadata={"format": "pt"})
        diff = (logits("qwen2_5_vl", sw) - logits("qwen2_5_vl", src)).abs().max().item()
        L.report("qwen2_5_vl with two ViT heads swapped in block 0: max |logit diff| %.3g" % diff)
        self.assertGreater(diff, 1e-5)  # the round trip itself is compared for exact equality
        # Refusals by name, before anything is written: a missing vision bias, a wrong vision shape.
        part = self.path("q25-partial")
        shutil.copytree(src, part)
        f = os.path.join(part, "model.safetensors")
        sd = load_file(f)
        del sd["visual.blocks.1.attn.qkv.bias"]
        save_file(sd, f, metadata={"format": "pt"})
        L.assert_refused(self, part, self.path("out-partial"), "--to", "hf", needle="visual.blocks.1.attn.qkv.bias")
        bad = self.path("q25-badshape")
        shutil.copytree(src, bad)
        f = os.path.join(bad, "model.safetensors")
        sd = load_file(f)
        sd["visual.blocks.0.mlp.gate_proj.weight"] = sd["visual.blocks.0.mlp.gate_proj.weight"][:32].clone()
        save_file(sd, f, metadata={"format": "pt"})
        L.assert_refused(self, bad, self.path("out-badshape"), "--to", "hf",
                         needle="'visual.blocks.0.mlp.gate_proj.weight': config.json implies shape [64, 32], checkpoint has [32, 32]")

    def test_qwen2_vl(self):
        self.round_trip("qwen2_vl")


if __name__ == "__main__":
    L.main()
