"""GGUF tokenizer metadata from a SentencePiece tokenizer.model (issue 13): tokenizer.ggml.model "llama" with tokens,
scores, token types, special token ids, add_bos/add_eos and the chat template, checked against llama.cpp itself.

The SentencePiece model is trained here (sentencepiece's trainer, BPE, byte_fallback on, user-defined symbols
<|im_start|>, <|im_end|> and foo▁bar, a control symbol <ctrl1>, Llama's identity normalizer) on a small multilingual
text; a tiny transformers Llama model directory gets it with the tokenizer files transformers writes for it
(LlamaTokenizer.from_pretrained(dir).save_pretrained(dir): tokenizer.json, tokenizer_config.json). Two directories:
  - "v5": as transformers 5.24 saves it (no added_tokens_decoder, no BOS template);
  - "legacy": as transformers 4 saved Llama 2 checkpoints: tokenizer_config.json with add_bos_token / add_eos_token,
    added_tokens_decoder, pad_token and a chat template, an added_tokens.json token beyond the pieces, and a
    tokenizer.json whose post-processor adds <s>.
Checks:
  (a) ckhost's tokenizer.* key-values equal those of llama.cpp's own convert_hf_to_gguf.py (the llama.cpp version
      llama-cpp-python 0.3.36 vendors, run with --vocab-only and the venv's gguf-py) on the same directory: every key,
      tokens, scores, types, special ids, add_bos/add_eos/add_sep, chat template. One deliberate difference, on the v5
      directory only: pieces SentencePiece types USER_DEFINED stay USER_DEFINED (the converter makes them NORMAL
      when added_tokens_decoder does not list them), "foo▁bar" written "foo bar" as the converter writes user-defined
      added tokens;
  (b) llama.cpp (llama-cpp-python, vocab_only, in a child process) tokenizes a fixed multilingual text (English,
      German, Chinese, Cyrillic, emoji through byte fallback, digits, runs of spaces, a tab, newlines, <|im_start|>)
      to the ids transformers' tokenizer gives, with and without the special tokens it adds (legacy: BOS); on the
      converter's v5 file llama.cpp does not split <|im_start|> out (why the difference above is made);
  (b') a model whose normalizer_spec says add_dummy_prefix false: ckhost writes add_space_prefix false and llama.cpp
      gives SentencePiece's own ids; the converter's file (no key) makes llama.cpp prepend a space;
  (c) negative twins: two piece scores swapped, or a piece renamed, in tokenizer.model change llama.cpp's ids and
      ckhost's key-values, so (a) and (b) fail on them;
  (d) a truncated tokenizer.model, a varint longer than 10 bytes and a length past the file's end are refused in one
      line naming the file; --gguf-tokenizer bpe on a SentencePiece-style tokenizer.json is refused by name.

llama.cpp's converter comes from llama-cpp-python's source distribution (scripts/interop_venv.sh unpacks it into
<venv>/share/llama.cpp).

Run: tests/interop/run_interop.sh tests/interop/test_gguf_spm.py --ckhost=build/bin/ckhost
"""
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import interop_lib as L  # noqa: E402

TEXT = ("Hello world, this is a test. Grüße aus München! 你好，世界。 Привет мир 12345 naïve café — ok?\n"
        "  tabs\tand  spaces 😀🎉\n\nend<|im_start|>")
TRAIN = ["The quick brown fox jumps over the lazy dog.", "Съешь же ещё этих мягких французских булок, да выпей чаю.",
         "我能吞下玻璃而不伤身体。你好世界", "Zwölf Boxkämpfer jagen Viktor quer über den großen Sylter Deich.",
         "Hello world, a test of München\n  tabs\tand  spaces"] * 20
USER = ["<|im_start|>", "<|im_end|>", "foo\u2581bar"]
VOCAB = 408  # the model's rows: 400 pieces, then [PAD<i>] (and, in the legacy directory, <extra_0> at 400)
CHAT = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
_SPM = {}


def train_spm():
    if "model" not in _SPM:
        import sentencepiece as spm
        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(TRAIN), model_writer=buf, vocab_size=400, model_type="bpe", byte_fallback=True,
            user_defined_symbols=USER, control_symbols=["<ctrl1>"], character_coverage=1.0,
            normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True,
            allow_whitespace_only_pieces=True, unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2, num_threads=1)
        _SPM["model"] = buf.getvalue()
    return _SPM["model"]


