/* npy_header.c — see npy_header.h. Every read is bounded by the header length, which is bounded by the
   file size and NPY_MAX_HEADER; every size computation is overflow-checked. */
#include "npy_header.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
  char kind;
  unsigned size;
  ckh_dtype dt;
} kTypes[] = {{'f', 2, CKH_DT_F16}, {'f', 4, CKH_DT_F32}, {'f', 8, CKH_DT_F64}, {'i', 1, CKH_DT_I8},
              {'i', 2, CKH_DT_I16}, {'i', 4, CKH_DT_I32}, {'i', 8, CKH_DT_I64}, {'u', 1, CKH_DT_U8},
              {'u', 2, CKH_DT_U16}, {'u', 4, CKH_DT_U32}, {'u', 8, CKH_DT_U64}, {'b', 1, CKH_DT_BOOL}};

#if defined(__GNUC__) || defined(__clang__)
static int fail(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
#endif
static int fail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  size_t i;
  if (!err || !n) return -1;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  for (i = 0; err[i]; ++i) /* one line, printable: bytes from the file may be quoted */
    if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] == 0x7F) err[i] = '?';
  return -1;
}

typedef struct {
  const char *p, *end;
} cur;

static void ws(cur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) ++c->p;
}

static int peek(const cur *c, char ch) { return c->p < c->end && *c->p == ch; }

/* A Python string literal without escapes, at most cap-1 bytes. 0, -1 = not a string, -2 = too long or
   escaped, -3 = unterminated. */
static int str(cur *c, char *out, size_t cap) {
  const char *close, *b;
  size_t n;
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return -1;
  close = (const char *)memchr(c->p + 1, *c->p, (size_t)(c->end - c->p - 1));
  if (!close) return -3;
  b = c->p + 1;
  n = (size_t)(close - b);
  if (n + 1 > cap || memchr(b, '\\', n)) return -2;
  memcpy(out, b, n);
  out[n] = 0;
  c->p = close + 1;
  return 0;
}

static int word(cur *c, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return -1;
  c->p += n;
  return 0;
}

/* A non-negative decimal integer (Python 2 'L' suffix allowed), at most 18 digits (< 2^63). */
static int integer(cur *c, int64_t *v) {
  int digits = 0;
  const char *start = c->p;
  *v = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    if (++digits > 18) return -1;
    *v = *v * 10 + (*c->p++ - '0');
  }
  if (!digits || (digits > 1 && *start == '0')) return -1;
  if (peek(c, 'L')) ++c->p;
  return 0;
}

static int parse_descr(cur *c, npy_header *h, char *err, size_t errlen) {
  char val[32];
  const char *t;
  char order = 0, kind;
  unsigned size = 0;
  size_t k;
  int r;
  if (peek(c, '[') || peek(c, '{')) return fail(err, errlen, "unsupported dtype: structured (record) arrays are not supported");
  r = str(c, val, sizeof val);
  if (r == -1) return fail(err, errlen, "'descr' is not a string");
  if (r == -2) return fail(err, errlen, "unsupported dtype (descr too long or escaped)");
  if (r == -3) return fail(err, errlen, "unterminated string in NPY header");
  t = val;
  if (*t == '<' || *t == '>' || *t == '|' || *t == '=') order = *t++;
  kind = *t;
  if (kind) ++t;
  if (*t >= '1' && *t <= '9' && t[1] == 0) size = (unsigned)(*t - '0');
  h->dtype = CKH_DT_INVALID;
  for (k = 0; k < sizeof kTypes / sizeof kTypes[0]; ++k)
    if (kTypes[k].kind == kind && kTypes[k].size == size) h->dtype = kTypes[k].dt;
  if (h->dtype == CKH_DT_INVALID || order == 0) return fail(err, errlen, "unsupported dtype '%s'", val);
  if (size > 1 && order == '>') return fail(err, errlen, "big-endian not supported (descr '%s')", val);
  if (size > 1 && order == '|') return fail(err, errlen, "unsupported dtype '%s' (multi-byte type without byte order)", val);
  return 0;
}

