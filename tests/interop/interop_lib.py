"""Shared helpers for the interop suite (run with the pinned venv of tests/interop/requirements.txt).

Sources are made by the real producers (transformers' from_config + save_pretrained) and outputs are
checked by the real consumers (transformers' from_pretrained, safetensors' safe_open, torch 2.13's
torch.load and torch.distributed.checkpoint, Megatron-Core). Nothing here reads a file with ckhost's
own code.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CKHOST = os.environ.get("CKHOST", os.path.join(ROOT, "build", "bin", "ckhost"))

# Token ids of the fixed prompt every logits check uses (all below every family's vocabulary).
IDS = [1, 17, 42, 99, 3, 250 - 1, 128, 77, 5, 200, 64, 31]


def run(*args, check=True):
    """Runs ckhost; returns CompletedProcess (text). Raises with both streams when it fails."""
    p = subprocess.run([CKHOST, *map(str, args)], capture_output=True, text=True,
                       env={**os.environ, "CKHOST_PLUGIN_PATH": ""})
    if check and p.returncode != 0:
        raise AssertionError(f"ckhost {' '.join(map(str, args))} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def convert(src, dst, *args):
    run("convert", src, dst, "--progress", "none", "-q", *args)
    return dst


def assert_refused(case, src, dst, *args, needle, cmd="convert"):
    """`ckhost convert src dst args` must be refused as the project promises: exit 1, exactly one
    'ckhost: error:' line, containing `needle`, and no output directory left behind. Returns stderr."""
    p = run(cmd, src, dst, "--progress", "none", *args, check=False)
    case.assertEqual(p.returncode, 1, p.stdout + p.stderr)
    errs = [ln for ln in p.stderr.splitlines() if ln.startswith("ckhost: error:")]
    case.assertEqual(len(errs), 1, p.stderr)
    case.assertIn(needle, errs[0])
    case.assertFalse(os.path.exists(dst), "%s was left behind" % dst)
    return p.stderr


# ---- families: small configs that keep each family's real key set --------------------------------

def _base(**kw):
    c = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=4, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=250, max_position_embeddings=128, rms_norm_eps=1e-5,
             rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu")
    c.update(kw)
    return c


# name -> (transformers config class name, config kwargs, dtype saved). Tied and untied, GQA and MHA,
# biases (Qwen2), q/k norm and a head_dim that is not hidden/heads (Qwen3), one family saved in bf16.
# RoPE bases differ from the 10000 default (and Llama uses llama3 frequency scaling), so a converter
# that drops them gives wrong Megatron args.
FAMILIES = {
    "llama-gqa": ("LlamaConfig", _base(rope_parameters=dict(
        rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
        original_max_position_embeddings=8192)), torch.float32),
    "llama-mha-tied-bf16": ("LlamaConfig", _base(num_key_value_heads=4, tie_word_embeddings=True,
                                                 rope_theta=20000.0), torch.bfloat16),
    "mistral-gqa": ("MistralConfig", _base(sliding_window=None, head_dim=16, rope_theta=1000000.0), torch.float32),
    "qwen2-bias-tied": ("Qwen2Config", _base(tie_word_embeddings=True, use_sliding_window=False,
                                             rope_theta=1000000.0), torch.float32),
    "qwen3-qknorm": ("Qwen3Config", _base(head_dim=32, attention_bias=False, use_sliding_window=False,
                                          rope_theta=1000000.0), torch.float32),
}


def randomize_(model, seed):
    """Every parameter gets distinct random values (HF init leaves norms at 1 and biases at 0, which
    would hide a swapped or dropped norm or bias)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if name.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * r)
            elif name.endswith(".bias"):
                p.copy_(0.1 * r)
            else:
                p.copy_(0.05 * r)


def _quiet_transformers():
    import transformers
    transformers.utils.logging.disable_progress_bar()
    return transformers


def make_hf(family, out, seed=0):
    """Saves a randomly initialised AutoModelForCausalLM of `family` with save_pretrained."""
    transformers = _quiet_transformers()
    cls_name, kw, dtype = FAMILIES[family]
    cfg = getattr(transformers, cls_name)(**kw)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg)
    randomize_(model, seed)
    model = model.to(dtype)
    model.save_pretrained(out)
    return out


