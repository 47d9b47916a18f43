// ckh_host.h — the services table the host hands every plugin in init().
//
// Owner: the host. Lifetime: from the plugin's init() until its deinit() returns. Every member is
// [thread-safe]. Plugins call the host only through this table and never link against the host.
#ifndef CKHOST_CKH_HOST_H
#define CKHOST_CKH_HOST_H

#include "ckh_kernels.h"
#include "ckh_types.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ckh_host ckh_host_t;

struct ckh_host {
  uint32_t struct_size;
  uint32_t abi_major;          // CKH_ABI_MAJOR of the host
  uint32_t abi_minor;          // CKH_ABI_MINOR of the host (informative; struct_size is authoritative)
  uint32_t reserved0;
  const char *host_name;       // "ckhost"; static storage
  const char *host_version;    // semver of the host; static storage

  // Writes one log line. `msg` is borrowed for the call and copied. [thread-safe]
  void (*log)(const ckh_host_t *host, int32_t level, const char *msg);

  // Records the message that explains the non-zero status the caller is about to return. The host
  // copies it into the calling thread's last-error slot and reads it when the call returns; the last
  // call before returning wins. Name the file, tensor and expected vs actual value. [thread-safe]
  void (*set_error)(const ckh_host_t *host, ckh_status code, const char *msg);

  // Memory the host will own or free (e.g. buffers passed back to it). `align` is a power of two
  // (0 = 16). Returns NULL when out of memory. free(NULL) is a no-op. [thread-safe]
  void *(*alloc)(const ckh_host_t *host, uint64_t size, uint64_t align);
  void (*free)(const ckh_host_t *host, void *ptr);

  // Optional services by id ("ckh.kernels/1", vendor ids "<reverse-dns>.<name>/<rev>"); NULL when
  // unknown. The returned table is host-owned with the lifetime of this table. [thread-safe]
  const void *(*get_extension)(const ckh_host_t *host, const char *id);

  // 1 once the user asked to stop (Ctrl-C); long plugin loops poll it and return CKH_E_CANCELLED.
  uint8_t (*is_cancelled)(const ckh_host_t *host);

  // The kernel table (same as get_extension(host, CKH_KERNELS_EXTENSION_ID)); never NULL.
  const ckh_kernels_t *kernels;
};

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // CKHOST_CKH_HOST_H
