// tables.hpp — the per-ISA kernel tables, one definition per translation unit (arch_<isa>.cpp).
// They are plain constant-initialised data: reading one runs no code compiled for its ISA.
#pragma once
#include <ckhost/ckh_kernels.h>

namespace ckh::kernels::detail {
extern const ckh_kernels_t kTableScalar;
extern const ckh_kernels_t kTableSse2;
extern const ckh_kernels_t kTableAvx2;
extern const ckh_kernels_t kTableAvx512;
extern const ckh_kernels_t kTableAvx512Bf16;
}  // namespace ckh::kernels::detail