static int parse_shape(cur *c, npy_header *h, char *err, size_t errlen) {
  int trailing_comma = 0;
  if (!peek(c, '(')) return fail(err, errlen, "'shape' is not a tuple");
  ++c->p;
  for (;;) {
    int64_t v;
    ws(c);
    if (peek(c, ')')) {
      ++c->p;
      break;
    }
    if (h->ndim >= CKH_MAX_DIMS) return fail(err, errlen, "shape has more than %d dimensions", CKH_MAX_DIMS);
    if (integer(c, &v) != 0) return fail(err, errlen, "bad shape entry (not a non-negative integer below 10^18)");
    h->shape[h->ndim++] = v;
    ws(c);
    trailing_comma = 0;
    if (peek(c, ',')) {
      ++c->p;
      trailing_comma = 1;
    } else if (!peek(c, ')')) {
      return fail(err, errlen, "bad shape tuple");
    }
  }
  if (h->ndim == 1 && !trailing_comma) return fail(err, errlen, "'shape' is not a tuple (one dimension needs a trailing comma)");
  return 0;
}

int npy_parse_header(const unsigned char *buf, size_t avail, uint64_t file_size, npy_header *h, char *err,
                     size_t errlen) {
  uint64_t hlen, start, item, need, i;
  cur c;
  int have_descr = 0, have_fo = 0, have_shape = 0;
  memset(h, 0, sizeof *h);
  h->dtype = CKH_DT_INVALID;
  if (avail > file_size) avail = (size_t)file_size;
  if (avail < 6 || memcmp(buf, "\x93NUMPY", 6) != 0) return fail(err, errlen, "not an NPY file (bad magic)");
  if (avail < 10) return fail(err, errlen, "truncated NPY header (file is %llu bytes)", (unsigned long long)file_size);
  if ((buf[6] != 1 && buf[6] != 2 && buf[6] != 3) || buf[7] != 0)
    return fail(err, errlen, "unsupported NPY version %u.%u", (unsigned)buf[6], (unsigned)buf[7]);
  h->version = buf[6];
  if (buf[6] == 1) {
    hlen = (uint64_t)buf[8] | ((uint64_t)buf[9] << 8);
    start = 10;
  } else {
    if (avail < 12) return fail(err, errlen, "truncated NPY header (file is %llu bytes)", (unsigned long long)file_size);
    hlen = (uint64_t)buf[8] | ((uint64_t)buf[9] << 8) | ((uint64_t)buf[10] << 16) | ((uint64_t)buf[11] << 24);
    start = 12;
  }
  if (hlen > NPY_MAX_HEADER)
    return fail(err, errlen, "NPY header length %llu exceeds %u bytes", (unsigned long long)hlen, NPY_MAX_HEADER);
  if (start + hlen > file_size)
    return fail(err, errlen, "NPY header length %llu runs past the end of the file (%llu bytes)",
                (unsigned long long)hlen, (unsigned long long)file_size);
  if (start + hlen > avail) return fail(err, errlen, "NPY header not fully read (internal)");

  c.p = (const char *)buf + start;
  c.end = c.p + hlen;
  ws(&c);
  if (!peek(&c, '{')) return fail(err, errlen, "NPY header is not a dict literal");
  ++c.p;
  for (;;) {
    char key[32];
    int r;
    ws(&c);
    if (peek(&c, '}')) {
      ++c.p;
      break;
    }
    r = str(&c, key, sizeof key);
    if (r == -3) return fail(err, errlen, "unterminated string in NPY header");
    if (r != 0) return fail(err, errlen, "bad key in NPY header dict");
    ws(&c);
    if (!peek(&c, ':')) return fail(err, errlen, "expected ':' after '%s' in NPY header", key);
    ++c.p;
    ws(&c);
    if (strcmp(key, "descr") == 0) {
      if (have_descr++) return fail(err, errlen, "duplicate key 'descr' in NPY header");
      if (parse_descr(&c, h, err, errlen) != 0) return -1;
    } else if (strcmp(key, "fortran_order") == 0) {
      if (have_fo++) return fail(err, errlen, "duplicate key 'fortran_order' in NPY header");
      if (word(&c, "True") == 0) h->fortran_order = 1;
      else if (word(&c, "False") == 0) h->fortran_order = 0;
      else return fail(err, errlen, "'fortran_order' is not True or False");
    } else if (strcmp(key, "shape") == 0) {
      if (have_shape++) return fail(err, errlen, "duplicate key 'shape' in NPY header");
      if (parse_shape(&c, h, err, errlen) != 0) return -1;
    } else {
      return fail(err, errlen, "unexpected key '%s' in NPY header", key);
    }
    ws(&c);
    if (peek(&c, ',')) ++c.p;
    else if (!peek(&c, '}')) return fail(err, errlen, "expected ',' or '}' in NPY header dict");
  }
  ws(&c);
  if (c.p != c.end) return fail(err, errlen, "unexpected characters after the NPY header dict");
  if (!have_descr) return fail(err, errlen, "NPY header lacks 'descr'");
  if (!have_fo) return fail(err, errlen, "NPY header lacks 'fortran_order'");
  if (!have_shape) return fail(err, errlen, "NPY header lacks 'shape'");

  /* The product of the dims (zeros counted as 1, so Fortran strides fit too) times the item size must
     fit in int64; an array with a zero dim then has no elements. */
  item = ckh_dtype_size(h->dtype);
  h->numel = 1;
  for (i = 0; i < h->ndim; ++i) {
    const uint64_t d = h->shape[i] ? (uint64_t)h->shape[i] : 1;
    if (h->numel > (uint64_t)INT64_MAX / item / d) return fail(err, errlen, "shape is too large (byte size overflows)");
    h->numel *= d;
  }
  for (i = 0; i < h->ndim; ++i)
    if (h->shape[i] == 0) h->numel = 0;
  need = h->numel * item;
  h->data_offset = start + hlen;
  h->data_size = file_size - h->data_offset;
  if (need != h->data_size)
    return fail(err, errlen, "shape and dtype need %llu bytes of data, the file has %llu", (unsigned long long)need,
                (unsigned long long)h->data_size);
  return 0;
}

