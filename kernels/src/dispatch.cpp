// dispatch.cpp — picks the kernel table for this CPU (own checks; xsimd 8.1's detection is not used),
// capped by CKHOST_ISA, and the generic dtype conversion on top of the tables.
#include <cstdlib>
#include <cstring>
#include <string>

#include <ckhost/kernels/kernels.hpp>

namespace ckh::kernels {
namespace detail {
const ckh_kernels_t *table_scalar();
const ckh_kernels_t *table_sse2();
const ckh_kernels_t *table_avx2();
const ckh_kernels_t *table_avx512();
}  // namespace detail

namespace {

// __builtin_cpu_supports consults CPUID and, for AVX/AVX-512, that the OS saves the registers (XCR0).
bool cpu_has(const std::string &isa) {
  __builtin_cpu_init();
  if (isa == "scalar") return true;
  if (isa == "sse2") return __builtin_cpu_supports("sse2");
  if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  if (isa == "avx512")
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("f16c") &&
           __builtin_cpu_supports("fma");
  return false;
}

const char *const kOrder[] = {"scalar", "sse2", "avx2", "avx512"};

const ckh_kernels_t *table_of(const std::string &isa) {
  if (isa == "scalar") return detail::table_scalar();
  if (isa == "sse2") return detail::table_sse2();
  if (isa == "avx2") return detail::table_avx2();
  if (isa == "avx512") return detail::table_avx512();
  return nullptr;
}

}  // namespace

const ckh_kernels_t *for_isa(const std::string &isa) { return cpu_has(isa) ? table_of(isa) : nullptr; }

std::vector<std::string> available_isas() {
  std::vector<std::string> v;
  for (const char *i : kOrder)
    if (cpu_has(i)) v.push_back(i);
  return v;
}

const ckh_kernels_t *best() {
  static const ckh_kernels_t *chosen = [] {
    int cap = 3;
    if (const char *e = std::getenv("CKHOST_ISA"))
      for (int i = 0; i < 4; ++i)
        if (std::strcmp(e, kOrder[i]) == 0) cap = i;
    for (int i = cap; i >= 0; --i)
      if (cpu_has(kOrder[i])) return table_of(kOrder[i]);
    return detail::table_scalar();
  }();
  return chosen;
}

namespace {

bool is_int(ckh_dtype d) {
  return d == CKH_DT_I8 || d == CKH_DT_U8 || d == CKH_DT_I16 || d == CKH_DT_U16 || d == CKH_DT_I32 || d == CKH_DT_U32 ||
         d == CKH_DT_I64 || d == CKH_DT_U64 || d == CKH_DT_BOOL;
}

template <class T>
void load_int(const void *s, uint64_t i, double &out) {
  T v;
  std::memcpy(&v, static_cast<const char *>(s) + i * sizeof(T), sizeof(T));
  out = static_cast<double>(v);
}

// Element i of an integer/bool tensor as a double (exact for |v| < 2^53).
double int_at(ckh_dtype d, const void *s, uint64_t i) {
  double v = 0;
  switch (d) {
    case CKH_DT_I8: load_int<int8_t>(s, i, v); break;
    case CKH_DT_U8: load_int<uint8_t>(s, i, v); break;
    case CKH_DT_BOOL: load_int<uint8_t>(s, i, v); v = v != 0; break;
    case CKH_DT_I16: load_int<int16_t>(s, i, v); break;
    case CKH_DT_U16: load_int<uint16_t>(s, i, v); break;
    case CKH_DT_I32: load_int<int32_t>(s, i, v); break;
    case CKH_DT_U32: load_int<uint32_t>(s, i, v); break;
    case CKH_DT_I64: load_int<int64_t>(s, i, v); break;
    case CKH_DT_U64: load_int<uint64_t>(s, i, v); break;
    default: break;
  }
  return v;
}

template <class T>
void store_sat(void *d, uint64_t i, double v, double lo, double hi) {
  if (v != v) v = 0;
  v = v < lo ? lo : (v > hi ? hi : v);
  T t = static_cast<T>(v);
  std::memcpy(static_cast<char *>(d) + i * sizeof(T), &t, sizeof(T));
}

// Float -> integer: truncation toward zero, saturating, NaN -> 0; bool: nonzero -> 1.
void int_store(ckh_dtype d, void *dst, uint64_t i, double v) {
  switch (d) {
    case CKH_DT_I8: store_sat<int8_t>(dst, i, v, -128, 127); break;
    case CKH_DT_U8: store_sat<uint8_t>(dst, i, v, 0, 255); break;
    case CKH_DT_BOOL: store_sat<uint8_t>(dst, i, (v != 0 && v == v) ? 1 : 0, 0, 1); break;
    case CKH_DT_I16: store_sat<int16_t>(dst, i, v, -32768, 32767); break;
    case CKH_DT_U16: store_sat<uint16_t>(dst, i, v, 0, 65535); break;
    case CKH_DT_I32: store_sat<int32_t>(dst, i, v, -2147483648.0, 2147483647.0); break;
    case CKH_DT_U32: store_sat<uint32_t>(dst, i, v, 0, 4294967295.0); break;
    case CKH_DT_I64: store_sat<int64_t>(dst, i, v, -9223372036854775808.0, 9223372036854774784.0); break;
    case CKH_DT_U64: store_sat<uint64_t>(dst, i, v, 0, 18446744073709549568.0); break;
    default: break;
  }
}

// f32 <-> float dtype (not F64) through the table.
bool to_f32(ckh_dtype from, const void *s, float *d, uint64_t n, const ckh_kernels_t *k) {
  switch (from) {
    case CKH_DT_F32: std::memcpy(d, s, n * 4); return true;
    case CKH_DT_BF16: k->bf16_to_f32(static_cast<const uint16_t *>(s), d, n); return true;
    case CKH_DT_F16: k->f16_to_f32(static_cast<const uint16_t *>(s), d, n); return true;
    case CKH_DT_F8_E4M3FN: k->e4m3_to_f32(static_cast<const uint8_t *>(s), d, n); return true;
    case CKH_DT_F8_E5M2: k->e5m2_to_f32(static_cast<const uint8_t *>(s), d, n); return true;
    default: return false;
  }
}
bool from_f32(const float *s, ckh_dtype to, void *d, uint64_t n, const ckh_kernels_t *k, int32_t mode) {
  switch (to) {
    case CKH_DT_F32: std::memcpy(d, s, n * 4); return true;
    case CKH_DT_BF16: k->f32_to_bf16(s, static_cast<uint16_t *>(d), n); return true;
    case CKH_DT_F16: k->f32_to_f16(s, static_cast<uint16_t *>(d), n); return true;
    case CKH_DT_F8_E4M3FN: k->f32_to_e4m3(s, static_cast<uint8_t *>(d), n, mode); return true;
    case CKH_DT_F8_E5M2: k->f32_to_e5m2(s, static_cast<uint8_t *>(d), n, mode); return true;
    default: return false;
  }
}

}  // namespace

bool convert(ckh_dtype from, const void *src, ckh_dtype to, void *dst, uint64_t n, const ckh_kernels_t *k,
             int32_t fp8_mode) {
  if (!k) k = best();
  if (from == to) {
    std::memcpy(dst, src, n * ckh_dtype_size(from));
    return ckh_dtype_size(from) != 0;
  }
  const bool fsmall = ckh_dtype_is_float(from) && from != CKH_DT_F64;
  const bool tsmall = ckh_dtype_is_float(to) && to != CKH_DT_F64;
  constexpr uint64_t B = 1024;
  float buf[B];
  double dbuf[B];
  if (fsmall && tsmall) {
    if (from == CKH_DT_F32) return from_f32(static_cast<const float *>(src), to, dst, n, k, fp8_mode);
    if (to == CKH_DT_F32) return to_f32(from, src, static_cast<float *>(dst), n, k);
    const size_t fs = ckh_dtype_size(from), ts = ckh_dtype_size(to);
    for (uint64_t i = 0; i < n; i += B) {
      const uint64_t m = n - i < B ? n - i : B;
      to_f32(from, static_cast<const char *>(src) + i * fs, buf, m, k);
      from_f32(buf, to, static_cast<char *>(dst) + i * ts, m, k, fp8_mode);
    }
    return true;
  }
  // Paths through f64: F64 and integers.
  const size_t fs = ckh_dtype_size(from), ts = ckh_dtype_size(to);
  if (fs == 0 || ts == 0) return false;
  for (uint64_t i = 0; i < n; i += B) {
    const uint64_t m = n - i < B ? n - i : B;
    const char *s = static_cast<const char *>(src) + i * fs;
    char *d = static_cast<char *>(dst) + i * ts;
    if (from == CKH_DT_F64) std::memcpy(dbuf, s, m * 8);
    else if (fsmall) {
      to_f32(from, s, buf, m, k);
      for (uint64_t j = 0; j < m; ++j) dbuf[j] = buf[j];
    } else if (is_int(from)) {
      for (uint64_t j = 0; j < m; ++j) dbuf[j] = int_at(from, s, j);
    } else {
      return false;
    }
    if (to == CKH_DT_F64) std::memcpy(d, dbuf, m * 8);
    else if (tsmall) {
      for (uint64_t j = 0; j < m; ++j) buf[j] = static_cast<float>(dbuf[j]);
      from_f32(buf, to, d, m, k, fp8_mode);
    } else if (is_int(to)) {
      for (uint64_t j = 0; j < m; ++j) int_store(to, d, j, dbuf[j]);
    } else {
      return false;
    }
  }
  return true;
}

}  // namespace ckh::kernels
