// header.cpp — see header.hpp.
#include "header.hpp"

#include <algorithm>
#include <set>

#include <nlohmann/json.hpp>

namespace ckh::st {

namespace {
const std::pair<const char *, ckh_dtype> kDtypes[] = {
    {"BOOL", CKH_DT_BOOL}, {"U8", CKH_DT_U8},   {"I8", CKH_DT_I8},   {"F8_E5M2", CKH_DT_F8_E5M2},
    {"F8_E4M3", CKH_DT_F8_E4M3FN}, {"I16", CKH_DT_I16}, {"U16", CKH_DT_U16}, {"F16", CKH_DT_F16},
    {"BF16", CKH_DT_BF16}, {"I32", CKH_DT_I32}, {"U32", CKH_DT_U32}, {"F32", CKH_DT_F32},
    {"F64", CKH_DT_F64},   {"I64", CKH_DT_I64}, {"U64", CKH_DT_U64}, {"F8_E8M0", CKH_DT_F8_E8M0}};

std::string shape_str(const std::vector<int64_t> &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}
}  // namespace

ckh_dtype dtype_from_string(const std::string &s) {
  for (const auto &d : kDtypes)
    if (s == d.first) return d.second;
  return CKH_DT_INVALID;
}

const char *dtype_to_string(ckh_dtype dt) {
  for (const auto &d : kDtypes)
    if (dt == d.second) return d.first;
  return nullptr;
}

bool parse_length(const uint8_t *b, uint64_t file_size, uint64_t &len, std::string &err) {
  if (file_size < 8) {
    err = "file has " + std::to_string(file_size) + " bytes, too short for a safetensors header";
    return false;
  }
  len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | b[i];
  if (len < 2 || len > kMaxHeader) {
    err = "header length " + std::to_string(len) + " is not in [2, " + std::to_string(kMaxHeader) + "]";
    return false;
  }
  if (len > file_size - 8) {
    err = "header length " + std::to_string(len) + " runs past the end of the file (" + std::to_string(file_size) +
          " bytes)";
    return false;
  }
  return true;
}

bool parse_header(const char *text, uint64_t len, uint64_t file_size, Header &out, std::string &err) {
  using nlohmann::json;
  out = Header{};
  out.header_len = len;
  out.data_start = 8 + len;
  const uint64_t data_size = file_size - out.data_start;
  // Duplicate keys: nlohmann keeps the last one silently, so watch the key events per object.
  std::vector<std::set<std::string>> keys;
  std::string dup;
  int depth = 0;
  bool too_deep = false;
  json::parser_callback_t cb = [&](int d, json::parse_event_t ev, json &parsed) {
    (void)d;
    switch (ev) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        if (++depth > 4) too_deep = true;
        if (ev == json::parse_event_t::object_start) keys.emplace_back();
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        --depth;
        if (ev == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
        break;
      case json::parse_event_t::key:
        if (!keys.empty() && parsed.is_string() && !keys.back().insert(parsed.get<std::string>()).second && dup.empty())
          dup = parsed.get<std::string>();
        break;
      default: break;
    }
    return !too_deep;
  };
  json h;
  try {
    h = json::parse(text, text + len, cb, /*allow_exceptions=*/true);
  } catch (const std::exception &e) {
    err = too_deep ? "header JSON nests too deeply" : std::string("header is not valid JSON: ") + e.what();
    return false;
  }
  if (too_deep) {
    err = "header JSON nests too deeply";
    return false;
  }
  if (!dup.empty()) {
    err = "tensor '" + dup + "' appears twice in the header";
    return false;
  }
  if (!h.is_object()) {
    err = "header is not a JSON object";
    return false;
  }
  for (auto it = h.begin(); it != h.end(); ++it) {
    const std::string &name = it.key();
    const json &v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) {
        err = "__metadata__ is not an object";
        return false;
      }
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) {
          err = "__metadata__ value of '" + m.key() + "' is not a string";
          return false;
        }
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string who = "tensor '" + name + "'";
    if (name.empty() || name.size() > 4096) {
      err = "tensor name of " + std::to_string(name.size()) + " bytes";
      return false;
    }
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets")) {
      err = who + ": entry needs dtype, shape and data_offsets";
      return false;
    }
    Entry e;
    e.name = name;
    if (!v["dtype"].is_string()) {
      err = who + ": dtype is not a string";
      return false;
    }
    const std::string ds = v["dtype"].get<std::string>();
    e.dtype = dtype_from_string(ds);
    if (e.dtype == CKH_DT_INVALID) {
      err = who + ": unknown dtype '" + ds.substr(0, 32) + "'";
      return false;
    }
    const json &sh = v["shape"];
    if (!sh.is_array() || sh.size() > CKH_MAX_DIMS) {
      err = who + ": shape must be an array of at most " + std::to_string(CKH_MAX_DIMS) + " sizes";
      return false;
    }
    unsigned __int128 numel = 1;
    bool overflow = false;
    for (const auto &x : sh) {
      if (!x.is_number_unsigned() && !(x.is_number_integer() && x.get<int64_t>() >= 0)) {
        err = who + ": shape entries must be non-negative integers";
        return false;
      }
      const uint64_t dim = x.get<uint64_t>();
      if (dim > (1ull << 62)) overflow = true;
      e.shape.push_back(static_cast<int64_t>(dim));
      numel *= dim;
      if (numel > (static_cast<unsigned __int128>(1) << 64)) overflow = true;
    }
    const json &off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned()) {
      err = who + ": data_offsets must be two non-negative integers";
      return false;
    }
    e.begin = off[0].get<uint64_t>();
    e.end = off[1].get<uint64_t>();
    if (e.begin > e.end) {
      err = who + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] are reversed";
      return false;
    }
    const unsigned __int128 need = numel * ckh_dtype_size(e.dtype);
    if (overflow || need != static_cast<unsigned __int128>(e.end - e.begin)) {
      err = who + ": shape " + shape_str(e.shape) + " x " + ds + " needs " +
            (overflow ? std::string("more than 2^64") : std::to_string(static_cast<uint64_t>(need))) +
            " bytes but data_offsets span " + std::to_string(e.end - e.begin);
      return false;
    }
    if (e.end > data_size) {
      err = who + ": data_offsets end at " + std::to_string(e.end) + " but the data section has " +
            std::to_string(data_size) + " bytes (file truncated?)";
      return false;
    }
    out.entries.push_back(std::move(e));
  }
  // Overlaps.
  std::vector<const Entry *> by_off;
  for (const auto &e : out.entries)
    if (e.end > e.begin) by_off.push_back(&e);
  std::sort(by_off.begin(), by_off.end(), [](const Entry *a, const Entry *b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i]->begin < by_off[i - 1]->end) {
      err = "tensor '" + by_off[i]->name + "': data_offsets [" + std::to_string(by_off[i]->begin) + ", " +
            std::to_string(by_off[i]->end) + "] overlap tensor '" + by_off[i - 1]->name + "' ending at " +
            std::to_string(by_off[i - 1]->end);
      return false;
    }
  return true;
}

}  // namespace ckh::st
