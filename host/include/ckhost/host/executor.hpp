// executor.hpp — runs a laid-out plan: parallel, memory-bounded, atomic.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <ckhost/ckh_kernels.h>
#include <ckhost/ckh_writer.h>

#include "ckhost/host/graph.hpp"

namespace ckh::host {

struct ExecOptions {
  unsigned threads = 0;                    // 0 = all cores
  uint64_t max_memory = 1ull << 30;        // bound on evaluation buffers (bytes)
  bool force = false;                      // replace a non-empty destination
  int progress = -1;                       // -1 auto (bar on a terminal), 0 off, 1 plain lines
  int32_t fp8_mode = CKH_FP8_NONSAT;
  // Move plain byte runs with copy_file_range instead of pread + pwrite through a 1 MiB block. Off by
  // default: on ext4 the kernel copies through a pipe in 64 KiB steps under the output's inode lock,
  // which measured slower (reshard of the 2.2 GB model: 0.37 s vs 0.29 s, 1.3x the CPU). It pays
  // where the filesystem shares extents (XFS/btrfs reflink) or copies server-side (NFS 4.2).
  bool copy_file_range = false;
};

struct ExecStats {
  uint64_t bytes = 0;        // tensor bytes produced
  uint64_t file_bytes = 0;   // total size of all output files
  uint64_t files = 0;
  uint64_t regions = 0;
  uint64_t direct_bytes = 0; // bytes moved in-kernel (copy_file_range) without passing through memory
  double seconds = 0;
  unsigned threads = 0;
  uint64_t chunk_bytes = 0;
};

// Called after every region is written, with one digest per region; may patch bytes.
using FinishFn = std::function<void(const std::vector<ckh_region_digest_t> &, ckh_patcher_t *)>;

// Checks that the source pieces lie inside their files (a truncated file is reported before any
// output exists). Throws naming the file and tensor.
void check_sources(const Graph &g);

// Writes g.layout into directory `dst`: everything goes to a temporary sibling directory first,
// which is renamed to `dst` only when complete; on any error or Ctrl-C it is removed and `dst` is
// left as it was. `dst` must not exist, or be empty, or --force must be given.
ExecStats execute(const Graph &g, const std::string &dst, const ExecOptions &opt, const FinishFn &finish);

// Refuses a destination that is the source or lies inside/around it, or that exists non-empty
// without force. Called before planning so that no work is wasted.
void check_destination(const std::string &src, const std::string &dst, bool force);

uint64_t parse_size(const std::string &s);  // "500MB" (10^6), "2GiB" (2^30), "123" bytes
std::string human_bytes(double b);            // "2.20 GB"

}  // namespace ckh::host
