// verify.hpp — tensor-by-tensor comparison of two checkpoints through their canonical views.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ckhost/host/graph.hpp"

namespace ckh::host {

struct VerifyRow {
  std::string name;
  std::string status;  // "ok", "differs", "missing in A", "missing in B", "shape differs"
  std::string dtype_a, dtype_b, shape_a, shape_b;
  double max_abs = 0, rel_l2 = 0;
  bool bit_exact = false;
};

struct VerifyReport {
  std::vector<VerifyRow> rows;
  size_t compared = 0, exact = 0, failed = 0;
  bool ok = true;
  nlohmann::json to_json() const;
  std::string to_text() const;
};

// Compares the last stage of `a` with the last stage of `b`. A tensor passes when shapes agree and
// max |a-b| <= atol (NaN only where both hold the same bits). Both names sets must be equal.
VerifyReport verify(const Graph &a, const std::vector<int> &fds_a, const Graph &b, const std::vector<int> &fds_b,
                    double atol, unsigned threads, uint64_t max_memory);

}  // namespace ckh::host
