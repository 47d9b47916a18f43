/* npy_header.c — see npy_header.h. */
#include "npy_header.h"

#include <stdio.h>
#include <string.h>

static const struct {
  const char *descr;
  ckh_dtype dt;
} kTypes[] = {{"<f4", CKH_DT_F32}, {"<f8", CKH_DT_F64}, {"<f2", CKH_DT_F16}, {"|i1", CKH_DT_I8}, {"|u1", CKH_DT_U8},
              {"<i2", CKH_DT_I16}, {"<u2", CKH_DT_U16}, {"<i4", CKH_DT_I32}, {"<u4", CKH_DT_U32}, {"<i8", CKH_DT_I64},
              {"<u8", CKH_DT_U64}, {"|b1", CKH_DT_BOOL}};

static int fail(char *err, size_t n, const char *msg, const char *arg) {
  snprintf(err, n, msg, arg ? arg : "");
  return -1;
}

typedef struct {
  const char *p, *end;
} cur;

static void ws(cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) ++c->p;
}

/* A quoted string without escapes, at most cap-1 bytes. */
static int str(cur *c, char *out, size_t cap) {
  char q;
  size_t n = 0;
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
  q = *c->p++;
  while (c->p < c->end && *c->p != q) {
    if (*c->p == '\\' || n + 1 >= cap) return -1;
    out[n++] = *c->p++;
  }
  if (c->p >= c->end) return -1;
  ++c->p;
  out[n] = 0;
  return 0;
}

static int word(cur *c, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return -1;
  c->p += n;
  return 0;
}

static int integer(cur *c, int64_t *v) {
  int digits = 0;
  *v = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    if (++digits > 18) return -1;
    *v = *v * 10 + (*c->p++ - '0');
  }
  if (c->p < c->end && *c->p == 'L') ++c->p;
  return digits ? 0 : -1;
}

