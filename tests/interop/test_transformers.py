"""transformers as producer and consumer (issue 9, points 2 and 5).

Each family's source is a randomly initialised AutoModelForCausalLM saved with save_pretrained. Every
conversion chain below ends in HF safetensors that safetensors' own safe_open must open and that
transformers must load with from_pretrained(local_files_only=True, dtype=float32,
attn_implementation="eager"): its state_dict must equal the source's tensor by tensor and its logits
must be bit-identical. Broken outputs (two heads' rows swapped, two TP rank files swapped) must fail
that check.
"""
import os
import shutil

import torch

import interop_lib as L
from interop_lib import convert

# (name, [(format, extra args), ...]): the formats in between, the last hop is always --to hf.
CHAINS = [
    ("megatron_tp2_pp2", [("megatron", ["--tp", "2", "--pp", "2"])]),
    ("megatron_tp2_pp2_vpp2", [("megatron", ["--tp", "2", "--pp", "2", "--vpp", "2"])]),
    ("megatron_uneven_3_1", [("megatron", ["--tp", "2", "--pp", "2", "--pp-layers", "3,1"])]),
    ("megatron_local_spec", [("megatron", ["--tp", "2", "--megatron-spec", "local"])]),
    ("torch_dist_tp2", [("torch-dist", ["--tp", "2"])]),
    ("torch_dist_local_spec", [("torch-dist", ["--megatron-spec", "local", "--dist-files", "3"])]),
    ("dcp", [("dcp", [])]),
    ("megatron_torchdist_resplit", [("megatron", ["--tp", "2", "--pp", "2"]), ("torch-dist", ["--dist-files", "2"]),
                                    ("megatron", ["--tp", "1", "--pp", "4"])]),
]


class TransformersRoundTrips(L.InteropCase):
    def chain(self, src, hops):
        cur = src
        for i, (fmt, args) in enumerate(hops):
            cur = convert(cur, self.path(f"hop{i}_{fmt}"), "--to", fmt, *args)
        return convert(cur, self.path("back"), "--to", "hf")

    def check_family(self, family):
        src = L.make_hf(family, self.path("src"))
        for name, hops in CHAINS:
            with self.subTest(chain=name):
                for d in os.listdir(self.tmp):
                    if d != "src":
                        shutil.rmtree(self.path(d))
                back = self.chain(src, hops)
                st = L.safe_open_all(back)
                self.assertTrue(st, "no tensors")
                d = L.assert_same_model(self, src, back)
                L.report(f"transformers {family} HF -> {name} -> HF: state_dict equal, "
                         f"logits bit-identical (max |d| {d})")


for _fam in L.FAMILIES:
    setattr(TransformersRoundTrips, "test_" + _fam.replace("-", "_"),
            lambda self, f=_fam: self.check_family(f))


class TransformersOther(L.InteropCase):
    def test_minicpm_not_in_pinned_transformers(self):
        """MiniCPM is covered by the reference forward pass of tests/integration (test_megatron.py);
        transformers 5.24 has no native MiniCPM (only MiniCPM3, another architecture). When a pinned
        transformers gains it, this fails so that it joins FAMILIES."""
        from transformers import CONFIG_MAPPING
        self.assertNotIn("minicpm", CONFIG_MAPPING, "transformers now has MiniCPM: add it to interop_lib.FAMILIES")

    def test_reshard_and_cast(self):
        src = L.make_hf("llama-gqa", self.path("src"))
        sharded = convert(src, self.path("sharded"), "--to", "hf", "--max-shard-size", "100KB")
        self.assertGreater(len([f for f in os.listdir(sharded) if f.endswith(".safetensors")]), 3)
        L.safe_open_all(sharded)
        L.assert_same_model(self, src, sharded)
        # bf16 cast: transformers' own cast of the source model is the reference (RNE both ways).
        cast = convert(src, self.path("bf16"), "--to", "hf", "--dtype", "bf16")
        st = L.safe_open_all(cast)
        self.assertTrue(all(t.dtype == torch.bfloat16 for t in st.values()))
        ref = L.load_hf(src)
        got = L.load_hf(cast)
        sr, sg = ref.state_dict(), got.state_dict()
        for k in sr:
            self.assertTrue(torch.equal(sr[k].to(torch.bfloat16).to(torch.float32), sg[k]), k)
        import json
        with open(os.path.join(cast, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg.get("dtype"), "bfloat16")
        self.assertNotIn("torch_dtype", cfg, "a transformers-5 config gained the old key")

    def test_swapped_heads_fail(self):
        """Two query heads' rows swapped in q_proj: the consumer check must fail."""
        src = L.make_hf("llama-gqa", self.path("src"))
        out = convert(src, self.path("out"), "--to", "hf")
        from safetensors.torch import load_file, save_file
        f = os.path.join(out, "model.safetensors")
        sd = load_file(f)
        k = "model.layers.1.self_attn.q_proj.weight"
        d = 16
        w = sd[k].clone()
        w[0:d], w[d:2 * d] = sd[k][d:2 * d].clone(), sd[k][0:d].clone()
        sd[k] = w
        save_file(sd, f, metadata={"format": "pt"})
        with self.assertRaises(AssertionError):
            L.assert_same_model(self, src, out)
        L.assert_logits_differ(self, src, out)

    def test_swapped_tp_ranks_fail(self):
        """The two TP rank files of a Megatron checkpoint swapped: converted back, the consumer check fails."""
        src = L.make_hf("qwen2-bias-tied", self.path("src"))
        meg = convert(src, self.path("meg"), "--to", "megatron", "--tp", "2")
        rel = os.path.join(meg, "release")
        a, b = os.path.join(rel, "mp_rank_00"), os.path.join(rel, "mp_rank_01")
        os.rename(a, a + ".x")
        os.rename(b, a)
        os.rename(a + ".x", b)
        back = convert(meg, self.path("back"), "--to", "hf")
        L.assert_logits_differ(self, src, back)


if __name__ == "__main__":
    L.main()
