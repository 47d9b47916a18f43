"""Quantized tensors are never changed silently (issue 9, point 6; SDK 1.1 pairs).

A DeepSeek-V3-style block-FP8 checkpoint (F8_E4M3 weights with weight_scale_inv per 128x128 block,
an "fp8" quantization_config) and a Llama checkpoint with per-tensor FP8 (weight_scale, FBGEMM
style), written with torch 2.13's float8 dtype and safetensors' own writer. `--dtype` dequantizes a
block-FP8 pair through the fp8-block quantizer (codes and scales as one tensor, the config's
weight_block_size, the scales and quantization_config gone); a pair no quantizer accepts (the per-tensor
FBGEMM scale) and every conversion that would change codes or scales (a Megatron layout that fuses or
splits per-tensor scales) is refused with one line naming the tensor and leaves no output; pure copies and reshards
keep working, bit-exact, with the quantization_config kept, and safetensors' safe_open reads them.
"""
import json
import os
import shutil

import torch
from safetensors.torch import load_file, save_file

import interop_lib as L
from interop_lib import convert, run


def make_dsv3_fp8(d):
    os.makedirs(d)
    g = torch.Generator().manual_seed(3)
    sd = {"model.embed_tokens.weight": torch.randn(300, 256, generator=g).to(torch.bfloat16),
          "model.layers.0.input_layernorm.weight": (1 + 0.1 * torch.randn(256, generator=g)).to(torch.bfloat16),
          "lm_head.weight": torch.randn(300, 256, generator=g).to(torch.bfloat16)}
    for n, (o, i) in {"model.layers.0.self_attn.q_a_proj.weight": (192, 256),
                      "model.layers.0.mlp.experts.0.down_proj.weight": (256, 384),
                      "model.layers.0.mlp.experts.1.down_proj.weight": (256, 384)}.items():
        sd[n] = torch.randn(o, i, generator=g).to(torch.float8_e4m3fn)
        sd[n + "_scale_inv"] = torch.rand((o + 127) // 128, (i + 127) // 128, generator=g)
    save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    cfg = {"model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 256,
           "vocab_size": 300, "torch_dtype": "bfloat16",
           "quantization_config": {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                   "weight_block_size": [128, 128]}}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f)
    return d, sd


