/* npy.c — a directory of NumPy .npy files <-> tensors. Written in plain C99 to show that the SDK is
   usable from C: no C++ runtime, memory via malloc/free, errors via host->set_error.

   Reader "npy": every top-level <name>.npy of a directory is tensor <name> (one piece: contiguous for C
   order, column-major strides for fortran_order=True). config.json, when present, is the model config;
   the other regular files are side files carried to the output. Subdirectories are not read.
   Writer "npy": one <name>.npy (v1.0 header, C order) per tensor, plus the side files and config.json.
   See npy_header.h for the file format. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ckhost/ckh.h>

#include "npy_header.h"
#include "npy_json.h"

#define NPY_MAX_CONFIG (16u << 20) /* config.json */
#define NPY_NAME_MAX 255           /* bytes of a file name */

#if defined(__GNUC__) || defined(__clang__)
#define NPY_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define NPY_PRINTF(f, a)
#endif

CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void);

static const ckh_host_t *g_host;

static ckh_status failf(ckh_status code, const char *fmt, ...) NPY_PRINTF(2, 3);
static ckh_status failf(ckh_status code, const char *fmt, ...) {
  char msg[8192];
  va_list ap;
  size_t i;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  for (i = 0; msg[i]; ++i) /* one line */
    if (msg[i] == '\n' || msg[i] == '\r') msg[i] = ' ';
  if (g_host) g_host->set_error(g_host, code, msg);
  return code;
}

static int has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

/* ---- growable string ------------------------------------------------------------------------------ */
typedef struct {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *s, const char *d, size_t n) {
  if (s->oom) return;
  if (s->n + n + 1 > s->cap) {
    size_t c = s->cap ? s->cap : 256;
    char *q;
    while (c < s->n + n + 1) c *= 2;
    q = (char *)realloc(s->p, c);
    if (!q) {
      s->oom = 1;
      return;
    }
    s->p = q;
    s->cap = c;
  }
  memcpy(s->p + s->n, d, n);
  s->n += n;
  s->p[s->n] = 0;
}

static void sb_str(sbuf *s, const char *d) { sb_put(s, d, strlen(d)); }

static void sb_quote(sbuf *s, const char *d) {
  size_t n = strlen(d), need = npy_json_quote(d, n, NULL, 0);
  char *q = (char *)malloc(need + 1);
  if (!q) {
    s->oom = 1;
    return;
  }
  npy_json_quote(d, n, q, need + 1);
  sb_put(s, q, need);
  free(q);
}

/* ---- directory scan ------------------------------------------------------------------------------- */
typedef struct {
  char **v;
  uint32_t n, cap;
} slist;

static int sl_add(slist *l, const char *s) {
  char *d;
  if (l->n == l->cap) {
    uint32_t c = l->cap ? l->cap * 2 : 16;
    char **q = (char **)realloc(l->v, c * sizeof *q);
    if (!q) return -1;
    l->v = q;
    l->cap = c;
  }
  d = (char *)malloc(strlen(s) + 1);
  if (!d) return -1;
  strcpy(d, s);
  l->v[l->n++] = d;
  return 0;
}

static void sl_free(slist *l) {
  uint32_t i;
  for (i = 0; i < l->n; ++i) free(l->v[i]);
  free(l->v);
  l->v = NULL;
  l->n = l->cap = 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
  slist npy;         /* regular files *.npy (tensors) */
  slist side;        /* other regular files */
  slist dirs;        /* subdirectories (not read) */
  uint32_t safetensors;
} dir_scan;

static void scan_free(dir_scan *s) {
  sl_free(&s->npy);
  sl_free(&s->side);
  sl_free(&s->dirs);
}

