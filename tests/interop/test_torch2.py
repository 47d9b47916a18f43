"""torch 2.13 as consumer and producer (issue 9, point 4).

- torch.load(weights_only=True) accepts every torch-format file ckhost writes: pytorch_model.bin (no
  extra globals), Megatron rank files and torch_dist common.pt (only argparse.Namespace allowed, the
  class Megatron-Core itself registers with add_safe_globals), and every chunk of the .distcp files.
- torch.distributed.checkpoint.load (no process group) reads ckhost's dcp and torch-dist outputs into
  state dicts of the right names and shapes, for both --dcp-torch class-path choices.
- A DCP saved by torch 2.13's own dcp.save converts to HF bit-exactly (single file, several files,
  FSDP2-style "model." prefix, bf16).
"""
import argparse
import glob
import io
import json
import os
import pickle
import subprocess
import sys

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import BytesStorageMetadata, TensorStorageMetadata

import interop_lib as L
from interop_lib import convert


def load_weights_only(path, allow_namespace=False):
    if allow_namespace:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    return torch.load(path, map_location="cpu", weights_only=True)


def hf_state(d):
    return {k: v for k, v in L.load_hf(d).state_dict().items()}


def tied(cfg_dir):
    with open(os.path.join(cfg_dir, "config.json")) as f:
        return json.load(f).get("tie_word_embeddings", False)


class TorchLoad(L.InteropCase):
    def test_pytorch_model_bin(self):
        src = L.make_hf("qwen2-bias-tied", self.path("src"))
        for name, args in [("single", []), ("sharded", ["--max-shard-size", "100KB"])]:
            out = convert(src, self.path("torch_" + name), "--to", "torch", *args)
            files = sorted(glob.glob(os.path.join(out, "pytorch_model*.bin")))
            self.assertEqual(len(files) > 1, name == "sharded", files)
            sd = {}
            for f in files:
                part = load_weights_only(f)
                self.assertTrue(all(isinstance(v, torch.Tensor) for v in part.values()))
                sd.update(part)
            ref = L.safe_open_all(src)
            self.assertEqual(sorted(sd), sorted(ref))
            for k in ref:
                self.assertTrue(torch.equal(sd[k], ref[k]), k)
            # transformers loads the .bin directory too and gives the same logits.
            L.assert_same_model(self, src, out)
            L.report(f"torch 2.13 torch.load(weights_only=True) {name} pytorch_model.bin: {len(files)} file(s), "
                     f"{len(sd)} tensors equal; transformers logits bit-identical")

    def test_megatron_rank_files_and_common_pt(self):
        src = L.make_hf("llama-gqa", self.path("src"))
        meg = convert(src, self.path("meg"), "--to", "megatron", "--tp", "2", "--pp", "2")
        files = sorted(glob.glob(os.path.join(meg, "release", "*", "model_optim_rng.pt")))
        self.assertEqual(len(files), 4)
        for f in files:
            ck = load_weights_only(f, allow_namespace=True)
            self.assertIsInstance(ck["args"], argparse.Namespace)
            self.assertEqual(ck["args"].tensor_model_parallel_size, 2)
            self.assertTrue(ck["model"])
            # Megatron's own loader (no weights_only restriction) sees the same object.
            with self.assertRaises(pickle.UnpicklingError):
                torch.load(f, map_location="cpu", weights_only=True)  # Namespace is not allowed by default
        td = convert(src, self.path("td"), "--to", "torch-dist", "--tp", "2")
        commons = glob.glob(os.path.join(td, "*", "common.pt"))
        self.assertEqual(len(commons), 1)
        common = load_weights_only(commons[0], allow_namespace=True)
        self.assertIsInstance(common["args"], argparse.Namespace)
        self.assertEqual(common["args"].num_layers, 4)
        self.assertEqual(common["args"].rotary_base, 500000.0)
        L.report(f"torch 2.13 torch.load(weights_only=True, safe_globals=[Namespace]): {len(files)} Megatron rank "
                 f"files and common.pt")


