"""Qwen3-VL and Qwen3-VL-MoE (vision tower with deepstack mergers + Qwen3 decoder, dense or with fused experts),
checked by transformers 5.24 and torch 2.13's DCP.

Sources are transformers save_pretrained checkpoints of small configs that keep the real key sets (learned
pos_embed, LayerNorm blocks with biases, a merger and two deepstack mergers; per-head q/k norms; MoE layers with a
router and fused gate_up_proj / down_proj), random weights in every tensor.
  - HF -> HF through the qwen-vl model plugin: every tensor bit-identical, transformers' image+text logits
    (pixel_values and image_grid_thw passed directly) identical; the fused experts in the released orientation
    ([E, H, 2I] / [E, I, H], as Qwen's own checkpoints store them) are read and kept as they are;
  - HF -> MindSpeed-MM's Megatron layout (Qwen3VLMegatronConverter's names) at TP1, EP2 and TP2 x PP2 x EP2: an
    independent reader in the test gives transformers' layout back bit for bit; read back bit-exact, logits identical;
    experts swapped between EP rank files are caught; mm-convert's lines give the same bytes;
  - HF -> MindSpeed-MM's FSDP2 DCP layout (--dcp-layout mindspeed, what mm-convert Qwen3VLConverter hf_to_dcp
    writes): latest_checkpointed_iteration.txt = release, release/.metadata + __0_0.distcp, loaded by torch's own
    dcp.load as {"model": {"model." + HF name: t}, "checkpoint_version": 3.0}, the fused experts viewed 2-D
    ([E * a, b]); read back to HF bit-exact, logits identical; a twin with two experts' rows swapped in the DCP
    data is read back to different logits.

Run: tests/interop/run_interop.sh tests/interop/test_qwen3_vl.py --ckhost=build/bin/ckhost
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import interop_lib as L  # noqa: E402

IMAGE, VSTART, VEND, VIDEO = 250, 251, 252, 253
TEXT = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
            vocab_size=300, rope_scaling={"rope_type": "default", "mrope_section": [2, 3, 3], "mrope_interleaved": True})
VISION = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=64, patch_size=16, spatial_merge_size=2,
              temporal_patch_size=2, num_position_embeddings=16, deepstack_visual_indexes=[0, 2])
GRID = (1, 4, 4)  # one image of 4 x 4 patches: 4 tokens after the 2 x 2 merge


def make(moe, out, seed=0):
    transformers = L._quiet_transformers()
    text = dict(TEXT)
    if moe:
        text.update(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24, decoder_sparse_step=1, mlp_only_layers=[1])
    cfg_cls = transformers.Qwen3VLMoeConfig if moe else transformers.Qwen3VLConfig
    model_cls = transformers.Qwen3VLMoeForConditionalGeneration if moe else transformers.Qwen3VLForConditionalGeneration
    cfg = cfg_cls(text_config=text, vision_config=dict(VISION), image_token_id=IMAGE, video_token_id=VIDEO,
                  vision_start_token_id=VSTART, vision_end_token_id=VEND, tie_word_embeddings=False)
    torch.manual_seed(seed)
    m = model_cls(cfg)
    L.randomize_(m, seed)
    m.save_pretrained(out)
    return out


def logits(d, moe):
    transformers = L._quiet_transformers()
    cls = transformers.Qwen3VLMoeForConditionalGeneration if moe else transformers.Qwen3VLForConditionalGeneration
    m = cls.from_pretrained(d, local_files_only=True, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    t, h, w = GRID
    n_tokens = t * h * w // 4
    ids = [1, 17, VSTART] + [IMAGE] * n_tokens + [VEND, 42, 99, 3, 128, 77]
    g = torch.Generator().manual_seed(7)
    pixels = torch.randn(t * h * w, 3 * VISION["temporal_patch_size"] * VISION["patch_size"] ** 2, generator=g)
    types = [1 if i == IMAGE else 0 for i in ids]
    with torch.no_grad():
        return m(input_ids=torch.tensor([ids]), pixel_values=pixels, image_grid_thw=torch.tensor([list(GRID)]),
                 mm_token_type_ids=torch.tensor([types])).logits[0]


def dcp_state(d):
    """The DCP checkpoint under d/<tracker>/ loaded by torch's own dcp.load, as MindSpeed-MM's dcp_to_hf loads it:
    {"model": {"model." + HF name: tensor}, "checkpoint_version": value}."""
    import torch.distributed.checkpoint as dcp
    with open(os.path.join(d, "latest_checkpointed_iteration.txt")) as fh:
        it = fh.read().strip()
    rel = os.path.join(d, it)
    md = dcp.FileSystemReader(rel).read_metadata()
    sd = {"model": {}, "checkpoint_version": None}
    for k, m in md.state_dict_metadata.items():
        if k == "checkpoint_version":
            continue
        assert k.startswith("model.model."), k
        sd["model"][k[len("model."):]] = torch.empty(m.size, dtype=m.properties.dtype)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dcp.load(sd, checkpoint_id=rel, no_dist=True)
    return it, sd


def mm_read(d, tp, pp, ep, llm_pp, vit_pp, deepstack):
    """An independent reader of a MindSpeed-MM Qwen3-VL checkpoint (Qwen3VLMegatronConverter's names and
    qwen3_vl_tp_patterns, written here from its source): rank files mp_rank_TT[_PPP][_EEE] -> HF tensors of
    transformers 5's layout (experts stacked [E, 2I, H] / [E, H, I])."""
    with open(os.path.join(d, "latest_checkpointed_iteration.txt")) as fh:
        assert fh.read().strip() == "release"
    files = {}
    for t in range(tp):
        for p in range(pp):
            for e in range(ep):
                name = "mp_rank_%02d" % t + ("_%03d" % p if pp > 1 else "") + ("_%03d" % e if ep > 1 else "")
                ck = torch.load(os.path.join(d, "release", name, "model_optim_rng.pt"), weights_only=True)
                assert sorted(ck) == ["checkpoint_version", "model"], sorted(ck)
                files[(t, p, e)] = ck["model"]
    towers = (("text_decoder.decoder.layers.", llm_pp), ("image_encoder.encoder.blocks.layers.", vit_pp))
    per_ep = None
    merged = {}  # global name -> {tp rank: tensor}
    for (t, p, e), sd in sorted(files.items()):
        for k, v in sd.items():
            for prefix, dist in towers:
                if k.startswith(prefix):
                    local, rest = k[len(prefix):].split(".", 1)
                    k = prefix + str(sum(dist[:p]) + int(local)) + "." + rest
            if ".local_experts." in k:
                n = int(k.split(".local_experts.", 1)[1].split(".", 1)[0])
                per_ep = max(per_ep or 0, n + 1)
                k = (k, e)  # numbered globally below, once the experts per EP rank are known
            elif e > 0:  # every EP rank's file repeats the dense tensors
                assert torch.equal(v, merged[k][t]), "%s differs between EP ranks" % k
                continue
            merged.setdefault(k, {})[t] = v
    # global expert number: EP rank e holds experts [e * per_ep, (e + 1) * per_ep)
    out = {}
    for k, ranks in merged.items():
        if isinstance(k, tuple):
            (name, e) = k
            head, rest = name.split(".local_experts.", 1)
            n, rest = rest.split(".", 1)
            out.setdefault("%s.local_experts.%d.%s" % (head, e * per_ep + int(n), rest), ranks)
        else:
            out[k] = ranks
    def cat(k, dim):
        return torch.cat([out[k][t] for t in range(tp)], dim)
    def glu(k):
        parts = [out[k][t] for t in range(tp)]
        h = [x.shape[0] // 2 for x in parts]
        return torch.cat([x[:n] for x, n in zip(parts, h)] + [x[n:] for x, n in zip(parts, h)], 0)
    def rep(k):
        vs = [out[k][t] for t in range(tp)]
        assert all(torch.equal(vs[0], x) for x in vs), k + " differs across TP ranks"
        return vs[0]
    hf, V, T = {}, "model.visual.", "model.language_model."
    heads = VISION["num_heads"]
    for s in ("weight", "bias"):
        hf[V + "patch_embed.proj." + s] = rep("image_encoder.encoder.patch_embed.proj." + s)
        hf[V + "merger.norm." + s] = rep("image_encoder.projector.layernorm." + s)
        hf[V + "merger.linear_fc1." + s] = cat("image_encoder.projector.encoder.linear_fc1." + s, 0)
    hf[V + "merger.linear_fc2.weight"] = cat("image_encoder.projector.encoder.linear_fc2.weight", 1)
    hf[V + "merger.linear_fc2.bias"] = rep("image_encoder.projector.encoder.linear_fc2.bias")
    hf[V + "pos_embed.weight"] = rep("image_encoder.encoder.pos_embed.weight")
    for l in range(sum(vit_pp)):
        m, h = "image_encoder.encoder.blocks.layers.%d." % l, V + "blocks.%d." % l
        for s in ("weight", "bias"):
            hf[h + "norm1." + s] = rep(m + "input_layernorm." + s)
            hf[h + "norm2." + s] = rep(m + "pre_mlp_layernorm." + s)
            hf[h + "mlp.linear_fc1." + s] = cat(m + "mlp.linear_fc1." + s, 0)
        hf[h + "attn.proj.weight"] = cat(m + "self_attention.linear_proj.weight", 1)
        hf[h + "attn.proj.bias"] = rep(m + "self_attention.linear_proj.bias")
        hf[h + "mlp.linear_fc2.weight"] = cat(m + "mlp.linear_fc2.weight", 1)
        hf[h + "mlp.linear_fc2.bias"] = rep(m + "mlp.linear_fc2.bias")
        w, b = cat(m + "self_attention.linear_qkv.weight", 0), cat(m + "self_attention.linear_qkv.bias", 0)
        W = w.shape[1]
        hf[h + "attn.qkv.weight"] = w.reshape(heads, 3, W // heads, W).transpose(0, 1).reshape(3 * W, W)
        hf[h + "attn.qkv.bias"] = b.reshape(heads, 3, W // heads).transpose(0, 1).reshape(3 * W)
    for i, l in enumerate(deepstack):
        m, h = "image_encoder.encoder.blocks.layers.%d.deepstack_layer." % l, V + "deepstack_merger_list.%d." % i
        for s in ("weight", "bias"):
            hf[h + "norm." + s] = rep(m + "layernorm." + s)
            hf[h + "linear_fc1." + s] = cat(m + "encoder.linear_fc1." + s, 0)
        hf[h + "linear_fc2.weight"] = cat(m + "encoder.linear_fc2.weight", 1)
        hf[h + "linear_fc2.bias"] = rep(m + "encoder.linear_fc2.bias")
    hf[T + "embed_tokens.weight"] = cat("text_decoder.embedding.word_embeddings.weight", 0)
    hf[T + "norm.weight"] = rep("text_decoder.decoder.final_layernorm.weight")
    hf["lm_head.weight"] = cat("text_decoder.output_layer.weight", 0)
    G, H, hd = TEXT["num_key_value_heads"], TEXT["num_attention_heads"], TEXT["head_dim"]
    P = H // G
    for l in range(sum(llm_pp)):
        m, h = "text_decoder.decoder.layers.%d." % l, T + "layers.%d." % l
        hf[h + "input_layernorm.weight"] = rep(m + "input_layernorm.weight")
        hf[h + "post_attention_layernorm.weight"] = rep(m + "pre_mlp_layernorm.weight")
        hf[h + "self_attn.q_norm.weight"] = rep(m + "self_attention.q_layernorm.weight")
        hf[h + "self_attn.k_norm.weight"] = rep(m + "self_attention.k_layernorm.weight")
        x = cat(m + "self_attention.linear_qkv.weight", 0).reshape(G, (P + 2) * hd, -1)
        hf[h + "self_attn.q_proj.weight"] = x[:, :P * hd].reshape(H * hd, -1)
        hf[h + "self_attn.k_proj.weight"] = x[:, P * hd:(P + 1) * hd].reshape(G * hd, -1)
        hf[h + "self_attn.v_proj.weight"] = x[:, (P + 1) * hd:].reshape(G * hd, -1)
        hf[h + "self_attn.o_proj.weight"] = cat(m + "self_attention.linear_proj.weight", 1)
        if m + "mlp.router.weight" in out:
            hf[h + "mlp.gate.weight"] = rep(m + "mlp.router.weight")
            n = len([k for k in out if k.startswith(m + "mlp.experts.local_experts.") and k.endswith("linear_fc1.weight")])
            hf[h + "mlp.experts.gate_up_proj"] = torch.stack([glu(m + "mlp.experts.local_experts.%d.linear_fc1.weight" % e) for e in range(n)])
            hf[h + "mlp.experts.down_proj"] = torch.stack([cat(m + "mlp.experts.local_experts.%d.linear_fc2.weight" % e, 1) for e in range(n)])
        else:
            fc1 = glu(m + "mlp.linear_fc1.weight")
            hf[h + "mlp.gate_proj.weight"], hf[h + "mlp.up_proj.weight"] = fc1[:fc1.shape[0] // 2], fc1[fc1.shape[0] // 2:]
            hf[h + "mlp.down_proj.weight"] = cat(m + "mlp.linear_fc2.weight", 1)
    return hf, files


def released_copy(src, dst):
    """A copy of the MoE source with its fused experts in the released orientation ([E, H, 2I] / [E, I, H], as Qwen's own
    checkpoints store them); returns its tensors."""
    os.makedirs(dst)
    for f in os.listdir(src):
        if not f.endswith(".safetensors"):
            with open(os.path.join(src, f), "rb") as a, open(os.path.join(dst, f), "wb") as b:
                b.write(a.read())
    sd = load_file(os.path.join(src, "model.safetensors"))
    for k in list(sd):
        if k.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
            sd[k] = sd[k].transpose(1, 2).contiguous()
    save_file(sd, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    return sd


class Qwen3VL(L.InteropCase):
    def source(self, moe):
        d = self.path("hf-moe" if moe else "hf-dense")
        if not os.path.isdir(d):
            make(moe, d)
        return d

    def assert_same(self, a, b, what):
        self.assertEqual(sorted(a), sorted(b), what)
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), "%s: %s differs" % (what, k))

    def check(self, moe):
        name = "moe" if moe else "dense"
        src = self.source(moe)
        self.assertIn("qwen-vl", L.run("inspect", src).stdout)
        ref = L.safe_open_all(src)
        out = L.convert(src, self.path(name + "-hf"), "--to", "hf", "--max-shard-size", "100KB")
        self.assert_same(ref, L.safe_open_all(out), name + " HF -> HF")
        lref = logits(src, moe)
        self.assertTrue(torch.equal(lref, logits(out, moe)), name + ": logits differ")
        L.report("qwen3_vl %s HF -> HF (sharded): %d tensors bit-identical, image+text logits identical (max |logit| %.3g)"
                 % (name, len(ref), lref.abs().max()))
        # MindSpeed-MM's FSDP2 layout, read by torch's DCP loader.
        d = L.convert(src, self.path(name + "-dcp"), "--to", "dcp", "--dcp-layout", "mindspeed", "--dist-files", "2")
        it, sd = dcp_state(d)
        self.assertEqual(it, "release")
        self.assertEqual(sd["checkpoint_version"], 3.0)
        self.assertEqual(sorted(sd["model"]), sorted("model." + k for k in ref))
        for k, v in ref.items():
            got = sd["model"]["model." + k]
            if k.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
                self.assertEqual(list(got.shape), [v.shape[0] * v.shape[1], v.shape[2]], k)  # viewed (-1, last dim)
                got = got.reshape(v.shape)
            self.assertTrue(torch.equal(got, v), "DCP: %s differs" % k)
        back = L.convert(d, self.path(name + "-dcp-back"), "--to", "hf")
        self.assert_same(ref, L.safe_open_all(back), name + " DCP -> HF")
        self.assertTrue(torch.equal(lref, logits(back, moe)), name + ": logits after DCP differ")
        L.report("qwen3_vl %s HF -> MindSpeed-MM FSDP2 DCP (release/, 2 files): torch dcp.load gives {model: {model.<HF>: t}, "
                 "checkpoint_version 3.0}%s; back to HF bit-exact, logits identical"
                 % (name, ", fused experts viewed 2-D" if moe else ""))
        return src, ref, lref

    def test_dense(self):
        self.check(False)

    def test_moe(self):
        src, ref, lref = self.check(True)
        # The released orientation of the fused experts ([E, H, 2I] / [E, I, H]): read, kept, loaded the same.
        rel = self.path("moe-released")
        sd = released_copy(src, rel)
        out = L.convert(rel, self.path("moe-released-hf"), "--to", "hf")
        self.assert_same(sd, L.safe_open_all(out), "released orientation HF -> HF")
        self.assertTrue(torch.equal(lref, logits(out, True)))
        # Negative twin: two experts' rows swapped in the DCP data change the model read back.
        d = self.path("moe-dcp")
        it, dsd = dcp_state(d)
        k = "model.model.language_model.layers.0.mlp.experts.down_proj"
        per = ref[k[len("model."):]].shape[1]
        t = dsd["model"][k].clone()
        t[:per], t[per:2 * per] = dsd["model"][k][per:2 * per], dsd["model"][k][:per]
        sw = self.path("moe-dcp-swapped")
        import shutil
        import warnings
        import torch.distributed.checkpoint as dcp
        shutil.copytree(d, sw)
        shutil.rmtree(os.path.join(sw, it))
        dsd["model"][k] = t
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dcp.save(dsd, checkpoint_id=os.path.join(sw, it), no_dist=True)
        back = L.convert(sw, self.path("moe-dcp-swapped-hf"), "--to", "hf")
        diff = (logits(back, True) - lref).abs().max().item()
        L.report("qwen3_vl moe: the released expert orientation read and kept, logits identical; experts 0 and 1 swapped in a "
                 "torch-saved MindSpeed-MM DCP twin move the logits by %.3g" % diff)
        self.assertGreater(diff, 1e-5)
        # mm-convert Qwen3VLConverter's documented lines: hf_to_dcp = the direct conversion byte for byte; dcp_to_hf from
        # the iteration directory (as after training) with --to_bf16 True = the source cast by torch.
        import subprocess
        env = {**os.environ, "CKHOST_PLUGIN_PATH": ""}

        def mmc(*args):
            p = subprocess.run([L.CKHOST, "mm-convert", "Qwen3VLConverter", *args], capture_output=True, text=True, env=env)
            return p
        p = mmc("hf_to_dcp", "--hf_dir", src, "--dcp_dir", self.path("mmc-dcp"))
        self.assertEqual(p.returncode, 0, p.stderr)
        direct = L.convert(src, self.path("mmc-direct"), "--to", "dcp", "--dcp-layout", "mindspeed")
        self.assertEqual(sorted(L.tree_files(direct)), sorted(L.tree_files(self.path("mmc-dcp"))))
        for f in L.tree_files(direct):
            with open(os.path.join(direct, f), "rb") as x, open(os.path.join(self.path("mmc-dcp"), f), "rb") as y:
                self.assertEqual(x.read(), y.read(), f)
        p = mmc("dcp_to_hf", "--load_dir", os.path.join(self.path("mmc-dcp"), "release"), "--save_dir", self.path("mmc-hf"),
                "--model_assets_dir", src, "--to_bf16", "True")
        self.assertEqual(p.returncode, 0, p.stderr)
        got = L.safe_open_all(self.path("mmc-hf"))
        self.assertEqual(sorted(got), sorted(ref))
        for k in ref:
            self.assertTrue(torch.equal(got[k], ref[k].to(torch.bfloat16)), k)
        p = mmc("hf_to_dcp", "--hf_dir", src, "--dcp_dir", self.path("mmc-tie"), "--tie_weight", "true")
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("--tie_weight true is not supported", p.stderr)
        self.assertFalse(os.path.exists(self.path("mmc-tie")))
        L.report("mm-convert Qwen3VLConverter hf_to_dcp = direct conversion byte for byte; dcp_to_hf from release/ with --to_bf16 "
                 "True = torch's bf16 cast of the source; --tie_weight true refused in one line")

    def test_mindspeed_mm(self):
        # Qwen3VLMegatronConverter's layout: TP2 x PP2 (llm [1,1], vit [2,1]: deepstack mergers of blocks 0 and 2 on
        # either stage) x EP2, from the MoE source with its experts in the released orientation; the test's reader
        # gives transformers' layout back bit for bit, ckhost reads it back bit-exact with the same logits.
        src = self.source(True)
        ref = L.safe_open_all(src)
        lref = logits(src, True)
        for name, args, tp, pp, ep, llm, vit in (
                ("mm-tp1", [], 1, 1, 1, [2], [3]),
                ("mm-ep2", ["--ep", "2"], 1, 1, 2, [2], [3]),
                ("mm-tp2-pp2-ep2", ["--tp", "2", "--pp", "2", "--pp-layers", "1,1", "--stack-pp-layers", "1=2,1", "--ep", "2"], 2, 2, 2,
                 [1, 1], [2, 1])):
            mm = L.convert(src, self.path(name), "--to", "mindspeed-mm", *args)
            hf, files = mm_read(mm, tp, pp, ep, llm, vit, VISION["deepstack_visual_indexes"])
            self.assertEqual(sorted(hf), sorted(ref), name)
            for k in ref:
                self.assertTrue(torch.equal(hf[k], ref[k]), "%s: %s differs" % (name, k))
            back = L.convert(mm, self.path(name + "-back"), "--to", "hf")
            b = L.safe_open_all(back)
            self.assertTrue(sorted(b) == sorted(ref) and all(torch.equal(b[k], ref[k]) for k in ref), name)
            self.assertTrue(torch.equal(logits(back, True), lref), name)
        s0, s1 = files[(0, 0, 0)], files[(0, 1, 0)]
        self.assertIn("image_encoder.encoder.pos_embed.weight", s0)
        self.assertIn("image_encoder.encoder.blocks.layers.0.deepstack_layer.encoder.linear_fc1.weight", s0)
        self.assertIn("image_encoder.encoder.blocks.layers.0.deepstack_layer.layernorm.weight", s1)  # block 2 = stage 1's 0
        self.assertIn("image_encoder.projector.encoder.linear_fc2.weight", s1)
        self.assertIn("text_decoder.decoder.layers.0.mlp.experts.local_experts.1.linear_fc1.weight", s0)
        self.assertNotIn("text_decoder.decoder.layers.0.mlp.experts.local_experts.2.linear_fc1.weight", s0)  # 2 of 4 per EP rank
        # From the released expert orientation: the same rank files.
        rel = self.path("moe-released-mm-src")
        sd = released_copy(src, rel)
        mm2 = L.convert(rel, self.path("mm-released"), "--to", "mindspeed-mm", "--ep", "2")
        for f in L.tree_files(self.path("mm-ep2")):
            if f.endswith(".pt"):
                with open(os.path.join(self.path("mm-ep2"), f), "rb") as x, open(os.path.join(mm2, f), "rb") as y:
                    self.assertEqual(x.read(), y.read(), f)
        # Negative twin: experts 0 and 2 (EP rank 0's local 0 and EP rank 1's local 0) swapped between the rank files.
        sw = self.path("mm-ep2-swapped")
        import shutil
        shutil.copytree(self.path("mm-ep2"), sw)
        fa, fb = (os.path.join(sw, "release", "mp_rank_00_%03d" % e, "model_optim_rng.pt") for e in (0, 1))
        ca, cb = torch.load(fa, weights_only=True), torch.load(fb, weights_only=True)
        k = "text_decoder.decoder.layers.0.mlp.experts.local_experts.0.linear_fc2.weight"
        ca["model"][k], cb["model"][k] = cb["model"][k], ca["model"][k]
        torch.save(ca, fa)
        torch.save(cb, fb)
        hf, _ = mm_read(sw, 1, 1, 2, [2], [3], VISION["deepstack_visual_indexes"])
        self.assertFalse(torch.equal(hf["model.language_model.layers.0.mlp.experts.down_proj"],
                                     ref["model.language_model.layers.0.mlp.experts.down_proj"]))
        diff = (logits(L.convert(sw, self.path("mm-ep2-swapped-hf"), "--to", "hf"), True) - lref).abs().max().item()
        self.assertGreater(diff, 1e-5)
        # mm-convert Qwen3VLMegatronConverter's lines with ep_size: the same bytes as the direct conversion; mm_to_hf back.
        import subprocess
        env = {**os.environ, "CKHOST_PLUGIN_PATH": ""}
        pc = "--cfg.parallel_config."

        def mmc(*args):
            return subprocess.run([L.CKHOST, "mm-convert", "Qwen3VLMegatronConverter", *args], capture_output=True, text=True, env=env)
        p = mmc("hf_to_mm", "--cfg.mm_dir", self.path("mmc"), "--cfg.hf_config.hf_dir", src, pc + "llm_pp_layers", "[[1,1]]",
                pc + "vit_pp_layers", "[[2,1]]", pc + "tp_size", "2", pc + "ep_size", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        for f in L.tree_files(self.path("mm-tp2-pp2-ep2")):
            if f.endswith(".pt"):
                with open(os.path.join(self.path("mm-tp2-pp2-ep2"), f), "rb") as x, open(os.path.join(self.path("mmc"), f), "rb") as y:
                    self.assertEqual(x.read(), y.read(), f)
        p = mmc("mm_to_hf", "--cfg.mm_dir", self.path("mm-ep2"), "--cfg.save_hf_dir", self.path("mmc-hf"), "--cfg.hf_config.hf_dir", src,
                pc + "llm_pp_layers", "[2]", pc + "vit_pp_layers", "[3]", pc + "ep_size", "2")
        self.assertEqual(p.returncode, 0, p.stderr)
        b = L.safe_open_all(self.path("mmc-hf"))
        self.assertTrue(sorted(b) == sorted(ref) and all(torch.equal(b[k], ref[k]) for k in ref))
        p = mmc("mm_to_hf", "--cfg.mm_dir", self.path("mm-ep2"), "--cfg.save_hf_dir", self.path("mmc-bad"), "--cfg.hf_config.hf_dir", src,
                pc + "llm_pp_layers", "[2]", pc + "vit_pp_layers", "[3]", pc + "ep_size", "4")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("ep_size 4 does not match the checkpoint being read", p.stderr)
        self.assertFalse(os.path.exists(self.path("mmc-bad")))
        L.report("qwen3_vl moe -> MindSpeed-MM (Qwen3VLMegatronConverter names) at TP1, EP2 and TP2 x PP2 (llm [1,1], vit [2,1]) x EP2: "
                 "the test's reader = HF bit for bit, read back bit-exact with identical logits; the released expert orientation "
                 "gives the same rank files; experts swapped between EP rank files caught (logits move by %.3g); mm-convert "
                 "Qwen3VLMegatronConverter hf_to_mm with ep_size 2 = the direct conversion byte for byte, mm_to_hf bit-exact, a "
                 "wrong ep_size refused" % diff)


if __name__ == "__main__":
    L.main()
