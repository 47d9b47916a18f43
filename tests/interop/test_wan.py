"""Wan 2.1/2.2 DiT: diffusers WanTransformer3DModel <-> the original Wan names, checked by diffusers 0.42.1.

Sources are diffusers save_pretrained checkpoints (diffusion_pytorch_model.safetensors + config.json) of
small WanTransformer3DModel configs that keep the real key sets, with random weights:
  - T2V (Wan2.1-T2V style: no image embedder);
  - FLF2V (image embedder with its position embedding, add_k_proj/add_v_proj/norm_added_k in every
    cross-attention: the I2V key set plus pos_embed), saved in bf16.
ckhost converts each to the original Wan names (--wan-names original: text_embedding.0/2,
time_embedding.0/2, time_projection.1, img_emb.proj.{0,1,3,4}, img_emb.emb_pos, blocks.N.self_attn.q/k/v/o,
cross_attn.k_img/v_img/norm_k_img, norm3 = diffusers norm2, ffn.0/2, modulation, head.modulation,
head.head, with an original WanModel config.json) and back. Checked: the original-named file holds exactly
the expected key set, the cross-attention norm moved from norm2 to norm3 by value, the round trip is
bit-identical tensor by tensor, and diffusers from_pretrained of the converted-back directory gives the
source model's forward output exactly; a sharded output is named diffusion_pytorch_model-0000i-of-0000N with
diffusers' index, loads in diffusers (forward equal to that of diffusers' own shards of the source) and
reads back. Negative twins of the original-named file (original
norm2, the FFN norm, has no weights, so the norm twin swaps block 0's and block 1's norm3): norm3 swapped,
two heads' q rows of one block swapped, k_img and v_img swapped; converted back, diffusers' output changes.
Missing tensors (in either naming) and wrong shapes are refused by name, with expected vs actual.

Run: tests/interop/run_interop.sh tests/interop/test_wan.py --ckhost=build/bin/ckhost
"""
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import interop_lib as L  # noqa: E402

HEADS, HEAD_DIM = 2, 12
DIM = HEADS * HEAD_DIM
TEXT_LEN = 512  # diffusers' WanAttnProcessor splits image tokens off a 512-token text context
BASE = dict(patch_size=[1, 2, 2], num_attention_heads=HEADS, attention_head_dim=HEAD_DIM, in_channels=4, out_channels=4,
            text_dim=32, freq_dim=16, ffn_dim=48, num_layers=2, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
            eps=1e-6, rope_max_seq_len=1024)
CONFIGS = {
    "t2v": (dict(BASE), torch.float32),
    "flf2v": (dict(BASE, image_dim=20, added_kv_proj_dim=DIM, pos_embed_seq_len=6, in_channels=8), torch.bfloat16),
}
WEIGHTS = "diffusion_pytorch_model.safetensors"


def expected_original_keys(cfg):
    """The original WanModel key set (Wan-Video/Wan2.1 wan/modules/model.py) of a config."""
    k = ["patch_embedding.weight", "patch_embedding.bias"]
    for m in ("text_embedding.0", "text_embedding.2", "time_embedding.0", "time_embedding.2", "time_projection.1"):
        k += [m + ".weight", m + ".bias"]
    if cfg.get("image_dim"):
        for i in (0, 1, 3, 4):
            k += [f"img_emb.proj.{i}.weight", f"img_emb.proj.{i}.bias"]
        if cfg.get("pos_embed_seq_len"):
            k.append("img_emb.emb_pos")
    for n in range(cfg["num_layers"]):
        p = f"blocks.{n}."
        for a in ("self_attn", "cross_attn"):
            for m in ("q", "k", "v", "o"):
                k += [f"{p}{a}.{m}.weight", f"{p}{a}.{m}.bias"]
            k += [f"{p}{a}.norm_q.weight", f"{p}{a}.norm_k.weight"]
        if cfg.get("added_kv_proj_dim"):
            k += [p + "cross_attn.k_img.weight", p + "cross_attn.k_img.bias", p + "cross_attn.v_img.weight",
                  p + "cross_attn.v_img.bias", p + "cross_attn.norm_k_img.weight"]
        k += [p + "norm3.weight", p + "norm3.bias", p + "ffn.0.weight", p + "ffn.0.bias", p + "ffn.2.weight",
              p + "ffn.2.bias", p + "modulation"]
    k += ["head.modulation", "head.head.weight", "head.head.bias"]
    return sorted(k)


