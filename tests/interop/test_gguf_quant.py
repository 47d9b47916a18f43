"""llama.cpp's k-quants and quantization mixes (issue 13): `ckhost convert SRC OUT --to gguf --quantize ggml --ggml-type T
[--imatrix FILE] [--ggml-pure]` checked against llama.cpp itself (the libggml-base / libllama that llama-cpp-python
0.3.36 builds in the venv).

Sources are transformers save_pretrained checkpoints in f32: a Llama (8 layers, grouped-query attention 8 / 2, rows of
256 and ffn_down rows of 640: not whole 256-element blocks) and a Qwen2 with tied embeddings (ffn_down rows of 200: not
whole 32-element blocks either). Importance matrices are written with gguf-py in llama-imatrix's GGUF layout
(<tensor>.in_sum2 [n_mat, cols] and <tensor>.counts [n_mat, 1], general.type imatrix, imatrix.datasets / chunk_count /
chunk_size).
  - every type (Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, --ggml-pure), with and without an importance
    matrix: every quantized tensor is byte-identical to ggml_quantize_chunk of libggml-base (ctypes) on the test's own
    transcription of the f32 rows (and the importance as llama.cpp's quantize tool derives it: in_sum2 / count);
  - mixes (q4_k_m, q5_k_m, q3_k_m, q2_k, q4_0), with and without an importance matrix: llama.cpp's own quantizer,
    llama_model_quantize of libllama run on ckhost's F32 GGUF of the same model, gives every tensor the same type and
    the same bytes as ckhost (the LM head or tied embedding as Q6_K, attn_v / ffn_down bumped per layer, fallbacks);
  - llama.cpp loads ckhost's Q8_0, Q4_K_M and Q2_K files (with an importance matrix): the Q4_K_M logits are within a
    loose bound of transformers' (cosine > 0.93, max |diff| < 0.4 of the largest logit), the error grows as bits shrink;
  - MoE: Mixtral- (8 experts), DeepSeek-V3- and Qwen2-MoE-shaped models with per-expert (per-head) importance, and a legacy
    imatrix.dat, give llama_model_quantize's types and bytes too; GGUF -> HF --dtype f32 equals ggml's to_float;
  - negative twins: the importance of one tensor with two 128-column slices swapped (and a file with two blocks of a
    tensor swapped) no longer equals llama.cpp's bytes.

Run: tests/interop/run_interop.sh tests/interop/test_gguf_quant.py --ckhost=build/bin/ckhost
"""
import ctypes
import glob
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import torch  # noqa: E402

import interop_lib as L  # noqa: E402
import test_gguf as G  # noqa: E402

# llama.h's llama_ftype of each --ggml-type, and gguf-py's GGMLQuantizationType names of the plain types.
FTYPE = {"q4_0": 2, "q4_1": 3, "q8_0": 7, "q5_0": 8, "q5_1": 9, "q2_k": 10, "q3_k_s": 11, "q3_k_m": 12, "q3_k_l": 13,
         "q4_k_s": 14, "q4_k_m": 15, "q5_k_s": 16, "q5_k_m": 17, "q6_k": 18}
PURE = {"q2_k": "Q2_K", "q3_k_m": "Q3_K", "q4_k_m": "Q4_K", "q5_k_m": "Q5_K", "q6_k": "Q6_K",
        "q4_0": "Q4_0", "q4_1": "Q4_1", "q5_0": "Q5_0", "q5_1": "Q5_1", "q8_0": "Q8_0"}
MIXES = ("q4_k_m", "q5_k_m", "q3_k_m", "q2_k", "q4_0")


