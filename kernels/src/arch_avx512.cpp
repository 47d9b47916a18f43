// arch_avx512.cpp — the "avx512" kernel table (compiled with this ISA's flags only; see CMakeLists.txt).
#include "impl.hpp"

namespace ckh::kernels::detail {
const ckh_kernels_t *table_avx512() {
  static const ckh_kernels_t t = Kern<xsimd::avx512bw>::table("avx512");
  return &t;
}
}  // namespace ckh::kernels::detail