def load_hf(d):
    transformers = _quiet_transformers()
    m = transformers.AutoModelForCausalLM.from_pretrained(d, local_files_only=True, dtype=torch.float32,
                                                          attn_implementation="eager")
    m.eval()
    return m


def hf_logits(model, ids=IDS):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0]


def safe_open_all(d):
    """Opens every .safetensors file of `d` with safetensors' own reader; returns {name: tensor}."""
    from safetensors import safe_open
    out = {}
    files = sorted(glob.glob(os.path.join(d, "*.safetensors")))
    assert files, f"{d}: no .safetensors file"
    for f in files:
        with safe_open(f, framework="pt") as h:
            for k in h.keys():
                assert k not in out, f"{k} in two shards"
                out[k] = h.get_tensor(k)
    idx = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(idx):
        with open(idx) as fh:
            wm = json.load(fh)["weight_map"]
        assert set(wm) == set(out), "index and shards disagree"
        for k, f in wm.items():
            assert os.path.exists(os.path.join(d, f)), f
    return out


def assert_same_model(tc, src_dir, out_dir, ids=IDS):
    """out_dir loads in transformers, its state_dict equals src_dir's tensor by tensor and its logits
    are bit-identical. Returns the largest logit difference (0.0)."""
    a, b = load_hf(src_dir), load_hf(out_dir)
    sa, sb = a.state_dict(), b.state_dict()
    tc.assertEqual(sorted(sa), sorted(sb), "state_dict names differ")
    for k in sa:
        tc.assertEqual(sa[k].dtype, sb[k].dtype, k)
        tc.assertTrue(torch.equal(sa[k], sb[k]), f"{k}: tensors differ (max |d| {(sa[k] - sb[k]).abs().max()})")
    la, lb = hf_logits(a, ids), hf_logits(b, ids)
    diff = (la - lb).abs().max().item()
    tc.assertTrue(torch.equal(la, lb), f"logits differ: max |d| {diff}")
    return diff


def assert_logits_differ(tc, src_dir, out_dir, ids=IDS):
    """For broken outputs: the consumer check must fail."""
    a, b = load_hf(src_dir), load_hf(out_dir)
    tc.assertFalse(torch.equal(hf_logits(a, ids), hf_logits(b, ids)), "a broken checkpoint gave the same logits")


def tree_files(d):
    return sorted(os.path.relpath(p, d) for p in glob.glob(os.path.join(d, "**", "*"), recursive=True) if os.path.isfile(p))


class InteropCase(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ckh_interop_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def path(self, *p):
        return os.path.join(self.tmp, *p)


def report(msg):
    """One line on stderr that ctest keeps in its log (the numbers the closing note quotes)."""
    print("[interop] " + msg, file=sys.stderr, flush=True)


def main():
    global CKHOST
    if len(sys.argv) > 1 and sys.argv[1].startswith("--ckhost="):
        CKHOST = sys.argv.pop(1).split("=", 1)[1]
    if not os.path.exists(CKHOST):
        raise SystemExit(f"ckhost binary not found at {CKHOST}")
    torch.manual_seed(0)
    unittest.main(verbosity=2)


def llama_cpp_converter_dir():
    """The directory holding llama.cpp's own convert_hf_to_gguf.py with its conversion/ and gguf-py/, from the sdist of
    the llama-cpp-python the venv pins (scripts/interop_venv.sh unpacks them into <venv>/share/llama.cpp);
    $CKH_LLAMA_CPP_CONVERT overrides it."""
    d = os.environ.get("CKH_LLAMA_CPP_CONVERT") or os.path.join(sys.prefix, "share", "llama.cpp")
    if not os.path.exists(os.path.join(d, "convert_hf_to_gguf.py")):
        raise AssertionError("llama.cpp's convert_hf_to_gguf.py (with conversion/ and gguf-py/ beside it, from the "
                             "llama-cpp-python sdist's vendor/llama.cpp) is not in %s: rebuild the venv with "
                             "scripts/interop_venv.sh or set CKH_LLAMA_CPP_CONVERT" % d)
    return d
