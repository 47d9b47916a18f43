/* Freezes the x86-64 layout of every SDK struct of ABI 1.0: an inserted or reordered field breaks the
   build. Appending fields (a new minor) means adding lines here, never changing them. */
#include <ckhost/ckh.h>
#include <stddef.h>

#if defined(__x86_64__)
#define CKH_CAT2(a, b) a##b
#define CKH_CAT(a, b) CKH_CAT2(a, b)
/* C99 has no _Static_assert: a negative array size fails the build. */
#define CKH_ASSERT(cond) typedef char CKH_CAT(ckh_abi_check_, __LINE__)[(cond) ? 1 : -1]
#define PIN(type, field, off) CKH_ASSERT(offsetof(type, field) == (off))
#define SIZE(type, n) CKH_ASSERT(sizeof(type) == (n))
PIN(ckh_tensor_info_t, shape, 24);
SIZE(ckh_tensor_info_t, 88);
PIN(ckh_piece_t, stride, 144);
SIZE(ckh_piece_t, 208);
PIN(ckh_tensor_annot_t, extra_json, 32);
SIZE(ckh_tensor_annot_t, 40);
PIN(ckh_kernels_t, sumsqdiff_f32, 136);
SIZE(ckh_kernels_t, 144);
PIN(ckh_host_t, kernels, 80);
SIZE(ckh_host_t, 88);
PIN(ckh_expr_builder_t, set_metadata, 152);
SIZE(ckh_expr_builder_t, 160);
PIN(ckh_reader_class_t, open, 16);
PIN(ckh_reader_t, destroy, 80);
SIZE(ckh_reader_t, 88);
PIN(ckh_writer_class_t, create, 8);
PIN(ckh_layout_builder_t, copy_file, 56);
PIN(ckh_region_digest_t, size, 16);
PIN(ckh_patcher_t, put_bytes, 16);
PIN(ckh_writer_t, destroy, 32);
PIN(ckh_mapper_class_t, canonical, 24);
PIN(ckh_quant_layout_t, outputs, 48);
PIN(ckh_quantizer_class_t, release, 24);
PIN(ckh_component_t, vtable, 32);
PIN(ckh_plugin_t, components, 64);
SIZE(ckh_plugin_t, 72);
#endif

int ckh_abi_layout_checked(void) { return CKH_ABI_MAJOR; }