class DcpLoad(L.InteropCase):
    def dcp_load_all(self, d):
        """Every item of d's .metadata loaded by torch.distributed.checkpoint.load (no process group)."""
        md = dcp.FileSystemReader(d).read_metadata()
        sd = {}
        for k, m in md.state_dict_metadata.items():
            if isinstance(m, TensorStorageMetadata):
                sd[k] = torch.empty(tuple(m.size), dtype=m.properties.dtype)
            else:
                self.assertIsInstance(m, BytesStorageMetadata)
                sd[k] = io.BytesIO()
        dcp.load(sd, checkpoint_id=d)
        # Every chunk is a torch.save archive that torch.load(weights_only=True) accepts on its own.
        n = 0
        for item in md.storage_data.values():
            path = os.path.join(d, item.relative_path)
            with open(path, "rb") as f:
                f.seek(item.offset)
                blob = f.read(item.length)
            torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
            n += 1
        return sd, md, n

    def test_dcp_output(self):
        for fam in ("llama-gqa", "qwen2-bias-tied"):
            src = L.make_hf(fam, self.path(fam))
            ref = hf_state(src)
            if tied(src):
                ref.pop("lm_head.weight")
            for cls_paths in ("2", "1.13"):
                for files in ("1", "3"):
                    out = convert(src, self.path(f"{fam}_dcp_{cls_paths}_{files}"), "--to", "dcp", "--dcp-torch",
                                  cls_paths, "--dist-files", files)
                    sd, md, n = self.dcp_load_all(out)
                    self.assertEqual(sorted(sd), sorted(ref))
                    for k in ref:
                        self.assertEqual(tuple(sd[k].shape), tuple(ref[k].shape), k)
                        self.assertTrue(torch.equal(sd[k], ref[k].to(sd[k].dtype)), k)
                    self.assertEqual(len(glob.glob(os.path.join(out, "*.distcp"))), int(files))
            L.report(f"torch 2.13 dcp.load of ckhost dcp ({fam}, class paths 2 and 1.13, 1 and 3 files): "
                     f"{len(ref)} tensors equal, {n} chunks torch.load(weights_only=True)")

    def test_swapped_chunks_fail(self):
        """Two layers' q_proj chunks swapped in a ckhost dcp output's .metadata: loaded by torch, the
        state dict no longer equals the source (the check above catches it)."""
        src = L.make_hf("llama-gqa", self.path("src"))
        ref = hf_state(src)
        out = convert(src, self.path("out"), "--to", "dcp")
        md = dcp.FileSystemReader(out).read_metadata()
        a, b = ("model.layers.0.self_attn.q_proj.weight", "model.layers.1.self_attn.q_proj.weight")
        ka = next(k for k in md.storage_data if k.fqn == a)
        kb = next(k for k in md.storage_data if k.fqn == b)
        md.storage_data[ka], md.storage_data[kb] = md.storage_data[kb], md.storage_data[ka]
        with open(os.path.join(out, ".metadata"), "wb") as f:
            pickle.dump(md, f)
        sd, _, _ = self.dcp_load_all(out)
        self.assertFalse(torch.equal(sd[a], ref[a]))
        self.assertTrue(torch.equal(sd[a], ref[b]))

    def test_dcp_prefix(self):
        src = L.make_hf("llama-gqa", self.path("src"))
        out = convert(src, self.path("out"), "--to", "dcp", "--dcp-prefix", "model.")
        sd, _, _ = self.dcp_load_all(out)
        ref = hf_state(src)
        self.assertEqual(sorted(sd), sorted("model." + k for k in ref))

    def test_torch_dist_output(self):
        src = L.make_hf("llama-gqa", self.path("src"))
        ref = hf_state(src)
        for cls_paths in ("2", "1.13"):
            out = convert(src, self.path("td_" + cls_paths), "--to", "torch-dist", "--tp", "2", "--dcp-torch", cls_paths)
            ckpt = os.path.join(out, "release")
            sd, md, n = self.dcp_load_all(ckpt)
            # Megatron-Core names (stacked layers: a leading layer axis) and shapes.
            exp = {
                "embedding.word_embeddings.weight": (256, 64),  # 250 rows padded for TP2 x 128
                "decoder.final_layernorm.weight": (64,),
                "output_layer.weight": (256, 64),
                "decoder.layers.self_attention.linear_qkv.weight": (4, 128, 64),
                "decoder.layers.self_attention.linear_qkv.layer_norm_weight": (4, 64),
                "decoder.layers.self_attention.linear_proj.weight": (4, 64, 64),
                "decoder.layers.mlp.linear_fc1.weight": (4, 320, 64),
                "decoder.layers.mlp.linear_fc1.layer_norm_weight": (4, 64),
                "decoder.layers.mlp.linear_fc2.weight": (4, 64, 160),
            }
            tensors = {k: tuple(m.size) for k, m in md.state_dict_metadata.items()
                       if isinstance(m, TensorStorageMetadata)}
            for k, shape in tensors.items():
                self.assertEqual(tuple(sd[k].shape), shape, k)
            self.assertEqual(tensors, exp)
            # Bytes items: DCP's default planner replaces each BytesIO by the object torch.load gives.
            objects = [k for k, m in md.state_dict_metadata.items() if isinstance(m, BytesStorageMetadata)]
            self.assertTrue(objects and all("._extra_state/shard_" in k for k in objects), objects)
            for k in objects:
                self.assertEqual(sd[k], [None], k)
            # Values: the HF tensors, where Megatron keeps them unchanged.
            self.assertTrue(torch.equal(sd["embedding.word_embeddings.weight"][:250], ref["model.embed_tokens.weight"]))
            self.assertTrue(torch.equal(sd["embedding.word_embeddings.weight"][250:], torch.zeros(6, 64)))
            self.assertTrue(torch.equal(sd["output_layer.weight"][:250], ref["lm_head.weight"]))
            self.assertTrue(torch.equal(sd["decoder.final_layernorm.weight"], ref["model.norm.weight"]))
            for i in range(4):
                p = f"model.layers.{i}."
                self.assertTrue(torch.equal(sd["decoder.layers.self_attention.linear_proj.weight"][i],
                                            ref[p + "self_attn.o_proj.weight"]))
                self.assertTrue(torch.equal(sd["decoder.layers.mlp.linear_fc1.weight"][i],
                                            torch.cat([ref[p + "mlp.gate_proj.weight"], ref[p + "mlp.up_proj.weight"]])))
                self.assertTrue(torch.equal(sd["decoder.layers.self_attention.linear_qkv.layer_norm_weight"][i],
                                            ref[p + "input_layernorm.weight"]))
            L.report(f"torch 2.13 dcp.load of ckhost torch-dist (class paths {cls_paths}): {len(tensors)} tensors, "
                     f"{len(objects)} _extra_state objects, {n} chunks")