def diffusers():
    import diffusers as d
    d.utils.logging.set_verbosity_error()
    d.utils.logging.disable_progress_bar()
    return d


def make_wan(name, out, seed=0):
    cfg, dtype = CONFIGS[name]
    d = diffusers()
    torch.manual_seed(seed)
    m = d.WanTransformer3DModel(**cfg)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in m.named_parameters():
            r = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.1 * r if "norm" in n and n.endswith("weight") else 0.1 * r if n.endswith(".bias") else 0.2 * r)
    m.to(dtype).save_pretrained(out)
    return out


def load(d):
    m = diffusers().WanTransformer3DModel.from_pretrained(d, torch_dtype=torch.float32)
    m.eval()
    return m


def forward(model, name):
    cfg, _ = CONFIGS[name]
    g = torch.Generator().manual_seed(123)
    x = torch.randn(1, cfg["in_channels"], 2, 4, 4, generator=g)
    t = torch.tensor([417.0])
    kw = {}
    if cfg.get("image_dim"):
        text = torch.randn(1, TEXT_LEN, cfg["text_dim"], generator=g)
        # FLF2V: two frames' image tokens, pos_embed_seq_len = 2 x tokens
        kw["encoder_hidden_states_image"] = torch.randn(2, cfg["pos_embed_seq_len"] // 2, cfg["image_dim"], generator=g)
    else:
        text = torch.randn(1, 7, cfg["text_dim"], generator=g)
    with torch.no_grad():
        return model(hidden_states=x, timestep=t, encoder_hidden_states=text, return_dict=False, **kw)[0]


# MindSpeed-MM's WanConverter names (checkpoint/sora_model/wan_converter.py), as data: an exact map, then
# substring replacements in order; the test's own transcription, independent of ckhost's.
MM_EXACT = {
    "condition_embedder.text_embedder.linear_1": "text_embedding.linear_1", "condition_embedder.text_embedder.linear_2": "text_embedding.linear_2",
    "condition_embedder.time_embedder.linear_1": "time_embedding.0", "condition_embedder.time_embedder.linear_2": "time_embedding.2",
    "condition_embedder.time_proj": "time_projection.1", "condition_embedder.image_embedder.ff.net.0.proj": "img_emb.proj.1",
    "condition_embedder.image_embedder.ff.net.2": "img_emb.proj.3", "condition_embedder.image_embedder.norm1": "img_emb.proj.0",
    "condition_embedder.image_embedder.norm2": "img_emb.proj.4", "proj_out": "head.head"}
MM_REPLACE = [("attn1.norm_q", "self_attn.q_norm"), ("attn1.norm_k", "self_attn.k_norm"), ("attn2.norm_q", "cross_attn.q_norm"),
              ("attn2.norm_k", "cross_attn.k_norm"), ("attn1.to_q.", "self_attn.proj_q."), ("attn1.to_k.", "self_attn.proj_k."),
              ("attn1.to_v.", "self_attn.proj_v."), ("attn1.to_out.0.", "self_attn.proj_out."), ("attn2.to_q.", "cross_attn.proj_q."),
              ("attn2.to_k.", "cross_attn.proj_k."), ("attn2.to_v.", "cross_attn.proj_v."), ("attn2.add_k_proj", "cross_attn.k_img"),
              ("attn2.add_v_proj", "cross_attn.v_img"), ("attn2.norm_added_k", "cross_attn.k_norm_img"),
              ("attn2.to_out.0.", "cross_attn.proj_out."), (".ffn.net.0.proj.", ".ffn.0."), (".ffn.net.2.", ".ffn.2."),
              ("scale_shift_table", "modulation"), (".norm2.", ".norm3.")]


def mm_name(d):
    if d == "scale_shift_table":
        return "head.modulation"
    if d == "condition_embedder.image_embedder.pos_embed":
        return "img_emb.emb_pos"
    mod, _, leaf = d.rpartition(".")
    if mod in MM_EXACT:
        return MM_EXACT[mod] + "." + leaf
    for a, b in MM_REPLACE:
        d = d.replace(a, b)
    return d


class WanTest(L.InteropCase):
    def read_mm(self, mm, pp_layers):
        """The test's own reader of a MindSpeed-MM Wan checkpoint: global MM names -> tensors, with the
        payload and each tensor's stage checked."""
        got, first = {}, 0
        for p, n in enumerate(pp_layers):
            ck = torch.load(os.path.join(mm, "release", "mp_rank_00_%03d" % p, "model_optim_rng.pt"), weights_only=True)
            self.assertEqual(sorted(ck), ["model"])  # WanConverter's save_as_mm without VPP
            for k, v in ck["model"].items():
                if k.startswith("blocks."):
                    _, l, rest = k.split(".", 2)
                    self.assertLess(int(l), n)
                    k = "blocks.%d.%s" % (first + int(l), rest)
                elif k.startswith("head."):
                    self.assertEqual(p, len(pp_layers) - 1, k)
                else:
                    self.assertEqual(p, 0, k)
                self.assertNotIn(k, got)
                got[k] = v
            first += n
        return got

    def check_mindspeed_mm(self, name, pp_layers):
        """HF -> MindSpeed-MM (blocks over the stages, embedders first, head last, files {"model": ...})
        read by the test itself, then back to diffusers: bit-exact, the same forward output."""
        src = make_wan(name, self.path(name + "-mm-src"))
        mm = L.convert(src, self.path(name + "-mm"), "--to", "mindspeed-mm", "--pp", str(len(pp_layers)),
                       "--pp-layers", ",".join(map(str, pp_layers)))
        ref = L.safe_open_all(src)
        got = self.read_mm(mm, pp_layers)
        self.assertEqual(sorted(got), sorted(mm_name(k) for k in ref))
        for k in ref:
            self.assertTrue(torch.equal(got[mm_name(k)], ref[k]), k)
        back = L.convert(mm, self.path(name + "-mm-back"), "--to", "hf")
        b = L.safe_open_all(back)
        self.assertEqual(sorted(b), sorted(ref))
        self.assertTrue(all(torch.equal(b[k], ref[k]) for k in ref))
        self.assertTrue(torch.equal(forward(load(back), name), forward(load(src), name)))
        L.report("wan %s -> MindSpeed-MM PP %s -> diffusers: names as WanConverter's, bit-exact, forward identical" % (name, pp_layers))

    def test_mindspeed_mm(self):
        self.check_mindspeed_mm("t2v", [1, 1])
        self.check_mindspeed_mm("flf2v", [2, 0])
        # Negative twin: block 0's and block 1's query weights swapped between the two stage files (each
        # numbered 0 locally): the reader's blocks no longer equal the source's.
        sw = self.path("t2v-mm-swapped")
        shutil.copytree(self.path("t2v-mm"), sw)
        files = [os.path.join(sw, "release", "mp_rank_00_%03d" % p, "model_optim_rng.pt") for p in (0, 1)]
        cks = [torch.load(f, weights_only=True) for f in files]
        k = "blocks.0.self_attn.proj_q.weight"
        cks[0]["model"][k], cks[1]["model"][k] = cks[1]["model"][k], cks[0]["model"][k]
        for f, ck in zip(files, cks):
            torch.save(ck, f)
        got, ref = self.read_mm(sw, [1, 1]), L.safe_open_all(self.path("t2v-mm-src"))
        self.assertFalse(torch.equal(got["blocks.0.self_attn.proj_q.weight"], ref["blocks.0.attn1.to_q.weight"]))
        back = L.safe_open_all(L.convert(sw, self.path("t2v-mm-swapped-back"), "--to", "hf"))
        self.assertFalse(torch.equal(back["blocks.1.attn1.to_q.weight"], ref["blocks.1.attn1.to_q.weight"]))
        # mm-convert WanConverter's documented lines (source_path / target_path): the same bytes as the direct
        # conversion, and back; its README's target_path = source_path is refused in one line.
        import subprocess
        src, direct = self.path("t2v-mm-src"), self.path("t2v-mm")
        env = {**os.environ, "CKHOST_PLUGIN_PATH": ""}

        def mm(*args):
            return subprocess.run([L.CKHOST, "mm-convert", "WanConverter", *args], capture_output=True, text=True, env=env)
        p = mm("hf_to_mm", "--cfg.source_path", src, "--cfg.target_path", self.path("mmc"), "--cfg.target_parallel_config.pp_layers", "[1,1]")
        self.assertEqual(p.returncode, 0, p.stderr)
        for f in sorted(L.tree_files(direct)):
            with open(os.path.join(direct, f), "rb") as x, open(os.path.join(self.path("mmc"), f), "rb") as y:
                self.assertEqual(x.read(), y.read(), f)
        p = mm("mm_to_hf", "--cfg.source_path", self.path("mmc"), "--cfg.target_path", self.path("mmc-back"), "--cfg.hf_dir", src)
        self.assertEqual(p.returncode, 0, p.stderr)
        a, b = L.safe_open_all(src), L.safe_open_all(self.path("mmc-back"))
        self.assertTrue(sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a))
        # VPP: nested pp_layers, one list per virtual chunk (files {model0, model1, checkpoint_version}); stage order
        # v * PP + p as WanConverter's _pp_vpp_split flattens it: block 0 in chunk 0 of rank 0 with the embedders, block
        # 1 in chunk 1 of rank 1 with the head.
        p = mm("hf_to_mm", "--cfg.source_path", src, "--cfg.target_path", self.path("vpp"), "--cfg.target_parallel_config.pp_layers",
               "[[1,0],[0,1]]")
        self.assertEqual(p.returncode, 0, p.stderr)
        cks = [torch.load(os.path.join(self.path("vpp"), "release", "mp_rank_00_%03d" % r, "model_optim_rng.pt"), weights_only=True)
               for r in (0, 1)]
        for ck in cks:
            self.assertEqual(sorted(ck), ["checkpoint_version", "model0", "model1"])
        self.assertIn("blocks.0.self_attn.proj_q.weight", cks[0]["model0"])
        self.assertIn("patch_embedding.weight", cks[0]["model0"])
        self.assertFalse(cks[1]["model0"])
        self.assertIn("blocks.0.self_attn.proj_q.weight", cks[1]["model1"])
        self.assertIn("head.head.weight", cks[1]["model1"])
        self.assertTrue(torch.equal(cks[1]["model1"]["blocks.0.self_attn.proj_q.weight"], a["blocks.1.attn1.to_q.weight"]))
        b = L.safe_open_all(L.convert(self.path("vpp"), self.path("vpp-back"), "--to", "hf"))
        self.assertTrue(sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a))
        p = mm("hf_to_mm", "--cfg.source_path", src, "--cfg.target_path", src, "--cfg.target_parallel_config.pp_layers", "[1,1]")
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
        self.assertIn("--cfg.target_path is --cfg.source_path", p.stderr)
        self.assertFalse(os.path.exists(os.path.join(src, "release")))

    def convert_pair(self, name):
        src = make_wan(name, self.path(name))
        t0 = time.time()
        orig = L.convert(src, self.path(name + "-orig"), "--to", "hf", "--wan-names", "original")
        back = L.convert(orig, self.path(name + "-back"), "--to", "hf")
        L.report(f"wan {name}: diffusers -> original -> diffusers in {time.time() - t0:.2f} s")
        return src, orig, back

    def check_round_trip(self, name):
        cfg, dtype = CONFIGS[name]
        src, orig, back = self.convert_pair(name)
        self.assertEqual(sorted(os.listdir(orig)), ["config.json", WEIGHTS])
        self.assertEqual(sorted(os.listdir(back)), ["config.json", WEIGHTS])
        a, o, b = (load_file(os.path.join(d, WEIGHTS)) for d in (src, orig, back))
        # The original names, exactly.
        self.assertEqual(sorted(o), expected_original_keys(cfg))
        # The trap: diffusers' norm2 (cross-attention norm) is original norm3; the FFN norm has no weights.
        for n in range(cfg["num_layers"]):
            for s in ("weight", "bias"):
                self.assertTrue(torch.equal(o[f"blocks.{n}.norm3.{s}"], a[f"blocks.{n}.norm2.{s}"]))
            self.assertTrue(torch.equal(o[f"blocks.{n}.cross_attn.q.weight"], a[f"blocks.{n}.attn2.to_q.weight"]))
            self.assertTrue(torch.equal(o[f"blocks.{n}.modulation"], a[f"blocks.{n}.scale_shift_table"]))
        self.assertTrue(torch.equal(o["head.modulation"], a["scale_shift_table"]))
        self.assertTrue(torch.equal(o["text_embedding.2.weight"], a["condition_embedder.text_embedder.linear_2.weight"]))
        if cfg.get("image_dim"):
            self.assertTrue(torch.equal(o["img_emb.proj.3.weight"], a["condition_embedder.image_embedder.ff.net.2.weight"]))
            self.assertTrue(torch.equal(o["img_emb.emb_pos"], a["condition_embedder.image_embedder.pos_embed"]))
            self.assertTrue(torch.equal(o["blocks.1.cross_attn.norm_k_img.weight"], a["blocks.1.attn2.norm_added_k.weight"]))
        # The original config, as WanModel's released config.json states it.
        with open(os.path.join(orig, "config.json")) as fh:
            oc = json.load(fh)
        self.assertEqual(oc["_class_name"], "WanModel")
        self.assertEqual((oc["dim"], oc["num_heads"], oc["num_layers"], oc["ffn_dim"], oc["in_dim"], oc["out_dim"]),
                         (DIM, HEADS, cfg["num_layers"], cfg["ffn_dim"], cfg["in_channels"], cfg["out_channels"]))
        self.assertEqual(oc["model_type"], "flf2v" if cfg.get("pos_embed_seq_len") else "t2v")
        # Bit-identical round trip.
        self.assertEqual(sorted(a), sorted(b))
        for k in a:
            self.assertEqual(a[k].dtype, b[k].dtype, k)
            self.assertTrue(torch.equal(a[k], b[k]), k)
        with open(os.path.join(back, "config.json")) as fh:
            bc = json.load(fh)
        for k, v in cfg.items():
            self.assertEqual(bc[k], v, k)
        # diffusers loads the converted-back model and its forward equals the source's exactly.
        ref = forward(load(src), name)
        out = forward(load(back), name)
        self.assertTrue(torch.equal(ref, out), f"max |d| {(ref - out).abs().max()}")
        L.report(f"wan {name}: {len(a)} tensors bit-identical after the round trip, forward max |d| 0.0 "
                 f"(output {tuple(ref.shape)}, {dtype})")
        # ckhost verify through the canonical (diffusers) view: the original-named file equals the source.
        p = L.run("verify", src, orig)
        self.assertIn("MATCH", p.stdout + p.stderr)
        return src, orig, ref

    def twin(self, name, orig, ref, edit, what):
        bad = self.path(name + "-twin-" + what)
        shutil.copytree(orig, bad)
        f = os.path.join(bad, WEIGHTS)
        t = load_file(f)
        edit(t)
        save_file(t, f, metadata={"format": "pt"})
        back = L.convert(bad, self.path(name + "-twin-back-" + what), "--to", "hf")
        out = forward(load(back), name)
        self.assertFalse(torch.equal(ref, out), f"{what}: a broken checkpoint gave the same output")
        L.report(f"wan {name} twin ({what}): forward max |d| {(ref - out).abs().max().item():.3g}")

    def test_t2v(self):
        src, orig, ref = self.check_round_trip("t2v")
        # Sharded: diffusers' file names and index, loaded by diffusers, read back by ckhost.
        sh = L.convert(orig, self.path("t2v-sharded"), "--to", "hf", "--max-shard-size", "20KB")
        files = sorted(os.listdir(sh))
        self.assertIn("diffusion_pytorch_model.safetensors.index.json", files)
        shards = [f for f in files if f.endswith(".safetensors")]
        self.assertGreater(len(shards), 1)
        self.assertTrue(all(f.startswith("diffusion_pytorch_model-0000") for f in shards), files)
        # diffusers' forward after a sharded load differs from a single-file load in the last bits (7e-7 here,
        # for its own save_pretrained shards too): compare with diffusers' own sharding of the source.
        own = self.path("t2v-own-shards")
        load(src).save_pretrained(own, max_shard_size="20KB")
        self.assertTrue(torch.equal(forward(load(sh), "t2v"), forward(load(own), "t2v")))
        p = L.run("verify", src, sh)
        self.assertIn("MATCH", p.stdout + p.stderr)

        def swap_norm3(t):
            for s in ("weight", "bias"):
                a, b = f"blocks.0.norm3.{s}", f"blocks.1.norm3.{s}"
                t[a], t[b] = t[b].clone(), t[a].clone()
        self.twin("t2v", orig, ref, swap_norm3, "norm3 of blocks 0 and 1 swapped")

        def swap_heads(t):
            w = t["blocks.1.self_attn.q.weight"]
            t["blocks.1.self_attn.q.weight"] = torch.cat([w[HEAD_DIM:], w[:HEAD_DIM]]).contiguous()
        self.twin("t2v", orig, ref, swap_heads, "two heads' q rows swapped")

    def test_flf2v(self):
        _, orig, ref = self.check_round_trip("flf2v")

        def swap_kv_img(t):
            t["blocks.0.cross_attn.k_img.weight"], t["blocks.0.cross_attn.v_img.weight"] = (
                t["blocks.0.cross_attn.v_img.weight"].clone(), t["blocks.0.cross_attn.k_img.weight"].clone())
        self.twin("flf2v", orig, ref, swap_kv_img, "k_img and v_img swapped")

    def test_refusals(self):
        src = make_wan("flf2v", self.path("src"))
        orig = L.convert(src, self.path("orig"), "--to", "hf", "--wan-names", "original")
        # A missing tensor is refused by name, in either naming.
        for d, name in ((src, "blocks.1.attn2.add_v_proj.bias"), (orig, "blocks.1.cross_attn.v_img.bias")):
            bad = self.path("missing-" + os.path.basename(d))
            shutil.copytree(d, bad)
            t = load_file(os.path.join(bad, WEIGHTS))
            del t[name]
            save_file(t, os.path.join(bad, WEIGHTS), metadata={"format": "pt"})
            p = L.run("convert", bad, self.path("out-" + os.path.basename(bad)), "--to", "hf", check=False)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn(name, p.stderr)
            self.assertIn("missing 1 tensor", p.stderr)
            self.assertFalse(os.path.exists(self.path("out-" + os.path.basename(bad))))
        # A wrong shape: expected vs actual, by name.
        bad = self.path("shape")
        shutil.copytree(src, bad)
        with open(os.path.join(bad, "config.json")) as fh:
            cfg = json.load(fh)
        cfg["ffn_dim"] = 40
        with open(os.path.join(bad, "config.json"), "w") as fh:
            json.dump(cfg, fh)
        p = L.run("convert", bad, self.path("out-shape"), "--to", "hf", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("blocks.0.ffn.net.0.proj.weight", p.stderr)
        self.assertIn("[40, 24]", p.stderr)
        self.assertIn("[48, 24]", p.stderr)
        # What the original config cannot state is refused for --wan-names original.
        bad = self.path("rope")
        shutil.copytree(src, bad)
        cfg["ffn_dim"] = 48
        cfg["rope_max_seq_len"] = 2048
        with open(os.path.join(bad, "config.json"), "w") as fh:
            json.dump(cfg, fh)
        p = L.run("convert", bad, self.path("out-rope"), "--to", "hf", "--wan-names", "original", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("rope_max_seq_len 2048", p.stderr)
        p = L.run("convert", src, self.path("out-names"), "--to", "hf", "--wan-names", "megatron", check=False)
        self.assertNotEqual(p.returncode, 0)


if __name__ == "__main__":
    L.main()