def make_llama_fp8(src, d):
    shutil.copytree(src, d)
    f = os.path.join(d, "model.safetensors")
    sd = load_file(f)
    for k in list(sd):
        if k.endswith("proj.weight"):
            s = sd[k].abs().max() / 448
            sd[k] = (sd[k] / s).to(torch.float8_e4m3fn)
            sd[k[: -len("weight")] + "weight_scale"] = s.reshape(1).float()
    save_file(sd, f, metadata={"format": "pt"})
    with open(os.path.join(d, "config.json")) as fh:
        cfg = json.load(fh)
    cfg["quantization_config"] = {"quant_method": "fbgemm_fp8", "activation_scale_ub": 1200.0}
    with open(os.path.join(d, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    return d, sd


class Fp8Guard(L.InteropCase):
    def refused(self, src, out, *args, needle):
        p = run("convert", src, out, "--progress", "none", *args, check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        err = [ln for ln in p.stderr.splitlines() if ln.startswith("ckhost: error:")]
        self.assertEqual(len(err), 1, p.stderr)
        self.assertIn(needle, err[0])
        self.assertIn("quantized", err[0])
        self.assertFalse(os.path.exists(out), "a refused conversion left output")
        self.assertEqual([x for x in os.listdir(self.tmp) if "ckhost-tmp" in x], [])
        return err[0]

    def kept(self, src, out, ref):
        got = L.safe_open_all(out)
        self.assertEqual(sorted(got), sorted(ref))
        for k in ref:
            self.assertEqual(got[k].dtype, ref[k].dtype, k)
            self.assertTrue(torch.equal(got[k].view(torch.uint8), ref[k].view(torch.uint8)), k)
        with open(os.path.join(src, "config.json")) as f, open(os.path.join(out, "config.json")) as g:
            self.assertEqual(json.load(f)["quantization_config"], json.load(g)["quantization_config"])
        self.assertEqual(run("verify", src, out).returncode, 0)

    def test_deepseek_v3_block_fp8(self):
        src, ref = make_dsv3_fp8(self.path("dsv3"))
        for dt, tdt in (("bf16", torch.bfloat16), ("f32", torch.float32), ("f16", torch.float16)):
            out = convert(src, self.path("cast-" + dt), "--to", "hf", "--dtype", dt)
            got = L.safe_open_all(out)
            self.assertEqual(sorted(got), sorted(k for k in ref if not k.endswith("_scale_inv")))
            for k, v in ref.items():
                if k.endswith("_scale_inv"):
                    continue
                if v.dtype == torch.float8_e4m3fn:
                    s = ref[k + "_scale_inv"]
                    # weight_block_size [128, 128], the last blocks partial: f32 product, then one rounding.
                    full = s.repeat_interleave(128, 0)[:v.shape[0]].repeat_interleave(128, 1)[:, :v.shape[1]]
                    want = (v.float() * full).to(tdt)
                else:
                    want = v.to(tdt)
                self.assertTrue(torch.equal(got[k].view(torch.uint8), want.view(torch.uint8)), (dt, k))
            with open(os.path.join(out, "config.json")) as f:
                self.assertNotIn("quantization_config", json.load(f))
        self.assertEqual(run("verify", src, self.path("cast-f32")).returncode, 0)
        L.report("FP8 pairs: --dtype bf16/f32/f16 dequantized through fp8-block, bit-exact with the f32 product")
        # Pure copies: same dtype, resharded; bytes, dtypes and quantization_config kept.
        self.kept(src, convert(src, self.path("copy"), "--to", "hf"), ref)
        self.kept(src, convert(src, self.path("reshard"), "--to", "hf", "--max-shard-size", "64KB"), ref)
        self.assertGreater(len([f for f in os.listdir(self.path("reshard")) if f.endswith(".safetensors")]), 2)
        # A format that cannot hold FP8 yet refuses it by name instead of writing something else.
        p = run("convert", src, self.path("torch"), "--to", "torch", "--progress", "none", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("FP8", p.stderr)
        self.assertFalse(os.path.exists(self.path("torch")))
        # DCP holds the codes (torch >= 2.1's float8 dtype) and their scales; torch's own DCP reader
        # gets the same bytes, and the way back to HF is bit-exact.
        dcp = convert(src, self.path("dcp"), "--to", "dcp")
        import torch.distributed.checkpoint as dcpm
        from torch.distributed.checkpoint.metadata import TensorStorageMetadata
        md = dcpm.FileSystemReader(dcp).read_metadata()
        sd = {k: torch.empty(v.size, dtype=v.properties.dtype) for k, v in md.state_dict_metadata.items()
              if isinstance(v, TensorStorageMetadata)}
        dcpm.load(sd, storage_reader=dcpm.FileSystemReader(dcp), no_dist=True)
        self.assertEqual(sorted(sd), sorted(ref))
        for k in ref:
            self.assertEqual(sd[k].dtype, ref[k].dtype, k)
            self.assertTrue(torch.equal(sd[k].view(torch.uint8), ref[k].view(torch.uint8)), k)
        self.kept(src, convert(dcp, self.path("dcp-back"), "--to", "hf"), ref)

    def test_verify_compares_quantized_tensors_bytewise(self):
        """One FP8 code changed by one ulp: `ckhost verify --atol 100` must not call it equal within atol
        (a code means nothing without its scale), while plain tensors still get the tolerance."""
        src, _ = make_dsv3_fp8(self.path("dsv3"))
        out = convert(src, self.path("copy"), "--to", "hf")
        f = os.path.join(out, "model.safetensors")
        sd = load_file(f)
        k = "model.layers.0.mlp.experts.1.down_proj.weight"
        w = sd[k].view(torch.uint8).clone()
        w[3, 5] ^= 1
        sd[k] = w.view(torch.float8_e4m3fn)
        sd["model.layers.0.input_layernorm.weight"] = sd["model.layers.0.input_layernorm.weight"] + 0.05
        save_file(sd, f, metadata={"format": "pt"})
        p = run("verify", src, out, "--atol", "100", check=False)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("differs (quantized: compared bytewise", p.stdout)
        self.assertIn(k, p.stdout)
        self.assertIn("7 bit-exact, 1 equal within atol", p.stdout)
        self.assertIn("1 failed: MISMATCH", p.stdout)

    def test_llama_per_tensor_fp8(self):
        src, ref = make_llama_fp8(L.make_hf("llama-gqa", self.path("bf")), self.path("fp8"))
        # The Llama plugin checks the weights and carries each weight_scale with its weight.
        self.kept(src, convert(src, self.path("copy"), "--to", "hf", "--max-shard-size", "40KB"), ref)
        line = self.refused(src, self.path("cast"), "--to", "hf", "--dtype", "bf16",
                            needle="model.layers.0.self_attn.q_proj.weight")
        self.assertIn("no quantizer dequantizes it: quantizer 'fp8-block'", line)
        L.report("FP8 guard: " + line)
        for to, args in [("megatron", ["--tp", "2"]), ("torch-dist", []), ("megatron", ["--tp", "1"])]:
            line = self.refused(src, self.path("m"), "--to", to, *args, needle="model.layers.0.self_attn.q_proj.weight")
            self.assertIn("llama.hf-to-mcore", line)


if __name__ == "__main__":
    L.main()
