// services.hpp — the ckh_host_t table handed to plugins, and the per-thread last-error slot.
#pragma once
#include <string>
#include <utility>

#include <ckhost/ckh_host.h>

namespace ckh::host {

// The process-wide host table (kernels selected for this CPU). Valid for the whole process.
const ckh_host_t *host_table();

// The kernel table behind host_table()->kernels: the built-in one (best ISA of this CPU) until
// set_kernel_table() installs a merge with kernel providers (kernel_providers.hpp). Set it only while
// no conversion runs (after loading plugins).
void set_kernel_table(const ckh_kernels_t &k);
const ckh_kernels_t &builtin_kernels();
// Bytes the executor evaluates, checksums and writes per block (default 1 MiB; kernel providers may
// prefer more).
uint64_t work_block_bytes();
void set_work_block_bytes(uint64_t n);

// Log threshold for plugin and host log lines (default CKH_LOG_INFO; --verbose sets DEBUG,
// --quiet WARN). Lines go to stderr as "ckhost: <level>: <msg>".
void set_log_level(int level);
void log(int level, const std::string &msg);

// The calling thread's last error (set by plugins through host->set_error, or by the host's own
// builder when a call fails). take_last_error() returns and clears it; code 0 = none.
void set_last_error(ckh_status code, const std::string &msg);
std::pair<ckh_status, std::string> take_last_error();
void clear_last_error();

// Ctrl-C handling: request_cancel() is async-signal-safe; cancelled() is what host->is_cancelled reads.
void request_cancel();
bool cancelled();

}  // namespace ckh::host
