/* abi_layout.c — freezes the x86-64 (LP64, System V) layout of every struct of SDK ABI 1.0: the offset
   of every field (the last one included) and the size. An inserted, removed, resized or reordered field
   breaks the build. A later minor appends fields: append PIN lines and update SIZE, never change a PIN.
   Compiled as C99 and C11, and as C++11/17/20 through abi_layout.cpp. */
#include <ckhost/ckh.h>
#include <stddef.h>

#if defined(__x86_64__) && defined(__LP64__)
#if defined(__cplusplus)
#define CKH_ABI_ASSERT(cond, msg) static_assert(cond, msg)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define CKH_ABI_ASSERT(cond, msg) _Static_assert(cond, msg)
#else
/* C99 has no _Static_assert: a negative array size fails the build (the message is in the source line). */
#define CKH_ABI_CAT2(a, b) a##b
#define CKH_ABI_CAT(a, b) CKH_ABI_CAT2(a, b)
#define CKH_ABI_ASSERT(cond, msg) typedef char CKH_ABI_CAT(ckh_abi_check_, __LINE__)[(cond) ? 1 : -1]
#endif
#define PIN(type, field, off) CKH_ABI_ASSERT(offsetof(type, field) == (off), #type "." #field " moved")
#define SIZE(type, n) CKH_ABI_ASSERT(sizeof(type) == (n), "sizeof(" #type ") changed")

/* ckh_expr.h */
PIN(ckh_expr_builder_t, struct_size, 0);
PIN(ckh_expr_builder_t, reserved0, 4);
PIN(ckh_expr_builder_t, ctx, 8);
PIN(ckh_expr_builder_t, input_count, 16);
PIN(ckh_expr_builder_t, input_info, 24);
PIN(ckh_expr_builder_t, input_annot, 32);
PIN(ckh_expr_builder_t, find_input, 40);
PIN(ckh_expr_builder_t, input, 48);
PIN(ckh_expr_builder_t, input_at, 56);
PIN(ckh_expr_builder_t, slice, 64);
PIN(ckh_expr_builder_t, concat, 72);
PIN(ckh_expr_builder_t, reshape, 80);
PIN(ckh_expr_builder_t, permute, 88);
PIN(ckh_expr_builder_t, pad, 96);
PIN(ckh_expr_builder_t, cast, 104);
PIN(ckh_expr_builder_t, scale, 112);
PIN(ckh_expr_builder_t, quantize, 120);
PIN(ckh_expr_builder_t, info, 128);
PIN(ckh_expr_builder_t, emit, 136);
PIN(ckh_expr_builder_t, ignore, 144);
PIN(ckh_expr_builder_t, set_metadata, 152);
PIN(ckh_expr_builder_t, quantize_n, 160);
SIZE(ckh_expr_builder_t, 168);

/* ckh_host.h */
PIN(ckh_host_t, struct_size, 0);
PIN(ckh_host_t, abi_major, 4);
PIN(ckh_host_t, abi_minor, 8);
PIN(ckh_host_t, reserved0, 12);
PIN(ckh_host_t, host_name, 16);
PIN(ckh_host_t, host_version, 24);
PIN(ckh_host_t, log, 32);
PIN(ckh_host_t, set_error, 40);
PIN(ckh_host_t, alloc, 48);
PIN(ckh_host_t, free, 56);
PIN(ckh_host_t, get_extension, 64);
PIN(ckh_host_t, is_cancelled, 72);
PIN(ckh_host_t, kernels, 80);
SIZE(ckh_host_t, 88);

/* ckh_kernels.h */
PIN(ckh_kernels_t, struct_size, 0);
PIN(ckh_kernels_t, reserved0, 4);
PIN(ckh_kernels_t, isa, 8);
PIN(ckh_kernels_t, bf16_to_f32, 16);
PIN(ckh_kernels_t, f16_to_f32, 24);
PIN(ckh_kernels_t, e4m3_to_f32, 32);
PIN(ckh_kernels_t, e5m2_to_f32, 40);
PIN(ckh_kernels_t, f32_to_bf16, 48);
PIN(ckh_kernels_t, f32_to_f16, 56);
PIN(ckh_kernels_t, f32_to_e4m3, 64);
PIN(ckh_kernels_t, f32_to_e5m2, 72);
PIN(ckh_kernels_t, f32_to_e4m3_scaled, 80);
PIN(ckh_kernels_t, f32_to_e5m2_scaled, 88);
PIN(ckh_kernels_t, f32_to_i8_scaled, 96);
PIN(ckh_kernels_t, scale_f32, 104);
PIN(ckh_kernels_t, absmax_f32, 112);
PIN(ckh_kernels_t, sumsq_f32, 120);
PIN(ckh_kernels_t, maxabsdiff_f32, 128);
PIN(ckh_kernels_t, sumsqdiff_f32, 136);
PIN(ckh_kernels_t, e4m3_scaled_to_bf16, 144);
PIN(ckh_kernels_t, e4m3_grouped_to_bf16, 152);
SIZE(ckh_kernels_t, 160);
PIN(ckh_command_class_t, struct_size, 0);
PIN(ckh_command_class_t, reserved0, 4);
PIN(ckh_command_class_t, translate, 8);
SIZE(ckh_command_class_t, 16);

