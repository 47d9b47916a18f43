"""GLM-4.5 (glm4_moe) HF <-> Megatron-Core, checked by transformers 5.24 and Megatron-Core 0.16.1; GLM-5
(glm_moe_dsa) refused.

The source is a transformers save_pretrained checkpoint of a small Glm4MoeConfig that keeps the real key
set: grouped-query attention (4 heads, 2 key/value groups, head_dim 32 so q is wider than hidden) with
q/k/v biases (attention_bias) and per-head q/k norms (use_qk_norm), partial rotary (partial_rotary_factor
0.5: transformers rotates the first half of each head by rotate_half, Megatron-Core's rotary_percent 0.5
with rotary_interleaved false does the same), a dense first layer (first_k_dense_replace 1), 8 routed
experts with a shared expert, the sigmoid router with e_score_correction_bias and group-limited top-2
(2 groups, 1 chosen), routed_scaling_factor 2.5, and one MTP layer. transformers does not model MTP
layers (Glm4MoePreTrainedModel ignores model.layers.<n>.* at load), so the MTP tensors are added in the
released layout (model.layers.<num_hidden_layers>.{enorm, hnorm, eh_proj, shared_head.norm, embed_tokens,
shared_head.head} beside a whole MoE decoder layer), as for DeepSeek-V3.
ckhost writes legacy rank files (TP2 x PP2 x EP2 x ETP1, local spec) and torch_dist; Megatron-Core builds
the model from the written args (with the MTP block), loads them strictly, and its forward gives
transformers' logits (max |diff| 7.2e-7). GLM-4.5's MTP layer has DeepSeek-V3's tensors and is taken to have
its forward (transformers' glm4_moe has no MTP forward either; Megatron-Core runs both with the same
MultiTokenPredictionLayer), so the same forward runs Megatron-Core's MTP block and its MTP depth-1 logits
equal test_deepseek.mtp_logits, the torch reference with transformers' own Glm4MoeDecoderLayer loaded from
model.layers.3.* (max |diff| 6.0e-7, legacy and torch_dist). Converted back to HF every tensor is
bit-identical. Negative twins: two experts swapped in the rank files change Megatron's logits (0.35); the
MTP layer's eh_proj input halves swapped (2.0) or its enorm and hnorm swapped (0.21) change its MTP
logits; routing Megatron-Core scores differently and GLM-5's sparse-attention indexer are refused before
anything is written.

Run: tests/interop/run_interop.sh tests/interop/test_glm.py --ckhost=build/bin/ckhost
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import interop_lib as L  # noqa: E402
import test_deepseek as D  # noqa: E402  (the released MTP layout and the shared assertions)

LOCAL = ("--megatron-spec", "local")

GLM = dict(hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=3, num_attention_heads=4,
           num_key_value_heads=2, head_dim=32, n_routed_experts=8, n_shared_experts=1, num_experts_per_tok=2, n_group=2,
           topk_group=1, first_k_dense_replace=1, vocab_size=250, max_position_embeddings=128, attention_bias=True,
           use_qk_norm=True, routed_scaling_factor=2.5, num_nextn_predict_layers=1,
           rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.5))


def make(out, seed=0):
    cfg = L._quiet_transformers().Glm4MoeConfig(**GLM)
    D.save_random(cfg, out, seed)
    D.add_mtp_layer(out, cfg, seed + 2)
    return out


def set_config(src, dst, **kw):
    shutil.copytree(src, dst)
    with open(os.path.join(dst, "config.json")) as fh:
        cfg = json.load(fh)
    cfg.update(kw)
    with open(os.path.join(dst, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    return dst


class Glm(L.InteropCase):
    assert_match = D.DeepSeek.assert_match
    assert_back_bit_exact = D.DeepSeek.assert_back_bit_exact
    assert_megatron_pp2_ep2 = D.DeepSeek.assert_megatron_pp2_ep2
    assert_mtp_match = D.DeepSeek.assert_mtp_match

    def glm_source(self):
        d = self.path("hf-glm")
        if not os.path.isdir(d):
            make(d)
        return d

    def test_glm45_megatron(self):
        src = self.glm_source()
        ref = D.logits(src)
        lg = L.convert(src, self.path("glm-lg"), "--to", "megatron", "--tp", "2", "--pp", "2", "--pp-layers", "2,1",
                       "--ep", "2", "--etp", "1", *LOCAL)
        td = L.convert(src, self.path("glm-td"), "--to", "torch-dist", "--tp", "2", "--ep", "2", "--etp", "1", *LOCAL)
        f = torch.load(os.path.join(lg, "release", "mp_rank_00_000_000", "model_optim_rng.pt"), weights_only=False)
        a, m = f["args"], f["model"]
        self.assertEqual((a.num_query_groups, a.kv_channels, a.rotary_percent, a.rotary_interleaved), (2, 32, 0.5, False))
        self.assertTrue(a.add_qkv_bias and a.qk_layernorm and a.moe_router_enable_expert_bias)
        self.assertFalse(a.multi_latent_attention)
        self.assertEqual((a.moe_router_score_function, a.moe_router_num_groups, a.moe_router_group_topk), ("sigmoid", 2, 1))
        self.assertEqual(a.moe_router_topk_scaling_factor, 2.5)
        self.assertEqual(a.mtp_num_layers, 1)
        hf = L.safe_open_all(src)
        # TP rank 0 holds query group 0: [q heads 0-1; k_0; v_0] (32 rows each).
        qkv = m["decoder.layers.0.self_attention.linear_qkv.weight"]
        q, k, v = (hf["model.layers.0.self_attn.%s_proj.weight" % x] for x in "qkv")
        self.assertTrue(torch.equal(qkv, torch.cat([q[:64], k[:32], v[:32]])))
        self.assertTrue(torch.equal(m["decoder.layers.0.self_attention.q_layernorm.weight"],
                                    hf["model.layers.0.self_attn.q_norm.weight"]))
        self.assert_megatron_pp2_ep2("GLM-4.5-style", "glm", lg, td, ref, D.mtp_logits(src))
        back = self.assert_back_bit_exact(src, lg, "glm-lg")
        self.assert_back_bit_exact(src, td, "glm-td")
        self.assertTrue(torch.equal(D.logits(back), ref))
        # Megatron -> HF from the args alone (the kept HF side files removed): the same tensors and logits.
        bare = self.path("glm-lg-bare")
        shutil.copytree(lg, bare)
        shutil.rmtree(os.path.join(bare, "hf"))
        back = self.assert_back_bit_exact(src, bare, "glm-bare")
        with open(os.path.join(back, "config.json")) as fh:
            self.assertEqual(json.load(fh)["model_type"], "glm4_moe")
        self.assertTrue(torch.equal(D.logits(back), ref))

    def test_glm46_mtp_layer_without_copies(self):
        """GLM-4.6's release has no MTP copies of the embedding and the LM head (vLLM reports its
        model.layers.92.shared_head.head.weight missing): the check and the conversion accept that."""
        src = self.path("hf-glm46")
        shutil.copytree(self.glm_source(), src)
        f = os.path.join(src, "model-00002-of-00002.safetensors")
        t = load_file(f)
        idx_path = os.path.join(src, "model.safetensors.index.json")
        with open(idx_path) as fh:
            idx = json.load(fh)
        for k in ("model.layers.3.embed_tokens.weight", "model.layers.3.shared_head.head.weight"):
            del t[k], idx["weight_map"][k]
        save_file(t, f, metadata={"format": "pt"})
        with open(idx_path, "w") as fh:
            json.dump(idx, fh)
        out = L.convert(src, self.path("glm46-hf"), "--to", "hf")
        self.assertEqual(sorted(L.safe_open_all(out)), sorted(L.safe_open_all(src)))
        lg = L.convert(src, self.path("glm46-lg"), "--to", "megatron", "--tp", "2", *LOCAL)
        f0 = torch.load(os.path.join(lg, "release", "mp_rank_00", "model_optim_rng.pt"), weights_only=False)
        self.assertIn("mtp.layers.0.eh_proj.weight", f0["model"])

    def test_glm_refusals(self):
        src = self.glm_source()
        # Megatron-Core sums the top 4 of a group here (topk / group_topk), GLM-4.5 the top 2.
        bad = set_config(src, self.path("glm-badgroups"), n_group=4, topk_group=1, num_experts_per_tok=4)
        L.assert_refused(self, bad, self.path("out-badgroups"), "--to", "megatron", needle="route differently")
        # Sigmoid top-k without renormalisation: Megatron-Core always renormalises.
        bad = set_config(src, self.path("glm-nonorm"), norm_topk_prob=False)
        L.assert_refused(self, bad, self.path("out-nonorm"), "--to", "megatron", needle="norm_topk_prob false")
        # Legacy Megatron names have no MoE layers.
        L.assert_refused(self, src, self.path("out-legacy"), "--to", "megatron", "--megatron-spec", "legacy",
                         needle="no MoE layers")
        # GLM-5 (glm_moe_dsa): the DSA indexer is refused by name, before anything is written.
        g5 = set_config(src, self.path("glm5"), model_type="glm_moe_dsa", architectures=["GlmMoeDsaForCausalLM"])
        err = L.assert_refused(self, g5, self.path("out-glm5"), "--to", "megatron", needle="glm_moe_dsa")
        self.assertIn("indexer", err)


if __name__ == "__main__":
    L.main()
