"""Megatron-Core torch_dist and PyTorch DCP (issue 4).

Real clients: torch_dist checkpoints are built here with PyTorch's own DCP writer (torch 1.13's
torch.distributed._shard.checkpoint with ShardedTensors, chunked by layer and TP rank the way
Megatron-Core does) and converted by ckhost to HF bit-exactly. What ckhost writes is read back by an
independent reader (pickle with stub classes for .metadata, torch.load for every chunk), by torch
1.13's own DCP loader (--dcp-torch 1.13), and must give the HF model's logits. Bad inputs fail with
one-line errors and leave no output."""
import argparse
import dataclasses
import io
import json
import os
import pickle
import shutil
import sys

import torch

import ckh_testlib as L
from ckh_testlib import run
from test_megatron import megatron_logits, hf_logits64

_DCP = None


def torch_dcp():
    """torch 1.13's DCP package. On Python 3.11 its dataclasses have mutable defaults that the
    dataclass machinery rejects at import; wrap such defaults in default_factory (test harness only)."""
    global _DCP
    if _DCP is None:
        orig = dataclasses._get_field

        def patched(cls, name, tp, *a, **kw):
            try:
                return orig(cls, name, tp, *a, **kw)
            except ValueError as e:
                if "mutable default" not in str(e):
                    raise
                default = cls.__dict__.get(name)
                setattr(cls, name, dataclasses.field(default_factory=lambda d=default: d))
                return orig(cls, name, tp, *a, **kw)

        dataclasses._get_field = patched
        import torch.distributed as dist
        import torch.distributed._shard.checkpoint as dcp
        if not dist.is_initialized():
            dist.init_process_group("gloo", init_method="file://" + os.path.join(
                os.environ.get("TMPDIR", "/tmp"), "ckh_pg_%d" % os.getpid()), rank=0, world_size=1)
        _DCP = dcp
    return _DCP


# ---- Megatron-Core global tensors from HF, written here independently of ckhost -------------------

