"""MoE families on the HF side (issue 11 groundwork): Mixtral and Qwen3-MoE as transformers 5.24 saves them.

save_pretrained writes per-expert names (Mixtral block_sparse_moe.experts.<e>.w1/w2/w3 and the router
block_sparse_moe.gate; Qwen2-MoE and Qwen3-MoE mlp.experts.<e>.{gate,up,down}_proj and mlp.gate, Qwen2-MoE's
mlp.shared_expert.* and mlp.shared_expert_gate, with dense layers from
mlp_only_layers / decoder_sparse_step), although the model fuses experts in memory. The Llama plugin
checks every expert tensor against config.json: resharded and cast outputs give transformers' logits
(eager experts) and two swapped experts do not, a missing expert is refused by name, `ckhost synth` makes checkpoints transformers
loads with no missing or unexpected key, and the legacy Megatron naming (no MoE there) is refused.
"""
import os
import shutil

import torch
from safetensors.torch import save_file

import interop_lib as L
from interop_lib import convert, run

MOE = {
    "mixtral": ("MixtralConfig", dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2, vocab_size=250,
                                      max_position_embeddings=128, rope_theta=1000000.0, sliding_window=None)),
    "qwen2_moe": ("Qwen2MoeConfig", dict(hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                                         shared_expert_intermediate_size=48, num_hidden_layers=3,
                                         num_attention_heads=4, num_key_value_heads=2, num_experts=4,
                                         num_experts_per_tok=2, mlp_only_layers=[2], vocab_size=250,
                                         max_position_embeddings=128, norm_topk_prob=False,
                                         use_sliding_window=False)),
    "qwen3_moe": ("Qwen3MoeConfig", dict(hidden_size=64, intermediate_size=96, moe_intermediate_size=32,
                                         num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
                                         num_experts=4, num_experts_per_tok=2, mlp_only_layers=[1], vocab_size=250,
                                         max_position_embeddings=128, norm_topk_prob=True)),
}


def make(family, out, seed=0):
    transformers = L._quiet_transformers()
    cls, kw = MOE[family]
    cfg = getattr(transformers, cls)(**kw)
    torch.manual_seed(seed)
    m = transformers.AutoModelForCausalLM.from_config(cfg)
    L.randomize_(m, seed)
    m.save_pretrained(out)
    return out


def load(d):
    transformers = L._quiet_transformers()
    m = transformers.AutoModelForCausalLM.from_pretrained(d, local_files_only=True, dtype=torch.float32,
                                                          attn_implementation="eager", experts_implementation="eager")
    m.eval()
    return m


def logits(d):
    with torch.no_grad():
        return load(d)(torch.tensor([L.IDS])).logits[0]


class MoeHf(L.InteropCase):
    def test_families(self):
        for fam in MOE:
            src = make(fam, self.path(fam))
            ref = logits(src)
            sd = L.safe_open_all(src)
            experts = [k for k in sd if ".experts." in k]
            self.assertGreater(len(experts), 12, fam)
            # Reshard: every tensor checked against config.json, logits bit-identical.
            out = convert(src, self.path(fam + "-reshard"), "--to", "hf", "--max-shard-size", "60KB")
            got = L.safe_open_all(out)
            self.assertEqual(sorted(got), sorted(sd))
            for k in sd:
                self.assertTrue(torch.equal(got[k], sd[k]), k)
            self.assertTrue(torch.equal(logits(out), ref), fam)
            # Negative twin: the same check fails when two experts of one layer trade places.
            swapped = self.path(fam + "-swapped")
            shutil.copytree(src, swapped)
            e0 = sorted(k for k in experts if ".experts.0." in k and k.startswith("model.layers.0."))
            sw = dict(sd)
            for k in e0:
                k1 = k.replace(".experts.0.", ".experts.1.")
                sw[k], sw[k1] = sd[k1], sd[k]
            for f in os.listdir(swapped):
                if f.endswith(".safetensors") or f.endswith(".index.json"):
                    os.remove(os.path.join(swapped, f))
            save_file(sw, os.path.join(swapped, "model.safetensors"), metadata={"format": "pt"})
            self.assertFalse(torch.equal(logits(swapped), ref), fam + ": swapped experts gave the same logits")
            # Cast: transformers' own .to(bfloat16), tensor by tensor.
            bf = convert(src, self.path(fam + "-bf16"), "--to", "hf", "--dtype", "bf16")
            gb = L.safe_open_all(bf)
            for k in sd:
                self.assertTrue(torch.equal(gb[k], sd[k].to(torch.bfloat16)), k)
            # A missing expert is refused by name, with no output.
            victim = sorted(experts)[5]
            broken = self.path(fam + "-broken")
            os.makedirs(broken)
            for f in os.listdir(src):
                if not f.endswith(".safetensors"):
                    shutil.copy(os.path.join(src, f), broken)
            save_file({k: v for k, v in sd.items() if k != victim}, os.path.join(broken, "model.safetensors"),
                      metadata={"format": "pt"})
            p = run("convert", broken, self.path(fam + "-x"), "--to", "hf", "--progress", "none", check=False)
            self.assertEqual(p.returncode, 1, p.stdout)
            self.assertIn(victim, p.stderr)
            self.assertIn("missing", p.stderr)
            self.assertFalse(os.path.exists(self.path(fam + "-x")))
            # The legacy (pre-Core) Megatron naming has no MoE layers here: refused with the reason
            # (Megatron-Core layouts are test_moe_megatron.py's).
            p = run("convert", src, self.path(fam + "-mg"), "--to", "megatron", "--megatron-spec", "legacy",
                    "--progress", "none", check=False)
            self.assertEqual(p.returncode, 1)
            self.assertIn("SwitchMLP is not supported", p.stderr)
            self.assertFalse(os.path.exists(self.path(fam + "-mg")))
            # synth from the config: transformers loads it with no missing or unexpected key.
            syn = self.path(fam + "-synth")
            run("synth", "--model", "llama", "--config", os.path.join(src, "config.json"), syn, "--progress", "none")
            transformers = L._quiet_transformers()
            _, info = transformers.AutoModelForCausalLM.from_pretrained(syn, local_files_only=True,
                                                                        output_loading_info=True)
            self.assertEqual((info["missing_keys"], info["unexpected_keys"]), ([], []), info) if isinstance(
                info["missing_keys"], list) else self.assertFalse(info["missing_keys"] or info["unexpected_keys"], info)
            L.report(f"MoE HF {fam}: {len(experts)} expert tensors checked, reshard logits bit-identical, "
                     f"missing {victim} refused, synth loads cleanly")


if __name__ == "__main__":
    L.main()
