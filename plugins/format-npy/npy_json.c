/* npy_json.c — see npy_json.h. */
#include "npy_json.h"

#include <stdio.h>
#include <string.h>

/* ---- UTF-8 ---------------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF; /* no overlongs, no surrogates */
    return n >= 3 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF; /* <= U+10FFFF */
    return n >= 4 && s[1] >= lo && s[1] <= hi && (s[2] & 0xC0) == 0x80 && (s[3] & 0xC0) == 0x80 ? 4 : 0;
  }
  return 0;
}

int npy_utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t k = utf8_seq(s + i, n - i);
    if (!k) return 0;
    i += k;
  }
  return 1;
}

/* ---- validator ------------------------------------------------------------------------------------ */
typedef struct {
  const unsigned char *s, *p, *end;
  int depth;
  const char *why;
} vcur;

static void v_ws(vcur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) ++c->p;
}

static int v_fail(vcur *c, const char *why) {
  if (!c->why) c->why = why;
  return -1;
}

static int hex4(const unsigned char *p, unsigned *v) {
  int i;
  *v = 0;
  for (i = 0; i < 4; ++i) {
    unsigned ch = p[i], d;
    if (ch >= '0' && ch <= '9') d = ch - '0';
    else if (ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
    else if (ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
    else return -1;
    *v = *v * 16 + d;
  }
  return 0;
}

static int v_string(vcur *c) {
  ++c->p; /* opening quote */
  while (c->p < c->end) {
    unsigned ch = *c->p;
    if (ch == '"') {
      ++c->p;
      return 0;
    }
    if (ch < 0x20) return v_fail(c, "control character in string");
    if (ch == '\\') {
      if (c->end - c->p < 2) break;
      ch = c->p[1];
      if (ch == 'u') {
        unsigned u, lo;
        if (c->end - c->p < 6 || hex4(c->p + 2, &u) != 0) return v_fail(c, "bad \\u escape");
        c->p += 6;
        if (u >= 0xDC00 && u <= 0xDFFF) return v_fail(c, "lone low surrogate");
        if (u >= 0xD800 && u <= 0xDBFF) {
          if (c->end - c->p < 6 || c->p[0] != '\\' || c->p[1] != 'u' || hex4(c->p + 2, &lo) != 0 || lo < 0xDC00 ||
              lo > 0xDFFF)
            return v_fail(c, "lone high surrogate");
          c->p += 6;
        }
        continue;
      }
      if (!strchr("\"\\/bfnrt", (int)ch) || ch == 0) return v_fail(c, "bad escape");
      c->p += 2;
      continue;
    }
    {
      size_t k = utf8_seq(c->p, (size_t)(c->end - c->p));
      if (!k) return v_fail(c, "invalid UTF-8");
      c->p += k;
    }
  }
  return v_fail(c, "unterminated string");
}

static int digits(vcur *c) {
  const unsigned char *b = c->p;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') ++c->p;
  return c->p > b ? 0 : -1;
}

static int v_number(vcur *c) {
  if (c->p < c->end && *c->p == '-') ++c->p;
  if (c->p < c->end && *c->p == '0') ++c->p;
  else if (digits(c) != 0) return v_fail(c, "bad number");
  if (c->p < c->end && *c->p == '.') {
    ++c->p;
    if (digits(c) != 0) return v_fail(c, "bad number");
  }
  if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
    ++c->p;
    if (c->p < c->end && (*c->p == '+' || *c->p == '-')) ++c->p;
    if (digits(c) != 0) return v_fail(c, "bad number");
  }
  return 0;
}

static int v_value(vcur *c);

static int v_container(vcur *c, int object) {
  const unsigned char close = object ? '}' : ']';
  if (++c->depth > NPY_JSON_MAX_DEPTH) return v_fail(c, "nested too deeply");
  ++c->p;
  v_ws(c);
  if (c->p < c->end && *c->p == close) {
    ++c->p;
    --c->depth;
    return 0;
  }
  for (;;) {
    v_ws(c);
    if (object) {
      if (c->p >= c->end || *c->p != '"') return v_fail(c, "expected a member name");
      if (v_string(c) != 0) return -1;
      v_ws(c);
      if (c->p >= c->end || *c->p != ':') return v_fail(c, "expected ':'");
      ++c->p;
    }
    if (v_value(c) != 0) return -1;
    v_ws(c);
    if (c->p < c->end && *c->p == ',') {
      ++c->p;
      continue;
    }
    if (c->p < c->end && *c->p == close) {
      ++c->p;
      --c->depth;
      return 0;
    }
    return v_fail(c, object ? "expected ',' or '}'" : "expected ',' or ']'");
  }
}

static int v_lit(vcur *c, const char *w) {
  size_t n = strlen(w);
  if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return v_fail(c, "unexpected character");
  c->p += n;
  return 0;
}

static int v_value(vcur *c) {
  v_ws(c);
  if (c->p >= c->end) return v_fail(c, "unexpected end");
  switch (*c->p) {
    case '{': return v_container(c, 1);
    case '[': return v_container(c, 0);
    case '"': return v_string(c);
    case 't': return v_lit(c, "true");
    case 'f': return v_lit(c, "false");
    case 'n': return v_lit(c, "null");
    default:
      if (*c->p == '-' || (*c->p >= '0' && *c->p <= '9')) return v_number(c);
      return v_fail(c, "unexpected character");
  }
}

int npy_json_validate(const char *s, size_t n, char *err, size_t errlen) {
  vcur c;
  c.s = c.p = (const unsigned char *)s;
  c.end = c.s + n;
  c.depth = 0;
  c.why = NULL;
  if (v_value(&c) == 0) {
    v_ws(&c);
    if (c.p == c.end) return 0;
    c.why = "trailing characters";
  }
  snprintf(err, errlen, "%s at byte %lu", c.why ? c.why : "invalid", (unsigned long)(c.p - c.s));
  return -1;
}

/* ---- reading a valid document --------------------------------------------------------------------- */
typedef struct {
  const char *p, *end;
} rcur;

static void r_ws(rcur *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r')) ++c->p;
}

/* Skips one value (the document is valid). */
static void r_skip(rcur *c) {
  int depth = 0;
  r_ws(c);
  do {
    if (c->p >= c->end) return;
    if (*c->p == '"') {
      ++c->p;
      while (c->p < c->end && *c->p != '"') c->p += *c->p == '\\' ? 2 : 1;
      if (c->p < c->end) ++c->p;
    } else if (*c->p == '{' || *c->p == '[') {
      ++depth;
      ++c->p;
    } else if (*c->p == '}' || *c->p == ']') {
      --depth;
      ++c->p;
    } else if (depth == 0) {
      while (c->p < c->end && !strchr(",}] \t\r\n", *c->p)) ++c->p; /* number or literal */
    } else {
      ++c->p;
    }
  } while (depth > 0);
}

int npy_json_is(npy_json_span v, char ch) {
  rcur c;
  c.p = v.p;
  c.end = v.p + v.n;
  r_ws(&c);
  return c.p < c.end && *c.p == ch;
}

static void put_utf8(char *out, size_t cap, size_t *k, unsigned u, int *overflow) {
  unsigned char b[4];
  size_t n, i;
  if (u < 0x80) { b[0] = (unsigned char)u; n = 1; }
  else if (u < 0x800) { b[0] = (unsigned char)(0xC0 | (u >> 6)); b[1] = (unsigned char)(0x80 | (u & 0x3F)); n = 2; }
  else if (u < 0x10000) {
    b[0] = (unsigned char)(0xE0 | (u >> 12)); b[1] = (unsigned char)(0x80 | ((u >> 6) & 0x3F));
    b[2] = (unsigned char)(0x80 | (u & 0x3F)); n = 3;
  } else {
    b[0] = (unsigned char)(0xF0 | (u >> 18)); b[1] = (unsigned char)(0x80 | ((u >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((u >> 6) & 0x3F)); b[3] = (unsigned char)(0x80 | (u & 0x3F)); n = 4;
  }
  for (i = 0; i < n; ++i) {
    if (*k + 1 >= cap) {
      *overflow = 1;
      return;
    }
    out[(*k)++] = (char)b[i];
  }
}

int npy_json_string(npy_json_span v, char *out, size_t cap) {
  rcur c;
  size_t k = 0;
  int overflow = 0;
  if (cap == 0) return -1;
  c.p = v.p;
  c.end = v.p + v.n;
  r_ws(&c);
  if (c.p >= c.end || *c.p != '"') return -1;
  ++c.p;
  while (c.p < c.end && *c.p != '"' && !overflow) {
    unsigned u;
    if (*c.p != '\\') {
      u = (unsigned char)*c.p++;
      if (k + 1 >= cap) return -1;
      out[k++] = (char)u;
      continue;
    }
    if (c.end - c.p < 2) return -1;
    switch (c.p[1]) {
      case 'b': u = '\b'; break;
      case 'f': u = '\f'; break;
      case 'n': u = '\n'; break;
      case 'r': u = '\r'; break;
      case 't': u = '\t'; break;
      case 'u':
        if (c.end - c.p < 6 || hex4((const unsigned char *)c.p + 2, &u) != 0) return -1;
        if (u >= 0xD800 && u <= 0xDBFF) {
          unsigned lo;
          if (c.end - c.p < 12 || c.p[6] != '\\' || c.p[7] != 'u' || hex4((const unsigned char *)c.p + 8, &lo) != 0)
            return -1;
          u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
          c.p += 6;
        }
        c.p += 4; /* plus the 2 below */
        break;
      default: u = (unsigned char)c.p[1]; break;
    }
    c.p += 2;
    if (u == 0) return -1;
    put_utf8(out, cap, &k, u, &overflow);
  }
  if (overflow || c.p >= c.end) return -1;
  out[k] = 0;
  return 0;
}

int npy_json_member(npy_json_span obj, const char *key, npy_json_span *out) {
  rcur c;
  char name[256];
  c.p = obj.p;
  c.end = obj.p + obj.n;
  r_ws(&c);
  if (c.p >= c.end || *c.p != '{') return -1;
  ++c.p;
  for (;;) {
    npy_json_span ks;
    const char *vs;
    int match;
    r_ws(&c);
    if (c.p >= c.end || *c.p != '"') return -1; /* '}' or end: not found */
    ks.p = c.p;
    r_skip(&c);
    ks.n = (size_t)(c.p - ks.p);
    match = npy_json_string(ks, name, sizeof name) == 0 && strcmp(name, key) == 0;
    r_ws(&c);
    if (c.p >= c.end || *c.p != ':') return -1;
    ++c.p;
    r_ws(&c);
    vs = c.p;
    r_skip(&c);
    if (match) {
      out->p = vs;
      out->n = (size_t)(c.p - vs);
      return 0;
    }
    r_ws(&c);
    if (c.p < c.end && *c.p == ',') ++c.p;
    else return -1;
  }
}

int npy_json_next(npy_json_span arr, size_t *pos, npy_json_span *out) {
  rcur c;
  c.p = arr.p;
  c.end = arr.p + arr.n;
  r_ws(&c);
  if (c.p >= c.end || *c.p != '[') return -1;
  if (*pos == 0) *pos = (size_t)(c.p + 1 - arr.p);
  c.p = arr.p + *pos;
  r_ws(&c);
  if (c.p < c.end && *c.p == ',') ++c.p;
  r_ws(&c);
  if (c.p >= c.end || *c.p == ']') return 0;
  out->p = c.p;
  r_skip(&c);
  out->n = (size_t)(c.p - out->p);
  *pos = (size_t)(c.p - arr.p);
  return 1;
}

size_t npy_json_quote(const char *s, size_t n, char *out, size_t cap) {
  size_t i = 0, k = 0;
#define PUT(ch)                             \
  do {                                      \
    if (k + 1 < cap) out[k] = (char)(ch);   \
    ++k;                                    \
  } while (0)
  PUT('"');
  while (i < n) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') {
      PUT('\\');
      PUT(ch);
      ++i;
    } else if (ch < 0x20) {
      char e[8];
      int j;
      snprintf(e, sizeof e, "\\u%04x", ch);
      for (j = 0; j < 6; ++j) PUT(e[j]);
      ++i;
    } else {
      size_t len = utf8_seq((const unsigned char *)s + i, n - i), j;
      if (!len) {
        const char *rep = "\\ufffd";
        for (j = 0; j < 6; ++j) PUT(rep[j]);
        ++i;
      } else {
        for (j = 0; j < len; ++j) PUT(s[i + j]);
        i += len;
      }
    }
  }
  PUT('"');
#undef PUT
  if (cap) out[k < cap ? k : cap - 1] = 0;
  return k;
}
