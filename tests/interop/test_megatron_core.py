"""Megatron-Core 0.16.1 as the consumer and the producer of ckhost's Megatron checkpoints (CPU, gloo).

  1. consumer, torch_dist: HF (transformers) -> `ckhost convert --to torch-dist --tp 2`; Megatron-Core builds
     GPTModel from common.pt's args and loads it with dist_checkpointing.load(strict=RAISE_ALL) at TP1 (one
     process) and TP2 (two processes); its forward must give transformers' logits of the HF source.
  2. consumer, legacy: `ckhost convert --to megatron --tp 2 --pp 2 --megatron-spec local`; four ranks
     (TP2 x PP2) each load their mp_rank_TT_PPP file with load_state_dict(strict=True); pipelined forward.
  3. producer: Megatron-Core saves a torch_dist checkpoint (TP1 and TP2) in Megatron-LM's training layout;
     `ckhost convert --to hf` (with --hf-config and without) must give a transformers model with
     Megatron's logits.
  4. broken outputs: swapped TP shards or attention heads in ckhost's torch_dist and legacy outputs must
     make the logits check fail (the check can see the faults it is there for).

Every logits check is float32 on both sides: max |logit diff| <= mcore_lib.LOGITS_ATOL (1e-4) over the
real vocabulary and the same argmax at every position of interop_lib.IDS. The Megatron-Core parts run in
worker processes (mcore_lib.run_job); see mcore_lib's docstring for the CUDA-only calls patched for CPU.

Run: tests/interop/run_interop.sh tests/interop/test_megatron_core.py --ckhost=build/bin/ckhost
"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import interop_lib as L  # noqa: E402
import mcore_lib as M  # noqa: E402

TOL = M.LOGITS_ATOL

# Consumer families (interop_lib.FAMILIES): GQA, tied embeddings + qkv bias, q/k norm with head_dim
# 32 != hidden/heads, MHA + tied saved in bf16, Mistral with head_dim 16.
CONSUMER_FAMILIES = ["llama-gqa", "qwen2-bias-tied", "qwen3-qknorm", "llama-mha-tied-bf16", "mistral-gqa"]

# The torch_dist conversion the consumer checks load: ckhost's default (--megatron-spec te), whose
# sharded keys are meant for Transformer Engine and local layer specs alike. The local spec built here
# must find every requested key, and RAISE_ALL also rejects any object in the checkpoint it does not
# request (e.g. an "_extra_state" of a module the local spec does not have).
TORCH_DIST_ARGS = ("--to", "torch-dist", "--tp", "2", "--megatron-spec", "local")

# Producer models: Megatron args (mcore_lib.megatron_args keywords) and the transformers config that
# describes the same model (written with save_pretrained as the --hf-config directory).
PRODUCER_MODELS = {
    "llama-gqa": (dict(num_attention_heads=4, num_query_groups=2, rotary_base=500000),
                  "LlamaConfig", dict(num_key_value_heads=2, head_dim=16, rope_theta=500000.0,
                                      tie_word_embeddings=False)),
    "qwen2-bias-tied": (dict(num_attention_heads=4, num_query_groups=2, rotary_base=1000000, add_qkv_bias=True,
                             untie_embeddings_and_output_weights=False),
                        "Qwen2Config", dict(num_key_value_heads=2, rope_theta=1000000.0, tie_word_embeddings=True,
                                            use_sliding_window=False)),
    "qwen3-qknorm": (dict(num_attention_heads=4, num_query_groups=2, kv_channels=32, rotary_base=1000000,
                          qk_layernorm=True),
                     "Qwen3Config", dict(num_key_value_heads=2, head_dim=32, rope_theta=1000000.0,
                                         tie_word_embeddings=False, attention_bias=False, use_sliding_window=False)),
}


def _fmt_keys(keys, limit=12):
    keys = sorted(keys)
    s = ", ".join(keys[:limit])
    return s + (" ... (%d in all)" % len(keys) if len(keys) > limit else "")


class MegatronCase(L.InteropCase):
    """Shared steps: HF sources, conversions, the logits check."""

    def hf_source(self, family):
        d = self.path("hf-" + family)
        if not os.path.isdir(d):
            L.make_hf(family, d)
        return d

    def hf_reference(self, hf_dir):
        """transformers' float32 logits of an HF checkpoint."""
        return L.hf_logits(L.load_hf(hf_dir))

    def assert_logits_match(self, what, meg, ref):
        """The consumer check: Megatron's logits equal transformers' within TOL, same argmax."""
        self.assertIsNotNone(meg, "%s: Megatron produced no logits" % what)
        diff, same_argmax = M.compare_logits(meg, ref)
        L.report("%s: max |logit diff| %.3g (tol %g), argmax %s" % (what, diff, TOL,
                                                                   "same" if same_argmax else "DIFFERENT"))
        self.assertLessEqual(diff, TOL, "%s: Megatron and transformers logits differ by %g" % (what, diff))
        self.assertTrue(same_argmax, "%s: argmax differs" % what)
        return diff

    def assert_no_worker_error(self, what, rank_results):
        errs = M.errors(rank_results)
        self.assertFalse(errs, "%s: the Megatron-Core task raised:\n%s" % (what, "\n".join(errs)))


