// dispatch.cpp — which kernel tables this CPU can run, and the choice of the best one.
// Detection is our own CPUID + XGETBV (xsimd 8.1's detection misreads SSE2/AVX and ignores XCR0).
// Compiled with the baseline flags only.
#include <cpuid.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include <ckhost/kernels/kernels.hpp>

#include "tables.hpp"

namespace ckh::kernels {
namespace {

struct Isa {
  const char *name;
  const ckh_kernels_t *table;
};
// Ordered from least to most capable; each level's CPU requirements include the previous one's.
const Isa kIsas[] = {{"scalar", &detail::kTableScalar},
                     {"sse2", &detail::kTableSse2},
                     {"avx2", &detail::kTableAvx2},
                     {"avx512", &detail::kTableAvx512},
                     {"avx512bf16", &detail::kTableAvx512Bf16}};
constexpr int kNumIsas = sizeof kIsas / sizeof kIsas[0];

uint64_t xgetbv0() {
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

// The highest index into kIsas this CPU and OS support.
int detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
  const bool sse2 = d & (1u << 26);
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28), f16c = c & (1u << 29);
  if (!sse2) return 0;
  // The OS must save the registers: XCR0 bits 1-2 (SSE, AVX) for ymm, also 5-7 (opmask, zmm) for zmm.
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6, os_zmm = (xcr0 & 0xE6) == 0xE6;
  unsigned b7 = 0, a71 = 0;
  if (__get_cpuid_max(0, nullptr) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    b7 = b;
    const unsigned subleaves = a;
    if (subleaves >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      a71 = a;
    }
  }
  const bool avx2 = b7 & (1u << 5), avx512f = b7 & (1u << 16), avx512dq = b7 & (1u << 17),
             avx512bw = b7 & (1u << 30), avx512vl = b7 & (1u << 31);
  if (!(avx && avx2 && fma && f16c && os_ymm)) return 1;
  if (!(avx512f && avx512bw && avx512dq && avx512vl && os_zmm)) return 2;
  if (!(a71 & (1u << 5))) return 3;  // AVX512_BF16: CPUID.(EAX=7,ECX=1):EAX[5]
  return 4;
}

int supported() {
  static const int level = detect();
  return level;
}

int index_of(const std::string &isa) {
  for (int i = 0; i < kNumIsas; ++i)
    if (isa == kIsas[i].name) return i;
  return -1;
}

}  // namespace

const ckh_kernels_t *for_isa(const std::string &isa) {
  const int i = index_of(isa);
  return i >= 0 && i <= supported() ? kIsas[i].table : nullptr;
}

std::vector<std::string> available_isas() {
  std::vector<std::string> v;
  for (int i = 0; i <= supported(); ++i) v.push_back(kIsas[i].name);
  return v;
}

const ckh_kernels_t *best() {
  static const ckh_kernels_t *const chosen = [] {
    int level = supported();
    if (const char *e = std::getenv("CKHOST_ISA")) {
      const int cap = index_of(e);
      if (cap >= 0 && cap < level) level = cap;  // unknown names do not cap
    }
    return kIsas[level].table;
  }();
  return chosen;
}

}  // namespace ckh::kernels
