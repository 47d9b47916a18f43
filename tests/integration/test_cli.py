"""CLI behaviour: plugins listing, config files, dry runs, atomic and refusing destinations."""
import json
import os

import ckh_testlib as L
from ckh_testlib import run


class CliTests(L.CkhostTestCase):
    def test_help_on_every_command(self):
        for cmd in ["convert", "inspect", "verify", "synth"]:
            p = run(cmd, "--help")
            self.assertIn("usage: ckhost " + cmd, p.stdout)
        p = run(check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("commands:", p.stdout)
        p = run("frobnicate", check=False)
        self.assertEqual(p.returncode, 2)

    def test_list_plugins(self):
        j = json.loads(run("--list-plugins", "--json").stdout)
        ids = {p["id"] for p in j["plugins"]}
        self.assertIn("org.ckhost.format.safetensors", ids)
        self.assertIn("org.ckhost.model.llama", ids)
        comps = {(c["kind"], c["id"]) for p in j["plugins"] for c in p["components"]}
        self.assertIn(("reader", "hf"), comps)
        self.assertIn(("writer", "hf"), comps)
        self.assertIn(("mapper", "llama"), comps)
        text = run("--list-plugins").stdout
        self.assertIn("org.ckhost.format.safetensors", text)

    def test_print_config_roundtrip(self):
        src = self.synth()
        p = run("convert", src, self.path("x"), "--to", "hf", "--dtype", "f32", "--max-shard-size", "2MB",
                "--threads", "2", "--print-config")
        cfg = json.loads(p.stdout)
        self.assertEqual(cfg["dtype"], "f32")
        self.assertEqual(cfg["max-shard-size"], "2MB")
        self.assertFalse(os.path.exists(self.path("x")))
        with open(self.path("c.json"), "w") as f:
            json.dump(cfg, f)
        # config file supplies everything; a command-line value wins over the file
        p2 = run("convert", "--config", self.path("c.json"), "--dtype", "bf16", "--print-config")
        cfg2 = json.loads(p2.stdout)
        self.assertEqual(cfg2["dtype"], "bf16")
        self.assertEqual(cfg2["src"], src)
        self.assertEqual(cfg2["threads"], 2)
        run("convert", "--config", self.path("c.json"))
        self.assertTrue(os.path.exists(os.path.join(self.path("x"), "config.json")))
        with open(self.path("bad.json"), "w") as f:
            json.dump({"no_such_option": 1}, f)
        p3 = run("convert", "--config", self.path("bad.json"), check=False)
        self.assertNotEqual(p3.returncode, 0)
        self.assertIn("no_such_option", p3.stderr)

    def test_dry_run_writes_nothing(self):
        src = self.synth()
        p = run("convert", src, self.path("d"), "--to", "hf", "--dtype", "f32", "--dry-run")
        self.assertIn("model.safetensors", p.stdout)
        self.assertIn("cast(", p.stdout)
        self.assertIn("total: ", p.stdout)
        q = run("convert", src, self.path("d"), "--to", "hf", "--dtype", "f32", "--dry-run", "-q")
        self.assertIn("model.safetensors", q.stdout)
        self.assertNotIn("cast(", q.stdout)
        self.assertIn("total: ", q.stdout)
        self.assertFalse(os.path.exists(self.path("d")))
        self.assertNoLeftovers()

    def test_destination_rules(self):
        src = self.synth()
        dst = self.path("dst")
        os.makedirs(dst)
        run("convert", src, dst, "--to", "hf", "--progress", "none")  # empty dir is fine
        p = run("convert", src, dst, "--to", "hf", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("not empty", p.stderr)
        with open(os.path.join(dst, "stale.txt"), "w") as f:
            f.write("x")
        run("convert", src, dst, "--to", "hf", "--dtype", "f32", "--force", "--progress", "none")
        self.assertNotIn("stale.txt", os.listdir(dst))
        p = run("convert", src, os.path.join(src, "inside"), "--to", "hf", "--force", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("overlaps", p.stderr)
        p = run("convert", src, src, "--to", "hf", "--force", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertTrue(os.path.exists(os.path.join(src, "model.safetensors")))
        self.assertNoLeftovers()

    def test_unknown_formats_and_dtypes(self):
        src = self.synth()
        p = run("convert", src, self.path("o"), "--to", "nosuch", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no writer for format 'nosuch'", p.stderr)
        p = run("convert", src, self.path("o"), "--to", "hf", "--dtype", "int3", check=False)
        self.assertEqual(p.returncode, 2)
        p = run("convert", src, self.path("o"), "--to", "hf", "--max-shard-size", "12XB", check=False)
        self.assertNotEqual(p.returncode, 0)
        self.assertFalse(os.path.exists(self.path("o")))

    def test_options_of_components_not_run_are_refused(self):
        # An option whose owners this conversion does not run would be silently ignored: refused (usage
        # error, exit 2) by name, with its owners, before anything is written.
        src = self.synth()
        for args, needle in ((["--to", "hf", "--tp", "2"], "--tp is an option of writer megatron"),
                             (["--to", "megatron", "--dist-files", "2"], "--dist-files is an option of writer torch-dist"),
                             (["--to", "hf", "--megatron-spec", "local"], "--megatron-spec is an option of mapper"),
                             (["--to", "hf", "--fp8-pow2-scales"], "--fp8-pow2-scales is an option of quantizer fp8-block")):
            p = run("convert", src, self.path("o"), *args, check=False)
            self.assertEqual(p.returncode, 2, args)
            self.assertIn(needle, p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)
            self.assertFalse(os.path.exists(self.path("o")))
        # A policy option (a guarantee, here: never requantize) holds whether or not its quantizer runs.
        run("convert", src, self.path("o"), "--to", "hf", "--fp8-no-requant", "--progress", "none")
        # The same options where their owners run are taken.
        run("convert", src, self.path("m"), "--to", "megatron", "--tp", "2", "--megatron-spec", "local", "--progress", "none")
        self.assertNoLeftovers()

    def test_plugin_path_env_and_dir(self):
        # An empty extra directory changes nothing; a missing one is ignored.
        os.makedirs(self.path("plugins"))
        j = json.loads(run("--plugin-dir", self.path("plugins"), "--list-plugins", "--json",
                           env={"CKHOST_PLUGIN_PATH": self.path("nope")}).stdout)
        self.assertTrue(any(p["id"] == "org.ckhost.format.safetensors" for p in j["plugins"]))


if __name__ == "__main__":
    L.main()