# ---- 1. consumer: torch_dist -------------------------------------------------------------------------

class TestTorchDistConsumer(MegatronCase):
    """ckhost's torch_dist output loaded by Megatron-Core with the strictest validation."""

    def _run(self, tp):
        refs, tasks = {}, []
        for fam in CONSUMER_FAMILIES:
            src = self.hf_source(fam)
            out = L.convert(src, self.path("td-" + fam), *TORCH_DIST_ARGS)
            refs[fam] = self.hf_reference(src)
            tasks.append(dict(id=fam, op="load_dist", ckpt=out, ids=L.IDS))
        results = M.run_job(self.path("job-tp%d" % tp), world=tp, tp=tp, pp=1, tasks=tasks)
        for fam in CONSUMER_FAMILIES:
            rr = results[fam]
            what = "torch_dist TP%d %s" % (tp, fam)
            with self.subTest(family=fam, check="worker"):
                self.assert_no_worker_error(what, rr)
            r0 = rr[0]
            strict_error = r0.get("strict_error")
            with self.subTest(family=fam, check="dist_checkpointing.load strict=RAISE_ALL"):
                if strict_error:
                    keys = "in the checkpoint but not requested by Megatron: [%s]; requested but not in the " \
                           "checkpoint: [%s]" % (_fmt_keys(r0.get("ckpt_only_keys", [])),
                                                 _fmt_keys(r0.get("model_only_keys", [])))
                    L.report("%s: strict load FAILED; %s" % (what, keys))
                    self.fail("%s: dist_checkpointing.load(strict=RAISE_ALL) raised %s\n(%s)"
                              % (what, strict_error, keys))
            with self.subTest(family=fam, check="load_state_dict strict=True"):
                self.assertIsNone(r0.get("load_error"), "%s: %s" % (what, r0.get("load_error")))
            with self.subTest(family=fam, check="common state"):
                common = r0.get("common", {})
                for k in ("args", "checkpoint_version", "iteration"):
                    self.assertIn(k, common, "%s: common.pt lacks %r (Megatron-LM's load reads it)" % (what, k))
            with self.subTest(family=fam, check="logits"):
                # After a failed strict load the worker loaded with RETURN_ALL (diagnostics, the test has
                # failed already): these logits then say whether the tensors themselves are right.
                self.assert_logits_match(what + (" [after RETURN_ALL load]" if strict_error else ""),
                                         M.first_logits(rr), refs[fam])

    def test_tp1_one_process(self):
        self._run(tp=1)

    def test_te_spec_output_default_strictness(self):
        """ckhost's default --megatron-spec te writes a superset of _extra_state objects (TE linears,
        norms and core_attention): the local spec built here does not ask for all of them, so it loads
        with Megatron-LM's default --dist-ckpt-strictness (assume_ok_unexpected), and gives the logits."""
        refs, tasks = {}, []
        for fam in ("llama-gqa", "qwen3-qknorm"):
            src = self.hf_source(fam)
            out = L.convert(src, self.path("te-" + fam), "--to", "torch-dist", "--tp", "2")
            refs[fam] = self.hf_reference(src)
            tasks.append(dict(id=fam, op="load_dist", ckpt=out, ids=L.IDS, strict="assume_ok_unexpected"))
        results = M.run_job(self.path("job-te"), world=1, tp=1, pp=1, tasks=tasks)
        for fam, rr in results.items():
            what = "torch_dist (--megatron-spec te) TP1 %s, default strictness" % fam
            self.assert_no_worker_error(what, rr)
            self.assertIsNone(rr[0].get("strict_error"), rr[0].get("strict_error"))
            self.assertIsNone(rr[0].get("load_error"), rr[0].get("load_error"))
            self.assert_logits_match(what, M.first_logits(rr), refs[fam])

    def test_tp2_two_processes(self):
        self._run(tp=2)


