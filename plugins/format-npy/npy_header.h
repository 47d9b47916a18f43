/* npy_header.h — bounded parser and writer of NPY headers (C99, no allocation).

   NPY layout: "\x93NUMPY" | major | minor | header length (u16 LE for 1.0, u32 LE for 2.0 and 3.0) |
   header: a Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), } padded with
   spaces and ending in '\n' (3.0: UTF-8 instead of latin-1) | the data, C or Fortran order. */
#ifndef CKH_NPY_HEADER_H
#define CKH_NPY_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include <ckhost/ckh_types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NPY_MAX_HEADER 65536u /* longest header (dict + padding) accepted */
#define NPY_PREFIX_MAX 12u     /* magic + version + length field */

typedef struct npy_header {
  ckh_dtype dtype;
  uint32_t ndim;
  int64_t shape[CKH_MAX_DIMS];
  int fortran_order;
  unsigned version;      /* major: 1, 2 or 3 */
  uint64_t numel;
  uint64_t data_offset;  /* first data byte */
  uint64_t data_size;    /* numel * itemsize == file_size - data_offset */
} npy_header;

/* Parses the first `avail` bytes of a file of `file_size` bytes (avail >= min(file_size,
   NPY_PREFIX_MAX + NPY_MAX_HEADER) lets every valid header be seen). Returns 0, or -1 with a one-line
   reason in err (no file name: the caller adds it). Checks the magic, the version, that the header lies
   inside the file and is at most NPY_MAX_HEADER bytes, the dict literal (exactly the keys descr,
   fortran_order and shape, each once), the dtype (little-endian or byte-order-free types numpy writes
   for f2/f4/f8, i1..i8, u1..u8, b1), the shape (at most CKH_MAX_DIMS non-negative dims), and that the
   data size equals numel * itemsize exactly (overflow-checked). */
int npy_parse_header(const unsigned char *buf, size_t avail, uint64_t file_size, npy_header *h, char *err,
                     size_t errlen);

/* Element strides (in elements) of a Fortran-order array of this shape: column-major, first index
   fastest; a dim of size 0 counts as 1 so strides stay non-zero. */
void npy_fortran_strides(const npy_header *h, int64_t *stride);

/* NumPy descr of a dtype ("<f4", "|u1", ...), or NULL when NumPy has no such type (BF16, FP8). */
const char *npy_descr(ckh_dtype dt);

/* Writes a v1.0 header (C order, total length a multiple of 64, '\n' terminated) for the dtype and
   shape into out (cap bytes). Returns 0 and *len, or -1 with a reason in err. */
int npy_format_header(ckh_dtype dtype, uint32_t ndim, const int64_t *shape, char *out, size_t cap, size_t *len,
                      char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif
