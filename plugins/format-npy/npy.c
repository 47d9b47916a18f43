/* npy.c — a directory of NumPy .npy files <-> tensors. Written in plain C99 to show that the SDK is
   usable from C: no C++ runtime, memory via malloc/free, errors via host->set_error.

   NPY layout: "\x93NUMPY" | major | minor | header length (u16 for 1.x, u32 for 2.x/3.x) | header, a
   Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with spaces
   and a final '\n' | data. */
#define _XOPEN_SOURCE 700
#include "npy_header.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ckhost/ckh.h>

static const ckh_host_t *g_host;

static ckh_status failf(ckh_status code, const char *fmt, const char *a, const char *b) {
  char msg[16384];
  snprintf(msg, sizeof msg, fmt, a ? a : "", b ? b : "");
  if (g_host) g_host->set_error(g_host, code, msg);
  return code;
}

/* ---- growable string for JSON ------------------------------------------------------------------ */
typedef struct {
  char *p;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *s, const char *d, size_t n) {
  if (s->oom) return;
  if (s->n + n + 1 > s->cap) {
    size_t c = s->cap ? s->cap * 2 : 256;
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
static void sb_json_string(sbuf *s, const char *d) {
  const unsigned char *c = (const unsigned char *)d;
  sb_put(s, "\"", 1);
  for (; *c; ++c) {
    char esc[8];
    if (*c == '"' || *c == '\\') {
      esc[0] = '\\';
      esc[1] = (char)*c;
      sb_put(s, esc, 2);
    } else if (*c < 0x20) {
      snprintf(esc, sizeof esc, "\\u%04x", *c);
      sb_put(s, esc, 6);
    } else {
      sb_put(s, (const char *)c, 1);
    }
  }
  sb_put(s, "\"", 1);
}

/* ---- reader ------------------------------------------------------------------------------------- */
typedef struct {
  char *name;
  npy_header h;
} npy_tensor;

typedef struct {
  ckh_reader_t vt;
  char **files;
  npy_tensor *tensors;
  uint32_t count;
  char *meta;
} npy_reader;

static npy_reader *RD(const ckh_reader_t *r) { return (npy_reader *)r->impl; }

static int has_suffix(const char *s, const char *suf) {
  size_t a = strlen(s), b = strlen(suf);
  return a >= b && strcmp(s + a - b, suf) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Sorted names of regular files in `dir` ending (or not ending) in `suffix`. */
static char **list_dir(const char *dir, const char *suffix, int want, uint32_t *count) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char **v = NULL;
  uint32_t n = 0, cap = 0;
  *count = 0;
  if (!d) return NULL;
  while ((e = readdir(d)) != NULL) {
    char path[4096];
    struct stat st;
    if (e->d_name[0] == '.') continue;
    if (has_suffix(e->d_name, suffix) != want) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) continue;
    if (n == cap) {
      char **q;
      cap = cap ? cap * 2 : 16;
      q = (char **)realloc(v, cap * sizeof *v);
      if (!q) break;
      v = q;
    }
    v[n] = strdup(e->d_name);
    if (v[n]) ++n;
  }
  closedir(d);
  if (n) qsort(v, n, sizeof *v, cmp_str);
  *count = n;
  return v;
}

static void free_list(char **v, uint32_t n) {
  uint32_t i;
  for (i = 0; i < n; ++i) free(v[i]);
  free(v);
}

static void free_reader(npy_reader *x) {
  uint32_t i;
  for (i = 0; i < x->count; ++i) {
    free(x->files[i]);
    free(x->tensors[i].name);
  }
  free(x->files);
  free(x->tensors);
  free(x->meta);
  free(x);
}

static void reader_destroy(ckh_reader_t *r) { free_reader(RD(r)); }

static uint32_t r_file_count(const ckh_reader_t *r) { return RD(r)->count; }
static const char *r_file_path(const ckh_reader_t *r, uint32_t i) { return i < RD(r)->count ? RD(r)->files[i] : NULL; }
static uint64_t r_tensor_count(const ckh_reader_t *r) { return RD(r)->count; }
static ckh_status r_tensor_info(const ckh_reader_t *r, uint64_t i, ckh_tensor_info_t *t) {
  const npy_tensor *x;
  uint32_t d, sz;
  if (i >= RD(r)->count) return failf(CKH_E_NOT_FOUND, "npy: tensor index out of range%s%s", NULL, NULL);
  x = &RD(r)->tensors[i];
  sz = t->struct_size;
  memset(t, 0, sz < sizeof *t ? sz : sizeof *t);
  t->struct_size = sz;
  t->name = x->name;
  t->dtype = x->h.dtype;
  t->ndim = x->h.ndim;
  for (d = 0; d < x->h.ndim; ++d) t->shape[d] = x->h.shape[d];
  return CKH_OK;
}
static uint32_t r_piece_count(const ckh_reader_t *r, uint64_t i) {
  (void)r;
  (void)i;
  return 1;
}
static ckh_status r_piece(const ckh_reader_t *r, uint64_t i, uint32_t j, ckh_piece_t *p) {
  const npy_tensor *x;
  uint32_t d, sz;
  int64_t acc = 1;
  if (i >= RD(r)->count || j != 0) return failf(CKH_E_NOT_FOUND, "npy: piece index out of range%s%s", NULL, NULL);
  x = &RD(r)->tensors[i];
  sz = p->struct_size;
  memset(p, 0, sz < sizeof *p ? sz : sizeof *p);
  p->struct_size = sz;
  p->file = (uint32_t)i;
  p->byte_offset = x->h.data_offset;
  for (d = 0; d < x->h.ndim; ++d) p->size[d] = x->h.shape[d];
  if (x->h.fortran_order && x->h.ndim > 1) {
    /* Column-major: the first index varies fastest. */
    for (d = 0; d < x->h.ndim; ++d) {
      p->stride[d] = acc;
      acc *= x->h.shape[d];
    }
  }
  return CKH_OK;
}
static const char *r_metadata(const ckh_reader_t *r) { return RD(r)->meta; }

static char *read_small(const char *path, size_t limit, size_t *len) {
  FILE *f = fopen(path, "rb");
  char *buf;
  long n;
  if (!f) return NULL;
  if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || (size_t)n > limit || fseek(f, 0, SEEK_SET) != 0) {
    fclose(f);
    return NULL;
  }
  buf = (char *)malloc((size_t)n + 1);
  if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
    free(buf);
    buf = NULL;
  }
  if (buf) buf[n] = 0;
  fclose(f);
  *len = (size_t)n;
  return buf;
}