def mcore_from_hf(sd, cfg, tp=1):
    """(args, {mcore name: global tensor}) with per-layer names, vocabulary padded for `tp`."""
    h, H = cfg["hidden_size"], cfg["num_attention_heads"]
    G = cfg.get("num_key_value_heads", H)
    d = cfg.get("head_dim") or h // H
    I, V, Lyr = cfg["intermediate_size"], cfg["vocab_size"], cfg["num_hidden_layers"]
    P = H // G
    Vp = -(-V // (128 * tp)) * (128 * tp)
    args = argparse.Namespace(
        num_layers=Lyr, hidden_size=h, ffn_hidden_size=I, num_attention_heads=H, group_query_attention=G != H,
        num_query_groups=G, kv_channels=d, max_position_embeddings=256, seq_length=256, swiglu=True,
        normalization="RMSNorm", norm_epsilon=cfg.get("rms_norm_eps", 1e-5), add_bias_linear=False,
        add_qkv_bias=False, qk_layernorm=False, untie_embeddings_and_output_weights=True,
        position_embedding_type="rope", rotary_base=cfg.get("rope_theta", 10000.0), tensor_model_parallel_size=tp,
        pipeline_model_parallel_size=1, expert_model_parallel_size=1, padded_vocab_size=Vp, vocab_size=V,
        make_vocab_size_divisible_by=128, transformer_impl="transformer_engine", params_dtype=torch.bfloat16,
        bf16=True, ckpt_format="torch_dist", iteration=20)
    pad = lambda t: torch.cat([t, torch.zeros(Vp - V, h, dtype=t.dtype)])
    out = {"embedding.word_embeddings.weight": pad(sd["model.embed_tokens.weight"])}
    for l in range(Lyr):
        s, m = "model.layers.%d." % l, "decoder.layers.%d." % l
        q = sd[s + "self_attn.q_proj.weight"].view(G, P * d, h)
        k = sd[s + "self_attn.k_proj.weight"].view(G, d, h)
        v = sd[s + "self_attn.v_proj.weight"].view(G, d, h)
        out[m + "self_attention.linear_qkv.layer_norm_weight"] = sd[s + "input_layernorm.weight"]
        out[m + "self_attention.linear_qkv.weight"] = torch.cat([q, k, v], 1).reshape(-1, h)
        out[m + "self_attention.linear_proj.weight"] = sd[s + "self_attn.o_proj.weight"]
        out[m + "mlp.linear_fc1.layer_norm_weight"] = sd[s + "post_attention_layernorm.weight"]
        out[m + "mlp.linear_fc1.weight"] = torch.cat([sd[s + "mlp.gate_proj.weight"], sd[s + "mlp.up_proj.weight"]])
        out[m + "mlp.linear_fc2.weight"] = sd[s + "mlp.down_proj.weight"]
    out["decoder.final_layernorm.weight"] = sd["model.norm.weight"]
    out["output_layer.weight"] = pad(sd["lm_head.weight"])
    return args, out


def split_rule(name):
    if "norm" in name:
        return "replicated"
    if "linear_fc1" in name:
        return "swiglu"
    if "linear_proj" in name or "linear_fc2" in name:
        return "row"
    return "column"


def shards_of(name, t, tp, lead=()):
    """[(offsets, local tensor)] of one rank-split tensor, as Megatron-Core's sharded_state_dict gives
    them (SwiGLU fc1: gate block r of 2*TP and up block TP+r under one key)."""
    rule = split_rule(name)
    lead_off = list(lead)
    view = lambda x: x.reshape((1,) * len(lead) + tuple(x.shape)).clone()
    zeros = [0] * t.dim()
    if rule == "replicated":
        return [(lead_off + zeros, view(t))]
    res = []
    if rule == "swiglu":
        n = t.shape[0] // (2 * tp)
        for r in range(tp):
            for blk in (r, tp + r):
                o = list(zeros)
                o[0] = blk * n
                res.append((lead_off + o, view(t[blk * n:(blk + 1) * n])))
        return res
    dim = 1 if rule == "row" else 0
    n = t.shape[dim] // tp
    for r in range(tp):
        o = list(zeros)
        o[dim] = r * n
        res.append((lead_off + o, view(t.narrow(dim, r * n, n))))
    return res


def sharded(global_shape, shards):
    from torch.distributed._shard.sharded_tensor import Shard, ShardMetadata, ShardedTensor
    from torch.distributed._shard.sharded_tensor.metadata import ShardedTensorMetadata, TensorProperties
    local = [Shard(x, ShardMetadata(list(o), list(x.shape), "rank:0/cpu")) for o, x in shards]
    md = ShardedTensorMetadata([s.metadata for s in local], torch.Size(global_shape),
                               TensorProperties(dtype=shards[0][1].dtype))
    return ShardedTensor._init_from_local_shards_and_global_metadata(local, md)


def write_torch_dist_with_pytorch(out, args, mc, tp, stacked=True, common_in_dcp=False, extras=True, hf_dir=None):
    """A Megatron-Core torch_dist checkpoint written by PyTorch's DCP writer."""
    dcp = torch_dcp()
    it = os.path.join(out, "iter_%07d" % args.iteration)
    os.makedirs(it)
    sd = {}
    L_ = args.num_layers
    params = sorted({k.split(".", 3)[3] for k in mc if k.startswith("decoder.layers.")})
    for k, t in mc.items():
        if not k.startswith("decoder.layers."):
            sd[k] = sharded(t.shape, shards_of(k, t, tp))
    for p in params:
        if stacked:
            first = mc["decoder.layers.0." + p]
            sh = []
            for l in range(L_):
                sh += shards_of(p, mc["decoder.layers.%d.%s" % (l, p)], tp, lead=(l,))
            sd["decoder.layers." + p] = sharded((L_,) + tuple(first.shape), sh)
        else:
            for l in range(L_):
                k = "decoder.layers.%d.%s" % (l, p)
                sd[k] = sharded(mc[k].shape, shards_of(p, mc[k], tp))
    if extras:
        # TE extra state (ShardedObjects, bytes items), optimizer state, RNG state: not model weights.
        for l in range(L_):
            sd["decoder.layers.self_attention.linear_qkv._extra_state/shard_%d.0_%d.1" % (l, L_)] = io.BytesIO(b"fp8")
        sd["optimizer.state.exp_avg.decoder.final_layernorm.weight"] = torch.zeros(args.hidden_size)
        sd["rng_state/shard_0.0_1.1"] = io.BytesIO(b"rng")
    common = {"args": args, "checkpoint_version": 3.0, "iteration": args.iteration,
              "num_floating_point_operations_so_far": 7}
    if common_in_dcp:  # mcore >= 0.19: the common state is a ShardedObject inside DCP
        b = io.BytesIO()
        torch.save([common], b)
        b.seek(0)
        sd["common_state/shard_0_1"] = b
    else:
        torch.save(common, os.path.join(it, "common.pt"))
    dcp.save_state_dict(sd, dcp.FileSystemWriter(it, single_file_per_rank=True), no_dist=True)
    with open(os.path.join(it, "metadata.json"), "w") as f:
        json.dump({"sharded_backend": "torch_dist", "sharded_backend_version": 1}, f)
    with open(os.path.join(out, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write(str(args.iteration))
    if hf_dir:
        os.makedirs(os.path.join(out, "hf"))
        shutil.copy(os.path.join(hf_dir, "config.json"), os.path.join(out, "hf", "config.json"))


# ---- independent DCP reader ------------------------------------------------------------------------

class _Stub:
    """Any DCP class: keeps NEWOBJ + BUILD state as attributes (or `_state` for tuples)."""
    def __init__(self, *a):
        self._args = a

    def __setstate__(self, st):
        if isinstance(st, dict):
            self.__dict__.update(st)
        else:
            self._state = st


class StubUnpickler(pickle.Unpickler):
    classes = {}

    def find_class(self, module, name):
        if module == "torch" and name == "Size":
            return lambda x=(): tuple(x)
        if module == "torch":
            return getattr(torch, name)  # dtypes, layouts
        if (module, name) == ("torch.serialization", "_get_layout"):
            return lambda n: getattr(torch, n.split(".")[-1])
        if (module, name) == ("builtins", "getattr"):  # enum members as Python 3.11 pickles them
            return lambda cls, member: member
        if not module.startswith("torch.distributed."):
            raise pickle.UnpicklingError("unexpected global %s.%s" % (module, name))
        key = (module, name)
        if key not in self.classes:
            self.classes[key] = type(name, (_Stub,), {"__module__": module})
        return self.classes[key]


def read_dcp(d):
    """{fqn: tensor or bytes}, plus the Metadata stub: every chunk torch.load'ed (weights_only) from
    its byte range and placed at its offsets; coverage checked."""
    with open(os.path.join(d, ".metadata"), "rb") as f:
        md = StubUnpickler(f).load()
    where = {}
    for k, v in md.storage_data.items():
        off = getattr(k, "offset", None)
        where[(k.fqn, tuple(off) if off is not None else None)] = v
    out = {}
    for fqn, ent in md.state_dict_metadata.items():
        if not hasattr(ent, "chunks"):
            info = where[(fqn, None)]
            with open(os.path.join(d, info.relative_path), "rb") as f:
                f.seek(info.offset)
                out[fqn] = f.read(info.length)
            continue
        dtype = ent.properties._state[0]
        t = torch.empty(ent.size, dtype=dtype)
        seen = torch.zeros(ent.size, dtype=torch.int32)
        for ch in ent.chunks:
            info = where[(fqn, tuple(ch.offsets))]
            with open(os.path.join(d, info.relative_path), "rb") as f:
                f.seek(info.offset)
                blob = f.read(info.length)
            assert len(blob) == info.length, (fqn, "short read")
            x = torch.load(io.BytesIO(blob), weights_only=True)
            assert tuple(x.shape) == tuple(ch.sizes) and x.dtype == dtype, fqn
            idx = tuple(slice(o, o + s) for o, s in zip(ch.offsets, ch.sizes))
            t[idx] = x
            seen[idx] += 1
        assert bool((seen == 1).all()), fqn + ": chunks do not cover the tensor exactly once"
        out[fqn] = t
    return out, md


def load_torch_dist(root):
    """(args, per-layer global mcore state dict without vocabulary padding) of a torch_dist checkpoint."""
    with open(os.path.join(root, "latest_checkpointed_iteration.txt")) as f:
        it = f.read().strip()
    d = os.path.join(root, "release" if it == "release" else "iter_%07d" % int(it))
    with open(os.path.join(d, "metadata.json")) as f:
        assert json.load(f)["sharded_backend"] == "torch_dist"
    common = torch.load(os.path.join(d, "common.pt"), weights_only=False)
    args = common["args"]
    assert common["checkpoint_version"] == 3.0
    flat, _ = read_dcp(d)
    sd = {}
    for k, t in flat.items():
        if isinstance(t, bytes):  # ShardedObjects (_extra_state, common_state, rng)
            continue
        if k.startswith("decoder.layers.") and not k.split(".")[2].isdigit():
            assert t.shape[0] == args.num_layers, k
            for l in range(t.shape[0]):
                sd["decoder.layers.%d.%s" % (l, k[len("decoder.layers."):])] = t[l]
        else:
            sd[k] = t
    for k in ("embedding.word_embeddings.weight", "output_layer.weight"):
        if k in sd:
            assert sd[k].shape[0] == args.padded_vocab_size
            sd[k] = sd[k][: args.vocab_size]
    return args, sd


def write_bytes(path, data):
    with open(path, "wb") as f:
        f.write(data)


def assert_same_hf(tc, a_dir, b_dir):
    a, b = L.read_hf_dir(a_dir), L.read_hf_dir(b_dir)
    tc.assertEqual(set(a), set(b))
    for k in a:
        tc.assertTrue(torch.equal(a[k], b[k]), k)


class TorchDistTests(L.CkhostTestCase):
    IDS = torch.tensor([3, 17, 42, 5, 99, 128, 7, 250])

    def hf_config(self, src):
        with open(os.path.join(src, "config.json")) as f:
            return json.load(f)

    def test_pytorch_written_torch_dist_converts_to_hf_bit_exactly(self):
        src = self.synth("tiny-llama.json")
        cfg = self.hf_config(src)
        args, mc = mcore_from_hf(L.read_hf_dir(src), cfg, tp=2)
        cases = [("stacked", dict(stacked=True)), ("per_layer", dict(stacked=False)),
                 ("common_in_dcp", dict(stacked=True, common_in_dcp=True))]
        for tag, kw in cases:
            ck = self.path("td_" + tag)
            write_torch_dist_with_pytorch(ck, args, mc, 2, hf_dir=src, **kw)
            back = self.path("hf_" + tag)
            p = run("convert", ck, back, "--to", "hf", "--progress", "none")
            assert_same_hf(self, src, back)
            info = json.loads(run("inspect", ck, "--json").stdout)
            self.assertEqual(info["format"], "torch-dist", tag)
        # torch_dist -> legacy Megatron -> HF keeps the bits too.
        mg, back = self.path("mg"), self.path("hf_mg")
        run("convert", self.path("td_stacked"), mg, "--to", "megatron", "--tp", "2", "--pp", "2", "--progress", "none")
        run("convert", mg, back, "--to", "hf", "--progress", "none")
        assert_same_hf(self, src, back)
        self.assertNoLeftovers()

    def test_hf_to_torch_dist_independent_reader_logits_and_round_trips(self):
        for config in ("tiny-llama.json", "tiny-qwen2.json"):
            src = self.synth(config, name="src_" + config[:-5])
            cfg = self.hf_config(src)
            hf = L.read_hf_dir(src)
            ref = hf_logits64(hf, cfg, self.IDS)
            td = self.path("td_" + config[:-5])
            run("convert", src, td, "--to", "torch-dist", "--tp", "2", "--dist-files", "2", "--iteration", "30",
                "--progress", "none")
            it = os.path.join(td, "iter_0000030")
            self.assertTrue(os.path.exists(os.path.join(it, "__0_0.distcp")))
            self.assertTrue(os.path.exists(os.path.join(it, "__0_1.distcp")))
            args, sd = load_torch_dist(td)
            self.assertEqual(args.padded_vocab_size, 512)
            self.assertEqual(args.ckpt_format, "torch_dist")
            got = megatron_logits(args, sd, self.IDS)
            diff = (ref - got).abs().max().item()
            self.assertLess(diff, 1e-9, f"{config}: logits differ by {diff}")
            self.assertTrue(torch.equal(sd["embedding.word_embeddings.weight"], hf["model.embed_tokens.weight"]))
            # Stacked keys with a leading layer axis, one chunk per layer.
            _, md = read_dcp(it)
            ent = md.state_dict_metadata["decoder.layers.mlp.linear_fc1.weight"]
            self.assertEqual(ent.size[0], cfg["num_hidden_layers"])
            self.assertEqual(len(ent.chunks), cfg["num_hidden_layers"])
            self.assertEqual(type(md).__module__, "torch.distributed.checkpoint.metadata")
            # Transformer Engine / Megatron _extra_state ShardedObjects, as Megatron-Core names them
            # (unique_key "<key>/shard_<layer>_<num_layers>"), each torch.save([None]).
            flat, _ = read_dcp(it)
            nl = cfg["num_hidden_layers"]
            mods = ["self_attention.linear_qkv", "self_attention.core_attention", "self_attention.linear_proj",
                    "mlp.linear_fc1", "mlp.linear_fc2"]
            want = {"decoder.layers.%s._extra_state/shard_%d_%d" % (m, l, nl) for m in mods for l in range(nl)}
            want |= {"decoder.final_layernorm._extra_state/shard_0_1"}  # GPTModel drops output_layer._extra_state
            objs = {k: v for k, v in flat.items() if isinstance(v, bytes)}
            self.assertEqual(set(objs), want)
            for k, v in objs.items():
                self.assertEqual(torch.load(io.BytesIO(v), weights_only=True), [None], k)
            # Back to HF, bit-exact; and through legacy Megatron both ways.
            back = self.path("back_" + config[:-5])
            run("convert", td, back, "--to", "hf", "--progress", "none")
            assert_same_hf(self, src, back)
            mg, td2, back2 = (self.path(x + config[:-5]) for x in ("mg_", "td2_", "back2_"))
            run("convert", src, mg, "--to", "megatron", "--tp", "2", "--pp", str(cfg["num_hidden_layers"]),
                "--progress", "none")
            run("convert", mg, td2, "--to", "torch-dist", "--progress", "none")
            run("convert", td2, back2, "--to", "hf", "--progress", "none")
            assert_same_hf(self, src, back2)
        self.assertNoLeftovers()

    def test_torch_113_dcp_loader_reads_what_ckhost_writes(self):
        dcp = torch_dcp()
        src = self.synth("tiny-llama.json")
        hf = L.read_hf_dir(src)
        # Megatron torch_dist with 1.13 class paths: torch's loader fills global tensors from the chunks.
        td = self.path("td")
        run("convert", src, td, "--to", "torch-dist", "--dcp-torch", "1.13", "--dist-files", "3", "--progress", "none")
        d = os.path.join(td, "release")
        flat, md = read_dcp(d)
        want = {k: io.BytesIO() if isinstance(v, bytes) else torch.empty_like(v) for k, v in flat.items()}
        dcp.load_state_dict(want, dcp.FileSystemReader(d), no_dist=True)
        objs = 0
        for k in flat:
            if isinstance(flat[k], bytes):  # the loader torch.load()s BytesStorageMetadata items
                self.assertEqual(want[k], [None], k)
                objs += 1
            else:
                self.assertTrue(torch.equal(want[k], flat[k]), k)
        self.assertEqual(objs, 5 * 4 + 1)  # 4 layers and the final norm (GPTModel drops output_layer's)
        self.assertTrue(torch.equal(want["embedding.word_embeddings.weight"][:300], hf["model.embed_tokens.weight"]))
        # Plain DCP with HF names (FSDP2 style): keys are "model." + HF names.
        out = self.path("dcp")
        run("convert", src, out, "--to", "dcp", "--dcp-prefix", "model.", "--dcp-torch", "1.13", "--dist-files", "2",
            "--progress", "none")
        want = {"model." + k: torch.empty_like(v) for k, v in hf.items()}
        dcp.load_state_dict(want, dcp.FileSystemReader(out), no_dist=True)
        for k, v in hf.items():
            self.assertTrue(torch.equal(want["model." + k], v), k)

    def test_dcp_with_hf_names_round_trips(self):
        src = self.synth("tiny-qwen3.json")
        hf = L.read_hf_dir(src)
        out = self.path("dcp")
        run("convert", src, out, "--to", "dcp", "--dcp-prefix", "model.", "--dist-files", "3", "--progress", "none")
        flat, md = read_dcp(out)
        self.assertEqual(set(flat), {"model." + k for k in hf})
        for k, v in hf.items():
            self.assertTrue(torch.equal(flat["model." + k], v), k)
        self.assertEqual(md.planner_data["model.model.norm.weight"], ("model", "model.norm.weight"))
        self.assertTrue(os.path.exists(os.path.join(out, "config.json")))
        back = self.path("back")
        run("convert", out, back, "--to", "hf", "--progress", "none")  # prefix from planner_data
        assert_same_hf(self, src, back)
        # A DCP saved by PyTorch itself (one file per item, as 1.13 writes by default), read with --dcp-prefix.
        dcp = torch_dcp()
        theirs = self.path("theirs")
        dcp.save_state_dict({"m." + k: v for k, v in hf.items()}, dcp.FileSystemWriter(theirs), no_dist=True)
        shutil.copy(os.path.join(src, "config.json"), os.path.join(theirs, "config.json"))
        back2 = self.path("back2")
        run("convert", theirs, back2, "--to", "hf", "--dcp-prefix", "m.", "--progress", "none")
        assert_same_hf(self, src, back2)
        self.assertNoLeftovers()

    def test_bad_inputs_fail_cleanly(self):
        dcp = torch_dcp()  # real 1.13 classes, to edit .metadata
        src = self.synth("tiny-llama.json")
        good = self.path("good")
        run("convert", src, good, "--to", "torch-dist", "--dcp-torch", "1.13", "--dist-files", "2", "--progress", "none")

        def variant(name, edit_md=None, edit_dir=None):
            d = self.path(name)
            shutil.copytree(good, d)
            rel = os.path.join(d, "release")
            if edit_md:
                with open(os.path.join(rel, ".metadata"), "rb") as f:
                    md = pickle.load(f)
                edit_md(md)
                with open(os.path.join(rel, ".metadata"), "wb") as f:
                    pickle.dump(md, f)
            if edit_dir:
                edit_dir(rel)
            return d

        key = "decoder.layers.mlp.linear_fc1.weight"

        def overlap(md):
            ch = md.state_dict_metadata[key].chunks[0]
            ch.sizes = torch.Size([2] + list(ch.sizes[1:]))

        def gap(md):
            md.state_dict_metadata[key].chunks.pop(1)

        def exceed(md):
            ent = md.state_dict_metadata[key]
            ent.size = torch.Size([ent.size[0] - 1] + list(ent.size[1:]))

        def truncate(rel):
            p = os.path.join(rel, "__0_1.distcp")
            with open(p, "r+b") as f:
                f.truncate(os.path.getsize(p) - 1000)

        def corrupt_blob(rel):  # the end (zip directory) of the last tensor chunk in __0_0.distcp
            with open(os.path.join(rel, ".metadata"), "rb") as f:
                md = pickle.load(f)
            last = max((v for k, v in md.storage_data.items()
                        if v.relative_path == "__0_0.distcp" and k.offset is not None), key=lambda v: v.offset)
            with open(os.path.join(rel, "__0_0.distcp"), "r+b") as f:
                f.seek(last.offset + last.length - 30)
                f.write(b"\xff" * 30)

        cases = [
            ("missing", None, lambda rel: os.remove(os.path.join(rel, "__0_1.distcp")), ["__0_1.distcp", "does not exist"]),
            ("overlap", overlap, None, [key, "overlap", ".metadata"]),
            ("gap", gap, None, [key, "gap"]),
            ("exceed", exceed, None, [key, "exceeds the global shape"]),
            ("truncated", None, truncate, ["__0_1.distcp", "truncated"]),
            ("corrupt", None, corrupt_blob, ["__0_0.distcp"]),
            ("no_common", None, lambda rel: os.remove(os.path.join(rel, "common.pt")), ["common_state", "args"]),
            ("bad_metadata", None, lambda rel: write_bytes(os.path.join(rel, ".metadata"), b"\x80\x02}q\x00."),
             [".metadata", "not a DCP Metadata"]),
        ]
        for name, md_edit, dir_edit, needles in cases:
            d = variant(name, md_edit, dir_edit)
            before = L.tree_hash(d)
            out = self.path("out_" + name)
            p = run("convert", d, out, "--to", "hf", "--progress", "none", check=False)
            self.assertEqual(p.returncode, 1, name + ": " + p.stderr)
            lines = [x for x in p.stderr.splitlines() if x.strip()]
            self.assertEqual(len(lines), 1, name + ": " + p.stderr)
            for n in needles:
                self.assertIn(n, p.stderr, name)
            self.assertFalse(os.path.exists(out), name)
            self.assertEqual(L.tree_hash(d), before, name + ": input modified")
        self.assertNoLeftovers()

    def test_bad_options_fail_cleanly(self):
        src = self.synth("tiny-llama.json")
        for to, args, needle in [("dcp", ("--dcp-torch", "3"), "--dcp-torch: expected one of 2, 1.13"),
                                 ("torch-dist", ("--dist-files", "0"), "--dist-files must be >= 1"),
                                 ("torch-dist", ("--megatron-spec", "legacy"), "Megatron-Core names"),
                                 ("torch-dist", ("--pp", "3"), "do not divide")]:
            p = run("convert", src, self.path("bad"), "--to", to, "--progress", "none", *args, check=False)
            self.assertEqual(p.returncode, 1, args)
            self.assertIn(needle, p.stderr, args)
            self.assertFalse(os.path.exists(self.path("bad")), args)
        # A DCP directory is not a torch_dist checkpoint: asking for that reader says what is missing.
        out = self.path("dcp")
        run("convert", src, out, "--to", "dcp", "--progress", "none")
        p = run("convert", out, self.path("bad"), "--from", "torch-dist", "--to", "hf", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("metadata.json", p.stderr)


if __name__ == "__main__":
    L.main()
