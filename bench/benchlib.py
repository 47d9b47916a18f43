"""Shared helpers of the benchmark scripts."""
import json
import os
import shutil
import struct
import subprocess
import sys
import time


def timed_cpu(cmd, **kw):
    """(wall seconds, peak RSS bytes, CPU seconds user + system) of one child process run to completion;
    exits on failure."""
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, **kw)
    _, status, ru = os.wait4(p.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit("failed (%d): %s" % (os.waitstatus_to_exitcode(status), " ".join(cmd)))
    return time.monotonic() - t0, ru.ru_maxrss * 1024, ru.ru_utime + ru.ru_stime


def timed(cmd, **kw):
    """(wall seconds, peak RSS bytes) of one child process run to completion; exits on failure."""
    return timed_cpu(cmd, **kw)[:2]


def clean_output(out):
    """Removes a benchmark's output directory and flushes the page cache's dirty pages, so every run starts
    from the same disk state."""
    shutil.rmtree(out, ignore_errors=True)
    os.sync()


def timed_cat(files, out):
    """The `cat` baseline: (wall seconds, peak RSS) of cat-ing `files` into out/copy, from a clean `out`."""
    clean_output(out)
    os.makedirs(out)
    with open(os.path.join(out, "copy"), "wb") as f:
        return timed(["cat", *files], stdout=f)


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINYLLAMA = os.path.join(ROOT, "plugins", "model-llama", "configs", "tinyllama-1.1b.json")


def ensure_source(ckhost, data_dir, config=TINYLLAMA):
    """<data_dir>/hf-src: a synthesised HF checkpoint of `config` (one safetensors file), made once."""
    os.makedirs(data_dir, exist_ok=True)
    src = os.path.join(data_dir, "hf-src")
    if not os.path.exists(os.path.join(src, "config.json")):
        print("synthesising", src, "...", flush=True)
        subprocess.run([ckhost, "synth", "--model", "llama", "--config", config, src, "--force",
                        "--progress", "none", "--max-shard-size", "10GB"], check=True)
    return src


DTYPE_BYTES = {"BF16": 2, "F16": 2, "F32": 4, "F8_E4M3": 1}


def write_safetensors_checkpoint(d, entries, config, fill=None, shard_bytes=4 << 30):
    """Writes an HF checkpoint of `entries` ((name, shape, safetensors dtype) in order) into d, sharded at
    about `shard_bytes` (a tensor's `..._scale_inv` stays in its codes' shard), with index and config.json.
    fill(fh, nbytes, dtype) writes each tensor's data; without it the data is a hole (sparse file, real
    headers). Built in d + ".tmp" and renamed, so a half-made checkpoint is never taken for done; returns
    at once when d already has an index."""
    if os.path.exists(os.path.join(d, "model.safetensors.index.json")):
        return
    tmp = d + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    shards, cur, size = [], [], 0
    for name, shape, dt in entries:
        n = DTYPE_BYTES[dt]
        for s in shape:
            n *= s
        if cur and size + n > shard_bytes and not name.endswith("scale_inv"):
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape, dt, n))
        size += n
    shards.append(cur)
    weight_map, total = {}, 0
    for i, sh in enumerate(shards):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        hdr, off = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, dt, n in sh:
            hdr[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
            off += n
            weight_map[name] = fn
        js = json.dumps(hdr, separators=(",", ":")).encode()
        js += b" " * (-len(js) % 8)
        with open(os.path.join(tmp, fn), "wb") as fh:
            fh.write(struct.pack("<Q", len(js)) + js)
            if fill is None:
                fh.truncate(8 + len(js) + off)  # the data: a hole
            else:
                for _, _, dt, n in sh:
                    fill(fh, n, dt)
        total += off
    with open(os.path.join(tmp, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, fh)
    with open(os.path.join(tmp, "config.json"), "w") as fh:
        json.dump(config, fh, indent=1)
    os.rename(tmp, d)


def write_spm_tokenizer(d, vocab_size):
    """A SentencePiece tokenizer.model of exactly `vocab_size` pieces in `d` (needs the interop venv's sentencepiece
    and protobuf): <unk>, <s>, </s>, the 256 byte-fallback pieces, then made-up word pieces with falling scores, so
    that both ckhost and llama.cpp's convert_hf_to_gguf.py find a vocabulary that fits a synthesised checkpoint.
    Also writes tokenizer_config.json (bos/eos). Returns the path of tokenizer.model."""
    from sentencepiece import sentencepiece_model_pb2 as spm  # the venv's; imported here so benchlib stays stdlib-only

    m = spm.ModelProto()
    m.trainer_spec.model_type = spm.TrainerSpec.BPE
    m.trainer_spec.vocab_size = vocab_size
    m.trainer_spec.byte_fallback = True
    m.trainer_spec.unk_id, m.trainer_spec.bos_id, m.trainer_spec.eos_id, m.trainer_spec.pad_id = 0, 1, 2, -1
    m.normalizer_spec.name = "identity"
    m.normalizer_spec.add_dummy_prefix = True
    m.normalizer_spec.remove_extra_whitespaces = False

    def add(piece, score, kind):
        p = m.pieces.add()
        p.piece, p.score, p.type = piece, score, kind

    add("<unk>", 0.0, spm.ModelProto.SentencePiece.UNKNOWN)
    add("<s>", 0.0, spm.ModelProto.SentencePiece.CONTROL)
    add("</s>", 0.0, spm.ModelProto.SentencePiece.CONTROL)
    for b in range(256):
        add("<0x%02X>" % b, 0.0, spm.ModelProto.SentencePiece.BYTE)
    letters = "abcdefghijklmnopqrstuvwxyz"
    i = 0
    while len(m.pieces) < vocab_size:
        w, k = "", i
        while True:
            w += letters[k % 26]
            k //= 26
            if not k:
                break
        add(("\u2581" if i % 2 == 0 else "") + w, -float(i), spm.ModelProto.SentencePiece.NORMAL)
        i += 1
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(m.SerializeToString())
    with open(os.path.join(d, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "add_bos_token": True,
                   "add_eos_token": False, "tokenizer_class": "LlamaTokenizer"}, f)
    return path


def interop_venv():
    """The directory of the interop venv (scripts/interop_venv.sh builds it once); raises CalledProcessError when it
    cannot be built."""
    p = subprocess.run([os.path.join(ROOT, "scripts", "interop_venv.sh")], capture_output=True, text=True, check=True)
    return p.stdout.strip().splitlines()[-1]


def ensure_spm_tokenizer(python, d, vocab_size):
    """write_spm_tokenizer(d, vocab_size) run by `python` (a venv's, with sentencepiece), unless d has a tokenizer.model."""
    if not os.path.exists(os.path.join(d, "tokenizer.model")):
        subprocess.run([python, "-c", "import sys; sys.path.insert(0, %r); import benchlib; benchlib.write_spm_tokenizer(%r, %d)"
                        % (os.path.dirname(os.path.abspath(__file__)), d, vocab_size)], check=True)