def edit_spm(blob, fn):
    """The model with fn(ModelProto) applied (sentencepiece's own protobuf module)."""
    from sentencepiece import sentencepiece_model_pb2 as pb
    m = pb.ModelProto()
    m.ParseFromString(blob)
    fn(m)
    return m.SerializeToString()


def make_v5(d, blob):
    transformers = L._quiet_transformers()
    cfg = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=VOCAB, bos_token_id=1, eos_token_id=2)
    transformers.LlamaForCausalLM(cfg).save_pretrained(d)
    with open(os.path.join(d, "tokenizer.model"), "wb") as fh:
        fh.write(blob)
    transformers.LlamaTokenizer.from_pretrained(d).save_pretrained(d)
    return d


def make_legacy(v5, d):
    transformers = L._quiet_transformers()
    shutil.copytree(v5, d)
    tok = transformers.LlamaTokenizer.from_pretrained(d, add_bos_token=True, add_eos_token=False)
    tok.add_tokens(["<extra_0>"])
    tok.save_pretrained(d)
    with open(os.path.join(d, "tokenizer.json")) as fh:
        added = json.load(fh)["added_tokens"]
    with open(os.path.join(d, "tokenizer_config.json")) as fh:
        tc = json.load(fh)
    tc.update(add_bos_token=True, add_eos_token=False, pad_token="<unk>", chat_template=CHAT, legacy=False,
              added_tokens_decoder={str(a["id"]): {k: a[k] for k in ("content", "lstrip", "normalized", "rstrip", "single_word", "special")}
                                    for a in added})
    with open(os.path.join(d, "tokenizer_config.json"), "w") as fh:
        json.dump(tc, fh, indent=2, ensure_ascii=False)
    with open(os.path.join(d, "added_tokens.json"), "w") as fh:
        json.dump({"<extra_0>": 400}, fh)
    return d


def converter():
    """llama.cpp's convert_hf_to_gguf.py (with its conversion/ package) of the llama.cpp that llama-cpp-python vendors."""
    return os.path.join(L.llama_cpp_converter_dir(), "convert_hf_to_gguf.py")


def reference(d, out):
    """convert_hf_to_gguf.py --vocab-only on `d`, with the venv's gguf-py (NO_LOCAL_GGUF)."""
    p = subprocess.run([sys.executable, converter(), d, "--outfile", out, "--vocab-only"], capture_output=True, text=True,
                       env={**os.environ, "NO_LOCAL_GGUF": "1"})
    if p.returncode != 0:
        raise AssertionError("convert_hf_to_gguf.py failed on %s:\n%s" % (d, p.stderr[-3000:]))
    return out


def fields(path):
    """tokenizer.* key-values as gguf-py's GGUFReader reads them."""
    from gguf import GGUFReader
    r = GGUFReader(path)
    return {k: f.contents() for k, f in r.fields.items() if k.startswith("tokenizer.")}


