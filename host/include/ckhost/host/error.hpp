// error.hpp — the host's one exception type. C++ exceptions exist only inside the host; plugin
// failures arrive as ckh_status + message and are turned into ckh::host::Error at the call site.
#pragma once
#include <stdexcept>
#include <string>

#include <ckhost/ckh_types.h>

namespace ckh::host {

struct Error : std::runtime_error {
  ckh_status code;
  explicit Error(const std::string &msg, ckh_status c = CKH_E_INVALID_ARG) : std::runtime_error(msg), code(c) {}
};

[[noreturn]] inline void fail(const std::string &msg, ckh_status code = CKH_E_INVALID_ARG) { throw Error(msg, code); }

}  // namespace ckh::host
