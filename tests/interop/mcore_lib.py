"""Megatron-Core on CPU: the harness of test_megatron_core.py.

Megatron-Core 0.16.1 (the pinned release) is run as the real consumer and producer of ckhost's Megatron
outputs: GPTModel with the local layer spec (no Transformer Engine, no Apex), float32 parameters,
`use_cpu_initialization=True`, gloo process groups. Every model-parallel run happens in worker processes
(this file run as a script with a JSON job, one process per rank); the test module only prepares
checkpoints, launches `run_job(...)` and compares the tensors the workers saved.

A worker runs a list of tasks (one launch, several checks, because each start imports torch and
Megatron for ~4 s):
  - "load_dist":   build the model from the Megatron args in a torch_dist checkpoint's common.pt, load it
                   with dist_checkpointing.load(..., strict=StrictHandling.RAISE_ALL), load_state_dict
                   (strict=True), forward the prompt;
  - "load_legacy": build the model for this rank's TP/PP coordinates and load
                   release|iter_N/mp_rank_TT[_PPP]/model_optim_rng.pt with load_state_dict(strict=True);
                   the exact key and shape differences are recorded; forward the prompt;
  - "save_dist":   build a randomly initialised model, forward the prompt and save it with
                   dist_checkpointing.save in Megatron-LM's training layout (iter_NNNNNNN + tracker file).
A load task with "mtp": True (a model with MTP layers) runs the forward with the MTP block and saves the
MTP depths' logits ("mtp_logits") next to the main head's ("logits"); see forward_logits.

CUDA-only calls on the paths used here, and what is done about each. All of it is in this file, and
`apply_cpu_patches()` installs the patches in the worker processes only (never in the test process).
Each patch wraps one Megatron function; the CUDA call is redirected only while that function runs.
Each one was checked to be needed (removing it makes the run fail with "Torch not compiled with CUDA").
  Patched:
  1. models/common/embeddings/rotary_pos_embedding.py, RotaryEmbedding.get_emb: moves `inv_freq` to
     `torch.cuda.current_device()` at the first forward. Patched: the call runs with
     `torch.cuda.current_device()` answering "cpu" (see `_cuda_device_is_cpu`).
  2. utils.py, GlobalMemoryBuffer.get_tensor: allocates the buffer of the attention scores (the local
     DotProductAttention's baddbmm input) on `torch.cuda.current_device()`. Patched like 1.
  3. tensor_parallel/mappings.py, _gather_along_last_dim: the output of the all-gather of the
     vocabulary-parallel logits (parallel_output=False, TP > 1) is allocated on
     `torch.cuda.current_device()`. Patched like 1.
  4. models/common/language_module/language_module.py, LanguageModule.setup_embeddings_and_output_layer:
     with tied embeddings and PP > 1 the first and last stages' copies go through `weight.data.cuda()`
     before their all-reduce. Patched: `torch.Tensor.cuda` is the identity during that call only.
  5. dist_checkpointing/strategies/state_dict_saver.py, save_state_dict_async_finalize (save path):
     broadcasts the write-failure flag as a tensor on `torch.cuda.current_device()`. Patched like 1.
  6. dist_checkpointing/strategies/filesystem_async.py, FileSystemWriterAsync.preload_tensors (save
     path): `torch.cuda.synchronize()` after the non-blocking device-to-host copy of the tensors to
     save. Patched: `torch.cuda.synchronize` is a no-op during that call (all tensors are on the CPU).
  MoE layers (SequentialMLP, allgather token dispatcher) add:
  10. transformer/moe/router.py, Router.gating: moves the router weight to
     `torch.cuda.current_device()` at every forward. Patched like 1.
  11. transformer/moe/moe_utils.py, RouterGatingLinearFunction.forward tests the module global
     `te_general_gemm`, which 0.16.1 never defines without Transformer Engine (NameError). Patched: the
     global is set to None, the value the module means when TE is absent.
  12. tensor_parallel/mappings.py, _gather_along_first_dim / _reduce_scatter_along_first_dim: the
     allgather dispatcher's outputs over the EP / ETP groups are allocated on
     `torch.cuda.current_device()`. Patched like 1.
  13. The alltoall dispatcher (Megatron-LM's default) creates a torch.cuda.Stream in its constructor:
     the allgather dispatcher is used instead (the same experts and weights, another exchange).
  14. transformer/moe/experts.py, GroupedMLP.__init__ (the legacy grouped experts, save_grouped task
     only) asserts that the grouped_gemm CUDA package is installed; only its forward calls it, and that
     task runs no forward. Patched: the assertion is a no-op while that task builds its model.
  Multi-latent attention (DeepSeek) and DeepSeek-V3's router add:
  15. transformer/moe/router.py, TopKRouter.__init__ with moe_router_enable_expert_bias registers the
     expert_bias / local_tokens_per_expert buffers on `torch.cuda.current_device()`. Patched like 1.
  16. MLA builds its own RotaryEmbedding without use_cpu_initialization: RotaryEmbedding.__init__
     allocates inv_freq on `torch.cuda.current_device()`. Patched like 1.
  17. Without Transformer Engine, Megatron's TE wrapper module fakes the `te` package, so
     multi_latent_attention.py believes TE is present (HAVE_TE, TELinear a mock, and isinstance() on it
     fails). Patched: that module's HAVE_TE is False and its TELinear / TEColumnParallelLinear /
     set_save_original_input are None, what it means when TE is absent.
  18. The local DotProductAttention of 0.16.1 rejects the k_channels / v_channels arguments MLA always
     passes (TypeError): the layer specs of MLA models use a subclass that takes them and sizes its
     output view by v_channels (`_mla_core_attention`); its forward is the local one, unchanged.
  Avoided without a patch:
  7. transformer/utils.py, get_default_causal_mask (used when attention_mask is None) builds the mask
     with device="cuda": the forward always passes an explicit boolean mask [1, 1, s, s], True = masked.
  8. tensor_parallel/random.py, CudaRNGStatesTracker: DotProductAttention forks the "model-parallel-rng"
     CUDA generator (torch.cuda.get_rng_state) around its dropout. Megatron's own inference tracker
     (`initialize_rng_tracker(inference_rng_tracker=True)`, whose fork is a no-op) is used instead; with
     dropout 0 nothing random happens in a forward. Initialisation (save_dist) goes through
     `_initialize_affine_weight_cpu` (use_cpu_initialization=True), which uses the CPU generator only.
  9. TransformerConfig: the fusions whose kernels are CUDA extensions (bias_activation_fusion,
     masked_softmax_fusion, bias_dropout_fusion, apply_rope_fusion, persist_layer_norm,
     gradient_accumulation_fusion) are set off explicitly (0.16.1's defaults are off already).
Nothing else on these paths needed CUDA: parallel_state groups inherit gloo; dist_checkpointing.load with
the default (not fully parallel) torch_dist strategy exchanges metadata with all_gather_object; the save
path writes with the default TorchDistSaveShardedStrategy (not the fully parallel wrapper).
"""
import argparse
import contextlib
import datetime
import json
import os
import socket
import subprocess
import sys
import time
import traceback

