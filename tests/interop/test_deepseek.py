"""DeepSeek (multi-latent attention) HF <-> Megatron-Core, checked by transformers 5.24 and Megatron-Core 0.16.1.

Sources are transformers save_pretrained checkpoints of small configs that keep the real key sets:
  - DeepSeek-V3-style: MLA with q compression (q_a_proj / q_a_layernorm / q_b_proj, kv_a_proj_with_mqa,
    kv_a_layernorm, kv_b_proj), a dense first layer (first_k_dense_replace 1), 8 routed experts with a
    shared expert, the sigmoid router with e_score_correction_bias and group-limited top-2 (2 groups,
    1 chosen), routed_scaling_factor 2.5, and one MTP layer. transformers does not model MTP layers (it
    ignores them at load), so the MTP tensors are added to the saved checkpoint in the released
    DeepSeek-V3 layout (model.layers.<num_hidden_layers>.{embed_tokens, enorm, hnorm, eh_proj,
    shared_head.norm, shared_head.head} beside a whole MoE decoder layer);
  - DeepSeek-V2-Lite-style: no q compression (q_proj), softmax greedy routing without renormalisation.
ckhost writes them as legacy rank files (TP2 x PP2 x EP2 x ETP1, local spec) and torch_dist; Megatron-Core
builds the model from the written args (MLATransformerConfig, the MTP block for the V3 model), loads the
files with load_state_dict(strict=True) per rank or dist_checkpointing.load(strict=RAISE_ALL), and its
forward gives transformers' logits (max |diff| 7.8e-7 V3, 4.8e-7 V2-Lite). For the V3 model that forward
runs Megatron-Core's MTP block too (mcore_lib.forward_logits(mtp=True)), and its MTP depth-1 logits equal
an independent torch reference from the HF tensors (mtp_logits: transformers' final-normed hidden states
h, eh_proj(cat[enorm(embed(x[i+1])), hnorm(h[i])]), transformers' own DeepseekV3DecoderLayer loaded from
model.layers.3.*, shared_head.norm, shared_head.head) at every position but the last, which has no next
token (max |diff| 7.2e-7, legacy and torch_dist). Converted back to HF every tensor is bit-identical,
MTP included. Negative twins: two experts swapped inside one EP rank's file change Megatron's logits
(0.74); the MTP layer's eh_proj input halves swapped (2.1) or its enorm and hnorm swapped (0.24) change
its MTP logits, and leave the main head's as they are; a routing that Megatron-Core cannot reproduce is
refused before anything is written.

Run: tests/interop/run_interop.sh tests/interop/test_deepseek.py --ckhost=build/bin/ckhost
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402

import interop_lib as L  # noqa: E402
import mcore_lib as M  # noqa: E402

TOL = M.LOGITS_ATOL
LOCAL = ("--megatron-spec", "local")

CONFIGS = {
    "v3": ("DeepseekV3Config", dict(hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=3,
                                    num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8, n_shared_experts=1,
                                    num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1,
                                    q_lora_rank=48, kv_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16,
                                    v_head_dim=16, vocab_size=250, max_position_embeddings=128, rope_scaling=None,
                                    routed_scaling_factor=2.5, num_nextn_predict_layers=1)),
    "v2lite": ("DeepseekV2Config", dict(hidden_size=64, intermediate_size=96, moe_intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=4, num_key_value_heads=4, n_routed_experts=4, n_shared_experts=2,
                                        num_experts_per_tok=2, first_k_dense_replace=1, q_lora_rank=None,
                                        kv_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16,
                                        vocab_size=250, max_position_embeddings=128, topk_method="greedy",
                                        routed_scaling_factor=1.0)),
}


def save_random(cfg, out, seed):
    """transformers' model of `cfg` with random weights and a random e_score_correction_bias, saved to `out`
    (also used by test_glm.py and test_minimax.py)."""
    transformers = L._quiet_transformers()
    torch.manual_seed(seed)
    m = transformers.AutoModelForCausalLM.from_config(cfg)
    L.randomize_(m, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for n, b in m.named_buffers():
            if n.endswith("e_score_correction_bias"):  # a buffer: randomize_ leaves it at 0
                b.copy_(0.1 * torch.randn(b.shape, generator=g))
    m.save_pretrained(out)


def edited_copy(lg, dst, edit):
    """A copy of the legacy rank files `lg` at `dst` where edit(model state dict) changed every rank file
    in place."""
    shutil.copytree(lg, dst)
    for dirpath, _, files in os.walk(os.path.join(dst, "release")):
        if "model_optim_rng.pt" not in files:
            continue
        p = os.path.join(dirpath, "model_optim_rng.pt")
        sd = torch.load(p, weights_only=False)
        edit(sd["model"])
        torch.save(sd, p)
    return dst


def swapped_experts_copy(lg, sw):
    """A copy of the legacy rank files `lg` at `sw` with local experts 0 <-> 1 of every decoder MoE layer
    swapped in every rank file, the router left as it is."""
    def edit(mm):
        for a in [k for k in mm if k.startswith("decoder.layers.") and ".local_experts.0." in k]:
            b = a.replace("local_experts.0.", "local_experts.1.")
            mm[a], mm[b] = mm[b], mm[a]
    return edited_copy(lg, sw, edit)


def swapped_eh_proj_copy(lg, dst):
    """A copy of the legacy rank files `lg` at `dst` with the two input halves of the MTP layer's eh_proj
    swapped (columns [0, h) <-> [h, 2h) of each TP rank's rows): the embedding's half then acts on
    hnorm(h) and the other way round, the mistake of a converter that gets the concatenation order wrong."""
    def edit(mm):
        for k in [k for k in mm if k.startswith("mtp.layers.") and k.endswith(".eh_proj.weight")]:
            w = mm[k]
            h = w.shape[1] // 2
            mm[k] = torch.cat([w[:, h:], w[:, :h]], 1).contiguous()
    return edited_copy(lg, dst, edit)


def swapped_mtp_norms_copy(lg, dst):
    """A copy of the legacy rank files `lg` at `dst` with the MTP layer's enorm and hnorm weights swapped."""
    def edit(mm):
        for k in [k for k in mm if k.startswith("mtp.layers.") and k.endswith(".enorm.weight")]:
            j = k.replace(".enorm.", ".hnorm.")
            mm[k], mm[j] = mm[j], mm[k]
    return edited_copy(lg, dst, edit)


def make(fam, out, seed=0, mtp=True):
    transformers = L._quiet_transformers()
    cls, kw = CONFIGS[fam]
    cfg = getattr(transformers, cls)(**kw)
    save_random(cfg, out, seed)
    if fam == "v3" and mtp:
        add_mtp_layer(out, cfg, seed + 2)
    return out


def add_mtp_layer(d, cfg, seed):
    """The released checkpoints' MTP layer k = 0 as model.layers.<num_hidden_layers>.*: a whole MoE decoder
    layer (the names of transformers' last layer) plus enorm, hnorm, eh_proj, shared_head.norm, and copies
    of the embedding and the LM head; written as a second shard listed in the index."""
    src = L.safe_open_all(d)
    last, n = cfg.num_hidden_layers - 1, cfg.num_hidden_layers
    g = torch.Generator().manual_seed(seed)
    t = {}
    for k, v in src.items():
        pre = "model.layers.%d." % last
        if k.startswith(pre):
            r = torch.randn(v.shape, generator=g, dtype=torch.float32)
            t["model.layers.%d.%s" % (n, k[len(pre):])] = (1.0 + 0.1 * r if k.endswith("norm.weight") else 0.05 * r).to(v.dtype)
    h = cfg.hidden_size
    p = "model.layers.%d." % n
    t[p + "embed_tokens.weight"] = src["model.embed_tokens.weight"].clone()
    t[p + "shared_head.head.weight"] = src["lm_head.weight"].clone()
    for name, shape in (("enorm.weight", [h]), ("hnorm.weight", [h]), ("shared_head.norm.weight", [h])):
        t[p + name] = 1.0 + 0.1 * torch.randn(shape, generator=g)
    t[p + "eh_proj.weight"] = 0.05 * torch.randn([h, 2 * h], generator=g)
    first = os.path.join(d, "model.safetensors")
    os.rename(first, os.path.join(d, "model-00001-of-00002.safetensors"))
    save_file(t, os.path.join(d, "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    wm = {k: "model-00001-of-00002.safetensors" for k in src}
    wm.update({k: "model-00002-of-00002.safetensors" for k in t})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {}, "weight_map": wm}, fh)


def logits(d):
    transformers = L._quiet_transformers()
    m = transformers.AutoModelForCausalLM.from_pretrained(d, local_files_only=True, dtype=torch.float32,
                                                          attn_implementation="eager", experts_implementation="eager")
    m.eval()
    with torch.no_grad():
        return m(torch.tensor([L.IDS])).logits[0]


def mtp_logits(d, ids=L.IDS):
    """The logits of MTP depth 1 (DeepSeek-V3 technical report, section 2.2; the layout of its release) at
    positions 0 .. len(ids) - 2, computed in torch from the HF source `d` independently of Megatron: with h
    the main model's final hidden states (after model.norm) and e_i = embed(x_{i+1}),
      z = eh_proj(cat[enorm(e), hnorm(h)]), y = decoder layer <n>(z),
      logits = shared_head.head(shared_head.norm(y)).
    Megatron-Core 0.16.1 computes the same: its decoder block applies final_layernorm (in the stage with
    the last decoder layer when MTP is on) before GPTModel._postprocess hands the hidden states to the
    MTP block; MultiTokenPredictionLayer._concat_embeddings concatenates (enorm(embedding), hnorm(hidden))
    in that order before eh_proj; its final_layernorm is shared_head.norm; the MTP logits come from the
    model's own output_layer (and its embedding), of which the MTP layer's copies are exact duplicates.
    The decoder layer is transformers' own (DeepseekV3DecoderLayer / Glm4MoeDecoderLayer, eager attention
    and experts) with transformers' rotary embedding and causal mask: the layer n of the same model class
    built with num_hidden_layers = n + 1 and loaded by from_pretrained from model.layers.<n>.* (its MTP
    tensors, which the n-layer model ignores; nothing of layer n may be missing). The last position has no
    next token: Megatron-Core embeds token 0 there (roll_tensor fills the rolled-out slot with 0), so it
    is left out."""
    transformers = L._quiet_transformers()
    from transformers.masking_utils import create_causal_mask
    kw = dict(local_files_only=True, dtype=torch.float32, attn_implementation="eager", experts_implementation="eager")
    main = transformers.AutoModelForCausalLM.from_pretrained(d, **kw).eval()
    cfg = main.config
    n = cfg.num_hidden_layers
    ext, info = transformers.AutoModelForCausalLM.from_pretrained(d, num_hidden_layers=n + 1,
                                                                  output_loading_info=True, **kw)
    ext.eval()
    assert not info["missing_keys"], "model.layers.%d: not loaded: %s" % (n, info["missing_keys"])
    layer = ext.model.layers[n]
    src = L.safe_open_all(d)
    p = "model.layers.%d." % n
    for k, v in layer.state_dict().items():  # what transformers loaded is the source's MTP layer
        if k in ("mlp.experts.gate_up_proj", "mlp.experts.down_proj"):
            continue  # fused by transformers' loader from mlp.experts.<e>.*_proj (compared below)
        assert torch.equal(v, src[p + k]), k
    for i in range(cfg.n_routed_experts):
        ex = p + "mlp.experts.%d." % i
        assert torch.equal(layer.mlp.experts.down_proj[i], src[ex + "down_proj.weight"]), i
        gate_up = torch.cat([src[ex + "gate_proj.weight"], src[ex + "up_proj.weight"]])
        assert torch.equal(layer.mlp.experts.gate_up_proj[i], gate_up), i
    # The MTP layer's own copies of the embedding and the LM head (the model's where a release has none,
    # GLM-4.6); they equal the model's, which is what Megatron-Core uses (its embedding and output_layer).
    emb = src.get(p + "embed_tokens.weight", src["model.embed_tokens.weight"])
    head = src.get(p + "shared_head.head.weight", src["lm_head.weight"])
    assert torch.equal(emb, src["model.embed_tokens.weight"]) and torch.equal(head, src["lm_head.weight"])

    def rms(name):
        m = type(main.model.norm)(cfg.hidden_size, eps=cfg.rms_norm_eps)
        with torch.no_grad():
            m.weight.copy_(src[p + name])
        return m

    x = torch.tensor([ids])
    s = len(ids) - 1
    with torch.no_grad():
        h = main.model(x).last_hidden_state  # after model.norm: it is what lm_head is given
        assert torch.equal(main.lm_head(h), main(x).logits)
        e = torch.nn.functional.embedding(x[:, 1:], emb)
        z = torch.nn.functional.linear(torch.cat([rms("enorm.weight")(e), rms("hnorm.weight")(h[:, :s])], -1),
                                       src[p + "eh_proj.weight"])
        pos = torch.arange(s)[None]
        mask = create_causal_mask(config=ext.config, inputs_embeds=z, attention_mask=None, cache=None,
                                  position_ids=pos)
        y = layer(z, attention_mask=mask, position_ids=pos, position_embeddings=ext.model.rotary_emb(z, pos))
        return torch.nn.functional.linear(rms("shared_head.norm.weight")(y), head)[0]


class DeepSeek(L.InteropCase):
    def source(self, fam):
        d = self.path("hf-" + fam)
        if not os.path.isdir(d):
            make(fam, d)
        return d

    def assert_match(self, what, rr, ref):
        errs = M.errors(rr)
        self.assertFalse(errs, "%s: the Megatron-Core task raised:\n%s" % (what, "\n".join(errs)))
        r0 = rr[0]
        self.assertIsNone(r0.get("strict_error"), "%s: %s (checkpoint only: %s; model only: %s)" % (
            what, r0.get("strict_error"), r0.get("ckpt_only_keys"), r0.get("model_only_keys")))
        for r in rr:
            self.assertIsNone(r.get("load_error"), "%s: %s" % (what, r.get("load_error")))
            for k in ("model_only_keys", "file_only_keys", "shape_mismatch", "value_mismatch"):
                extra = [x for x in r.get(k, []) if not (k == "model_only_keys" and x in r.get("defaulted_by_megatron", []))]
                self.assertEqual(extra, [], "%s: %s %s" % (what, r.get("file"), k))
        meg = M.first_logits(rr)
        self.assertIsNotNone(meg, what)
        diff, same = M.compare_logits(meg, ref)
        L.report("%s: max |logit diff| %.3g (tol %g)" % (what, diff, TOL))
        self.assertLessEqual(diff, TOL, what)
        self.assertTrue(same, what + ": argmax differs")

    def assert_back_bit_exact(self, src, ckpt, name):
        back = L.convert(ckpt, self.path(name + "-back"), "--to", "hf")
        a, b = L.safe_open_all(src), L.safe_open_all(back)
        self.assertEqual(sorted(a), sorted(b), name)
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), "%s: %s differs after the round trip" % (name, k))
        return back

    def assert_mtp_match(self, what, rr, mtp_ref):
        """Megatron-Core's MTP depth-1 logits in `rr` (a task with mtp=True) equal `mtp_ref` at the positions
        it covers (all but the last). Returns the max |diff|."""
        meg = M.first_mtp_logits(rr)
        self.assertIsNotNone(meg, what + ": no MTP logits")
        diff, same = M.compare_logits(meg[: mtp_ref.shape[0]], mtp_ref)
        L.report("%s: MTP depth-1 logits, max |diff| %.3g (tol %g)" % (what, diff, TOL))
        self.assertLessEqual(diff, TOL, what + ": MTP logits")
        self.assertTrue(same, what + ": MTP argmax differs")
        return diff

    def assert_megatron_pp2_ep2(self, label, name, lg, td, ref, mtp_ref):
        """Megatron-Core at TP2 PP2(2+1) EP2 ETP1 loads the legacy files `lg` and the torch_dist `td`
        (written at TP2 EP2) and gives `ref` (main head) and `mtp_ref` (MTP depth 1, see mtp_logits) in one
        forward with the MTP block. Negative twins: in every rank file local experts 0 <-> 1 of each
        decoder MoE layer swapped (global experts 0/1 and 4/5 of 8), which must move the main logits; the
        MTP layer's eh_proj input halves swapped, and its enorm <-> hnorm swapped, which must move the MTP
        logits."""
        sw = swapped_experts_copy(lg, self.path(name + "-lg-swapped"))
        eh = swapped_eh_proj_copy(lg, self.path(name + "-lg-ehproj"))
        nm = swapped_mtp_norms_copy(lg, self.path(name + "-lg-mtpnorms"))
        rr = M.run_job(self.path("job-" + name), world=4, tp=2, pp=2, ep=2, etp=1, timeout=240, tasks=[
            dict(id="lg", op="load_legacy", ckpt=lg, ids=L.IDS, mtp=True),
            dict(id="td", op="load_dist", ckpt=td, ids=L.IDS, mtp=True, args_override=dict(
                pipeline_model_parallel_size=2, decoder_first_pipeline_num_layers=2, decoder_last_pipeline_num_layers=1)),
            dict(id="sw", op="load_legacy", ckpt=sw, ids=L.IDS),
            dict(id="eh", op="load_legacy", ckpt=eh, ids=L.IDS, mtp=True),
            dict(id="nm", op="load_legacy", ckpt=nm, ids=L.IDS, mtp=True)])
        for tid, what in (("lg", " legacy TP2 PP2(2+1) EP2 ETP1 with MTP"),
                          ("td", " torch_dist (TP2 EP2) loaded at TP2 PP2 EP2 ETP1 with MTP")):
            self.assert_match(label + what, rr[tid], ref)
            self.assert_mtp_match(label + what, rr[tid], mtp_ref)
        self.assertFalse(M.errors(rr["sw"]))
        diff, _ = M.compare_logits(M.first_logits(rr["sw"]), ref)
        L.report(label + " legacy with experts 0/1 and 4/5 of each MoE layer swapped: max |logit diff| %.3g" % diff)
        self.assertGreater(diff, 100 * TOL, "two swapped experts did not change Megatron's logits")
        for tid, what in (("eh", "eh_proj input halves swapped"), ("nm", "enorm <-> hnorm swapped")):
            self.assertFalse(M.errors(rr[tid]), M.errors(rr[tid]))
            main, _ = M.compare_logits(M.first_logits(rr[tid]), ref)
            self.assertLessEqual(main, TOL, what + ": the main head changed")
            diff, _ = M.compare_logits(M.first_mtp_logits(rr[tid])[: mtp_ref.shape[0]], mtp_ref)
            L.report("%s legacy with the MTP layer's %s: MTP max |logit diff| %.3g" % (label, what, diff))
            self.assertGreater(diff, 100 * TOL, what + " did not change Megatron's MTP logits")

    def test_v3_megatron(self):
        src = self.source("v3")
        ref = logits(src)
        lg = L.convert(src, self.path("v3-lg"), "--to", "megatron", "--tp", "2", "--pp", "2", "--pp-layers", "2,1",
                       "--ep", "2", "--etp", "1", *LOCAL)
        td = L.convert(src, self.path("v3-td"), "--to", "torch-dist", "--tp", "2", "--ep", "2", "--etp", "1", *LOCAL)
        # The MTP layer and a copy of the embedding sit on the last stage; experts numbered per EP rank.
        f = torch.load(os.path.join(lg, "release", "mp_rank_01_001_001", "model_optim_rng.pt"), weights_only=False)
        m = f["model"]
        hf = L.safe_open_all(src)
        self.assertIn("embedding.word_embeddings.weight", m)
        self.assertTrue(torch.equal(m["mtp.layers.0.transformer_layer.mlp.experts.local_experts.0.linear_fc2.weight"],
                                    hf["model.layers.3.mlp.experts.4.down_proj.weight"]))
        self.assertTrue(torch.equal(m["mtp.layers.0.eh_proj.weight"], hf["model.layers.3.eh_proj.weight"][32:]))
        # Local spec: the down projections are split by rows over TP.
        self.assertTrue(torch.equal(m["decoder.layers.0.self_attention.linear_kv_down_proj.weight"],
                                    hf["model.layers.2.self_attn.kv_a_proj_with_mqa.weight"][20:]))
        self.assertEqual(f["args"].mtp_num_layers, 1)
        self.assertTrue(f["args"].moe_router_enable_expert_bias)
        self.assert_megatron_pp2_ep2("DeepSeek-V3-style", "v3", lg, td, ref, mtp_logits(src))
        back = self.assert_back_bit_exact(src, lg, "v3-lg")
        self.assert_back_bit_exact(src, td, "v3-td")
        self.assertTrue(torch.equal(logits(back), ref))
        # Direct resplit Megatron -> Megatron, then back: still bit-exact.
        rs = L.convert(lg, self.path("v3-rs"), "--to", "megatron", "--tp", "1", "--ep", "4")
        self.assert_back_bit_exact(src, rs, "v3-rs")

    def test_v2lite_megatron(self):
        src = self.source("v2lite")
        ref = logits(src)
        lg = L.convert(src, self.path("v2-lg"), "--to", "megatron", "--tp", "2", "--ep", "2", "--etp", "1", *LOCAL)
        td = L.convert(src, self.path("v2-td"), "--to", "torch-dist", *LOCAL)
        rr = M.run_job(self.path("job-v2"), world=2, tp=2, pp=1, ep=2, etp=1, tasks=[
            dict(id="lg", op="load_legacy", ckpt=lg, ids=L.IDS),
            dict(id="td", op="load_dist", ckpt=td, ids=L.IDS)])
        self.assert_match("DeepSeek-V2-Lite-style legacy TP2 EP2 ETP1", rr["lg"], ref)
        self.assert_match("DeepSeek-V2-Lite-style torch_dist at TP2 EP2 ETP1", rr["td"], ref)
        back = self.assert_back_bit_exact(src, lg, "v2-lg")
        self.assertTrue(torch.equal(logits(back), ref))

    def test_refusals(self):
        src = self.source("v3")
        # Routing Megatron-Core scores differently (top-4 of 4 groups, 1 chosen: Megatron sums the top 4).
        bad = self.path("v3-badgroups")
        shutil.copytree(src, bad)
        with open(os.path.join(bad, "config.json")) as fh:
            cfg = json.load(fh)
        cfg.update(n_group=4, topk_group=1, num_experts_per_tok=4)
        with open(os.path.join(bad, "config.json"), "w") as fh:
            json.dump(cfg, fh)
        L.assert_refused(self, bad, self.path("out-badgroups"), "--to", "megatron", needle="route differently")
        # An MTP layer with a tensor missing is refused by name.
        part = self.path("v3-mtp-partial")
        shutil.copytree(src, part)
        from safetensors.torch import load_file
        f2 = os.path.join(part, "model-00002-of-00002.safetensors")
        t = load_file(f2)
        del t["model.layers.3.hnorm.weight"]
        save_file(t, f2, metadata={"format": "pt"})
        with open(os.path.join(part, "model.safetensors.index.json")) as fh:
            idx = json.load(fh)
        del idx["weight_map"]["model.layers.3.hnorm.weight"]
        with open(os.path.join(part, "model.safetensors.index.json"), "w") as fh:
            json.dump(idx, fh)
        L.assert_refused(self, part, self.path("out-partial"), "--to", "megatron", needle="model.layers.3.hnorm.weight")
        # Legacy Megatron names have no MLA.
        L.assert_refused(self, src, self.path("out-legacy"), "--to", "megatron", "--megatron-spec", "legacy",
                         needle="multi-latent attention")


if __name__ == "__main__":
    L.main()