/* 0, or -1 with errno set (cannot open) / ENOMEM. Hidden entries are not listed. */
static int scan_dir(const char *dir, dir_scan *s) {
  DIR *d = opendir(dir);
  struct dirent *e;
  int rc = 0;
  memset(s, 0, sizeof *s);
  if (!d) return -1;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    char path[8192];
    struct stat st;
    if (e->d_name[0] == '.') continue;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) continue;
    if (stat(path, &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) rc = sl_add(&s->dirs, e->d_name);
    else if (!S_ISREG(st.st_mode)) continue;
    else if (has_suffix(e->d_name, ".npy")) rc = sl_add(&s->npy, e->d_name);
    else {
      if (has_suffix(e->d_name, ".safetensors")) ++s->safetensors;
      rc = sl_add(&s->side, e->d_name);
    }
  }
  closedir(d);
  if (rc != 0) {
    scan_free(s);
    errno = ENOMEM;
    return -1;
  }
  if (s->npy.n) qsort(s->npy.v, s->npy.n, sizeof(char *), cmp_str);
  if (s->side.n) qsort(s->side.v, s->side.n, sizeof(char *), cmp_str);
  if (s->dirs.n) qsort(s->dirs.v, s->dirs.n, sizeof(char *), cmp_str);
  return 0;
}

/* ---- reader --------------------------------------------------------------------------------------- */
typedef struct {
  char *name;
  npy_header h;
} npy_tensor;

typedef struct {
  ckh_reader_t vt;
  char **files;        /* absolute path per tensor (tensor i lives in file i) */
  npy_tensor *tensors;
  uint32_t count;
  char *meta;
} npy_reader;

static npy_reader *RD(const ckh_reader_t *r) { return (npy_reader *)r->impl; }

static void free_reader(npy_reader *x) {
  uint32_t i;
  if (!x) return;
  for (i = 0; i < x->count; ++i) {
    free(x->files[i]);
    free(x->tensors[i].name);
  }
  free(x->files);
  free(x->tensors);
  free(x->meta);
  free(x);
}

static void r_destroy(ckh_reader_t *r) {
  if (r) free_reader(RD(r));
}

static uint32_t r_file_count(const ckh_reader_t *r) { return RD(r)->count; }
static const char *r_file_path(const ckh_reader_t *r, uint32_t i) { return i < RD(r)->count ? RD(r)->files[i] : NULL; }
static uint64_t r_tensor_count(const ckh_reader_t *r) { return RD(r)->count; }

static ckh_status r_tensor_info(const ckh_reader_t *r, uint64_t i, ckh_tensor_info_t *t) {
  const npy_tensor *x;
  uint32_t d, sz;
  if (!t || t->struct_size < sizeof *t) return failf(CKH_E_ABI, "npy: tensor_info needs a ckh_tensor_info_t of %u bytes", (unsigned)sizeof *t);
  if (i >= RD(r)->count) return failf(CKH_E_NOT_FOUND, "npy: tensor index %llu out of range", (unsigned long long)i);
  x = &RD(r)->tensors[i];
  sz = t->struct_size;
  memset(t, 0, sizeof *t);
  t->struct_size = sz;
  t->name = x->name;
  t->dtype = x->h.dtype;
  t->ndim = x->h.ndim;
  for (d = 0; d < x->h.ndim; ++d) t->shape[d] = x->h.shape[d];
  return CKH_OK;
}

static uint32_t r_piece_count(const ckh_reader_t *r, uint64_t i) { return i < RD(r)->count ? 1u : 0u; }

static ckh_status r_piece(const ckh_reader_t *r, uint64_t i, uint32_t j, ckh_piece_t *p) {
  const npy_tensor *x;
  uint32_t d, sz;
  if (!p || p->struct_size < sizeof *p) return failf(CKH_E_ABI, "npy: piece needs a ckh_piece_t of %u bytes", (unsigned)sizeof *p);
  if (i >= RD(r)->count || j != 0)
    return failf(CKH_E_NOT_FOUND, "npy: piece %u of tensor %llu out of range", (unsigned)j, (unsigned long long)i);
  x = &RD(r)->tensors[i];
  sz = p->struct_size;
  memset(p, 0, sizeof *p);
  p->struct_size = sz;
  p->file = (uint32_t)i;
  p->byte_offset = x->h.data_offset;
  for (d = 0; d < x->h.ndim; ++d) p->size[d] = x->h.shape[d];
  /* Column-major for fortran_order (the first index varies fastest); for ndim <= 1 that is contiguous. */
  if (x->h.fortran_order && x->h.ndim > 1) npy_fortran_strides(&x->h, p->stride);
  return CKH_OK;
}

static const char *r_metadata(const ckh_reader_t *r) { return RD(r)->meta; }

