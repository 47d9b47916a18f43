// gguf_read.cpp — see gguf_read.hpp.
#include "gguf_read.hpp"

#include <algorithm>
#include <cstring>
#include <set>
#include <stdexcept>

#include "gguf_kv.hpp"

using nlohmann::json;

namespace ckh::gguf {

namespace {

constexpr uint64_t kMaxString = 1ull << 24;     // a key or value string (a chat template is the longest seen)
constexpr uint64_t kMaxItems = 1ull << 26;      // array items (a vocabulary of 262k tokens, merges)
constexpr uint64_t kMaxKv = 1ull << 16;         // key-value pairs
constexpr uint64_t kMaxTensors = 1ull << 22;    // tensor infos
constexpr uint64_t kMaxJsonItems = 1ull << 27;  // all array items together

[[noreturn]] void bad(const std::string &m) { throw std::runtime_error(m); }

struct Cursor {
  const ReadAt &read;
  uint64_t size, at = 0, items = 0;
  void get(void *dst, uint64_t n, const char *what) {
    if (n > size || at > size - n) bad(std::string("truncated at byte ") + std::to_string(at) + " reading " + what);
    if (!read(at, n, dst)) bad(std::string("cannot read ") + what + " at byte " + std::to_string(at));
    at += n;
  }
  template <class T>
  T num(const char *what) {
    unsigned char b[sizeof(T)];
    get(b, sizeof(T), what);
    uint64_t v = 0;
    for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(b[i]) << (8 * i);
    T out;
    if constexpr (sizeof(T) == 8) {
      std::memcpy(&out, &v, 8);
    } else {
      const auto w = static_cast<std::conditional_t<sizeof(T) == 4, uint32_t, std::conditional_t<sizeof(T) == 2, uint16_t, uint8_t>>>(v);
      std::memcpy(&out, &w, sizeof(T));
    }
    return out;
  }
  std::string str(const char *what) {
    const uint64_t n = num<uint64_t>(what);
    if (n > kMaxString) bad(std::string(what) + ": a string of " + std::to_string(n) + " bytes (at most " + std::to_string(kMaxString) + ")");
    std::string s(static_cast<size_t>(n), '\0');
    if (n) get(s.data(), n, what);
    if (!utf8(s)) bad(std::string(what) + " at byte " + std::to_string(at - n) + " is not UTF-8");
    return s;
  }
  // GGUF strings are UTF-8 (keys, values, names); anything else is refused rather than carried into JSON.
  static bool utf8(const std::string &s) {
    size_t i = 0;
    while (i < s.size()) {
      const unsigned char c = static_cast<unsigned char>(s[i]);
      size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
      if (n == 0 || i + n > s.size()) return false;
      uint32_t cp = n == 1 ? c : n == 2 ? (c & 0x1f) : n == 3 ? (c & 0x0f) : (c & 0x07);
      for (size_t k = 1; k < n; ++k) {
        const unsigned char d = static_cast<unsigned char>(s[i + k]);
        if ((d >> 6) != 0x2) return false;
        cp = (cp << 6) | (d & 0x3f);
      }
      if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return false;
      i += n;
    }
    return true;
  }
};

const char *type_name(uint32_t t) {
  static const char *const kNames[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
  return t < 13 ? kNames[t] : nullptr;
}

json value(Cursor &c, uint32_t t, const std::string &key) {
  switch (t) {
    case U8: return c.num<uint8_t>("u8");
    case I8: return c.num<int8_t>("i8");
    case U16: return c.num<uint16_t>("u16");
    case I16: return c.num<int16_t>("i16");
    case U32: return c.num<uint32_t>("u32");
    case I32: return c.num<int32_t>("i32");
    case U64: return c.num<uint64_t>("u64");
    case I64: return c.num<int64_t>("i64");
    case F32: return static_cast<double>(c.num<float>("f32"));
    case F64: return c.num<double>("f64");
    case BOOL: {
      const uint8_t b = c.num<uint8_t>("bool");
      if (b > 1) bad("key '" + key + "': bool value " + std::to_string(b));
      return b == 1;
    }
    case STRING: return c.str("string value");
  }
  bad("key '" + key + "': value type " + std::to_string(t) + " is not a GGUF type");
}

}  // namespace

uint64_t type_bytes(uint32_t t, uint64_t n) {
  uint64_t be = 0, bb = 0;
  switch (t) {
    case GGML_F32: be = 1, bb = 4; break;
    case GGML_F16: case GGML_BF16: be = 1, bb = 2; break;
    case GGML_Q4_0: be = 32, bb = 18; break;
    case GGML_Q4_1: be = 32, bb = 20; break;
    case GGML_Q5_0: be = 32, bb = 22; break;
    case GGML_Q5_1: be = 32, bb = 24; break;
    case GGML_Q8_0: be = 32, bb = 34; break;
    case GGML_Q2_K: be = 256, bb = 84; break;
    case GGML_Q3_K: be = 256, bb = 110; break;
    case GGML_Q4_K: be = 256, bb = 144; break;
    case GGML_Q5_K: be = 256, bb = 176; break;
    case GGML_Q6_K: be = 256, bb = 210; break;
    default: return 0;
  }
  if (n % be) return 0;
  return n / be * bb;
}

File parse(const ReadAt &read, uint64_t size) {
  Cursor c{read, size};
  File f;
  if (c.num<uint32_t>("magic") != kMagic) bad("not a GGUF file (no 'GGUF' magic)");
  f.version = c.num<uint32_t>("version");
  if (f.version != 2 && f.version != 3) bad("GGUF version " + std::to_string(f.version) + " (2 and 3 are read)");
  const uint64_t nt = c.num<uint64_t>("tensor count"), nkv = c.num<uint64_t>("key-value count");
  if (nt > kMaxTensors) bad(std::to_string(nt) + " tensors (at most " + std::to_string(kMaxTensors) + ")");
  if (nkv > kMaxKv) bad(std::to_string(nkv) + " key-value pairs (at most " + std::to_string(kMaxKv) + ")");
  std::set<std::string> keys;
  for (uint64_t i = 0; i < nkv; ++i) {
    const std::string key = c.str("key");
    if (!keys.insert(key).second) bad("key '" + key + "' appears twice");
    const uint32_t t = c.num<uint32_t>("value type");
    json e = {{"key", key}};
    if (t == ARRAY) {
      const uint32_t it = c.num<uint32_t>("array item type");
      const uint64_t n = c.num<uint64_t>("array length");
      if (!type_name(it) || it == ARRAY) bad("key '" + key + "': array of type " + std::to_string(it));
      if (n > kMaxItems || n > size || (c.items += n) > kMaxJsonItems) bad("key '" + key + "': an array of " + std::to_string(n) + " items");
      json v = json::array();
      for (uint64_t k = 0; k < n; ++k) v.push_back(value(c, it, key));
      e["type"] = "array";
      e["item"] = type_name(it);
      e["value"] = std::move(v);
    } else {
      if (!type_name(t)) bad("key '" + key + "': value type " + std::to_string(t) + " is not a GGUF type");
      e["type"] = type_name(t);
      e["value"] = value(c, t, key);
    }
    if (key == "general.alignment") {
      if (t != U32) bad(std::string("general.alignment has type ") + (type_name(t) ? type_name(t) : "?") + ", not u32");
      const uint64_t a = e["value"].get<uint64_t>();
      if (a == 0 || (a & (a - 1)) || a > (1u << 20)) bad("general.alignment " + std::to_string(a) + " is not a power of two up to 1 MiB");
      f.alignment = a;
    }
    f.kv.push_back(std::move(e));
  }
  std::set<std::string> names;
  for (uint64_t i = 0; i < nt; ++i) {
    TensorInfo t;
    t.name = c.str("tensor name");
    if (t.name.empty() || t.name.size() > 255) bad("a tensor name of " + std::to_string(t.name.size()) + " bytes");
    if (!names.insert(t.name).second) bad("tensor '" + t.name + "' appears twice");
    const uint32_t nd = c.num<uint32_t>("n_dims");
    if (nd < 1 || nd > 4) bad("tensor '" + t.name + "': " + std::to_string(nd) + " dimensions (1 to 4)");
    uint64_t n = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const uint64_t x = c.num<uint64_t>("dimension");
      if (x == 0 || x > (1ull << 40) || __builtin_mul_overflow(n, x, &n) || n > (1ull << 48))
        bad("tensor '" + t.name + "': dimension " + std::to_string(d) + " of " + std::to_string(x));
      t.ne.push_back(x);
    }
    t.type = c.num<uint32_t>("tensor type");
    t.offset = c.num<uint64_t>("tensor offset");
    // Bytes: rows of ne[0] elements (whole blocks for block types).
    const uint64_t row = type_bytes(t.type, t.ne[0]);
    if (row == 0) bad("tensor '" + t.name + "': ggml type " + std::to_string(t.type) + " with rows of " + std::to_string(t.ne[0]) +
                      " elements is not read (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K..Q6_K are)");
    if (__builtin_mul_overflow(row, n / t.ne[0], &t.bytes)) bad("tensor '" + t.name + "' is too large");
    f.tensors.push_back(std::move(t));
  }
  f.data_start = (c.at + f.alignment - 1) / f.alignment * f.alignment;
  // Every tensor's data inside the file, aligned, and no two overlapping.
  std::vector<std::pair<uint64_t, uint64_t>> spans;
  for (const TensorInfo &t : f.tensors) {
    if (t.offset % f.alignment) bad("tensor '" + t.name + "': offset " + std::to_string(t.offset) + " is not a multiple of " + std::to_string(f.alignment));
    if (t.offset > size || f.data_start > size - t.offset || t.bytes > size - f.data_start - t.offset)
      bad("tensor '" + t.name + "': " + std::to_string(t.bytes) + " bytes at data offset " + std::to_string(t.offset) + " run past the end of the " +
          std::to_string(size) + "-byte file");
    spans.push_back({t.offset, t.offset + t.bytes});
  }
  std::sort(spans.begin(), spans.end());
  for (size_t i = 1; i < spans.size(); ++i)
    if (spans[i].first < spans[i - 1].second) bad("two tensors' data overlap at data offset " + std::to_string(spans[i].first));
  return f;
}

}  // namespace ckh::gguf