# ---- 2. consumer: legacy per-rank files -------------------------------------------------------------

class TestLegacyConsumer(MegatronCase):
    """ckhost's mp_rank_TT_PPP files loaded by the four ranks of a TP2 x PP2 Megatron-Core model."""

    def test_tp2_pp2_four_processes(self):
        refs, tasks = {}, []
        for fam in CONSUMER_FAMILIES:
            src = self.hf_source(fam)
            out = L.convert(src, self.path("lg-" + fam), "--to", "megatron", "--tp", "2", "--pp", "2",
                            "--megatron-spec", "local")
            refs[fam] = self.hf_reference(src)
            tasks.append(dict(id=fam, op="load_legacy", ckpt=out, ids=L.IDS))
        results = M.run_job(self.path("job-tp2pp2"), world=4, tp=2, pp=2, tasks=tasks)
        for fam in CONSUMER_FAMILIES:
            rr = results[fam]
            what = "legacy TP2 PP2 %s" % fam
            with self.subTest(family=fam, check="worker"):
                self.assert_no_worker_error(what, rr)
            for rank, r in enumerate(rr):
                where = "%s rank %d (%s)" % (what, rank, r.get("file"))
                with self.subTest(family=fam, rank=rank, check="keys and shapes"):
                    self.assertEqual(r.get("args_parallel"), (2, 2), "%s: args TP/PP" % where)
                    self.assertEqual(r.get("file_only_keys"), [], "%s: keys Megatron does not have" % where)
                    self.assertEqual(r.get("shape_mismatch"), [], "%s: (key, Megatron shape, file shape)" % where)
                    # Keys of Megatron's state_dict() the file lacks. The only ones allowed are the
                    # "_extra_state" of ColumnParallelLinear/RowParallelLinear, which Megatron's own load
                    # pre-hook fills with None (strict=True accepts them); any other one fails here.
                    missing = r.get("model_only_keys") or []
                    other = sorted(set(missing) - set(r.get("defaulted_by_megatron", [])))
                    self.assertEqual(other, [], "%s: keys Megatron expects that the file lacks" % where)
                    if missing and rank == 0:
                        L.report("%s: the file has no %d '_extra_state' entries Megatron's torch save would "
                                 "write (e.g. %s); Megatron's load pre-hook defaults them to None"
                                 % (where, len(missing), missing[0]))
                with self.subTest(family=fam, rank=rank, check="load_state_dict strict=True"):
                    self.assertIsNone(r.get("load_error"), "%s: %s" % (where, r.get("load_error")))
                    self.assertEqual(r.get("value_mismatch"), [], "%s: tensors not as in the file" % where)
            with self.subTest(family=fam, check="logits"):
                self.assert_logits_match(what, M.first_logits(rr), refs[fam])


# ---- 3. producer: Megatron-Core saves, ckhost converts to HF -----------------------------------------

