// services.hpp — the ckh_host_t table handed to plugins, and the per-thread last-error slot.
#pragma once
#include <string>
#include <utility>

#include <ckhost/ckh_host.h>

namespace ckh::host {

// The process-wide host table (kernels selected for this CPU). Valid for the whole process.
const ckh_host_t *host_table();

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