/* ckh_mapper.h */
PIN(ckh_mapper_class_t, struct_size, 0);
PIN(ckh_mapper_class_t, reserved0, 4);
PIN(ckh_mapper_class_t, probe, 8);
PIN(ckh_mapper_class_t, map, 16);
PIN(ckh_mapper_class_t, canonical, 24);
PIN(ckh_mapper_class_t, reader_hints, 32);
SIZE(ckh_mapper_class_t, 40);

/* ckh_plugin.h */
PIN(ckh_component_t, struct_size, 0);
PIN(ckh_component_t, kind, 4);
PIN(ckh_component_t, id, 8);
PIN(ckh_component_t, description, 16);
PIN(ckh_component_t, capabilities_json, 24);
PIN(ckh_component_t, vtable, 32);
SIZE(ckh_component_t, 40);

/* ckh_plugin.h */
PIN(ckh_plugin_t, struct_size, 0);
PIN(ckh_plugin_t, abi_major, 4);
PIN(ckh_plugin_t, abi_minor, 8);
PIN(ckh_plugin_t, component_count, 12);
PIN(ckh_plugin_t, id, 16);
PIN(ckh_plugin_t, version, 24);
PIN(ckh_plugin_t, vendor, 32);
PIN(ckh_plugin_t, description, 40);
PIN(ckh_plugin_t, init, 48);
PIN(ckh_plugin_t, deinit, 56);
PIN(ckh_plugin_t, components, 64);
PIN(ckh_plugin_t, get_extension, 72);
SIZE(ckh_plugin_t, 80);

/* ckh_quantizer.h */
PIN(ckh_quant_layout_t, struct_size, 0);
PIN(ckh_quant_layout_t, n_outputs, 4);
PIN(ckh_quant_layout_t, row_block, 8);
PIN(ckh_quant_layout_t, rows_per_block, 16);
PIN(ckh_quant_layout_t, outputs, 48);
SIZE(ckh_quant_layout_t, 400);

/* ckh_quantizer.h */
PIN(ckh_quantizer_class_t, struct_size, 0);
PIN(ckh_quantizer_class_t, reserved0, 4);
PIN(ckh_quantizer_class_t, prepare, 8);
PIN(ckh_quantizer_class_t, quantize, 16);
PIN(ckh_quantizer_class_t, release, 24);
PIN(ckh_quantizer_class_t, prepare_n, 32);
PIN(ckh_quantizer_class_t, port, 40);
PIN(ckh_quantizer_class_t, quantize_n, 48);
SIZE(ckh_quantizer_class_t, 56);

/* ckh_quantizer.h, 1.1 */
PIN(ckh_quant_desc_t, struct_size, 0);
PIN(ckh_quant_desc_t, n_outputs, 4);
PIN(ckh_quant_desc_t, n_blocks, 8);
PIN(ckh_quant_desc_t, work_bytes_per_block, 16);
PIN(ckh_quant_desc_t, info_json, 24);
SIZE(ckh_quant_desc_t, 32);
PIN(ckh_quant_port_t, struct_size, 0);
PIN(ckh_quant_port_t, reserved0, 4);
PIN(ckh_quant_port_t, rows_per_block, 8);
PIN(ckh_quant_port_t, info, 16);
SIZE(ckh_quant_port_t, 104);

/* ckh_reader.h */
PIN(ckh_reader_class_t, struct_size, 0);
PIN(ckh_reader_class_t, reserved0, 4);
PIN(ckh_reader_class_t, probe, 8);
PIN(ckh_reader_class_t, open, 16);
SIZE(ckh_reader_class_t, 24);

/* ckh_reader.h */
PIN(ckh_reader_t, struct_size, 0);
PIN(ckh_reader_t, reserved0, 4);
PIN(ckh_reader_t, impl, 8);
PIN(ckh_reader_t, file_count, 16);
PIN(ckh_reader_t, file_path, 24);
PIN(ckh_reader_t, tensor_count, 32);
PIN(ckh_reader_t, tensor_info, 40);
PIN(ckh_reader_t, tensor_annot, 48);
PIN(ckh_reader_t, piece_count, 56);
PIN(ckh_reader_t, piece, 64);
PIN(ckh_reader_t, metadata_json, 72);
PIN(ckh_reader_t, destroy, 80);
PIN(ckh_reader_t, apply_hints, 88);
SIZE(ckh_reader_t, 96);

