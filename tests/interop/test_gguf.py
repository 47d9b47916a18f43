"""GGUF v3 output (issue 13, first part: F32 / F16 / BF16 and ggml's Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 of the dense Llama
family), checked by llama.cpp itself (llama-cpp-python 0.3.36 and its libggml), gguf-py 0.19's GGUFReader and
transformers 5.24's GGUF loader.

Sources are transformers save_pretrained checkpoints (Llama MHA tied in bf16, Qwen2 with biases and tied embeddings,
Mistral GQA with head_dim 16). ckhost converts them with --to gguf:
  - gguf-py reads every file: GGUF v3, general.alignment 32 (every tensor offset aligned), the architecture's
    hyperparameters, general.file_type (0 F32, 1 F16, 32 BF16), and exactly the tensors of the test's own
    transcription of llama.cpp's converter (gguf-py's tensor names; for the llama architecture the q and k rows
    permuted as its permute(): reshape [heads, 2, head_dim / 2, hidden], swap the middle axes), value for value;
  - transformers' GGUF loader (from_pretrained(gguf_file=...), which undoes the permutation) gives back the source's
    state dict bit for bit and the same logits (F32: identical); F16 / BF16 equal torch's casts;
  - a twin whose q rows of two heads are swapped in the GGUF moves transformers' logits;
  - tokenizer metadata from byte-level BPE tokenizer.json files (made by HF tokenizers with Qwen2's, Llama 3's and
    GPT-2's split rules): transformers' tokenizer built from the GGUF alone gives the same ids on a multilingual text;
  - Megatron per-rank files and torch_dist convert to GGUF directly, byte-identical to the HF source's GGUF;
  - --quantize ggml --ggml-type q8_0: every 2-D weight byte-identical to gguf-py's reference Q8_0 quantizer, logits of
    transformers' dequantization within Q8_0's error;
  - llama.cpp loads F32, F16, Q8_0 and Q4_0 files of a Qwen2 and a Llama model: its tokenizer gives the source's ids,
    its logits equal transformers' within each type's error; every quantized block equals libggml's ggml_quantize_chunk;
  - GGUF -> HF: files written by gguf-py's GGUFWriter read back to the source bit for bit (q/k un-permuted, config from
    the key-values); truncated or foreign files are refused in one line naming the file;
  - what is not written yet is refused in one line with nothing left.

Run: tests/interop/run_interop.sh tests/interop/test_gguf.py --ckhost=build/bin/ckhost
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import interop_lib as L  # noqa: E402

# gguf-py's names (gguf/constants.py MODEL_TENSOR names) for the HF names of the dense Llama family.
LAYER = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
         "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
         "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
         "self_attn.o_proj.weight": "attn_output.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
         "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
TOP = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight", "lm_head.weight": "output.weight"}
ARCH = {"llama": "llama", "mistral": "llama", "qwen2": "qwen2"}
FAMILIES = ("llama-mha-tied-bf16", "qwen2-bias-tied", "mistral-gqa")


def config_of(d):
    with open(os.path.join(d, "config.json")) as fh:
        return json.load(fh)


def permute(w, heads):
    """llama.cpp convert_hf_to_gguf.py LlamaModel.permute, written here from its rule."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def expected(src, cfg):
    """GGUF name -> tensor, transcribed from the HF tensors."""
    arch = ARCH[cfg["model_type"]]
    out = {}
    for k, v in L.safe_open_all(src).items():
        if k in TOP:
            out[TOP[k]] = v
            continue
        parts = k.split(".")
        layer, rest = parts[2], ".".join(parts[3:])
        if arch == "llama" and rest in ("self_attn.q_proj.weight", "self_attn.k_proj.weight"):
            heads = cfg["num_attention_heads"] if ".q_proj" in rest else cfg.get("num_key_value_heads", cfg["num_attention_heads"])
            v = permute(v, heads)
        out["blk.%s.%s" % (layer, LAYER[rest])] = v
    return out