static int32_t r_probe(const ckh_reader_class_t *cls, const char *path) {
  uint32_t n = 0, m = 0;
  char **npys, **st;
  struct stat s;
  (void)cls;
  if (!path || stat(path, &s) != 0 || !S_ISDIR(s.st_mode)) return 0;
  npys = list_dir(path, ".npy", 1, &n);
  st = list_dir(path, ".safetensors", 1, &m);
  free_list(npys, n);
  free_list(st, m);
  return n > 0 && m == 0 ? 60 : 0;
}

static ckh_status r_open(const ckh_reader_class_t *cls, const char *path, const char *options, ckh_reader_t **out) {
  npy_reader *x;
  char **names;
  char **side;
  uint32_t n = 0, ns = 0, i;
  char dir[4096];
  sbuf meta = {0};
  char *cfg = NULL;
  size_t cfg_len = 0;
  ckh_status st = CKH_OK;
  (void)cls;
  (void)options;
  *out = NULL;
  if (!path || !realpath(path, dir)) return failf(CKH_E_NOT_FOUND, "%s: no such directory%s", path, NULL);
  names = list_dir(dir, ".npy", 1, &n);
  if (n == 0) {
    free_list(names, n);
    return failf(CKH_E_NOT_FOUND, "%s: no .npy files%s", dir, NULL);
  }
  x = (npy_reader *)calloc(1, sizeof *x);
  if (!x) {
    free_list(names, n);
    return failf(CKH_E_NOMEM, "npy: out of memory%s%s", NULL, NULL);
  }
  x->files = (char **)calloc(n, sizeof *x->files);
  x->tensors = (npy_tensor *)calloc(n, sizeof *x->tensors);
  if (!x->files || !x->tensors) st = failf(CKH_E_NOMEM, "npy: out of memory%s%s", NULL, NULL);
  for (i = 0; st == CKH_OK && i < n; ++i) {
    char fp[8192], err[512];
    int fd;
    struct stat fs;
    unsigned char head[NPY_MAX_HEADER + 12];
    ssize_t got;
    snprintf(fp, sizeof fp, "%s/%s", dir, names[i]);
    x->files[i] = strdup(fp);
    x->tensors[i].name = strdup(names[i]);
    x->count = i + 1;
    if (!x->files[i] || !x->tensors[i].name) {
      st = failf(CKH_E_NOMEM, "npy: out of memory%s%s", NULL, NULL);
      break;
    }
    x->tensors[i].name[strlen(names[i]) - 4] = 0; /* drop ".npy" */
    fd = open(fp, O_RDONLY);
    if (fd < 0 || fstat(fd, &fs) != 0) {
      if (fd >= 0) close(fd);
      st = failf(CKH_E_IO, "%s: cannot open: %s", fp, strerror(errno));
      break;
    }
    got = pread(fd, head, sizeof head, 0);
    close(fd);
    if (got < 0) {
      st = failf(CKH_E_IO, "%s: read failed%s", fp, NULL);
      break;
    }
    if (npy_parse_header(head, (size_t)got, (uint64_t)fs.st_size, &x->tensors[i].h, err, sizeof err) != 0) {
      st = failf(CKH_E_FORMAT, "%s: %s", fp, err);
      break;
    }
  }
  free_list(names, n);
  if (st != CKH_OK) {
    free_reader(x);
    return st;
  }
  /* Metadata: config.json of the directory (embedded as is) and the other files as side files. */
  sb_str(&meta, "{\"format\":\"npy\",\"layout\":\"hf\",\"skipped\":[],\"config\":");
  {
    char cp[8192];
    snprintf(cp, sizeof cp, "%s/config.json", dir);
    cfg = read_small(cp, 16u << 20, &cfg_len);
  }
  if (cfg) sb_put(&meta, cfg, cfg_len);
  else sb_str(&meta, "null");
  free(cfg);
  sb_str(&meta, ",\"side_files\":[");
  side = list_dir(dir, ".npy", 0, &ns);
  for (i = 0; i < ns; ++i) {
    char sp[8192];
    snprintf(sp, sizeof sp, "%s/%s", dir, side[i]);
    if (i) sb_str(&meta, ",");
    sb_str(&meta, "{\"name\":");
    sb_json_string(&meta, side[i]);
    sb_str(&meta, ",\"path\":");
    sb_json_string(&meta, sp);
    sb_str(&meta, "}");
  }
  free_list(side, ns);
  sb_str(&meta, "]}");
  if (meta.oom) {
    free(meta.p);
    free_reader(x);
    return failf(CKH_E_NOMEM, "npy: out of memory%s%s", NULL, NULL);
  }
  x->meta = meta.p;
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
  x->vt.destroy = reader_destroy;
  *out = &x->vt;
  return CKH_OK;
}