def llama_cpp(path, texts):
    """llama.cpp's ids of each text (child process; vocab only): without and with the special tokens it adds."""
    code = ("import json, sys, llama_cpp\n"
            "llm = llama_cpp.Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)\n"
            "print(json.dumps([[llm.tokenize(t.encode(), add_bos=b, special=True) for b in (False, True)] for t in json.loads(sys.argv[2])]))\n")
    p = subprocess.run([sys.executable, "-c", code, path, json.dumps(texts)], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("llama.cpp failed on %s:\n%s" % (path, p.stderr[-2000:]))
    return json.loads(p.stdout.strip().splitlines()[-1])


def hf_ids(d, texts):
    transformers = L._quiet_transformers()
    t = transformers.AutoTokenizer.from_pretrained(d)
    return [[t(x, add_special_tokens=False)["input_ids"], t(x)["input_ids"]] for x in texts]


class GgufSpm(L.InteropCase):
    def dirs(self):
        v5 = make_v5(self.path("v5"), train_spm())
        return v5, make_legacy(v5, self.path("legacy"))

    def ours(self, d, name, *extra):
        out = L.convert(d, self.path(name), "--to", "gguf", "--dtype", "f32", *extra)
        return os.path.join(out, "model.gguf")

    def test_converter_parity_and_llama_cpp(self):
        v5, legacy = self.dirs()
        user_ids = [i for i, t in enumerate(fields(self.ours(v5, "probe"))["tokenizer.ggml.tokens"]) if t in ("<|im_start|>", "<|im_end|>", "foo bar")]
        self.assertEqual(user_ids, [4, 5, 6])
        lines = []
        for name, d in (("legacy", legacy), ("v5", v5)):
            ours, ref = self.ours(d, name + "-gguf"), reference(d, self.path(name + "-ref.gguf"))
            a, b = fields(ours), fields(ref)
            self.assertEqual(a["tokenizer.ggml.model"], "llama")
            self.assertEqual(len(a["tokenizer.ggml.tokens"]), VOCAB)
            if name == "v5":  # the one deliberate difference: SentencePiece's USER_DEFINED pieces
                for i in user_ids:
                    self.assertEqual((a["tokenizer.ggml.token_type"][i], b["tokenizer.ggml.token_type"][i]), (4, 1), i)
                    b["tokenizer.ggml.token_type"][i] = 4
                self.assertEqual((a["tokenizer.ggml.tokens"][6], b["tokenizer.ggml.tokens"][6]), ("foo bar", "foo\u2581bar"))
                b["tokenizer.ggml.tokens"][6] = "foo bar"
            else:
                self.assertEqual(a["tokenizer.ggml.tokens"][400], "<extra_0>")
                self.assertEqual(a["tokenizer.ggml.add_bos_token"], True)
                self.assertEqual(a["tokenizer.ggml.padding_token_id"], 0)
                self.assertEqual(a["tokenizer.chat_template"], CHAT)
            self.assertEqual(sorted(a), sorted(b), name)
            for k in b:
                self.assertEqual(a[k], b[k], "%s: %s differs from convert_hf_to_gguf.py's" % (name, k))
            # llama.cpp on our file: transformers' ids, without and (legacy: BOS) with the special tokens added.
            want = hf_ids(d, [TEXT])
            got = llama_cpp(ours, [TEXT])
            self.assertEqual(got[0][0], want[0][0], name)
            if name == "legacy":
                self.assertEqual(got[0][1], want[0][1])
                self.assertEqual(want[0][1][0], 1)
            else:  # the converter's file does not split <|im_start|> out of the text
                theirs = llama_cpp(ref, [TEXT])[0][0]
                self.assertNotEqual(theirs, want[0][0])
                self.assertEqual(want[0][0][-1], 4)
                self.assertNotIn(4, theirs)
            lines.append("%s: %d keys" % (name, len(b)))
        L.report("SentencePiece -> GGUF: tokenizer.* key-values equal convert_hf_to_gguf.py's (%s; v5: USER_DEFINED pieces "
                 "kept USER_DEFINED); llama.cpp tokenizes the multilingual text (%d ids) to transformers' ids, with BOS where the "
                 "tokenizer adds it; on the converter's v5 file it does not split <|im_start|>" % (", ".join(lines), len(want[0][0])))

    def test_negative_twins(self):
        v5, legacy = self.dirs()
        blob = train_spm()
        want = hf_ids(legacy, [TEXT])[0][0]
        ref = fields(reference(legacy, self.path("ref.gguf")))

        def swap_scores(m):
            # The first pair (a merged piece the text uses, another merged piece) whose swapped scores change
            # SentencePiece's own encoding of the text (scores are its merge priorities, as they are llama.cpp's).
            import sentencepiece as spm
            base = spm.SentencePieceProcessor(model_proto=blob).encode(TEXT)
            used = sorted({i for i in want if 7 + 256 <= i < 400}, key=lambda k: -m.pieces[k].score)
            for i in used:
                for j in range(7 + 256, 400):
                    if j in used:
                        continue
                    m.pieces[i].score, m.pieces[j].score = m.pieces[j].score, m.pieces[i].score
                    if spm.SentencePieceProcessor(model_proto=m.SerializeToString()).encode(TEXT) != base:
                        return
                    m.pieces[i].score, m.pieces[j].score = m.pieces[j].score, m.pieces[i].score
            raise AssertionError("no score swap changes the encoding")

        def rename(m):
            k = [i for i in want if 7 + 256 <= i < 400 and len(m.pieces[i].piece) > 1][0]
            m.pieces[k].piece = m.pieces[k].piece + "\u00df"

        for name, fn in (("swapped-scores", swap_scores), ("renamed-piece", rename)):
            d = self.path(name)
            shutil.copytree(legacy, d)
            with open(os.path.join(d, "tokenizer.model"), "wb") as fh:
                fh.write(edit_spm(blob, fn))
            a = fields(self.ours(d, name + "-gguf"))
            self.assertNotEqual(a, ref, name)
            got = llama_cpp(self.path(name + "-gguf", "model.gguf"), [TEXT])[0][0]
            self.assertNotEqual(got, want, name)
        L.report("SentencePiece negative twins (two piece scores swapped; a piece renamed): ckhost's key-values differ from the "
                 "converter's of the original and llama.cpp's ids from transformers'")

    def test_no_dummy_prefix(self):
        # A SentencePiece model whose normalizer_spec says add_dummy_prefix false (and no add_prefix_space in
        # tokenizer_config.json): ckhost writes tokenizer.ggml.add_space_prefix false, so llama.cpp gives SentencePiece's
        # own ids; the converter writes no key and llama.cpp prepends a space (transformers 5.24's LlamaTokenizer, which
        # prepends too, is not the reference here: the model's own tokenizer is).
        import sentencepiece as spm
        blob = edit_spm(train_spm(), lambda m: setattr(m.normalizer_spec, "add_dummy_prefix", False))
        d = make_v5(self.path("nodummy"), blob)
        ours = self.ours(d, "nodummy-gguf")
        a, b = fields(ours), fields(reference(d, self.path("nodummy-ref.gguf")))
        self.assertEqual(a.pop("tokenizer.ggml.add_space_prefix"), False)
        self.assertNotIn("tokenizer.ggml.add_space_prefix", b)
        texts = [TEXT.replace("<|im_start|>", ""), " leading space"]
        want = [spm.SentencePieceProcessor(model_proto=blob).encode(t) for t in texts]
        self.assertEqual([g[0] for g in llama_cpp(ours, texts)], want)
        self.assertNotEqual([g[0] for g in llama_cpp(self.path("nodummy-ref.gguf"), texts)], want)
        L.report("SentencePiece add_dummy_prefix false -> tokenizer.ggml.add_space_prefix false: llama.cpp gives SentencePiece's "
                 "own ids (the converter's file, without the key, prepends a space)")

    def test_refusals(self):
        v5, _ = self.dirs()
        blob = train_spm()
        cases = (("truncated", blob[: len(blob) // 2], "left in its message"),
                 ("bad-varint", b"\x0a" + b"\xff" * 11 + blob, "varint longer than"),
                 ("huge-length", b"\x0a\x80\x80\x80\x80\x80\x20" + blob, "a length of 1099511627776 bytes"),
                 ("no-pieces", b"\x12\x02\x18\x02", "no pieces"))
        for name, bad, needle in cases:
            d = self.path("bad-" + name)
            shutil.copytree(v5, d)
            with open(os.path.join(d, "tokenizer.model"), "wb") as fh:
                fh.write(bad)
            err = L.assert_refused(self, d, self.path("bad-" + name + "-out"), "--to", "gguf", needle=needle)
            line = [ln for ln in err.splitlines() if ln.startswith("ckhost: error:")][0]
            self.assertIn(os.path.join(d, "tokenizer.model"), line)
        # --gguf-tokenizer bpe: the tokenizer.json transformers writes for a SentencePiece model is not byte-level BPE.
        L.assert_refused(self, v5, self.path("bpe-out"), "--to", "gguf", "--gguf-tokenizer", "bpe", needle="is not byte-level BPE")
        L.assert_refused(self, v5, self.path("xx-out"), "--to", "gguf", "--gguf-tokenizer", "xx", needle="--gguf-tokenizer")
        # --gguf-tokenizer none: no tokenizer keys at all.
        self.assertEqual(fields(self.ours(v5, "none", "--gguf-tokenizer", "none")), {})
        L.report("malformed tokenizer.model (truncated, 11-byte varint, length past the end, no pieces) refused in one line naming "
                 "the file; --gguf-tokenizer bpe on a SentencePiece tokenizer.json refused by name")


if __name__ == "__main__":
    L.main()