def hf_name(gguf_name, cfg):
    """The HF name of a GGUF tensor of the dense Llama family, and the head count its rows are permuted by (0: none)."""
    for k, v in TOP.items():
        if v == gguf_name:
            return k, 0
    _, layer, rest = gguf_name.split(".", 2)
    for k, v in LAYER.items():
        if v == rest:
            heads = 0
            if ARCH[cfg["model_type"]] == "llama" and k in ("self_attn.q_proj.weight", "self_attn.k_proj.weight"):
                heads = cfg["num_attention_heads"] if "q_proj" in k else cfg.get("num_key_value_heads", cfg["num_attention_heads"])
            return "model.layers.%s.%s" % (layer, k), heads
    raise KeyError(gguf_name)


def read_gguf(path):
    from gguf import GGUFReader
    r = GGUFReader(path)
    fields = {}
    for k, f in r.fields.items():
        if not f.data:
            continue
        item = f.types[-1].name  # an array's item type, or the value's own
        vals = [bytes(f.parts[i]).decode() if item == "STRING" else f.parts[i].tolist()[0] for i in f.data]
        fields[k] = vals if f.types[0].name == "ARRAY" else vals[0]
    tensors = {}
    for t in r.tensors:
        shape = list(reversed([int(x) for x in t.shape]))  # gguf-py lists ne innermost first
        data = np.array(t.data)
        if t.tensor_type.name not in ("F32", "F16", "BF16"):  # block types: their raw bytes
            tensors[t.name] = (t.tensor_type.name, t.data_offset, torch.from_numpy(data.view(np.uint8).reshape(-1).copy()))
            continue
        if t.tensor_type.name == "BF16":  # gguf-py hands BF16 as raw bytes
            data = torch.from_numpy(data.view(np.int16).copy()).view(torch.bfloat16)
        else:
            data = torch.from_numpy(data)
        tensors[t.name] = (t.tensor_type.name, t.data_offset, data.reshape(shape))
    return fields, tensors


def swapped_heads(src_dir, dst_dir, head_dim):
    """A copy of src_dir whose F32 GGUF has heads 0 and 1 of blk.0.attn_q.weight's rows swapped in place."""
    import shutil
    shutil.copytree(src_dir, dst_dir)
    path = os.path.join(dst_dir, "model.gguf")
    _, tensors = read_gguf(path)
    _, off, q = tensors["blk.0.attn_q.weight"]
    mm = np.memmap(path, dtype=np.float32, mode="r+", offset=off, shape=tuple(q.shape))
    a = np.array(mm[:head_dim])
    mm[:head_dim] = mm[head_dim:2 * head_dim]
    mm[head_dim:2 * head_dim] = a
    mm.flush()
    del mm
    return dst_dir


def gguf_model(d, f="model.gguf"):
    transformers = L._quiet_transformers()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager")
    m.eval()
    return m


TEXT = "Hello world, this is a test. Grüße aus München! 你好，世界。 Привет мир 12345 naïve café — ok?\n  tabs\tand  spaces"
CHAT = "<|im_start|>user\nWie geht's? 你好<|im_end|>"


