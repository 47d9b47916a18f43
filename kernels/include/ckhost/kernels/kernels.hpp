// kernels.hpp — C++ access to the SIMD kernel tables (libckh_kernels, static, PIC).
//
// Implementations: "scalar" (reference, ground truth), "sse2", "avx2" (AVX2+FMA+F16C),
// "avx512" (AVX-512F/BW/DQ/VL). Each per-ISA table is built from one translation unit compiled with
// that ISA's flags; selection is by our own CPUID/XGETBV checks (xsimd 8.1's detection is not used).
#pragma once
#include <string>
#include <vector>

#include <ckhost/ckh_kernels.h>

namespace ckh::kernels {

// The best table for this CPU, capped by the environment variable CKHOST_ISA
// (scalar|sse2|avx2|avx512; an unknown or unsupported value falls back to the best supported one
// below it). Selected once; thread-safe.
const ckh_kernels_t *best();

// The table of one ISA, or nullptr when it is not compiled in or this CPU cannot run it.
const ckh_kernels_t *for_isa(const std::string &isa);

// Names of the ISAs this CPU can run, scalar first.
std::vector<std::string> available_isas();

// Generic element conversion between any two plain dtypes (ckh_dtype_size != 0) using `k`
// (best() when null): floats via the kernels (RNE, NaN kept; fp8 encodes with `fp8_mode`),
// integers and bool by value (float -> int truncates toward zero and saturates; NaN -> 0),
// identical dtypes by memcpy. src and dst must not overlap. Returns false for an unsupported pair.
bool convert(ckh_dtype from, const void *src, ckh_dtype to, void *dst, uint64_t n,
             const ckh_kernels_t *k = nullptr, int32_t fp8_mode = CKH_FP8_NONSAT);

}  // namespace ckh::kernels
