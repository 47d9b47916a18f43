// eval.hpp — evaluates any box of an expression node into a (possibly strided) memory view.
//
// Evaluation is recursive over the node graph and never materialises more than the requested box:
// slice/concat/pad/permute only re-address the destination view; reshape splits the box into
// row-major contiguous runs; cast/scale/quantize go through temporaries of the box's size; a source
// box is read with pread from the pieces that intersect it (one direct read when the bytes are
// contiguous on disk and in memory).
#pragma once
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include <ckhost/ckh_kernels.h>

#include "ckhost/host/graph.hpp"

namespace ckh::host {

using Index = std::array<int64_t, CKH_MAX_DIMS>;

// A strided window onto memory: element (i0..ik) lives at ptr + sum(i*stride)*elsize.
struct View {
  char *ptr = nullptr;
  ckh_dtype dtype = CKH_DT_INVALID;
  Shape shape;
  Index stride{};
  static View dense(void *p, ckh_dtype dt, const Shape &s);
  bool is_dense() const;
  View sub(uint32_t dim, int64_t start, int64_t len) const;
};

// A byte range of a source file that holds a box exactly (for zero-copy transfers).
struct FileRange {
  uint32_t file = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};

// Quantizer work of one Evaluator.
struct QuantStats {
  uint64_t calls = 0;              // quantize_n / quantize calls
  uint64_t blocks = 0;             // blocks computed, over all calls
  uint64_t recomputed_blocks = 0;  // blocks computed again (their outputs had left the cache)
};

// Quantizers run once per chunk of whole blocks for all of their outputs: a chunk's outputs stay in a
// shared cache (bounded by `quant_cache_bytes`) until each output's part was delivered, so codes and
// scales come from the same call. A chunk holds about `quant_chunk_bytes` of inputs and outputs (at
// least one block). Threads asking for a chunk another thread is computing wait for it.
struct QuantMemo;

class Evaluator {
 public:
  // fds[i] is an open read-only descriptor of g.files[i]. `fp8_mode` applies to casts into fp8.
  Evaluator(const Graph &g, const std::vector<int> &fds, const ckh_kernels_t *k, int32_t fp8_mode = CKH_FP8_NONSAT,
            uint64_t quant_chunk_bytes = 4ull << 20, uint64_t quant_cache_bytes = 256ull << 20);
  ~Evaluator();
  QuantStats quant_stats() const;

  // Writes the box [off, off + v.shape) of node e into v (v.dtype must equal the node's dtype).
  void eval(int32_t e, const Index &off, const View &v) const;

  // When the box of node e is a contiguous, unconverted byte range of one source file, that range.
  std::optional<FileRange> direct_range(int32_t e, const Index &off, const Shape &box) const;

  // When the box of node e only moves bytes (slices, concatenations and reshapes of contiguous
  // source pieces, no conversion), appends the source byte ranges that make up the box in row-major
  // output order and returns true. Returns false (out unspecified) otherwise, or when more than
  // `max_ranges` ranges would be needed.
  bool gather(int32_t e, const Index &off, const Shape &box, std::vector<FileRange> &out, size_t max_ranges) const;

 private:
  void eval_source(const Node &n, const Index &off, const View &v) const;
  void read_piece(const Source &s, const Piece &p, const Index &lo, const Index &hi, const View &v) const;
  void eval_reshape(const Node &n, const Index &off, const View &v) const;
  void eval_quantize(const Node &n, const Index &off, const View &v) const;
  void compute_chunk(int32_t qi, int64_t chunk, std::vector<std::vector<char>> &outs) const;
  void generate(const Source &s, const Index &off, const View &v) const;

  const Graph &g_;
  const std::vector<int> &fds_;
  const ckh_kernels_t *k_;
  int32_t fp8_mode_;
  std::unique_ptr<QuantMemo> memo_;
};

// Copies between two views of equal shape and dtype.
void copy_view(const View &dst, const View &src);
// Converts a dense run of n elements.
void convert_dense(ckh_dtype from, const void *src, ckh_dtype to, void *dst, uint64_t n, const ckh_kernels_t *k,
                   int32_t fp8_mode);
// True when the box [off, off+box) of `shape` is one run in row-major order.
bool flat_contiguous(const Shape &shape, const Index &off, const Shape &box);
// pread exactly len bytes or throw naming the file.
void pread_full(int fd, void *dst, uint64_t len, uint64_t offset, const std::string &path);

}  // namespace ckh::host
