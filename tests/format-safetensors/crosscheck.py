"""Cross-check of the safetensors plugin against files built and read independently in Python.

Run with Debian's /usr/bin/python3 (python3-torch, numpy): st_tool (tests/format-safetensors) drives the
plugin through its C ABI. Reference files are hand-built from the format spec with struct + json (the
`safetensors` package is not installed); tensor bytes are compared with torch.frombuffer/numpy.

    crosscheck.py --tool=/path/to/st_tool
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch

TOOL = ""

TORCH = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
         "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
         "BOOL": torch.bool}
NUMPY = {"U16": np.uint16, "U32": np.uint32, "U64": np.uint64}
RAW8 = ("F8_E5M2", "F8_E4M3", "F8_E8M0")  # no torch 1.13 type: compared as bytes
SIZE = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
        "I8": 1, "U8": 1, "BOOL": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1}


def make(dtype, shape, seed):
    """A tensor (torch or numpy) with its raw bytes."""
    g = torch.Generator().manual_seed(seed)
    n = 1
    for s in shape:
        n *= s
    if dtype in TORCH:
        dt = TORCH[dtype]
        if dt.is_floating_point:
            t = torch.randn(n, generator=g).to(dt).reshape(shape)
        elif dt == torch.bool:
            t = (torch.randint(0, 2, (n,), generator=g) == 1).reshape(shape)
        else:
            info = torch.iinfo(dt)
            t = torch.randint(max(info.min, -1000), min(info.max, 1000) + 1, (n,), generator=g, dtype=torch.int64)
            t = t.to(dt).reshape(shape)
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if n else b""
        return t, raw
    rng = np.random.default_rng(seed)
    if dtype in NUMPY:
        a = rng.integers(0, np.iinfo(NUMPY[dtype]).max, size=n, dtype=NUMPY[dtype], endpoint=True).reshape(shape)
        return a, a.tobytes()
    a = rng.integers(0, 256, size=n, dtype=np.uint8).reshape(shape)
    return a, a.tobytes()


def from_bytes(dtype, shape, raw):
    """Decodes raw bytes independently of the plugin."""
    if dtype in TORCH:
        buf = bytearray(raw)
        t = torch.frombuffer(buf, dtype=TORCH[dtype]) if buf else torch.empty(0, dtype=TORCH[dtype])
        return t.reshape(shape)
    if dtype in NUMPY:
        return np.frombuffer(raw, dtype=NUMPY[dtype]).reshape(shape)
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape)


def same(a, b):
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


def write_reference(path, tensors, metadata, order_seed=0):
    """A safetensors file from the spec; tensors packed in a shuffled order, keys in another."""
    names = list(tensors)
    random.Random(order_seed).shuffle(names)
    header, blobs, off = {}, [], 0
    if metadata is not None:
        header["__metadata__"] = metadata
    for name in names:
        dtype, shape, _, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    keys = list(header)
    random.Random(order_seed + 1).shuffle(keys)
    h = json.dumps({k: header[k] for k in keys}).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def read_reference(path):
    """{name: (dtype, shape, decoded)} and the header of a safetensors file, read from the spec."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        out[name] = (info["dtype"], tuple(info["shape"]), from_bytes(info["dtype"], info["shape"], data[8 + n + b:8 + n + e]))
    return out, header, n


def tool(*args):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"st_tool {args} failed: {p.stderr}")
    return json.loads(p.stdout)


def every_dtype_tensors():
    ts = {}
    seed = 0
    for dtype in SIZE:
        for shape in [(3, 5), (2, 1, 4)]:
            seed += 1
            t, raw = make(dtype, shape, seed)
            ts[f"layer.{dtype.lower()}.{len(shape)}d"] = (dtype, shape, t, raw)
    t, raw = make("F32", (), 100)
    ts["scalar.f32"] = ("F32", (), t, raw)
    t, raw = make("BF16", (0, 4), 101)
    ts["empty.bf16"] = ("BF16", (0, 4), t, raw)
    t, raw = make("I64", (7,), 102)
    ts["caf\u00e9.\U0001F600.ids"] = ("I64", (7,), t, raw)
    return ts


