// arch_sse2.cpp — the "sse2" kernel table; the kernels are in impl.hpp. This TU alone is compiled
// with -msse2 (kernels/CMakeLists.txt).
#include <type_traits>

#include "impl.hpp"
#include "tables.hpp"

static_assert(std::is_same<Arch, xsimd::sse2>::value, "arch_sse2.cpp must be compiled with -msse2");

namespace ckh::kernels::detail {
const ckh_kernels_t kTableSse2 = CKH_KERNELS_TABLE("sse2");
}  // namespace ckh::kernels::detail
