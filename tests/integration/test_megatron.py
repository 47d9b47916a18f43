"""HF -> Megatron (legacy per-rank torch layout): files load with torch.load, and an independent
Megatron-semantics reader + forward pass reproduces the HF model's logits, over TP/PP/VPP layouts."""
import glob
import json
import os

import torch

import ckh_testlib as L
from ckh_testlib import run


def load_megatron(d):
    """Reads every rank file; returns (args, global mcore state dict) using Megatron's own rules."""
    with open(os.path.join(d, "latest_checkpointed_iteration.txt")) as f:
        it = f.read().strip()
    root = os.path.join(d, "release" if it == "release" else "iter_%07d" % int(it))
    files = sorted(glob.glob(os.path.join(root, "mp_rank_*", "model_optim_rng.pt")))
    ranks = {}
    args = None
    for f in files:
        ck = torch.load(f, weights_only=False)
        a = ck["args"]
        args = args or a
        assert ck["checkpoint_version"] == 3.0
        parts = os.path.basename(os.path.dirname(f))[len("mp_rank_"):].split("_")
        tp = int(parts[0])
        pp = int(parts[1]) if a.pipeline_model_parallel_size > 1 else 0
        chunks = [ck["model"]] if "model" in ck else [ck["model%d" % v] for v in range(len([k for k in ck if k.startswith("model")]))]
        ranks[(tp, pp)] = chunks
    TP, PP = args.tensor_model_parallel_size, args.pipeline_model_parallel_size
    VPP = args.virtual_pipeline_model_parallel_size or 1
    assert len(ranks) == TP * PP
    # Layers per virtual stage s = v*PP + p come from the files themselves; offsets are prefix sums.
    counts = {}
    for (tp, p), chunks in ranks.items():
        for v, sd in enumerate(chunks):
            n = len({k.split(".")[2] for k in sd if k.startswith("decoder.layers.")})
            counts[v * PP + p] = n
    assert sum(counts.values()) == args.num_layers
    offset = {s: sum(counts[x] for x in range(s)) for s in range(PP * VPP)}
    merged = {}
    for (tp, p), chunks in ranks.items():
        for v, sd in enumerate(chunks):
            for k, t in sd.items():
                if k.startswith("decoder.layers."):
                    parts = k.split(".")
                    parts[2] = str(int(parts[2]) + offset[v * PP + p])
                    k = ".".join(parts)
                merged.setdefault(k, {})[tp] = t
    out = {}
    for k, shards in merged.items():
        s = [shards[r] for r in range(TP)]
        if "word_embeddings" in k or k == "output_layer.weight":
            out[k] = torch.cat(s, 0)[: args.vocab_size]
        elif "norm" in k or k.endswith("linear_proj.bias") or k.endswith("linear_fc2.bias"):
            for x in s[1:]:
                assert torch.equal(x, s[0]), k
            out[k] = s[0]
        elif "linear_fc1" in k:  # SwiGLU: each rank holds [gate_r; up_r]
            g = [x.chunk(2, 0) for x in s]
            out[k] = torch.cat([torch.cat([a for a, _ in g], 0), torch.cat([b for _, b in g], 0)], 0)
        elif "linear_qkv" in k:
            out[k] = torch.cat(s, 0)
        elif "linear_proj" in k or "linear_fc2" in k:
            out[k] = torch.cat(s, 1)
        else:
            raise AssertionError("unknown parameter " + k)
    return args, out


