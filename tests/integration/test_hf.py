"""HF safetensors end to end: synth, inspect, reshard, cast, verify, PyTorch interop, logits."""
import json
import os

import torch

import ckh_testlib as L
from ckh_testlib import run


class HfTests(L.CkhostTestCase):
    def test_synth_layout_matches_config_and_loads_in_torch(self):
        src = self.synth()
        sd = L.read_hf_dir(src)
        with open(os.path.join(L.CONFIGS, "tiny-llama.json")) as f:
            cfg = json.load(f)
        h, n = cfg["hidden_size"], cfg["num_hidden_layers"]
        self.assertEqual(sd["model.embed_tokens.weight"].shape, (cfg["vocab_size"], h))
        self.assertEqual(sd["model.embed_tokens.weight"].dtype, torch.bfloat16)
        self.assertEqual(len([k for k in sd if k.endswith("input_layernorm.weight")]), n)
        norm = sd["model.norm.weight"].float()
        self.assertTrue(0.9 < norm.mean().item() < 1.1, "norm weights start near one")
        with open(os.path.join(src, "config.json")) as f:
            self.assertEqual(json.load(f)["hidden_size"], h)
        # same seed, same bytes; another seed, other bytes
        again = self.synth(name="again")
        self.assertEqual(L.tree_hash(src), L.tree_hash(again))
        other = self.synth(name="other", seed=2)
        self.assertNotEqual(L.read_hf_dir(other)["model.norm.weight"].tolist(), norm.tolist())

    def test_inspect_json(self):
        src = self.synth()
        j = json.loads(run("inspect", src, "--json").stdout)
        self.assertEqual(j["format"], "hf")
        self.assertEqual(j["model_family"], "llama")
        sd = L.read_hf_dir(src)
        self.assertEqual(j["totals"]["tensors"], len(sd))
        self.assertEqual(j["totals"]["parameters"], sum(t.numel() for t in sd.values()))
        self.assertIn("complete", j["check"])

    def test_reshard_is_bit_exact_and_hf_shaped(self):
        src = self.synth()
        dst = self.path("sharded")
        run("convert", src, dst, "--to", "hf", "--max-shard-size", "100KB", "--progress", "none")
        files = sorted(os.listdir(dst))
        shards = [f for f in files if f.endswith(".safetensors")]
        self.assertGreater(len(shards), 2)
        self.assertEqual(shards[0], f"model-00001-of-{len(shards):05d}.safetensors")
        with open(os.path.join(dst, "model.safetensors.index.json")) as f:
            index = json.load(f)
        a, b = L.read_hf_dir(src), L.read_hf_dir(dst)
        self.assertEqual(index["metadata"]["total_size"], sum(t.numel() * t.element_size() for t in a.values()))
        self.assertEqual(set(a), set(b))
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)
        for shard in shards:
            _, header = L.read_safetensors_file(os.path.join(dst, shard))
            self.assertEqual(header["__metadata__"], {"format": "pt"})
            with open(os.path.join(dst, shard), "rb") as f:
                n = int.from_bytes(f.read(8), "little")
            self.assertEqual(n % 8, 0, "header padded to 8 bytes")
        self.assertIn("config.json", files)
        p = run("verify", src, dst)
        self.assertIn("MATCH", p.stdout)
        # and back into one file
        one = self.path("one")
        run("convert", dst, one, "--to", "hf", "--progress", "none")
        self.assertEqual(sorted(os.listdir(one)), ["config.json", "model.safetensors"])
        run("verify", src, one)

    def test_cast_f32_exact_and_logits_identical(self):
        src = self.synth()
        f32 = self.path("f32")
        run("convert", src, f32, "--to", "hf", "--dtype", "f32", "--progress", "none")
        a, b = L.read_hf_dir(src), L.read_hf_dir(f32)
        for k in a:
            self.assertEqual(b[k].dtype, torch.float32)
            self.assertTrue(torch.equal(a[k].float(), b[k]), k)
        with open(os.path.join(f32, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(cfg["torch_dtype"], "float32")
        ids = torch.tensor([1, 5, 17, 42, 3, 99, 7])
        la, lb = L.llama_logits(a, cfg, ids), L.llama_logits(b, cfg, ids)
        self.assertTrue(torch.equal(la, lb))
        run("verify", src, f32, "--atol", "0")

    def test_cast_f16_is_within_rounding(self):
        src = self.synth()
        f16 = self.path("f16")
        run("convert", src, f16, "--to", "hf", "--dtype", "f16", "--progress", "none")
        a, b = L.read_hf_dir(src), L.read_hf_dir(f16)
        for k in a:
            ref = a[k].float().half()  # torch's own RNE conversion
            self.assertTrue(torch.equal(ref, b[k]), k)
        p = run("verify", src, f16, "--json", check=False)
        self.assertEqual(json.loads(p.stdout)["ok"], p.returncode == 0)
        # bf16 -> f16 of values near 0.03 changes bits; a loose atol accepts it
        run("verify", src, f16, "--atol", "1e-3")

    def test_threads_and_memory_bound_give_same_bytes(self):
        src = self.synth()
        a = self.path("a")
        b = self.path("b")
        run("convert", src, a, "--to", "hf", "--dtype", "f32", "--threads", "1", "--progress", "none")
        run("convert", src, b, "--to", "hf", "--dtype", "f32", "--threads", "3", "--max-memory", "1MiB",
            "--progress", "none")
        self.assertEqual(L.tree_hash(a), L.tree_hash(b))

    def test_side_files_carried(self):
        src = self.synth()
        for name, content in [("tokenizer.json", '{"x": 1}'), ("tokenizer_config.json", "{}"),
                              ("generation_config.json", "{}"), ("chat_template.jinja", "{{ x }}"),
                              ("modeling_x.py", "# code"), ("README.md", "# model")]:
            with open(os.path.join(src, name), "w") as f:
                f.write(content)
        with open(os.path.join(src, "pytorch_model.bin"), "wb") as f:
            f.write(b"not carried")
        dst = self.path("dst")
        run("convert", src, dst, "--to", "hf", "--progress", "none")
        got = set(os.listdir(dst))
        for name in ["tokenizer.json", "tokenizer_config.json", "generation_config.json",
                     "chat_template.jinja", "modeling_x.py", "README.md", "config.json"]:
            self.assertIn(name, got)
            with open(os.path.join(src, name), "rb") as f1, open(os.path.join(dst, name), "rb") as f2:
                self.assertEqual(f1.read(), f2.read(), name)
        self.assertNotIn("pytorch_model.bin", got)

    def test_reads_files_written_by_an_independent_writer(self):
        # A checkpoint written by the spec-based Python writer (not by ckhost), with every dtype torch
        # 1.13 has, a 0-d tensor and an empty tensor.
        d = self.path("ext")
        os.makedirs(d)
        ts = {
            "a.f32": torch.randn(3, 5), "b.f16": torch.randn(4).half(), "c.bf16": torch.randn(2, 2, 3).bfloat16(),
            "d.f64": torch.randn(2).double(), "e.i64": torch.arange(6).reshape(2, 3), "f.i32": torch.arange(4).int(),
            "g.i16": torch.arange(3).short(), "h.i8": torch.tensor([-1, 2], dtype=torch.int8),
            "i.u8": torch.tensor([250, 3], dtype=torch.uint8), "j.bool": torch.tensor([True, False, True]),
            "k.scalar": torch.tensor(3.5), "l.empty": torch.zeros(0, 4),
        }
        L.write_safetensors_file(os.path.join(d, "model.safetensors"), ts, {"format": "pt"})
        out = self.path("out")
        run("convert", d, out, "--to", "hf", "--progress", "none")
        got = L.read_hf_dir(out)
        self.assertEqual(set(got), set(ts))
        for k, t in ts.items():
            self.assertEqual(got[k].dtype, t.dtype, k)
            self.assertEqual(tuple(got[k].shape), tuple(t.shape), k)
            self.assertTrue(torch.equal(got[k], t), k)
        run("verify", d, out)


if __name__ == "__main__":
    L.main()