class DcpProducer(L.InteropCase):
    def check(self, fam, state_dict_of, writer_kw, ckhost_args):
        src = L.make_hf(fam, self.path("src"))
        model = L.load_hf(src)
        # bf16 sources stay bf16 on disk; dcp.save writes the tensors it is given.
        with open(os.path.join(src, "config.json")) as f:
            dt = {"bfloat16": torch.bfloat16, "float32": torch.float32}[json.load(f)["dtype"]]
        sd = {k: v.to(dt) for k, v in model.state_dict().items()}
        if tied(src):
            sd.pop("lm_head.weight")
        d = self.path("dcp")
        dcp.save(state_dict_of(sd), storage_writer=dcp.FileSystemWriter(d, **writer_kw))
        nfiles = len(glob.glob(os.path.join(d, "*.distcp")))
        self.assertEqual(nfiles > 1, "thread_count" in writer_kw, nfiles)
        out = convert(d, self.path("hf"), "--to", "hf", "--hf-config", src, *ckhost_args)
        got = L.safe_open_all(out)
        ref = L.safe_open_all(src)
        self.assertEqual(sorted(got), sorted(ref))
        for k in ref:
            self.assertEqual(got[k].dtype, ref[k].dtype, k)
            self.assertTrue(torch.equal(got[k], ref[k]), k)
        L.assert_same_model(self, src, out)
        L.report(f"torch 2.13 dcp.save ({fam}, {writer_kw or 'defaults'}, {ckhost_args or 'no prefix'}) -> ckhost -> HF: "
                 f"{len(ref)} tensors bit-exact, transformers logits bit-identical")

    def test_plain(self):
        self.check("llama-gqa", lambda sd: sd, {}, [])

    def test_several_files_bf16(self):
        self.check("llama-mha-tied-bf16", lambda sd: sd, {"thread_count": 3}, [])

    def test_fsdp_prefix(self):
        # FSDP2 trainers save {"model": model.state_dict()}: DCP flattens it to "model.<name>".
        self.check("qwen3-qknorm", lambda sd: {"model": sd}, {}, ["--dcp-prefix", "model."])


if __name__ == "__main__":
    L.main()