def megatron_logits(a, sd, ids):
    """Forward pass written against Megatron-Core tensors (fused qkv per query group, fused fc1)."""
    W = {k: v.double() for k, v in sd.items()}
    H, G, d, L = a.num_attention_heads, a.num_query_groups, a.kv_channels, a.num_layers
    P = H // G
    eps = a.norm_epsilon

    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w

    def rope(x):
        T, _, dd = x.shape
        inv = 1.0 / (a.rotary_base ** (torch.arange(0, dd, 2, dtype=torch.float64) / dd))
        ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        emb = torch.cat([ang, ang], -1)
        x1, x2 = x[..., : dd // 2], x[..., dd // 2:]
        return x * emb.cos()[:, None, :] + torch.cat([-x2, x1], -1) * emb.sin()[:, None, :]

    te = a.transformer_impl == "transformer_engine"
    x = W["embedding.word_embeddings.weight"][ids]
    scale_res = 1.0
    if getattr(a, "scale_emb", None) is not None:
        x = x * a.scale_emb
        scale_res = a.scale_depth / (L ** 0.5)
    T = len(ids)
    mask = torch.full((T, T), float("-inf"), dtype=torch.float64).triu(1)
    for i in range(L):
        p = "decoder.layers.%d." % i
        n1 = W[p + ("self_attention.linear_qkv.layer_norm_weight" if te else "input_layernorm.weight")]
        qkv = rms(x, n1) @ W[p + "self_attention.linear_qkv.weight"].T
        if p + "self_attention.linear_qkv.bias" in W:
            qkv = qkv + W[p + "self_attention.linear_qkv.bias"]
        qkv = qkv.view(T, G, P + 2, d)
        q = qkv[:, :, :P].reshape(T, H, d)
        k, v = qkv[:, :, P], qkv[:, :, P + 1]
        if p + "self_attention.q_layernorm.weight" in W:
            q = rms(q, W[p + "self_attention.q_layernorm.weight"])
            k = rms(k, W[p + "self_attention.k_layernorm.weight"])
        q, k = rope(q), rope(k)
        k, v = k.repeat_interleave(P, 1), v.repeat_interleave(P, 1)
        att = (torch.einsum("thd,shd->hts", q, k) / d ** 0.5 + mask).softmax(-1)
        o = torch.einsum("hts,shd->thd", att, v).reshape(T, H * d) @ W[p + "self_attention.linear_proj.weight"].T
        if p + "self_attention.linear_proj.bias" in W:
            o = o + W[p + "self_attention.linear_proj.bias"]
        x = x + o * scale_res
        n2 = W[p + ("mlp.linear_fc1.layer_norm_weight" if te else "pre_mlp_layernorm.weight")]
        h = rms(x, n2) @ W[p + "mlp.linear_fc1.weight"].T
        gate, up = h.chunk(2, -1)
        x = x + (torch.nn.functional.silu(gate) * up) @ W[p + "mlp.linear_fc2.weight"].T * scale_res
    x = rms(x, W["decoder.final_layernorm.weight"])
    if getattr(a, "dim_model_base", None) is not None:
        x = x / (a.hidden_size / a.dim_model_base)
    head = W["output_layer.weight"] if "output_layer.weight" in W else W["embedding.word_embeddings.weight"]
    return x @ head.T


def hf_logits64(sd, cfg, ids):
    return L.llama_logits(sd, cfg, ids, dtype=torch.float64)


class MegatronTests(L.CkhostTestCase):
    IDS = torch.tensor([3, 17, 42, 5, 99, 128, 7, 250])

    def check(self, config, *layout, spec="te"):
        name = "src_" + config.split(".")[0]
        src = self.path(name) if os.path.exists(self.path(name)) else self.synth(config, name=name)
        out = self.path("mg_" + "_".join(map(str, layout)).replace("-", "") + config.split(".")[0] + spec)
        run("convert", src, out, "--to", "megatron", "--megatron-spec", spec, "--progress", "none", *layout)
        args, sd = load_megatron(out)
        with open(os.path.join(src, "config.json")) as f:
            cfg = json.load(f)
        hf = L.read_hf_dir(src)
        ref = hf_logits64(hf, cfg, self.IDS)
        got = megatron_logits(args, sd, self.IDS)
        diff = (ref - got).abs().max().item()
        self.assertLess(diff, 1e-9, f"{config} {layout}: logits differ by {diff}")
        # Embedding rows are exact copies (padding removed above).
        self.assertTrue(torch.equal(sd["embedding.word_embeddings.weight"], hf["model.embed_tokens.weight"]))
        return args, out

    def test_tp_pp_grid_gqa_untied(self):
        for tp in (1, 2):
            for pp in (1, 2, 4):
                args, _ = self.check("tiny-llama.json", "--tp", tp, "--pp", pp)
                self.assertEqual(args.tensor_model_parallel_size, tp)
                self.assertEqual(args.padded_vocab_size % (128 * tp), 0)

    def test_uneven_stages_and_vpp(self):
        args, out = self.check("tiny-llama.json", "--tp", "2", "--pp", "3", "--pp-layers", "2,1,1")
        self.assertEqual(args.decoder_first_pipeline_num_layers, 2)
        args, out = self.check("tiny-llama.json", "--pp", "2", "--vpp", "2")
        ck = torch.load(os.path.join(out, "release", "mp_rank_00_001", "model_optim_rng.pt"), weights_only=False)
        self.assertEqual(sorted(k for k in ck if k.startswith("model")), ["model0", "model1"])

    def test_qwen2_biases_tied_mha_and_local_spec(self):
        args, out = self.check("tiny-qwen2.json", "--tp", "2", "--pp", "3")
        self.assertTrue(args.add_qkv_bias)
        self.assertFalse(args.untie_embeddings_and_output_weights)
        last = torch.load(os.path.join(out, "release", "mp_rank_00_002", "model_optim_rng.pt"), weights_only=False)
        self.assertIn("output_layer.weight", last["model"])  # the last stage's copy of tied embeddings
        self.check("tiny-qwen2.json", "--tp", "2", spec="local")

    def test_qwen3_qk_norm_and_minicpm_native(self):
        self.check("tiny-qwen3.json", "--tp", "2", "--pp", "2")
        args, _ = self.check("tiny-minicpm.json", "--tp", "4")
        self.assertEqual(args.scale_emb, 12)

    def test_minicpm_fold_for_stock_megatron(self):
        # Folding scales the weights once in f32 and rounds to bf16: logits match within bf16 rounding.
        src = self.synth("tiny-minicpm.json", name="src_minicpm_fold")
        out = self.path("mg_fold")
        run("convert", src, out, "--to", "megatron", "--tp", "2", "--pp", "2", "--minicpm-fold", "--progress", "none")
        args, sd = load_megatron(out)
        self.assertTrue(args.untie_embeddings_and_output_weights)
        self.assertFalse(hasattr(args, "scale_emb"))  # stock Megatron-Core: no run-time scalars
        with open(os.path.join(src, "config.json")) as f:
            cfg = json.load(f)
        ref = hf_logits64(L.read_hf_dir(src), cfg, self.IDS)
        got = megatron_logits(args, sd, self.IDS)
        rel = ((ref - got).abs().max() / ref.abs().max()).item()
        self.assertLess(rel, 2e-2, f"folded logits differ by {rel} of the largest logit")
        # The way back unfolds: every element within two bf16 roundings (|d| <= 2^-7 |x|).
        back = self.path("fold_back")
        run("convert", out, back, "--to", "hf", "--progress", "none")
        a, b = L.read_hf_dir(src), L.read_hf_dir(back)
        self.assertEqual(set(a), set(b))
        for k in a:
            x, y = a[k].double(), b[k].double()
            self.assertTrue(bool(((x - y).abs() <= x.abs() * 2 ** -7).all()), k)
        p = run("convert", src, self.path("nofold"), "--to", "megatron", "--minicpm-fold", check=False)
        self.assertEqual(p.returncode, 0)
        p = run("convert", self.synth(), self.path("llama_fold"), "--to", "megatron", "--minicpm-fold", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("--minicpm-fold applies to MiniCPM", p.stderr)

    def test_vocab_padding_modes_and_iteration(self):
        src = self.synth()
        out = self.path("rep")
        run("convert", src, out, "--to", "megatron", "--tp", "2", "--vocab-pad", "repeat", "--iteration", "1000",
            "--progress", "none")
        with open(os.path.join(out, "latest_checkpointed_iteration.txt")) as f:
            self.assertEqual(f.read(), "1000")
        r1 = torch.load(os.path.join(out, "iter_0001000", "mp_rank_01", "model_optim_rng.pt"), weights_only=False)
        emb = r1["model"]["embedding.word_embeddings.weight"]  # rows 256..511 of the padded 512
        hf = L.read_hf_dir(src)["model.embed_tokens.weight"]
        self.assertTrue(torch.equal(emb[: 300 - 256], hf[256:]))
        self.assertTrue(all(torch.equal(emb[i], hf[-1]) for i in range(300 - 256, 256)))

    def test_bad_layouts_fail_cleanly(self):
        src = self.synth()
        for args, needle in [(("--tp", "3"), "query groups"), (("--pp", "3"), "do not divide"),
                             (("--pp", "2", "--pp-layers", "3,2"), "adds up to"),
                             (("--megatron-spec", "bert"), "--megatron-spec: expected one of te, local, legacy")]:
            p = run("convert", src, self.path("bad"), "--to", "megatron", *args, check=False)
            self.assertEqual(p.returncode, 1, args)
            self.assertIn(needle, p.stderr, args)
            self.assertFalse(os.path.exists(self.path("bad")))


if __name__ == "__main__":
    L.main()
