"""InternVL 2.5 / 3 (InternViT + Qwen2 or Llama decoder): HF <-> InternVL custom names <-> MindSpeed-MM,
checked by transformers 5.24.

Sources are transformers `InternVLForConditionalGeneration` save_pretrained checkpoints of two small
configs that keep the real key sets, with random weights in every tensor:
  - qwen2: Qwen2 text (q/k/v biases), untied lm_head; vision LayerNorm (weights and biases) with
    q/k/v biases, 2 heads;
  - llama: Llama text, tied embeddings, odd vocabulary (301: a TP2 split is uneven, 151 + 150 rows);
    vision RMSNorm, q/k norms (over the full width, as InternViT-6B), no q/k/v biases, 3 heads (a TP2
    split is uneven, 2 + 1 heads).
The logits check is transformers' image+text forward: `pixel_values` [1, 3, 56, 56] passed directly
(16 patches, 4 image tokens after the 0.5 pixel shuffle) and input_ids with `image_seq_length` image tokens.

Checked against transcriptions written in this file from the documented layouts, not from ckhost:
  - HF -> InternVL custom names (OpenGVLab InternVLChatModel: vision_model.*, attn.qkv = [Q; K; V], ls1/ls2,
    mlp1.0/1/3; InternLM2's wqkv grouped per KV head for --internvl-names custom-internlm2) -> HF: the custom
    file holds exactly the transcribed key set and values, back to HF bit-identical, logits identical;
    `ckhost verify` matches the custom file with the source and catches a twin with two ViT heads swapped;
  - HF -> MindSpeed-MM (TP1 PP1, TP2 x PP2 with llm [1,1] and vit [2,0]): an independent reader assembles both
    towers from the rank files (uneven vocabulary and ViT-head splits, per-rank [Q_r; K_r; V_r], per-group
    text qkv, [gate; up] halves) and equals HF bit for bit; placements and uneven shapes; read back by ckhost
    bit-exact with identical logits; the custom checkpoint as source gives the same bytes; MM -> MM resplit;
    MM -> custom names; two ViT heads swapped between rank files are caught;
  - refusals: a custom checkpoint missing a tensor, custom-internlm2 names for a Qwen2 text model.

Run: tests/interop/run_interop.sh tests/interop/test_internvl.py --ckhost=build/bin/ckhost
"""
import json
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import interop_lib as L  # noqa: E402