class CrossCheck(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="ckh-st-xcheck-")
        self.dir = self.tmp.name

    def tearDown(self):
        self.tmp.cleanup()

    def test_plugin_reads_reference_files(self):
        ts = every_dtype_tensors()
        d = os.path.join(self.dir, "ref")
        os.makedirs(d)
        write_reference(os.path.join(d, "model.safetensors"), ts, {"format": "pt", "source": "crosscheck"}, 7)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"model_type": "x"}, f)
        cat = tool("read", d)
        self.assertEqual(cat["status"], 0, cat["error"])
        self.assertEqual(cat["metadata"]["safetensors_metadata"], {"format": "pt", "source": "crosscheck"})
        self.assertEqual(cat["metadata"]["config"], {"model_type": "x"})
        self.assertEqual([s["name"] for s in cat["metadata"]["side_files"]], ["config.json"])
        got = {t["name"]: t for t in cat["tensors"]}
        self.assertEqual(set(got), set(ts))
        with open(cat["files"][0], "rb") as f:
            data = f.read()
        for name, (dtype, shape, t, raw) in ts.items():
            g = got[name]
            self.assertEqual(g["dtype"], dtype, name)
            self.assertEqual(tuple(g["shape"]), tuple(shape), name)
            self.assertEqual(g["pieces"], 1)
            piece = data[g["offset"]:g["offset"] + len(raw)]
            self.assertTrue(same(from_bytes(dtype, shape, piece), t), name)

    def test_plugin_reads_reference_shards_with_index(self):
        ts = every_dtype_tensors()
        d = os.path.join(self.dir, "sharded")
        os.makedirs(d)
        names = sorted(ts)
        parts = [names[0::3], names[1::3], names[2::3]]
        wm = {}
        for i, part in enumerate(parts):
            fn = f"model-{i + 1:05d}-of-00003.safetensors"
            write_reference(os.path.join(d, fn), {n: ts[n] for n in part}, {"format": "pt"}, i)
            wm.update({n: fn for n in part})
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": sum(len(v[3]) for v in ts.values())}, "weight_map": wm}, f, indent=2)
        cat = tool("read", d)
        self.assertEqual(cat["status"], 0, cat["error"])
        self.assertEqual(len(cat["files"]), 3)
        for t in cat["tensors"]:
            dtype, shape, ref, raw = ts[t["name"]]
            self.assertEqual(os.path.basename(cat["files"][t["file"]]), wm[t["name"]])
            with open(cat["files"][t["file"]], "rb") as f:
                f.seek(t["offset"])
                piece = f.read(len(raw))
            self.assertTrue(same(from_bytes(dtype, shape, piece), ref), t["name"])

    def write_with_plugin(self, ts, options, metadata=None):
        raw_dir = os.path.join(self.dir, "raw")
        os.makedirs(raw_dir, exist_ok=True)
        spec = {"options": options, "metadata": metadata or {"side_files": []}, "tensors": []}
        for i, (name, (dtype, shape, _, raw)) in enumerate(ts.items()):
            p = os.path.join(raw_dir, f"{i}.bin")
            with open(p, "wb") as f:
                f.write(raw)
            spec["tensors"].append({"name": name, "dtype": dtype, "shape": list(shape), "data": p})
        sp = os.path.join(self.dir, "spec.json")
        with open(sp, "w") as f:
            json.dump(spec, f)
        out = os.path.join(self.dir, "out")
        os.makedirs(out)
        res = tool("write", sp, out)
        self.assertEqual(res["status"], 0, res["error"])
        self.assertEqual(res["problems"], [])
        return out

    def check_shard_file(self, path):
        got, header, n = read_reference(path)
        self.assertEqual(n % 8, 0, "header padded to a multiple of 8")
        self.assertEqual(header["__metadata__"], {"format": "pt"})
        with open(path, "rb") as f:
            raw_header = f.read(8 + n)[8:]
        self.assertTrue(raw_header.startswith(b'{"__metadata__":{"format":"pt"}'))
        self.assertEqual(raw_header.rstrip(b" ").decode(), json.dumps(header, separators=(",", ":"), ensure_ascii=False))
        # packed, in (element size descending, name) order, so every tensor is naturally aligned
        entries = sorted(((v["data_offsets"], k, v["dtype"]) for k, v in header.items() if k != "__metadata__"))
        expect_order = sorted(entries, key=lambda e: (-SIZE[e[2]], e[1]))
        self.assertEqual([e[1] for e in entries], [e[1] for e in expect_order])
        off = 0
        for (b, e), name, dtype in entries:
            self.assertEqual(b, off, name)
            self.assertEqual((8 + n + b) % SIZE[dtype], 0, name)
            off = e
        self.assertEqual(os.path.getsize(path), 8 + n + off)
        return got

    def test_reference_reader_reads_plugin_output_single(self):
        ts = every_dtype_tensors()
        out = self.write_with_plugin(ts, {})
        self.assertEqual(sorted(os.listdir(out)), ["model.safetensors"])
        got = self.check_shard_file(os.path.join(out, "model.safetensors"))
        self.assertEqual(set(got), set(ts))
        for name, (dtype, shape, t, _) in ts.items():
            self.assertEqual(got[name][0], dtype)
            self.assertTrue(same(got[name][2], t), name)

    def test_reference_reader_reads_plugin_output_sharded(self):
        ts = every_dtype_tensors()
        out = self.write_with_plugin(ts, {"max_shard_size": "200B"})
        files = sorted(os.listdir(out))
        shards = [f for f in files if f.endswith(".safetensors")]
        self.assertGreater(len(shards), 2)
        self.assertEqual(shards, [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))])
        with open(os.path.join(out, "model.safetensors.index.json"), "rb") as f:
            index_bytes = f.read()
        index = json.loads(index_bytes)
        # byte-identical to what transformers' save_pretrained writes
        self.assertEqual(index_bytes.decode(), json.dumps(index, indent=2, sort_keys=True) + "\n")
        self.assertEqual(index["metadata"]["total_size"], sum(len(v[3]) for v in ts.values()))
        got = {}
        for s in shards:
            part = self.check_shard_file(os.path.join(out, s))
            size = sum(len(ts[k][3]) for k in part)
            self.assertTrue(size <= 200 or len(part) == 1, s)
            for k in part:
                self.assertEqual(index["weight_map"][k], s)
            got.update(part)
        self.assertEqual(set(got), set(ts))
        self.assertEqual(set(index["weight_map"]), set(ts))
        for name, (dtype, shape, t, _) in ts.items():
            self.assertTrue(same(got[name][2], t), name)
        # greedy in input order: concatenating the shards' tensors in shard order gives the input order
        order = []
        for s in shards:
            order.append(sorted(k for k in index["weight_map"] if index["weight_map"][k] == s))
        flat = [k for part in order for k in part]
        self.assertEqual(sorted(flat), sorted(ts))
        pos = {k: i for i, k in enumerate(ts)}
        for a, b in zip(order, order[1:]):
            self.assertLess(max(pos[k] for k in a), min(pos[k] for k in b))

    def test_round_trip_through_plugin_reader(self):
        ts = every_dtype_tensors()
        out = self.write_with_plugin(ts, {"max_shard_size": 300})
        cat = tool("read", out)
        self.assertEqual(cat["status"], 0, cat["error"])
        for t in cat["tensors"]:
            dtype, shape, ref, raw = ts[t["name"]]
            with open(cat["files"][t["file"]], "rb") as f:
                f.seek(t["offset"])
                self.assertTrue(same(from_bytes(dtype, shape, f.read(len(raw))), ref), t["name"])

    def test_errors_name_file_and_tensor(self):
        d = os.path.join(self.dir, "bad")
        os.makedirs(d)
        h = json.dumps({"w": {"dtype": "BF16", "shape": [3, 3], "data_offsets": [0, 16]}}).encode()
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", len(h)) + h + b"\0" * 16)
        cat = tool("read", d)
        self.assertEqual(cat["status"], 3)
        self.assertIn("model.safetensors: tensor 'w': shape [3, 3] x BF16 needs 18 bytes but data_offsets span 16",
                      cat["error"])


if __name__ == "__main__":
    for a in list(sys.argv[1:]):
        if a.startswith("--tool="):
            TOOL = a.split("=", 1)[1]
            sys.argv.remove(a)
    if not TOOL:
        sys.exit("crosscheck.py: --tool=PATH is required")
    unittest.main(verbosity=1)
