"""MiniMax-M2 (minimax_m2): the HF tensor list and completeness check, HF -> HF bit-exact; HF ->
Megatron-Core refused.

The source is a transformers 5.24 save_pretrained checkpoint of a small MiniMaxM2Config with the real
key set: block_sparse_moe.gate, block_sparse_moe.e_score_correction_bias, block_sparse_moe.experts.<e>.
w1 (gate) / w2 (down) / w3 (up), self_attn.q_norm / k_norm and partial rotary (rotary_dim 8 of head_dim
16). MiniMax-M2's q_norm / k_norm are RMSNorms over all heads at once (weights of num_attention_heads *
head_dim and num_key_value_heads * head_dim, transformers MiniMaxM2Attention), which Megatron-Core 0.16.1's
qk_layernorm (one head_dim-wide norm per head, attention.py) cannot reproduce: the conversion to
Megatron is refused before anything is written, with that reason. transformers 5.24 models no MTP
layers for MiniMax-M2, and none are claimed here.

Run: tests/interop/run_interop.sh tests/interop/test_minimax.py --ckhost=build/bin/ckhost
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import interop_lib as L  # noqa: E402
import test_deepseek as D  # noqa: E402  (transformers logits with eager experts)

MINIMAX = dict(hidden_size=64, intermediate_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
               head_dim=16, num_local_experts=4, num_experts_per_tok=2, vocab_size=250, max_position_embeddings=128,
               rotary_dim=8, bos_token_id=None, eos_token_id=None)


def make(out, seed=0):
    D.save_random(L._quiet_transformers().MiniMaxM2Config(**MINIMAX), out, seed)
    return out


class MiniMax(L.InteropCase):
    def source(self):
        d = self.path("hf-minimax")
        if not os.path.isdir(d):
            make(d)
        return d

    def test_names_and_hf_copy(self):
        src = self.source()
        t = L.safe_open_all(src)
        p = "model.layers.1."
        for n, shape in (("block_sparse_moe.gate.weight", [4, 64]), ("block_sparse_moe.e_score_correction_bias", [4]),
                         ("block_sparse_moe.experts.3.w1.weight", [32, 64]), ("block_sparse_moe.experts.3.w2.weight", [64, 32]),
                         ("block_sparse_moe.experts.3.w3.weight", [32, 64]), ("self_attn.q_norm.weight", [64]),
                         ("self_attn.k_norm.weight", [32])):
            self.assertEqual(list(t[p + n].shape), shape, n)
        ref = D.logits(src)
        out = L.convert(src, self.path("copy"), "--to", "hf")
        back = L.safe_open_all(out)
        self.assertEqual(sorted(t), sorted(back))
        for k in t:
            self.assertTrue(torch.equal(t[k], back[k]), k)
        self.assertTrue(torch.equal(D.logits(out), ref))
        L.report("MiniMax-M2-style HF -> HF: %d tensors bit-identical, transformers logits identical" % len(t))
        # The completeness check knows the expert bias by name.
        part = self.path("hf-minimax-partial")
        shutil.copytree(src, part)
        f = os.path.join(part, "model.safetensors")
        sd = load_file(f)
        del sd["model.layers.1.block_sparse_moe.e_score_correction_bias"]
        save_file(sd, f, metadata={"format": "pt"})
        L.assert_refused(self, part, self.path("out-partial"), "--to", "hf",
                         needle="model.layers.1.block_sparse_moe.e_score_correction_bias")

    def test_megatron_refused(self):
        src = self.source()
        for to in ("megatron", "torch-dist"):
            out = self.path("out-" + to)
            err = L.assert_refused(self, src, out, "--to", to, needle="normalise across all heads")
            self.assertIn("qk_layernorm", err)


if __name__ == "__main__":
    L.main()