def make_model(d, arch, inter, layers, tied):
    """A transformers model (hidden 256, 8 heads, 2 kv heads, vocabulary 400, f32) with a byte-level BPE tokenizer."""
    transformers = L._quiet_transformers()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    kw = dict(hidden_size=256, intermediate_size=inter, num_hidden_layers=layers, num_attention_heads=8, num_key_value_heads=2,
              vocab_size=400, max_position_embeddings=128, tie_word_embeddings=tied)
    cfg = transformers.Qwen2Config(**kw) if arch == "qwen2" else transformers.LlamaConfig(**kw, rope_theta=10000.0)
    m = (transformers.Qwen2ForCausalLM if arch == "qwen2" else transformers.LlamaForCausalLM)(cfg)
    L.randomize_(m, 0)
    m.save_pretrained(d)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator([G.TEXT * 3] * 50, trainers.BpeTrainer(
        vocab_size=380, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=["<|endoftext|>"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.save_pretrained(d)
    return fast


def write_imatrix(path, entries):
    """llama-imatrix's GGUF output (tools/imatrix/imatrix.cpp save_imatrix), written with gguf-py: per tensor
    <name>.in_sum2 (f32, ne [cols, n_mat]) and <name>.counts (f32, ne [1, n_mat]); no architecture."""
    import gguf
    w = gguf.GGUFWriter(path, "imatrix")
    w.kv_data[0].pop("general.architecture", None)
    w.add_type("imatrix")
    w.add_array("imatrix.datasets", ["test.txt"])
    w.add_uint32("imatrix.chunk_count", 10)
    w.add_uint32("imatrix.chunk_size", 512)
    for name, (sums, counts) in entries.items():
        w.add_tensor(name + ".in_sum2", np.ascontiguousarray(sums, np.float32))
        w.add_tensor(name + ".counts", np.ascontiguousarray(counts, np.float32).reshape(-1, 1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def write_legacy_imatrix(path, entries, chunks=10, dataset="test.txt"):
    """llama.cpp's legacy imatrix.dat (common/imatrix-loader.cpp's layout): i32 entry count; per entry i32 name length,
    the name, i32 ncall, i32 nval, nval f32 sums; then i32 chunk count, i32 dataset-name length and the name."""
    import struct
    b = struct.pack("<i", len(entries))
    for name, (sums, ncall) in entries.items():
        n = name.encode()
        v = np.ascontiguousarray(sums, np.float32).reshape(-1)
        b += struct.pack("<i", len(n)) + n + struct.pack("<ii", ncall, v.size) + v.tobytes()
    b += struct.pack("<ii", chunks, len(dataset)) + dataset.encode()
    with open(path, "wb") as fh:
        fh.write(b)


def importance(sums, counts):
    """llama.cpp's tools/quantize load_imatrix for the GGUF format: in_sum2 / round(count) per matrix, 1 where the count
    is not positive; flat, n_mat * cols values."""
    c = np.floor(np.abs(counts.reshape(-1, 1)) + 0.5) * np.sign(counts.reshape(-1, 1))  # lround
    c = c.astype(np.float32)
    return np.where(c > 0, sums / np.where(c > 0, c, 1), np.float32(1)).astype(np.float32).reshape(-1)


def file_type(path):
    from gguf import GGUFReader
    return int(GGUFReader(path).fields["general.file_type"].parts[-1][0])


def gguf_tensors(path):
    """{name: (ggml type name, raw bytes as uint8, numpy shape)} read by gguf-py."""
    from gguf import GGUFReader
    out = {}
    for t in GGUFReader(path).tensors:
        out[t.name] = (t.tensor_type.name, np.array(t.data).view(np.uint8).reshape(-1).copy(), [int(x) for x in reversed(list(t.shape))])
    return out


class Ggml:
    """ggml_quantize_chunk of libggml-base and llama_model_quantize of libllama (llama-cpp-python's builds)."""

    def __init__(self):
        import llama_cpp
        self.lc = llama_cpp
        libdir = os.path.join(os.path.dirname(llama_cpp.__file__), "lib")
        base = ctypes.CDLL(sorted(glob.glob(os.path.join(libdir, "libggml-base.so*")))[0], mode=ctypes.RTLD_GLOBAL)
        self.qc = base.ggml_quantize_chunk
        self.qc.restype = ctypes.c_size_t
        self.qc.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        traits = base.ggml_get_type_traits
        traits.restype = ctypes.POINTER(type("ggml_type_traits", (ctypes.Structure,), {"_fields_": [
            ("type_name", ctypes.c_char_p), ("blck_size", ctypes.c_int64), ("blck_size_interleave", ctypes.c_int64),
            ("type_size", ctypes.c_size_t), ("is_quantized", ctypes.c_bool),
            ("to_float", ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64)),
            ("from_float_ref", ctypes.c_void_p)]}))
        traits.argtypes = [ctypes.c_int]
        self.traits = traits
        self.fp16 = base.ggml_fp32_to_fp16_row
        self.fp16.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64]
        # llama.cpp's log lines go nowhere (llama-cpp-python's own callback chokes on their non-UTF-8 bytes).
        self._quiet = llama_cpp.llama_log_callback(lambda level, text, user: None)
        llama_cpp.llama_log_set(self._quiet, ctypes.c_void_p(0))

    def quantize(self, typ, x, imp):
        """Blocks of x (2-D rows, or 3-D experts each with its own slice of imp) as ggml_quantize_chunk computes them."""
        from gguf import GGMLQuantizationType
        x = np.ascontiguousarray(x, np.float32)
        if typ == "F16":
            out = np.zeros(x.size * 2, np.uint8)
            self.fp16(x.ctypes.data, out.ctypes.data, x.size)
            return out
        gtype = int(getattr(GGMLQuantizationType, typ))
        mats = x.reshape(-1, x.shape[-2], x.shape[-1])
        parts = []
        for e, m in enumerate(mats):
            m = np.ascontiguousarray(m)
            w = None if imp is None else np.ascontiguousarray(imp[e * m.shape[1]:(e + 1) * m.shape[1]])
            buf = np.zeros(m.size * 2 + 1024, np.uint8)
            n = self.qc(gtype, m.ctypes.data, buf.ctypes.data, 0, m.shape[0], m.shape[1], None if w is None else w.ctypes.data)
            parts.append(buf[:n])
        return np.concatenate(parts)

    def dequantize(self, typ, data, n):
        """n values of the blocks `data` as ggml's to_float (dequantize_row_*) gives them."""
        from gguf import GGMLQuantizationType
        out = np.zeros(n, np.float32)
        data = np.ascontiguousarray(data)
        self.traits(int(getattr(GGMLQuantizationType, typ))).contents.to_float(data.ctypes.data, out.ctypes.data, n)
        return out

    def model_quantize(self, src, dst, ftype, imp=None):
        lc = self.lc
        p = lc.llama_model_quantize_default_params()
        p.ftype = FTYPE[ftype]
        p.nthread = 2
        keep = []
        if imp:
            arr = (lc.llama_model_imatrix_data * (len(imp) + 1))()
            for i, (k, v) in enumerate(imp.items()):
                v = np.ascontiguousarray(v, np.float32)
                keep.append(v)
                arr[i].name = k.encode()
                arr[i].data = v.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
                arr[i].size = v.size
            arr[len(imp)].name = None
            p.imatrix = arr
        assert lc.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p)) == 0, "llama_model_quantize failed on " + src
        return dst


class GgufQuant(L.InteropCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="ckh_ggufq_")
        cls.ggml = Ggml()
        cls.models = {}
        rng = np.random.default_rng(7)
        for name, arch, inter, layers, tied in (("llama", "llama", 640, 8, False), ("qwen2", "qwen2", 200, 4, True)):
            src = os.path.join(cls.root, name)
            fast = make_model(src, arch, inter, layers, tied)
            cfg = G.config_of(src)
            want = G.expected(src, cfg)  # the f32 rows llama.cpp's converter writes (q/k permuted for llama)
            f32 = L.convert(src, os.path.join(cls.root, name + "-f32"), "--to", "gguf", "--dtype", "f32")
            # An importance matrix for every 2-D weight but the embedding (llama-imatrix collects matmul inputs only).
            entries = {}
            for k, v in want.items():
                if v.dim() == 2 and k != "token_embd.weight":
                    entries[k] = ((rng.exponential(1.0, (1, v.shape[1])) * 40).astype(np.float32), np.array([37.0], np.float32))
            imat = os.path.join(cls.root, name + "-imatrix.gguf")
            write_imatrix(imat, entries)
            imp = {k: importance(s, c) for k, (s, c) in entries.items()}
            cls.models[name] = dict(src=src, cfg=cfg, want=want, f32=os.path.join(f32, "model.gguf"), imat=imat, imp=imp,
                                    entries=entries, fast=fast)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def ckhost(self, model, typ, *extra):
        m = self.models[model]
        out = L.convert(m["src"], self.path("%s-%s-%d" % (model, typ, len(os.listdir(self.tmp)))), "--to", "gguf", "--dtype", "f32",
                        "--quantize", "ggml", "--ggml-type", typ, *extra)
        return os.path.join(out, "model.gguf")

    def test_types_bitexact(self):
        # Every type on its own (--ggml-pure), with and without the importance matrix: each quantized tensor equals
        # ggml_quantize_chunk of the transcribed f32 rows (ggml's *_ref quantizers without importance, the
        # importance-weighted ones with it; Q8_0 ignores it), the shape fallbacks (rows of 640: Q2_K/Q3_K -> Q4_0,
        # Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; rows of 200: F16) included.
        seen, n = {}, 0
        for model in ("llama", "qwen2"):
            m = self.models[model]
            for typ, ggml_type in PURE.items():
                for im in (False, True):
                    got = gguf_tensors(self.ckhost(model, typ, "--ggml-pure", *(["--imatrix", m["imat"]] if im else [])))
                    for k, v in m["want"].items():
                        t, data, _ = got[k]
                        if v.dim() < 2:
                            self.assertEqual(t, "F32", k)
                            continue
                        cols = v.shape[-1]
                        fb = {"Q2_K": "Q4_0", "Q3_K": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}
                        expect = ggml_type if cols % 256 == 0 else fb.get(ggml_type, ggml_type)
                        if cols % 32:
                            expect = "F16"
                        self.assertEqual(t, expect, "%s %s: %s" % (model, typ, k))
                        imp = m["imp"].get(k) if im else None
                        ref = self.ggml.quantize(t, v.float().numpy(), imp)
                        self.assertEqual(data.size, ref.size, k)
                        self.assertTrue(np.array_equal(data, ref), "%s %s%s: %s differs from ggml_quantize_chunk (%s)" %
                                        (model, typ, " imatrix" if im else "", k, t))
                        seen[t + (" imatrix" if im and imp is not None and t not in ("Q8_0", "F16") else "")] = 1
                        n += 1
        L.report("--ggml-pure, 10 types x imatrix off/on: %d quantized tensors byte-identical to libggml's ggml_quantize_chunk "
                 "(%s)" % (n, ", ".join(sorted(seen))))

    def compare_with_llama(self, model, mix, imat, imp, label):
        """ckhost's mix vs llama_model_quantize on ckhost's F32 GGUF: same type and bytes per tensor. Returns the
        type counts and the path of ckhost's file."""
        m = self.models[model]
        ref_path = self.ggml.model_quantize(m["f32"], self.path("ref-%s-%s-%s.gguf" % (model, mix, label)), mix, imp)
        ref = gguf_tensors(ref_path)
        path = self.ckhost(model, mix, *(["--imatrix", imat] if imat else []))
        got = gguf_tensors(path)
        self.assertEqual(file_type(path), file_type(ref_path), "%s %s: general.file_type" % (model, mix))
        self.assertEqual(sorted(got), sorted(ref), "%s %s: tensor names" % (model, mix))
        types = {}
        for k, (t, data, shape) in ref.items():
            self.assertEqual(got[k][0], t, "%s %s %s: %s gets %s from llama.cpp" % (model, mix, label, k, t))
            self.assertEqual(got[k][2], shape, k)
            self.assertTrue(np.array_equal(got[k][1], data), "%s %s %s: %s (%s) bytes differ from llama.cpp's" % (model, mix, label, k, t))
            types[t] = types.get(t, 0) + 1
        return types, path

    def test_mixes_vs_llama_quantize(self):
        lines = []
        for model in ("llama", "qwen2"):
            m = self.models[model]
            for mix in MIXES:
                for imat, imp, label in ((None, None, "plain"), (m["imat"], m["imp"], "imatrix")):
                    types, _ = self.compare_with_llama(model, mix, imat, imp, label)
                    if label == "imatrix":
                        lines.append("%s %s %s" % (model, mix, "/".join("%s:%d" % kv for kv in sorted(types.items()))))
        L.report("mixes: every tensor's type and bytes equal llama_model_quantize's on the same F32 GGUF, with and without "
                 "the importance matrix: " + "; ".join(lines))
        # Negative twin: one tensor's importance with two 128-column slices swapped: ckhost's bytes of that tensor no
        # longer equal llama.cpp's (with the original importance), every other tensor still does.
        m = self.models["llama"]
        entries = dict(m["entries"])
        k = "blk.0.attn_q.weight"
        s, c = entries[k]
        s2 = s.copy()
        s2[:, :128], s2[:, 128:256] = s[:, 128:256], s[:, :128]
        entries[k] = (s2, c)
        bad = self.path("imatrix-swapped.gguf")
        write_imatrix(bad, entries)
        ref = gguf_tensors(self.ggml.model_quantize(m["f32"], self.path("ref-swap.gguf"), "q4_k_m", m["imp"]))
        got = gguf_tensors(self.ckhost("llama", "q4_k_m", "--imatrix", bad))
        differ = sorted(n for n in ref if not np.array_equal(ref[n][1], got[n][1]))
        self.assertEqual(differ, [k])
        # ... and two blocks of a tensor swapped in ckhost's own output break the equality too.
        t, data, _ = got["blk.1.attn_k.weight"]
        blocks = data.reshape(-1, 144).copy()
        blocks[[0, 1]] = blocks[[1, 0]]
        self.assertEqual(t, "Q4_K")
        self.assertFalse(np.array_equal(blocks.reshape(-1), ref["blk.1.attn_k.weight"][1]))
        L.report("negative twins: two swapped importance slices change exactly %s; two swapped Q4_K blocks differ" % k)

    def test_moe_and_legacy_imatrix(self):
        # A Mixtral-shaped model (llama with 8 experts: llama.cpp's n_expert == 8 rules put attn_v / attn_k in Q8_0 and
        # attn_output in Q5_K) whose stacked experts have one importance slice each (one expert never routed: count 0,
        # importance 1), and the Llama model with a legacy imatrix.dat (one entry with ncall 0: its sums are the
        # importance): llama_model_quantize and ckhost agree on every tensor's type and bytes.
        transformers = L._quiet_transformers()
        src = self.path("mixtral")
        cfg = transformers.MixtralConfig(hidden_size=256, intermediate_size=256, num_hidden_layers=2, num_attention_heads=8,
                                         num_key_value_heads=2, num_local_experts=8, num_experts_per_tok=2, vocab_size=400,
                                         max_position_embeddings=128, tie_word_embeddings=False, rope_theta=1e6)
        m = transformers.MixtralForCausalLM(cfg)
        L.randomize_(m, 0)
        m.save_pretrained(src)
        self.models["llama"]["fast"].save_pretrained(src)
        f32 = os.path.join(L.convert(src, self.path("mixtral-f32"), "--to", "gguf", "--dtype", "f32"), "model.gguf")
        rng = np.random.default_rng(3)
        entries = {}
        for k, (t, data, shape) in gguf_tensors(f32).items():
            if len(shape) >= 2 and k != "token_embd.weight" and "ffn_gate_inp" not in k:
                n_mat = shape[0] if len(shape) == 3 else 1
                counts = rng.integers(1, 60, n_mat).astype(np.float32)
                if n_mat > 1:
                    counts[3] = 0
                entries[k] = ((rng.exponential(1.0, (n_mat, shape[-1])) * 40).astype(np.float32), counts)
        imat = self.path("mixtral-imatrix.gguf")
        write_imatrix(imat, entries)
        imp = {k: importance(s_, c) for k, (s_, c) in entries.items()}
        ref = gguf_tensors(self.ggml.model_quantize(f32, self.path("mixtral-ref.gguf"), "q4_k_m", imp))
        got = gguf_tensors(os.path.join(L.convert(src, self.path("mixtral-q4km"), "--to", "gguf", "--dtype", "f32", "--quantize",
                                                  "ggml", "--ggml-type", "q4_k_m", "--imatrix", imat), "model.gguf"))
        self.assertEqual(sorted(got), sorted(ref))
        for k, (t, data, shape) in ref.items():
            self.assertEqual(got[k][0], t, "mixtral: %s" % k)
            self.assertTrue(np.array_equal(got[k][1], data), "mixtral: %s (%s) bytes differ from llama.cpp's" % (k, t))
        self.assertEqual((ref["blk.0.attn_v.weight"][0], ref["blk.0.attn_k.weight"][0], ref["blk.0.attn_output.weight"][0],
                          ref["blk.1.ffn_down_exps.weight"][0]), ("Q8_0", "Q8_0", "Q5_K", "Q6_K"))
        # Legacy imatrix.dat of the Llama model: sums / ncall, and the sums themselves where ncall is 0.
        lm = self.models["llama"]
        legacy, limp = {}, {}
        for i, (k, (s_, c)) in enumerate(sorted(lm["entries"].items())):
            ncall = 0 if i == 0 else 37
            legacy[k] = (s_, ncall)
            limp[k] = (s_.reshape(-1) / np.float32(ncall)).astype(np.float32) if ncall > 0 else s_.reshape(-1).copy()
        dat = self.path("imatrix.dat")
        write_legacy_imatrix(dat, legacy)
        ref = gguf_tensors(self.ggml.model_quantize(lm["f32"], self.path("legacy-ref.gguf"), "q4_k_m", limp))
        got = gguf_tensors(self.ckhost("llama", "q4_k_m", "--imatrix", dat))
        for k, (t, data, shape) in ref.items():
            self.assertEqual(got[k][0], t, "legacy: %s" % k)
            self.assertTrue(np.array_equal(got[k][1], data), "legacy imatrix.dat: %s (%s) bytes differ from llama.cpp's" % (k, t))
        # DeepSeek-V3-shaped (deepseek2: dense first layer, 8 routed experts and a shared one, MLA's per-head attn_k_b /
        # attn_v_b stacks with one importance slice per head, rows of 128 falling back to 32-element types) and
        # Qwen2-MoE-shaped (a shared expert with its [1, hidden] gate, which is 1-D to ggml and stays F32).
        import test_gguf_moe as M
        for name, kw in (("deepseek3", dict(hidden_size=256, moe_intermediate_size=256, intermediate_size=512, q_lora_rank=256,
                                            kv_lora_rank=256, qk_nope_head_dim=32, qk_rope_head_dim=32, v_head_dim=32,
                                            num_attention_heads=4, num_key_value_heads=4, num_hidden_layers=3)),
                         ("qwen2moe", dict(hidden_size=256, moe_intermediate_size=256, shared_expert_intermediate_size=512,
                                           intermediate_size=512, num_hidden_layers=2))):
            d = M.make_source(name, self.path(name), **kw)
            d_f32 = os.path.join(L.convert(d, self.path(name + "-f32"), "--to", "gguf", "--dtype", "f32"), "model.gguf")
            entries = {}
            for k, (t, data, shape) in gguf_tensors(d_f32).items():
                if len(shape) >= 2 and k != "token_embd.weight" and "ffn_gate_inp" not in k:
                    n_mat = shape[0] if len(shape) == 3 else 1
                    entries[k] = ((rng.exponential(1.0, (n_mat, shape[-1])) * 40).astype(np.float32),
                                  rng.integers(1, 60, n_mat).astype(np.float32))
            d_imat = self.path(name + "-imatrix.gguf")
            write_imatrix(d_imat, entries)
            ref = gguf_tensors(self.ggml.model_quantize(d_f32, self.path(name + "-ref.gguf"), "q4_k_m",
                                                        {k: importance(a, b) for k, (a, b) in entries.items()}))
            got = gguf_tensors(os.path.join(L.convert(d, self.path(name + "-q4km"), "--to", "gguf", "--dtype", "f32", "--quantize",
                                                      "ggml", "--ggml-type", "q4_k_m", "--imatrix", d_imat), "model.gguf"))
            self.assertEqual(sorted(got), sorted(ref))
            for k, (t, data, shape) in ref.items():
                self.assertEqual(got[k][0], t, "%s: %s" % (name, k))
                self.assertTrue(np.array_equal(got[k][1], data), "%s: %s (%s) bytes differ from llama.cpp's" % (name, k, t))
        L.report("Mixtral-shaped (8 experts, per-expert importance, one expert count 0), DeepSeek-V3-shaped (per-head attn_k_b "
                 "importance) and Qwen2-MoE-shaped Q4_K_M, and the Llama Q4_K_M from a legacy imatrix.dat (one entry with ncall 0): every tensor's type "
                 "and bytes equal llama_model_quantize's")
        # A truncated imatrix.dat is refused in one line naming the file.
        with open(dat, "rb") as fh:
            blob = fh.read()
        bad = self.path("bad.dat")
        with open(bad, "wb") as fh:
            fh.write(blob[:len(blob) // 2])
        L.assert_refused(self, lm["src"], self.path("bad-out"), "--to", "gguf", "--quantize", "ggml", "--ggml-type", "q4_k_m",
                         "--imatrix", bad, needle="bad.dat: not a legacy imatrix file: entry")
        # An importance matrix whose size does not fit the tensor is refused naming the tensor, as llama.cpp does.
        entries = dict(lm["entries"])
        entries["blk.0.attn_q.weight"] = (entries["blk.0.attn_q.weight"][0][:, :128], entries["blk.0.attn_q.weight"][1])
        wrong = self.path("wrong-size.gguf")
        write_imatrix(wrong, entries)
        L.assert_refused(self, lm["src"], self.path("wrong-out"), "--to", "gguf", "--quantize", "ggml", "--ggml-type", "q4_k_m",
                         "--imatrix", wrong, needle="blk.0.attn_q.weight")

    def test_read_back(self):
        # GGUF -> HF --dtype f32 of ckhost's mixes: every block-type tensor (Q2_K..Q6_K and the 32-element fallbacks)
        # comes back as ggml's own dequantization (to_float of libggml-base) of its bytes, q/k rows un-permuted.
        m = self.models["llama"]
        seen = set()
        for mix in ("q2_k", "q3_k_m", "q5_k_m", "q6_k"):
            path = self.ckhost("llama", mix, "--imatrix", m["imat"])
            back = L.safe_open_all(L.convert(os.path.dirname(path), self.path("back-" + mix), "--to", "hf", "--dtype", "f32"))
            for k, (t, data, shape) in gguf_tensors(path).items():
                if t in ("F32", "F16"):
                    continue
                x = torch.from_numpy(self.ggml.dequantize(t, data, int(np.prod(shape))).reshape(shape))
                name, heads = G.hf_name(k, m["cfg"])
                if heads:
                    x = x.reshape(heads, x.shape[0] // heads // 2, 2, x.shape[1]).swapaxes(1, 2).reshape(x.shape)
                self.assertTrue(torch.equal(back[name], x), "%s: %s (%s) read back differs from ggml's dequantization" % (mix, name, t))
                seen.add(t)
        self.assertEqual(seen, {"Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "Q4_0", "Q5_0", "Q5_1", "Q8_0"})
        L.report("GGUF -> HF --dtype f32: %s tensors equal ggml's dequantize_row_* of their bytes (q/k un-permuted)" %
                 ", ".join(sorted(seen)))

    def test_llama_cpp_loads_q4_k_m(self):
        # llama.cpp loads ckhost's Q8_0, Q4_K_M (with the importance matrix) and Q2_K files: its tokenizer gives the
        # source's ids, the Q4_K_M logits stay within a loose bound of transformers' f32 logits (cosine >= 0.93, max
        # |diff| < 0.4 of the largest logit: a 4-bit model of random weights, 8 layers deep), and the error grows as the
        # bits shrink (Q8_0 < Q4_K_M < Q2_K), which a wrongly decoded block would not give.
        lines = []
        for model in ("llama", "qwen2"):
            m = self.models[model]
            ids = m["fast"](G.TEXT)["input_ids"]
            ref_model = L.load_hf(m["src"]).float()
            with torch.no_grad():
                ref = ref_model(torch.tensor([ids])).logits[0].numpy().astype(np.float64)
            scale = float(np.abs(ref).max())
            rms = {}
            for typ in ("q8_0", "q4_k_m", "q2_k"):
                path = self.ckhost(model, typ, "--imatrix", m["imat"])
                toks, got = G.Gguf.llama_cpp(self, path, [G.TEXT], ids)
                self.assertEqual(toks[0], ids, "%s %s tokenizer" % (model, typ))
                d = got - ref
                rms[typ] = float(np.sqrt((d * d).mean() / (ref * ref).mean()))
                if typ == "q4_k_m":
                    cos = float((got * ref).sum() / np.sqrt((got * got).sum() * (ref * ref).sum()))
                    diff = float(np.abs(d).max())
                    self.assertGreater(cos, 0.93, "%s Q4_K_M: llama.cpp's logits have cosine %.3f with transformers'" % (model, cos))
                    self.assertLess(diff, 0.4 * scale, "%s Q4_K_M: llama.cpp logits differ by %g" % (model, diff))
            self.assertLess(rms["q8_0"], rms["q4_k_m"], model)
            self.assertLess(rms["q4_k_m"], rms["q2_k"], model)
            lines.append("%s Q4_K_M cosine %.3f, max |diff| / max |logit| %.2f; relative rms error Q8_0 %.3f < Q4_K_M %.3f < Q2_K %.3f" %
                         (model, cos, diff / scale, rms["q8_0"], rms["q4_k_m"], rms["q2_k"]))
        L.report("llama.cpp loads ckhost's files (imatrix): " + "; ".join(lines))

if __name__ == "__main__":
    L.main()
