// executor.hpp — runs a laid-out plan: parallel, memory-bounded, atomic.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
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
  uint64_t quant_calls = 0;              // quantizer calls (each computes every output of its blocks)
  uint64_t quant_blocks = 0;
  uint64_t quant_recomputed_blocks = 0;  // blocks computed twice because the cache budget dropped them
};

// Called after every region is written, with one digest per region; may patch bytes.
using FinishFn = std::function<void(const std::vector<ckh_region_digest_t> &, ckh_patcher_t *)>;

// Checks that the source pieces lie inside their files (a truncated file is reported before any
// output exists). Throws naming the file and tensor.
void check_sources(const Graph &g);

// One validated plan written in phases, so that a later driver can run the same plan on several
// processes or nodes, each writing its own files, while one of them finishes and commits:
//   Execution e(g, dst, opt);   // plan: chunk the regions into tasks, one queue per output file
//   e.create(files);            // the temporary sibling directory; create, preallocate and fill the
//                               // literal bytes of these output files (all when empty); idempotent
//   e.run(files);               // evaluate and write the tasks of these files (all when empty); every
//                               // file at most once; several disjoint calls are allowed
//   e.digests();                // per-region digests (CRC-32s the writer asked for); needs every file run
//   e.finish(fn);               // the writer's finish() with the digests (patches), close the files
//   e.commit();                 // rename the directory into place
// Destroying an Execution that was not committed removes the temporary directory (errors, Ctrl-C).
class Execution {
 public:
  Execution(const Graph &g, const std::string &dst, const ExecOptions &opt);
  ~Execution();
  Execution(const Execution &) = delete;
  Execution &operator=(const Execution &) = delete;
  void create(const std::vector<int32_t> &files = {});
  ExecStats run(const std::vector<int32_t> &files = {});
  std::vector<ckh_region_digest_t> digests() const;
  void finish(const FinishFn &fn);
  ExecStats commit();
  std::string temp_dir() const;
  size_t task_count() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Writes g.layout into directory `dst` (all phases of Execution): everything goes to a temporary
// sibling directory first, which is renamed to `dst` only when complete; on any error or Ctrl-C it is
// removed and `dst` is left as it was. `dst` must not exist, or be empty, or --force must be given.
ExecStats execute(const Graph &g, const std::string &dst, const ExecOptions &opt, const FinishFn &finish);

// Refuses a destination that is the source or lies inside/around it, or that exists non-empty
// without force. Called before planning so that no work is wasted.
void check_destination(const std::string &src, const std::string &dst, bool force);

uint64_t parse_size(const std::string &s);  // "500MB" (10^6), "2GiB" (2^30), "123" bytes
std::string human_bytes(double b);            // "2.20 GB"

}  // namespace ckh::host
