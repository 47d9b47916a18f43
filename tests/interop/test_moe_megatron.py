"""MoE models HF <-> Megatron-Core with expert parallelism, checked by Megatron-Core 0.16.1 and transformers.

Sources are transformers 5.24 save_pretrained checkpoints (test_moe_hf.MOE): Mixtral (every layer MoE,
4 experts, top-2), Qwen3-MoE (q/k norm, a dense layer 1 from mlp_only_layers, so torch_dist keeps
per-layer keys) and Qwen2-MoE (sigmoid-gated shared expert, q/k/v biases, top-k without renormalising). ckhost writes them as
  - torch_dist (global expert axis "mlp.experts.experts.linear_fc1.weight" [L, E, 2F, h] or [E, 2F, h]),
    loaded by Megatron-Core with dist_checkpointing.load(strict=RAISE_ALL) at another EP/ETP than written;
  - legacy per-rank files mp_rank_TT[_PPP]_EEE, each EP rank's experts numbered from 0, loaded by each
    Megatron rank with load_state_dict(strict=True): TP2 x EP2 (ETP = TP), TP2 x EP4 x ETP1, and
    PP2 (uneven, 2+1 layers) x EP2, and a direct Megatron -> Megatron resplit TP2xEP2 -> TP2xEP4xETP1;
and Megatron-Core's forward (SequentialMLP experts, allgather dispatcher on gloo) must give
transformers' logits (eager experts). Converted back to HF, every tensor is bit-identical to the source.
Negative twins: two experts swapped inside one EP rank's file change Megatron's logits beyond the
tolerance; an EP rank directory or an expert missing is refused by name. Producer: a Megatron-Core MoE
model saved at EP2 converts to an HF Mixtral that transformers runs with Megatron's logits.

Run: tests/interop/run_interop.sh tests/interop/test_moe_megatron.py --ckhost=build/bin/ckhost
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import interop_lib as L  # noqa: E402
import mcore_lib as M  # noqa: E402
import test_moe_hf as H  # noqa: E402

TOL = M.LOGITS_ATOL
LOCAL = ("--megatron-spec", "local")


class MoeMegatron(L.InteropCase):
    def source(self, fam):
        d = self.path("hf-" + fam)
        if not os.path.isdir(d):
            H.make(fam, d)
        return d

    def assert_match(self, what, rr, ref):
        errs = M.errors(rr)
        self.assertFalse(errs, "%s: the Megatron-Core task raised:\n%s" % (what, "\n".join(errs)))
        r0 = rr[0]
        self.assertIsNone(r0.get("strict_error"), "%s: %s (checkpoint only: %s; model only: %s)" % (
            what, r0.get("strict_error"), r0.get("ckpt_only_keys"), r0.get("model_only_keys")))
        for r in rr:
            self.assertIsNone(r.get("load_error"), "%s: %s" % (what, r.get("load_error")))
            for k in ("model_only_keys", "file_only_keys", "shape_mismatch", "value_mismatch"):
                extra = [x for x in r.get(k, []) if not (k == "model_only_keys" and x in r.get("defaulted_by_megatron", []))]
                self.assertEqual(extra, [], "%s: %s %s" % (what, r.get("file"), k))
        meg = M.first_logits(rr)
        self.assertIsNotNone(meg, what)
        diff, same = M.compare_logits(meg, ref)
        L.report("%s: max |logit diff| %.3g (tol %g)" % (what, diff, TOL))
        self.assertLessEqual(diff, TOL, what)
        self.assertTrue(same, what + ": argmax differs")
        return diff

    def assert_back_bit_exact(self, src, ckpt, name):
        back = L.convert(ckpt, self.path(name + "-back"), "--to", "hf")
        a, b = L.safe_open_all(src), L.safe_open_all(back)
        self.assertEqual(sorted(a), sorted(b), name)
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), "%s: %s differs after the round trip" % (name, k))

    def test_mixtral_tp_ep_etp(self):
        src = self.source("mixtral")
        ref = H.logits(src)
        td = L.convert(src, self.path("mix-td"), "--to", "torch-dist", "--tp", "2", "--ep", "2", *LOCAL)
        lg22 = L.convert(src, self.path("mix-lg-tp2-ep2"), "--to", "megatron", "--tp", "2", "--ep", "2", *LOCAL)
        lg241 = L.convert(src, self.path("mix-lg-tp2-ep4-etp1"), "--to", "megatron", "--tp", "2", "--ep", "4",
                          "--etp", "1", *LOCAL)
        self.assertEqual(sorted(os.listdir(os.path.join(lg22, "release"))),
                         ["mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001"])
        # Each EP rank's file numbers its experts from 0: EP rank 1 of 2 holds global experts 2 and 3.
        f = torch.load(os.path.join(lg22, "release", "mp_rank_01_001", "model_optim_rng.pt"), weights_only=False)
        hf = L.safe_open_all(src)
        fc2 = f["model"]["decoder.layers.1.mlp.experts.local_experts.0.linear_fc2.weight"]
        self.assertTrue(torch.equal(fc2, hf["model.layers.1.block_sparse_moe.experts.2.w2.weight"][:, 48:]))
        self.assertEqual(f["args"].expert_model_parallel_size, 2)
        self.assertEqual(f["args"].num_experts, 4)
        # Negative twin: local experts 0 and 1 of EP rank 1 (global 2 and 3), layer 0, swapped in both
        # TP files of that rank.
        sw = self.path("mix-lg-swapped")
        shutil.copytree(lg22, sw)
        for t in (0, 1):
            p = os.path.join(sw, "release", "mp_rank_%02d_001" % t, "model_optim_rng.pt")
            sd = torch.load(p, weights_only=False)
            m = sd["model"]
            for part in ("linear_fc1", "linear_fc2"):
                a = "decoder.layers.0.mlp.experts.local_experts.0.%s.weight" % part
                b = a.replace("local_experts.0", "local_experts.1")
                m[a], m[b] = m[b], m[a]
            torch.save(sd, p)
        r22 = M.run_job(self.path("job-tp2-ep2"), world=4, tp=2, pp=1, ep=2, tasks=[
            dict(id="td", op="load_dist", ckpt=td, ids=L.IDS),
            dict(id="lg", op="load_legacy", ckpt=lg22, ids=L.IDS),
            dict(id="sw", op="load_legacy", ckpt=sw, ids=L.IDS)])
        self.assert_match("Mixtral torch_dist (args TP2 EP2) at TP2 EP2", r22["td"], ref)
        self.assert_match("Mixtral legacy TP2 EP2 (ETP2)", r22["lg"], ref)
        self.assertFalse(M.errors(r22["sw"]))
        diff, _ = M.compare_logits(M.first_logits(r22["sw"]), ref)
        L.report("Mixtral legacy TP2 EP2 with experts 2 and 3 of layer 0 swapped: max |logit diff| %.3g" % diff)
        self.assertGreater(diff, 100 * TOL, "two swapped experts did not change Megatron's logits")
        # Direct Megatron -> Megatron resplit (no HF files in between): legacy TP2 EP2 -> TP2 EP4 ETP1.
        rs = L.convert(lg22, self.path("mix-rs-tp2-ep4-etp1"), "--to", "megatron", "--tp", "2", "--ep", "4",
                       "--etp", "1", *LOCAL)
        r241 = M.run_job(self.path("job-tp2-ep4-etp1"), world=4, tp=2, pp=1, ep=4, etp=1, tasks=[
            dict(id="td", op="load_dist", ckpt=td, ids=L.IDS),
            dict(id="lg", op="load_legacy", ckpt=lg241, ids=L.IDS),
            dict(id="rs", op="load_legacy", ckpt=rs, ids=L.IDS)])
        self.assert_match("Mixtral torch_dist at TP2 EP4 ETP1", r241["td"], ref)
        self.assert_match("Mixtral legacy TP2 EP4 ETP1", r241["lg"], ref)
        self.assert_match("Mixtral legacy TP2 EP2 resplit by ckhost to TP2 EP4 ETP1", r241["rs"], ref)
        # Without --megatron-spec a resplit keeps the source's (local) spec, from torch_dist too.
        for srcck in (lg22, td):
            keep = L.convert(srcck, self.path("mix-keep-" + os.path.basename(srcck)), "--to", "megatron", "--ep", "4")
            k = torch.load(os.path.join(keep, "release", "mp_rank_00_002", "model_optim_rng.pt"), weights_only=False)
            self.assertIn("decoder.layers.0.input_layernorm.weight", k["model"], srcck)
            self.assertEqual(k["args"].transformer_impl, "local")
        for ck in (td, lg22, lg241, rs):
            self.assert_back_bit_exact(src, ck, os.path.basename(ck))
        # Refusals: no output directory, the reason named.
        for args, text in ((("--ep", "3"), "--ep 3 does not divide the 4 experts"),
                           (("--tp", "2", "--etp", "3"), "--etp 3 must divide --tp 2")):
            p = L.run("convert", src, self.path("mix-bad"), "--to", "megatron", *args, *LOCAL, "--progress", "none",
                      check=False)
            self.assertEqual(p.returncode, 1, p.stderr)
            self.assertIn(text, p.stderr)
            self.assertFalse(os.path.exists(self.path("mix-bad")))
        broken = self.path("mix-lg-missing-rank")
        shutil.copytree(lg22, broken)
        shutil.rmtree(os.path.join(broken, "release", "mp_rank_01_001"))
        p = L.run("convert", broken, self.path("mix-x"), "--to", "hf", "--progress", "none", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("mp_rank_01_001", p.stderr)
        gone = self.path("mix-lg-missing-expert")
        shutil.copytree(lg22, gone)
        for t in (0, 1):
            pth = os.path.join(gone, "release", "mp_rank_%02d_001" % t, "model_optim_rng.pt")
            sd = torch.load(pth, weights_only=False)
            for part in ("linear_fc1", "linear_fc2"):
                del sd["model"]["decoder.layers.1.mlp.experts.local_experts.1.%s.weight" % part]
            torch.save(sd, pth)
        p = L.run("convert", gone, self.path("mix-y"), "--to", "hf", "--progress", "none", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("expert 3", p.stderr)
        L.report("Mixtral: torch_dist and legacy TP2xEP2, TP2xEP4xETP1 give transformers' logits; round trips "
                 "bit-exact; swapped experts caught; missing rank/expert refused")

    def test_qwen3_moe_uneven_pp_ep(self):
        src = self.source("qwen3_moe")
        ref = H.logits(src)
        td = L.convert(src, self.path("q3-td"), "--to", "torch-dist", "--ep", "1", *LOCAL)
        lg = L.convert(src, self.path("q3-lg"), "--to", "megatron", "--pp", "2", "--pp-layers", "2,1", "--ep", "2",
                       *LOCAL)
        self.assertEqual(sorted(os.listdir(os.path.join(lg, "release"))),
                         ["mp_rank_00_000_000", "mp_rank_00_000_001", "mp_rank_00_001_000", "mp_rank_00_001_001"])
        grouped = L.convert(src, self.path("q3-grouped"), "--to", "megatron", "--ep", "2", "--moe-grouped-gemm",
                            "--megatron-spec", "te")
        g = torch.load(os.path.join(grouped, "release", "mp_rank_00_001", "model_optim_rng.pt"), weights_only=False)
        self.assertIn("decoder.layers.0.mlp.experts.linear_fc1.weight1", g["model"])
        self.assertTrue(g["args"].moe_grouped_gemm)
        # Megatron-Core's block spec for moe_layer_freq [1, 0, 1]; uneven PP via args
        # decoder_first/last_pipeline_num_layers.
        r = M.run_job(self.path("job-pp2-ep2"), world=4, tp=1, pp=2, ep=2, tasks=[
            dict(id="td", op="load_dist", ckpt=td, ids=L.IDS,
                 args_override=dict(decoder_first_pipeline_num_layers=2, decoder_last_pipeline_num_layers=1)),
            dict(id="lg", op="load_legacy", ckpt=lg, ids=L.IDS)])
        self.assert_match("Qwen3-MoE torch_dist (per-layer keys) at PP2 EP2", r["td"], ref)
        self.assert_match("Qwen3-MoE legacy PP2 (2+1 layers) EP2", r["lg"], ref)
        for ck in (td, lg, grouped):
            self.assert_back_bit_exact(src, ck, os.path.basename(ck))

    def test_qwen2_moe_shared_expert_tp2_ep2(self):
        # Shared expert (sigmoid gate) and q/k/v biases; norm_topk_prob false (softmax before top-k).
        src = self.source("qwen2_moe")
        ref = H.logits(src)
        td = L.convert(src, self.path("q2-td"), "--to", "torch-dist", "--tp", "2", "--ep", "2", *LOCAL)
        lg = L.convert(src, self.path("q2-lg"), "--to", "megatron", "--tp", "2", "--ep", "2", *LOCAL)
        f = torch.load(os.path.join(lg, "release", "mp_rank_01_000", "model_optim_rng.pt"), weights_only=False)
        self.assertEqual(tuple(f["model"]["decoder.layers.0.mlp.shared_experts.linear_fc1.weight"].shape), (48, 64))
        self.assertTrue(f["args"].moe_shared_expert_gate)
        r = M.run_job(self.path("job-q2"), world=4, tp=2, pp=1, ep=2, tasks=[
            dict(id="td", op="load_dist", ckpt=td, ids=L.IDS),
            dict(id="lg", op="load_legacy", ckpt=lg, ids=L.IDS)])
        self.assert_match("Qwen2-MoE torch_dist at TP2 EP2", r["td"], ref)
        self.assert_match("Qwen2-MoE legacy TP2 EP2", r["lg"], ref)
        for ck in (td, lg):
            self.assert_back_bit_exact(src, ck, os.path.basename(ck))

    def test_megatron_legacy_grouped_mlp(self):
        # Megatron-Core's legacy GroupedMLP keeps each rank's experts packed and transposed in weight1 /
        # weight2; its own sharded_state_dict unpacks them. ckhost's reading of the packed per-rank files
        # must give exactly the tensors of its reading of Megatron's torch_dist save of the same model.
        margs = dict(num_attention_heads=4, num_query_groups=2, num_layers=2, num_experts=4, moe_router_topk=2,
                     moe_ffn_hidden_size=160, rotary_base=1000000)
        leg, dist = self.path("grouped-legacy"), self.path("grouped-dist")
        r = M.run_job(self.path("job-grouped"), world=4, tp=2, pp=1, ep=2, tasks=[
            dict(id="g", op="save_grouped", legacy=leg, dist=dist, seed=9, args=margs)])
        self.assertFalse(M.errors(r["g"]), M.errors(r["g"]))
        self.assertIn("decoder.layers.0.mlp.experts.weight1", r["g"][0]["keys"])
        self.assertEqual(sorted(os.listdir(os.path.join(leg, "release"))),
                         ["mp_rank_00_000", "mp_rank_00_001", "mp_rank_01_000", "mp_rank_01_001"])
        a = L.safe_open_all(L.convert(leg, self.path("grouped-legacy-hf"), "--to", "hf"))
        b = L.safe_open_all(L.convert(dist, self.path("grouped-dist-hf"), "--to", "hf"))
        self.assertEqual(sorted(a), sorted(b))
        experts = [k for k in a if ".experts." in k]
        self.assertEqual(len(experts), 2 * 4 * 3)
        for k in a:
            self.assertTrue(torch.equal(a[k], b[k]), k)
        # The experts are distinct (a merge that repeats one EP rank's pack would not be).
        self.assertFalse(torch.equal(a["model.layers.0.block_sparse_moe.experts.0.w1.weight"],
                                     a["model.layers.0.block_sparse_moe.experts.2.w1.weight"]))
        L.report("Megatron-Core GroupedMLP legacy TP2 EP2 files read by ckhost = its torch_dist save, %d expert "
                 "tensors bit-identical" % len(experts))

    def test_megatron_saves_moe(self):
        margs = dict(num_attention_heads=4, num_query_groups=2, num_layers=2, num_experts=4, moe_router_topk=2,
                     moe_ffn_hidden_size=160, rotary_base=1000000)
        ck = self.path("mcore-moe")
        r = M.run_job(self.path("job-save"), world=2, tp=1, pp=1, ep=2, tasks=[
            dict(id="save", op="save_dist", ckpt=ck, iteration=3, seed=5, ids=L.IDS, args=margs)])
        self.assertFalse(M.errors(r["save"]), M.errors(r["save"]))
        meg = M.first_logits(r["save"])
        out = L.convert(ck, self.path("mcore-moe-hf"), "--to", "hf")
        model = H.load(out)
        self.assertEqual(model.config.model_type, "mixtral")
        with torch.no_grad():
            got = model(torch.tensor([L.IDS])).logits[0]
        diff, same = M.compare_logits(meg, got)
        L.report("Megatron-Core MoE (EP2, SequentialMLP) -> ckhost -> HF Mixtral: max |logit diff| %.3g" % diff)
        self.assertLessEqual(diff, TOL)
        self.assertTrue(same)


if __name__ == "__main__":
    L.main()
