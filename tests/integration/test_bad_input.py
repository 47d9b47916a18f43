"""Bad input: one-line errors naming file and tensor, non-zero exit, no output, input untouched."""
import json
import os
import shutil
import struct

import torch

import ckh_testlib as L
from ckh_testlib import run


def raw_file(path, header_obj, data, header_bytes=None, length=None):
    h = header_bytes if header_bytes is not None else json.dumps(header_obj).encode()
    n = len(h) if length is None else length
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", n) + h + data)


class BadInputTests(L.CkhostTestCase):
    def expect_error(self, src, *needles, extra=()):
        before = L.tree_hash(src)
        out = self.path("out")
        p = run("convert", src, out, "--to", "hf", *extra, check=False)
        self.assertEqual(p.returncode, 1, p.stderr)
        lines = p.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("ckhost: error: "), lines[0])
        for n in needles:
            self.assertIn(n, lines[0])
        self.assertFalse(os.path.exists(out), "no output directory on failure")
        self.assertNoLeftovers()
        self.assertEqual(before, L.tree_hash(src), "input modified")
        return lines[0]

    def one(self, header, data=b"", **kw):
        d = self.path("m")
        os.makedirs(d, exist_ok=True)
        raw_file(os.path.join(d, "model.safetensors"), header, data, **kw)
        return d

    def test_truncated_data(self):
        src = self.synth()
        path = os.path.join(src, "model.safetensors")
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(size - 100)
        self.expect_error(src, "model.safetensors")

    def test_header_length_past_eof(self):
        d = self.one({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4, length=10**6)
        self.expect_error(d, "model.safetensors")

    def test_offsets_out_of_range(self):
        d = self.one({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8)
        self.expect_error(d, "model.safetensors", "'w'")

    def test_overlapping_offsets(self):
        d = self.one({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, b"\0" * 12)
        self.expect_error(d, "model.safetensors", "overlap")

    def test_shape_does_not_match_bytes(self):
        d = self.one({"w": {"dtype": "BF16", "shape": [3, 3], "data_offsets": [0, 16]}}, b"\0" * 16)
        self.expect_error(d, "model.safetensors", "'w'", "18")

    def test_invalid_json(self):
        d = self.one(None, b"", header_bytes=b'{"w": {"dtype": "F32", "shape": [1], ')
        self.expect_error(d, "model.safetensors")

    def test_unknown_dtype(self):
        d = self.one({"w": {"dtype": "F7", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
        self.expect_error(d, "model.safetensors", "F7")

    def test_duplicate_names(self):
        h = b'{"w": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "w": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}}'
        d = self.one(None, b"\0\0", header_bytes=h)
        self.expect_error(d, "model.safetensors", "'w'")

    def test_index_names_missing_shard(self):
        src = self.synth()
        dst = self.path("sharded")
        run("convert", src, dst, "--to", "hf", "--max-shard-size", "100KB", "--progress", "none")
        shard = sorted(f for f in os.listdir(dst) if f.endswith(".safetensors"))[1]
        os.remove(os.path.join(dst, shard))
        self.expect_error(dst, shard)

    def test_incomplete_checkpoint_reports_missing(self):
        src = self.synth()
        sd, _ = L.read_safetensors_file(os.path.join(src, "model.safetensors"))
        del sd["model.layers.1.mlp.up_proj.weight"]
        L.write_safetensors_file(os.path.join(src, "model.safetensors"), sd, {"format": "pt"})
        self.expect_error(src, "missing", "model.layers.1.mlp.up_proj.weight")
        j = json.loads(run("inspect", src, "--json").stdout)
        self.assertIn("model.layers.1.mlp.up_proj.weight", j["check"])

    def test_unexpected_tensor(self):
        src = self.synth()
        sd, _ = L.read_safetensors_file(os.path.join(src, "model.safetensors"))
        sd["model.layers.0.mystery.weight"] = torch.zeros(3)
        L.write_safetensors_file(os.path.join(src, "model.safetensors"), sd, {"format": "pt"})
        self.expect_error(src, "unexpected", "model.layers.0.mystery.weight")

    def test_shape_mismatch_with_config(self):
        src = self.synth()
        sd, _ = L.read_safetensors_file(os.path.join(src, "model.safetensors"))
        sd["model.norm.weight"] = torch.ones(7, dtype=torch.bfloat16)
        L.write_safetensors_file(os.path.join(src, "model.safetensors"), sd, {"format": "pt"})
        self.expect_error(src, "model.norm.weight", "[7]")

    def test_rotary_inv_freq_is_ignored(self):
        src = self.synth()
        sd, _ = L.read_safetensors_file(os.path.join(src, "model.safetensors"))
        sd["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
        L.write_safetensors_file(os.path.join(src, "model.safetensors"), sd, {"format": "pt"})
        out = self.path("ok")
        run("convert", src, out, "--to", "hf", "--progress", "none")
        self.assertNotIn("model.layers.0.self_attn.rotary_emb.inv_freq", L.read_hf_dir(out))

    def test_not_a_checkpoint(self):
        d = self.path("empty")
        os.makedirs(d)
        with open(os.path.join(d, "notes.txt"), "w") as f:
            f.write("hello")
        self.expect_error(d, "no reader")


if __name__ == "__main__":
    L.main()
