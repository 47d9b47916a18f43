/* Test quantizer "test.q8_0" (SDK 1.1) with a block-dtype port: rows of an f32 [N, K] tensor (K a
 * multiple of 32) <-> CKH_DT_Q8_0 [N, K] (ggml's block_q8_0: f16 scale d = amax / 127, then 32 int8
 * codes round(x / d)). {"mode": "quantize"} (default) or {"mode": "dequantize"} (input Q8_0 -> F32).
 * Used by test_block_dtypes.cpp: the host's byte arithmetic, slices and evaluation of block dtypes. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ckhost/ckh_plugin.h>

static const ckh_host_t *g_host;

typedef struct {
  int deq;
  int64_t n, k;
} st_t;

static uint16_t f2h(float f) { /* f32 -> f16, RNE, for the finite scales used here */
  uint32_t x, sign, e, m;
  memcpy(&x, &f, 4);
  sign = (x >> 16) & 0x8000u;
  e = (x >> 23) & 0xffu;
  m = x & 0x7fffffu;
  if (e == 0 && m == 0) return (uint16_t)sign;
  if ((int)e - 127 < -14) { /* subnormal half */
    float a = fabsf(f) * 16777216.0f; /* / 2^-24 */
    uint32_t q = (uint32_t)lrintf(a);
    return (uint16_t)(sign | q);
  }
  {
    uint32_t he = e - 112, hm = m >> 13, rem = m & 0x1fffu;
    uint32_t h = (he << 10) | hm;
    if (rem > 0x1000u || (rem == 0x1000u && (hm & 1u))) ++h;
    return (uint16_t)(sign | h);
  }
}

static float h2f(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
  float f;
  if (e == 0) {
    f = ldexpf((float)m, -24);
    return sign ? -f : f;
  }
  u = sign | ((e + 112) << 23) | (m << 13);
  memcpy(&f, &u, 4);
  return f;
}

static ckh_status prep(const ckh_quantizer_class_t *c, const char *params, uint32_t n, const ckh_tensor_info_t *const *in,
                       ckh_quant_desc_t *d, void **state) {
  st_t *s;
  (void)c;
  if (n != 1 || in[0]->ndim != 2 || in[0]->shape[1] % 32) {
    g_host->set_error(g_host, CKH_E_UNSUPPORTED, "test.q8_0: one [N, K] input with K % 32 == 0");
    return CKH_E_UNSUPPORTED;
  }
  s = (st_t *)calloc(1, sizeof *s);
  if (!s) return CKH_E_NOMEM;
  s->deq = params && strstr(params, "dequantize") != NULL;
  if (s->deq != (in[0]->dtype == CKH_DT_Q8_0)) {
    free(s);
    g_host->set_error(g_host, CKH_E_INVALID_ARG, "test.q8_0: dequantize takes Q8_0, quantize a float tensor");
    return CKH_E_INVALID_ARG;
  }
  s->n = in[0]->shape[0];
  s->k = in[0]->shape[1];
  d->n_outputs = 1;
  d->n_blocks = s->n;
  *state = s;
  return CKH_OK;
}

static ckh_status port(const ckh_quantizer_class_t *c, const void *state, int32_t dir, uint32_t i, ckh_quant_port_t *out) {
  const st_t *s = (const st_t *)state;
  (void)c;
  if (i != 0) return CKH_E_INVALID_ARG;
  out->rows_per_block = 1;
  out->info.ndim = 2;
  out->info.shape[0] = s->n;
  out->info.shape[1] = s->k;
  out->info.name = dir == CKH_QUANT_OUTPUT ? "" : NULL;
  if (dir == CKH_QUANT_INPUT) out->info.dtype = s->deq ? CKH_DT_Q8_0 : CKH_DT_F32;
  else out->info.dtype = s->deq ? CKH_DT_F32 : CKH_DT_Q8_0;
  return CKH_OK;
}

static ckh_status run(const ckh_quantizer_class_t *c, void *state, int64_t b0, int64_t nb, const void *const *src,
                      void *const *dst) {
  const st_t *s = (const st_t *)state;
  int64_t r, b, j, nblk = s->k / 32;
  (void)c;
  (void)b0;
  for (r = 0; r < nb; ++r)
    for (b = 0; b < nblk; ++b) {
      if (s->deq) {
        const unsigned char *q = (const unsigned char *)src[0] + (r * nblk + b) * 34;
        float *y = (float *)dst[0] + r * s->k + b * 32;
        uint16_t dh;
        memcpy(&dh, q, 2);
        for (j = 0; j < 32; ++j) y[j] = h2f(dh) * (float)(signed char)q[2 + j];
      } else {
        const float *x = (const float *)src[0] + r * s->k + b * 32;
        unsigned char *q = (unsigned char *)dst[0] + (r * nblk + b) * 34;
        float amax = 0.0f, dd, id;
        uint16_t dh;
        for (j = 0; j < 32; ++j) amax = fmaxf(amax, fabsf(x[j]));
        dd = amax / 127.0f;
        id = dd ? 1.0f / dd : 0.0f;
        dh = f2h(dd);
        memcpy(q, &dh, 2);
        for (j = 0; j < 32; ++j) q[2 + j] = (unsigned char)(signed char)lrintf(x[j] * id);
      }
    }
  return CKH_OK;
}

static void rel(const ckh_quantizer_class_t *c, void *state) {
  (void)c;
  free(state);
}

static const ckh_quantizer_class_t kQ = {sizeof(ckh_quantizer_class_t), 0, NULL, NULL, rel, prep, port, run};
static const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_QUANTIZER, "test.q8_0",
                                      "test: ggml Q8_0 rows, both ways", "{}", &kQ};
static const ckh_component_t *const kComps[] = {&kComp};
static ckh_status init(const ckh_host_t *h) {
  g_host = h;
  return CKH_OK;
}
static const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "org.test.q8", "0.1.0",
                                     "test", "Q8_0 test quantizer", init, NULL, kComps, NULL};
CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
