"""KTransformers CPU experts (ckhost convert --to kt-amx), checked by kt-kernel 0.7.2 itself.

kt-kernel (KTransformers' CPU MoE kernels, the PyPI wheel, installed with --no-deps next to torch 2.13) is the
reference twice over:
  - bytes: for the same BF16 experts, its own writer (KTMoEWrapper(method="AMXINT8"|"AMXINT4", cpu_save=True)
    .load_weights_from_tensors, what convert_cpu_weights.py runs) writes its .kt files, and every
    blk.L.ffn_{gate,up,down}_exps.E.numa.i.{weight,scale} ckhost writes holds exactly those bytes, for every
    layer, expert, projection and NUMA part, at threadpool counts 2 and 3 (INT8);
  - use: kt-kernel loads ckhost's merged safetensors as it loads the tool's (its SafeTensorLoader, AMXMoEWrapper in
    merged mode) and its AMX MoE forward on fixed tokens and routing equals, bit for bit, the forward over its own
    .kt files; both are within the quantization error of a float MoE computed in torch from the source experts.
Sources are transformers save_pretrained checkpoints in BF16:
  - DeepSeek-V3-shaped (deepseek_v3: MLA, a dense first layer with first_k_dense_replace 1, which stays dense, 8
    routed experts and a shared expert, one MTP layer in the released layout, whose experts ckhost also converts as
    blk.3.*; the tool leaves MTP experts out);
  - MiniMax-M2-shaped (minimax_m2: block_sparse_moe.experts.E.w1 / w3 / w2 = gate / up / down) with hidden size
    3840, so gate and up rows span two of kt-kernel's K blocks (3584 + 256);
  - GLM-4.5-shaped (glm4_moe, first_k_dense_replace 1) and Qwen3-MoE-shaped (qwen3_moe, mlp_only_layers [0]): the
    dense layer stays dense;
  - DeepSeek-V3.2-shaped (deepseek_v32), GLM-5-shaped (glm_moe_dsa: first_k_dense_replace 2, whose two dense layers
    stay dense, and an indexer_types "shared" layer without an indexer) and Qwen3-Next-shaped (qwen3_next: Gated
    DeltaNet layers beside a gated full-attention layer, shared expert with its gate, a dense mlp_only_layers layer, and
    the release's mtp.* block, whose experts ckhost converts as blk.3, compared with kt-kernel's writer's layer 3):
    the sparse-attention indexers (self_attn.indexer.*, the MTP layer's included) and the linear attention are
    carried as they are; kt-kernel's forward over GLM-5's layer 2 from ckhost's file equals that from its own; each
    family also converts HF -> HF bit for bit, and Megatron / GGUF refuse it in one line;
  - the DeepSeek-V3 model and a small MiniMax-M2 model (released so) as block FP8 (codes and 128 x 128 weight_scale_inv made here in torch, with the
    quantization_config of the release): the writer dequantizes the experts on the CPU (fp8-block: f32 product, one
    rounding to BF16) and the bytes equal kt-kernel's from the same dequantization done in torch; the other FP8
    weights keep their codes and scales, as the tool keeps them (with --dtype bf16 they are dequantized too, and the
    expert shards stay the same).
Other tensors carry the tool's names (model.layers. -> blk., model. dropped) with their bytes. The script's own
command line (`ckhost convert-cpu-weights --input-path .. --input-type fp8 --output .. --quant-method int4
--threadpool-count 2`) writes the same files.
Negative twins: two experts swapped in ckhost's file fail the byte comparison and move kt-kernel's forward off
its own; a split that kt-kernel cannot take and a model without experts are refused in one line; a GLM-5 checkpoint
whose config calls an indexer layer "shared" is refused by the model plugin (its indexer tensors unexpected), so the
families are checked against their configs, not passed through by name.

Run: tests/interop/run_interop.sh tests/interop/test_kt_amx.py --ckhost=build/bin/ckhost
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

import interop_lib as L  # noqa: E402
import kt_lib as K  # noqa: E402

DSV3 = ("DeepseekV3Config", dict(hidden_size=256, intermediate_size=512, moe_intermediate_size=768, num_hidden_layers=3,
                                 num_attention_heads=4, num_key_value_heads=4, n_routed_experts=8, n_shared_experts=1,
                                 num_experts_per_tok=2, n_group=2, topk_group=1, first_k_dense_replace=1, q_lora_rank=48,
                                 kv_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16, vocab_size=250,
                                 max_position_embeddings=128, rope_scaling=None, num_nextn_predict_layers=1))
MINIMAX = ("MiniMaxM2Config", dict(hidden_size=3840, intermediate_size=256, num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                                   vocab_size=250, max_position_embeddings=128, rotary_dim=8, bos_token_id=None,
                                   eos_token_id=None))
MINIMAX_SMALL = ("MiniMaxM2Config", dict(MINIMAX[1], hidden_size=256, num_hidden_layers=2, head_dim=64, rotary_dim=32))
QWEN3MOE = ("Qwen3MoeConfig", dict(hidden_size=256, intermediate_size=512, moe_intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, head_dim=64, num_experts=4,
                                   num_experts_per_tok=2, vocab_size=250, max_position_embeddings=128,
                                   mlp_only_layers=[0]))
GLM45 = ("Glm4MoeConfig", dict(hidden_size=256, intermediate_size=512, moe_intermediate_size=256, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, head_dim=32, n_routed_experts=4,
                               n_shared_experts=1, num_experts_per_tok=2, n_group=1, topk_group=1, first_k_dense_replace=1,
                               vocab_size=250, max_position_embeddings=128, use_qk_norm=True))
# DeepSeek Sparse Attention families: MLA + MoE as DeepSeek-V3, plus the indexer (wq_b, wk, k_norm, weights_proj).
_DSA = dict(hidden_size=256, intermediate_size=384, moe_intermediate_size=256, num_attention_heads=4, num_key_value_heads=4,
            n_routed_experts=4, n_shared_experts=1, num_experts_per_tok=2, n_group=1, topk_group=1, q_lora_rank=48,
            kv_lora_rank=32, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16, vocab_size=250, index_n_heads=2,
            index_head_dim=16, max_position_embeddings=128, num_nextn_predict_layers=1)
DSV32 = ("DeepseekV32Config", dict(_DSA, num_hidden_layers=2, first_k_dense_replace=1))
GLM5 = ("GlmMoeDsaConfig", dict(_DSA, num_hidden_layers=4, first_k_dense_replace=2,
                                indexer_types=["full", "full", "shared", "full"]))
# Layers 0, 1 Gated DeltaNet, layer 2 full attention (full_attention_interval 3); layer 1 dense (mlp_only_layers).
QWEN3NEXT = ("Qwen3NextConfig", dict(hidden_size=256, intermediate_size=384, moe_intermediate_size=256, num_hidden_layers=3,
                                     num_attention_heads=4, num_key_value_heads=2, head_dim=32, num_experts=4,
                                     num_experts_per_tok=2, vocab_size=250, shared_expert_intermediate_size=128,
                                     linear_num_value_heads=4, linear_num_key_heads=2, linear_key_head_dim=16,
                                     linear_value_head_dim=16, full_attention_interval=3, mlp_only_layers=[1],
                                     max_position_embeddings=128))
# Largest relative L2 error of kt-kernel's AMX forward against the float MoE (quantized weights, BF16 activations);
# measured 0.024 (INT8) and 0.23 to 0.27 (INT4, one scale per row of up to 3840 values).
REL_TOL = {"AMXINT8": 0.03, "AMXINT4": 0.35}


def make(spec, out, seed=0, mtp=False):
    transformers = L._quiet_transformers()
    cls, kw = spec
    cfg = getattr(transformers, cls)(**kw)
    torch.manual_seed(seed)
    m = transformers.AutoModelForCausalLM.from_config(cfg)
    L.randomize_(m, seed)
    m.to(torch.bfloat16).save_pretrained(out)
    if mtp and cfg.model_type == "qwen3_next":
        add_qwen3_next_mtp(out, seed + 2)
    elif mtp:
        import test_deepseek as D
        D.add_mtp_layer(out, cfg, seed + 2)
    return out


def add_qwen3_next_mtp(d, seed):
    """Qwen3-Next's released MTP block (vLLM's Qwen3NextMTP loads it, transformers skips it): mtp.fc [h, 2h],
    mtp.pre_fc_norm_embedding / pre_fc_norm_hidden / norm [h] and mtp.layers.0.* with the names of the last
    (full-attention MoE) decoder layer; written as a second shard listed in the index."""
    src = L.safe_open_all(d)
    with open(os.path.join(d, "config.json")) as fh:
        cfg = json.load(fh)
    pre, h = "model.layers.%d." % (cfg["num_hidden_layers"] - 1), cfg["hidden_size"]
    g = torch.Generator().manual_seed(seed)
    t = {"mtp.layers.0." + k[len(pre):]: (0.05 * torch.randn(v.shape, generator=g)).to(v.dtype)
         for k, v in src.items() if k.startswith(pre)}
    t["mtp.fc.weight"] = (0.05 * torch.randn([h, 2 * h], generator=g)).to(torch.bfloat16)
    for n in ("pre_fc_norm_embedding", "pre_fc_norm_hidden", "norm"):
        t["mtp.%s.weight" % n] = (0.1 * torch.randn([h], generator=g)).to(torch.bfloat16)
    os.rename(os.path.join(d, "model.safetensors"), os.path.join(d, "model-00001-of-00002.safetensors"))
    save_file(t, os.path.join(d, "model-00002-of-00002.safetensors"), metadata={"format": "pt"})
    wm = {k: "model-00001-of-00002.safetensors" for k in src}
    wm.update({k: "model-00002-of-00002.safetensors" for k in t})
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {}, "weight_map": wm}, fh)


def mtp_as_decoder_layer(src, dst):
    """The routed experts of `src` with Qwen3-Next's MTP layer renamed to the decoder layer after the last
    (mtp.layers.0.mlp.experts.* -> model.layers.<n>.mlp.experts.*), so kt-kernel's writer numbers it as ckhost does."""
    if os.path.isdir(dst):
        return dst
    with open(os.path.join(src, "config.json")) as fh:
        cfg = json.load(fh)
    n = cfg["num_hidden_layers"]
    t = {}
    for k, v in L.safe_open_all(src).items():
        if k.startswith("mtp.layers.0.mlp.experts."):
            t["model.layers.%d.mlp.experts.%s" % (n, k[len("mtp.layers.0.mlp.experts."):])] = v
        elif k.startswith("model.layers.") and ".mlp.experts." in k:
            t[k] = v
    os.makedirs(dst)
    save_file(t, os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    cfg["num_hidden_layers"] = n + 1
    with open(os.path.join(dst, "config.json"), "w") as fh:
        json.dump(cfg, fh)
    return dst


def expert_layers(src):
    """{layer: (gate, up, down) stacked} of every MoE layer, the MTP layer's included."""
    with open(os.path.join(src, "config.json")) as fh:
        cfg = json.load(fh)
    cfg["num_hidden_layers"] += cfg.get("num_nextn_predict_layers", 0) or 0
    tmp = os.path.join(src, "..", os.path.basename(src) + "-all-layers")
    if not os.path.isdir(tmp):
        os.makedirs(tmp)
        for f in os.listdir(src):
            if f.endswith(".safetensors"):
                os.symlink(os.path.abspath(os.path.join(src, f)), os.path.join(tmp, f))
        with open(os.path.join(tmp, "config.json"), "w") as fh:
            json.dump(cfg, fh)
    return tmp


def kt_reference(case, src, method, tp):
    """kt-kernel's own .kt files for every MoE layer of `src` (MTP layers too)."""
    ref = case.path("kt-%s-%s-%d" % (os.path.basename(src), method, tp))
    if not os.path.isdir(ref):
        rc, out = K.run("write", expert_layers(src), ref, method, tp)
        case.assertEqual(rc, 0, out[-4000:])
    return ref


def compare_bytes(src, ours, ref, method, tp):
    """Every expert part of `ours` against kt-kernel's files; returns (parts compared, list of mismatches)."""
    t = L.safe_open_all(ours)
    n, bad = 0, []
    for layer, (g, _, _) in K.source_experts(expert_layers(src)):
        for part in range(tp):
            for e in range(g.shape[0]):
                for proj in ("gate", "up", "down"):
                    q, s = K.kt_files(ref, layer, part, method, proj, e)
                    k = "blk.%d.ffn_%s_exps.%d.numa.%d." % (layer, proj, e, part)
                    w, sc = t.get(k + "weight"), t.get(k + "scale")
                    n += 1
                    if w is None or sc is None or w.dtype != torch.int8 or sc.dtype != torch.float32 or \
                            w.numpy().tobytes() != q or sc.numpy().tobytes() != s:
                        bad.append(k)
    return n, bad


def float_moe(src, layer):
    """The MoE output in f32 from the source's BF16 experts, on kt_lib.tokens."""
    g, u, d = K.expert_layer(expert_layers(src), layer)
    x, ids, wt = K.tokens(g.shape[2], g.shape[0])
    x = x.float()
    y = torch.zeros(x.shape)
    for t in range(x.shape[0]):
        for j in range(ids.shape[1]):
            e = int(ids[t, j])
            h = torch.nn.functional.silu(g[e].float() @ x[t]) * (u[e].float() @ x[t])
            y[t] += wt[t, j] * (d[e].float() @ h)
    return y


def kt_forward(case, weights, method, tp, layer, src):
    g, _, _ = K.expert_layer(expert_layers(src), layer)
    out = case.path("y-%d.pt" % len(os.listdir(case.tmp)))
    rc, log = K.run("forward", weights, method, tp, layer, g.shape[0], g.shape[2], g.shape[1], out)
    case.assertEqual(rc, 0, log[-4000:])
    return torch.load(out).float()


def rel(a, b):
    return float((a - b).norm() / b.norm())


class KtAmx(L.InteropCase):
    def source(self, spec, name, **kw):
        d = self.path("hf-" + name)
        if not os.path.isdir(d):
            make(spec, d, **kw)
        return d

    def check(self, src, method, tp, *extra):
        out = L.convert(src, self.path("kt-out-%s-%s-%d%s" % (os.path.basename(src), method, tp, "".join(extra))), "--to", "kt-amx",
                        "--kt-method", method[3:].lower(), "--kt-threadpool-count", tp, *extra)
        ref = kt_reference(self, src, method, tp)
        n, bad = compare_bytes(src, out, ref, method, tp)
        self.assertEqual(bad, [], "%d of %d expert parts differ from kt-kernel's" % (len(bad), n))
        return out, ref, n

    def carried(self, src, out):
        """Every non-expert tensor under the tool's name, bytes and dtype unchanged."""
        s, o = L.safe_open_all(src), L.safe_open_all(out)
        want = {}
        for k, v in s.items():
            if ".mlp.experts." in k or ".block_sparse_moe.experts." in k:
                continue
            want[k.replace("model.layers.", "blk.").replace("model.", "") if k.startswith("model.") else k] = v
        have = {k: v for k, v in o.items() if "_exps." not in k}
        self.assertEqual(sorted(have), sorted(want))
        for k, v in want.items():
            self.assertEqual(have[k].dtype, v.dtype, k)
            self.assertTrue(torch.equal(have[k].contiguous().view(torch.uint8), v.contiguous().view(torch.uint8)), k)
        return len(want)

    def test_deepseek_v3(self):
        src = self.source(DSV3, "dsv3", mtp=True)
        for method, tp in (("AMXINT8", 2), ("AMXINT4", 2), ("AMXINT8", 3)):
            out, ref, n = self.check(src, method, tp)
            L.report("DeepSeek-V3-shaped %s, threadpool count %d: %d expert parts (2 MoE layers + MTP, 8 experts, "
                     "gate/up/down) byte-identical with kt-kernel's own" % (method, tp, n))
            if tp == 2:
                kept = self.carried(src, out)
                o = L.safe_open_all(out)
                self.assertIn("blk.0.mlp.gate_proj.weight", o)  # the dense first layer stays dense
                self.assertNotIn("blk.0.ffn_gate_exps.0.numa.0.weight", o)
                self.assertIn("blk.3.ffn_down_exps.7.numa.1.scale", o)  # the MTP layer's experts
                with open(os.path.join(out, "config.json")) as a, open(os.path.join(src, "config.json")) as b:
                    self.assertEqual(json.load(a), json.load(b))
                L.report("DeepSeek-V3-shaped: %d other tensors carried under the tool's names, bytes unchanged" % kept)
            # kt-kernel loads ckhost's merged safetensors and computes what it computes from its own files.
            if (method, tp) in (("AMXINT8", 3), ("AMXINT4", 2)):
                ya, yb = kt_forward(self, out, method, tp, 1, src), kt_forward(self, ref, method, tp, 1, src)
                self.assertTrue(torch.equal(ya, yb))
                err = rel(ya, float_moe(src, 1))
                self.assertLess(err, REL_TOL[method])
                L.report("kt-kernel %s forward (layer 1, 8 tokens, top-2) from ckhost's safetensors == from its own "
                         ".kt files; relative L2 error against the float MoE %.4f" % (method, err))
        self.swapped_experts_caught(src, out, ref, "AMXINT8", 3)

    def swapped_experts_caught(self, src, out, ref, method, tp):
        """Negative twin: experts 0 and 1 of layer 1 trade places in ckhost's file."""
        f = os.path.join(out, "model-00001-of-00004.safetensors")  # layer 1's shard (layers 1, 2, MTP 3, the rest)
        t = load_file(f)
        sw = {}
        for k, v in t.items():
            for a, b in ((".0.numa.", ".1.numa."), (".1.numa.", ".0.numa.")):
                if k.startswith("blk.1.ffn_") and a in k:
                    sw[k.replace(a, b)] = v
        self.assertEqual(len(sw), 2 * 3 * tp * 2)
        t.update(sw)
        save_file(t, f, metadata={"format": "pt"})
        n, bad = compare_bytes(src, out, ref, method, tp)
        self.assertEqual(len(bad), 2 * 3 * tp, bad)  # 2 experts x 3 projections x tp parts
        ya, yb = kt_forward(self, out, method, tp, 1, src), kt_forward(self, ref, method, tp, 1, src)
        self.assertFalse(torch.equal(ya, yb))
        err = rel(ya, float_moe(src, 1))
        self.assertGreater(err, 5 * REL_TOL[method])
        L.report("negative twin: experts 0 and 1 of layer 1 swapped -> %d of %d parts differ from kt-kernel's, and "
                 "its forward moves to relative error %.3f" % (len(bad), n, err))

    def test_minimax_two_k_blocks(self):
        src = self.source(MINIMAX, "minimax")
        for method in ("AMXINT8", "AMXINT4"):
            out, ref, n = self.check(src, method, 2)
            L.report("MiniMax-M2-shaped (w1/w3/w2, hidden 3840 = K blocks 3584 + 256) %s: %d expert parts byte-identical"
                     % (method, n))
        self.carried(src, out)
        ya, yb = kt_forward(self, out, "AMXINT4", 2, 0, src), kt_forward(self, ref, "AMXINT4", 2, 0, src)
        self.assertTrue(torch.equal(ya, yb))
        self.assertLess(rel(ya, float_moe(src, 0)), REL_TOL["AMXINT4"])

    def test_glm45_and_qwen3_moe_dense_layers(self):
        for spec, name, dense in ((GLM45, "glm45", "first_k_dense_replace 1"), (QWEN3MOE, "qwen3moe", "mlp_only_layers [0]")):
            src = self.source(spec, name)
            out, _, n = self.check(src, "AMXINT8", 2)
            o = L.safe_open_all(out)
            self.assertIn("blk.0.mlp.up_proj.weight", o)
            self.assertFalse(any(k.startswith("blk.0.ffn_") for k in o))
            self.carried(src, out)
            L.report("%s-shaped AMXINT8: %d expert parts byte-identical, the dense layer (%s) left dense" % (name, n, dense))

    def test_dsa_and_linear_attention_families(self):
        fams = ((DSV32, "deepseek_v32", True, [0], ["blk.0.self_attn.indexer.wq_b.weight", "blk.2.self_attn.indexer.wk.weight",
                                                     "blk.2.ffn_up_exps.3.numa.1.weight"]),
                (GLM5, "glm_moe_dsa", True, [0, 1], ["blk.3.self_attn.indexer.k_norm.bias", "blk.4.self_attn.indexer.wk.weight",
                                                      "blk.4.ffn_gate_exps.0.numa.0.scale"]),
                (QWEN3NEXT, "qwen3_next", True, [1], ["blk.0.linear_attn.in_proj_qkvz.weight", "blk.0.linear_attn.A_log",
                                                        "blk.2.self_attn.q_norm.weight", "blk.2.mlp.shared_expert_gate.weight",
                                                        "mtp.fc.weight", "mtp.layers.0.self_attn.q_proj.weight",
                                                        "blk.3.ffn_down_exps.3.numa.1.weight"]))
        for spec, mt, mtp, dense, present in fams:
            src = self.source(spec, mt, mtp=mtp)
            with open(os.path.join(src, "config.json")) as fh:
                self.assertEqual(json.load(fh)["model_type"], mt)
            out, ref, n = self.check(src, "AMXINT8", 2)
            o = L.safe_open_all(out)
            for layer in dense:  # dense layers stay dense
                self.assertIn("blk.%d.mlp.up_proj.weight" % layer, o)
                self.assertFalse(any(k.startswith("blk.%d.ffn_" % layer) for k in o))
            for k in present:
                self.assertIn(k, o)
            if mt == "qwen3_next":
                # The MTP block's experts (mtp.layers.0) come after the 3 decoder layers, as blk.3; kt-kernel's writer
                # gives the same bytes for them under that layer number.
                view = mtp_as_decoder_layer(src, self.path("hf-qwen3next-mtp-as-layer-3"))
                n2, bad2 = compare_bytes(view, out, kt_reference(self, view, "AMXINT8", 2), "AMXINT8", 2)
                self.assertEqual(bad2, [], "%d of %d expert parts differ" % (len(bad2), n2))
                self.assertEqual(n2, n + 4 * 3 * 2)
                n = n2
            if mt == "glm_moe_dsa":  # the indexer_types "shared" layer has none
                self.assertFalse(any(k.startswith("blk.2.self_attn.indexer.") for k in o))
                # kt-kernel loads layer 2 from ckhost's safetensors and computes what it computes from its own files.
                ya, yb = kt_forward(self, out, "AMXINT8", 2, 2, src), kt_forward(self, ref, "AMXINT8", 2, 2, src)
                self.assertTrue(torch.equal(ya, yb))
                err = rel(ya, float_moe(src, 2))
                self.assertLess(err, REL_TOL["AMXINT8"])
                L.report("GLM-5-shaped: kt-kernel AMXINT8 forward (layer 2) from ckhost's safetensors == from its own .kt files; "
                         "relative L2 error against the float MoE %.4f" % err)
            kept = self.carried(src, out)
            L.report("%s-shaped AMXINT8: %d expert parts byte-identical with kt-kernel's%s, dense layers %s left dense, %d other "
                     "tensors carried bytes unchanged" % (mt, n, " (MTP layer included)" if mtp else "", dense, kept))
            # HF -> HF: the same tensors bit for bit.
            again = L.convert(src, self.path("hf-again-" + mt), "--to", "hf")
            a, b = L.safe_open_all(src), L.safe_open_all(again)
            self.assertEqual(sorted(a), sorted(b))
            for k, v in a.items():
                self.assertEqual(b[k].dtype, v.dtype, k)
                self.assertTrue(torch.equal(b[k].contiguous().view(torch.uint8), v.contiguous().view(torch.uint8)), k)
            # Formats with no mapping for the indexer / the linear attention refuse the model by name.
            for fmt in ("megatron", "gguf"):
                L.assert_refused(self, src, self.path("no-%s-%s" % (fmt, mt)), "--to", fmt, needle=mt)
            L.report("%s: HF -> HF %d tensors bit-exact; --to megatron and --to gguf refused in one line" % (mt, len(a)))
        # Negative twin: the same GLM-5 tensors under a config whose layer 3 is an indexer_types "shared" layer.
        bad = self.path("hf-glm5-shared3")
        os.makedirs(bad)
        glm = self.source(GLM5, "glm_moe_dsa", mtp=True)
        for f in os.listdir(glm):
            if f.endswith((".safetensors", ".json")) and f != "config.json":
                os.symlink(os.path.join(glm, f), os.path.join(bad, f))
        with open(os.path.join(glm, "config.json")) as fh:
            cfg = json.load(fh)
        cfg["indexer_types"] = ["full", "full", "shared", "shared"]
        with open(os.path.join(bad, "config.json"), "w") as fh:
            json.dump(cfg, fh)
        L.assert_refused(self, bad, self.path("r-shared3"), "--to", "kt-amx", "--kt-method", "int8",
                         needle="model.layers.3.self_attn.indexer.")

    def fp8_copy(self, bf, name):
        """`bf` with every linear weight (attention, dense and shared MLP, experts; not the embedding, the LM head or
        the routers) in DeepSeek's block FP8: scale_inv = amax / 448 per 128 x 128 block, codes = w / scale_inv in
        float8_e4m3fn, and the release's quantization_config."""
        src = self.path(name)
        os.makedirs(src)
        t = load_file(os.path.join(bf, "model.safetensors"))
        out_t = {}
        for k, v in t.items():
            if v.dim() == 2 and k.endswith(("proj.weight", ".w1.weight", ".w2.weight", ".w3.weight")) and "embed" not in k:
                m, n = v.shape
                bm, bn = -(-m // 128), -(-n // 128)
                pad = torch.zeros(bm * 128, bn * 128)
                pad[:m, :n] = v.float()
                blocks = pad.view(bm, 128, bn, 128)
                s = (blocks.abs().amax(dim=(1, 3)) / 448.0).clamp(min=1e-12)
                q = (blocks / s[:, None, :, None]).view(bm * 128, bn * 128)[:m, :n].to(torch.float8_e4m3fn)
                out_t[k], out_t[k + "_scale_inv"] = q, s.float()
            else:
                out_t[k] = v
        save_file(out_t, os.path.join(src, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(bf, "config.json")) as fh:
            cfg = json.load(fh)
        cfg["quantization_config"] = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                                      "weight_block_size": [128, 128]}
        with open(os.path.join(src, "config.json"), "w") as fh:
            json.dump(cfg, fh)
        return src, cfg

    def test_fp8_source_dequantized_on_cpu(self):
        # MiniMax-M2 is released so too (block_sparse_moe.experts.E.w1/w2/w3 with weight_scale_inv).
        mm, _ = self.fp8_copy(self.source(MINIMAX_SMALL, "minimax-small"), "hf-minimax-fp8")
        out_mm, _, n = self.check(mm, "AMXINT8", 2)
        kept = self.carried(mm, out_mm)
        L.report("MiniMax-M2-shaped block FP8 (w1/w3/w2) -> AMXINT8: %d expert parts byte-identical, %d other tensors carried "
                 "(FP8 attention with its weight_scale_inv)" % (n, kept))
        src, cfg = self.fp8_copy(self.source(DSV3, "dsv3"), "hf-dsv3-fp8")
        # As the tool: the FP8 experts dequantized (here on the CPU), the other FP8 weights kept with their scales.
        out, _, n = self.check(src, "AMXINT4", 2)
        kept = self.carried(src, out)
        with open(os.path.join(out, "config.json")) as fh:
            self.assertEqual(json.load(fh)["quantization_config"], cfg["quantization_config"])
        L.report("DeepSeek-V3-shaped block FP8 -> AMXINT4 (experts dequantized on the CPU): %d expert parts byte-identical "
                 "with kt-kernel's from the same dequantization in torch; %d other tensors carried, FP8 codes and "
                 "weight_scale_inv as they are" % (n, kept))
        # --dtype bf16 dequantizes the other tensors too; the expert shards stay byte for byte the same.
        alldq, _, _ = self.check(src, "AMXINT4", 2, "--dtype", "bf16")
        for f in ("model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors"):
            with open(os.path.join(out, f), "rb") as a, open(os.path.join(alldq, f), "rb") as b:
                self.assertEqual(a.read(), b.read(), f)
        self.assertTrue(all(v.dtype != torch.float8_e4m3fn for v in L.safe_open_all(alldq).values()))
        # The script's own command line (ckhost convert-cpu-weights) gives the same files.
        again = self.path("kt-script-line")
        L.run("convert-cpu-weights", "--input-path", src, "--input-type", "fp8", "--output", again, "--quant-method", "int4",
              "--cpuinfer-threads", "60", "--threadpool-count", "2")
        self.assertEqual(L.tree_files(again), L.tree_files(out))
        for f in L.tree_files(out):
            with open(os.path.join(out, f), "rb") as a, open(os.path.join(again, f), "rb") as b:
                self.assertEqual(a.read(), b.read(), f)
        for flag, needle in (("--no-merge-safetensor", "merged safetensors only"), ("--resume-layer=3", "nothing behind")):
            p = L.run("convert-cpu-weights", "-i", src, "--input-type", "fp8", "-o", self.path("no"), flag, check=False)
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(needle, p.stderr)
            self.assertFalse(os.path.exists(self.path("no")))
        L.report("ckhost convert-cpu-weights --input-type fp8 --quant-method int4 --threadpool-count 2 (the script's flags): "
                 "the same %d files" % len(L.tree_files(out)))

    def test_refusals(self):
        src = self.source(DSV3, "dsv3")
        L.assert_refused(self, src, self.path("r1"), "--to", "kt-amx", "--kt-method", "int8", "--kt-threadpool-count", "5",
                         needle="does not divide into --kt-threadpool-count 5")
        # AMXINT4 at threadpool count 4: 768 / 4 = 192 columns of down, not whole 128-column groups.
        L.assert_refused(self, src, self.path("r2"), "--to", "kt-amx", "--kt-method", "int4", "--kt-threadpool-count", "4",
                         needle="multiples of 128")
        dense = L.make_hf("llama-mha-tied-bf16", self.path("hf-dense"))
        L.assert_refused(self, dense, self.path("r3"), "--to", "kt-amx", "--kt-method", "int8", needle="no routed experts")


if __name__ == "__main__":
    L.main()
