/* example-kernels — a third-party kernel provider (SDK 1.1), built out of tree against an installed
 * ckhost, in plain C99.
 *
 * It supplies one member of the kernel table, f32_to_bf16 (round to nearest even; NaN kept quiet with
 * its sign and top payload, exactly as the host's contract says), with priority 10, so it replaces the
 * host's built-in kernel for every conversion that casts to bf16 while the plugin is loaded. It counts
 * its calls and elements and reports them through the plugin-side "ckh.stats/1" extension, which
 * `ckhost convert -v` prints. A vendor would put an NPU or a better CPU kernel here; the bytes written
 * must not change, only the speed.
 */
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <ckhost/ckh.h>

static atomic_uint_fast64_t g_calls, g_elements;

static void f32_to_bf16(const float *src, uint16_t *dst, uint64_t n) {
  uint64_t i;
  atomic_fetch_add(&g_calls, 1);
  atomic_fetch_add(&g_elements, n);
  for (i = 0; i < n; ++i) {
    uint32_t u;
    memcpy(&u, &src[i], sizeof u);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u)
      dst[i] = (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    else
      dst[i] = (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16); /* round to nearest even */
  }
}

/* Only f32_to_bf16 is set: every other member stays the host's. */
static ckh_kernels_t g_table;
static const ckh_kernel_provider_t kProvider = {sizeof(ckh_kernel_provider_t), 10, &g_table, 0};

static uint32_t stats_count(void) { return 2; }
static const char *stats_name(uint32_t i) { return i == 0 ? "f32_to_bf16 calls" : "f32_to_bf16 elements"; }
static uint64_t stats_value(uint32_t i) { return i == 0 ? atomic_load(&g_calls) : atomic_load(&g_elements); }
static const ckh_stats_extension_t kStats = {sizeof(ckh_stats_extension_t), 0, stats_count, stats_name, stats_value};

static const void *get_extension(const char *id) {
  return id && strcmp(id, CKH_STATS_EXTENSION_ID) == 0 ? &kStats : NULL;
}

static const ckh_component_t kComp = {sizeof(ckh_component_t), CKH_COMPONENT_KERNELS, "example.bf16",
                                      "f32 -> bf16 in plain C, counted (SDK example)", "{}", &kProvider};
static const ckh_component_t *const kComps[] = {&kComp};

static ckh_status init(const ckh_host_t *host) {
  (void)host;
  memset(&g_table, 0, sizeof g_table);
  g_table.struct_size = sizeof g_table;
  g_table.isa = "example-c99";
  g_table.f32_to_bf16 = f32_to_bf16;
  return CKH_OK;
}

static const ckh_plugin_t kPlugin = {sizeof(ckh_plugin_t), CKH_ABI_MAJOR, CKH_ABI_MINOR, 1, "com.example.kernels",
                                     "1.0.0", "Example Corp", "a kernel provider (ckhost SDK example)", init, NULL, kComps,
                                     get_extension};

CKH_EXPORT const ckh_plugin_t *ckh_plugin_entry(void) { return &kPlugin; }
