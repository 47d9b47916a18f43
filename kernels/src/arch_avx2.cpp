// arch_avx2.cpp — the "avx2" kernel table; the kernels are in impl.hpp. This TU alone is compiled
// with -mavx2 -mfma -mf16c (kernels/CMakeLists.txt).
#include <type_traits>

#include "impl.hpp"
#include "tables.hpp"

static_assert(std::is_same<Arch, xsimd::avx2>::value, "arch_avx2.cpp must be compiled with -mavx2 -mfma -mf16c");

namespace ckh::kernels::detail {
const ckh_kernels_t kTableAvx2 = CKH_KERNELS_TABLE("avx2");
}  // namespace ckh::kernels::detail
