"""Block-FP8 weights through Megatron layouts without requantization (issue 11, point 3).

The source is the DeepSeek-V3-style model of test_deepseek (MLA, a dense first layer, 8 routed experts
and a shared one, one MTP layer) with every linear projection quantized the DeepSeek way: codes
float8_e4m3fn and weight_scale_inv (the f32 dequantization multiplier) per 16 x 16 block, written with
safetensors, quantization_config.weight_block_size [16, 16]; embeddings, norms, the router and the
MTP eh_proj stay bf16. ckhost converts it to Megatron layouts with TP, uneven PP, EP4 and ETP1: the
codes are cut, fused (linear_fc1 = gate;up per TP rank) and regrouped by expert exactly as bf16 weights
are, and each scale grid follows its codes block by block; nothing is requantized. Checked:
  - back to HF every tensor is bit-identical (codes, scales, bf16 tensors, quantization_config), from
    legacy rank files, torch_dist, TEGroupedMLP names and a direct Megatron -> Megatron resplit;
  - torch.load(weights_only=True) reads each rank file, codes as torch.float8_e4m3fn;
  - dequantized (--dtype bf16) from the Megatron files, the weights equal the HF FP8 checkpoint's own
    dequantization bit for bit, and Megatron-Core 0.16.1's forward over them gives transformers' logits;
  - negative twins: scales swapped between two experts of one EP rank file come back different and move
    Megatron-Core's logits far beyond the tolerance; a
    layout that cuts codes inside a block (local-spec MLA down projection at TP2) is refused with one
    line naming the tensor and the block, and nothing is written.
Megatron-Core itself does not load FP8 weights from a checkpoint (dist_checkpointing dequantizes into
its bf16 or TE parameters), so these FP8 rank files are a lossless transport, not a training start.

Run: tests/interop/run_interop.sh tests/interop/test_fp8_megatron.py --ckhost=build/bin/ckhost
"""
import argparse
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import interop_lib as L  # noqa: E402
import mcore_lib as M  # noqa: E402
import test_deepseek as D  # noqa: E402

B = 16
LAYOUT = ("--tp", "2", "--pp", "2", "--pp-layers", "2,1", "--ep", "4", "--etp", "1")


def load_rank_file(f):
    """torch.load with weights_only=True; Megatron's args are an argparse.Namespace."""
    with torch.serialization.safe_globals([argparse.Namespace]):
        return torch.load(f, map_location="cpu", weights_only=True)


def swap_expert_scales(meg):
    """Swaps the linear_fc1 block scales of local experts 0 and 1 in one EP rank's file (last stage, EP rank 1)."""
    f = os.path.join(M.iteration_dir(meg), "mp_rank_00_001_001", "model_optim_rng.pt")
    ck = load_rank_file(f)
    sd = ck["model"]
    a = [k for k in sd if k.endswith("local_experts.0.linear_fc1.weight_scale_inv")][0]
    b = a.replace("local_experts.0.", "local_experts.1.")
    sd[a], sd[b] = sd[b], sd[a]
    torch.save(ck, f)


