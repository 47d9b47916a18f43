// Shared by the format-npy tests: runs gen_npy.py (NumPy) once per process into a temporary directory.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

namespace npytest {

namespace fs = std::filesystem;

inline fs::path make_temp_dir(const char *tag) {
  std::string tmpl = (fs::temp_directory_path() / (std::string("ckh-") + tag + "-XXXXXX")).string();
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back(0);
  if (!mkdtemp(buf.data())) return {};
  return fs::path(buf.data());
}

struct Fixtures {
  fs::path dir;
  bool ok = false;
  Fixtures() {
    dir = make_temp_dir("npy");
    if (dir.empty()) return;
    const std::string cmd = std::string(CKH_NUMPY_PYTHON) + " " + CKH_GEN_NPY + " " + dir.string() + " >/dev/null";
    ok = std::system(cmd.c_str()) == 0;
  }
  ~Fixtures() {
    std::error_code ec;
    if (!dir.empty()) fs::remove_all(dir, ec);
  }
};

// The fixture directory, or skips the calling test when NumPy could not write it.
inline const fs::path &fixtures() {
  static Fixtures f;
  return f.dir;
}
inline bool have_fixtures() {
  fixtures();
  static const bool ok = fs::exists(fixtures() / "reader.json");
  return ok;
}
#define NPY_NEED_FIXTURES()                                                                      \
  do {                                                                                           \
    if (!npytest::have_fixtures()) GTEST_SKIP() << CKH_NUMPY_PYTHON << " with numpy is needed"; \
  } while (0)

inline std::string slurp(const fs::path &p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void spit(const fs::path &p, const std::string &data) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << data;
}

}  // namespace npytest
