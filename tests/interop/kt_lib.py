"""kt-kernel (KTransformers' CPU MoE kernels, PyPI wheel 0.7.2) as the reference for the kt-amx writer.

kt-kernel keeps process-wide singletons (its CPUInfer thread pool, fixed to the first threadpool count, and its
safetensors loader, fixed to the first weight path), so every call here runs in a child process:

    python kt_lib.py write SRC OUT METHOD TP        kt-kernel quantizes SRC's routed experts (BF16, as
                                                    convert_cpu_weights.py hands them over: stacked [E, I, H] gate
                                                    and up, [E, H, I] down) through KTMoEWrapper(cpu_save=True) and
                                                    its load_weights_from_tensors, writing its .kt files to
                                                    OUT/_layer_L/_numa_i/
    python kt_lib.py forward WEIGHTS METHOD TP L E H I OUT.pt
                                                    kt-kernel loads layer L from WEIGHTS (a directory of merged
                                                    safetensors, or of its own .kt folders) and runs its AMX MoE
                                                    forward on fixed tokens and routing; the output is saved

The wheel pins torch 2.9.1 and is installed with --no-deps beside torch 2.13 (CPU): its extension loads, and the
only thing its Python wrapper needs from an accelerator is pinned memory for a few small buffers; `_no_pinned_memory`
drops the pin_memory flag there (the C++ kernels never see the difference).
"""
import glob
import json
import os
import subprocess
import sys
import types

KT_NAMES = {"AMXINT8": "INT8", "AMXINT4": "INT4"}


def _no_pinned_memory():
    import torch
    import kt_kernel.experts_base as eb

    shim = types.ModuleType("torch_without_pinned_memory")
    shim.__dict__.update(torch.__dict__)

    def strip(f):
        def g(*a, **k):
            k.pop("pin_memory", None)
            return f(*a, **k)
        return g

    for n in ("zeros", "empty", "full", "ones"):
        setattr(shim, n, strip(getattr(torch, n)))
    eb.torch = shim


def _wrapper(layer, experts, hidden, inter, tp, path, method, cpu_save):
    import torch
    from kt_kernel import KTMoEWrapper

    _no_pinned_memory()
    # One NUMA node here: every sub-pool on node 0 (the split of the weights is the same).
    return KTMoEWrapper(layer_idx=layer, num_experts=experts, num_experts_per_tok=2, hidden_size=hidden,
                        moe_intermediate_size=inter, gpu_experts_mask=torch.zeros(experts, dtype=torch.bool),
                        cpuinfer_threads=2, threadpool_count=tp, weight_path=path, chunked_prefill_size=32,
                        cpu_save=cpu_save, method=method, numa_nodes=[0] * tp)


def source_experts(src):
    """Yields (layer, (gate [E, I, H], up [E, I, H], down [E, H, I])) in BF16 for every MoE layer of an HF directory,
    one layer in memory at a time, by the names convert_cpu_weights.py looks for (mlp.experts.E.{gate,up,down}_proj,
    MiniMax's block_sparse_moe.experts.E.{w1,w3,w2}); FP8 weights are dequantized as its CPU-less equivalent would
    (f32 product with the 128 x 128 block's scale_inv, then one rounding to BF16). Layers at or past
    num_hidden_layers (MTP) are left out, as the tool does."""
    import torch
    from safetensors import safe_open

    with open(os.path.join(src, "config.json")) as fh:
        cfg = json.load(fh)
    cfg = cfg.get("text_config", cfg)
    handles, where = [], {}
    for f in sorted(glob.glob(os.path.join(src, "*.safetensors"))):
        h = safe_open(f, "pt")
        handles.append(h)
        for k in h.keys():
            where[k] = h

    def weight(key):
        w = where[key].get_tensor(key)
        if w.dtype == torch.float8_e4m3fn:
            s = where[key + "_scale_inv"].get_tensor(key + "_scale_inv")
            big = s.repeat_interleave(128, 0)[: w.shape[0]].repeat_interleave(128, 1)[:, : w.shape[1]]
            return (w.float() * big).to(torch.bfloat16)
        return w.to(torch.bfloat16)

    for layer in range(cfg["num_hidden_layers"]):
        for stem, names in ((".mlp.experts.", ("gate_proj", "up_proj", "down_proj")),
                            (".block_sparse_moe.experts.", ("w1", "w3", "w2"))):
            p = "model.layers.%d%s" % (layer, stem)
            e = 0
            while "%s%d.%s.weight" % (p, e, names[0]) in where:
                e += 1
            if e:
                yield layer, tuple(torch.stack([weight("%s%d.%s.weight" % (p, x, n)) for x in range(e)]).contiguous()
                                   for n in names)


