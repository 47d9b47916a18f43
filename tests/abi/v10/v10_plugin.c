/* v10_plugin.c — a plugin built against the frozen SDK 1.0 headers (tests/abi/sdk-1.0), never against the
 * current ones. It proves that plugins of ABI 1.0 keep loading and converting as the SDK grows.
 *
 * Components (C99, 1.0 structs exactly as they were):
 *   quantizer "v10.rowmax_i8": rows of an f32 [R, C] tensor -> output 0 int8 codes [R, C] =
 *     round_half_even(x / s) clamped to [-127, 127], output 1 f32 scales [R, 1], s = max|x| / 127
 *     (codes 0 where s == 0). One row per block.
 *   mapper "v10.quant" (family "*", hf -> hf): every 2-D floating tensor named *.weight becomes
 *     <name> = codes and <name>_rowscale = scales; every other tensor passes through.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <ckhost/ckh_plugin.h>

static const ckh_host_t *g_host;

static ckh_status err(ckh_status code, const char *msg) {
  if (g_host) g_host->set_error(g_host, code, msg);
  return code;
}

/* ---- quantizer ---------------------------------------------------------------------------------- */

typedef struct {
  int64_t rows, cols;
} qstate;

static qstate g_states[4096];
static int g_nstates;

static ckh_status q_prepare(const ckh_quantizer_class_t *cls, const char *params, const ckh_tensor_info_t *in,
                            ckh_quant_layout_t *L, void **state) {
  (void)cls;
  (void)params;
  if (in->ndim != 2) return err(CKH_E_UNSUPPORTED, "v10.rowmax_i8: needs a 2-D tensor");
  if (in->dtype != CKH_DT_F32) return err(CKH_E_INVALID_ARG, "v10.rowmax_i8: the 1.0 contract is f32 input");
  if (g_nstates >= 4096) return err(CKH_E_NOMEM, "v10.rowmax_i8: too many tensors");
  g_states[g_nstates].rows = in->shape[0];
  g_states[g_nstates].cols = in->shape[1];
  *state = &g_states[g_nstates++];
  L->n_outputs = 2;
  L->row_block = 1;
  L->rows_per_block[0] = 1;
  L->rows_per_block[1] = 1;
  memset(&L->outputs[0], 0, sizeof L->outputs[0]);
  L->outputs[0].struct_size = sizeof L->outputs[0];
  L->outputs[0].dtype = CKH_DT_I8;
  L->outputs[0].ndim = 2;
  L->outputs[0].shape[0] = in->shape[0];
  L->outputs[0].shape[1] = in->shape[1];
  memset(&L->outputs[1], 0, sizeof L->outputs[1]);
  L->outputs[1].struct_size = sizeof L->outputs[1];
  L->outputs[1].dtype = CKH_DT_F32;
  L->outputs[1].ndim = 2;
  L->outputs[1].shape[0] = in->shape[0];
  L->outputs[1].shape[1] = 1;
  return CKH_OK;
}

static ckh_status q_quantize(const ckh_quantizer_class_t *cls, void *state, int64_t row0, int64_t nrows,
                             const float *src, void *const *dst) {
  const qstate *s = (const qstate *)state;
  int8_t *codes = (int8_t *)dst[0];
  float *scales = (float *)dst[1];
  int64_t r, c;
  (void)cls;
  (void)row0;
  for (r = 0; r < nrows; ++r) {
    const float *x = src + r * s->cols;
    float m = 0.0f, sc;
    for (c = 0; c < s->cols; ++c) m = fabsf(x[c]) > m ? fabsf(x[c]) : m;
    sc = m / 127.0f;
    scales[r] = sc;
    for (c = 0; c < s->cols; ++c) {
      float q = sc > 0.0f ? nearbyintf(x[c] / sc) : 0.0f;
      q = q > 127.0f ? 127.0f : q < -127.0f ? -127.0f : q;
      codes[r * s->cols + c] = (int8_t)q;
    }
  }
  return CKH_OK;
}

static void q_release(const ckh_quantizer_class_t *cls, void *state) {
  (void)cls;
  (void)state;
}

static const ckh_quantizer_class_t kQuant = {sizeof(ckh_quantizer_class_t), 0, q_prepare, q_quantize, q_release};

/* ---- mapper -------------------------------------------------------------------------------------- */

static int32_t m_probe(const ckh_mapper_class_t *cls, const char *meta) {
  (void)cls;
  (void)meta;
  return 1;
}

static int is_weight(const char *n) {
  size_t l = strlen(n);
  return l > 7 && strcmp(n + l - 7, ".weight") == 0;
}

static ckh_status m_map(const ckh_mapper_class_t *cls, const char *opts, const char *meta, ckh_expr_builder_t *b) {
  uint64_t i, n = b->input_count(b);
  (void)cls;
  (void)opts;
  (void)meta;
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
    if (t.ndim == 2 && is_weight(t.name) &&
        (t.dtype == CKH_DT_BF16 || t.dtype == CKH_DT_F16 || t.dtype == CKH_DT_F32)) {
      char scale_name[1024];
      ckh_expr f = b->cast(b, e, CKH_DT_F32);
      ckh_expr codes = b->quantize(b, f, "v10.rowmax_i8", "{}", 0);
      ckh_expr scales = b->quantize(b, f, "v10.rowmax_i8", "{}", 1);
      if (f < 0 || codes < 0 || scales < 0) return CKH_E_INTERNAL;
      if (snprintf(scale_name, sizeof scale_name, "%s_rowscale", t.name) >= (int)sizeof scale_name)
        return err(CKH_E_INVALID_ARG, "v10.quant: name too long");
      if (b->emit(b, t.name, codes, &a) != CKH_OK || b->emit(b, scale_name, scales, &a) != CKH_OK) return CKH_E_INTERNAL;
    } else if (b->emit(b, t.name, e, &a) != CKH_OK) {
      return CKH_E_INTERNAL;
    }
  }
  return CKH_OK;
}

static const ckh_mapper_class_t kMapper = {sizeof(ckh_mapper_class_t), 0, m_probe, m_map, NULL};

/* ---- descriptor ---------------------------------------------------------------------------------- */

static const ckh_component_t kQuantComp = {sizeof(ckh_component_t), CKH_COMPONENT_QUANTIZER, "v10.rowmax_i8",
                                           "per-row absmax int8 (SDK 1.0 test plugin)", "{}", &kQuant};
static const ckh_component_t kMapComp = {sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "v10.quant",
                                         "int8-quantizes 2-D weights (SDK 1.0 test plugin)",
                                         "{\"family\":\"*\",\"from\":\"hf\",\"to\":\"hf\"}", &kMapper};
static const ckh_component_t *const kComps[] = {&kQuantComp, &kMapComp};

static ckh_status init(const ckh_host_t *host) {
  g_host = host;
  return CKH_OK;
}

static const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 2, "org.test.sdk10",
                                     "1.0.0", "ckhost tests", "built against the frozen SDK 1.0 headers",
                                     init, NULL, kComps};

CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