import torch

# Tolerance of every Megatron-vs-transformers logits comparison (float32 on both sides, logits of
# magnitude ~1-3). Measured: 0.0 at TP1 (the same float32 operations in the same order) and below 1e-6
# at TP2 (the row-parallel layers sum partial products in another order); a swapped pair of heads in
# one layer moves them by ~5e-2.
LOGITS_ATOL = 1e-4

TRACKER = "latest_checkpointed_iteration.txt"


# ---- checkpoint directories (Megatron-LM's layout) ------------------------------------------------

def iteration_dir(ckpt):
    """The directory the tracker file of `ckpt` points to: release/ or iter_NNNNNNN/."""
    with open(os.path.join(ckpt, TRACKER)) as fh:
        it = fh.read().strip()
    return os.path.join(ckpt, "release" if it == "release" else "iter_%07d" % int(it))


def read_common_args(ckpt):
    """argparse.Namespace stored under "args" in a torch_dist checkpoint's common.pt."""
    common = torch.load(os.path.join(iteration_dir(ckpt), "common.pt"), map_location="cpu", weights_only=False)
    return common["args"]


def legacy_rank_file(ckpt, tp_rank, pp_rank, pp_size, ep_rank=0, ep_size=1):
    d = "mp_rank_%02d" % tp_rank if pp_size == 1 else "mp_rank_%02d_%03d" % (tp_rank, pp_rank)
    if ep_size > 1:
        d += "_%03d" % ep_rank
    return os.path.join(iteration_dir(ckpt), d, "model_optim_rng.pt")


def padded_vocab(args):
    """args.padded_vocab_size, or Megatron-LM's rule (_vocab_size_with_padding) when it is absent."""
    v = getattr(args, "padded_vocab_size", None)
    if v:
        return int(v)
    mult = int(getattr(args, "make_vocab_size_divisible_by", 128)) * int(args.tensor_model_parallel_size)
    return -(-int(args.vocab_size) // mult) * mult


def megatron_args(**kw):
    """The Megatron-LM args Namespace a training run of such a model would carry (the subset a
    converter or a loader reads, with Megatron-LM's argument names)."""
    heads, groups = kw["num_attention_heads"], kw.get("num_query_groups", kw["num_attention_heads"])
    a = dict(num_layers=4, hidden_size=64, ffn_hidden_size=160, num_attention_heads=heads,
             group_query_attention=groups != heads, num_query_groups=groups, kv_channels=None,
             max_position_embeddings=128, seq_length=128, position_embedding_type="rope", rotary_base=10000,
             rotary_percent=1.0, rotary_interleaved=False, use_rope_scaling=False, rope_scaling_factor=8.0,
             normalization="RMSNorm", norm_epsilon=1e-5, swiglu=True, add_bias_linear=False,
             add_qkv_bias=False, qk_layernorm=False, untie_embeddings_and_output_weights=True,
             vocab_size=250, make_vocab_size_divisible_by=128, tensor_model_parallel_size=1,
             pipeline_model_parallel_size=1, virtual_pipeline_model_parallel_size=None,
             num_layers_per_virtual_pipeline_stage=None, expert_model_parallel_size=1, num_experts=None,
             context_parallel_size=1, data_parallel_size=1, world_size=1, sequence_parallel=False,
             hidden_dropout=0.0, attention_dropout=0.0, apply_query_key_layer_scaling=False,
             apply_layernorm_1p=False, init_method_std=0.02, bf16=False, fp16=False, params_dtype=torch.float32,
             transformer_impl="local", use_legacy_models=False, use_mcore_models=True, ckpt_format="torch_dist",
             use_dist_ckpt=True, tokenizer_type="NullTokenizer", iteration=0, consumed_train_samples=0)
    a.update(kw)
    if a["kv_channels"] is None:
        a["kv_channels"] = a["hidden_size"] // heads
    ns = argparse.Namespace(**a)
    ns.padded_vocab_size = padded_vocab(ns)
    return ns


# ---- parent side: launching the ranks -------------------------------------------------------------

def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path, n=6000):
    try:
        with open(path, errors="replace") as fh:
            return fh.read()[-n:]
    except OSError:
        return "(no log)"