class TestMegatronProducer(MegatronCase):
    """torch_dist checkpoints written by Megatron-Core itself, converted to HF and run by transformers."""

    def _hf_config_dir(self, name):
        import transformers
        _, cls_name, kw = PRODUCER_MODELS[name]
        base = dict(hidden_size=64, intermediate_size=160, num_hidden_layers=4, num_attention_heads=4,
                    vocab_size=250, max_position_embeddings=128, rms_norm_eps=1e-5, hidden_act="silu")
        base.update(kw)
        d = self.path("hfcfg-" + name)
        getattr(transformers, cls_name)(**base).save_pretrained(d)
        return d

    def _run(self, tp):
        tasks = [dict(id=name, op="save_dist", ckpt=self.path("mcore-tp%d-%s" % (tp, name)), iteration=7,
                      seed=11 + i, ids=L.IDS, args=margs)
                 for i, (name, (margs, _, _)) in enumerate(PRODUCER_MODELS.items())]
        # Control for the consumer checks: Megatron-Core's own checkpoint passes the very load those use
        # (RAISE_ALL), and gives back the logits it was saved with.
        reloads = [dict(id=t["id"] + "/reload", op="load_dist", ckpt=t["ckpt"], ids=L.IDS, request_rng=True)
                   for t in tasks]
        results = M.run_job(self.path("job-save-tp%d" % tp), world=tp, tp=tp, pp=1, tasks=tasks + reloads)
        for t in tasks:
            name, rr = t["id"], results[t["id"]]
            back = results[t["id"] + "/reload"]
            with self.subTest(model=name, check="Megatron reloads its own checkpoint with RAISE_ALL"):
                self.assert_no_worker_error("Megatron reload TP%d %s" % (tp, name), back)
                self.assertIsNone(back[0].get("strict_error"), name)
                self.assertIsNone(back[0].get("load_error"), name)
                self.assertTrue(torch.equal(M.first_logits(back), M.first_logits(rr)), name)
            with self.subTest(model=name, check="Megatron save"):
                self.assert_no_worker_error("Megatron save TP%d %s" % (tp, name), rr)
                with open(os.path.join(t["ckpt"], M.TRACKER)) as fh:
                    self.assertEqual(fh.read().strip(), "7")
                self.assertTrue(os.path.isfile(os.path.join(t["ckpt"], "iter_0000007", "metadata.json")))
            meg = M.first_logits(rr)
            for variant, extra in (("--hf-config", ["--hf-config", self._hf_config_dir(name)]), ("args only", [])):
                what = "Megatron TP%d %s -> ckhost -> HF (%s)" % (tp, name, variant)
                with self.subTest(model=name, variant=variant):
                    out = self.path("hf-from-tp%d-%s-%s" % (tp, name, "cfg" if extra else "args"))
                    L.convert(t["ckpt"], out, "--to", "hf", *extra)
                    model = L.load_hf(out)
                    self.assertEqual(model.config.vocab_size, 250, "%s: vocab_size (padding kept?)" % what)
                    self.assert_logits_match(what, meg, L.hf_logits(model))

    def test_tp1_save(self):
        self._run(tp=1)

    def test_tp2_save(self):
        self._run(tp=2)


# ---- 4. broken outputs must fail the consumer check --------------------------------------------------

