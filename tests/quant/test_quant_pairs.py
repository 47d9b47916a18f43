"""Quantized pairs are one logical tensor (SDK 1.1, point 1), checked with torch 2.13's float8.

- A mapper built against the 1.1 headers (requant_plugin.c) requantizes *_proj.weight with the fp8-block
  quantizer's two outputs (codes, scales). Codes and scales equal a torch reference of the block-FP8 rule,
  and the host's counter shows every block computed exactly once for both outputs.
- `--dtype` on the FP8 result dequantizes each pair through the quantizer: bit-identical to the torch
  product f32(code) * f32(scale) rounded into the target dtype (transformers' Fp8Dequantize order) and,
  where the block divides the shape, to transformers' own Fp8Dequantize; scales leave the checkpoint.
- `ckhost verify` compares the FP8 checkpoint with its dequantized conversion pair by pair, and fails on a
  one-ulp change.
"""
import os
import re

import torch
from safetensors.torch import load_file, save_file

import interop_lib as L
from interop_lib import run

PD = os.environ["CKH_TEST_PLUGIN_DIR"]


def ref_quant(x, b=128):
    x = x.float()
    n, k = x.shape
    sr, sc = -(-n // b), -(-k // b)
    codes = torch.empty(n, k, dtype=torch.float8_e4m3fn)
    scales = torch.empty(sr, sc, dtype=torch.float32)
    for i in range(sr):
        for j in range(sc):
            blk = x[i * b:(i + 1) * b, j * b:(j + 1) * b]
            amax = blk.abs().max()
            s = amax / 448.0 if amax > 0 else torch.tensor(1.0)
            scales[i, j] = s
            codes[i * b:(i + 1) * b, j * b:(j + 1) * b] = (blk / s).clamp(-448, 448).to(torch.float8_e4m3fn)
    return codes, scales


def ref_dequant(codes, scales, dtype, b=128):
    n, k = codes.shape
    s = scales.repeat_interleave(b, 0)[:n].repeat_interleave(b, 1)[:, :k]
    return (codes.float() * s).to(dtype)


def quant_line(out):
    m = re.search(r"quantizers: (\d+) calls over (\d+) blocks, (\d+) blocks computed twice", out)
    assert m, out
    return tuple(int(x) for x in m.groups())


class QuantPairs(L.InteropCase):
    def requant(self, src, out, *extra):
        p = run("--plugin-dir", PD, "convert", src, out, "--to", "hf", "--map", "test.fp8-requant", "--progress",
                "none", *extra)
        return p.stdout

    def check_codes(self, src_sd, out):
        got = load_file(os.path.join(out, "model.safetensors")) if os.path.exists(os.path.join(out, "model.safetensors")) \
            else L.safe_open_all(out)
        blocks = 0
        for k, v in src_sd.items():
            if v.dim() == 2 and k.endswith("_proj.weight"):
                c, s = ref_quant(v)
                self.assertEqual(got[k].dtype, torch.float8_e4m3fn, k)
                self.assertTrue(torch.equal(got[k].view(torch.uint8), c.view(torch.uint8)), k)
                self.assertTrue(torch.equal(got[k + "_scale_inv"], s), k)
                blocks += s.shape[0]
            else:
                self.assertTrue(torch.equal(got[k], v), k)
        return got, blocks

    def test_requantize_dequantize_verify(self):
        src = L.make_hf("llama-gqa", self.path("src"))
        src_sd = L.safe_open_all(src)
        fp8 = self.path("fp8")
        calls, blocks, twice = quant_line(self.requant(src, fp8))
        got, want_blocks = self.check_codes(src_sd, fp8)
        # Both outputs of every block come from one call: each block once, none twice.
        self.assertEqual((blocks, twice), (want_blocks, 0))
        self.assertLessEqual(calls, want_blocks)
        for dt, tdt in (("f32", torch.float32), ("bf16", torch.bfloat16), ("f16", torch.float16)):
            deq = self.path("deq-" + dt)
            p = run("convert", fp8, deq, "--to", "hf", "--dtype", dt, "--progress", "none")
            self.assertIn("quantizers:", p.stdout)
            d = L.safe_open_all(deq)
            self.assertFalse([k for k in d if k.endswith("_scale_inv")])
            for k, v in got.items():
                if k.endswith("_scale_inv"):
                    continue
                want = ref_dequant(v, got[k + "_scale_inv"], tdt) if v.dtype == torch.float8_e4m3fn else v.to(tdt)
                self.assertEqual(d[k].dtype, tdt, k)
                self.assertTrue(torch.equal(d[k].view(torch.uint8), want.view(torch.uint8)), (dt, k))
            # Pairs compare dequantized into the other side's dtype, so they are bit-exact; the plain tensors
            # of a bf16/f16 conversion carry their rounding, hence the tolerance there.
            tol = [] if dt == "f32" else ["--atol", "0.01"]
            self.assertEqual(run("verify", fp8, deq, *tol).returncode, 0)
            self.assertEqual(run("verify", deq, fp8, *tol).returncode, 0)
        # One ulp in one dequantized weight: verify must fail and name it.
        f = os.path.join(self.path("deq-f32"), "model.safetensors")
        sd = load_file(f)
        k = "model.layers.1.mlp.down_proj.weight"
        w = sd[k].view(torch.int32).clone()
        w[2, 3] += 1
        sd[k] = w.view(torch.float32)
        save_file(sd, f, metadata={"format": "pt"})
        p = run("verify", fp8, self.path("deq-f32"), check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn(k, p.stdout)
        L.report(f"quant pairs: {calls} calls for {blocks} blocks (codes + scales), dequantized f32/bf16/f16 bit-exact, "
                 "verify pairs bit-exact, one ulp caught")

    def test_many_chunks_bounded_cache(self):
        """A 4096 x 1024 f32 weight is 32 blocks of 128 rows; each call holds about one task's bytes, so
        the blocks spread over many calls. With a tiny --max-memory the shared cache is too small for
        the scales to wait for their file: blocks may be computed twice, and the counter says how often;
        the bytes are the same."""
        d = self.path("big")
        os.makedirs(d)
        g = torch.Generator().manual_seed(5)
        sd = {"model.x_proj.weight": torch.randn(4096, 1024, generator=g) * 0.02,
              "model.norm.weight": torch.ones(1024)}
        save_file(sd, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
        a = self.path("a")
        calls, blocks, twice = quant_line(self.requant(d, a, "--threads", "2", "--max-memory", "64MB"))
        self.check_codes(sd, a)
        self.assertEqual((blocks, twice), (32, 0))
        self.assertGreater(calls, 1)
        b = self.path("b")
        calls2, blocks2, twice2 = quant_line(self.requant(d, b, "--threads", "2", "--max-memory", "2MB"))
        self.check_codes(sd, b)
        self.assertEqual(blocks2, 32 + twice2)
        # transformers' own dequantization (its block rule needs shapes that 128 divides, as here).
        from transformers.integrations.finegrained_fp8 import Fp8Dequantize
        got = L.safe_open_all(a)
        run("convert", a, self.path("deq"), "--to", "hf", "--dtype", "bf16", "--progress", "none")
        deq = L.safe_open_all(self.path("deq"))
        k = "model.x_proj.weight"
        t = Fp8Dequantize(None)._dequantize_one(got[k], got[k + "_scale_inv"], torch.bfloat16)
        self.assertTrue(torch.equal(t.view(torch.int16), deq[k].view(torch.int16)))
        L.report(f"quant pairs: 32 blocks in {calls} calls, none twice; with --max-memory 2MB {twice2} computed twice; "
                 "bf16 dequantization bit-identical to transformers' Fp8Dequantize")


if __name__ == "__main__":
    L.main()
