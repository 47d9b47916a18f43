"""Helpers for ckhost's integration tests (run with /usr/bin/python3, Debian's python3-torch).

Everything here is independent of ckhost's own code: a safetensors reader written from the format
spec, and a reference Llama-family forward pass in plain torch, so converted checkpoints are checked
against real clients rather than against ckhost itself.
"""
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import torch

CKHOST = os.environ.get("CKHOST", "")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(ROOT, "plugins", "model-llama", "configs")

ST_DTYPES = {
    "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
ST_NAMES = {v: k for k, v in ST_DTYPES.items()}


def run(*args, check=True, env=None):
    """Runs ckhost; returns CompletedProcess (text)."""
    e = dict(os.environ)
    if env:
        e.update(env)
    p = subprocess.run([CKHOST, *map(str, args)], capture_output=True, text=True, env=e)
    if check and p.returncode != 0:
        raise AssertionError(f"ckhost {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def read_safetensors_file(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        dt = ST_DTYPES[info["dtype"]]
        buf = bytearray(data[base + b: base + e])
        t = torch.frombuffer(buf, dtype=dt) if len(buf) else torch.empty(0, dtype=dt)
        out[name] = t.reshape(info["shape"])
    return out, header


def read_hf_dir(d):
    """state dict of an HF directory (single file or index + shards)."""
    idx = os.path.join(d, "model.safetensors.index.json")
    sd = {}
    if os.path.exists(idx):
        with open(idx) as f:
            index = json.load(f)
        for shard in sorted(set(index["weight_map"].values())):
            part, _ = read_safetensors_file(os.path.join(d, shard))
            sd.update(part)
        assert set(sd) == set(index["weight_map"]), "index and shards disagree"
    else:
        sd, _ = read_safetensors_file(os.path.join(d, "model.safetensors"))
    return sd


def write_safetensors_file(path, tensors, metadata=None):
    """Writes a safetensors file from the spec (used to make inputs ckhost did not write)."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, off = [], 0
    for name, t in tensors.items():
        b = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def tree_hash(d):
    h = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(d)):
        dirs.sort()
        for fn in sorted(files):
            p = os.path.join(root, fn)
            h.update(os.path.relpath(p, d).encode())
            with open(p, "rb") as f:
                h.update(f.read())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------
# Reference forward pass (HF Llama / Mistral / Qwen2 / Qwen3 / MiniCPM semantics).

def _rms(x, w, eps):
    dt = torch.float64 if x.dtype == torch.float64 else torch.float32
    x32 = x.to(dt)
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)) * w.to(dt)


def _rope(x, theta):
    # x: [T, n, d]; HF rotate_half convention
    T, _, d = x.shape
    inv = 1.0 / (theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    emb = torch.cat([ang, ang], -1)
    cos, sin = emb.cos().to(x.dtype)[:, None, :], emb.sin().to(x.dtype)[:, None, :]
    x1, x2 = x[..., : d // 2], x[..., d // 2:]
    rot = torch.cat([-x2, x1], -1)
    return x * cos + rot * sin


def llama_logits(sd, cfg, ids, dtype=torch.float32):
    """Logits [T, V] for token ids, computed in `dtype` from an HF-named state dict."""
    h = cfg["hidden_size"]
    H = cfg["num_attention_heads"]
    G = cfg.get("num_key_value_heads", H)
    d = cfg.get("head_dim") or h // H
    L = cfg["num_hidden_layers"]
    eps = cfg.get("rms_norm_eps", 1e-6)
    theta = cfg.get("rope_theta", 10000.0)
    W = {k: v.to(dtype) for k, v in sd.items()}
    x = W["model.embed_tokens.weight"][ids]
    if cfg.get("model_type") == "minicpm":
        x = x * cfg.get("scale_emb", 1.0)
    T = len(ids)
    mask = torch.full((T, T), float("-inf"), dtype=dtype).triu(1)
    for i in range(L):
        p = f"model.layers.{i}."
        a = _rms(x, W[p + "input_layernorm.weight"], eps)

        def lin(name, inp):
            y = inp @ W[p + name + ".weight"].T
            if p + name + ".bias" in W:
                y = y + W[p + name + ".bias"]
            return y

        q = lin("self_attn.q_proj", a).view(T, H, d)
        k = lin("self_attn.k_proj", a).view(T, G, d)
        v = lin("self_attn.v_proj", a).view(T, G, d)
        if p + "self_attn.q_norm.weight" in W:
            q = _rms(q, W[p + "self_attn.q_norm.weight"], eps)
            k = _rms(k, W[p + "self_attn.k_norm.weight"], eps)
        q, k = _rope(q, theta), _rope(k, theta)
        k = k.repeat_interleave(H // G, dim=1)
        v = v.repeat_interleave(H // G, dim=1)
        att = torch.einsum("thd,shd->hts", q, k) / (d ** 0.5) + mask
        o = torch.einsum("hts,shd->thd", att.softmax(-1), v).reshape(T, H * d)
        o = lin("self_attn.o_proj", o)
        if cfg.get("model_type") == "minicpm":
            o = o * (cfg.get("scale_depth", 1.0) / (L ** 0.5))
        x = x + o
        m = _rms(x, W[p + "post_attention_layernorm.weight"], eps)
        m = lin("mlp.down_proj", torch.nn.functional.silu(lin("mlp.gate_proj", m)) * lin("mlp.up_proj", m))
        if cfg.get("model_type") == "minicpm":
            m = m * (cfg.get("scale_depth", 1.0) / (L ** 0.5))
        x = x + m
    x = _rms(x, W["model.norm.weight"], eps)
    if cfg.get("model_type") == "minicpm":
        x = x / (h / cfg.get("dim_model_base", h))
    head = W["lm_head.weight"] if "lm_head.weight" in W else W["model.embed_tokens.weight"]
    return x @ head.T


class CkhostTestCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckh_it_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *p):
        return os.path.join(self.tmp, *p)

    def synth(self, config="tiny-llama.json", name="src", seed=1, *extra):
        out = self.path(name)
        run("synth", "--model", "llama", "--config", os.path.join(CONFIGS, config), out, "--seed", seed,
            "--progress", "none", *extra)
        return out

    def assertNoLeftovers(self):
        left = [f for f in os.listdir(self.tmp) if "ckhost-tmp" in f or "ckhost-old" in f]
        self.assertEqual(left, [], "temporary directories left behind")


def main():
    global CKHOST
    if len(sys.argv) > 1 and sys.argv[1].startswith("--ckhost="):
        CKHOST = sys.argv.pop(1).split("=", 1)[1]
    if not CKHOST:
        CKHOST = os.path.join(ROOT, "build", "bin", "ckhost")
    torch.manual_seed(0)
    unittest.main(verbosity=2)
