// gguf_kv.cpp — see gguf_kv.hpp.
#include "gguf_kv.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

using nlohmann::json;

namespace ckh::gguf {

void Bytes::f32(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  put(u);
}

void Bytes::f64(double v) {
  uint64_t u;
  std::memcpy(&u, &v, 8);
  put(u);
}

void Bytes::str(const std::string &s) {
  put(static_cast<uint64_t>(s.size()));
  b += s;
}

namespace {

[[noreturn]] void bad(const std::string &key, const std::string &what) { throw std::invalid_argument("GGUF key '" + key + "': " + what); }

uint32_t type_of(const std::string &key, const std::string &t) {
  static const std::pair<const char *, uint32_t> kTypes[] = {{"u8", U8},   {"i8", I8},   {"u16", U16},   {"i16", I16},
                                                             {"u32", U32}, {"i32", I32}, {"f32", F32},   {"bool", BOOL},
                                                             {"string", STRING}, {"array", ARRAY}, {"u64", U64}, {"i64", I64}, {"f64", F64}};
  for (const auto &[n, v] : kTypes)
    if (t == n) return v;
  bad(key, "unknown value type '" + t + "'");
}

template <class T>
T integer(const std::string &key, const json &v) {
  if (v.is_boolean() || !v.is_number_integer()) bad(key, "expected an integer, got " + v.dump());
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<T>::max())) bad(key, v.dump() + " does not fit");
    return static_cast<T>(u);
  }
  const int64_t i = v.get<int64_t>();
  if (i < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
      (i > 0 && static_cast<uint64_t>(i) > static_cast<uint64_t>(std::numeric_limits<T>::max())))
    bad(key, v.dump() + " does not fit");
  return static_cast<T>(i);
}

void put_value(Bytes &o, const std::string &key, uint32_t t, const json &v) {
  switch (t) {
    case U8: o.put(integer<uint8_t>(key, v)); return;
    case I8: o.put(static_cast<uint8_t>(integer<int8_t>(key, v))); return;
    case U16: o.put(integer<uint16_t>(key, v)); return;
    case I16: o.put(static_cast<uint16_t>(integer<int16_t>(key, v))); return;
    case U32: o.put(integer<uint32_t>(key, v)); return;
    case I32: o.put(static_cast<uint32_t>(integer<int32_t>(key, v))); return;
    case U64: o.put(integer<uint64_t>(key, v)); return;
    case I64: o.put(static_cast<uint64_t>(integer<int64_t>(key, v))); return;
    case F32:
      if (!v.is_number()) bad(key, "expected a number, got " + v.dump());
      o.f32(v.get<float>());
      return;
    case F64:
      if (!v.is_number()) bad(key, "expected a number, got " + v.dump());
      o.f64(v.get<double>());
      return;
    case BOOL:
      if (!v.is_boolean()) bad(key, "expected true or false, got " + v.dump());
      o.put(static_cast<uint8_t>(v.get<bool>() ? 1 : 0));
      return;
    case STRING:
      if (!v.is_string()) bad(key, "expected a string, got " + v.dump().substr(0, 64));
      o.str(v.get<std::string>());
      return;
  }
  bad(key, "a value of type " + std::to_string(t) + " cannot be nested");
}

}  // namespace

void put_kv(Bytes &out, const json &e) {
  if (!e.is_object() || !e.contains("key") || !e["key"].is_string() || !e.contains("type") || !e["type"].is_string() || !e.contains("value"))
    throw std::invalid_argument("GGUF key-value entry without key, type and value: " + e.dump().substr(0, 80));
  const std::string key = e["key"].get<std::string>();
  const uint32_t t = type_of(key, e["type"].get<std::string>());
  out.str(key);
  out.put(t);
  if (t != ARRAY) return put_value(out, key, t, e["value"]);
  if (!e.contains("item") || !e["item"].is_string()) bad(key, "an array needs its item type");
  const uint32_t it = type_of(key, e["item"].get<std::string>());
  if (it == ARRAY) bad(key, "arrays of arrays are not written");
  const json &v = e["value"];
  if (!v.is_array()) bad(key, "expected a list");
  out.put(it);
  out.put(static_cast<uint64_t>(v.size()));
  for (const auto &x : v) put_value(out, key, it, x);
}

}  // namespace ckh::gguf
