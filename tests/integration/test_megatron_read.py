"""Megatron -> HF and Megatron -> Megatron: round trips are bit-exact; rank files written by torch.save
itself (views, shared storages, _extra_state, optimizer and RNG state) convert correctly; bad rank
files give one-line errors and no output."""
import argparse
import io
import json
import os
import shutil
import struct

import torch

import ckh_testlib as L
from ckh_testlib import run


def megatron_from_hf(sd, cfg, tp, pp, out, shared=True, drop_args=()):
    """Writes Megatron-Core rank files with torch.save, using Megatron's rules (written here, in Python,
    independently of ckhost)."""
    h, H = cfg["hidden_size"], cfg["num_attention_heads"]
    G = cfg.get("num_key_value_heads", H)
    d = cfg.get("head_dim") or h // H
    I, V, Lyr = cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    P = H // G
    Vp = -(-V // (128 * tp)) * (128 * tp)
    args = argparse.Namespace(
        num_layers=Lyr, hidden_size=h, ffn_hidden_size=I, num_attention_heads=H, group_query_attention=G != H,
        num_query_groups=G, kv_channels=d, max_position_embeddings=256, seq_length=256, swiglu=True,
        normalization="RMSNorm", norm_epsilon=1e-5, add_bias_linear=False, add_qkv_bias=False, qk_layernorm=False,
        untie_embeddings_and_output_weights=True, position_embedding_type="rope", rotary_base=10000.0,
        tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp, virtual_pipeline_model_parallel_size=None,
        expert_model_parallel_size=1, padded_vocab_size=Vp, vocab_size=V, make_vocab_size_divisible_by=128,
        transformer_impl="transformer_engine", params_dtype=torch.bfloat16, bf16=True, lr=3e-4, iteration=10)
    for a in drop_args:
        delattr(args, a)
    emb = torch.cat([sd["model.embed_tokens.weight"], torch.zeros(Vp - V, h, dtype=torch.bfloat16)])
    head = torch.cat([sd["lm_head.weight"], torch.zeros(Vp - V, h, dtype=torch.bfloat16)])
    per = Lyr // pp
    os.makedirs(os.path.join(out, "iter_0000010"))
    with open(os.path.join(out, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("10\n")
    for p in range(pp):
        for t in range(tp):
            m = {}
            if p == 0:
                m["embedding.word_embeddings.weight"] = emb.chunk(tp)[t]
            for l in range(per):
                g = p * per + l
                src = f"model.layers.{g}."
                dst = f"decoder.layers.{l}."
                q = sd[src + "self_attn.q_proj.weight"].view(G, P * d, h)
                k = sd[src + "self_attn.k_proj.weight"].view(G, d, h)
                v = sd[src + "self_attn.v_proj.weight"].view(G, d, h)
                qkv = torch.cat([q, k, v], 1).reshape(-1, h)
                n1, n2 = sd[src + "input_layernorm.weight"], sd[src + "post_attention_layernorm.weight"]
                if shared:  # two norms that share one storage, at different offsets
                    buf = torch.cat([n1, n2])
                    n1, n2 = buf[:h], buf[h:]
                m[dst + "self_attention.linear_qkv.layer_norm_weight"] = n1
                m[dst + "self_attention.linear_qkv.weight"] = qkv.chunk(tp)[t]
                m[dst + "self_attention.linear_qkv._extra_state"] = io.BytesIO(b"fp8 meta")
                proj = sd[src + "self_attn.o_proj.weight"].chunk(tp, 1)[t]
                m[dst + "self_attention.linear_proj.weight"] = proj.t().contiguous().t()  # non-contiguous view
                m[dst + "mlp.linear_fc1.layer_norm_weight"] = n2
                gate = sd[src + "mlp.gate_proj.weight"].chunk(tp)[t]
                up = sd[src + "mlp.up_proj.weight"].chunk(tp)[t]
                m[dst + "mlp.linear_fc1.weight"] = torch.cat([gate, up])
                m[dst + "mlp.linear_fc2.weight"] = sd[src + "mlp.down_proj.weight"].chunk(tp, 1)[t].clone()
            if p == pp - 1:
                m["decoder.final_layernorm.weight"] = sd["model.norm.weight"]
                m["output_layer.weight"] = head.chunk(tp)[t]
            name = f"mp_rank_{t:02d}" + (f"_{p:03d}" if pp > 1 else "")
            os.makedirs(os.path.join(out, "iter_0000010", name))
            torch.save({"args": args, "checkpoint_version": 3.0, "iteration": 10, "model": m,
                        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}},
                        "rng_state": [{"random_rng_state": (3, (1, 2), None), "torch_rng_state": torch.ByteTensor(8)}],
                        "num_floating_point_operations_so_far": 123},
                       os.path.join(out, "iter_0000010", name, "model_optim_rng.pt"))


class MegatronReadTests(L.CkhostTestCase):
    def test_round_trips_are_bit_exact(self):
        layouts = {
            "tiny-llama.json": [("--tp", "2", "--pp", "2"), ("--tp", "2", "--vpp", "2", "--pp", "2")],
            "tiny-qwen2.json": [("--tp", "2", "--pp", "3"), ("--pp", "2", "--pp-layers", "2,1")],
            "tiny-qwen3.json": [("--tp", "2", "--pp", "2"), ("--pp", "3", "--pp-layers", "1,1,0")],
            "tiny-minicpm.json": [("--tp", "4", "--pp", "2")],
        }
        for cfgname, lays in layouts.items():
            src = self.synth(cfgname, name="src_" + cfgname[:-5])
            for layout in lays:
                tag = cfgname[:-5] + "_".join(layout).replace("-", "").replace(",", "")
                mg, back = self.path("mg" + tag), self.path("back" + tag)
                run("convert", src, mg, "--to", "megatron", "--progress", "none", *layout)
                run("convert", mg, back, "--to", "hf", "--progress", "none")
                run("verify", src, back)
                a, b = L.read_hf_dir(src), L.read_hf_dir(back)
                self.assertEqual(set(a), set(b))
                for k in a:
                    self.assertTrue(torch.equal(a[k], b[k]), k)
                run("verify", src, mg)  # verify reads Megatron directly through the canonical view

    def test_legacy_layout(self):
        # Pre-Core Megatron names, saved as nested module dicts; tied embeddings with PP > 1 put
        # word_embeddings_for_head on the last stage.
        src = self.synth("tiny-qwen2.json", name="src_q2")
        mg, back = self.path("legacy"), self.path("legacy_back")
        run("convert", src, mg, "--to", "megatron", "--megatron-spec", "legacy", "--tp", "2", "--pp", "3",
            "--progress", "none")
        first = torch.load(os.path.join(mg, "release", "mp_rank_00_000", "model_optim_rng.pt"), weights_only=False)
        last = torch.load(os.path.join(mg, "release", "mp_rank_01_002", "model_optim_rng.pt"), weights_only=False)
        self.assertTrue(first["args"].use_legacy_models)
        lm = first["model"]["language_model"]
        self.assertIn("weight", lm["embedding"]["word_embeddings"])
        self.assertIn("layers.0.self_attention.query_key_value.bias", lm["encoder"])
        self.assertIn("word_embeddings_for_head", last["model"])
        self.assertIn("final_norm.weight", last["model"]["language_model"]["encoder"])
        run("convert", mg, back, "--to", "hf", "--progress", "none")
        run("verify", src, back)
        # Legacy -> Core resplit through the canonical view.
        core = self.path("legacy_to_core")
        run("convert", mg, core, "--to", "megatron", "--tp", "1", "--progress", "none")
        ck = torch.load(os.path.join(core, "release", "mp_rank_00", "model_optim_rng.pt"), weights_only=False)
        self.assertIn("decoder.layers.0.self_attention.linear_qkv.weight", ck["model"])
        run("verify", src, core)
        p = run("convert", self.synth("tiny-qwen3.json", name="q3"), self.path("l3"), "--to", "megatron",
                "--megatron-spec", "legacy", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no q/k layernorm", p.stderr)

    def test_resplit_without_hf_detour_files(self):
        src = self.synth()
        a, b, c = self.path("a"), self.path("b"), self.path("c")
        run("convert", src, a, "--to", "megatron", "--tp", "2", "--pp", "2", "--progress", "none")
        run("convert", a, b, "--to", "megatron", "--tp", "1", "--pp", "4", "--progress", "none")
        run("convert", b, c, "--to", "hf", "--progress", "none")
        run("verify", src, c)
        ck = torch.load(os.path.join(b, "release", "mp_rank_00_003", "model_optim_rng.pt"), weights_only=False)
        self.assertEqual(ck["args"].pipeline_model_parallel_size, 4)
        self.assertEqual(ck["args"].tensor_model_parallel_size, 1)

    def test_reads_rank_files_written_by_torch_save(self):
        src = self.synth()
        with open(os.path.join(src, "config.json")) as f:
            cfg = json.load(f)
        sd = L.read_hf_dir(src)
        mg = self.path("torch_written")
        megatron_from_hf(sd, cfg, tp=2, pp=2, out=mg)
        shutil.copytree(src, os.path.join(mg, "hf"), ignore=shutil.ignore_patterns("*.safetensors"))
        out = self.path("out")
        p = run("convert", mg, out, "--to", "hf", "--progress", "none")
        got = L.read_hf_dir(out)
        self.assertEqual(set(got), set(sd))
        for k in sd:
            self.assertTrue(torch.equal(got[k], sd[k]), k)
        j = json.loads(run("inspect", mg, "--json").stdout)
        self.assertEqual(j["format"], "megatron")
        # Without the hf/ directory, the HF config is rebuilt from args.
        shutil.rmtree(os.path.join(mg, "hf"))
        out2 = self.path("out2")
        run("convert", mg, out2, "--to", "hf", "--progress", "none")
        with open(os.path.join(out2, "config.json")) as f:
            c2 = json.load(f)
        self.assertEqual(c2["num_key_value_heads"], cfg["num_key_value_heads"])
        self.assertEqual(c2["vocab_size"], cfg["vocab_size"])
        run("verify", src, out2)

    def test_two_phase_open_gated_mlp_from_the_model_plugin(self):
        """Args without `swiglu` (older Megatron, hand-made checkpoints): the reader cannot tell how the TP
        shards of linear_fc1 merge. The Llama plugin, chosen by the HF config, says the MLP is gated
        (SDK 1.1 two-phase open), and the result is bit-exact; with no config and no hint, the reader
        refuses by name instead of guessing."""
        src = self.synth()
        with open(os.path.join(src, "config.json")) as f:
            cfg = json.load(f)
        sd = L.read_hf_dir(src)
        mg = self.path("no_swiglu")
        megatron_from_hf(sd, cfg, tp=2, pp=1, out=mg, drop_args=("swiglu",))
        hf = self.path("hfcfg")
        shutil.copytree(src, hf, ignore=shutil.ignore_patterns("*.safetensors"))
        out = self.path("out")
        run("convert", mg, out, "--to", "hf", "--hf-config", hf, "--progress", "none")
        got = L.read_hf_dir(out)
        for k in sd:
            self.assertTrue(torch.equal(got[k], sd[k]), k)
        self.expect_error(mg, "decoder.layers.0.mlp.linear_fc1.weight", "'swiglu'", "gated")

    def expect_error(self, src, *needles):
        out = self.path("bad_out")
        p = run("convert", src, out, "--to", "hf", check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertFalse(os.path.exists(out))
        self.assertNoLeftovers()

    def fresh(self, name):
        src = self.path("src") if os.path.exists(self.path("src")) else self.synth()
        mg = self.path(name)
        run("convert", src, mg, "--to", "megatron", "--tp", "2", "--pp", "2", "--progress", "none")
        return mg, os.path.join(mg, "release", "mp_rank_01_001", "model_optim_rng.pt")

    def test_bad_rank_files(self):
        mg, f = self.fresh("trunc")
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
        self.expect_error(mg, "mp_rank_01_001")
        mg, f = self.fresh("cd")
        with open(f, "rb") as fh:
            data = bytearray(fh.read())
        i = data.rfind(b"PK\x01\x02")
        data[i:i + 4] = b"XXXX"
        with open(f, "wb") as fh:
            fh.write(bytes(data))
        self.expect_error(mg, "mp_rank_01_001", "central directory")
        mg, f = self.fresh("missing")
        shutil.rmtree(os.path.dirname(f))
        self.expect_error(mg, "missing rank directory mp_rank_01_001")
        mg, f = self.fresh("disagree")
        ck = torch.load(f, weights_only=False)
        ck["args"].hidden_size = 128
        torch.save(ck, f)
        self.expect_error(mg, "args.hidden_size")

    def test_storage_smaller_than_tensor_and_pickle_bombs(self):
        mg, f = self.fresh("small")
        # Make a tensor larger than its storage: its size (64,) becomes (99,) in data.pkl.
        import zipfile
        z = zipfile.ZipFile(f)
        pkl = z.read([n for n in z.namelist() if n.endswith("data.pkl")][0])
        names = z.namelist()
        blobs = {n: z.read(n) for n in names}
        z.close()
        key = b"decoder.final_layernorm.weight"
        i = pkl.find(key)
        j = pkl.find(b"K@\x85", i)  # size tuple (64,) as BININT1 64 + TUPLE1
        self.assertGreater(j, 0)
        pkl = pkl[:j] + b"Kc\x85" + pkl[j + 3:]
        blobs[[n for n in names if n.endswith("data.pkl")][0]] = pkl
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zw:
            for n in names:
                zw.writestr(n, blobs[n])
        self.expect_error(mg, "decoder.final_layernorm.weight", "storage")
        # Pickle bombs in data.pkl: deep nesting, huge memo index, giant declared length.
        for bomb, needle in [(b"\x80\x02" + b"(" * 100000 + b"N.", "deeper"),
                             (b"\x80\x02Nr\xff\xff\xff\x7f.", "memo index"),
                             (b"\x80\x02X\xff\xff\xff\x7f", "2147483647 bytes")]:
            mg, f = self.fresh("bomb%d" % len(bomb))
            z = zipfile.ZipFile(f)
            names = z.namelist()
            blobs = {n: z.read(n) for n in names}
            z.close()
            blobs[[n for n in names if n.endswith("data.pkl")][0]] = bomb
            with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zw:
                for n in names:
                    zw.writestr(n, blobs[n])
            self.expect_error(mg, needle)


if __name__ == "__main__":
    L.main()
