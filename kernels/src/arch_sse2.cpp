// arch_sse2.cpp — the "sse2" kernel table (compiled with this ISA's flags only; see CMakeLists.txt).
#include "impl.hpp"

namespace ckh::kernels::detail {
const ckh_kernels_t *table_sse2() {
  static const ckh_kernels_t t = Kern<xsimd::sse2>::table("sse2");
  return &t;
}
}  // namespace ckh::kernels::detail