IMAGE = 290  # image_token_id, below both vocabularies
IMAGE_SIZE, PATCH, DOWNSAMPLE = 56, 14, 0.5
IMAGE_TOKENS = int((IMAGE_SIZE // PATCH) ** 2 * DOWNSAMPLE ** 2)  # image_seq_length: 4
TEXT = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            bos_token_id=1, eos_token_id=2)
VISION = dict(num_hidden_layers=2, image_size=IMAGE_SIZE, patch_size=PATCH)
# name -> (text_config, vision_config, tie_word_embeddings)
CONFIGS = {
    "qwen2": (dict(TEXT, model_type="qwen2", vocab_size=300, tie_word_embeddings=False),
              dict(VISION, hidden_size=32, num_attention_heads=2, intermediate_size=64, norm_type="layer_norm",
                   attention_bias=True, use_qk_norm=False), False),
    "llama": (dict(TEXT, model_type="llama", vocab_size=301, tie_word_embeddings=True),
              dict(VISION, hidden_size=48, num_attention_heads=3, intermediate_size=96, norm_type="rms_norm",
                   attention_bias=False, use_qk_norm=True), True),
}
# InternVL3.5-MoE: a Qwen3-MoE text model (per-head q/k norms, layer 0 with a router and 4 experts, layer 1 dense).
CONFIGS["qwen3moe"] = (dict(TEXT, model_type="qwen3_moe", vocab_size=300, head_dim=16, moe_intermediate_size=24, num_experts=4,
                            num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[1], tie_word_embeddings=False),
                       dict(VISION, hidden_size=32, num_attention_heads=2, intermediate_size=64, norm_type="layer_norm",
                            attention_bias=True, use_qk_norm=False), False)
MM_TP2 = (2, [1, 1], [2, 0])  # tp, llm_pp_layers, vit_pp_layers


def make(fam, out, seed=0):
    transformers = L._quiet_transformers()
    text, vision, tied = CONFIGS[fam]
    cfg = transformers.InternVLConfig(text_config=dict(text), vision_config=dict(vision), image_token_id=IMAGE,
                                      image_seq_length=IMAGE_TOKENS, downsample_ratio=DOWNSAMPLE, tie_word_embeddings=tied)
    torch.manual_seed(seed)
    m = transformers.InternVLForConditionalGeneration(cfg)
    L.randomize_(m, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():  # the ViT's layernorm_before/after are norms too (randomize_ knows them by "norm.weight")
        for name, p in m.named_parameters():
            if name.endswith(("layernorm_before.weight", "layernorm_after.weight")):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
    m.save_pretrained(out)
    return out


def inputs():
    ids = [1, 17] + [IMAGE] * IMAGE_TOKENS + [42, 99, 3, 128, 77, 5]
    g = torch.Generator().manual_seed(7)
    return torch.tensor([ids]), torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g)


def logits(d):
    transformers = L._quiet_transformers()
    m = transformers.InternVLForConditionalGeneration.from_pretrained(d, local_files_only=True, dtype=torch.float32,
                                                                     attn_implementation="eager")
    m.eval()
    ids, pixels = inputs()
    with torch.no_grad():
        return m(input_ids=ids, pixel_values=pixels).logits[0]


def dims(fam):
    text, vision, tied = CONFIGS[fam]
    return dict(heads=text["num_attention_heads"], kv=text["num_key_value_heads"],
                hd=text["hidden_size"] // text["num_attention_heads"], vocab=text["vocab_size"],
                layers=text["num_hidden_layers"], vheads=vision["num_attention_heads"],
                vhd=vision["hidden_size"] // vision["num_attention_heads"], vlayers=vision["num_hidden_layers"],
                ln=vision["norm_type"] == "layer_norm", qkv_bias=vision["attention_bias"], qk_norm=vision["use_qk_norm"],
                text_bias=text["model_type"] == "qwen2", tied=tied)


class Taker:
    """Reads tensors by name and remembers which were read, so a transcription proves it used every one."""

    def __init__(self, sd):
        self.sd, self.used = sd, set()

    def __call__(self, k):
        self.used.add(k)
        return self.sd[k]

    def unused(self):
        return sorted(set(self.sd) - self.used)


# ---- the InternVL custom layout (OpenGVLab InternVLChatModel / InternViT / InternLM2 names), transcribed here
# from HF-transformers tensors (the inverse of transformers' convert_internvl_weights_to_hf.py).

def hf_to_custom(hf, fam, internlm2=False):
    d = dims(fam)
    t = Taker(hf)
    out = {}
    E, C = "vision_tower.embeddings.", "vision_model.embeddings."
    out[C + "class_embedding"] = t(E + "cls_token")
    out[C + "patch_embedding.weight"] = t(E + "patch_embeddings.projection.weight")
    out[C + "patch_embedding.bias"] = t(E + "patch_embeddings.projection.bias")
    out[C + "position_embedding"] = t(E + "position_embeddings")
    norm_parts = ("weight", "bias") if d["ln"] else ("weight",)
    for n in range(d["vlayers"]):
        h, c = "vision_tower.encoder.layer.%d." % n, "vision_model.encoder.layers.%d." % n
        parts = ("weight", "bias") if d["qkv_bias"] else ("weight",)
        for s in parts:
            out[c + "attn.qkv." + s] = torch.cat([t(h + "attention.%s_proj.%s" % (x, s)) for x in "qkv"], 0)
        for s in ("weight", "bias"):
            out[c + "attn.proj." + s] = t(h + "attention.projection_layer." + s)
            out[c + "mlp.fc1." + s] = t(h + "mlp.fc1." + s)
            out[c + "mlp.fc2." + s] = t(h + "mlp.fc2." + s)
        if d["qk_norm"]:
            out[c + "attn.q_norm.weight"] = t(h + "attention.q_norm.weight")
            out[c + "attn.k_norm.weight"] = t(h + "attention.k_norm.weight")
        for s in norm_parts:
            out[c + "norm1." + s] = t(h + "layernorm_before." + s)
            out[c + "norm2." + s] = t(h + "layernorm_after." + s)
        out[c + "ls1"] = t(h + "lambda_1")
        out[c + "ls2"] = t(h + "lambda_2")
    for i, m in (("0", "layer_norm"), ("1", "linear_1"), ("3", "linear_2")):
        for s in ("weight", "bias"):
            out["mlp1.%s.%s" % (i, s)] = t("multi_modal_projector.%s.%s" % (m, s))
    if not internlm2:
        for k in hf:
            if k.startswith("language_model."):
                out[k] = t(k)
    else:
        H, KV, hd, P = d["heads"], d["kv"], d["hd"], d["heads"] // d["kv"]
        M, I = "language_model.model.", "language_model.model."
        out[I + "tok_embeddings.weight"] = t(M + "embed_tokens.weight")
        for n in range(d["layers"]):
            h, c = M + "layers.%d." % n, I + "layers.%d." % n
            q, k, v = (t(h + "self_attn.%s_proj.weight" % x) for x in "qkv")
            D = q.shape[1]  # per KV head: [q heads of the group; k; v]
            out[c + "attention.wqkv.weight"] = torch.cat(
                [q.reshape(KV, P, hd, D), k.reshape(KV, 1, hd, D), v.reshape(KV, 1, hd, D)], 1).reshape(-1, D)
            out[c + "attention.wo.weight"] = t(h + "self_attn.o_proj.weight")
            out[c + "attention_norm.weight"] = t(h + "input_layernorm.weight")
            out[c + "ffn_norm.weight"] = t(h + "post_attention_layernorm.weight")
            out[c + "feed_forward.w1.weight"] = t(h + "mlp.gate_proj.weight")
            out[c + "feed_forward.w3.weight"] = t(h + "mlp.up_proj.weight")
            out[c + "feed_forward.w2.weight"] = t(h + "mlp.down_proj.weight")
        out[I + "norm.weight"] = t(M + "norm.weight")
        if "language_model.lm_head.weight" in hf:
            out["language_model.output.weight"] = t("language_model.lm_head.weight")
    assert not t.unused(), "transcription left out %s" % t.unused()
    return out


# ---- an independent MindSpeed-MM reader (InternVL: MindSpeed-MM's documented names and its
# create_internvl_tp_patterns TP rules, written here, not from ckhost): rank files -> HF-transformers names.

def mm_rank_files(d, tp, pp, vpp=1):
    """{(tp_rank, stage): state dict} of a MindSpeed-MM release directory, stage = v * pp + p for virtual
    chunk v of pipeline rank p (files {model0, model1, ..., checkpoint_version} with VPP); checks the payload."""
    with open(os.path.join(d, "latest_checkpointed_iteration.txt")) as fh:
        assert fh.read().strip() == "release"
    names = sorted(os.listdir(os.path.join(d, "release")))
    want = sorted("mp_rank_%02d" % t + ("_%03d" % p if pp > 1 else "") for t in range(tp) for p in range(pp))
    assert names == want, names
    out = {}
    for t in range(tp):
        for p in range(pp):
            name = "mp_rank_%02d" % t + ("_%03d" % p if pp > 1 else "")
            ck = torch.load(os.path.join(d, "release", name, "model_optim_rng.pt"), weights_only=True)
            chunks = ["model"] if vpp == 1 else ["model%d" % v for v in range(vpp)]
            assert sorted(ck) == sorted(["checkpoint_version"] + chunks), sorted(ck)
            assert ck["checkpoint_version"] == 3.0
            for v, c in enumerate(chunks):
                out[(t, v * pp + p)] = ck[c]
    return out


def uneven(n, tp, r):
    """Rows (or heads) of rank r when n is split over tp ranks, the first n % tp ranks one more."""
    return n // tp + (1 if r < n % tp else 0)


def mm_to_hf(d, fam, tp, llm_pp, vit_pp, vpp=1):
    """HF tensors from a MindSpeed-MM InternVL checkpoint written with these distributions (flat lists, one
    count per virtual stage v * pp + p when vpp > 1)."""
    dm = dims(fam)
    pp = len(llm_pp) // vpp
    files = mm_rank_files(d, tp, pp, vpp)
    towers = (("text_decoder.decoder.layers.", llm_pp), ("image_encoder.encoder.encoder.layers.", vit_pp))
    merged = {}
    for (t, p), sd in sorted(files.items()):
        for k, v in sd.items():
            for prefix, dist in towers:
                if k.startswith(prefix):
                    local, rest = k[len(prefix):].split(".", 1)
                    assert int(local) < dist[p], "%s on stage %d beyond its %d layers" % (k, p, dist[p])
                    k = prefix + str(sum(dist[:p]) + int(local)) + "." + rest
            assert t not in merged.get(k, {}), "%s twice on TP rank %d" % (k, t)
            merged.setdefault(k, {})[t] = v
    used = set()

    def part(k, t):
        used.add(k)
        assert sorted(merged[k]) == list(range(tp)), "%s: TP ranks %s" % (k, sorted(merged[k]))
        return merged[k][t]

    def parts(k):
        return [part(k, t) for t in range(tp)]

    def cat(k, dim):
        return torch.cat(parts(k), dim)

    def rep(k):
        vs = parts(k)
        assert all(torch.equal(vs[0], x) for x in vs), k + " differs across TP ranks"
        return vs[0]

    def vocab(k):
        vs = parts(k)
        assert [x.shape[0] for x in vs] == [uneven(dm["vocab"], tp, r) for r in range(tp)], (k, [x.shape for x in vs])
        return torch.cat(vs, 0)

    def glu(k):
        ps = parts(k)
        h = [x.shape[0] // 2 for x in ps]
        return torch.cat([x[:n] for x, n in zip(ps, h)] + [x[n:] for x, n in zip(ps, h)], 0)

    hf = {}
    vh, vhd = dm["vheads"], dm["vhd"]
    heads_r = [uneven(vh, tp, r) for r in range(tp)]
    norm_parts = ("weight", "bias") if dm["ln"] else ("weight",)
    for n in range(sum(vit_pp)):
        m, h = "image_encoder.encoder.encoder.layers.%d." % n, "vision_tower.encoder.layer.%d." % n
        for a, b in (("input_layernorm", "layernorm_before"), ("pre_mlp_layernorm", "layernorm_after")):
            for s in norm_parts:
                hf[h + b + "." + s] = rep(m + a + "." + s)
        for s in ("weight", "bias") if dm["qkv_bias"] else ("weight",):
            q, k, v = [], [], []  # each rank holds [Q_r; K_r; V_r] of its heads_r heads
            for r, x in enumerate(parts(m + "self_attention.linear_qkv." + s)):
                n_r = heads_r[r] * vhd
                assert x.shape[0] == 3 * n_r, (m, r, x.shape)
                q.append(x[:n_r]), k.append(x[n_r:2 * n_r]), v.append(x[2 * n_r:])
            for nm, xs in (("q", q), ("k", k), ("v", v)):
                hf[h + "attention.%s_proj.%s" % (nm, s)] = torch.cat(xs, 0)
        pw = parts(m + "self_attention.linear_proj.weight")
        assert [x.shape[1] for x in pw] == [n * vhd for n in heads_r], [x.shape for x in pw]
        hf[h + "attention.projection_layer.weight"] = torch.cat(pw, 1)
        hf[h + "attention.projection_layer.bias"] = rep(m + "self_attention.linear_proj.bias")
        if dm["qk_norm"]:
            hf[h + "attention.q_norm.weight"] = rep(m + "self_attention.q_layernorm.weight")
            hf[h + "attention.k_norm.weight"] = rep(m + "self_attention.k_layernorm.weight")
        hf[h + "mlp.fc1.weight"], hf[h + "mlp.fc1.bias"] = cat(m + "mlp.linear_fc1.weight", 0), cat(m + "mlp.linear_fc1.bias", 0)
        hf[h + "mlp.fc2.weight"], hf[h + "mlp.fc2.bias"] = cat(m + "mlp.linear_fc2.weight", 1), rep(m + "mlp.linear_fc2.bias")
        hf[h + "lambda_1"], hf[h + "lambda_2"] = rep(m + "ls1"), rep(m + "ls2")
    E = "image_encoder.encoder.embeddings."
    hf["vision_tower.embeddings.cls_token"] = rep(E + "class_embedding")
    hf["vision_tower.embeddings.patch_embeddings.projection.weight"] = rep(E + "patch_embedding.weight")
    hf["vision_tower.embeddings.patch_embeddings.projection.bias"] = rep(E + "patch_embedding.bias")
    hf["vision_tower.embeddings.position_embeddings"] = rep(E + "position_embedding")
    for a, b in (("norm", "layer_norm"), ("linear_fc1", "linear_1"), ("linear_fc2", "linear_2")):
        for s in ("weight", "bias"):
            hf["multi_modal_projector.%s.%s" % (b, s)] = rep("image_encoder.projector.%s.%s" % (a, s))
    hf["language_model.model.embed_tokens.weight"] = vocab("text_decoder.embedding.word_embeddings.weight")
    H, KV, hd = dm["heads"], dm["kv"], dm["hd"]
    P = H // KV
    for n in range(sum(llm_pp)):
        m, h = "text_decoder.decoder.layers.%d." % n, "language_model.model.layers.%d." % n
        hf[h + "input_layernorm.weight"] = rep(m + "input_layernorm.weight")
        hf[h + "post_attention_layernorm.weight"] = rep(m + "pre_mlp_layernorm.weight")
        for s in ("weight", "bias") if dm["text_bias"] else ("weight",):
            x = cat(m + "self_attention.linear_qkv." + s, 0)
            g = x.reshape(KV, (P + 2) * hd, *x.shape[1:])  # per query group [q_g; k_g; v_g]
            tail = list(x.shape[1:])
            hf[h + "self_attn.q_proj." + s] = g[:, :P * hd].reshape(H * hd, *tail)
            hf[h + "self_attn.k_proj." + s] = g[:, P * hd:(P + 1) * hd].reshape(KV * hd, *tail)
            hf[h + "self_attn.v_proj." + s] = g[:, (P + 1) * hd:].reshape(KV * hd, *tail)
        hf[h + "self_attn.o_proj.weight"] = cat(m + "self_attention.linear_proj.weight", 1)
        fc1 = glu(m + "mlp.linear_fc1.weight")
        k = fc1.shape[0] // 2
        hf[h + "mlp.gate_proj.weight"], hf[h + "mlp.up_proj.weight"] = fc1[:k], fc1[k:]
        hf[h + "mlp.down_proj.weight"] = cat(m + "mlp.linear_fc2.weight", 1)
    hf["language_model.model.norm.weight"] = rep("text_decoder.decoder.final_layernorm.weight")
    out = "text_decoder.output_layer.weight"
    if not dm["tied"]:
        hf["language_model.lm_head.weight"] = vocab(out)
    elif pp > 1:  # tied: the last stage holds a copy of the embedding (Megatron's shared output layer)
        assert torch.equal(vocab(out), hf["language_model.model.embed_tokens.weight"]), "tied output_layer copy differs"
    else:
        assert out not in merged, "tied at PP1, yet an output_layer"
    left = sorted(set(merged) - used)
    assert not left, "the reader did not expect %s" % left
    return hf, files


class Base(L.InteropCase):
    def source(self, fam):
        d = self.path("hf-" + fam)
        if not os.path.isdir(d):
            make(fam, d)
        return d

    def assert_equal_sd(self, got, ref, what):
        self.assertEqual(sorted(got), sorted(ref), what)
        for k in ref:
            self.assertEqual(got[k].dtype, ref[k].dtype, "%s: %s dtype" % (what, k))
            self.assertEqual(list(got[k].shape), list(ref[k].shape), "%s: %s shape" % (what, k))
            self.assertTrue(torch.equal(got[k], ref[k]), "%s: %s differs" % (what, k))

    def same_mm(self, a, b):
        """Two MindSpeed-MM directories hold the same files, every rank file byte for byte; the config.json
        beside them (hf/, written from each source's own config) loads in transformers to the same config."""
        transformers = L._quiet_transformers()
        fa, fb = L.tree_files(a), L.tree_files(b)
        self.assertEqual(fa, fb)
        for f in fa:
            if f == os.path.join("hf", "config.json"):
                ca, cb = (transformers.AutoConfig.from_pretrained(os.path.join(x, "hf")).to_dict() for x in (a, b))
                ca.pop("_name_or_path", None), cb.pop("_name_or_path", None)
                self.assertEqual(ca, cb)
                continue
            with open(os.path.join(a, f), "rb") as x, open(os.path.join(b, f), "rb") as y:
                self.assertEqual(x.read(), y.read(), f)
        return len([f for f in fa if f.endswith(".pt")])


class Custom(Base):
    def check_custom(self, fam, names):
        src = self.source(fam)
        ref = L.safe_open_all(src)
        cu = L.convert(src, self.path("%s-%s" % (fam, names)), "--to", "hf", "--internvl-names", names)
        got = L.safe_open_all(cu)
        want = hf_to_custom(ref, fam, internlm2=names == "custom-internlm2")
        self.assertEqual(sorted(got), sorted(want), "%s: the %s key set" % (fam, names))
        self.assert_equal_sd(got, want, "%s %s" % (fam, names))
        with open(os.path.join(cu, "config.json")) as fh:
            cc = json.load(fh)
        self.assertEqual(cc.get("model_type"), "internvl_chat", cc)
        self.assertIn("vision_config", cc)
        self.assertIn("llm_config", cc)
        back = L.convert(cu, self.path("%s-%s-back" % (fam, names)), "--to", "hf")
        self.assert_equal_sd(L.safe_open_all(back), ref, "%s %s -> HF" % (fam, names))
        la, lb = logits(src), logits(back)
        self.assertTrue(torch.equal(la, lb), "%s %s: logits differ by %g" % (fam, names, (la - lb).abs().max()))
        L.report("internvl %s HF -> %s (%d tensors, exactly the transcribed names and values) -> HF: bit-identical, "
                 "image+text logits identical (max |logit| %.3g)" % (fam, names, len(got), la.abs().max()))
        return src, cu, la

    def test_custom_qwen2(self):
        src, cu, ref = self.check_custom("qwen2", "custom")
        self.assertEqual(L.run("verify", src, cu, check=False).returncode, 0)
        # Negative twin: two ViT heads swapped in layer 0's attn.qkv value rows ([Q; K; V], 2 heads of 16).
        sw = self.path("custom-swapped")
        shutil.copytree(cu, sw)
        f = [os.path.join(sw, x) for x in os.listdir(sw) if x.endswith(".safetensors")]
        self.assertEqual(len(f), 1)
        sd = load_file(f[0])
        W, hd = 32, 16
        for k in ("vision_model.encoder.layers.0.attn.qkv.weight", "vision_model.encoder.layers.0.attn.qkv.bias"):
            t, v0 = sd[k].clone(), 2 * W
            t[v0:v0 + hd], t[v0 + hd:v0 + 2 * hd] = sd[k][v0 + hd:v0 + 2 * hd], sd[k][v0:v0 + hd]
            sd[k] = t
        save_file(sd, f[0], metadata={"format": "pt"})
        p = L.run("verify", src, sw, check=False)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        back = L.convert(sw, self.path("custom-swapped-back"), "--to", "hf")
        diff = (logits(back) - ref).abs().max().item()
        L.report("internvl qwen2: ckhost verify HF vs custom exits 0; a custom twin with two ViT heads' value rows swapped: "
                 "verify exits %d, transformers' logits of it move by %.3g" % (p.returncode, diff))
        self.assertGreater(diff, 0.0)

    def test_custom_llama(self):
        src, cu, _ = self.check_custom("llama", "custom")
        self.assertEqual(L.run("verify", src, cu, check=False).returncode, 0)
        _, cu2, _ = self.check_custom("llama", "custom-internlm2")
        self.assertEqual(L.run("verify", src, cu2, check=False).returncode, 0)

    def test_refusals(self):
        src = self.source("qwen2")
        cu = L.convert(src, self.path("custom"), "--to", "hf", "--internvl-names", "custom")
        part = self.path("custom-partial")
        shutil.copytree(cu, part)
        f = [os.path.join(part, x) for x in os.listdir(part) if x.endswith(".safetensors")][0]
        sd = load_file(f)
        name = "vision_model.encoder.layers.1.attn.qkv.bias"
        del sd[name]
        save_file(sd, f, metadata={"format": "pt"})
        err = L.assert_refused(self, part, self.path("out-partial"), "--to", "hf", needle=name)
        self.assertIn("missing 1 tensor", err)  # one fused tensor missing is one tensor, named once
        self.assertEqual(err.count(name), 1, err)
        L.assert_refused(self, src, self.path("out-internlm2"), "--to", "hf", "--internvl-names", "custom-internlm2",
                         needle="InternLM2 names need a llama language model")
        L.report("internvl refusals: a custom checkpoint missing %s, custom-internlm2 names for a Qwen2 text model" % name)


class MindSpeedMM(Base):
    def assert_mm(self, fam, tp, llm_pp, vit_pp, name):
        src = self.source(fam)
        args = ["--to", "mindspeed-mm", "--tp", str(tp)]
        if len(llm_pp) > 1:
            args += ["--pp", str(len(llm_pp)), "--pp-layers", ",".join(map(str, llm_pp)),
                     "--stack-pp-layers", "1=" + ",".join(map(str, vit_pp))]
        mm = L.convert(src, self.path(name), *args)
        hf, files = mm_to_hf(mm, fam, tp, llm_pp, vit_pp)
        ref = L.safe_open_all(self.source(fam))
        self.assert_equal_sd(hf, ref, name)
        back = L.convert(mm, self.path(name + "-back"), "--to", "hf")
        self.assert_equal_sd(L.safe_open_all(back), ref, name + " -> HF")
        return mm, files, ref

    def check_placements(self, fam, files):
        d = dims(fam)
        s0, s1 = set(files[(0, 0)]), set(files[(0, 1)])
        E = "image_encoder.encoder.embeddings."
        for k in ("class_embedding", "patch_embedding.weight", "patch_embedding.bias", "position_embedding"):
            self.assertIn(E + k, s0)
        for k in ("norm.weight", "linear_fc1.weight", "linear_fc2.bias"):
            self.assertIn("image_encoder.projector." + k, s0)
        self.assertIn("image_encoder.encoder.encoder.layers.1.ls2", s0)
        self.assertIn("text_decoder.embedding.word_embeddings.weight", s0)
        self.assertFalse([k for k in s1 if k.startswith("image_encoder.")])
        self.assertNotIn("text_decoder.decoder.final_layernorm.weight", s0)
        self.assertNotIn("text_decoder.output_layer.weight", s0)
        self.assertIn("text_decoder.decoder.layers.0.mlp.linear_fc1.weight", s1)  # global layer 1, renumbered
        self.assertNotIn("text_decoder.decoder.layers.1.mlp.linear_fc1.weight", s1)
        self.assertIn("text_decoder.decoder.final_layernorm.weight", s1)
        self.assertIn("text_decoder.output_layer.weight", s1)  # tied: Megatron's copy of the embedding
        self.assertNotIn("text_decoder.embedding.word_embeddings.weight", s1)
        emb = "text_decoder.embedding.word_embeddings.weight"
        rows = [files[(t, 0)][emb].shape[0] for t in range(2)]
        self.assertEqual(rows, [uneven(d["vocab"], 2, r) for r in range(2)])
        self.assertEqual([files[(t, 1)]["text_decoder.output_layer.weight"].shape[0] for t in range(2)], rows)
        qkv = "image_encoder.encoder.encoder.layers.0.self_attention.linear_qkv.weight"
        proj = "image_encoder.encoder.encoder.layers.0.self_attention.linear_proj.weight"
        heads = [uneven(d["vheads"], 2, r) for r in range(2)]
        W = d["vheads"] * d["vhd"]
        self.assertEqual([list(files[(t, 0)][qkv].shape) for t in range(2)], [[3 * n * d["vhd"], W] for n in heads])
        self.assertEqual([list(files[(t, 0)][proj].shape) for t in range(2)], [[W, n * d["vhd"]] for n in heads])
        return rows, heads

    def test_mindspeed_mm_qwen2(self):
        self.assert_mm("qwen2", 1, [2], [2], "q-tp1")
        mm, files, ref = self.assert_mm("qwen2", *MM_TP2, "q-tp2-pp2")
        rows, heads = self.check_placements("qwen2", files)
        la, lb = logits(self.source("qwen2")), logits(self.path("q-tp2-pp2-back"))
        self.assertTrue(torch.equal(la, lb), "logits differ by %g" % (la - lb).abs().max())
        # The custom checkpoint as source gives the same MindSpeed-MM bytes as the HF one.
        cu = L.convert(self.source("qwen2"), self.path("q-custom"), "--to", "hf", "--internvl-names", "custom")
        mmc = L.convert(cu, self.path("q-from-custom"), "--to", "mindspeed-mm", "--tp", "2", "--pp", "2", "--pp-layers", "1,1",
                        "--stack-pp-layers", "1=2,0")
        nfiles = self.same_mm(mm, mmc)
        # MindSpeed-MM -> custom names: the custom layout.
        mc = L.convert(mm, self.path("q-mm-custom"), "--to", "hf", "--internvl-names", "custom")
        self.assert_equal_sd(L.safe_open_all(mc), hf_to_custom(ref, "qwen2"), "MM -> custom")
        # Resplit MindSpeed-MM -> MindSpeed-MM (TP2 x PP2 -> TP1), no HF in between.
        rs = L.convert(mm, self.path("q-rs-tp1"), "--to", "mindspeed-mm", "--tp", "1")
        self.assert_equal_sd(mm_to_hf(rs, "qwen2", 1, [2], [2])[0], ref, "resplit TP1")
        L.report("internvl qwen2 HF -> MindSpeed-MM (TP1; TP2 x PP2 llm [1,1] vit [2,0], vocab rows %s, ViT heads %s): "
                 "the independent reader's towers equal HF bit for bit; back to HF bit-exact, logits identical; from the "
                 "custom checkpoint the same %d rank files byte for byte; MM -> custom names as transcribed; MM -> MM TP1 "
                 "resplit bit-exact" % (rows, heads, nfiles))

    def test_mindspeed_mm_llama(self):
        self.assert_mm("llama", 1, [2], [2], "l-tp1")
        files1 = mm_rank_files(self.path("l-tp1"), 1, 1)
        self.assertNotIn("text_decoder.output_layer.weight", set(files1[(0, 0)]))  # tied, one stage: no output layer
        mm, files, ref = self.assert_mm("llama", *MM_TP2, "l-tp2-pp2")
        rows, heads = self.check_placements("llama", files)
        self.assertEqual((rows, heads), ([151, 150], [2, 1]))
        la, lb = logits(self.source("llama")), logits(self.path("l-tp2-pp2-back"))
        self.assertTrue(torch.equal(la, lb), "logits differ by %g" % (la - lb).abs().max())
        # InternLM2-named custom checkpoint as source: the same bytes.
        cu = L.convert(self.source("llama"), self.path("l-internlm2"), "--to", "hf", "--internvl-names", "custom-internlm2")
        mmc = L.convert(cu, self.path("l-from-internlm2"), "--to", "mindspeed-mm", "--tp", "2", "--pp", "2",
                        "--pp-layers", "1,1", "--stack-pp-layers", "1=2,0")
        nfiles = self.same_mm(mm, mmc)
        # Resplit MindSpeed-MM -> MindSpeed-MM (TP2 x PP2 -> TP1), no HF in between.
        rs = L.convert(mm, self.path("l-rs-tp1"), "--to", "mindspeed-mm", "--tp", "1")
        hf1, _ = mm_to_hf(rs, "llama", 1, [2], [2])
        self.assert_equal_sd(hf1, ref, "resplit TP1")
        L.report("internvl llama HF -> MindSpeed-MM (TP1; TP2 x PP2, vocab 301 as %s rows, 3 ViT heads as %s, tied output "
                 "copy on the last stage): reader = HF bit for bit; back bit-exact, logits identical; from custom-internlm2 "
                 "the same %d rank files; MM TP2 x PP2 -> TP1 resplit bit-exact" % (rows, heads, nfiles))
        # Negative twin: two ViT heads' value rows swapped between TP rank files (rank 0 head 0 <-> rank 1 head 2).
        sw = self.path("l-mm-swapped")
        shutil.copytree(mm, sw)
        f0 = os.path.join(sw, "release", "mp_rank_00_000", "model_optim_rng.pt")
        f1 = os.path.join(sw, "release", "mp_rank_01_000", "model_optim_rng.pt")
        c0, c1 = torch.load(f0, weights_only=True), torch.load(f1, weights_only=True)
        k = "image_encoder.encoder.encoder.layers.0.self_attention.linear_qkv.weight"
        hd = dims("llama")["vhd"]
        a, b = c0["model"][k].clone(), c1["model"][k].clone()
        v0, v1 = 2 * heads[0] * hd, 2 * heads[1] * hd  # V_r starts after Q_r and K_r
        a[v0:v0 + hd], b[v1:v1 + hd] = c1["model"][k][v1:v1 + hd], c0["model"][k][v0:v0 + hd]
        c0["model"][k], c1["model"][k] = a, b
        torch.save(c0, f0)
        torch.save(c1, f1)
        hf, _ = mm_to_hf(sw, "llama", *MM_TP2)
        v = "vision_tower.encoder.layer.0.attention.v_proj.weight"
        self.assertFalse(torch.equal(hf[v], ref[v]))
        self.assertTrue(torch.equal(hf[v][hd:2 * hd], ref[v][hd:2 * hd]))  # head 1 untouched
        L.report("internvl llama: two ViT heads swapped between TP rank files are caught by the reader")


def dcp_state(d):
    """The DCP checkpoint in d (a MindSpeed-MM FSDP2 directory: the tracker file names the DCP directory) loaded by
    torch's own dcp.load as {"model": {...}, "checkpoint_version": ...}."""
    import warnings
    import torch.distributed.checkpoint as dcp
    with open(os.path.join(d, "latest_checkpointed_iteration.txt")) as fh:
        rel = os.path.join(d, fh.read().strip())
    md = dcp.FileSystemReader(rel).read_metadata()
    sd = {"model": {k[len("model."):]: torch.empty(m.size, dtype=m.properties.dtype)
                    for k, m in md.state_dict_metadata.items() if k != "checkpoint_version"}, "checkpoint_version": None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(sd, checkpoint_id=rel, no_dist=True)
    return sd


class InternVL35(Base):
    """InternVL3.5-MoE (Qwen3-MoE LLM) in the chat layout and in MindSpeed-MM's FSDP2 layout with its experts merged as
    ExpertMergeDcpConverter merges them."""

    def test_qwen3_moe(self):
        src = self.source("qwen3moe")
        ref = L.safe_open_all(src)
        lref = logits(src)
        custom = L.convert(src, self.path("q3m-custom"), "--to", "hf", "--internvl-names", "custom")
        cu = L.safe_open_all(custom)
        self.assertIn("language_model.model.layers.0.mlp.experts.3.down_proj.weight", cu)
        self.assertIn("language_model.model.layers.0.self_attn.q_norm.weight", cu)
        with open(os.path.join(custom, "config.json")) as fh:
            self.assertEqual(json.load(fh)["llm_config"]["architectures"], ["Qwen3MoeForCausalLM"])
        back = L.convert(custom, self.path("q3m-back"), "--to", "hf")
        self.assert_equal_sd(L.safe_open_all(back), ref, "qwen3moe chat -> HF")
        self.assertTrue(torch.equal(logits(back), lref))
        # MindSpeed-MM's FSDP2 layout (mm-convert ExpertMergeDcpConverter hf_to_dcp): chat names under model.model., each
        # MoE layer's experts merged: gate_up_proj = stack_e([gate_e; up_e]^T) [E, H, 2I], down_proj = stack_e(down_e^T)
        # [E, I, H], each viewed (-1, last dim).
        import subprocess
        env = {**os.environ, "CKHOST_PLUGIN_PATH": ""}
        p = subprocess.run([L.CKHOST, "mm-convert", "ExpertMergeDcpConverter", "hf_to_dcp", "--hf_dir", custom, "--save_dir",
                            self.path("q3m-dcp")], capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        sd = dcp_state(self.path("q3m-dcp"))
        self.assertEqual(sd["checkpoint_version"], 3.0)
        want = dict(("model." + k, v) for k, v in cu.items() if ".mlp.experts." not in k)
        pre = "language_model.model.layers.0.mlp.experts."
        E = CONFIGS["qwen3moe"][0]["num_experts"]
        gu = torch.stack([torch.cat([cu[pre + "%d.gate_proj.weight" % e], cu[pre + "%d.up_proj.weight" % e]], 0).t() for e in range(E)])
        dn = torch.stack([cu[pre + "%d.down_proj.weight" % e].t() for e in range(E)])
        want["model." + pre + "gate_up_proj"] = gu.reshape(-1, gu.shape[-1])
        want["model." + pre + "down_proj"] = dn.reshape(-1, dn.shape[-1])
        self.assertEqual(sorted(sd["model"]), sorted(want))
        for k, v in want.items():
            self.assertTrue(torch.equal(sd["model"][k], v), "FSDP2 DCP: %s differs" % k)
        # dcp_to_hf (--dcp_dir is the iteration directory): back to the chat layout bit-exact, then HF logits.
        p = subprocess.run([L.CKHOST, "mm-convert", "ExpertMergeDcpConverter", "dcp_to_hf", "--hf_dir", custom, "--dcp_dir",
                            os.path.join(self.path("q3m-dcp"), "release"), "--save_dir", self.path("q3m-dcp-back")],
                           capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assert_equal_sd(L.safe_open_all(self.path("q3m-dcp-back")), cu, "FSDP2 DCP -> chat")
        self.assertTrue(torch.equal(logits(L.convert(self.path("q3m-dcp-back"), self.path("q3m-dcp-hf"), "--to", "hf")), lref))
        L.report("internvl3.5-moe (Qwen3-MoE LLM): HF -> chat -> HF bit-exact, logits identical; mm-convert ExpertMergeDcpConverter "
                 "hf_to_dcp = the test's merge of the experts (stack of [gate; up]^T and down^T, viewed 2-D) under model.model., "
                 "checkpoint_version 3.0; dcp_to_hf back to the chat layout bit-exact")
        L.assert_refused(self, src, self.path("q3m-mm"), "--to", "mindspeed-mm", needle="has no such branch")


class MmConvert(Base):
    """`ckhost mm-convert InternVLConverter ...`: MindSpeed-MM's command lines, VPP lists included."""

    def mm(self, *args, check=True):
        import subprocess
        p = subprocess.run([L.CKHOST, "mm-convert", "InternVLConverter", *map(str, args)], capture_output=True, text=True,
                           env={**os.environ, "CKHOST_PLUGIN_PATH": ""})
        if check:
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p

    def test_internvl_converter(self):
        src = self.source("llama")
        ref = L.safe_open_all(src)
        custom = L.convert(src, self.path("custom-ilm2"), "--to", "hf", "--internvl-names", "custom-internlm2")
        pc = "--cfg.parallel_config."
        # hf_to_mm from the chat layout (what MindSpeed-MM's InternVLConverter reads) = the direct conversion.
        direct = L.convert(src, self.path("direct"), "--to", "mindspeed-mm", "--tp", "2", "--pp", "2", "--pp-layers", "1,1",
                           "--stack-pp-layers", "1=2,0")
        self.mm("hf_to_mm", "--cfg.mm_dir", self.path("mm"), "--cfg.hf_config.hf_dir", custom, pc + "llm_pp_layers", "[[1,1]]",
                pc + "vit_pp_layers", "[[2,0]]", pc + "tp_size", "2")
        self.same_mm(direct, self.path("mm"))
        # mm_to_hf gives back the layout of the hf_dir it is given: here the InternLM2 chat layout, byte for byte.
        self.mm("mm_to_hf", "--cfg.mm_dir", self.path("mm"), "--cfg.save_hf_dir", self.path("back"), "--cfg.hf_config.hf_dir", custom,
                pc + "llm_pp_layers", "[1,1]", pc + "vit_pp_layers", "[2,0]", pc + "tp_size", "2")
        a, b = L.safe_open_all(custom), L.safe_open_all(self.path("back"))
        self.assertEqual(sorted(a), sorted(b))
        self.assertTrue(all(torch.equal(a[k], b[k]) for k in a))
        # VPP: nested lists, one inner list per virtual chunk (files {model0, model1, checkpoint_version}).
        self.mm("hf_to_mm", "--cfg.mm_dir", self.path("vpp"), "--cfg.hf_config.hf_dir", src, pc + "llm_pp_layers", "[[1,0],[0,1]]",
                pc + "vit_pp_layers", "[[1,0],[1,0]]", pc + "tp_size", "2")
        hf, files = mm_to_hf(self.path("vpp"), "llama", 2, [1, 0, 0, 1], [1, 0, 1, 0], vpp=2)
        self.assert_equal_sd(hf, ref, "VPP 2 x PP 2")
        self.assertIn("image_encoder.encoder.embeddings.class_embedding", files[(0, 0)])   # chunk 0 of stage 0
        self.assertIn("image_encoder.projector.linear_fc1.weight", files[(0, 2)])          # chunk 1 of stage 0
        self.assertIn("text_decoder.output_layer.weight", files[(0, 3)])                   # chunk 1 of stage 1 (tied copy)
        self.assert_equal_sd(L.safe_open_all(L.convert(self.path("vpp"), self.path("vpp-back"), "--to", "hf")), ref, "VPP -> HF")
        # resplit (an empty pass in MindSpeed-MM's InternVLConverter): TP2 x PP2 -> TP1.
        spc, tpc = "--cfg.source_parallel_config.", "--cfg.target_parallel_config."
        self.mm("resplit", "--cfg.source_dir", self.path("mm"), "--cfg.target_dir", self.path("rs"), spc + "llm_pp_layers", "[1,1]",
                spc + "vit_pp_layers", "[2,0]", spc + "tp_size", "2", tpc + "llm_pp_layers", "[2]", tpc + "vit_pp_layers", "[2]",
                tpc + "tp_size", "1")
        hf1, _ = mm_to_hf(self.path("rs"), "llama", 1, [2], [2])
        self.assert_equal_sd(hf1, ref, "resplit TP1")
        # VPP mistakes, one line each, nothing written.
        for args, needle in (([pc + "llm_pp_layers", "[[1,0],[1]]", pc + "vit_pp_layers", "[[1,0],[1,0]]"], "one count per pipeline stage"),
                             ([pc + "llm_pp_layers", "[[1,0],[0,1]]", pc + "vit_pp_layers", "[[2,0]]"], "virtual pipeline chunks")):
            p = self.mm("hf_to_mm", "--cfg.mm_dir", self.path("bad"), "--cfg.hf_config.hf_dir", src, *args, check=False)
            self.assertNotEqual(p.returncode, 0, needle)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(needle, p.stderr)
            self.assertFalse(os.path.exists(self.path("bad")))
        L.report("mm-convert InternVLConverter: hf_to_mm from the InternLM2 chat layout = direct conversion byte for byte; mm_to_hf "
                 "back to that layout bit-exact; VPP [[1,0],[0,1]] / [[1,0],[1,0]] at TP2 read by the test's reader = HF; resplit "
                 "to TP1 bit-exact; 2 VPP list mistakes refused in one line")


if __name__ == "__main__":
    L.main()
