// arch_avx2.cpp — the "avx2" kernel table (compiled with this ISA's flags only; see CMakeLists.txt).
#include "impl.hpp"

namespace ckh::kernels::detail {
const ckh_kernels_t *table_avx2() {
  static const ckh_kernels_t t = Kern<xsimd::avx2>::table("avx2");
  return &t;
}
}  // namespace ckh::kernels::detail