def expert_layer(src, layer):
    for L, t in source_experts(src):
        if L == layer:
            return t
    raise KeyError("no MoE layer %d in %s" % (layer, src))


def _write(src, out, method, tp):
    import torch

    for layer, (g, u, d) in source_experts(src):
        w = _wrapper(layer, g.shape[0], g.shape[2], g.shape[1], tp, out, method, True)
        w.load_weights_from_tensors(g, u, d, torch.arange(g.shape[0], dtype=torch.int64))


def tokens(hidden, experts, n=8, seed=5):
    """Fixed inputs of the forward check: hidden states, top-2 expert ids and routing weights."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, hidden, generator=g).to(torch.bfloat16)
    ids = torch.stack([torch.randperm(experts, generator=g)[:2] for _ in range(n)]).to(torch.long)
    wt = torch.rand(n, 2, generator=g, dtype=torch.float32)
    return x, ids, wt


def _forward(weights, method, tp, layer, experts, hidden, inter, out):
    import torch

    w = _wrapper(layer, experts, hidden, inter, tp, weights, method, False)
    w.load_weights(torch.arange(experts, dtype=torch.int64))
    x, ids, wt = tokens(hidden, experts)
    y = torch.zeros(x.shape, dtype=torch.bfloat16)
    bsz = torch.tensor([x.shape[0]], dtype=torch.int32)
    # The C++ task the wrapper's CPU path submits (its Python forward expects a device stream).
    task = w.moe.forward_task(bsz.data_ptr(), ids.shape[1], ids.data_ptr(), wt.data_ptr(), x.data_ptr(), y.data_ptr(), False)
    w.cpu_infer.submit(task)
    w.cpu_infer.sync()
    torch.save(y, out)


def run(*args):
    """Runs this file in a child process with `args`; returns (returncode, output)."""
    p = subprocess.run([sys.executable, os.path.abspath(__file__)] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=600)
    return p.returncode, p.stdout + p.stderr


def kt_files(ref, layer, part, method, proj, expert):
    """kt-kernel's (quant bytes, scale bytes) of one expert projection part."""
    d = os.path.join(ref, "_layer_%d" % layer, "_numa_%d" % part)
    name = KT_NAMES[method]
    q = glob.glob(os.path.join(d, "%s_%s_%d_*Byte_quant_.kt" % (name, proj, expert)))
    s = glob.glob(os.path.join(d, "%s_%s_%d_*Byte_scale_.kt" % (name, proj, expert)))
    if len(q) != 1 or len(s) != 1:
        raise AssertionError("kt-kernel wrote %d quant and %d scale files for %s/%s_%s_%d" % (len(q), len(s), d, name, proj, expert))
    with open(q[0], "rb") as a, open(s[0], "rb") as b:
        return a.read(), b.read()


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "write":
        _write(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "forward":
        a = sys.argv[2:]
        _forward(a[0], a[1], int(a[2]), int(a[3]), int(a[4]), int(a[5]), int(a[6]), a[7])
    else:
        raise SystemExit("usage: kt_lib.py write|forward ...")