def run_job(workdir, world, tp, pp, tasks, timeout=300, ep=1, etp=None):
    """Runs `tasks` (a list of dicts with "id" and "op") on `world` gloo ranks with Megatron model
    parallelism (tp, pp) and, for MoE models, expert parallelism (ep, etp; etp defaults to tp). world
    is tp * pp for dense models (no data parallelism) and the smallest multiple of tp * pp and
    etp * ep * pp for MoE ones (the dense layers then run data-parallel over the extra ranks, all on
    the same prompt). Returns {task_id: [result of rank 0, result of rank 1, ...]}. A rank that exits
    non-zero or a launch that outlives `timeout` seconds (a hung collective) raises AssertionError
    with the ranks' log tails."""
    etp = tp if etp is None else etp
    assert world % (tp * pp) == 0 and world % (etp * ep * pp) == 0, (world, tp, pp, ep, etp)
    os.makedirs(workdir, exist_ok=True)
    job = os.path.join(workdir, "job.json")
    with open(job, "w") as fh:
        json.dump({"tp": tp, "pp": pp, "ep": ep, "etp": etp, "tasks": tasks, "out": workdir, "pg_timeout": timeout}, fh)
    port = _free_port()
    procs, logs = [], []
    for r in range(world):
        env = {**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": str(world),
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
        log = os.path.join(workdir, "rank%d.log" % r)
        logs.append(log)
        with open(log, "w") as fh:
            procs.append(subprocess.Popen([sys.executable, os.path.abspath(__file__), job], env=env,
                                          stdout=fh, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + timeout
    timed_out = False
    for p in procs:
        try:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            timed_out = True
            break
    if timed_out:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()
    bad = [(r, p.returncode) for r, p in enumerate(procs) if p.returncode != 0]
    if timed_out or bad:
        why = "timed out after %d s" % timeout if timed_out else "ranks failed: %s" % bad
        raise AssertionError("Megatron-Core job %s (world %d, tp %d, pp %d) %s\n" % (job, world, tp, pp, why) +
                             "\n".join("---- rank %d ----\n%s" % (r, _tail(l)) for r, l in enumerate(logs)))
    per_rank = [torch.load(os.path.join(workdir, "result_rank%d.pt" % r), weights_only=False) for r in range(world)]
    return {t["id"]: [pr[t["id"]] for pr in per_rank] for t in tasks}


def first_logits(rank_results):
    """The logits one of the last pipeline stage's ranks saved (all of them hold the gathered ones)."""
    for r in rank_results:
        if r.get("logits") is not None:
            return r["logits"]
    return None


def first_mtp_logits(rank_results, depth=0):
    """The MTP logits of `depth` (0 = the first MTP layer, predicting token i + 2 at position i) that a
    last-stage rank of a task with "mtp": True saved."""
    for r in rank_results:
        if r.get("mtp_logits") is not None:
            return r["mtp_logits"][depth]
    return None


def errors(rank_results):
    return ["rank %d: %s" % (i, r["error"]) for i, r in enumerate(rank_results) if r.get("error")]


def compare_logits(meg, hf):
    """(max |diff| over the real vocabulary, argmax equal at every position). `meg` may carry the
    padded vocabulary rows; only the first hf.shape[-1] columns are real tokens."""
    m = meg[:, : hf.shape[-1]].float()
    return (m - hf).abs().max().item(), bool(torch.equal(m.argmax(-1), hf.argmax(-1)))


def qkv_row_blocks(args):
    """Row layout of Megatron's fused linear_qkv weight: per query group, the group's query heads, then
    its key head, then its value head, each kv_channels rows. Returns (rows per group, head rows)."""
    heads = args.num_attention_heads
    groups = args.num_query_groups if getattr(args, "group_query_attention", False) else heads
    d = args.kv_channels or args.hidden_size // heads
    return (heads // groups + 2) * d, d


def swap_rows_(t, a, b, n):
    """Swaps rows [a, a+n) and [b, b+n) of t in place (dimension 0)."""
    tmp = t[a:a + n].clone()
    t[a:a + n] = t[b:b + n]
    t[b:b + n] = tmp
    return t


def _zip_member_span(blob, member):
    """(data offset, size) of a stored (uncompressed) member of the zip archive `blob`, plus the offsets
    of the CRC-32 fields that describe it: the central directory's, the data descriptor's (general
    purpose flag bit 3, which torch.save sets) and the local header's when that one is filled in."""
    import io
    import zipfile
    zi = zipfile.ZipFile(io.BytesIO(bytes(blob))).getinfo(member)
    assert zi.compress_type == zipfile.ZIP_STORED, member
    h = zi.header_offset
    assert blob[h:h + 4] == b"PK\x03\x04"
    start = h + 30 + int.from_bytes(blob[h + 26:h + 28], "little") + int.from_bytes(blob[h + 28:h + 30], "little")
    crc_fields = []
    if int.from_bytes(blob[h + 14:h + 18], "little") != 0:
        crc_fields.append(h + 14)
    if zi.flag_bits & 0x8:
        dd = start + zi.file_size
        crc_fields.append(dd + 4 if blob[dd:dd + 4] == b"PK\x07\x08" else dd)
    name = member.encode()
    cd = 0
    while True:
        cd = blob.find(b"PK\x01\x02", cd)
        if cd < 0:
            break
        n = int.from_bytes(blob[cd + 28:cd + 30], "little")
        if bytes(blob[cd + 46:cd + 46 + n]) == name:
            crc_fields.append(cd + 16)
            break
        cd += 4
    return start, zi.file_size, crc_fields


def edit_dist_chunk(ckpt, key, offsets, fn):
    """Rewrites, in place inside its .distcp file, the chunk of tensor `key` that starts at `offsets`
    in a torch_dist checkpoint: the chunk (a torch.save archive) is read with torch.load, `fn` changes
    the tensor (same shape and dtype), and only the bytes of its storage record are overwritten (the
    zip CRC-32 fields are updated too), so every other byte of the checkpoint stays as written.
    Uses torch.distributed.checkpoint's own reader for the .metadata. Returns the new chunk tensor."""
    import io
    import zipfile
    import zlib
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import MetadataIndex

    d = iteration_dir(ckpt)
    md = FileSystemReader(d).read_metadata()
    chunks = [c for c in md.state_dict_metadata[key].chunks if list(c.offsets) == list(offsets)]
    assert len(chunks) == 1, "%s: no chunk at %s (chunks: %s)" % (
        key, offsets, [list(c.offsets) for c in md.state_dict_metadata[key].chunks])
    info = md.storage_data[MetadataIndex(key, chunks[0].offsets)]
    assert not getattr(info, "transform_descriptors", None), info
    path = os.path.join(d, info.relative_path)
    with open(path, "rb") as fh:
        fh.seek(info.offset)
        blob = bytearray(fh.read(info.length))
    t = torch.load(io.BytesIO(bytes(blob)), weights_only=True)
    assert t.is_contiguous() and t.storage_offset() == 0 and t.untyped_storage().nbytes() == t.nbytes, key
    members = [n for n in zipfile.ZipFile(io.BytesIO(bytes(blob))).namelist() if "/data/" in n and "/." not in n]
    assert len(members) == 1, members
    start, size, crc_fields = _zip_member_span(blob, members[0])
    new = fn(t.clone())
    raw = new.contiguous().view(torch.uint8).numpy().tobytes()
    assert new.shape == t.shape and new.dtype == t.dtype and len(raw) == size == t.nbytes
    old_crc = (zlib.crc32(bytes(blob[start:start + size])) & 0xFFFFFFFF).to_bytes(4, "little")
    assert crc_fields and all(blob[f:f + 4] == old_crc for f in crc_fields), "CRC-32 fields not found"
    blob[start:start + size] = raw
    for f in crc_fields:
        blob[f:f + 4] = (zlib.crc32(raw) & 0xFFFFFFFF).to_bytes(4, "little")
    with open(path, "r+b") as fh:
        fh.seek(info.offset)
        fh.write(blob)
    back = zipfile.ZipFile(io.BytesIO(bytes(blob)))
    assert back.testzip() is None  # every CRC-32 matches the new bytes
    assert torch.equal(torch.load(io.BytesIO(bytes(blob)), weights_only=True), new)
    return new


# ---- worker side ----------------------------------------------------------------------------------

@contextlib.contextmanager
def _cuda_device_is_cpu():
    """While active, torch.cuda.current_device() answers "cpu" (patches 1, 2, 3 and 5 of the docstring):
    the wrapped Megatron function then allocates its tensor on the CPU. Only ever entered around one
    Megatron function call, never left on."""
    saved = torch.cuda.current_device
    torch.cuda.current_device = lambda: "cpu"
    try:
        yield
    finally:
        torch.cuda.current_device = saved


def _wrap_cpu_device(owner, name):
    fn = getattr(owner, name)
    if getattr(fn, "_ckh_cpu_patched", False):
        return

    def wrapped(*a, **kw):
        with _cuda_device_is_cpu():
            return fn(*a, **kw)
    wrapped._ckh_cpu_patched = True
    wrapped.__wrapped__ = fn
    setattr(owner, name, wrapped)


def apply_cpu_patches():
    """Installs the CPU patches 1-6 of the module docstring (workers only)."""
    from megatron.core import utils as mcore_utils
    from megatron.core.dist_checkpointing.strategies import filesystem_async, state_dict_saver
    from megatron.core.dist_checkpointing.strategies import torch as torch_strategy
    from megatron.core.models.common.embeddings import rotary_pos_embedding
    from megatron.core.models.common.language_module import language_module
    from megatron.core.tensor_parallel import mappings

    # 1. inv_freq.to(torch.cuda.current_device()) in the first forward.
    _wrap_cpu_device(rotary_pos_embedding.RotaryEmbedding, "get_emb")
    # 2. the attention-score buffer of the local DotProductAttention.
    _wrap_cpu_device(mcore_utils.GlobalMemoryBuffer, "get_tensor")
    # 3. all-gather of the vocabulary-parallel logits (called through the module global by
    #    _GatherFromModelParallelRegion.forward, so replacing the module attribute is enough).
    _wrap_cpu_device(mappings, "_gather_along_last_dim")
    # 4. weight.data.cuda() before the all-reduce of tied embeddings between the first and last stage.
    lm = language_module.LanguageModule
    setup = lm.setup_embeddings_and_output_layer
    if not getattr(setup, "_ckh_cpu_patched", False):
        def setup_on_cpu(self, *a, **kw):
            saved = torch.Tensor.cuda
            torch.Tensor.cuda = lambda t, *x, **y: t
            try:
                return setup(self, *a, **kw)
            finally:
                torch.Tensor.cuda = saved
        setup_on_cpu._ckh_cpu_patched = True
        lm.setup_embeddings_and_output_layer = setup_on_cpu

    # 5. the failure-flag broadcast at the end of a save; strategies/torch.py imported the function by
    #    name, so its reference is the one the save path calls.
    _wrap_cpu_device(state_dict_saver, "save_state_dict_async_finalize")
    torch_strategy.save_state_dict_async_finalize = state_dict_saver.save_state_dict_async_finalize

    # 10-12. MoE layers.
    from megatron.core.transformer.moe import moe_utils
    from megatron.core.transformer.moe import router
    _wrap_cpu_device(router.Router, "gating")
    if not hasattr(moe_utils, "te_general_gemm"):
        moe_utils.te_general_gemm = None
    for fn in ("_gather_along_first_dim", "_reduce_scatter_along_first_dim"):
        _wrap_cpu_device(mappings, fn)

    # 15-17. MLA and the expert-bias router.
    _wrap_cpu_device(router.TopKRouter, "__init__")
    _wrap_cpu_device(rotary_pos_embedding.RotaryEmbedding, "__init__")
    from megatron.core.transformer import multi_latent_attention as mla
    mla.HAVE_TE = False
    mla.TELinear = mla.TEColumnParallelLinear = mla.set_save_original_input = None

    # 6. torch.cuda.synchronize() after the (pinned, non-blocking) device-to-host copy of the tensors
    #    to save; every tensor is already on the CPU, there is nothing to wait for.
    preload = filesystem_async.FileSystemWriterAsync.__dict__["preload_tensors"].__func__
    if not getattr(preload, "_ckh_cpu_patched", False):
        def preload_on_cpu(*a, **kw):
            saved = torch.cuda.synchronize
            torch.cuda.synchronize = lambda *x, **y: None
            try:
                return preload(*a, **kw)
            finally:
                torch.cuda.synchronize = saved
        preload_on_cpu._ckh_cpu_patched = True
        filesystem_async.FileSystemWriterAsync.preload_tensors = staticmethod(preload_on_cpu)


def _mla_core_attention():
    """Item 18: the local DotProductAttention with MLA's k_channels / v_channels arguments."""
    from megatron.core.transformer.dot_product_attention import DotProductAttention

    class MLADotProductAttention(DotProductAttention):
        def __init__(self, *a, k_channels=None, v_channels=None, **kw):
            super().__init__(*a, **kw)
            if v_channels is not None:
                self.hidden_size_per_partition = v_channels * self.num_attention_heads_per_partition
                self.hidden_size_per_attention_head = v_channels
    return MLADotProductAttention


def _mla_config(args):
    """MLATransformerConfig fields of a multi-latent-attention model from Megatron-LM args."""
    if not getattr(args, "multi_latent_attention", False):
        return {}
    return dict(multi_latent_attention=True, q_lora_rank=getattr(args, "q_lora_rank", None),
                kv_lora_rank=args.kv_lora_rank, qk_head_dim=args.qk_head_dim,
                qk_pos_emb_head_dim=args.qk_pos_emb_head_dim, v_head_dim=args.v_head_dim,
                rope_type=getattr(args, "rope_type", "rope"), rotary_base=int(getattr(args, "rotary_base", 10000)),
                rotary_percent=1.0, rotary_scaling_factor=getattr(args, "rotary_scaling_factor", 1.0),
                mscale=getattr(args, "mscale", 1.0), mscale_all_dim=getattr(args, "mscale_all_dim", 0.0),
                mtp_num_layers=getattr(args, "mtp_num_layers", None),
                mtp_loss_scaling_factor=0.1)


def build_model(args, init=False, legacy_grouped=False):
    """GPTModel (local spec) for this rank's TP/PP coordinates from Megatron args; float32 params."""
    import torch.nn.functional as F
    from megatron.core import parallel_state as ps
    from megatron.core.models.gpt import GPTModel
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
    from megatron.core.transformer.transformer_config import MLATransformerConfig, TransformerConfig

    gqa = getattr(args, "group_query_attention", False)
    mla = _mla_config(args)
    # MTP layers of a grouped-query-attention model (GLM-4.5); MLA models set them in _mla_config.
    mtp_gqa = {} if mla or not getattr(args, "mtp_num_layers", None) else dict(
        mtp_num_layers=args.mtp_num_layers, mtp_loss_scaling_factor=0.1)
    cfg = (MLATransformerConfig if mla else TransformerConfig)(
        num_layers=args.num_layers, hidden_size=args.hidden_size, ffn_hidden_size=args.ffn_hidden_size,
        num_attention_heads=args.num_attention_heads,
        num_query_groups=args.num_query_groups if gqa else None,
        kv_channels=getattr(args, "kv_channels", None),
        normalization=args.normalization, layernorm_epsilon=args.norm_epsilon,
        gated_linear_unit=args.swiglu, activation_func=F.silu if args.swiglu else F.gelu,
        add_bias_linear=args.add_bias_linear, add_qkv_bias=getattr(args, "add_qkv_bias", False),
        qk_layernorm=getattr(args, "qk_layernorm", False),
        hidden_dropout=0.0, attention_dropout=0.0,
        tensor_model_parallel_size=ps.get_tensor_model_parallel_world_size(),
        pipeline_model_parallel_size=ps.get_pipeline_model_parallel_world_size(),
        params_dtype=torch.float32, pipeline_dtype=torch.float32,
        use_cpu_initialization=True, perform_initialization=init,
        # item 9: no fused kernels on a CPU
        bias_activation_fusion=False, masked_softmax_fusion=False, bias_dropout_fusion=False,
        apply_rope_fusion=False, persist_layer_norm=False, gradient_accumulation_fusion=False,
        # uneven pipeline stages (Megatron-LM --decoder-first/last-pipeline-num-layers)
        num_layers_in_first_pipeline_stage=getattr(args, "decoder_first_pipeline_num_layers", None),
        num_layers_in_last_pipeline_stage=getattr(args, "decoder_last_pipeline_num_layers", None),
        **moe_config(args), **mla, **mtp_gqa)
    mtp_spec = None
    if mla:
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_decoder_block_spec, get_gpt_mtp_block_spec
        spec = get_gpt_decoder_block_spec(cfg, use_transformer_engine=False, normalization=args.normalization)
        core = _mla_core_attention()
        for ls in spec.layer_specs:
            ls.submodules.self_attention.submodules.core_attention = core
        if cfg.mtp_num_layers:
            mtp_spec = get_gpt_mtp_block_spec(cfg, spec, use_transformer_engine=False)
    elif cfg.num_moe_experts and (isinstance(cfg.moe_layer_freq, list) or mtp_gqa):
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_decoder_block_spec, get_gpt_mtp_block_spec
        spec = get_gpt_decoder_block_spec(cfg, use_transformer_engine=False, normalization=args.normalization)
        if mtp_gqa:
            mtp_spec = get_gpt_mtp_block_spec(cfg, spec, use_transformer_engine=False)
    else:
        spec = get_gpt_layer_local_spec(num_experts=cfg.num_moe_experts, moe_grouped_gemm=legacy_grouped,
                                        moe_use_legacy_grouped_gemm=legacy_grouped,
                                        qk_layernorm=cfg.qk_layernorm, normalization=args.normalization)
    model = GPTModel(
        cfg, spec, vocab_size=padded_vocab(args), max_sequence_length=args.max_position_embeddings,
        pre_process=ps.is_pipeline_first_stage(), post_process=ps.is_pipeline_last_stage(),
        parallel_output=False,  # gathered logits over the full (padded) vocabulary on every TP rank
        share_embeddings_and_output_weights=not args.untie_embeddings_and_output_weights,
        position_embedding_type=getattr(args, "position_embedding_type", "rope"),
        rotary_percent=getattr(args, "rotary_percent", 1.0), rotary_base=int(getattr(args, "rotary_base", 10000)),
        rope_scaling=getattr(args, "use_rope_scaling", False),
        rope_scaling_factor=getattr(args, "rope_scaling_factor", 8.0),
        seq_len_interpolation_factor=getattr(args, "seq_len_interpolation_factor", None),
        mtp_block_spec=mtp_spec)
    return model


def moe_config(args):
    """TransformerConfig fields of an MoE model from Megatron-LM args (empty for a dense model):
    SequentialMLP experts, the allgather dispatcher (item 13), no auxiliary loss (forward only)."""
    from megatron.core import parallel_state as ps
    e = getattr(args, "num_experts", None)
    if not e:
        return {}
    return dict(num_moe_experts=e, moe_ffn_hidden_size=getattr(args, "moe_ffn_hidden_size", None) or args.ffn_hidden_size,
                moe_router_topk=getattr(args, "moe_router_topk", 2),
                moe_router_pre_softmax=getattr(args, "moe_router_pre_softmax", False),
                moe_router_score_function=getattr(args, "moe_router_score_function", "softmax"),
                moe_layer_freq=getattr(args, "moe_layer_freq", 1),
                moe_token_dispatcher_type="allgather", moe_grouped_gemm=False,
                moe_router_load_balancing_type="none", moe_aux_loss_coeff=0.0,
                moe_shared_expert_intermediate_size=getattr(args, "moe_shared_expert_intermediate_size", None),
                moe_shared_expert_gate=getattr(args, "moe_shared_expert_gate", False),
                moe_router_enable_expert_bias=getattr(args, "moe_router_enable_expert_bias", False),
                moe_router_topk_scaling_factor=getattr(args, "moe_router_topk_scaling_factor", None),
                moe_router_num_groups=getattr(args, "moe_router_num_groups", None),
                moe_router_group_topk=getattr(args, "moe_router_group_topk", None),
                moe_router_dtype=getattr(args, "moe_router_dtype", None),
                expert_model_parallel_size=ps.get_expert_model_parallel_world_size(),
                expert_tensor_parallel_size=ps.get_expert_tensor_parallel_world_size())


def causal_mask(s):
    """Explicit boolean causal mask [1, 1, s, s], True = masked (avoids get_default_causal_mask's CUDA)."""
    return torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)[None, None]


def forward_logits(model, ids, mtp=False):
    """Megatron's forward of the prompt through every pipeline stage (activations passed with gloo
    send/recv). Returns the [s, padded_vocab] logits on the last stage's ranks, None elsewhere.

    mtp=False: the MTP layers (loaded and checked value for value by the tasks) are left out of the
    forward; the main head's logits are what transformers computes (it has no MTP layers).
    mtp=True (a model with MTP layers): the forward Megatron-LM trains with, MTP included, and the
    return value is (main logits, [logits of MTP depth 1, depth 2, ...]) on the last stage's ranks,
    (None, None) elsewhere. In 0.16.1, GPTModel._postprocess runs self.mtp (MultiTokenPredictionBlock)
    on the final-normed decoder output, which returns [main; depth 1; ...] concatenated on the
    sequence dimension, and then requires labels: it puts each MTP chunk through self.output_layer
    (with the shared embedding weight when tied) for the MTP loss, then the main chunk, and returns the
    loss, not the logits. So the prompt is passed as the labels too (the loss is discarded) and the
    logits are the outputs of those output_layer calls, caught by a forward hook: the MTP depths in
    order, then the main head, each gathered over TP (parallel_output=False). Depth k embeds the input
    ids rolled left by k (roll_tensor fills the rolled-out last positions with token 0, so the MTP
    logits there predict nothing real); its rotary positions are the main model's, 0 .. s - 1."""
    import torch.distributed as dist
    from megatron.core import parallel_state as ps

    model.eval()
    s = len(ids)
    tokens = torch.tensor([ids], dtype=torch.long)
    pos = torch.arange(s, dtype=torch.long)[None]
    caught = []
    hook = None
    with torch.no_grad():
        if not ps.is_pipeline_first_stage():
            hidden = torch.empty(s, 1, model.config.hidden_size, dtype=torch.float32)
            dist.recv(hidden, src=ps.get_pipeline_model_parallel_prev_rank())
            model.set_input_tensor(hidden)
        if mtp:
            assert model.config.mtp_num_layers, "mtp=True for a model without MTP layers"
            if ps.is_pipeline_last_stage():
                assert model.mtp_process, "the last stage holds no MTP block"
                hook = model.output_layer.register_forward_hook(
                    lambda mod, inp, out: caught.append(out[0].detach().clone()))
            try:
                out = model(tokens, pos, causal_mask(s), labels=tokens)
            finally:
                if hook is not None:
                    hook.remove()
        else:
            # Megatron-Core 0.16.1 runs MTP layers only with labels and then returns the loss.
            saved = (getattr(model, "mtp_process", False), model.config.mtp_num_layers)
            model.mtp_process, model.config.mtp_num_layers = False, None
            try:
                out = model(tokens, pos, causal_mask(s))
            finally:
                model.mtp_process, model.config.mtp_num_layers = saved
        if not ps.is_pipeline_last_stage():
            dist.send(out.contiguous(), dst=ps.get_pipeline_model_parallel_next_rank())
            return (None, None) if mtp else None
    if mtp:
        assert len(caught) == 1 + model.config.mtp_num_layers, len(caught)
        # [s, b, V] each; b = 1
        return caught[-1][:, 0].clone(), [c[:, 0].clone() for c in caught[:-1]]
    return out[0].clone()  # [b, s, V] -> [s, V]


def _all_ok(ok):
    """True when every rank's `ok` is True (keeps the ranks in step after a local failure)."""
    import torch.distributed as dist
    t = torch.tensor([1 if ok else 0], dtype=torch.int32)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def _rng_state_object(value):
    """Megatron-LM's "rng_state" item: one ShardedObject per (pp, tp) rank, replicated over DP."""
    from megatron.core import parallel_state as ps
    from megatron.core.dist_checkpointing.mapping import ShardedObject
    return ShardedObject("rng_state", value,
                         (ps.get_pipeline_model_parallel_world_size(), ps.get_tensor_model_parallel_world_size()),
                         (ps.get_pipeline_model_parallel_rank(), ps.get_tensor_model_parallel_rank()),
                         replica_id=ps.get_data_parallel_rank())


def _task_load_dist(task, res):
    from megatron.core import dist_checkpointing
    from megatron.core.dist_checkpointing.validation import StrictHandling

    args = read_common_args(task["ckpt"])
    for k, v in task.get("args_override", {}).items():  # e.g. another pipeline split than the one saved
        setattr(args, k, v)
    model = build_model(args)
    ckpt_dir = iteration_dir(task["ckpt"])

    def request(m):
        # Megatron-LM loads {"model": model.sharded_state_dict(), ...} (plus "rng_state" unless
        # --no-load-rng); the common.pt entries (args, checkpoint_version, iteration) come back next
        # to "model".
        # Megatron-LM passes sharding metadata; GPTModel needs its dp_cp_group when an MTP stage keeps a
        # copy of the embedding (PP > 1), so it is given as training does.
        from megatron.core import parallel_state as ps
        meta = {"dp_cp_group": ps.get_data_parallel_group(with_context_parallel=True)}
        sd = {"model": m.sharded_state_dict(metadata=meta)}
        if task.get("request_rng"):
            sd["rng_state"] = _rng_state_object(None)
        return sd
    try:
        # "strict": a StrictHandling value; RAISE_ALL (the strictest) unless the task names Megatron-LM's
        # default --dist-ckpt-strictness, assume_ok_unexpected.
        strict = StrictHandling(task.get("strict", StrictHandling.RAISE_ALL.value))
        loaded = dist_checkpointing.load(request(model), ckpt_dir, strict=strict)
    except Exception as e:  # noqa: BLE001 - recorded; the test fails on it
        res["strict_error"] = "%s: %s" % (type(e).__name__, e)
        print("[mcore] strict load failed: %s" % res["strict_error"][:2000], flush=True)
        # Diagnostics only (the test has already failed on strict_error): the exact mismatch and the
        # logits of what did load, so a report can say what else is right or wrong.
        loaded, missing, unexpected = dist_checkpointing.load(request(build_model(args)), ckpt_dir,
                                                              strict=StrictHandling.RETURN_ALL)
        # Megatron's names: "missing" = in the checkpoint, not requested; "unexpected" = requested,
        # not in the checkpoint.
        res["ckpt_only_keys"] = sorted(missing)
        res["model_only_keys"] = sorted(unexpected)
    res["common"] = {k: v for k, v in loaded.items() if k not in ("model", "rng_state")}
    try:
        model.load_state_dict(loaded["model"], strict=True)
        ok = True
    except Exception as e:  # noqa: BLE001
        res["load_error"] = "%s: %s" % (type(e).__name__, e)
        ok = False
    if _all_ok(ok):
        _forward_into(res, model, task)


def _forward_into(res, model, task):
    """res["logits"] (main head) and, for a task with "mtp": True, res["mtp_logits"] (one [s, V]
    tensor per MTP depth) from one forward (forward_logits)."""
    if task.get("mtp"):
        res["logits"], res["mtp_logits"] = forward_logits(model, task["ids"], mtp=True)
    else:
        res["logits"] = forward_logits(model, task["ids"])


def _task_load_legacy(task, res):
    from megatron.core import parallel_state as ps

    tp_rank, pp_rank = ps.get_tensor_model_parallel_rank(), ps.get_pipeline_model_parallel_rank()
    pp = ps.get_pipeline_model_parallel_world_size()
    # Megatron-LM's get_checkpoint_name: the dense TP rank, the PP rank and the EP rank.
    path = legacy_rank_file(task["ckpt"], tp_rank, pp_rank, pp, ps.get_expert_model_parallel_rank(),
                            ps.get_expert_model_parallel_world_size())
    res["file"] = os.path.relpath(path, task["ckpt"])
    sd = torch.load(path, map_location="cpu", weights_only=False)
    args = sd["args"]
    res["args_parallel"] = (args.tensor_model_parallel_size, args.pipeline_model_parallel_size)
    model = build_model(args)
    want = model.state_dict()
    got = sd["model"]
    res["model_only_keys"] = sorted(set(want) - set(got))
    res["file_only_keys"] = sorted(set(got) - set(want))
    res["shape_mismatch"] = sorted(
        (k, tuple(want[k].shape), tuple(got[k].shape)) for k in set(want) & set(got)
        if isinstance(want[k], torch.Tensor) and isinstance(got[k], torch.Tensor) and want[k].shape != got[k].shape)
    # Megatron's own ColumnParallelLinear / RowParallelLinear register a load_state_dict pre-hook that
    # fills a missing "<prefix>_extra_state" with None, so load_state_dict(strict=True) accepts a file
    # without them; these keys are recorded so a test can tell them from any other missing key.
    from megatron.core.tensor_parallel.layers import ColumnParallelLinear, RowParallelLinear
    res["defaulted_by_megatron"] = sorted(
        (name + "." if name else "") + "_extra_state" for name, mod in model.named_modules()
        if isinstance(mod, (ColumnParallelLinear, RowParallelLinear)))
    try:
        model.load_state_dict(got, strict=True)
        ok = True
    except Exception as e:  # noqa: BLE001
        res["load_error"] = "%s: %s" % (type(e).__name__, e)
        ok = False
    if ok:
        # What Megatron holds now is the file's tensors, value for value.
        now = model.state_dict()
        res["value_mismatch"] = sorted(k for k, v in got.items() if isinstance(v, torch.Tensor)
                                       and not torch.equal(now[k], v.to(now[k].dtype)))
    if _all_ok(ok):
        _forward_into(res, model, task)


def _perturb_(model, seed):
    """Distinct random values for the norms and biases, which Megatron initialises to 1 and 0 (a
    swapped or dropped norm or bias would not change the logits otherwise). Replicated parameters get
    the same values on every TP rank, TP-split ones a different slice per rank."""
    from megatron.core import parallel_state as ps
    import re
    tp_rank = ps.get_tensor_model_parallel_rank()
    with torch.no_grad():
        for i, (name, p) in enumerate(model.named_parameters()):
            if re.search(r"mlp\.experts\.weight[12]$", name):
                # GroupedMLP packs: distinct values per EP and ETP rank.
                g = torch.Generator().manual_seed(seed * 7919 + i * 31 + ps.get_expert_model_parallel_rank() * 1009 +
                                                  ps.get_expert_tensor_parallel_rank() * 101)
                p.copy_(0.05 * torch.randn(p.shape, generator=g, dtype=torch.float32))
                continue
            m = re.search(r"layers\.(\d+)\.mlp\.experts\.local_experts\.(\d+)\.(.*)$", name)
            if m:
                # Experts: CPU initialisation gives every EP rank the same local experts; distinct values
                # per global expert (and ETP shard) make a lost or misplaced expert visible.
                n_local = model.config.num_moe_experts // ps.get_expert_model_parallel_world_size()
                g_expert = ps.get_expert_model_parallel_rank() * n_local + int(m.group(2))
                key = "%s|%d|%s|%d" % (m.group(1), g_expert, m.group(3), ps.get_expert_tensor_parallel_rank())
                g = torch.Generator().manual_seed(seed * 100003 + sum(ord(c) * (j + 1) for j, c in enumerate(key)))
                p.copy_(0.05 * torch.randn(p.shape, generator=g, dtype=torch.float32))
                continue
            split = getattr(p, "tensor_model_parallel", False)
            g = torch.Generator().manual_seed(seed * 100003 + i * 7 + (tp_rank + 1 if split else 0) * 1000003)
            r = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * r)
            elif name.endswith(".bias"):
                p.copy_(0.1 * r)


def _task_save_dist(task, res):
    import random

    import numpy as np
    import torch.distributed as dist
    from megatron.core import dist_checkpointing
    from megatron.core import parallel_state as ps

    tp, pp = ps.get_tensor_model_parallel_world_size(), ps.get_pipeline_model_parallel_world_size()
    args = megatron_args(**task["args"], tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp,
                         expert_model_parallel_size=ps.get_expert_model_parallel_world_size(),
                         expert_tensor_parallel_size=ps.get_expert_tensor_parallel_world_size(),
                         world_size=dist.get_world_size(), iteration=task["iteration"])
    torch.manual_seed(task["seed"])  # the same master weights on every rank (CPU initialisation)
    model = build_model(args, init=True)
    _perturb_(model, task["seed"])
    res["logits"] = forward_logits(model, task["ids"])
    # Megatron-LM's training save: iter_NNNNNNN/ with the model's sharded state dict under "model", the
    # args, checkpoint_version and iteration (common.pt) and the RNG state as a ShardedObject per
    # (pp, tp) rank; rank 0 then writes the tracker file.
    rng = [{"random_rng_state": random.getstate(), "np_rng_state": np.random.get_state(),
            "torch_rng_state": torch.get_rng_state(), "rng_tracker_states": {}}]
    state = {
        "model": model.sharded_state_dict(),
        "args": args,
        "checkpoint_version": 3.0,
        "iteration": task["iteration"],
        "num_floating_point_operations_so_far": 0,
        "rng_state": _rng_state_object(rng),
    }
    ckpt = task["ckpt"]
    it_dir = os.path.join(ckpt, "iter_%07d" % task["iteration"])
    if dist.get_rank() == 0:
        os.makedirs(it_dir, exist_ok=True)
    dist.barrier()
    dist_checkpointing.save(state, it_dir)
    dist.barrier()
    if dist.get_rank() == 0:
        with open(os.path.join(ckpt, TRACKER), "w") as fh:
            fh.write(str(task["iteration"]))
    res["args"] = vars(args)


def _task_save_grouped(task, res):
    """A model with the legacy GroupedMLP experts saved twice: as Megatron-LM's legacy per-rank file
    (model.state_dict(), packed weight1/weight2) and with dist_checkpointing.save (GroupedMLP's own
    sharded_state_dict unpacks them into per-expert keys). No forward (it needs grouped_gemm's CUDA)."""
    import torch.distributed as dist
    from megatron.core import dist_checkpointing
    from megatron.core import parallel_state as ps
    from megatron.core.transformer.moe import experts as mexperts

    tp, pp = ps.get_tensor_model_parallel_world_size(), ps.get_pipeline_model_parallel_world_size()
    args = megatron_args(**task["args"], tensor_model_parallel_size=tp, pipeline_model_parallel_size=pp,
                         expert_model_parallel_size=ps.get_expert_model_parallel_world_size(),
                         expert_tensor_parallel_size=ps.get_expert_tensor_parallel_world_size(),
                         moe_grouped_gemm=True, moe_use_legacy_grouped_gemm=True,
                         world_size=dist.get_world_size(), iteration=0, ckpt_format="torch", use_dist_ckpt=False)
    saved = mexperts.gg.assert_grouped_gemm_is_available
    mexperts.gg.assert_grouped_gemm_is_available = lambda: None  # item 14
    try:
        torch.manual_seed(task["seed"])
        model = build_model(args, init=True, legacy_grouped=True)
    finally:
        mexperts.gg.assert_grouped_gemm_is_available = saved
    _perturb_(model, task["seed"])
    res["keys"] = sorted(k for k in model.state_dict() if "experts" in k)
    # Legacy: every rank writes mp_rank_TT[_PPP][_EEE] (data-parallel copies write the same bytes; rank
    # 0 of each expert-data-parallel group alone writes, as Megatron-LM does).
    it_dir = os.path.join(task["dist"], "release")
    if dist.get_rank() == 0:
        for d in (task["legacy"], task["dist"]):
            os.makedirs(d, exist_ok=True)
            with open(os.path.join(d, TRACKER), "w") as fh:
                fh.write("release")
        os.makedirs(it_dir, exist_ok=True)
    dist.barrier()
    path = legacy_rank_file(task["legacy"], ps.get_tensor_model_parallel_rank(), ps.get_pipeline_model_parallel_rank(),
                            pp, ps.get_expert_model_parallel_rank(), ps.get_expert_model_parallel_world_size())
    if ps.get_expert_data_parallel_rank() == 0:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        torch.save({"args": args, "checkpoint_version": 3.0, "iteration": 0, "model": model.state_dict()}, path)
    dist.barrier()
    args.ckpt_format, args.use_dist_ckpt = "torch_dist", True
    dist_checkpointing.save({"model": model.sharded_state_dict(), "args": args, "checkpoint_version": 3.0,
                             "iteration": 0}, it_dir)
    dist.barrier()


TASKS = {"save_grouped": _task_save_grouped, "load_dist": _task_load_dist, "load_legacy": _task_load_legacy, "save_dist": _task_save_dist}


def worker_main(job_path):
    import torch.distributed as dist

    with open(job_path) as fh:
        job = json.load(fh)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=job.get("pg_timeout", 300)))
    from megatron.core import parallel_state as ps
    from megatron.core.tensor_parallel import random as tp_random

    apply_cpu_patches()
    ps.initialize_model_parallel(tensor_model_parallel_size=job["tp"], pipeline_model_parallel_size=job["pp"],
                                 expert_model_parallel_size=job.get("ep", 1),
                                 expert_tensor_parallel_size=job.get("etp", job["tp"]))
    tp_random.initialize_rng_tracker(inference_rng_tracker=True, force_reset=True)  # item 8
    results = {}
    for task in job["tasks"]:
        res = {"error": None}
        t0 = time.monotonic()
        try:
            TASKS[task["op"]](task, res)
        except Exception:  # noqa: BLE001 - recorded per task, the parent fails the test on it
            res["error"] = traceback.format_exc()
        res["seconds"] = time.monotonic() - t0
        results[task["id"]] = res
        print("[mcore] rank %d task %s: %s (%.2f s)" % (rank, task["id"], "error" if res["error"] else "done",
                                                        res["seconds"]), flush=True)
        if res["error"]:
            print(res["error"], flush=True)
        dist.barrier()
    torch.save(results, os.path.join(job["out"], "result_rank%d.pt" % rank))
    dist.barrier()
    ps.destroy_model_parallel()
    dist.destroy_process_group()


if __name__ == "__main__":
    worker_main(sys.argv[1])
