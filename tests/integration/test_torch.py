"""The torch format: files written by torch.save (views, shared storages, parameters, nested dicts)
are read without executing pickle; files ckhost writes load with torch.load(weights_only=True)."""
import collections
import json
import os
import zipfile

import torch

import ckh_testlib as L
from ckh_testlib import run


class TorchTests(L.CkhostTestCase):
    def test_reads_torch_save_files(self):
        d = self.path("pt")
        os.makedirs(d)
        base = torch.randn(6, 8)
        sd = collections.OrderedDict()
        sd["enc.w"] = base                      # shares its storage with the next two
        sd["enc.w_t"] = base.t()                # non-contiguous view
        sd["enc.row"] = base[2]                 # view with a storage offset
        sd["enc.p"] = torch.nn.Parameter(torch.arange(5, dtype=torch.float64))
        sd["dec.h"] = torch.randn(3, 4).to(torch.bfloat16)
        sd["dec.i"] = torch.arange(7, dtype=torch.int32)
        sd["dec.b"] = torch.tensor([True, False])
        sd["dec.s"] = torch.tensor(2.5, dtype=torch.float16)
        torch.save({"state": sd, "epoch": 3, "note": "not a tensor"}, os.path.join(d, "model.pt"))
        out = self.path("hf")
        run("convert", d, out, "--to", "hf", "--progress", "none")
        got = L.read_hf_dir(out)
        self.assertEqual(set(got), {"state." + k for k in sd})
        for k, v in sd.items():
            self.assertTrue(torch.equal(got["state." + k], v.detach()), k)
        j = json.loads(run("inspect", os.path.join(d, "model.pt"), "--json").stdout)
        self.assertEqual(j["format"], "torch")

    def test_writes_files_torch_loads_with_weights_only(self):
        src = self.synth()
        out = self.path("bin")
        run("convert", src, out, "--to", "torch", "--progress", "none")
        sd = torch.load(os.path.join(out, "pytorch_model.bin"), weights_only=True)
        self.assertIsNone(zipfile.ZipFile(os.path.join(out, "pytorch_model.bin")).testzip())
        ref = L.read_hf_dir(src)
        self.assertEqual(set(sd), set(ref))
        for k in ref:
            self.assertTrue(torch.equal(sd[k], ref[k]), k)
        sharded = self.path("sharded")
        run("convert", src, sharded, "--to", "torch", "--max-shard-size", "100KB", "--progress", "none")
        with open(os.path.join(sharded, "pytorch_model.bin.index.json")) as f:
            index = json.load(f)
        merged = {}
        for shard in sorted(set(index["weight_map"].values())):
            merged.update(torch.load(os.path.join(sharded, shard), weights_only=True))
        self.assertEqual(set(merged), set(ref))
        back = self.path("back")
        run("convert", sharded, back, "--to", "hf", "--progress", "none")
        run("verify", src, back)

    def test_bad_torch_files(self):
        d = self.path("bad")
        os.makedirs(d)
        path = os.path.join(d, "pytorch_model.bin")
        torch.save({"w": torch.randn(4, 4)}, path)
        with open(path, "rb") as f:
            data = f.read()
        for why, blob in [("truncated", data[: len(data) // 2]), ("garbage", b"PK\x03\x04" + b"\0" * 200)]:
            with open(path, "wb") as f:
                f.write(blob)
            p = run("convert", d, self.path("o"), "--to", "hf", check=False)
            self.assertEqual(p.returncode, 1, why)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, why)
            self.assertIn("pytorch_model.bin", p.stderr, why)
            self.assertFalse(os.path.exists(self.path("o")))


if __name__ == "__main__":
    L.main()