void npy_fortran_strides(const npy_header *h, int64_t *stride) {
  int64_t acc = 1;
  uint32_t d;
  for (d = 0; d < CKH_MAX_DIMS; ++d) stride[d] = 0;
  for (d = 0; d < h->ndim; ++d) {
    stride[d] = acc;
    acc *= h->shape[d] ? h->shape[d] : 1; /* fits: checked by npy_parse_header */
  }
}

const char *npy_descr(ckh_dtype dt) {
  switch (dt) {
    case CKH_DT_F16: return "<f2";
    case CKH_DT_F32: return "<f4";
    case CKH_DT_F64: return "<f8";
    case CKH_DT_I8: return "|i1";
    case CKH_DT_I16: return "<i2";
    case CKH_DT_I32: return "<i4";
    case CKH_DT_I64: return "<i8";
    case CKH_DT_U8: return "|u1";
    case CKH_DT_U16: return "<u2";
    case CKH_DT_U32: return "<u4";
    case CKH_DT_U64: return "<u8";
    case CKH_DT_BOOL: return "|b1";
    default: return NULL;
  }
}

int npy_format_header(ckh_dtype dtype, uint32_t ndim, const int64_t *shape, char *out, size_t cap, size_t *len,
                      char *err, size_t errlen) {
  const char *descr = npy_descr(dtype);
  char dict[512];
  size_t n, total;
  uint32_t i;
  if (!descr) return fail(err, errlen, "NumPy has no dtype for ckhost dtype %d", (int)dtype);
  if (ndim > CKH_MAX_DIMS) return fail(err, errlen, "more than %d dimensions", CKH_MAX_DIMS);
  n = (size_t)snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (i = 0; i < ndim; ++i) {
    if (shape[i] < 0) return fail(err, errlen, "negative dimension");
    n += (size_t)snprintf(dict + n, sizeof dict - n, i ? ", %lld" : "%lld", (long long)shape[i]);
  }
  n += (size_t)snprintf(dict + n, sizeof dict - n, ndim == 1 ? ",), }" : "), }");
  total = (10 + n + 1 + 63) / 64 * 64; /* magic..length, dict, '\n', padded to 64 */
  if (total > cap || total - 10 > 65535) return fail(err, errlen, "NPY header too long");
  memcpy(out, "\x93NUMPY\x01\x00", 8);
  out[8] = (char)((total - 10) & 0xFF);
  out[9] = (char)((total - 10) >> 8);
  memcpy(out + 10, dict, n);
  memset(out + 10 + n, ' ', total - 10 - n - 1);
  out[total - 1] = '\n';
  *len = total;
  return 0;
}
