// arch_avx512.cpp — the "avx512" kernel table; the kernels are in impl.hpp. This TU alone is compiled
// with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -mf16c (kernels/CMakeLists.txt).
#include <type_traits>

#include "impl.hpp"
#include "tables.hpp"

static_assert(std::is_same<Arch, xsimd::avx512bw>::value, "arch_avx512.cpp must be compiled with -mavx512f -mavx512bw -mavx512dq -mavx512vl -mfma -mf16c");

namespace ckh::kernels::detail {
const ckh_kernels_t kTableAvx512 = CKH_KERNELS_TABLE("avx512");
}  // namespace ckh::kernels::detail
