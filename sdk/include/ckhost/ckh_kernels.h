// ckh_kernels.h — the shared SIMD kernel table ("ckh.kernels/1").
//
// The host selects the best implementation for the running CPU once at start (SSE2, AVX2+F16C+FMA,
// AVX-512BW, or scalar; the environment variable CKHOST_ISA=scalar|sse2|avx2|avx512 caps the choice)
// and hands plugins this table through ckh_host_t.kernels, so a plugin gets fast kernels without
// compiling any SIMD code itself.
//
// Every function is pure: [thread-safe], no status, n may be 0, src and dst need no alignment, and
// src and dst must not overlap unless stated. Rounding is round-to-nearest-even everywhere. NaN stays
// NaN (quiet). Results are bit-identical across ISAs (tests check every SIMD path against the scalar
// reference for every 8- and 16-bit input).
#ifndef CKHOST_CKH_KERNELS_H
#define CKHOST_CKH_KERNELS_H

#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CKH_KERNELS_EXTENSION_ID "ckh.kernels/1"

// What an fp8 encoder does with finite values beyond the format's largest finite value and with
// infinities. CKH_FP8_SATURATE clamps to +-max finite (Inf too, NaN stays NaN); CKH_FP8_NONSAT gives
// NaN for E4M3FN (it has no Inf) and +-Inf for E5M2, which is what PyTorch's .to(float8) does.
#define CKH_FP8_NONSAT 0
#define CKH_FP8_SATURATE 1

typedef struct ckh_kernels {
  uint32_t struct_size;
  uint32_t reserved0;
  const char *isa;  // name of the selected implementation, e.g. "avx2"; static storage

  // Exact widenings.
  void (*bf16_to_f32)(const uint16_t *src, float *dst, uint64_t n);
  void (*f16_to_f32)(const uint16_t *src, float *dst, uint64_t n);
  void (*e4m3_to_f32)(const uint8_t *src, float *dst, uint64_t n);
  void (*e5m2_to_f32)(const uint8_t *src, float *dst, uint64_t n);

  // Rounding narrowings (RNE). f16: overflow gives +-Inf as IEEE requires.
  void (*f32_to_bf16)(const float *src, uint16_t *dst, uint64_t n);
  void (*f32_to_f16)(const float *src, uint16_t *dst, uint64_t n);
  void (*f32_to_e4m3)(const float *src, uint8_t *dst, uint64_t n, int32_t fp8_mode);
  void (*f32_to_e5m2)(const float *src, uint8_t *dst, uint64_t n, int32_t fp8_mode);

  // Scaled narrowings for quantization: dst[i] = round(src[i] * scale) in the target format.
  // The product is computed in f32 (one rounding), then converted with one more rounding.
  void (*f32_to_e4m3_scaled)(const float *src, uint8_t *dst, uint64_t n, float scale, int32_t fp8_mode);
  void (*f32_to_e5m2_scaled)(const float *src, uint8_t *dst, uint64_t n, float scale, int32_t fp8_mode);
  // INT8: round-half-even of src*scale, clamped to [-127, 127]; NaN gives 0.
  void (*f32_to_i8_scaled)(const float *src, int8_t *dst, uint64_t n, float scale);
  // dst[i] = src[i] * scale (in place allowed: src == dst).
  void (*scale_f32)(const float *src, float *dst, uint64_t n, float scale);

  // Reductions over f32. NaN propagates into absmax and maxabsdiff (returns NaN if any input is NaN).
  float (*absmax_f32)(const float *src, uint64_t n);
  double (*sumsq_f32)(const float *src, uint64_t n);  // accumulated in f64
  float (*maxabsdiff_f32)(const float *a, const float *b, uint64_t n);
  // sum((a-b)^2) accumulated in f64.
  double (*sumsqdiff_f32)(const float *a, const float *b, uint64_t n);

  // Appended after SDK 1.1.0 (check struct_size, e.g. CKH_HAS_FIELD, before use).
  // Block-FP8 dequantization in one pass: dst[i] = bf16_rne(f32(e4m3 src[i]) * scale), bit-identical to
  // e4m3_to_f32, scale_f32 and f32_to_bf16 in turn.
  void (*e4m3_scaled_to_bf16)(const uint8_t *src, uint16_t *dst, uint64_t n, float scale);
  // Appended after e4m3_scaled_to_bf16 (check struct_size): a row of block-FP8 codes with one scale per
  // `group` (> 0) elements, dst[i] = bf16_rne(f32(e4m3 src[i]) * scales[i / group]), bit-identical to
  // e4m3_scaled_to_bf16 group by group, in one call per row instead of one per block.
  void (*e4m3_grouped_to_bf16)(const uint8_t *src, uint16_t *dst, uint64_t n, const float *scales, uint64_t group);
} ckh_kernels_t;

// ---- kernel providers (SDK 1.1) ---------------------------------------------------------------------
// A kernel-provider component (ckh_component_t.kind == CKH_COMPONENT_KERNELS, vtable below) supplies
// faster or vendor implementations of some members of ckh_kernels_t: `kernels` is a table of the
// ckh_kernels_t layout (its own struct_size) whose non-NULL members replace the host's.
//
// Which kernel wins, member by member: the provider with the highest `priority`, then the first loaded
// (search order, then file name, as for component ids); the host's built-in table (the best ISA of this
// CPU) has priority 0 and fills every member no provider with priority > 0 supplies. CKHOST_KERNELS=builtin
// ignores every provider. The merged table is what ckh_host_t.kernels and the host's own evaluator use;
// `ckhost --list-plugins` shows which member comes from where. Provided kernels must honour the contract
// above (pure, thread-safe, bit-identical results): a provider changes speed, never bytes.
typedef struct ckh_kernel_provider {
  uint32_t struct_size;
  int32_t priority;               // > 0 to be used; higher wins
  const ckh_kernels_t *kernels;   // plugin-owned, static lifetime; NULL members are not provided
  // Bytes the provider's kernels like to work on per call (a device launch wants more than a CPU
  // cache block); 0 = no preference. The host evaluates in blocks of the largest preference of the
  // providers in use, between 1 MiB (its default) and 64 MiB.
  uint64_t preferred_work_bytes;
} ckh_kernel_provider_t;

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_KERNELS_H
