// arch_avx512bf16.cpp — the "avx512bf16" kernel table: the avx512 kernels, with the block-FP8 to bf16
// dequantization rounding by vcvtne2ps2bf16 where that is exact (impl.hpp). This TU alone is compiled with
// -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512bf16 -mfma -mf16c (kernels/CMakeLists.txt).
#include <type_traits>

#include "impl.hpp"
#include "tables.hpp"

static_assert(std::is_same<Arch, xsimd::avx512bw>::value, "arch_avx512bf16.cpp must be compiled with the avx512 flags");
#if !defined(__AVX512BF16__)
#error "arch_avx512bf16.cpp must be compiled with -mavx512bf16"
#endif

namespace ckh::kernels::detail {
const ckh_kernels_t kTableAvx512Bf16 = CKH_KERNELS_TABLE("avx512bf16");
}  // namespace ckh::kernels::detail