def make_tokenized(d, arch, split):
    """A small transformers model (Qwen2 or Llama, vocabulary 400) with a byte-level BPE tokenizer made by HF tokenizers,
    trained here on TEXT, whose pre-tokenizer is `split` (a split expression) or GPT-2's ByteLevel regex (None)."""
    transformers = L._quiet_transformers()
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    kw = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              vocab_size=400, tie_word_embeddings=False)
    cfg = transformers.Qwen2Config(**kw) if arch == "qwen2" else transformers.LlamaConfig(**kw, rope_theta=10000.0)
    m = (transformers.Qwen2ForCausalLM if arch == "qwen2" else transformers.LlamaForCausalLM)(cfg)
    L.randomize_(m, 0)
    m.save_pretrained(d)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = (pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True) if split is None else
                         pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split), behavior="isolated"),
                                                  pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([TEXT * 3] * 50, trainers.BpeTrainer(
        vocab_size=380, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.save_pretrained(d)
    return fast


class Gguf(L.InteropCase):
    def source(self, fam):
        d = self.path("hf-" + fam)
        if not os.path.isdir(d):
            L.make_hf(fam, d)
        return d

    def test_f32_consumers(self):
        for fam in FAMILIES:
            src = self.source(fam)
            cfg = config_of(src)
            out = L.convert(src, self.path(fam + "-f32"), "--to", "gguf", "--dtype", "f32")
            self.assertEqual(os.listdir(out), ["model.gguf"])
            fields, tensors = read_gguf(os.path.join(out, "model.gguf"))
            arch = ARCH[cfg["model_type"]]
            self.assertEqual(fields["GGUF.version"], 3)
            self.assertEqual(fields["general.architecture"], arch)
            self.assertEqual(fields["general.file_type"], 0)
            self.assertEqual(fields[arch + ".block_count"], cfg["num_hidden_layers"])
            self.assertEqual(fields[arch + ".attention.head_count_kv"], cfg.get("num_key_value_heads", cfg["num_attention_heads"]))
            want = expected(src, cfg)
            self.assertEqual(sorted(tensors), sorted(want), fam)
            for k, v in want.items():
                typ, off, got = tensors[k]
                self.assertEqual(typ, "F32")
                self.assertEqual(off % 32, 0, k)
                self.assertTrue(torch.equal(got, v.float()), "%s: %s differs" % (fam, k))
            # transformers' GGUF loader: the source's state dict and logits.
            m, ref = gguf_model(out), L.load_hf(src).float()
            sd, rs = m.state_dict(), ref.state_dict()
            for k, v in rs.items():
                self.assertTrue(torch.equal(sd[k], v.float()), "%s: transformers reads %s differently" % (fam, k))
            self.assertTrue(torch.equal(L.hf_logits(m), L.hf_logits(ref)), fam)
            L.report("%s -> GGUF F32 (%d tensors): gguf-py reads v3, aligned offsets and the transcribed tensors (q/k permuted: %s); "
                     "transformers' GGUF loader gives the source's state dict and identical logits" % (fam, len(want), arch == "llama"))

    def test_f16_bf16_and_swap(self):
        fam = "llama-mha-tied-bf16"
        src = self.source(fam)
        cfg = config_of(src)
        want = expected(src, cfg)
        for dt, ft, typ, tdt in (("f16", 1, "F16", torch.float16), ("bf16", 32, "BF16", torch.bfloat16)):
            out = L.convert(src, self.path("llama-" + dt), "--to", "gguf", "--dtype", dt)
            fields, tensors = read_gguf(os.path.join(out, "model.gguf"))
            self.assertEqual(fields["general.file_type"], ft)
            for k, v in want.items():  # 1-D tensors (norms) stay F32, as llama.cpp's converter keeps them
                one_d = v.dim() == 1
                self.assertEqual(tensors[k][0], "F32" if one_d else typ, k)
                got = tensors[k][2]
                self.assertTrue(torch.equal(got, v.float() if one_d else v.to(tdt)), "%s: %s" % (dt, k))
        # Negative twin: heads 0 and 1 of layer 0's q rows swapped in the F32 file move transformers' logits.
        f32 = L.convert(src, self.path("llama-f32"), "--to", "gguf", "--dtype", "f32")
        sw = swapped_heads(f32, self.path("llama-f32-swapped"), cfg["hidden_size"] // cfg["num_attention_heads"])
        diff = (L.hf_logits(gguf_model(sw)) - L.hf_logits(gguf_model(f32))).abs().max().item()
        self.assertGreater(diff, 1e-4)
        L.report("llama GGUF F16 / BF16: file_type 1 / 32, every 2-D tensor equals torch's cast of the transcription, the norms "
                 "its f32 values (as llama.cpp keeps them); two q heads swapped "
                 "in the file move transformers' logits by %.3g" % diff)

    def test_from_megatron(self):
        # Direct Megatron (per-rank files, TP2 x PP2) and torch_dist -> GGUF, no HF in between: the same file byte for
        # byte as from the HF source (the Megatron side itself is checked by Megatron-Core in test_megatron_core.py).
        src = self.source("mistral-gqa")
        direct = L.convert(src, self.path("m-direct"), "--to", "gguf", "--dtype", "f32")
        with open(os.path.join(direct, "model.gguf"), "rb") as fh:
            ref = fh.read()
        for fmt, extra in (("megatron", ["--tp", "2", "--pp", "2"]), ("torch-dist", ["--tp", "2"])):
            mid = L.convert(src, self.path("m-" + fmt), "--to", fmt, *extra)
            out = L.convert(mid, self.path("m-" + fmt + "-gguf"), "--to", "gguf", "--dtype", "f32")
            with open(os.path.join(out, "model.gguf"), "rb") as fh:
                self.assertEqual(fh.read(), ref, fmt)
        L.report("mistral Megatron TP2 x PP2 and torch_dist TP2 -> GGUF directly: byte-identical to HF -> GGUF")

    def test_tokenizer(self):
        # Byte-level BPE tokenizers made by HF tokenizers (trained here on a multilingual text) with the three split
        # rules llama.cpp names: Qwen2's and Llama 3's split expressions, and GPT-2's ByteLevel regex. The GGUF states
        # tokenizer.ggml.model gpt2 and the pre-tokenizer type those rules name; transformers builds a tokenizer from
        # the GGUF alone that gives the same ids as the source's tokenizer.json, special tokens included.
        transformers = L._quiet_transformers()
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2
        from transformers.integrations.gguf.gguf_tokenizer_mapping import _LLAMA3_SPLIT as LLAMA3
        text, chat = TEXT, CHAT
        for name, split, pre in (("qwen2", QWEN2, "qwen2"), ("llama3", LLAMA3, "llama-bpe"), ("gpt2", None, "gpt-2")):
            d = self.path("tok-" + name)
            fast = make_tokenized(d, "qwen2", split)
            out = L.convert(d, self.path("tok-" + name + "-gguf"), "--to", "gguf", "--dtype", "f32")
            fields, _ = read_gguf(os.path.join(out, "model.gguf"))
            self.assertEqual(fields["tokenizer.ggml.model"], "gpt2")
            self.assertEqual(fields["tokenizer.ggml.pre"], pre)
            self.assertEqual(fields["tokenizer.ggml.eos_token_id"], fast.eos_token_id)
            self.assertEqual(fields["tokenizer.ggml.padding_token_id"], fast.pad_token_id)
            g = transformers.AutoTokenizer.from_pretrained(out, gguf_file="model.gguf")
            for t in (text, chat):
                self.assertEqual(g(t)["input_ids"], fast(t)["input_ids"], "%s: %r" % (name, t))
            self.assertEqual(len(fields["tokenizer.ggml.tokens"]), 400)  # padded to the model's rows as [PAD<i>]
        L.report("GGUF tokenizer: byte-level BPE with Qwen2's / Llama 3's split expressions and GPT-2's regex -> tokenizer.ggml.pre "
                 "qwen2 / llama-bpe / gpt-2; transformers' tokenizer built from the GGUF alone gives the source tokenizer's ids on a "
                 "multilingual text and a chat turn with special tokens")

    def test_q8_0(self):
        # --quantize ggml (Q8_0): every 2-D weight (embedding and output too, as llama.cpp does) is ggml's block_q8_0 of the
        # transcribed (permuted) tensor byte for byte as gguf-py's reference quantizer (gguf.quants, ggml's
        # quantize_row_q8_0_ref in numpy) computes it; norms stay F32; transformers' GGUF loader dequantizes it and its
        # logits stay within Q8_0's error of the source's.
        from gguf import GGMLQuantizationType, quants
        for fam in ("llama-mha-tied-bf16", "qwen2-bias-tied"):
            src = self.source(fam)
            cfg = config_of(src)
            out = L.convert(src, self.path(fam + "-q8"), "--to", "gguf", "--dtype", "f32", "--quantize", "ggml", "--ggml-type", "q8_0")
            from gguf import GGUFReader
            r = GGUFReader(os.path.join(out, "model.gguf"))
            got = {t.name: t for t in r.tensors}
            n_q8 = 0
            for k, v in expected(src, cfg).items():
                t = got[k]
                if v.dim() == 2:
                    self.assertEqual(t.tensor_type.name, "Q8_0", k)
                    ref = quants.quantize(v.float().numpy(), GGMLQuantizationType.Q8_0)
                    self.assertTrue(np.array_equal(np.array(t.data).view(np.uint8).reshape(-1), ref.view(np.uint8).reshape(-1)), k)
                    n_q8 += 1
                else:
                    self.assertEqual(t.tensor_type.name, "F32", k)
            fields, _ = read_gguf(os.path.join(out, "model.gguf"))
            self.assertEqual(fields["general.file_type"], 7)
            a, b = L.hf_logits(gguf_model(out)), L.hf_logits(L.load_hf(src).float())
            diff = (a - b).abs().max().item()
            self.assertLess(diff, 0.05 * b.abs().max().item(), fam)
            self.assertTrue(torch.equal(a.argmax(-1), b.argmax(-1)), fam)
            L.report("%s -> GGUF Q8_0: %d weights byte-identical to gguf-py's reference Q8_0 of the transcription; transformers' "
                     "logits within %.3g of the source's (max |logit| %.3g), same argmax" % (fam, n_q8, diff, b.abs().max().item()))
        L.assert_refused(self, self.source("llama-mha-tied-bf16"), self.path("q4k"), "--to", "gguf", "--quantize", "ggml",
                         "--ggml-type", "iq2_xxs", needle="--ggml-type: expected one of")

    def llama_cpp(self, path, texts, ids):
        """llama.cpp in a child process (an abort inside ggml fails this test, not the run): the ids its tokenizer gives
        each of `texts` and its logits of `ids`."""
        import subprocess
        # use_extra_bufts off: llama.cpp's repacked CPU kernels (AVX-512 / AMX tiles) abort on this test's 64-wide toy
        # matrices; the plain ggml CPU path computes the same model.
        code = ("import json, sys, numpy as np, llama_cpp\n"
                "_p = llama_cpp.llama_model_default_params\n"
                "def _q():\n    p = _p(); p.use_extra_bufts = False; return p\n"
                "llama_cpp.llama_model_default_params = _q\n"
                "import llama_cpp.llama as _ll\n"
                "_ll.llama_cpp.llama_model_default_params = _q\n"
                "a = json.loads(sys.argv[2])\n"
                "llm = llama_cpp.Llama(model_path=sys.argv[1], n_ctx=128, logits_all=True, verbose=False, n_threads=2)\n"
                "toks = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in a['texts']]\n"
                "llm.eval(a['ids'])\n"
                "print(json.dumps({'toks': toks, 'logits': np.array(llm.scores[:len(a['ids'])]).tolist()}))\n")
        p = subprocess.run([sys.executable, "-c", code, path, json.dumps({"texts": texts, "ids": ids})], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, "llama.cpp failed on %s:\n%s" % (path, p.stderr[-2000:]))
        r = json.loads(p.stdout.strip().splitlines()[-1])
        return r["toks"], np.array(r["logits"])

    def test_llama_cpp(self):
        # llama.cpp itself (llama-cpp-python 0.3.36, built from source in the venv) loads each GGUF: its tokenizer gives the
        # source tokenizer's ids, and its logits of the text equal transformers' within each type's error.
        from transformers.integrations.gguf.gguf_tokenizer_mapping import _LLAMA3_SPLIT as LLAMA3
        from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX as QWEN2
        lines = []
        for arch, split in (("qwen2", QWEN2), ("llama", LLAMA3)):
            d = self.path("cpp-" + arch)
            fast = make_tokenized(d, arch, split)
            ref_model = L.load_hf(d).float()
            ids = fast(TEXT)["input_ids"]
            with torch.no_grad():
                ref = ref_model(torch.tensor([ids])).logits[0].numpy()
            scale = float(np.abs(ref).max())
            for typ, extra, tol in (("f32", ["--dtype", "f32"], 2e-3), ("f16", ["--dtype", "f16"], 2e-2),
                                    ("q8_0", ["--dtype", "f32", "--quantize", "ggml", "--ggml-type", "q8_0"], 6e-2),
                                    ("q4_0", ["--dtype", "f32", "--quantize", "ggml", "--ggml-type", "q4_0"], 0.5)):
                out = L.convert(d, self.path("cpp-%s-%s" % (arch, typ)), "--to", "gguf", *extra)
                toks, got = self.llama_cpp(os.path.join(out, "model.gguf"), [TEXT, CHAT], ids)
                self.assertEqual(toks[0], ids, "%s %s tokenizer" % (arch, typ))
                self.assertEqual(toks[1], fast(CHAT)["input_ids"], "%s %s tokenizer (chat)" % (arch, typ))
                diff = float(np.abs(got - ref).max())
                self.assertLess(diff, tol * scale, "%s %s: llama.cpp logits differ by %g" % (arch, typ, diff))
                lines.append("%s %s %.2g" % (arch, typ, diff / scale))
        # Negative twin: the Llama F32 file with two q heads swapped in layer 0 moves llama.cpp's logits past the F32 bound.
        sw = swapped_heads(self.path("cpp-llama-f32"), self.path("cpp-llama-f32-swapped"), 64 // 4)  # make_tokenized: 64 wide, 4 heads
        _, got = self.llama_cpp(os.path.join(sw, "model.gguf"), [TEXT], ids)
        swapped = float(np.abs(got - ref).max())
        self.assertGreater(swapped, 2e-3 * scale)
        L.report("llama.cpp (llama-cpp-python 0.3.36) loads every GGUF; its tokenizer gives the source's ids (text and chat turn); "
                 "its logits vs transformers', max |diff| / max |logit|: " + ", ".join(lines) +
                 "; two q heads swapped in the Llama F32 file: %.2g" % (swapped / scale))

    def test_ggml_bitexact(self):
        # The quantized blocks equal ggml's own: ggml_quantize_chunk of the libggml that llama-cpp-python installs, called
        # through ctypes on the same f32 rows (the transcribed, permuted weights), for every type ckhost writes.
        import ctypes
        import glob
        import llama_cpp
        libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
        base = ctypes.CDLL(sorted(glob.glob(os.path.join(libdir, "libggml-base.so*")))[0], mode=ctypes.RTLD_GLOBAL)
        qc = base.ggml_quantize_chunk
        qc.restype = ctypes.c_size_t
        qc.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        src = self.source("llama-mha-tied-bf16")
        cfg = config_of(src)
        want = expected(src, cfg)
        from gguf import GGUFReader, GGMLQuantizationType, quants
        n = 0
        for typ in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1"):
            out = L.convert(src, self.path("ggml-" + typ), "--to", "gguf", "--dtype", "f32", "--quantize", "ggml", "--ggml-type", typ,
                            "--ggml-pure")
            got = {t.name: t for t in GGUFReader(os.path.join(out, "model.gguf")).tensors}
            gtype = int(getattr(GGMLQuantizationType, typ.upper()))
            for k, v in want.items():
                if v.dim() != 2:
                    continue
                x = np.ascontiguousarray(v.float().numpy())
                ours = np.array(got[k].data).view(np.uint8).reshape(-1)
                theirs = np.zeros(ours.size, dtype=np.uint8)
                size = qc(gtype, x.ctypes.data, theirs.ctypes.data, 0, x.shape[0], x.shape[1], None)
                self.assertEqual(size, ours.size, k)
                self.assertTrue(np.array_equal(ours, theirs), "%s: %s differs from ggml_quantize_chunk" % (typ, k))
                n += 1
        L.report("Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: %d quantized weights byte-identical to libggml's ggml_quantize_chunk" % n)
        # Read back with --dtype f32: each block type dequantized as gguf-py's reference does, the q/k rows un-permuted.
        for typ in ("q8_0", "q4_0", "q4_1", "q5_0", "q5_1"):
            path = os.path.join(self.path("ggml-" + typ), "model.gguf")
            back = L.safe_open_all(L.convert(self.path("ggml-" + typ), self.path("ggml-" + typ + "-hf"), "--to", "hf", "--dtype", "f32"))
            for t in GGUFReader(path).tensors:
                if t.tensor_type.name in ("F32", "F16", "BF16"):
                    continue
                x = torch.from_numpy(quants.dequantize(np.array(t.data), t.tensor_type))
                name, heads = hf_name(t.name, cfg)
                if heads:
                    x = x.reshape(heads, x.shape[0] // heads // 2, 2, x.shape[1]).swapaxes(1, 2).reshape(x.shape)
                self.assertTrue(torch.equal(back[name], x), "%s: %s" % (typ, name))
        L.assert_refused(self, self.path("ggml-q8_0"), self.path("ggml-q8_0-keep"), "--to", "hf", needle="safetensors cannot store")
        L.report("GGUF Q8_0/Q4_0/Q4_1/Q5_0/Q5_1 -> HF --dtype f32: every weight equals gguf-py's dequantization (q/k rows un-permuted); "
                 "without --dtype the block types are refused by name")

    def test_read(self):
        # GGUF -> HF: a file written by gguf-py's GGUFWriter (llama.cpp's own writer library) from the test's
        # transcription reads back to the HF source bit for bit (q/k rows un-permuted, config.json from the key-values),
        # and transformers' logits of it equal the source's; ckhost's own GGUF reads back bit-exact too.
        import gguf
        for fam in ("mistral-gqa", "qwen2-bias-tied"):
            src = self.source(fam)
            cfg = config_of(src)
            arch = ARCH[cfg["model_type"]]
            d = self.path("gw-" + fam)
            os.makedirs(d)
            w = gguf.GGUFWriter(os.path.join(d, "model.gguf"), arch)
            heads, kvh = cfg["num_attention_heads"], cfg.get("num_key_value_heads", cfg["num_attention_heads"])
            w.add_context_length(cfg["max_position_embeddings"])
            w.add_embedding_length(cfg["hidden_size"])
            w.add_block_count(cfg["num_hidden_layers"])
            w.add_feed_forward_length(cfg["intermediate_size"])
            w.add_head_count(heads)
            w.add_head_count_kv(kvh)
            w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
            w.add_rope_freq_base(cfg.get("rope_theta", (cfg.get("rope_parameters") or {}).get("rope_theta", 10000.0)))
            hd = cfg.get("head_dim") or cfg["hidden_size"] // heads
            if hd * heads != cfg["hidden_size"]:
                w.add_key_length(hd)
                w.add_value_length(hd)
            if arch == "llama":
                w.add_rope_dimension_count(hd)
            for k, v in expected(src, cfg).items():
                w.add_tensor(k, v.float().numpy())
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            back = L.convert(d, self.path("gw-" + fam + "-hf"), "--to", "hf")
            ref, got = L.safe_open_all(src), L.safe_open_all(back)
            self.assertEqual(sorted(got), sorted(ref))
            for k in ref:
                self.assertTrue(torch.equal(got[k], ref[k].float()), "%s: %s" % (fam, k))
            self.assertTrue(torch.equal(L.hf_logits(L.load_hf(back)), L.hf_logits(L.load_hf(src).float())), fam)
            own = L.convert(L.convert(src, self.path("rt-" + fam), "--to", "gguf", "--dtype", "f32"), self.path("rt-" + fam + "-hf"), "--to", "hf")
            o = L.safe_open_all(own)
            self.assertTrue(all(torch.equal(o[k], ref[k].float()) for k in ref))
        L.report("GGUF -> HF: files written by gguf-py's GGUFWriter (Mistral with llama.cpp's q/k permutation, Qwen2 with biases) "
                 "read back to the source bit for bit with identical logits; ckhost's own GGUF round trip bit-exact")
        # Malformed files: one line naming the file and what is wrong, nothing written.
        good = os.path.join(self.path("rt-mistral-gqa"), "model.gguf")
        with open(good, "rb") as fh:
            data = fh.read()
        for name, blob, needle in (("truncated", data[:len(data) // 2], "past the end"), ("header", data[:40], "truncated at byte"),
                                   ("magic", b"GGUX" + data[4:], "not a GGUF file")):
            d = self.path("bad-" + name)
            os.makedirs(d)
            with open(os.path.join(d, "model.gguf"), "wb") as fh:
                fh.write(blob)
            L.assert_refused(self, d, self.path("bad-" + name + "-out"), "--to", "hf", "--from", "gguf", needle=needle)

    def test_refusals(self):
        L.assert_refused(self, self.source("llama-mha-tied-bf16"), self.path("q4"), "--to", "gguf", "--gguf-alignment", "3",
                         needle="--gguf-alignment 3")


if __name__ == "__main__":
    L.main()
