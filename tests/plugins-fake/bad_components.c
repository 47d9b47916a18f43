/* A plugin that loads fine but offers one component of every broken shape next to a good one: each
   broken component is refused on its own, the good one is accepted. */
#include <ckhost/ckh.h>

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

static const ckh_reader_class_t reader = {sizeof(ckh_reader_class_t), 0, probe, open_r};
/* An ABI 1.0 reader class is 24 bytes; one that claims 16 ends before open(). */
static const ckh_reader_class_t reader_small = {16, 0, probe, open_r};
static const ckh_reader_class_t reader_no_open = {sizeof(ckh_reader_class_t), 0, probe, NULL};

#define COMP(name, size, kind, id, vt) \
  static const ckh_component_t name = {size, kind, id, "broken component", "{}", vt}
COMP(c_small, 8, CKH_COMPONENT_READER, "small", &reader);
COMP(c_kind, sizeof(ckh_component_t), 9, "kind9", &reader);
COMP(c_no_id, sizeof(ckh_component_t), CKH_COMPONENT_READER, NULL, &reader);
COMP(c_no_vtable, sizeof(ckh_component_t), CKH_COMPONENT_READER, "novtable", NULL);
COMP(c_vt_small, sizeof(ckh_component_t), CKH_COMPONENT_READER, "vtsmall", &reader_small);
COMP(c_vt_hole, sizeof(ckh_component_t), CKH_COMPONENT_READER, "noopen", &reader_no_open);
COMP(c_good, sizeof(ckh_component_t), CKH_COMPONENT_READER, "good", &reader);
COMP(c_good_again, sizeof(ckh_component_t), CKH_COMPONENT_READER, "good", &reader);
static const ckh_component_t c_caps_array = {sizeof(ckh_component_t), CKH_COMPONENT_READER, "capsarray",
                                             "broken component", "[1,2]", &reader};

static const ckh_component_t *const comps[] = {NULL,   &c_small,     &c_kind, &c_no_id,     &c_no_vtable,
                                               &c_vt_small, &c_vt_hole, &c_good, &c_good_again, &c_caps_array};

static ckh_status init(const ckh_host_t *h) {
  (void)h;
  return CKH_OK;
}

static const ckh_plugin_t plugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR,
                                    (uint32_t)(sizeof comps / sizeof comps[0]), "org.test.badcomponents", "1.0",
                                    "Test", "broken components", init, NULL, comps, NULL};

CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &plugin; }