int npy_parse_header(const unsigned char *buf, size_t avail, uint64_t file_size, npy_header *h, char *err, size_t errlen) {
  uint64_t hlen, start, numel = 1, item, data;
  cur c;
  int have_descr = 0, have_fo = 0, have_shape = 0;
  uint32_t i;
  memset(h, 0, sizeof *h);
  if (avail < 10 || file_size < 10 || memcmp(buf, "\x93NUMPY", 6) != 0) return fail(err, errlen, "not an NPY file (bad magic)%s", NULL);
  if (buf[6] == 1) {
    hlen = (uint64_t)buf[8] | ((uint64_t)buf[9] << 8);
    start = 10;
  } else if (buf[6] == 2 || buf[6] == 3) {
    if (avail < 12) return fail(err, errlen, "truncated NPY header%s", NULL);
    hlen = (uint64_t)buf[8] | ((uint64_t)buf[9] << 8) | ((uint64_t)buf[10] << 16) | ((uint64_t)buf[11] << 24);
    start = 12;
  } else {
    char v[8];
    snprintf(v, sizeof v, "%u", (unsigned)buf[6]);
    return fail(err, errlen, "unsupported NPY version %s", v);
  }
  if (hlen > NPY_MAX_HEADER || start + hlen > avail || start + hlen > file_size)
    return fail(err, errlen, "NPY header length runs past the end of the file%s", NULL);
  c.p = (const char *)buf + start;
  c.end = c.p + hlen;
  ws(&c);
  if (word(&c, "{") != 0) return fail(err, errlen, "NPY header is not a dict%s", NULL);
  for (;;) {
    char key[32], val[32];
    ws(&c);
    if (c.p < c.end && *c.p == '}') {
      ++c.p;
      break;
    }
    if (str(&c, key, sizeof key) != 0) return fail(err, errlen, "bad key in NPY header%s", NULL);
    ws(&c);
    if (word(&c, ":") != 0) return fail(err, errlen, "expected ':' in NPY header%s", NULL);
    ws(&c);
    if (strcmp(key, "descr") == 0) {
      size_t k;
      if (str(&c, val, sizeof val) != 0) return fail(err, errlen, "bad descr in NPY header%s", NULL);
      if (val[0] == '>') return fail(err, errlen, "big-endian dtype '%s' is not supported", val);
      if (val[0] == '=' || val[0] == '|') val[0] = (strcmp(val + 1, "b1") == 0 || val[2] == '1') ? '|' : '<';
      if (val[0] == '<' && val[2] == '1' && val[3] == 0) val[0] = '|';
      h->dtype = CKH_DT_INVALID;
      for (k = 0; k < sizeof kTypes / sizeof kTypes[0]; ++k)
        if (strcmp(val, kTypes[k].descr) == 0) h->dtype = kTypes[k].dt;
      if (h->dtype == CKH_DT_INVALID) return fail(err, errlen, "unsupported dtype '%s'", val);
      have_descr = 1;
    } else if (strcmp(key, "fortran_order") == 0) {
      if (word(&c, "True") == 0) h->fortran_order = 1;
      else if (word(&c, "False") == 0) h->fortran_order = 0;
      else return fail(err, errlen, "fortran_order is not True or False%s", NULL);
      have_fo = 1;
    } else if (strcmp(key, "shape") == 0) {
      if (word(&c, "(") != 0) return fail(err, errlen, "shape is not a tuple%s", NULL);
      for (;;) {
        int64_t v;
        ws(&c);
        if (c.p < c.end && *c.p == ')') {
          ++c.p;
          break;
        }
        if (h->ndim >= CKH_MAX_DIMS) return fail(err, errlen, "shape has more than 8 dimensions%s", NULL);
        if (integer(&c, &v) != 0) return fail(err, errlen, "bad shape entry in NPY header%s", NULL);
        h->shape[h->ndim++] = v;
        ws(&c);
        if (c.p < c.end && *c.p == ',') ++c.p;
        else if (c.p < c.end && *c.p != ')') return fail(err, errlen, "bad shape tuple in NPY header%s", NULL);
      }
      have_shape = 1;
    } else {
      return fail(err, errlen, "unknown key '%s' in NPY header", key);
    }
    ws(&c);
    if (c.p < c.end && *c.p == ',') ++c.p;
    else if (!(c.p < c.end && *c.p == '}')) return fail(err, errlen, "expected ',' or '}' in NPY header%s", NULL);
  }
  if (!have_descr || !have_fo || !have_shape) return fail(err, errlen, "NPY header lacks descr, fortran_order or shape%s", NULL);
  item = ckh_dtype_size(h->dtype);
  for (i = 0; i < h->ndim; ++i) {
    uint64_t d = (uint64_t)h->shape[i];
    if (d && numel > UINT64_MAX / d / item) return fail(err, errlen, "shape is too large (byte size overflows)%s", NULL);
    numel *= d;
  }
  h->data_offset = start + hlen;
  data = file_size - h->data_offset;
  if (numel * item != data) {
    char m[128];
    snprintf(m, sizeof m, "shape needs %llu bytes of data, file has %llu", (unsigned long long)(numel * item),
             (unsigned long long)data);
    return fail(err, errlen, "%s", m);
  }
  return 0;
}

int npy_format_header(const ckh_tensor_info_t *t, char *out, size_t cap, size_t *len, char *err, size_t errlen) {
  const char *descr = NULL;
  char dict[512];
  size_t n, k, total;
  uint32_t i;
  for (k = 0; k < sizeof kTypes / sizeof kTypes[0]; ++k)
    if (kTypes[k].dt == t->dtype) descr = kTypes[k].descr;
  if (!descr) return fail(err, errlen, "npy cannot store this dtype (BF16/FP8 have no NumPy type): cast with --dtype f32%s", NULL);
  n = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (i = 0; i < t->ndim; ++i) n += (size_t)snprintf(dict + n, sizeof dict - n, "%lld, ", (long long)t->shape[i]);
  if (t->ndim == 1) n -= 1; /* "(5,)" */
  else if (t->ndim > 1) n -= 2;
  n += (size_t)snprintf(dict + n, sizeof dict - n, "), }");
  total = 10 + n + 1;
  total = (total + 63) / 64 * 64;
  if (total > cap || total - 10 > 65535) return fail(err, errlen, "NPY header too long%s", NULL);
  memcpy(out, "\x93NUMPY\x01\x00", 8);
  out[8] = (char)((total - 10) & 0xFF);
  out[9] = (char)((total - 10) >> 8);
  memcpy(out + 10, dict, n);
  memset(out + 10 + n, ' ', total - 10 - n - 1);
  out[total - 1] = '\n';
  *len = total;
  return 0;
}
