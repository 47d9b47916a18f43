// executor.cpp — chunked parallel evaluation of a layout into a temporary directory, then rename.
#include "ckhost/host/executor.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <isa-l/crc.h>
#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "ckhost/host/error.hpp"
#include "ckhost/host/eval.hpp"
#include "ckhost/host/services.hpp"

namespace fs = std::filesystem;

namespace ckh::host {

uint64_t parse_size(const std::string &s0) {
  std::string s;
  for (char c : s0)
    if (c != ' ' && c != '_') s += c;
  size_t i = 0;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
  if (i == 0) fail("invalid size '" + s0 + "' (examples: 500MB, 2GiB, 1048576)");
  double v = std::strtod(s.substr(0, i).c_str(), nullptr);
  std::string u;
  for (char c : s.substr(i)) u += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double m = 1;
  if (u.empty() || u == "b") m = 1;
  else if (u == "k" || u == "kb") m = 1e3;
  else if (u == "m" || u == "mb") m = 1e6;
  else if (u == "g" || u == "gb") m = 1e9;
  else if (u == "t" || u == "tb") m = 1e12;
  else if (u == "kib") m = 1024.0;
  else if (u == "mib") m = 1024.0 * 1024;
  else if (u == "gib") m = 1024.0 * 1024 * 1024;
  else if (u == "tib") m = 1024.0 * 1024 * 1024 * 1024;
  else fail("invalid size unit in '" + s0 + "' (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)");
  double r = v * m;
  if (!(r >= 1) || r > 1e18) fail("size '" + s0 + "' out of range");
  return static_cast<uint64_t>(r);
}

std::string human_bytes(double b) {
  const char *u[] = {"B", "KB", "MB", "GB", "TB"};
  int i = 0;
  while (b >= 1000 && i < 4) {
    b /= 1000;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, i ? "%.2f %s" : "%.0f %s", b, u[i]);
  return buf;
}

namespace {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd &&o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd &operator=(Fd &&o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

void pwrite_full(int fd, const void *src, uint64_t len, uint64_t offset, const std::string &path) {
  const char *p = static_cast<const char *>(src);
  while (len > 0) {
    ssize_t r = ::pwrite(fd, p, len > (1ull << 30) ? (1ull << 30) : len, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      fail(path + ": write failed: " + std::strerror(errno), CKH_E_IO);
    }
    p += r;
    offset += static_cast<uint64_t>(r);
    len -= static_cast<uint64_t>(r);
  }
}

// In-kernel copy; false when the kernel/filesystem does not support it for these files.
bool copy_range(int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len) {
  loff_t io = static_cast<loff_t>(in_off), oo = static_cast<loff_t>(out_off);
  while (len > 0) {
    ssize_t r = ::copy_file_range(in, &io, out, &oo, len, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (r == 0) return false;
    len -= static_cast<uint64_t>(r);
  }
  return true;
}

void copy_whole_file(const std::string &from, const std::string &to) {
  Fd in(::open(from.c_str(), O_RDONLY | O_CLOEXEC));
  if (in.fd < 0) fail(from + ": cannot open side file: " + std::strerror(errno), CKH_E_IO);
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) fail(from + ": stat failed", CKH_E_IO);
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (out.fd < 0) fail(to + ": cannot create: " + std::strerror(errno), CKH_E_IO);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (copy_range(in.fd, 0, out.fd, 0, size)) return;
  std::vector<char> buf(1 << 20);
  for (uint64_t off = 0; off < size;) {
    uint64_t n = std::min<uint64_t>(buf.size(), size - off);
    pread_full(in.fd, buf.data(), n, off, from);
    pwrite_full(out.fd, buf.data(), n, off, to);
    off += n;
  }
}

class Progress {
 public:
  Progress(uint64_t total, int mode) : total_(total), mode_(mode) {
    if (mode_ < 0) mode_ = ::isatty(2) ? 2 : 1;
    start_ = std::chrono::steady_clock::now();
    if (mode_ > 0 && total_ > 0) th_ = std::thread([this] { loop(); });
  }
  ~Progress() { stop(); }
  void add(uint64_t n) { done_ += n; }
  void stop() {
    {
      std::lock_guard<std::mutex> lk(m_);
      if (stopped_) return;
      stopped_ = true;
    }
    cv_.notify_all();
    if (th_.joinable()) th_.join();
    if (mode_ == 2 && printed_) std::fputs("\n", stderr);
  }

 private:
  void print(bool final) {
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const uint64_t d = done_.load();
    const double frac = total_ ? static_cast<double>(d) / static_cast<double>(total_) : 1.0;
    const double rate = t > 0 ? static_cast<double>(d) / t : 0;
    char eta[32] = "--";
    if (rate > 0 && d < total_) std::snprintf(eta, sizeof eta, "%.0fs", static_cast<double>(total_ - d) / rate);
    if (mode_ == 2) {
      char bar[31];
      int w = static_cast<int>(frac * 30);
      for (int i = 0; i < 30; ++i) bar[i] = i < w ? '#' : '.';
      bar[30] = 0;
      std::fprintf(stderr, "\r[%s] %3.0f%%  %s / %s  %s/s  ETA %s   ", bar, frac * 100, human_bytes(static_cast<double>(d)).c_str(),
                   human_bytes(static_cast<double>(total_)).c_str(), human_bytes(rate).c_str(), eta);
      printed_ = true;
    } else if (final || frac >= next_) {
      std::fprintf(stderr, "ckhost: progress %3.0f%%  %s / %s  %s/s\n", frac * 100, human_bytes(static_cast<double>(d)).c_str(),
                   human_bytes(static_cast<double>(total_)).c_str(), human_bytes(rate).c_str());
      while (next_ <= frac) next_ += 0.1;
    }
    std::fflush(stderr);
  }
  void loop() {
    std::unique_lock<std::mutex> lk(m_);
    while (!stopped_) {
      cv_.wait_for(lk, std::chrono::milliseconds(mode_ == 2 ? 200 : 1000));
      if (!stopped_) print(false);
    }
    if (done_.load() == total_) print(true);
  }
  uint64_t total_;
  int mode_;
  std::atomic<uint64_t> done_{0};
  std::chrono::steady_clock::time_point start_;
  std::thread th_;
  std::mutex m_;
  std::condition_variable cv_;
  bool stopped_ = false, printed_ = false;
  double next_ = 0.1;
};

struct Task {
  size_t region;
  Index off;
  Shape box;
  uint64_t out_offset;  // absolute offset in the output file
  uint64_t bytes;
};

// Splits a row-major box of `shape` (elements of `es` bytes) into contiguous runs of at most `limit`
// bytes (one element at least): emit(offset, box, byte offset of the run within the whole).
template <class Emit>
void split_runs(const Shape &shape, uint64_t es, uint64_t limit, Emit &&emit) {
  const uint32_t nd = shape.ndim;
  if (shape.numel() == 0) return;
  if (nd == 0) {
    emit(Index{}, shape, uint64_t{0});
    return;
  }
  // k: first dim whose trailing block fits into a run.
  uint32_t k = 0;
  uint64_t inner = es;
  for (uint32_t i = 1; i < nd; ++i) inner *= static_cast<uint64_t>(shape.d[i]);
  while (k + 1 < nd && inner > limit) {
    ++k;
    inner /= static_cast<uint64_t>(shape.d[k]);
  }
  const int64_t per = static_cast<int64_t>(std::max<uint64_t>(1, limit / inner));
  Index rm{};
  {
    int64_t acc = 1;
    for (int i = static_cast<int>(nd) - 1; i >= 0; --i) {
      rm[static_cast<size_t>(i)] = acc;
      acc *= shape.d[static_cast<size_t>(i)];
    }
  }
  Index idx{};
  while (true) {
    for (int64_t s = 0; s < shape.d[k]; s += per) {
      Index off = idx;
      off[k] = s;
      Shape box = shape;
      for (uint32_t i = 0; i < k; ++i) box.d[i] = 1;
      box.d[k] = std::min(per, shape.d[k] - s);
      int64_t flat = 0;
      for (uint32_t i = 0; i < nd; ++i) flat += off[i] * rm[i];
      emit(off, box, static_cast<uint64_t>(flat) * es);
    }
    int i = static_cast<int>(k) - 1;
    for (; i >= 0; --i) {
      if (++idx[static_cast<size_t>(i)] < shape.d[static_cast<size_t>(i)]) break;
      idx[static_cast<size_t>(i)] = 0;
    }
    if (i < 0) break;
  }
}

// Splits a region into tasks of at most chunk bytes.
void plan_chunks(const Graph &g, size_t ri, uint64_t chunk, std::vector<Task> &tasks) {
  const Region &r = g.layout.regions[ri];
  const Node &n = g.node(r.node);
  const uint64_t es = storage_size(n.dtype);
  split_runs(n.shape, es, chunk, [&](const Index &off, const Shape &box, uint64_t at) {
    tasks.push_back({ri, off, box, r.offset + at, static_cast<uint64_t>(box.numel()) * es});
  });
}

bool dir_empty(const fs::path &p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && fs::directory_iterator(p, ec) == fs::directory_iterator();
}

fs::path absolute_clean(const std::string &p) {
  std::error_code ec;
  fs::path a = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? fs::absolute(p).lexically_normal() : a;
}

bool is_within(const fs::path &inner, const fs::path &outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

}  // namespace

void check_destination(const std::string &src, const std::string &dst, bool force) {
  const fs::path s = absolute_clean(src), d = absolute_clean(dst);
  if (is_within(d, s) || is_within(s, d))
    fail("destination '" + dst + "' overlaps the source '" + src + "': choose a directory outside it");
  std::error_code ec;
  if (fs::exists(d, ec)) {
    if (!fs::is_directory(d, ec)) fail("destination '" + dst + "' exists and is not a directory");
    if (!dir_empty(d) && !force) fail("destination '" + dst + "' is not empty (use --force to replace it)");
  }
  const fs::path parent = d.parent_path();
  if (!fs::is_directory(parent, ec)) fail("parent directory of '" + dst + "' does not exist", CKH_E_IO);
}

void check_sources(const Graph &g) {
  std::vector<uint64_t> sizes(g.files.size());
  for (size_t i = 0; i < g.files.size(); ++i) {
    struct stat st {};
    if (::stat(g.files[i].c_str(), &st) != 0) fail(g.files[i] + ": cannot stat: " + std::strerror(errno), CKH_E_IO);
    sizes[i] = static_cast<uint64_t>(st.st_size);
  }
  for (const Source &s : g.sources) {
    if (s.generated) continue;
    const uint64_t es = storage_size(s.dtype);
    if (es == 0) fail("tensor '" + s.name + "': unsupported dtype " + dtype_name(s.dtype), CKH_E_UNSUPPORTED);
    int64_t covered = 0;
    for (const Piece &p : s.pieces) {
      if (p.file >= g.files.size()) fail("tensor '" + s.name + "': piece names file #" + std::to_string(p.file), CKH_E_FORMAT);
      int64_t vol = 1, last = 0;
      for (uint32_t i = 0; i < s.shape.ndim; ++i) {
        if (p.offset[i] < 0 || p.size[i] < 0 || p.offset[i] + p.size[i] > s.shape.d[i] || p.stride[i] < 0)
          fail("tensor '" + s.name + "': a piece lies outside shape " + s.shape.str(), CKH_E_FORMAT);
        vol *= p.size[i];
        if (p.size[i] > 0) last += (p.size[i] - 1) * p.stride[i];
      }
      covered += vol;
      if (vol == 0) continue;
      const uint64_t end = p.byte_offset + (static_cast<uint64_t>(last) + 1) * es;
      if (end > sizes[p.file] || end < p.byte_offset)
        fail(g.files[p.file] + ": tensor '" + s.name + "' needs bytes up to " + std::to_string(end) + " but the file has " +
                 std::to_string(sizes[p.file]) + " (truncated?)",
             CKH_E_FORMAT);
    }
    if (covered != s.shape.numel())
      fail("tensor '" + s.name + "': pieces cover " + std::to_string(covered) + " of " + std::to_string(s.shape.numel()) +
               " elements",
           CKH_E_FORMAT);
  }
}

// ---- Execution: plan, create, run (subsets of files), finish, commit -------------------------------

struct Execution::State {
  const Graph &g;
  std::string dst;
  fs::path d, tmp;
  ExecOptions opt;
  std::chrono::steady_clock::time_point t0;
  unsigned threads = 1;
  uint64_t chunk = 0;
  std::vector<Task> tasks;
  std::vector<std::vector<size_t>> file_tasks;  // per output file: its tasks, in order
  std::vector<uint32_t> crcs;                   // per task
  std::vector<char> created, ran;               // per output file
  std::vector<int> in_fds;
  std::vector<Fd> in_owned;
  std::vector<Fd> out;
  std::vector<std::string> out_paths;
  bool temp_made = false, finished = false, committed = false;
  ExecStats stats;
  State(const Graph &graph, const std::string &dest, const ExecOptions &o) : g(graph), dst(dest), opt(o) {}
  ~State() {
    if (temp_made && !committed) {
      std::error_code e;
      fs::remove_all(tmp, e);
    }
  }
};

Execution::Execution(const Graph &g, const std::string &dst, const ExecOptions &opt) : s_(std::make_unique<State>(g, dst, opt)) {
  State &S = *s_;
  S.t0 = std::chrono::steady_clock::now();
  S.d = absolute_clean(dst);
  S.tmp = S.d.parent_path() / ("." + S.d.filename().string() + ".ckhost-tmp-" + std::to_string(::getpid()));
  S.threads = opt.threads ? opt.threads : std::max(1u, std::thread::hardware_concurrency());
  S.chunk = std::clamp<uint64_t>(opt.max_memory / (static_cast<uint64_t>(S.threads) * 4), 1ull << 20, 64ull << 20);
  for (size_t i = 0; i < g.layout.regions.size(); ++i) plan_chunks(g, i, S.chunk, S.tasks);
  S.file_tasks.resize(g.layout.files.size());
  for (size_t i = 0; i < S.tasks.size(); ++i)
    S.file_tasks[static_cast<size_t>(g.layout.regions[S.tasks[i].region].file)].push_back(i);
  S.crcs.assign(S.tasks.size(), 0);
  S.created.assign(g.layout.files.size(), 0);
  S.ran.assign(g.layout.files.size(), 0);
  S.out.resize(g.layout.files.size());
  for (const OutFile &f : g.layout.files) S.out_paths.push_back((S.tmp / f.relpath).string());
  S.stats.regions = g.layout.regions.size();
  S.stats.chunk_bytes = S.chunk;
}

Execution::~Execution() = default;

std::string Execution::temp_dir() const { return s_->tmp.string(); }

size_t Execution::task_count() const { return s_->tasks.size(); }

void Execution::create(const std::vector<int32_t> &files) {
  State &S = *s_;
  const Graph &g = S.g;
  std::error_code ec;
  if (!S.temp_made) {
    fs::remove_all(S.tmp, ec);
    if (!fs::create_directory(S.tmp, ec))
      fail(S.tmp.string() + ": cannot create temporary directory: " + ec.message(), CKH_E_IO);
    S.temp_made = true;
    for (const auto &f : g.files) {
      int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) fail(f + ": cannot open: " + std::strerror(errno), CKH_E_IO);
      S.in_owned.emplace_back(fd);
      S.in_fds.push_back(fd);
    }
  }
  std::vector<int32_t> all;
  if (files.empty())
    for (size_t i = 0; i < g.layout.files.size(); ++i) all.push_back(static_cast<int32_t>(i));
  for (int32_t fi : files.empty() ? all : files) {
    if (fi < 0 || static_cast<size_t>(fi) >= g.layout.files.size()) fail("execution: no output file #" + std::to_string(fi));
    const size_t i = static_cast<size_t>(fi);
    if (S.created[i]) continue;
    const OutFile &f = g.layout.files[i];
    const fs::path p = S.out_paths[i];
    fs::create_directories(p.parent_path(), ec);
    S.created[i] = 1;
    ++S.stats.files;
    if (!f.copy_from.empty()) {
      copy_whole_file(f.copy_from, p.string());
      continue;
    }
    int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail(p.string() + ": cannot create: " + std::strerror(errno), CKH_E_IO);
    S.out[i] = Fd(fd);
    if (f.size > 0) {
      int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(f.size));
      if (rc == ENOSPC) fail(p.string() + ": no space left for " + human_bytes(static_cast<double>(f.size)), CKH_E_IO);
      if (::ftruncate(fd, static_cast<off_t>(f.size)) != 0) fail(p.string() + ": cannot set size", CKH_E_IO);
    }
    for (const auto &b : f.blobs) pwrite_full(fd, b.second.data(), b.second.size(), b.first, p.string());
    S.stats.file_bytes += f.size;
  }
}

ExecStats Execution::run(const std::vector<int32_t> &files) {
  State &S = *s_;
  const Graph &g = S.g;
  const ExecOptions &opt = S.opt;
  const std::vector<int> &in_fds = S.in_fds;
  std::vector<Fd> &out = S.out;
  const std::vector<std::string> &out_paths = S.out_paths;
  std::vector<Task> &tasks = S.tasks;
  std::vector<uint32_t> &crcs = S.crcs;
  const auto r0 = std::chrono::steady_clock::now();
  // The queues of this run: one per output file of the subset with tasks, in file order.
  std::vector<int32_t> subset = files;
  if (subset.empty())
    for (size_t i = 0; i < g.layout.files.size(); ++i) subset.push_back(static_cast<int32_t>(i));
  std::vector<std::vector<size_t>> queue;
  uint64_t total = 0;
  for (int32_t fi : subset) {
    if (fi < 0 || static_cast<size_t>(fi) >= g.layout.files.size()) fail("execution: no output file #" + std::to_string(fi));
    const size_t i = static_cast<size_t>(fi);
    if (!S.created[i]) fail("execution: output file '" + g.layout.files[i].relpath + "' was not created");
    if (S.ran[i]) fail("execution: output file '" + g.layout.files[i].relpath + "' was already written");
    S.ran[i] = 1;
    if (S.file_tasks[i].empty()) continue;
    queue.push_back(S.file_tasks[i]);
    for (size_t t : S.file_tasks[i]) total += tasks[t].bytes;
  }
  ExecStats stats;
  stats.regions = g.layout.regions.size();
  stats.chunk_bytes = S.chunk;
  size_t ntasks = 0;
  for (const auto &q : queue) ntasks += q.size();
  // One queue of tasks per output file, written in order. A worker claims a file nobody has claimed
  // yet and stays on it; when it is drained, the worker claims the next unclaimed file, and only when
  // every file is claimed does it help on the others. Writers of one file serialise on its inode lock
  // on common filesystems (ext4, xfs, tmpfs): workers sharing a file spin on that lock instead of copying.
  std::vector<std::atomic<size_t>> head(queue.size());
  for (auto &h : head) h = 0;
  std::atomic<size_t> unclaimed{0};
  const unsigned threads = static_cast<unsigned>(std::max<size_t>(1, std::min<size_t>(S.threads, ntasks)));
  stats.threads = threads;

  const ckh_kernels_t *k = host_table()->kernels;
  // Quantizer chunks: about one task's bytes each; finished outputs wait in a cache of a quarter of the budget.
  Evaluator ev(g, in_fds, k, opt.fp8_mode, S.chunk, opt.max_memory / 4);
  std::atomic<bool> failed{false};
  std::atomic<uint64_t> direct{0};
  std::exception_ptr first_error;
  std::mutex err_m;
  Progress progress(total, opt.progress);
  const uint64_t kBlock = work_block_bytes();  // the cache-sized unit bytes are copied, computed and written in
  // Moves the bytes of a chunk that only relocates source bytes (slices, concatenations, reshapes).
  // With --copy-file-range, large runs without a CRC move in-kernel. Otherwise the runs are packed into a
  // cache-sized block (one pread per run), checksummed while the block is in cache when the writer
  // wants a CRC, and written with one pwrite per block: each byte is touched as `cat` touches it.
  // Returns false when the chunk needs evaluation (conversions, strided pieces, runs under 2 KiB on
  // average) or the kernel refuses the copy.
  auto move_ranges = [&](const Task &t, const Region &r, int ofd, std::vector<char> &block, uint32_t &crc,
                         std::vector<FileRange> &ranges) {
    ranges.clear();
    constexpr uint64_t kMinRun = 2u << 10, kMinKernelRun = 256u << 10;
    const size_t max_ranges = static_cast<size_t>(std::max<uint64_t>(1, t.bytes / kMinRun));
    if (!ev.gather(r.node, t.off, t.box, ranges, max_ranges)) return false;
    const bool want_crc = r.flags & CKH_REGION_CRC32;
    if (!want_crc && opt.copy_file_range && t.bytes / ranges.size() >= kMinKernelRun) {
      uint64_t at = t.out_offset;
      for (const FileRange &fr : ranges) {
        if (!copy_range(in_fds[fr.file], fr.offset, ofd, at, fr.length)) return false;
        at += fr.length;
      }
      direct += t.bytes;
      return true;
    }
    if (block.size() < kBlock) block.resize(kBlock);
    uint32_t c = 0;
    uint64_t out_at = t.out_offset, fill = 0;
    auto flush = [&] {
      if (want_crc) c = ::crc32_gzip_refl(c, reinterpret_cast<const unsigned char *>(block.data()), fill);  // ISA-L
      pwrite_full(ofd, block.data(), fill, out_at, out_paths[static_cast<size_t>(r.file)]);
      out_at += fill;
      fill = 0;
    };
    for (const FileRange &fr : ranges)
      for (uint64_t done = 0; done < fr.length;) {
        const uint64_t n = std::min<uint64_t>(kBlock - fill, fr.length - done);
        pread_full(in_fds[fr.file], block.data() + fill, n, fr.offset + done, g.files[fr.file]);
        fill += n;
        done += n;
        if (fill == kBlock) flush();
      }
    if (fill) flush();
    crc = c;
    return true;
  };

  // The next task for a worker on file queue `home` (SIZE_MAX: none yet); false when all are drained.
  auto take = [&](size_t &home, size_t &task) {
    auto pop = [&](size_t q) {
      if (head[q].load(std::memory_order_relaxed) >= queue[q].size()) return false;
      const size_t at = head[q].fetch_add(1);
      if (at >= queue[q].size()) return false;
      task = queue[q][at];
      return true;
    };
    while (true) {
      if (home < queue.size() && pop(home)) return true;
      const size_t c = unclaimed.fetch_add(1);
      if (c >= queue.size()) break;
      home = c;
    }
    for (size_t j = 1; j <= queue.size(); ++j) {
      const size_t q = ((home < queue.size() ? home : 0) + j) % queue.size();
      if (pop(q)) {
        home = q;
        return true;
      }
    }
    return false;
  };
  auto work = [&] {
    std::vector<char> block;
    std::vector<FileRange> ranges;
    size_t home = SIZE_MAX;
    try {
      for (size_t i; !failed && take(home, i);) {
        if (cancelled()) fail("cancelled", CKH_E_CANCELLED);
        const Task &t = tasks[i];
        const Region &r = g.layout.regions[t.region];
        const int ofd = out[static_cast<size_t>(r.file)].fd;
        const bool want_crc = r.flags & CKH_REGION_CRC32;
        if (move_ranges(t, r, ofd, block, crcs[i], ranges)) {
          progress.add(t.bytes);
          continue;
        }
        // Evaluated in cache-sized blocks, each checksummed and written while it is in cache.
        const ckh_dtype dt = g.node(r.node).dtype;
        uint32_t c = 0;
        split_runs(t.box, storage_size(dt), kBlock, [&](const Index &sub, const Shape &box, uint64_t at) {
          Index off = t.off;
          for (uint32_t d = 0; d < box.ndim; ++d) off[d] += sub[d];
          const uint64_t n = static_cast<uint64_t>(box.numel()) * storage_size(dt);
          if (block.size() < n) block.resize(n);
          ev.eval(r.node, off, View::dense(block.data(), dt, box));
          if (want_crc) c = ::crc32_gzip_refl(c, reinterpret_cast<const unsigned char *>(block.data()), n);
          pwrite_full(ofd, block.data(), n, t.out_offset + at, out_paths[static_cast<size_t>(r.file)]);
        });
        crcs[i] = c;
        progress.add(t.bytes);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lk(err_m);
      if (!first_error) first_error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back(work);
  work();
  for (auto &th : pool) th.join();
  progress.stop();
  if (first_error) std::rethrow_exception(first_error);
  if (cancelled()) fail("cancelled", CKH_E_CANCELLED);
  stats.direct_bytes = direct;
  stats.bytes = total;
  const QuantStats qs = ev.quant_stats();
  stats.quant_calls = qs.calls;
  stats.quant_blocks = qs.blocks;
  stats.quant_recomputed_blocks = qs.recomputed_blocks;
  S.stats.quant_calls += qs.calls;
  S.stats.quant_blocks += qs.blocks;
  S.stats.quant_recomputed_blocks += qs.recomputed_blocks;
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r0).count();
  S.stats.bytes += stats.bytes;
  S.stats.direct_bytes += stats.direct_bytes;
  S.stats.threads = std::max(S.stats.threads, stats.threads);
  return stats;
}

std::vector<ckh_region_digest_t> Execution::digests() const {
  const State &S = *s_;
  const Graph &g = S.g;
  for (size_t i = 0; i < S.ran.size(); ++i)
    if (!S.ran[i] && !S.file_tasks[i].empty())
      fail("execution: digests asked for before output file '" + g.layout.files[i].relpath + "' was written");
  // Digests per region (chunks are in region order).
  std::vector<ckh_region_digest_t> digests(g.layout.regions.size());
  for (size_t i = 0; i < digests.size(); ++i) {
    digests[i].struct_size = sizeof(ckh_region_digest_t);
    digests[i].region = static_cast<int32_t>(i);
    digests[i].size = g.layout.regions[i].bytes;
    digests[i].crc32 = static_cast<uint32_t>(::crc32_z(0L, Z_NULL, 0));
  }
  for (size_t i = 0; i < S.tasks.size(); ++i) {
    auto &dg = digests[S.tasks[i].region];
    if (g.layout.regions[S.tasks[i].region].flags & CKH_REGION_CRC32)
      dg.crc32 = static_cast<uint32_t>(::crc32_combine(dg.crc32, S.crcs[i], static_cast<z_off_t>(S.tasks[i].bytes)));
  }
  return digests;
}

void Execution::finish(const FinishFn &finish) {
  State &S = *s_;
  const Graph &g = S.g;
  std::vector<Fd> &out = S.out;
  std::vector<std::string> &out_paths = S.out_paths;
  const std::vector<ckh_region_digest_t> digests = this->digests();
  if (finish) {
    struct PatchCtx {
      const Graph *g;
      std::vector<Fd> *out;
      std::vector<std::string> *paths;
      const std::vector<ckh_region_digest_t> *digests;
    } pc{&g, &out, &out_paths, &digests};
    ckh_patcher_t patcher{};
    patcher.struct_size = sizeof patcher;
    patcher.ctx = &pc;
    patcher.digest_count = [](const ckh_patcher_t *p) -> uint64_t {
      return static_cast<const PatchCtx *>(p->ctx)->digests->size();
    };
    patcher.digest = [](const ckh_patcher_t *p, uint64_t i, ckh_region_digest_t *out) -> ckh_status {
      const auto &d = *static_cast<const PatchCtx *>(p->ctx)->digests;
      if (!out || out->struct_size < sizeof(uint32_t)) {
        set_last_error(CKH_E_INVALID_ARG, "patcher.digest: output struct_size not set");
        return CKH_E_INVALID_ARG;
      }
      if (i >= d.size()) {
        set_last_error(CKH_E_NOT_FOUND, "patcher.digest: region " + std::to_string(i) + " of " + std::to_string(d.size()));
        return CKH_E_NOT_FOUND;
      }
      const uint32_t n = std::min<uint32_t>(out->struct_size, sizeof(ckh_region_digest_t));
      std::memcpy(reinterpret_cast<char *>(out) + sizeof(uint32_t), reinterpret_cast<const char *>(&d[i]) + sizeof(uint32_t),
                  n - sizeof(uint32_t));
      return CKH_OK;
    };
    patcher.put_bytes = [](ckh_patcher_t *p, int32_t file, uint64_t offset, const void *data, uint64_t len) -> ckh_status {
      auto *c = static_cast<PatchCtx *>(p->ctx);
      try {
        if (file < 0 || static_cast<size_t>(file) >= c->out->size() || (*c->out)[static_cast<size_t>(file)].fd < 0)
          fail("patch: invalid file id " + std::to_string(file));
        const OutFile &f = c->g->layout.files[static_cast<size_t>(file)];
        if (f.small || offset > f.size || len > f.size - offset) fail("patch outside '" + f.relpath + "'");
        pwrite_full((*c->out)[static_cast<size_t>(file)].fd, data, len, offset, (*c->paths)[static_cast<size_t>(file)]);
        return CKH_OK;
      } catch (const Error &e) {
        set_last_error(e.code, e.what());
        return e.code;
      }
    };
    finish(digests, &patcher);
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].fd >= 0 && ::close(out[i].fd) != 0) fail(out_paths[i] + ": close failed: " + std::strerror(errno), CKH_E_IO);
    out[i].fd = -1;
  }

  S.finished = true;
}

ExecStats Execution::commit() {
  State &S = *s_;
  if (!S.finished) fail("execution: commit before finish");
  const fs::path &d = S.d, &tmp = S.tmp;
  const std::string &dst = S.dst;
  const ExecOptions &opt = S.opt;
  std::error_code ec;
  // Commit: move the finished directory into place.
  if (fs::exists(d, ec)) {
    if (dir_empty(d)) {
      fs::remove(d, ec);
    } else {
      if (!opt.force) fail("destination '" + dst + "' is not empty (use --force to replace it)");
      const fs::path old = d.parent_path() / ("." + d.filename().string() + ".ckhost-old-" + std::to_string(::getpid()));
      fs::rename(d, old, ec);
      if (ec) fail("cannot move the old '" + dst + "' aside: " + ec.message(), CKH_E_IO);
      fs::rename(tmp, d, ec);
      if (ec) {
        std::error_code e2;
        fs::rename(old, d, e2);
        fail("cannot rename the output into place: " + ec.message(), CKH_E_IO);
      }
      S.committed = true;
      fs::remove_all(old, ec);
      S.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - S.t0).count();
      return S.stats;
    }
  }
  fs::rename(tmp, d, ec);
  if (ec) fail("cannot rename the output into '" + dst + "': " + ec.message(), CKH_E_IO);
  S.committed = true;
  S.stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - S.t0).count();
  return S.stats;
}

ExecStats execute(const Graph &g, const std::string &dst, const ExecOptions &opt, const FinishFn &finish) {
  Execution e(g, dst, opt);
  e.create();
  e.run();
  e.finish(finish);
  return e.commit();
}

}  // namespace ckh::host