class TestBrokenOutputsFail(MegatronCase):
    """Faults a converter could make (TP shards or heads in the wrong order) are caught by the check."""

    FAMILY = "llama-gqa"

    def _assert_check_fails(self, what, meg, ref):
        self.assertIsNotNone(meg, "%s: Megatron produced no logits (the fault must get through the load)" % what)
        diff, same_argmax = M.compare_logits(meg, ref)
        L.report("%s: max |logit diff| %.3g, argmax %s -> consumer check %s" % (
            what, diff, "same" if same_argmax else "different",
            "FAILS as it must" if diff > TOL or not same_argmax else "PASSES (undetected!)"))
        self.assertTrue(diff > TOL or not same_argmax, "%s: the broken checkpoint passed the logits check" % what)

    def test_torch_dist_swapped_tp_shards_and_heads(self):
        src = self.hf_source(self.FAMILY)
        ref = self.hf_reference(src)
        good = L.convert(src, self.path("td-good"), *TORCH_DIST_ARGS)
        args = M.read_common_args(good)
        group_rows, d = M.qkv_row_blocks(args)
        self.assertGreaterEqual(group_rows, 4 * d, "heads 0 and 1 must both be query heads of group 0")
        key = "decoder.layers.self_attention.linear_qkv.weight"
        # (a) the two TP ranks' halves of layer 1's linear_qkv exchanged (what a converter that orders
        #     the TP shards wrong writes; each half is one query group's q, k and v rows).
        shards = self.path("td-tp-shards-swapped")
        shutil.copytree(good, shards)
        half = lambda t: M.swap_rows_(t[0], 0, t.shape[1] // 2, t.shape[1] // 2)[None]  # noqa: E731
        M.edit_dist_chunk(shards, key, [1, 0, 0], half)
        # (b) query heads 0 and 1 (both in group 0, TP rank 0's shard) exchanged in layer 2's linear_qkv.
        heads = self.path("td-heads-swapped")
        shutil.copytree(good, heads)
        M.edit_dist_chunk(heads, key, [2, 0, 0], lambda t: M.swap_rows_(t[0], 0, d, d)[None])
        tasks = [dict(id=n, op="load_dist", ckpt=c, ids=L.IDS)
                 for n, c in (("good", good), ("tp-shards-swapped", shards), ("heads-swapped", heads))]
        results = M.run_job(self.path("job"), world=2, tp=2, pp=1, tasks=tasks)
        for t in tasks:
            self.assert_no_worker_error("torch_dist " + t["id"], results[t["id"]])
            self.assertIsNone(results[t["id"]][0].get("load_error"), t["id"])
        # The control passes, the two broken ones fail. (The strict load is TestTorchDistConsumer's
        # business; here only the logits check is at issue, so a RAISE_ALL failure of the unmodified
        # output does not stop this test: the worker's RETURN_ALL load then supplies the logits.)
        self.assert_logits_match("broken-test control: torch_dist TP2 %s unmodified" % self.FAMILY,
                                 M.first_logits(results["good"]), ref)
        for n in ("tp-shards-swapped", "heads-swapped"):
            with self.subTest(fault=n):
                self._assert_check_fails("torch_dist TP2 %s %s" % (self.FAMILY, n), M.first_logits(results[n]), ref)

    def test_legacy_swapped_rank_files_and_heads(self):
        src = self.hf_source(self.FAMILY)
        ref = self.hf_reference(src)
        good = L.convert(src, self.path("lg-good"), "--to", "megatron", "--tp", "2", "--megatron-spec", "local")
        # (a) the two TP ranks' files exchanged.
        ranks = self.path("lg-ranks-swapped")
        shutil.copytree(good, ranks)
        it = M.iteration_dir(ranks)
        os.rename(os.path.join(it, "mp_rank_00"), os.path.join(it, "tmp"))
        os.rename(os.path.join(it, "mp_rank_01"), os.path.join(it, "mp_rank_00"))
        os.rename(os.path.join(it, "tmp"), os.path.join(it, "mp_rank_01"))
        # (b) query heads 0 and 1 exchanged inside TP rank 1's layer-0 linear_qkv (re-saved with torch.save).
        heads = self.path("lg-heads-swapped")
        shutil.copytree(good, heads)
        f = M.legacy_rank_file(heads, 1, 0, 1)
        sd = torch.load(f, map_location="cpu", weights_only=False)
        group_rows, d = M.qkv_row_blocks(sd["args"])
        self.assertGreaterEqual(group_rows, 4 * d, "heads 0 and 1 must both be query heads of group 0")
        M.swap_rows_(sd["model"]["decoder.layers.0.self_attention.linear_qkv.weight"], 0, d, d)
        torch.save(sd, f)
        tasks = [dict(id=n, op="load_legacy", ckpt=c, ids=L.IDS)
                 for n, c in (("good", good), ("ranks-swapped", ranks), ("heads-swapped", heads))]
        results = M.run_job(self.path("job"), world=2, tp=2, pp=1, tasks=tasks)
        for t in tasks:
            self.assert_no_worker_error("legacy " + t["id"], results[t["id"]])
            for r in results[t["id"]]:
                self.assertIsNone(r.get("load_error"), t["id"])
        self.assert_logits_match("broken-test control: legacy TP2 PP1 %s unmodified" % self.FAMILY,
                                 M.first_logits(results["good"]), ref)
        for n in ("ranks-swapped", "heads-swapped"):
            with self.subTest(fault=n):
                self._assert_check_fails("legacy TP2 PP1 %s %s" % (self.FAMILY, n), M.first_logits(results[n]), ref)


if __name__ == "__main__":
    L.main()
