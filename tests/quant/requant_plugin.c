/* A test mapper written against the SDK 1.1 headers: "test.fp8-requant" (family "*", hf -> hf) turns every
 * 2-D floating tensor named *_proj.weight into block-FP8 codes (same name) and scales (NAME_scale_inv)
 * with the "fp8-block" quantizer's two outputs, both from one quantize_n over the same input, so the
 * host must run the quantizer once per chunk for both. Used by test_quant_pairs.py. */
#include <stdio.h>
#include <string.h>

#include <ckhost/ckh_plugin.h>

static const ckh_host_t *g_host;

static int is_proj_weight(const char *n) {
  size_t l = strlen(n);
  return l > 12 && strcmp(n + l - 12, "_proj.weight") == 0;
}

static ckh_status m_map(const ckh_mapper_class_t *cls, const char *opts, const char *meta, ckh_expr_builder_t *b) {
  uint64_t i, n = b->input_count(b);
  (void)cls;
  (void)opts;
  (void)meta;
  if (!CKH_HAS_FIELD(b, ckh_expr_builder_t, quantize_n) || !b->quantize_n) {
    g_host->set_error(g_host, CKH_E_ABI, "test.fp8-requant: the host's builder has no quantize_n (SDK < 1.1)");
    return CKH_E_ABI;
  }
  for (i = 0; i < n; ++i) {
    ckh_tensor_info_t t;
    ckh_tensor_annot_t a;
    ckh_expr e;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    memset(&a, 0, sizeof a);
    a.struct_size = sizeof a;
    if (b->input_info(b, i, &t) != CKH_OK || b->input_annot(b, i, &a) != CKH_OK) return CKH_E_INTERNAL;
    e = b->input_at(b, i);
    if (e < 0) return CKH_E_INTERNAL;
    if (t.ndim == 2 && is_proj_weight(t.name) && (t.dtype == CKH_DT_BF16 || t.dtype == CKH_DT_F16 || t.dtype == CKH_DT_F32)) {
      static const char params[] = "{\"mode\": \"quantize\", \"block\": [128, 128]}";
      char scale_name[1024];
      ckh_expr codes = b->quantize_n(b, &e, 1, "fp8-block", params, 0);
      ckh_expr scales = b->quantize_n(b, &e, 1, "fp8-block", params, 1);
      if (codes < 0 || scales < 0) return CKH_E_INTERNAL;
      if (snprintf(scale_name, sizeof scale_name, "%s_scale_inv", t.name) >= (int)sizeof scale_name) return CKH_E_INVALID_ARG;
      if (b->emit(b, t.name, codes, &a) != CKH_OK || b->emit(b, scale_name, scales, &a) != CKH_OK) return CKH_E_INTERNAL;
    } else if (b->emit(b, t.name, e, &a) != CKH_OK) {
      return CKH_E_INTERNAL;
    }
  }
  return CKH_OK;
}

static int32_t m_probe(const ckh_mapper_class_t *cls, const char *meta) {
  (void)cls;
  (void)meta;
  return 1;
}

static const ckh_mapper_class_t kMapper = {sizeof(ckh_mapper_class_t), 0, m_probe, m_map, NULL, NULL};
static const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "test.fp8-requant",
                                      "test: block-FP8 requantization of *_proj.weight",
                                      "{\"family\": \"*\", \"from\": \"hf\", \"to\": \"hf\"}", &kMapper};
static const ckh_component_t *const kComps[] = {&kComp};

static ckh_status init(const ckh_host_t *host) {
  g_host = host;
  return CKH_OK;
}

static const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.test.requant", "0.1.0",
                                     "test", "block-FP8 requantization mapper", init, NULL, kComps, NULL};

CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