/* ckh_types.h */
/* ckh_types.h, 1.1 */
PIN(ckh_dtype_traits_t, block_elems, 0);
PIN(ckh_dtype_traits_t, block_bytes, 4);
PIN(ckh_dtype_traits_t, is_block, 8);
PIN(ckh_dtype_traits_t, reserved0, 12);
SIZE(ckh_dtype_traits_t, 16);
PIN(ckh_tensor_info_t, struct_size, 0);
PIN(ckh_tensor_info_t, ndim, 4);
PIN(ckh_tensor_info_t, name, 8);
PIN(ckh_tensor_info_t, dtype, 16);
PIN(ckh_tensor_info_t, reserved0, 20);
PIN(ckh_tensor_info_t, shape, 24);
SIZE(ckh_tensor_info_t, 88);

/* ckh_types.h */
PIN(ckh_piece_t, struct_size, 0);
PIN(ckh_piece_t, file, 4);
PIN(ckh_piece_t, byte_offset, 8);
PIN(ckh_piece_t, offset, 16);
PIN(ckh_piece_t, size, 80);
PIN(ckh_piece_t, stride, 144);
SIZE(ckh_piece_t, 208);

/* ckh_types.h */
PIN(ckh_tensor_annot_t, struct_size, 0);
PIN(ckh_tensor_annot_t, role, 4);
PIN(ckh_tensor_annot_t, layer, 8);
PIN(ckh_tensor_annot_t, expert, 12);
PIN(ckh_tensor_annot_t, parallel, 16);
PIN(ckh_tensor_annot_t, split_dim, 20);
PIN(ckh_tensor_annot_t, init, 24);
PIN(ckh_tensor_annot_t, reserved0, 28);
PIN(ckh_tensor_annot_t, extra_json, 32);
/* 1.1 */
PIN(ckh_tensor_annot_t, group, 40);
PIN(ckh_tensor_annot_t, stack, 44);
PIN(ckh_tensor_annot_t, kind, 48);
PIN(ckh_tensor_annot_t, reserved1, 52);
SIZE(ckh_tensor_annot_t, 56);

/* ckh_writer.h */
PIN(ckh_layout_builder_t, struct_size, 0);
PIN(ckh_layout_builder_t, reserved0, 4);
PIN(ckh_layout_builder_t, ctx, 8);
PIN(ckh_layout_builder_t, expr, 16);
PIN(ckh_layout_builder_t, add_file, 24);
PIN(ckh_layout_builder_t, put_bytes, 32);
PIN(ckh_layout_builder_t, put_tensor, 40);
PIN(ckh_layout_builder_t, add_small_file, 48);
PIN(ckh_layout_builder_t, copy_file, 56);
SIZE(ckh_layout_builder_t, 64);

/* ckh_writer.h */
PIN(ckh_region_digest_t, struct_size, 0);
PIN(ckh_region_digest_t, region, 4);
PIN(ckh_region_digest_t, crc32, 8);
PIN(ckh_region_digest_t, reserved0, 12);
PIN(ckh_region_digest_t, size, 16);
SIZE(ckh_region_digest_t, 24);

/* ckh_writer.h */
PIN(ckh_patcher_t, struct_size, 0);
PIN(ckh_patcher_t, reserved0, 4);
PIN(ckh_patcher_t, ctx, 8);
PIN(ckh_patcher_t, put_bytes, 16);
/* ckh_kernels.h, 1.1 */
PIN(ckh_kernel_provider_t, struct_size, 0);
PIN(ckh_kernel_provider_t, priority, 4);
PIN(ckh_kernel_provider_t, kernels, 8);
PIN(ckh_kernel_provider_t, preferred_work_bytes, 16);
SIZE(ckh_kernel_provider_t, 24);
/* ckh_plugin.h, 1.1 */
PIN(ckh_stats_extension_t, struct_size, 0);
PIN(ckh_stats_extension_t, count, 8);
PIN(ckh_stats_extension_t, name, 16);
PIN(ckh_stats_extension_t, value, 24);
SIZE(ckh_stats_extension_t, 32);
/* 1.1 */
PIN(ckh_patcher_t, digest_count, 24);
PIN(ckh_patcher_t, digest, 32);
SIZE(ckh_patcher_t, 40);

/* ckh_writer.h */
PIN(ckh_writer_class_t, struct_size, 0);
PIN(ckh_writer_class_t, reserved0, 4);
PIN(ckh_writer_class_t, create, 8);
SIZE(ckh_writer_class_t, 16);

/* ckh_writer.h */
PIN(ckh_writer_t, struct_size, 0);
PIN(ckh_writer_t, reserved0, 4);
PIN(ckh_writer_t, impl, 8);
PIN(ckh_writer_t, plan, 16);
PIN(ckh_writer_t, finish, 24);
PIN(ckh_writer_t, destroy, 32);
SIZE(ckh_writer_t, 40);

#endif  /* x86-64 */

int ckh_abi_layout_checked(void) { return CKH_ABI_MAJOR; }
