/* Fake plugins for the loader tests: one source, one behaviour per FAKE_* define (see CMakeLists.txt).
   Each case is built into its own directory so a test can point --plugin-dir at exactly one case.
   The good ones log "fake init <id>" / "fake deinit <id>" at debug level so tests can see the calls. */
#include <ckhost/ckh.h>
#include <stdio.h>

#ifndef FAKE_ID
#define FAKE_ID "org.test.fake"
#endif
#ifndef FAKE_COMPONENT
#define FAKE_COMPONENT "fake"
#endif

static int32_t probe(const ckh_reader_class_t *c, const char *p) {
  (void)c;
  (void)p;
  return 0;
}
static ckh_status open_r(const ckh_reader_class_t *c, const char *p, const char *o, ckh_reader_t **out) {
  (void)c;
  (void)p;
  (void)o;
  *out = NULL;
  return CKH_E_UNSUPPORTED;
}
static ckh_status create_w(const ckh_writer_class_t *c, const char *o, ckh_writer_t **out) {
  (void)c;
  (void)o;
  *out = NULL;
  return CKH_E_UNSUPPORTED;
}
static int32_t mprobe(const ckh_mapper_class_t *c, const char *m) {
  (void)c;
  (void)m;
  return 0;
}
static ckh_status mmap_(const ckh_mapper_class_t *c, const char *o, const char *m, ckh_expr_builder_t *b) {
  (void)c;
  (void)o;
  (void)m;
  (void)b;
  return CKH_E_UNSUPPORTED;
}
static ckh_status qprep(const ckh_quantizer_class_t *c, const char *p, const ckh_tensor_info_t *in, ckh_quant_layout_t *l,
                        void **s) {
  (void)c;
  (void)p;
  (void)in;
  (void)l;
  *s = NULL;
  return CKH_E_UNSUPPORTED;
}
static ckh_status qrun(const ckh_quantizer_class_t *c, void *s, int64_t r0, int64_t n, const float *src, void *const *dst) {
  (void)c;
  (void)s;
  (void)r0;
  (void)n;
  (void)src;
  (void)dst;
  return CKH_E_UNSUPPORTED;
}
static void qrel(const ckh_quantizer_class_t *c, void *s) {
  (void)c;
  (void)s;
}

static const ckh_reader_class_t reader = {sizeof(ckh_reader_class_t), 0, probe, open_r};
static const ckh_writer_class_t writer = {sizeof(ckh_writer_class_t), 0, create_w};
static const ckh_mapper_class_t mapper = {sizeof(ckh_mapper_class_t), 0, mprobe, mmap_, NULL, NULL};
static const ckh_quantizer_class_t quant = {sizeof(ckh_quantizer_class_t), 0, qprep, qrun, qrel, NULL, NULL, NULL};

#ifdef FAKE_BAD_CAPS_JSON
#define CAPS "{not json"
#elif defined(FAKE_BAD_OPTIONS)
#define CAPS "{\"options\":[{\"name\":\"level\",\"type\":\"uint\",\"default\":3,\"help\":\"how much\"}]}"
#else
#define CAPS "{\"layout\":\"test\"}"
#endif
static const ckh_component_t c_reader = {sizeof(ckh_component_t), CKH_COMPONENT_READER, FAKE_COMPONENT, "fake reader",
                                         CAPS, &reader};
#ifdef FAKE_BAD_OPTIONS
/* SDK 1.1 option declarations: the reader declares --level (uint) and is accepted; the writer declares
 * --level as a string (conflict), the mapper takes the host's --dtype, the quantizer an unknown type. */
#define W_CAPS "{\"options\":[{\"name\":\"level\",\"type\":\"string\"}]}"
#define M_CAPS "{\"family\":\"fake\",\"from\":\"hf\",\"to\":\"hf\",\"options\":[{\"name\":\"dtype\"}]}"
#define Q_CAPS "{\"options\":[{\"name\":\"bits\",\"type\":\"complex\"}]}"
#else
#define W_CAPS "{}"
#define M_CAPS "{\"family\":\"fake\",\"from\":\"hf\",\"to\":\"hf\"}"
#define Q_CAPS "{}"
#endif
static const ckh_component_t c_writer = {sizeof(ckh_component_t), CKH_COMPONENT_WRITER, "fake", "fake writer", W_CAPS, &writer};
static const ckh_component_t c_mapper = {sizeof(ckh_component_t), CKH_COMPONENT_MAPPER, "fake", "fake mapper", M_CAPS, &mapper};
static const ckh_component_t c_quant = {sizeof(ckh_component_t), CKH_COMPONENT_QUANTIZER, "fake", "fake quantizer", Q_CAPS,
                                        &quant};
static const ckh_component_t *const comps[] = {&c_reader, &c_writer, &c_mapper, &c_quant};

static const ckh_host_t *g_host;
static void say(const char *what) {
  char line[128];
  snprintf(line, sizeof line, "%s %s", what, FAKE_ID);
  g_host->log(g_host, CKH_LOG_DEBUG, line);
}
static ckh_status init(const ckh_host_t *h) {
  g_host = h;
#ifdef FAKE_INIT_FAILS
  h->set_error(h, CKH_E_UNSUPPORTED, "fake plugin refuses to start: no licence");
  return CKH_E_UNSUPPORTED;
#else
  say("fake init");
  return CKH_OK;
#endif
}
static void deinit(void) { say("fake deinit"); }

#ifdef FAKE_MISSING_SYMBOL
extern int ckh_fake_symbol_that_does_not_exist(void);
int fake_use(void) { return ckh_fake_symbol_that_does_not_exist(); }
#endif

/* A descriptor from a newer minor: one appended field the host does not know yet. */
static struct {
  ckh_plugin_t base;
  const void *appended_in_a_later_minor;
} plugin = {{sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 4, FAKE_ID, "1.0", "Test", "fake plugin", init, deinit,
             comps, NULL},
            NULL};

#ifndef FAKE_NO_ENTRY
CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) {
#if defined(FAKE_NULL_ENTRY)
  (void)plugin;
  return NULL;
#else
#if defined(FAKE_ABI_MAJOR2)
  plugin.base.abi_major = 2;
  plugin.base.struct_size = 16; /* another major may have another layout: the major is reported first */
#endif
#if defined(FAKE_SMALL_STRUCT)
  plugin.base.struct_size = 8;
#endif
#if defined(FAKE_NO_ID)
  plugin.base.id = NULL;
#endif
#if defined(FAKE_NO_INIT)
  plugin.base.init = NULL;
#endif
#if defined(FAKE_NULL_COMPONENTS)
  plugin.base.components = NULL;
#endif
#if defined(FAKE_NEWER_MINOR)
  plugin.base.struct_size = (uint32_t)sizeof plugin;
  plugin.base.abi_minor = CKH_ABI_MINOR + 1;
#endif
  return &plugin.base;
#endif
}
#else
CKH_EXPORT int ckh_something_else(void) { return (int)plugin.base.struct_size; }
#endif
