"""Qwen3-VL and Qwen3-VL-MoE (vision tower with deepstack mergers + Qwen3 decoder, dense or with fused experts),
checked by transformers 5.24 and torch 2.13's DCP.

Sources are transformers save_pretrained checkpoints of small configs that keep the real key sets (learned
pos_embed, LayerNorm blocks with biases, a merger and two deepstack mergers; per-head q/k norms; MoE layers with a
router and fused gate_up_proj / down_proj), random weights in every tensor.
  - HF -> HF through the qwen-vl model plugin: every tensor bit-identical, transformers' image+text logits
    (pixel_values and image_grid_thw passed directly) identical; the fused experts in the released orientation
    ([E, H, 2I] / [E, I, H], as Qwen's own checkpoints store them) are read and kept as they are;
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
        os.makedirs(rel)
        for f in os.listdir(src):
            if not f.endswith(".safetensors"):
                with open(os.path.join(src, f), "rb") as a, open(os.path.join(rel, f), "wb") as b:
                    b.write(a.read())
        sd = load_file(os.path.join(src, "model.safetensors"))
        for k in list(sd):
            if k.endswith((".mlp.experts.gate_up_proj", ".mlp.experts.down_proj")):
                sd[k] = sd[k].transpose(1, 2).contiguous()
        save_file(sd, os.path.join(rel, "model.safetensors"), metadata={"format": "pt"})
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
        # Qwen3-VL in MindSpeed-MM's Megatron layout is refused by name.
        L.assert_refused(self, src, self.path("mm"), "--to", "mindspeed-mm", needle="Qwen3-VL in MindSpeed-MM's Megatron layout")


if __name__ == "__main__":
    L.main()
