/* npy_header.h — bounded parser and writer of NPY headers (C99). */
#ifndef CKH_NPY_HEADER_H
#define CKH_NPY_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include <ckhost/ckh_types.h>

#define NPY_MAX_HEADER 65536

typedef struct npy_header {
  ckh_dtype dtype;
  uint32_t ndim;
  int64_t shape[CKH_MAX_DIMS];
  int fortran_order;
  uint64_t data_offset; /* first data byte */
} npy_header;

/* Parses the first `avail` bytes of a file of `file_size` bytes. Returns 0, or -1 with a one-line
   reason in err. Checks the magic, version, header bounds, the dict literal, and that the data size
   equals numel * itemsize exactly. */
int npy_parse_header(const unsigned char *buf, size_t avail, uint64_t file_size, npy_header *h, char *err, size_t errlen);

/* Writes a v1.0 header (64-byte aligned, '\n' terminated) for tensor t into out. Returns 0, or -1
   with a reason (dtype numpy cannot represent). */
int npy_format_header(const ckh_tensor_info_t *t, char *out, size_t cap, size_t *len, char *err, size_t errlen);

#endif
