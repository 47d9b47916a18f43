// verify.cpp — chunked, parallel comparison of two graphs' last stages.
#include "ckhost/host/verify.hpp"

#include "ckhost/host/chain.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <thread>

#include "ckhost/host/error.hpp"
#include "ckhost/host/eval.hpp"
#include "ckhost/host/services.hpp"

namespace ckh::host {

nlohmann::json VerifyReport::to_json() const {
  nlohmann::json j;
  j["ok"] = ok;
  j["compared"] = compared;
  j["bit_exact"] = exact;
  j["failed"] = failed;
  j["tensors"] = nlohmann::json::array();
  for (const auto &r : rows)
    j["tensors"].push_back({{"name", r.name}, {"status", r.status}, {"dtype_a", r.dtype_a}, {"dtype_b", r.dtype_b},
                            {"shape_a", r.shape_a}, {"shape_b", r.shape_b}, {"max_abs_diff", r.max_abs},
                            {"rel_l2", r.rel_l2}, {"bit_exact", r.bit_exact}});
  return j;
}

std::string VerifyReport::to_text() const {
  std::string s;
  char buf[512];
  size_t within = 0;
  const VerifyRow *worst = nullptr;
  for (const auto &r : rows) {
    if (r.status == "ok") {
      if (!r.bit_exact) {
        ++within;
        if (!worst || r.max_abs > worst->max_abs) worst = &r;
      }
      continue;
    }
    std::snprintf(buf, sizeof buf, "%-13s %s  %s/%s %s/%s max_abs=%.6g rel_l2=%.6g\n", r.status.c_str(), r.name.c_str(),
                  r.dtype_a.c_str(), r.dtype_b.c_str(), r.shape_a.c_str(), r.shape_b.c_str(), r.max_abs, r.rel_l2);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, "%zu tensors compared: %zu bit-exact, %zu equal within atol", compared, exact, within);
  s += buf;
  if (worst) {
    std::snprintf(buf, sizeof buf, " (largest max_abs %.6g in %s)", worst->max_abs, worst->name.c_str());
    s += buf;
  }
  std::snprintf(buf, sizeof buf, ", %zu failed: %s\n", failed, ok ? "MATCH" : "MISMATCH");
  return s + buf;
}

VerifyReport verify(const Graph &a, const std::vector<int> &fds_a, const Graph &b, const std::vector<int> &fds_b,
                    double atol, unsigned threads, uint64_t max_memory) {
  const Stage &sa = a.stages.back(), &sb = b.stages.back();
  VerifyReport rep;
  std::map<std::string, std::pair<int32_t, int32_t>> pairs;
  for (const auto &t : sa.tensors) pairs[t.name].first = t.node + 1;
  for (const auto &t : sb.tensors) pairs[t.name].second = t.node + 1;
  for (const auto &p : pairs) {
    VerifyRow r;
    r.name = p.first;
    if (p.second.first) {
      const Node &n = a.node(p.second.first - 1);
      r.dtype_a = dtype_name(n.dtype);
      r.shape_a = n.shape.str();
    }
    if (p.second.second) {
      const Node &n = b.node(p.second.second - 1);
      r.dtype_b = dtype_name(n.dtype);
      r.shape_b = n.shape.str();
    }
    if (!p.second.first) r.status = "missing in A";
    else if (!p.second.second) r.status = "missing in B";
    else if (r.shape_a != r.shape_b) r.status = "shape differs";
    rep.rows.push_back(r);
  }
  // Quantized codes and their scales are compared as bytes: a code's value means nothing without its
  // scale, so "equal within --atol" never applies to them (SDK 1.1: the pair is one logical tensor).
  const std::vector<int32_t> qa = quantized_inputs(a), qb = quantized_inputs(b);
  const ckh_kernels_t *k = host_table()->kernels;
  Evaluator ea(a, fds_a, k), eb(b, fds_b, k);
  if (!threads) threads = std::max(1u, std::thread::hardware_concurrency());
  const uint64_t chunk_elems = std::clamp<uint64_t>(max_memory / (threads * 24ull), 1u << 16, 8u << 20);
  std::atomic<size_t> next{0};
  std::exception_ptr err;
  std::mutex m;
  auto work = [&] {
    try {
      std::vector<char> ba, bb;
      std::vector<float> fa, fb;
      for (size_t i; (i = next.fetch_add(1)) < rep.rows.size();) {
        VerifyRow &r = rep.rows[i];
        if (!r.status.empty()) continue;
        if (cancelled()) fail("cancelled", CKH_E_CANCELLED);
        const auto &pp = pairs[r.name];
        const int32_t na = pp.first - 1, nb = pp.second - 1;
        const Node &A = a.node(na), &B = b.node(nb);
        const uint32_t nd = A.shape.ndim;
        const int64_t rows = nd ? A.shape.d[0] : 1;
        const int64_t inner = nd ? A.shape.numel() / std::max<int64_t>(rows, 1) : 1;
        const int64_t per = std::max<int64_t>(1, static_cast<int64_t>(chunk_elems) / std::max<int64_t>(inner, 1));
        bool exact = A.dtype == B.dtype;
        double maxabs = 0, ssd = 0, ssa = 0;
        bool nan_diff = false;
        for (int64_t r0 = 0; r0 < rows && A.shape.numel() > 0; r0 += per) {
          Shape box = A.shape;
          if (nd) box.d[0] = std::min(per, rows - r0);
          Index off{};
          off[0] = r0;
          const uint64_t cnt = static_cast<uint64_t>(box.numel());
          ba.resize(cnt * storage_size(A.dtype));
          bb.resize(cnt * storage_size(B.dtype));
          ea.eval(na, off, View::dense(ba.data(), A.dtype, box));
          eb.eval(nb, off, View::dense(bb.data(), B.dtype, box));
          const bool chunk_exact = exact && std::memcmp(ba.data(), bb.data(), ba.size()) == 0;
          exact = exact && chunk_exact;
          if (chunk_exact) {
            fa.resize(cnt);
            convert_dense(A.dtype, ba.data(), CKH_DT_F32, fa.data(), cnt, k, CKH_FP8_NONSAT);
            ssa += k->sumsq_f32(fa.data(), cnt);
            continue;
          }
          fa.resize(cnt);
          fb.resize(cnt);
          convert_dense(A.dtype, ba.data(), CKH_DT_F32, fa.data(), cnt, k, CKH_FP8_NONSAT);
          convert_dense(B.dtype, bb.data(), CKH_DT_F32, fb.data(), cnt, k, CKH_FP8_NONSAT);
          const float d = k->maxabsdiff_f32(fa.data(), fb.data(), cnt);
          if (std::isnan(d)) nan_diff = true;
          else maxabs = std::max<double>(maxabs, d);
          ssd += k->sumsqdiff_f32(fa.data(), fb.data(), cnt);
          ssa += k->sumsq_f32(fa.data(), cnt);
        }
        r.bit_exact = exact;
        r.max_abs = exact ? 0 : (nan_diff ? NAN : maxabs);
        r.rel_l2 = exact ? 0 : (ssa > 0 ? std::sqrt(ssd / ssa) : std::sqrt(ssd));
        const bool quantized = qa[static_cast<size_t>(na)] >= 0 || qb[static_cast<size_t>(nb)] >= 0;
        if (quantized) r.status = exact ? "ok" : "differs (quantized: compared bytewise, never within --atol)";
        else r.status = (exact || (!nan_diff && maxabs <= atol)) ? "ok" : "differs";
      }
    } catch (...) {
      std::lock_guard<std::mutex> lk(m);
      if (!err) err = std::current_exception();
      next = rep.rows.size();
    }
  };
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back(work);
  work();
  for (auto &t : pool) t.join();
  if (err) std::rethrow_exception(err);
  for (const auto &r : rep.rows) {
    if (r.status != "missing in A" && r.status != "missing in B") ++rep.compared;
    if (r.bit_exact) ++rep.exact;
    if (r.status != "ok") ++rep.failed;
  }
  rep.ok = rep.failed == 0;
  return rep;
}

}  // namespace ckh::host
