"""The plain-C format-npy plugin: real NumPy files in and out, strided (Fortran) arrays, bad headers."""
import os
import struct

import numpy as np

import ckh_testlib as L
from ckh_testlib import run


class NpyTests(L.CkhostTestCase):
    def make(self):
        d = self.path("np")
        os.makedirs(d)
        arrays = {
            "w": np.random.randn(30, 20).astype(np.float32),
            "fortran": np.asfortranarray(np.arange(24, dtype=np.int64).reshape(2, 3, 4)),
            "scalar": np.float64(3.5),
            "empty": np.zeros((0, 3), np.float16),
            "mask": np.array([True, False, True]),
            "u8": np.arange(7, dtype=np.uint8),
        }
        for k, v in arrays.items():
            np.save(os.path.join(d, k + ".npy"), v)
        return d, arrays

    def test_round_trip_through_safetensors(self):
        d, arrays = self.make()
        hf, back = self.path("hf"), self.path("back")
        run("convert", d, hf, "--to", "hf", "--progress", "none")
        sd = L.read_hf_dir(hf)
        for k, v in arrays.items():
            self.assertEqual(tuple(sd[k].shape), np.asarray(v).shape, k)
            self.assertTrue(np.array_equal(sd[k].numpy(), np.asarray(v)), k)
        run("convert", hf, back, "--to", "npy", "--progress", "none")
        for k, v in arrays.items():
            got = np.load(os.path.join(back, k + ".npy"))
            self.assertEqual(got.dtype, np.asarray(v).dtype, k)
            self.assertTrue(np.array_equal(got, np.asarray(v)), k)
        run("verify", d, back)

    def test_bf16_cannot_be_written_as_npy(self):
        src = self.synth()
        p = run("convert", src, self.path("x"), "--to", "npy", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cast with --dtype f32", p.stderr)
        self.assertFalse(os.path.exists(self.path("x")))
        run("convert", src, self.path("y"), "--to", "npy", "--dtype", "f32", "--progress", "none")
        self.assertTrue(os.path.exists(os.path.join(self.path("y"), "model.norm.weight.npy")))

    def test_bad_headers(self):
        d, _ = self.make()
        path = os.path.join(d, "w.npy")
        good = open(path, "rb").read()
        cases = {
            "truncated data": good[:-8],
            "bad magic": b"\x93NUMPX" + good[6:],
            "header past end": good[:8] + struct.pack("<H", 60000) + good[10:200],
            "big-endian": good.replace(b"'<f4'", b"'>f4'"),
            "bad dict": good.replace(b"'shape'", b"'shope'"),
            "huge shape": good.replace(b"(30, 20)", b"(99999999999999, 9999999)"[: len(b"(30, 20)")]),
        }
        for why, data in cases.items():
            with open(path, "wb") as f:
                f.write(data)
            p = run("convert", d, self.path("o"), "--to", "hf", check=False)
            self.assertEqual(p.returncode, 1, why)
            self.assertIn("w.npy", p.stderr, why)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, why)
            self.assertFalse(os.path.exists(self.path("o")), why)


if __name__ == "__main__":
    L.main()