/* ---- writer ------------------------------------------------------------------------------------- */
typedef struct {
  ckh_writer_t vt;
} npy_writer;

/* Copies the "path" and "name" values of each side file listed in the metadata JSON. A tiny scanner
   suffices: the host produced this JSON (strings escaped with \" and \\ only). */
static ckh_status carry_side_files(const char *meta, ckh_layout_builder_t *lb) {
  const char *p = strstr(meta, "\"side_files\":[");
  if (!p) return CKH_OK;
  p += 14;
  while (*p && *p != ']') {
    char name[1024] = {0}, path[4096] = {0};
    const char *obj_end = strchr(p, '}');
    const char *keys[2] = {"\"name\":\"", "\"path\":\""};
    char *dst[2] = {name, path};
    size_t cap[2] = {sizeof name, sizeof path};
    int k;
    if (!obj_end) break;
    for (k = 0; k < 2; ++k) {
      const char *q = strstr(p, keys[k]);
      size_t n = 0;
      if (!q || q > obj_end) continue;
      q += strlen(keys[k]);
      while (*q && *q != '"' && n + 1 < cap[k]) {
        if (*q == '\\' && q[1]) ++q;
        dst[k][n++] = *q++;
      }
    }
    if (name[0] && path[0]) {
      ckh_status s = lb->copy_file(lb, path, name);
      if (s != CKH_OK) return s;
    }
    p = obj_end + 1;
    while (*p == ',' || *p == ' ') ++p;
  }
  return CKH_OK;
}