static int32_t r_probe(const ckh_reader_class_t *cls, const char *path) {
  dir_scan s;
  struct stat st;
  int32_t score;
  (void)cls;
  if (!path || stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) return 0;
  if (scan_dir(path, &s) != 0) return 0;
  score = s.npy.n > 0 && s.safetensors == 0 ? 60 : 0;
  scan_free(&s);
  return score;
}

/* Reads all of a regular file of at most `limit` bytes. NULL with errno (EFBIG when too large). */
static char *read_all(const char *path, size_t limit, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  char *buf = NULL;
  size_t got = 0;
  if (fd < 0) return NULL;
  if (fstat(fd, &st) != 0) goto out;
  if ((uint64_t)st.st_size > limit) {
    errno = EFBIG;
    goto out;
  }
  buf = (char *)malloc((size_t)st.st_size + 1);
  if (!buf) goto out;
  while (got < (size_t)st.st_size) {
    ssize_t k = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      if (k == 0) errno = EIO;
      free(buf);
      buf = NULL;
      goto out;
    }
    got += (size_t)k;
  }
  buf[got] = 0;
  *len = got;
out:
  close(fd);
  return buf;
}

/* Reads up to n bytes at offset 0 (fewer only at the end of the file). -1 with errno. */
static ssize_t read_head(int fd, unsigned char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t k = pread(fd, buf + got, n - got, (off_t)got);
    if (k < 0 && errno == EINTR) continue;
    if (k < 0) return -1;
    if (k == 0) break;
    got += (size_t)k;
  }
  return (ssize_t)got;
}

