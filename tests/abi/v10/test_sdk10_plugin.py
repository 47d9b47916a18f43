"""A plugin built against the frozen SDK 1.0 headers loads and converts (SDK 1.1 acceptance).

ckh-sdk10.so (v10_plugin.c, compiled with -I tests/abi/sdk-1.0 only) is found through --plugin-dir,
listed without refusal, and its mapper + 1.0 quantizer int8-quantize a synthesised Llama: the codes and
row scales must equal a reference computed here with torch from the source tensors.

    /usr/bin/python3 test_sdk10_plugin.py --ckhost=CKHOST --plugin-dir=DIR
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "integration"))

import torch  # noqa: E402

import ckh_testlib as L  # noqa: E402
from ckh_testlib import run  # noqa: E402

PLUGIN_DIR = ""


class Sdk10Plugin(L.CkhostTestCase):
    def test_listed_and_converts(self):
        j = json.loads(run("--plugin-dir", PLUGIN_DIR, "--list-plugins", "--json").stdout)
        ids = {p["id"]: p for p in j["plugins"]}
        self.assertIn("org.test.sdk10", ids, j.get("refused"))
        p = ids["org.test.sdk10"]
        self.assertEqual(p["abi"], "1.0")
        self.assertEqual(sorted(c["id"] for c in p["components"]), ["v10.quant", "v10.rowmax_i8"])
        src = self.synth()
        out = self.path("q")
        run("--plugin-dir", PLUGIN_DIR, "convert", src, out, "--to", "hf", "--map", "v10.quant", "--progress", "none")
        a, b = L.read_hf_dir(src), L.read_hf_dir(out)
        n = 0
        for k, v in a.items():
            if v.dim() == 2 and k.endswith(".weight"):
                x = v.to(torch.float32)
                s = x.abs().amax(1, keepdim=True) / 127.0
                q = torch.where(s > 0, torch.round(x / s), torch.zeros_like(x)).clamp(-127, 127).to(torch.int8)
                self.assertEqual(b[k].dtype, torch.int8, k)
                self.assertTrue(torch.equal(b[k], q), k)
                self.assertTrue(torch.equal(b[k + "_rowscale"], s), k)
                n += 1
            else:
                self.assertTrue(torch.equal(b[k], v), k)
        self.assertGreater(n, 10)


if __name__ == "__main__":
    for a in list(sys.argv[1:]):
        if a.startswith("--plugin-dir="):
            PLUGIN_DIR = a.split("=", 1)[1]
            sys.argv.remove(a)
    L.main()
