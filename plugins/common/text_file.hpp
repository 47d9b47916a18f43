// text_file.hpp — small text files of checkpoint directories (tracker files such as
// latest_checkpointed_iteration.txt), read with a size bound.
#pragma once
#include <cstddef>
#include <filesystem>
#include <string>

namespace ckh::plugins {

// The content of `p` without trailing whitespace (newlines, spaces, CRs). Throws ckh::sdk::Error
// (CKH_E_IO) when the file cannot be read, (CKH_E_FORMAT) when it is larger than `max_bytes`.
std::string read_text(const std::filesystem::path &p, size_t max_bytes = 4096);

}  // namespace ckh::plugins
