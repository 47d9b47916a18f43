// ckh_macros.h — export/visibility macros and the struct-size test used across the SDK.
#ifndef CKHOST_CKH_MACROS_H
#define CKHOST_CKH_MACROS_H

#include <stddef.h>

#if defined(_WIN32)
#define CKH_EXPORT __declspec(dllexport)
#elif defined(__GNUC__) || defined(__clang__)
#define CKH_EXPORT __attribute__((visibility("default")))
#else
#define CKH_EXPORT
#endif

#ifdef __cplusplus
#define CKH_NOEXCEPT noexcept
#else
#define CKH_NOEXCEPT
#endif

// True when a struct filled by the other side (whose first member is `uint32_t struct_size`) is large
// enough to hold `field`. Read a field appended in a later minor only after this test.
#define CKH_HAS_FIELD(ptr, type, field) \
  ((ptr) != NULL && (size_t)(ptr)->struct_size >= offsetof(type, field) + sizeof(((type *)0)->field))

#endif  // CKHOST_CKH_MACROS_H
