// convert.cpp — ckh::kernels::convert: element conversion between any two plain dtypes.
//
//   same dtype                  memcpy (F8_E8M0 only converts to itself)
//   f32/f16/bf16/e4m3/e5m2      through f32 blocks with the kernel table (RNE, NaN kept, fp8_mode)
//   f64 <-> those               one f64 <-> f32 cast (RNE) plus the table. Going f64 -> f32 -> narrow
//                               rounds twice, which is exact for every narrow format here because f32
//                               keeps at least 2p + 2 bits of a p-bit target (p <= 11).
//   int/bool -> float           one RNE cast to f64 or f32 (then the table for narrow formats)
//   float -> int                truncation toward zero, saturating at the type's limits, NaN -> 0
//   int -> int                  exact integer arithmetic, saturating at the destination's limits
//   -> bool                     value != 0 (so NaN -> 1); bool -> anything: 0 or 1 (any nonzero byte is 1)
//
// Blocks live on the stack: no allocation per call. Elements are read and written with memcpy, so
// src and dst need no alignment.
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include <ckhost/kernels/kernels.hpp>

namespace ckh::kernels {
namespace {

constexpr uint64_t kBlock = 1024;

enum class Cls { Small, F64, Int, None };
Cls cls(ckh_dtype d) {
  switch (d) {
    case CKH_DT_F32: case CKH_DT_F16: case CKH_DT_BF16: case CKH_DT_F8_E4M3FN: case CKH_DT_F8_E5M2:
      return Cls::Small;
    case CKH_DT_F64: return Cls::F64;
    case CKH_DT_I8: case CKH_DT_U8: case CKH_DT_I16: case CKH_DT_U16: case CKH_DT_I32: case CKH_DT_U32:
    case CKH_DT_I64: case CKH_DT_U64: case CKH_DT_BOOL:
      return Cls::Int;
    default: return Cls::None;
  }
}

// f32 <-> the float formats the table handles.
void to_f32(ckh_dtype from, const void *s, float *d, uint64_t n, const ckh_kernels_t *k) {
  switch (from) {
    case CKH_DT_F32: std::memcpy(d, s, n * 4); break;
    case CKH_DT_BF16: k->bf16_to_f32(static_cast<const uint16_t *>(s), d, n); break;
    case CKH_DT_F16: k->f16_to_f32(static_cast<const uint16_t *>(s), d, n); break;
    case CKH_DT_F8_E4M3FN: k->e4m3_to_f32(static_cast<const uint8_t *>(s), d, n); break;
    case CKH_DT_F8_E5M2: k->e5m2_to_f32(static_cast<const uint8_t *>(s), d, n); break;
    default: break;
  }
}
void from_f32(const float *s, ckh_dtype to, void *d, uint64_t n, const ckh_kernels_t *k, int32_t mode) {
  switch (to) {
    case CKH_DT_F32: std::memcpy(d, s, n * 4); break;
    case CKH_DT_BF16: k->f32_to_bf16(s, static_cast<uint16_t *>(d), n); break;
    case CKH_DT_F16: k->f32_to_f16(s, static_cast<uint16_t *>(d), n); break;
    case CKH_DT_F8_E4M3FN: k->f32_to_e4m3(s, static_cast<uint8_t *>(d), n, mode); break;
    case CKH_DT_F8_E5M2: k->f32_to_e5m2(s, static_cast<uint8_t *>(d), n, mode); break;
    default: break;
  }
}

// ---- integer element types ----
struct Bool {};  // one byte holding 0 or 1
template <class T>
struct Tag {
  using type = T;
};
template <class T>
using storage_t = std::conditional_t<std::is_same_v<T, Bool>, uint8_t, T>;

template <class Fn>
void visit_int(ckh_dtype d, Fn &&fn) {
  switch (d) {
    case CKH_DT_I8: fn(Tag<int8_t>{}); break;
    case CKH_DT_U8: fn(Tag<uint8_t>{}); break;
    case CKH_DT_I16: fn(Tag<int16_t>{}); break;
    case CKH_DT_U16: fn(Tag<uint16_t>{}); break;
    case CKH_DT_I32: fn(Tag<int32_t>{}); break;
    case CKH_DT_U32: fn(Tag<uint32_t>{}); break;
    case CKH_DT_I64: fn(Tag<int64_t>{}); break;
    case CKH_DT_U64: fn(Tag<uint64_t>{}); break;
    case CKH_DT_BOOL: fn(Tag<Bool>{}); break;
    default: break;
  }
}

// Element i of an integer array as its value type (bool: 0 or 1).
template <class T>
storage_t<T> get(const void *p, uint64_t i) {
  storage_t<T> v;
  std::memcpy(&v, static_cast<const char *>(p) + i * sizeof v, sizeof v);
  if constexpr (std::is_same_v<T, Bool>) v = v != 0;
  return v;
}
template <class T>
void put(void *p, uint64_t i, storage_t<T> v) {
  std::memcpy(static_cast<char *>(p) + i * sizeof v, &v, sizeof v);
}

// Integer -> integer, saturating; S and D are value types (Bool as uint8_t 0/1 on the source side).
template <class D, class S>
storage_t<D> int_to_int(S v) {
  if constexpr (std::is_same_v<D, Bool>) {
    return v != 0;
  } else {
    using L = std::numeric_limits<D>;
    if constexpr (std::is_signed_v<S>) {
      if (v < 0) {
        if constexpr (!std::is_signed_v<D>) return 0;
        else return static_cast<int64_t>(v) < static_cast<int64_t>(L::min()) ? L::min() : static_cast<D>(v);
      }
    }
    const uint64_t u = static_cast<uint64_t>(v);
    return u > static_cast<uint64_t>(L::max()) ? L::max() : static_cast<D>(u);
  }
}

// Float -> integer: truncate toward zero, saturate, NaN -> 0 (bool: != 0, so NaN -> 1).
template <class D>
storage_t<D> float_to_int(double v) {
  if constexpr (std::is_same_v<D, Bool>) {
    return v != 0;
  } else {
    using L = std::numeric_limits<D>;
    if (v != v) return 0;
    const double t = std::trunc(v);
    const double lo = static_cast<double>(L::min());        // 0 or -2^k: exact
    const double hi = std::ldexp(1.0, L::digits);            // 2^k: first value above the range
    if (t < lo) return L::min();
    if (t >= hi) return L::max();
    return static_cast<D>(t);
  }
}

}  // namespace

bool convert(ckh_dtype from, const void *src, ckh_dtype to, void *dst, uint64_t n, const ckh_kernels_t *k,
             int32_t fp8_mode) {
  const uint32_t fs = ckh_dtype_size(from), ts = ckh_dtype_size(to);
  if (fs == 0 || ts == 0) return false;
  if (from == to) {
    if (n) std::memcpy(dst, src, n * fs);
    return true;
  }
  const Cls cf = cls(from), ct = cls(to);
  if (cf == Cls::None || ct == Cls::None) return false;
  if (!k) k = best();
  if (n == 0) return true;

  const char *s = static_cast<const char *>(src);
  char *d = static_cast<char *>(dst);
  float fbuf[kBlock];

  if (cf == Cls::Small && ct == Cls::Small) {
    if (from == CKH_DT_F32) {
      from_f32(static_cast<const float *>(src), to, dst, n, k, fp8_mode);
    } else if (to == CKH_DT_F32) {
      to_f32(from, src, static_cast<float *>(dst), n, k);
    } else {
      for (uint64_t i = 0; i < n; i += kBlock) {
        const uint64_t m = n - i < kBlock ? n - i : kBlock;
        to_f32(from, s + i * fs, fbuf, m, k);
        from_f32(fbuf, to, d + i * ts, m, k, fp8_mode);
      }
    }
    return true;
  }

  if (cf == Cls::Int && ct == Cls::Int) {
    visit_int(from, [&](auto st) {
      using S = typename decltype(st)::type;
      visit_int(to, [&](auto dt) {
        using D = typename decltype(dt)::type;
        for (uint64_t i = 0; i < n; ++i) put<D>(dst, i, int_to_int<D>(get<S>(src, i)));
      });
    });
    return true;
  }

  for (uint64_t i = 0; i < n; i += kBlock) {
    const uint64_t m = n - i < kBlock ? n - i : kBlock;
    const char *sb = s + i * fs;
    char *db = d + i * ts;
    if (cf == Cls::Small) {  // -> F64 or Int
      to_f32(from, sb, fbuf, m, k);
      if (ct == Cls::F64) {
        for (uint64_t j = 0; j < m; ++j) {
          const double v = fbuf[j];
          std::memcpy(db + j * 8, &v, 8);
        }
      } else {
        visit_int(to, [&](auto dt) {
          using D = typename decltype(dt)::type;
          for (uint64_t j = 0; j < m; ++j) put<D>(db, j, float_to_int<D>(fbuf[j]));
        });
      }
    } else if (cf == Cls::F64) {  // -> Small or Int
      if (ct == Cls::Small) {
        for (uint64_t j = 0; j < m; ++j) {
          double v;
          std::memcpy(&v, sb + j * 8, 8);
          fbuf[j] = static_cast<float>(v);
        }
        from_f32(fbuf, to, db, m, k, fp8_mode);
      } else {
        visit_int(to, [&](auto dt) {
          using D = typename decltype(dt)::type;
          for (uint64_t j = 0; j < m; ++j) {
            double v;
            std::memcpy(&v, sb + j * 8, 8);
            put<D>(db, j, float_to_int<D>(v));
          }
        });
      }
    } else {  // Int -> Small or F64
      visit_int(from, [&](auto st) {
        using S = typename decltype(st)::type;
        if (ct == Cls::F64) {
          for (uint64_t j = 0; j < m; ++j) {
            const double v = static_cast<double>(get<S>(sb, j));
            std::memcpy(db + j * 8, &v, 8);
          }
        } else {
          for (uint64_t j = 0; j < m; ++j) fbuf[j] = static_cast<float>(get<S>(sb, j));
          from_f32(fbuf, to, db, m, k, fp8_mode);
        }
      });
    }
  }
  return true;
}

}  // namespace ckh::kernels