def quantize_block(w):
    """DeepSeek's per_block_cast_to_fp8: s = amax(|block|) / 448, codes = (x / s) in e4m3."""
    n, k = w.shape
    w = w.float()
    s = torch.empty((n + B - 1) // B, (k + B - 1) // B)
    q = torch.empty_like(w)
    for i in range(s.shape[0]):
        for j in range(s.shape[1]):
            blk = w[i * B:(i + 1) * B, j * B:(j + 1) * B]
            a = blk.abs().max().clamp(min=1e-12) / 448
            s[i, j] = a
            q[i * B:(i + 1) * B, j * B:(j + 1) * B] = blk / a
    return q.to(torch.float8_e4m3fn), s


def quantized(k, v):
    return v.ndim == 2 and k.endswith("proj.weight") and not k.endswith("eh_proj.weight")


def make_fp8(src, dst):
    shutil.copytree(src, dst)
    idx = os.path.join(dst, "model.safetensors.index.json")
    wm = json.load(open(idx)) if os.path.exists(idx) else None
    for f in sorted(os.listdir(dst)):
        if not f.endswith(".safetensors"):
            continue
        p = os.path.join(dst, f)
        out = {}
        for k, v in load_file(p).items():
            if quantized(k, v):
                out[k], out[k + "_scale_inv"] = quantize_block(v)
                if wm:
                    wm["weight_map"][k + "_scale_inv"] = f
            else:
                out[k] = v
        save_file(out, p, metadata={"format": "pt"})
    if wm:
        with open(idx, "w") as fh:
            json.dump(wm, fh)
    with open(os.path.join(dst, "config.json")) as fh:
        cfg = json.load(fh)
    cfg["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                  "weight_block_size": [B, B]}
    with open(os.path.join(dst, "config.json"), "w") as fh:
        json.dump(cfg, fh, indent=1)
    return dst


class Fp8Megatron(L.InteropCase):
    def source(self):
        d = self.path("hf-fp8")
        if not os.path.isdir(d):
            make_fp8(D.make("v3", self.path("hf-bf16")), d)
        return d

    def assert_same(self, src, out, what):
        a, b = L.safe_open_all(src), L.safe_open_all(out)
        self.assertEqual(sorted(a), sorted(b), what)
        for k in a:
            self.assertEqual(a[k].dtype, b[k].dtype, (what, k))
            self.assertTrue(torch.equal(a[k].view(torch.uint8), b[k].view(torch.uint8)), "%s: %s differs" % (what, k))
        with open(os.path.join(src, "config.json")) as f, open(os.path.join(out, "config.json")) as g:
            self.assertEqual(json.load(f)["quantization_config"], json.load(g)["quantization_config"], what)

    def test_round_trips_bit_exact(self):
        src = self.source()
        n_codes = sum(1 for k, v in L.safe_open_all(src).items() if v.dtype == torch.float8_e4m3fn)
        self.assertGreater(n_codes, 40)
        meg = L.convert(src, self.path("meg"), "--to", "megatron", *LAYOUT, "--fp8-no-requant")
        # Every rank file is a plain torch checkpoint: codes in torch's float8 dtype, scales in f32.
        files = [os.path.join(r, f) for r, _, fs in os.walk(meg) for f in fs if f == "model_optim_rng.pt"]
        self.assertEqual(len(files), 2 * 2 * 4)
        seen = 0
        for f in files:
            sd = load_rank_file(f)["model"]
            for k, v in sd.items():
                if k.endswith("_scale_inv"):
                    codes = sd[k[: -len("_scale_inv")]]
                    self.assertEqual(codes.dtype, torch.float8_e4m3fn, k)
                    self.assertEqual(v.dtype, torch.float32, k)
                    self.assertEqual(list(v.shape), [(codes.shape[0] + B - 1) // B, (codes.shape[1] + B - 1) // B], k)
                    seen += 1
        self.assertGreater(seen, 100)
        self.assert_same(src, L.convert(meg, self.path("meg-back"), "--to", "hf"), "legacy TP2 PP2 EP4 ETP1")
        td = L.convert(src, self.path("td"), "--to", "torch-dist", *LAYOUT)
        self.assert_same(src, L.convert(td, self.path("td-back"), "--to", "hf"), "torch_dist")
        gg = L.convert(src, self.path("gg"), "--to", "megatron", "--tp", "2", "--ep", "2", "--moe-grouped-gemm")
        self.assert_same(src, L.convert(gg, self.path("gg-back"), "--to", "hf"), "TEGroupedMLP")
        rs = L.convert(meg, self.path("rs"), "--to", "megatron", "--tp", "1", "--ep", "8", "--etp", "1")
        self.assert_same(src, L.convert(rs, self.path("rs-back"), "--to", "hf"), "resplit TP1 EP8")
        L.report("FP8 HF -> Megatron (legacy, torch_dist, grouped, resplit) -> HF: %d codes tensors bit-exact" % n_codes)

    def test_dequantized_weights_and_megatron_logits(self):
        src = self.source()
        ref = L.convert(src, self.path("hf-bf16-deq"), "--to", "hf", "--dtype", "bf16")
        meg = L.convert(src, self.path("meg"), "--to", "megatron", *LAYOUT)
        # The Megatron files' pairs dequantize to exactly the HF checkpoint's dequantization.
        self.assertEqual(L.run("verify", ref, L.convert(meg, self.path("meg-deq"), "--to", "hf", "--dtype", "bf16")).returncode, 0)
        # Megatron-Core's forward over the dequantized Megatron checkpoint gives transformers' logits.
        bf = L.convert(meg, self.path("meg-bf16"), "--to", "megatron", "--megatron-spec", "local", "--tp", "2", "--pp", "2",
                       "--pp-layers", "2,1", "--ep", "2", "--etp", "1", "--dtype", "bf16")
        # The dequantized Megatron checkpoint's HF config no longer claims FP8 (nor does its way back).
        with open(os.path.join(bf, "hf", "config.json")) as fh:
            self.assertNotIn("quantization_config", json.load(fh))
        # Negative twin: the scales of experts 0 and 1 swapped in one EP rank's FP8 file.
        sw = self.path("meg-swapped")
        shutil.copytree(meg, sw)
        swap_expert_scales(sw)
        sw_bf = L.convert(sw, self.path("meg-swapped-bf16"), "--to", "megatron", "--megatron-spec", "local", "--tp", "2",
                          "--pp", "2", "--pp-layers", "2,1", "--ep", "2", "--etp", "1", "--dtype", "bf16")
        want = D.logits(ref)
        rr = M.run_job(self.path("job"), world=4, tp=2, pp=2, ep=2, etp=1, timeout=240,
                       tasks=[dict(id="lg", op="load_legacy", ckpt=bf, ids=L.IDS),
                              dict(id="sw", op="load_legacy", ckpt=sw_bf, ids=L.IDS)])
        D.DeepSeek.assert_match(self, "FP8 -> Megatron FP8 (EP4) -> Megatron bf16 (EP2, local), Megatron-Core forward",
                                rr["lg"], want)
        self.assertFalse(M.errors(rr["sw"]))
        diff, _ = M.compare_logits(M.first_logits(rr["sw"]), want)
        L.report("the same with two experts' scales swapped in one FP8 rank file: max |logit diff| %.3g" % diff)
        self.assertGreater(diff, 100 * M.LOGITS_ATOL, "swapped block scales did not change Megatron's logits")

    def test_swapped_scales_and_misaligned_cut(self):
        src = self.source()
        meg = L.convert(src, self.path("meg"), "--to", "megatron", *LAYOUT)
        swap_expert_scales(meg)
        back = L.convert(meg, self.path("swapped-back"), "--to", "hf")
        p = L.run("verify", src, back, check=False)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("weight_scale_inv", p.stdout)
        # The local spec splits MLA's down projections by rows: 40 rows of kv_a_proj_with_mqa at TP2 cut a
        # 16-row block. Refused before anything is written.
        out = self.path("local")
        err = [ln for ln in L.assert_refused(self, src, out, "--to", "megatron", "--tp", "2", "--megatron-spec", "local",
                                             needle="block scales").splitlines() if ln.startswith("ckhost: error:")]
        self.assertIn("blocks of 16 x 16", err[0])
        L.report("FP8 misaligned cut: " + err[0][:200])
        # Rank files whose shards were each quantized on their own grid (what a cut inside a block gives
        # when every TP rank quantizes its own rows): 48 rows per rank with 2 scale rows each (32-row blocks)
        # under a config that says 16. No uniform grid reads them: refused by name, not paired by a guess.
        own = self.path("own-grid")
        L.convert(src, own, "--to", "megatron", "--tp", "2")
        key = None
        for rank in ("mp_rank_00", "mp_rank_01"):
            f = os.path.join(M.iteration_dir(own), rank, "model_optim_rng.pt")
            ck = load_rank_file(f)
            sd = ck["model"]
            key = [k for k in sd if k.endswith("linear_q_up_proj.weight_scale_inv")][0]
            self.assertEqual(sd[key].shape[0], 3)
            sd[key] = sd[key][:2].clone()
            torch.save(ck, f)
        out = self.path("own-grid-back")
        err = [ln for ln in L.assert_refused(self, own, out, "--to", "hf", needle="do not fit codes").splitlines()
               if ln.startswith("ckhost: error:")]
        self.assertIn("expected 6 x", err[0])
        L.report("FP8 shards on their own grids: " + err[0][:220])


if __name__ == "__main__":
    L.main()
