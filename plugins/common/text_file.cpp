// text_file.cpp — see text_file.hpp.
#include "text_file.hpp"

#include <fstream>
#include <iterator>

#include <ckhost/cpp/ckh_plugin.hpp>

namespace ckh::plugins {

std::string read_text(const std::filesystem::path &p, size_t max_bytes) {
  std::ifstream in(p, std::ios::binary);
  if (!in) ckh::sdk::fail(CKH_E_IO, p.string() + ": cannot read");
  std::string s;
  s.resize(max_bytes + 1);
  in.read(s.data(), static_cast<std::streamsize>(s.size()));
  s.resize(static_cast<size_t>(in.gcount()));
  if (s.size() > max_bytes)
    ckh::sdk::fail(CKH_E_FORMAT, p.string() + ": larger than " + std::to_string(max_bytes) + " bytes, not a tracker file");
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r' || s.back() == '\t')) s.pop_back();
  return s;
}

}  // namespace ckh::plugins
