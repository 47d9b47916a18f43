/* npy_json.h — the little JSON the npy plugin needs, in C99: a strict RFC 8259 validator (for a
   directory's config.json, which is embedded verbatim into the reader's metadata), and a reader of
   members, array elements and strings (for the metadata the host hands the writer). Bounded: depth is
   limited, every read stays inside [s, s + n). No allocation. */
#ifndef CKH_NPY_JSON_H
#define CKH_NPY_JSON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NPY_JSON_MAX_DEPTH 256

/* 0 when s[0..n) is exactly one JSON value (surrounding whitespace allowed) with valid UTF-8 strings,
   else -1 with a short reason and the byte offset in err. */
int npy_json_validate(const char *s, size_t n, char *err, size_t errlen);

/* Span of one value inside a document that is already known to be valid JSON. */
typedef struct npy_json_span {
  const char *p;
  size_t n;
} npy_json_span;

/* 1 when the span (after whitespace) starts with c ('{', '[', '"', 't', ...). */
int npy_json_is(npy_json_span v, char c);

/* Value of member `key` of the object `obj`: 0 and *out, or -1 when obj is not an object or has no such
   member. Keys are compared after unescaping. */
int npy_json_member(npy_json_span obj, const char *key, npy_json_span *out);

/* Iterates the array `arr`: *pos starts at 0; returns 1 and the next element in *out, 0 at the end, -1
   when arr is not an array. */
int npy_json_next(npy_json_span arr, size_t *pos, npy_json_span *out);

/* Unescapes the string value v into out (NUL-terminated, \uXXXX as UTF-8). 0, or -1 when v is not a
   string, holds a NUL character, or does not fit in cap bytes. */
int npy_json_string(npy_json_span v, char *out, size_t cap);

/* Appends s[0..n) to out (cap bytes) as a JSON string literal, with invalid UTF-8 bytes replaced by
   U+FFFD. Returns the length the literal needs (excluding the NUL), like snprintf. */
size_t npy_json_quote(const char *s, size_t n, char *out, size_t cap);

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
int npy_utf8_valid(const unsigned char *s, size_t n);

#ifdef __cplusplus
}
#endif

#endif
