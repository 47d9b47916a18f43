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


# ---- an independent MindSpeed-MM reader (the rules of mm-convert's qwen2vl.py / hf_to_mm.py, written here
# from the documented layout, not from ckhost): rank files -> per-tower global tensors -> HF names.

def mm_rank_files(d, tp, pp):
    """{(tp_rank, pp_rank): state dict} of a MindSpeed-MM release directory; checks the payload."""
    with open(os.path.join(d, "latest_checkpointed_iteration.txt")) as fh:
        assert fh.read().strip() == "release"
    out = {}
    for t in range(tp):
        for p in range(pp):
            name = "mp_rank_%02d" % t + ("_%03d" % p if pp > 1 else "")
            ck = torch.load(os.path.join(d, "release", name, "model_optim_rng.pt"), weights_only=True)
            assert sorted(ck) == ["checkpoint_version", "model"], sorted(ck)
            assert ck["checkpoint_version"] == 3.0
            out[(t, p)] = ck["model"]
    return out


def mm_to_hf(d, tp, llm_pp, vit_pp, v25=True, vit_heads=2, heads=4, kv_heads=2, head_dim=16):
    """HF tensors from a MindSpeed-MM checkpoint written with these distributions (flat lists)."""
    pp = len(llm_pp)
    files = mm_rank_files(d, tp, pp)
    towers = (("text_decoder.decoder.layers.", llm_pp), ("image_encoder.encoder.blocks.layers.", vit_pp))
    merged = {}
    for (t, p), sd in sorted(files.items()):
        for k, v in sd.items():
            for prefix, dist in towers:
                if k.startswith(prefix):
                    local, rest = k[len(prefix):].split(".", 1)
                    k = prefix + str(sum(dist[:p]) + int(local)) + "." + rest
            merged.setdefault(k, {}).setdefault(t, []).append(v)
    for k, per_rank in merged.items():  # each tensor once per TP rank (the tied copy aside)
        for t, vs in per_rank.items():
            assert all(torch.equal(vs[0], x) for x in vs), k
    def cat(k, dim):
        return torch.cat([merged[k][t][0] for t in range(tp)], dim)
    def glu(k):
        parts = [merged[k][t][0] for t in range(tp)]
        h = [x.shape[0] // 2 for x in parts]
        return torch.cat([x[:n] for x, n in zip(parts, h)] + [x[n:] for x, n in zip(parts, h)], 0)
    def rep(k):
        vs = [merged[k][t][0] for t in range(tp)]
        assert all(torch.equal(vs[0], x) for x in vs), k + " differs across TP ranks"
        return vs[0]
    hf = {}
    W = None
    for l in range(sum(vit_pp)):
        m, h = "image_encoder.encoder.blocks.layers.%d." % l, "visual.blocks.%d." % l
        for a, b in (("input_layernorm", "norm1"), ("pre_mlp_layernorm", "norm2")):
            for s in ("weight",) if v25 else ("weight", "bias"):
                hf[h + b + "." + s] = rep(m + a + "." + s)
        qkv, qb = cat(m + "self_attention.linear_qkv.weight", 0), cat(m + "self_attention.linear_qkv.bias", 0)
        W = qkv.shape[1]
        hd = W // vit_heads  # per head [q_h; k_h; v_h] -> [Q; K; V]
        hf[h + "attn.qkv.weight"] = qkv.reshape(vit_heads, 3, hd, W).transpose(0, 1).reshape(3 * W, W)
        hf[h + "attn.qkv.bias"] = qb.reshape(vit_heads, 3, hd).transpose(0, 1).reshape(3 * W)
        hf[h + "attn.proj.weight"] = cat(m + "self_attention.linear_proj.weight", 1)
        hf[h + "attn.proj.bias"] = rep(m + "self_attention.linear_proj.bias")
        if v25:
            fw, fb = glu(m + "mlp.linear_fc1.weight"), glu(m + "mlp.linear_fc1.bias")
            n = fw.shape[0] // 2
            hf[h + "mlp.gate_proj.weight"], hf[h + "mlp.up_proj.weight"] = fw[:n], fw[n:]
            hf[h + "mlp.gate_proj.bias"], hf[h + "mlp.up_proj.bias"] = fb[:n], fb[n:]
            hf[h + "mlp.down_proj.weight"] = cat(m + "mlp.linear_fc2.weight", 1)
            hf[h + "mlp.down_proj.bias"] = rep(m + "mlp.linear_fc2.bias")
        else:
            hf[h + "mlp.fc1.weight"], hf[h + "mlp.fc1.bias"] = cat(m + "mlp.linear_fc1.weight", 0), cat(m + "mlp.linear_fc1.bias", 0)
            hf[h + "mlp.fc2.weight"], hf[h + "mlp.fc2.bias"] = cat(m + "mlp.linear_fc2.weight", 1), rep(m + "mlp.linear_fc2.bias")
    hf["visual.patch_embed.proj.weight"] = rep("image_encoder.encoder.patch_embed.proj.weight")
    hf["visual.merger.ln_q.weight"] = rep("image_encoder.projector.layernorm.weight")
    if not v25:
        hf["visual.merger.ln_q.bias"] = rep("image_encoder.projector.layernorm.bias")
    hf["visual.merger.mlp.0.weight"] = cat("image_encoder.projector.encoder.linear_fc1.weight", 0)
    hf["visual.merger.mlp.0.bias"] = cat("image_encoder.projector.encoder.linear_fc1.bias", 0)
    hf["visual.merger.mlp.2.weight"] = cat("image_encoder.projector.encoder.linear_fc2.weight", 1)
    hf["visual.merger.mlp.2.bias"] = rep("image_encoder.projector.encoder.linear_fc2.bias")
    hf["model.embed_tokens.weight"] = cat("text_decoder.embedding.word_embeddings.weight", 0)
    P = heads // kv_heads
    for l in range(sum(llm_pp)):
        m, h = "text_decoder.decoder.layers.%d." % l, "model.layers.%d." % l
        hf[h + "input_layernorm.weight"] = rep(m + "input_layernorm.weight")
        hf[h + "post_attention_layernorm.weight"] = rep(m + "pre_mlp_layernorm.weight")
        for s in ("weight", "bias"):
            x = cat(m + "self_attention.linear_qkv." + s, 0)
            g = x.reshape(kv_heads, (P + 2) * head_dim, *x.shape[1:])  # per group [q_g; k_g; v_g]
            tail = list(x.shape[1:])
            hf[h + "self_attn.q_proj." + s] = g[:, :P * head_dim].reshape(heads * head_dim, *tail)
            hf[h + "self_attn.k_proj." + s] = g[:, P * head_dim:(P + 1) * head_dim].reshape(kv_heads * head_dim, *tail)
            hf[h + "self_attn.v_proj." + s] = g[:, (P + 1) * head_dim:].reshape(kv_heads * head_dim, *tail)
        hf[h + "self_attn.o_proj.weight"] = cat(m + "self_attention.linear_proj.weight", 1)
        fc1 = glu(m + "mlp.linear_fc1.weight")
        n = fc1.shape[0] // 2
        hf[h + "mlp.gate_proj.weight"], hf[h + "mlp.up_proj.weight"] = fc1[:n], fc1[n:]
        hf[h + "mlp.down_proj.weight"] = cat(m + "mlp.linear_fc2.weight", 1)
    hf["model.norm.weight"] = rep("text_decoder.decoder.final_layernorm.weight")
    hf["lm_head.weight"] = cat("text_decoder.output_layer.weight", 0)
    return hf, files


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

    def assert_mm(self, fam, tp, llm_pp, vit_pp, name):
        src = self.source(fam)
        args = ["--to", "mindspeed-mm", "--tp", str(tp)]
        if len(llm_pp) > 1:
            args += ["--pp", str(len(llm_pp)), "--pp-layers", ",".join(map(str, llm_pp)),
                     "--stack-pp-layers", "1=" + ",".join(map(str, vit_pp))]
        mm = L.convert(src, self.path(name), *args)
        hf, files = mm_to_hf(mm, tp, llm_pp, vit_pp, v25=fam == "qwen2_5_vl")
        ref = L.safe_open_all(src)
        self.assertEqual(sorted(hf), sorted(ref), name)
        for k in ref:
            self.assertTrue(torch.equal(hf[k], ref[k]), "%s: %s differs" % (name, k))
        # ckhost reads it back (mm_to_hf: towers renumbered from the files, config from its hf/): bit-exact.
        back = L.convert(mm, self.path(name + "-back"), "--to", "hf")
        b = L.safe_open_all(back)
        self.assertEqual(sorted(b), sorted(ref), name)
        for k in ref:
            self.assertTrue(torch.equal(b[k], ref[k]), "%s back: %s differs" % (name, k))
        return mm, files, ref

    def test_mindspeed_mm(self):
        # mm-convert's Qwen2.5-VL layouts in small: TP1 PP1, and TP2 with llm [1,1], vit [3,0] (the whole
        # tower and projector on stage 0, the output layer on the last stage).
        self.assert_mm("qwen2_5_vl", 1, [2], [3], "mm-tp1")
        mm, files, ref = self.assert_mm("qwen2_5_vl", 2, [1, 1], [3, 0], "mm-tp2-pp2")
        s0, s1 = files[(0, 0)], files[(0, 1)]
        self.assertIn("image_encoder.encoder.patch_embed.proj.weight", s0)
        self.assertIn("image_encoder.projector.encoder.linear_fc2.weight", s0)
        self.assertIn("text_decoder.embedding.word_embeddings.weight", s0)
        self.assertFalse([k for k in s1 if k.startswith("image_encoder.")])
        self.assertIn("text_decoder.decoder.layers.0.mlp.linear_fc1.weight", s1)  # global layer 1, renumbered
        self.assertIn("text_decoder.output_layer.weight", s1)
        self.assertIn("text_decoder.decoder.final_layernorm.weight", s1)
        self.assertEqual(list(s0["image_encoder.encoder.blocks.layers.0.self_attention.linear_qkv.weight"].shape), [48, 32])
        self.assert_mm("qwen2_vl", 2, [1, 1], [2, 0], "mm2-tp2-pp2")
        L.report("Qwen2.5-VL / Qwen2-VL HF -> MindSpeed-MM (TP1, TP2 x PP2 with llm [1,1] and vit [3,0] / [2,0]): "
                 "every tower assembled by an independent reader equals HF bit for bit")
        # Negative twin: two ViT heads swapped in one rank file's per-head qkv: the reader's tower differs.
        sw = self.path("mm-swapped")
        shutil.copytree(mm, sw)
        f = os.path.join(sw, "release", "mp_rank_00_000", "model_optim_rng.pt")
        ck = torch.load(f, weights_only=True)
        k = "image_encoder.encoder.blocks.layers.1.self_attention.linear_qkv.weight"
        w = ck["model"][k].clone()  # rank 0 holds head 0 of 2: its q/k/v rows; swap head 0 with rank 1's head 1
        f1 = os.path.join(sw, "release", "mp_rank_01_000", "model_optim_rng.pt")
        ck1 = torch.load(f1, weights_only=True)
        ck["model"][k], ck1["model"][k] = ck1["model"][k].clone(), w
        torch.save(ck, f)
        torch.save(ck1, f1)
        hf, _ = mm_to_hf(sw, 2, [1, 1], [3, 0])
        self.assertFalse(torch.equal(hf["visual.blocks.1.attn.qkv.weight"], ref["visual.blocks.1.attn.qkv.weight"]))
        # transformers' forward of the model read back from MindSpeed-MM gives the source's image+text logits.
        self.assertTrue(torch.equal(logits("qwen2_5_vl", self.path("mm-tp2-pp2-back")), logits("qwen2_5_vl", self.source("qwen2_5_vl"))))
        # Resplit MindSpeed-MM -> MindSpeed-MM (TP2 x PP2 -> TP1, and -> TP2 x PP2 with vit [1,2]), no HF in between.
        rs = L.convert(mm, self.path("mm-rs-tp1"), "--to", "mindspeed-mm", "--tp", "1")
        hf1, _ = mm_to_hf(rs, 1, [2], [3])
        rs2 = L.convert(rs, self.path("mm-rs-vit12"), "--to", "mindspeed-mm", "--tp", "2", "--pp", "2", "--pp-layers", "1,1",
                        "--stack-pp-layers", "1=1,2")
        hf2, f2 = mm_to_hf(rs2, 2, [1, 1], [1, 2])
        self.assertIn("image_encoder.projector.layernorm.weight", f2[(0, 1)])  # the projector with the tower's last layers
        self.assertIn("image_encoder.encoder.patch_embed.proj.weight", f2[(0, 0)])
        for k in ref:
            self.assertTrue(torch.equal(hf1[k], ref[k]) and torch.equal(hf2[k], ref[k]), "resplit: %s differs" % k)
        L.report("MindSpeed-MM -> HF bit-exact at every layout, logits identical; MM -> MM resplits (TP1; TP2 x PP2 vit [1,2]) bit-exact")
        # Refusals: a TP that does not divide the query groups.
        L.assert_refused(self, self.source("qwen2_5_vl"), self.path("mm-tp4"), "--to", "mindspeed-mm", "--tp", "4",
                         needle="does not divide")


class MmConvert(L.InteropCase):
    """`ckhost mm-convert` runs MindSpeed-MM's documented command lines: the same bytes as the direct
    conversion, its config file and environment variables, and its FAQ's mistakes refused before anything
    is written."""

    def mm(self, *args, env=None, check=True):
        import subprocess
        e = {**os.environ, "CKHOST_PLUGIN_PATH": ""}
        e.update(env or {})
        p = subprocess.run([L.CKHOST, "mm-convert", "Qwen2_5_VLConverter", *map(str, args)], capture_output=True, text=True, env=e)
        if check:
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p

    def same_tree(self, a, b):
        fa, fb = sorted(L.tree_files(a)), sorted(L.tree_files(b))
        self.assertEqual(fa, fb)
        for f in fa:
            with open(os.path.join(a, f), "rb") as x, open(os.path.join(b, f), "rb") as y:
                self.assertEqual(x.read(), y.read(), f)

    def test_mm_convert(self):
        src = self.path("hf")
        make("qwen2_5_vl", src)
        direct = L.convert(src, self.path("direct"), "--to", "mindspeed-mm", "--tp", "2", "--pp", "2", "--pp-layers", "1,1",
                           "--stack-pp-layers", "1=3,0")
        pc = "--cfg.parallel_config."
        self.mm("hf_to_mm", "--cfg.mm_dir", self.path("mm"), "--cfg.hf_config.hf_dir", src, pc + "llm_pp_layers", "[[1,1]]",
                pc + "vit_pp_layers", "[[3,0]]", pc + "tp_size", "2")
        self.same_tree(direct, self.path("mm"))
        # --print_config, then --config with that file: the same conversion.
        y = self.mm("hf_to_mm", "--cfg.mm_dir", self.path("mm-yaml"), "--cfg.hf_config.hf_dir", src, pc + "llm_pp_layers", "[[1,1]]",
                    pc + "vit_pp_layers", "[[3,0]]", pc + "tp_size", "2", "--print_config").stdout
        self.assertTrue(y.startswith("cfg:"), y)
        with open(self.path("cfg.yaml"), "w") as fh:
            fh.write(y)
        self.mm("hf_to_mm", "--config", self.path("cfg.yaml"))
        self.same_tree(direct, self.path("mm-yaml"))
        # --print_config=comments: the fields documented as YAML comments; the file still feeds --config.
        y = self.mm("hf_to_mm", "--cfg.mm_dir", self.path("mm-yaml-c"), "--cfg.hf_config.hf_dir", src, pc + "llm_pp_layers", "[[1,1]]",
                    pc + "vit_pp_layers", "[[3,0]]", pc + "tp_size", "2", "--print_config=comments").stdout
        self.assertIn("tp_size: 2  # tensor parallel size", y)
        with open(self.path("cfg-c.yaml"), "w") as fh:
            fh.write(y)
        self.mm("hf_to_mm", "--config", self.path("cfg-c.yaml"))
        self.same_tree(direct, self.path("mm-yaml-c"))
        # JSONARGPARSE_DEFAULT_ENV: the fields from the environment.
        pre = "MM_CONVERT_QWEN2_5_VLCONVERTER__HF_TO_MM__CFG__"
        self.mm("hf_to_mm", env={"JSONARGPARSE_DEFAULT_ENV": "true", pre + "MM_DIR": self.path("mm-env"), pre + "HF_CONFIG__HF_DIR": src,
                                 pre + "PARALLEL_CONFIG__LLM_PP_LAYERS": "[[1,1]]", pre + "PARALLEL_CONFIG__VIT_PP_LAYERS": "[[3,0]]",
                                 pre + "PARALLEL_CONFIG__TP_SIZE": "2"})
        self.same_tree(direct, self.path("mm-env"))
        # mm_to_hf (flat lists) and resplit.
        self.mm("mm_to_hf", "--cfg.mm_dir", self.path("mm"), "--cfg.save_hf_dir", self.path("back"), "--cfg.hf_config.hf_dir", src,
                pc + "llm_pp_layers", "[1,1]", pc + "vit_pp_layers", "[3,0]", pc + "tp_size", "2")
        a, b = L.safe_open_all(src), L.safe_open_all(self.path("back"))
        self.assertEqual(sorted(a), sorted(b))
        self.assertTrue(all(torch.equal(a[k], b[k]) for k in a))
        spc, tpc = "--cfg.source_parallel_config.", "--cfg.target_parallel_config."
        self.mm("resplit", "--cfg.source_dir", self.path("mm"), "--cfg.target_dir", self.path("rs"), spc + "llm_pp_layers", "[1,1]",
                spc + "vit_pp_layers", "[3,0]", spc + "tp_size", "2", tpc + "llm_pp_layers", "[2]", tpc + "vit_pp_layers", "[3]",
                tpc + "tp_size", "1")
        hf, _ = mm_to_hf(self.path("rs"), 1, [2], [3])
        self.assertTrue(all(torch.equal(hf[k], a[k]) for k in a))
        # The FAQ's mistakes: one line each, nothing written.
        for method, args, needle in (
                ("hf_to_mm", [pc + "llm_pp_layers", "[[1,1]]", pc + "vit_pp_layers", "[[3,0,0]]"], "llm_pp_layers has 2 pipeline stages and vit_pp_layers 3"),
                ("hf_to_mm", [pc + "llm_pp_layers", "[[1,2]]", pc + "vit_pp_layers", "[[3,0]]"], "adds up to 3 layers, the model has 2"),
                ("hf_to_mm", [pc + "llm_pp_layers", "[1,1]", pc + "vit_pp_layers", "[3,0]"], "hf_to_mm takes nested lists"),
                ("mm_to_hf", [pc + "llm_pp_layers", "[[1,1]]", pc + "vit_pp_layers", "[[3,0]]", "--cfg.mm_dir", self.path("mm"),
                              "--cfg.save_hf_dir", self.path("bad")], "takes a flat list"),
                ("mm_to_hf", [pc + "llm_pp_layers", "[1,1]", pc + "vit_pp_layers", "[3,0]", pc + "tp_size", "1", "--cfg.mm_dir", self.path("mm"),
                              "--cfg.save_hf_dir", self.path("bad")], "tp_size 1 does not match the checkpoint being read")):
            p = self.mm(method, "--cfg.mm_dir", self.path("bad"), "--cfg.hf_config.hf_dir", src, *args, check=False)
            self.assertNotEqual(p.returncode, 0, needle)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertIn(needle, p.stderr)
            self.assertFalse(os.path.exists(self.path("bad")), needle)
        p = self.mm("hf_to_mm", check=False)
        self.assertIn("is required", p.stderr)
        import subprocess
        p = subprocess.run([L.CKHOST, "mm-convert", "DeepSeekVL2Converter", "hf_to_mm"], capture_output=True, text=True,
                           env={**os.environ, "CKHOST_PLUGIN_PATH": ""})
        self.assertIn("not supported by ckhost's mm-convert yet", p.stderr)
        L.report("mm-convert hf_to_mm (flags, --config from --print_config, JSONARGPARSE_DEFAULT_ENV) = direct conversion byte for "
                 "byte; mm_to_hf and resplit bit-exact; 5 FAQ mistakes refused in one line with nothing written")


if __name__ == "__main__":
    L.main()