/* Parses one .npy file's header into t. */
static ckh_status open_tensor(const char *fp, unsigned char *head, npy_tensor *t) {
  char err[512];
  struct stat fs;
  ssize_t got;
  int fd = open(fp, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return failf(CKH_E_IO, "%s: cannot open: %s", fp, strerror(errno));
  if (fstat(fd, &fs) != 0) {
    int e = errno;
    close(fd);
    return failf(CKH_E_IO, "%s: cannot stat: %s", fp, strerror(e));
  }
  got = read_head(fd, head, NPY_PREFIX_MAX + NPY_MAX_HEADER);
  if (got < 0) {
    int e = errno;
    close(fd);
    return failf(CKH_E_IO, "%s: cannot read: %s", fp, strerror(e));
  }
  close(fd);
  if (npy_parse_header(head, (size_t)got, (uint64_t)fs.st_size, &t->h, err, sizeof err) != 0)
    return failf(CKH_E_FORMAT, "%s: %s", fp, err);
  return CKH_OK;
}

/* config.json of the directory: must be a JSON object (it is embedded verbatim into the metadata). */
static ckh_status load_config(const char *dir, sbuf *meta) {
  char cp[8192], err[128];
  size_t len = 0, i = 0;
  char *cfg;
  snprintf(cp, sizeof cp, "%s/config.json", dir);
  cfg = read_all(cp, NPY_MAX_CONFIG, &len);
  if (!cfg) {
    if (errno == EFBIG) return failf(CKH_E_FORMAT, "%s: larger than %u bytes", cp, NPY_MAX_CONFIG);
    return failf(CKH_E_IO, "%s: cannot read: %s", cp, strerror(errno));
  }
  if (npy_json_validate(cfg, len, err, sizeof err) != 0) {
    free(cfg);
    return failf(CKH_E_FORMAT, "%s: not valid JSON (%s)", cp, err);
  }
  while (i < len && (cfg[i] == ' ' || cfg[i] == '\t' || cfg[i] == '\n' || cfg[i] == '\r')) ++i;
  if (cfg[i] != '{') {
    free(cfg);
    return failf(CKH_E_FORMAT, "%s: not a JSON object", cp);
  }
  sb_put(meta, cfg + i, len - i);
  free(cfg);
  return CKH_OK;
}

static ckh_status build_metadata(const char *dir, const dir_scan *s, char **out) {
  sbuf m = {0};
  uint32_t i;
  int has_config = 0, nside = 0, nskip = 0;
  ckh_status st = CKH_OK;
  *out = NULL;
  for (i = 0; i < s->side.n; ++i) has_config |= strcmp(s->side.v[i], "config.json") == 0;
  sb_str(&m, "{\"format\":\"npy\",\"layout\":\"hf\",\"config\":");
  if (has_config) st = load_config(dir, &m);
  else sb_str(&m, "null");
  if (st != CKH_OK) {
    free(m.p);
    return st;
  }
  sb_str(&m, ",\"side_files\":[");
  for (i = 0; i < s->side.n; ++i) {
    char sp[8192];
    const char *n = s->side.v[i];
    if (!npy_utf8_valid((const unsigned char *)n, strlen(n))) continue; /* listed under "skipped" */
    snprintf(sp, sizeof sp, "%s/%s", dir, n);
    sb_str(&m, nside++ ? ",{\"name\":" : "{\"name\":");
    sb_quote(&m, n);
    sb_str(&m, ",\"path\":");
    sb_quote(&m, sp);
    sb_str(&m, "}");
  }
  sb_str(&m, "],\"skipped\":[");
  for (i = 0; i < s->side.n; ++i) {
    const char *n = s->side.v[i];
    if (npy_utf8_valid((const unsigned char *)n, strlen(n))) continue;
    sb_str(&m, nskip++ ? ",{\"name\":" : "{\"name\":");
    sb_quote(&m, n);
    sb_str(&m, ",\"reason\":\"file name is not UTF-8\"}");
  }
  for (i = 0; i < s->dirs.n; ++i) {
    sb_str(&m, nskip++ ? ",{\"name\":" : "{\"name\":");
    sb_quote(&m, s->dirs.v[i]);
    sb_str(&m, ",\"reason\":\"directory (the npy reader reads only the top level)\"}");
  }
  sb_str(&m, "]}");
  if (m.oom) {
    free(m.p);
    return failf(CKH_E_NOMEM, "npy: out of memory");
  }
  *out = m.p;
  return CKH_OK;
}

static ckh_status r_open(const ckh_reader_class_t *cls, const char *path, const char *options, ckh_reader_t **out) {
  npy_reader *x = NULL;
  dir_scan s;
  char dir[4096];
  struct stat st;
  unsigned char *head = NULL;
  uint32_t i;
  ckh_status rc = CKH_OK;
  (void)cls;
  (void)options;
  if (!out) return failf(CKH_E_INVALID_ARG, "npy: open without an output pointer");
  *out = NULL;
  if (!path || !*path) return failf(CKH_E_INVALID_ARG, "npy: no path given");
  if (stat(path, &st) != 0) return failf(CKH_E_NOT_FOUND, "%s: %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return failf(CKH_E_INVALID_ARG, "%s: not a directory (npy reads a directory of .npy files)", path);
  if (!realpath(path, dir)) return failf(CKH_E_IO, "%s: %s", path, strerror(errno));
  if (scan_dir(dir, &s) != 0) return failf(errno == ENOMEM ? CKH_E_NOMEM : CKH_E_IO, "%s: cannot list: %s", dir, strerror(errno));
  if (s.npy.n == 0) {
    scan_free(&s);
    return failf(CKH_E_NOT_FOUND, "%s: no .npy files", dir);
  }
  x = (npy_reader *)calloc(1, sizeof *x);
  head = (unsigned char *)malloc(NPY_PREFIX_MAX + NPY_MAX_HEADER);
  if (x) {
    x->files = (char **)calloc(s.npy.n, sizeof *x->files);
    x->tensors = (npy_tensor *)calloc(s.npy.n, sizeof *x->tensors);
  }
  if (!x || !head || !x->files || !x->tensors) rc = failf(CKH_E_NOMEM, "npy: out of memory");
  for (i = 0; rc == CKH_OK && i < s.npy.n; ++i) {
    const char *n = s.npy.v[i];
    const size_t nl = strlen(n), dl = strlen(dir);
    x->files[i] = (char *)malloc(dl + 1 + nl + 1);
    x->tensors[i].name = (char *)malloc(nl - 4 + 1);
    x->count = i + 1;
    if (!x->files[i] || !x->tensors[i].name) {
      rc = failf(CKH_E_NOMEM, "npy: out of memory");
      break;
    }
    memcpy(x->files[i], dir, dl);
    x->files[i][dl] = '/';
    memcpy(x->files[i] + dl + 1, n, nl + 1);
    memcpy(x->tensors[i].name, n, nl - 4); /* drop ".npy" */
    x->tensors[i].name[nl - 4] = 0;
    rc = open_tensor(x->files[i], head, &x->tensors[i]);
  }
  free(head);
  if (rc == CKH_OK) rc = build_metadata(dir, &s, &x->meta);
  scan_free(&s);
  if (rc != CKH_OK) {
    free_reader(x);
    return rc;
  }
  x->vt.struct_size = sizeof x->vt;
  x->vt.impl = x;
  x->vt.file_count = r_file_count;
  x->vt.file_path = r_file_path;
  x->vt.tensor_count = r_tensor_count;
  x->vt.tensor_info = r_tensor_info;
  x->vt.tensor_annot = NULL;
  x->vt.piece_count = r_piece_count;
  x->vt.piece = r_piece;
  x->vt.metadata_json = r_metadata;
  x->vt.destroy = r_destroy;
  *out = &x->vt;
  return CKH_OK;
}

/* ---- writer --------------------------------------------------------------------------------------- */
static const char *dtype_name(ckh_dtype dt) {
  switch (dt) {
    case CKH_DT_BF16: return "BF16";
    case CKH_DT_F8_E4M3FN: return "F8_E4M3";
    case CKH_DT_F8_E5M2: return "F8_E5M2";
    case CKH_DT_F8_E8M0: return "F8_E8M0";
    default: return "this dtype";
  }
}

/* Side files from the metadata, and config.json: copied as they are, or written from the metadata's
   "config" when it changed (config_modified) or came without a file. */
static ckh_status carry_side_files(const char *meta, ckh_layout_builder_t *lb) {
  npy_json_span m, sf, cfg, mod, e;
  char err[128];
  size_t pos = 0;
  int r, have_config, regen, config_done = 0;
  if (!meta || npy_json_validate(meta, strlen(meta), err, sizeof err) != 0)
    return failf(CKH_E_INVALID_ARG, "npy writer: metadata is not valid JSON (%s)", meta ? err : "NULL");
  m.p = meta;
  m.n = strlen(meta);
  have_config = npy_json_member(m, "config", &cfg) == 0 && npy_json_is(cfg, '{');
  regen = have_config && npy_json_member(m, "config_modified", &mod) == 0 && npy_json_is(mod, 't');
  if (npy_json_member(m, "side_files", &sf) == 0 && npy_json_is(sf, '[')) {
    while ((r = npy_json_next(sf, &pos, &e)) == 1) {
      npy_json_span ns, ps;
      char name[1024], path[8192];
      if (npy_json_member(e, "name", &ns) != 0 || npy_json_string(ns, name, sizeof name) != 0 ||
          npy_json_member(e, "path", &ps) != 0 || npy_json_string(ps, path, sizeof path) != 0)
        return failf(CKH_E_INVALID_ARG, "npy writer: metadata side_files entry %.*s needs a \"name\" and a \"path\"",
                     (int)(e.n > 200 ? 200 : e.n), e.p);
      if (has_suffix(name, ".npy")) continue; /* never replace a tensor file */
      if (strcmp(name, "config.json") == 0) {
        if (regen) continue;
        config_done = 1;
      }
      if (lb->copy_file(lb, path, name) != CKH_OK) return CKH_E_IO; /* the host holds the message */
    }
  }
  if (have_config && !config_done) {
    ckh_status st;
    char *c = (char *)malloc(cfg.n + 1);
    if (!c) return failf(CKH_E_NOMEM, "npy: out of memory");
    memcpy(c, cfg.p, cfg.n);
    c[cfg.n] = '\n';
    st = lb->add_small_file(lb, "config.json", c, cfg.n + 1);
    free(c);
    if (st != CKH_OK) return st;
  }
  return CKH_OK;
}

static ckh_status w_plan(ckh_writer_t *w, const char *meta, ckh_layout_builder_t *lb) {
  ckh_expr_builder_t *b;
  uint64_t n, i;
  (void)w;
  if (!lb || !lb->expr) return failf(CKH_E_INVALID_ARG, "npy writer: no layout builder");
  b = lb->expr;
  n = b->input_count(b);
  for (i = 0; i < n; ++i) {
    ckh_tensor_info_t t;
    char header[1024], fname[NPY_NAME_MAX + 1], err[256];
    size_t hl, nl;
    uint64_t bytes;
    uint32_t d;
    int32_t f;
    ckh_expr e;
    ckh_status st;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    st = b->input_info(b, i, &t);
    if (st != CKH_OK) return st;
    nl = strlen(t.name);
    if (nl == 0 || strchr(t.name, '/') || t.name[0] == '.')
      return failf(CKH_E_UNSUPPORTED, "npy cannot store tensor '%s': one file per tensor, named after it (no '/', no leading '.')", t.name);
    if (nl + 4 > NPY_NAME_MAX)
      return failf(CKH_E_UNSUPPORTED, "npy cannot store tensor '%.64s...': its name is longer than a file name may be", t.name);
    if (!npy_descr(t.dtype))
      return failf(CKH_E_UNSUPPORTED, "npy cannot store %s (tensor %s): cast with --dtype f32", dtype_name(t.dtype), t.name);
    if (npy_format_header(t.dtype, t.ndim, t.shape, header, sizeof header, &hl, err, sizeof err) != 0)
      return failf(CKH_E_UNSUPPORTED, "tensor '%s': %s", t.name, err);
    bytes = ckh_dtype_size(t.dtype);
    for (d = 0; d < t.ndim; ++d) bytes *= (uint64_t)t.shape[d];
    memcpy(fname, t.name, nl);
    memcpy(fname + nl, ".npy", 5);
    f = lb->add_file(lb, fname, hl + bytes);
    if (f < 0) return CKH_E_INVALID_ARG; /* the host set the error */
    if ((st = lb->put_bytes(lb, f, 0, header, hl)) != CKH_OK) return st;
    e = b->input_at(b, i);
    if (e < 0) return CKH_E_INVALID_ARG;
    if (lb->put_tensor(lb, f, hl, e, 0) < 0) return CKH_E_INVALID_ARG;
  }
  return carry_side_files(meta, lb);
}

static void w_destroy(ckh_writer_t *w) {
  if (w) free(w); /* the writer has no state beyond its vtable */
}

static ckh_status w_create(const ckh_writer_class_t *cls, const char *options, ckh_writer_t **out) {
  ckh_writer_t *x;
  (void)cls;
  (void)options;
  if (!out) return failf(CKH_E_INVALID_ARG, "npy: create without an output pointer");
  *out = NULL;
  x = (ckh_writer_t *)calloc(1, sizeof *x);
  if (!x) return failf(CKH_E_NOMEM, "npy: out of memory");
  x->struct_size = sizeof *x;
  x->impl = x;
  x->plan = w_plan;
  x->finish = NULL;
  x->destroy = w_destroy;
  *out = x;
  return CKH_OK;
}

/* ---- descriptor ----------------------------------------------------------------------------------- */
static const ckh_reader_class_t reader_class = {sizeof(ckh_reader_class_t), 0, r_probe, r_open};
static const ckh_writer_class_t writer_class = {sizeof(ckh_writer_class_t), 0, w_create};
static const ckh_component_t reader_comp = {sizeof(ckh_component_t), CKH_COMPONENT_READER, "npy",
                                            "directory of NumPy .npy files, one tensor per file (C or Fortran order)",
                                            "{\"container\":\"npy\",\"layout\":\"hf\",\"extensions\":[\".npy\"]}",
                                            &reader_class};
static const ckh_component_t writer_comp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "npy",
                                            "directory of NumPy .npy files (v1.0 headers, C order)",
                                            "{\"container\":\"npy\",\"layout\":\"hf\"}", &writer_class};
static const ckh_component_t *const components[] = {&reader_comp, &writer_comp};

static ckh_status plugin_init(const ckh_host_t *host) {
  g_host = host;
  return CKH_OK;
}

static void plugin_deinit(void) { g_host = NULL; }

static const ckh_plugin_t plugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 2, "org.ckhost.format.npy",
                                    "0.1.0", "ckhost", "NumPy .npy directories (a plugin written in C99)", plugin_init,
                                    plugin_deinit, components, NULL};

CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &plugin; }