static ckh_status w_plan(ckh_writer_t *w, const char *meta, ckh_layout_builder_t *lb) {
  ckh_expr_builder_t *b = lb->expr;
  uint64_t n = b->input_count(b), i;
  (void)w;
  for (i = 0; i < n; ++i) {
    ckh_tensor_info_t t;
    char header[NPY_MAX_HEADER + 16], fname[4200], err[256];
    size_t hl;
    uint64_t bytes = 1;
    uint32_t d;
    int32_t f;
    memset(&t, 0, sizeof t);
    t.struct_size = sizeof t;
    if (b->input_info(b, i, &t) != CKH_OK) return CKH_E_INTERNAL;
    if (strchr(t.name, '/') || strlen(t.name) > 4000 || t.name[0] == '.')
      return failf(CKH_E_UNSUPPORTED, "npy cannot name a file after tensor '%s'%s", t.name, NULL);
    if (npy_format_header(&t, header, sizeof header, &hl, err, sizeof err) != 0)
      return failf(CKH_E_UNSUPPORTED, "tensor '%s': %s", t.name, err);
    for (d = 0; d < t.ndim; ++d) bytes *= (uint64_t)t.shape[d];
    bytes *= ckh_dtype_size(t.dtype);
    snprintf(fname, sizeof fname, "%s.npy", t.name);
    f = lb->add_file(lb, fname, hl + bytes);
    if (f < 0) return CKH_E_INVALID_ARG;
    if (lb->put_bytes(lb, f, 0, header, hl) != CKH_OK) return CKH_E_INVALID_ARG;
    if (lb->put_tensor(lb, f, hl, b->input_at(b, i), 0) < 0) return CKH_E_INVALID_ARG;
  }
  return carry_side_files(meta ? meta : "", lb);
}

static void w_destroy(ckh_writer_t *w) { free(w->impl); }

static ckh_status w_create(const ckh_writer_class_t *cls, const char *options, ckh_writer_t **out) {
  npy_writer *x = (npy_writer *)calloc(1, sizeof *x);
  (void)cls;
  (void)options;
  *out = NULL;
  if (!x) return failf(CKH_E_NOMEM, "npy: out of memory%s%s", NULL, NULL);
  x->vt.struct_size = sizeof x->vt;
  x->vt.impl = x;
  x->vt.plan = w_plan;
  x->vt.finish = NULL;
  x->vt.destroy = w_destroy;
  *out = &x->vt;
  return CKH_OK;
}

/* ---- descriptor --------------------------------------------------------------------------------- */
static const ckh_reader_class_t reader_class = {sizeof(ckh_reader_class_t), 0, r_probe, r_open};
static const ckh_writer_class_t writer_class = {sizeof(ckh_writer_class_t), 0, w_create};
static const ckh_component_t reader_comp = {sizeof(ckh_component_t), CKH_COMPONENT_READER, "npy",
                                            "directory of NumPy .npy files (one tensor per file)",
                                            "{\"container\":\"npy\",\"layout\":\"hf\",\"extensions\":[\".npy\"]}",
                                            &reader_class};
static const ckh_component_t writer_comp = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "npy",
                                            "directory of NumPy .npy files (v1.0, C order)",
                                            "{\"container\":\"npy\",\"layout\":\"hf\"}", &writer_class};
static const ckh_component_t *const components[] = {&reader_comp, &writer_comp};

static ckh_status plugin_init(const ckh_host_t *host) {
  g_host = host;
  return CKH_OK;
}

static const ckh_plugin_t plugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 2, "org.ckhost.format.npy",
                                    "0.1.0", "ckhost", "NumPy .npy directories (plugin written in C99)", plugin_init,
                                    NULL, components};

CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &plugin; }
