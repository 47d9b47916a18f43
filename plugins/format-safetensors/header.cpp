// header.cpp — see header.hpp. A small recursive-descent JSON reader specialised for safetensors
// headers: it builds no DOM, validates UTF-8, rejects duplicate keys and bounds nesting depth.
#include "header.hpp"

#include <algorithm>
#include <limits>
#include <unordered_set>
#include <utility>

namespace ckh::st {

namespace {

struct DtypeName {
  const char *name;
  ckh_dtype dtype;
};
constexpr DtypeName kDtypes[] = {
    {"BOOL", CKH_DT_BOOL}, {"U8", CKH_DT_U8},   {"I8", CKH_DT_I8},   {"F8_E5M2", CKH_DT_F8_E5M2},
    {"F8_E4M3", CKH_DT_F8_E4M3FN}, {"I16", CKH_DT_I16}, {"U16", CKH_DT_U16}, {"F16", CKH_DT_F16},
    {"BF16", CKH_DT_BF16}, {"I32", CKH_DT_I32}, {"U32", CKH_DT_U32}, {"F32", CKH_DT_F32},
    {"F64", CKH_DT_F64},   {"I64", CKH_DT_I64}, {"U64", CKH_DT_U64}, {"F8_E8M0", CKH_DT_F8_E8M0}};

constexpr const char *kMeta = "__metadata__";

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of the well-formed UTF-8 sequence (RFC 3629: no overlongs, no surrogates, <= U+10FFFF)
// starting at p, or 0.
size_t utf8_len(const unsigned char *p, size_t n) {
  const unsigned c = p[0];
  auto cont = [&](size_t i, unsigned lo, unsigned hi) { return i < n && p[i] >= lo && p[i] <= hi; };
  if (c >= 0xC2 && c <= 0xDF) return cont(1, 0x80, 0xBF) ? 2 : 0;
  if (c == 0xE0) return cont(1, 0xA0, 0xBF) && cont(2, 0x80, 0xBF) ? 3 : 0;
  if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) return cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) ? 3 : 0;
  if (c == 0xED) return cont(1, 0x80, 0x9F) && cont(2, 0x80, 0xBF) ? 3 : 0;
  if (c == 0xF0) return cont(1, 0x90, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  if (c >= 0xF1 && c <= 0xF3) return cont(1, 0x80, 0xBF) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  if (c == 0xF4) return cont(1, 0x80, 0x8F) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  return 0;
}

void put_utf8(std::string &out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// A JSON number token, classified for our needs.
struct Number {
  bool integer = false;   // no fraction, no exponent
  bool negative = false;  // leading '-'
  bool overflow = false;  // magnitude > UINT64_MAX
  uint64_t value = 0;     // magnitude, when integer and !overflow
};

// An entry as read, checked once its object is closed.
struct RawEntry {
  bool has_dtype = false, has_shape = false, has_offsets = false;
  std::string dtype;
  std::vector<int64_t> shape;
  uint64_t off[2] = {0, 0};
};

class Parser {
 public:
  Parser(const char *s, size_t n, std::string &err) : s_(s), n_(n), err_(err) {}

  bool run(Header &out);

 private:
  // ---- lexical level ---------------------------------------------------------------------------
  bool fail(const std::string &what) {
    err_ = what;
    return false;
  }
  bool syntax(const std::string &what) {
    if (p_ >= n_) return fail("header is not valid JSON: it ends early (" + what + ")");
    return fail("header is not valid JSON: " + what + " at byte " + std::to_string(p_) + " of the header");
  }
  // Before a semantic complaint about the next value: running out of bytes is a syntax error.
  bool more() { return p_ < n_ || syntax("expected a value"); }
  void ws() {
    while (p_ < n_ && (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\n' || s_[p_] == '\r')) ++p_;
  }
  bool at(char c) const { return p_ < n_ && s_[p_] == c; }
  bool expect(char c, const char *what) {
    ws();
    if (!at(c)) return syntax(std::string("expected ") + what);
    ++p_;
    return true;
  }
  bool hex4(uint32_t &v) {
    if (n_ - p_ < 4) return syntax("truncated \\u escape");
    v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[p_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<uint32_t>(c - 'A' + 10);
      else return syntax("bad hex digit in \\u escape");
    }
    return true;
  }
  // A string; the current byte must be '"'.
  bool string(std::string &out) {
    out.clear();
    ++p_;
    for (;;) {
      // Fast path over plain ASCII.
      size_t q = p_;
      while (q < n_) {
        const unsigned char c = static_cast<unsigned char>(s_[q]);
        if (c == '"' || c == '\\' || c < 0x20 || c >= 0x80) break;
        ++q;
      }
      out.append(s_ + p_, q - p_);
      p_ = q;
      if (p_ >= n_) return syntax("unterminated string");
      const unsigned char c = static_cast<unsigned char>(s_[p_]);
      if (c == '"') {
        ++p_;
        return true;
      }
      if (c < 0x20) return syntax("control character in string");
      if (c >= 0x80) {
        const size_t k = utf8_len(reinterpret_cast<const unsigned char *>(s_ + p_), n_ - p_);
        if (k == 0) return syntax("invalid UTF-8 in string");
        out.append(s_ + p_, k);
        p_ += k;
        continue;
      }
      // Escape.
      if (++p_ >= n_) return syntax("unterminated string");
      const char e = s_[p_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(cp)) return false;
          if (cp >= 0xDC00 && cp <= 0xDFFF) return syntax("lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (n_ - p_ < 2 || s_[p_] != '\\' || s_[p_ + 1] != 'u') return syntax("lone high surrogate in \\u escape");
            p_ += 2;
            if (!hex4(lo)) return false;
            if (lo < 0xDC00 || lo > 0xDFFF) return syntax("high surrogate not followed by a low one");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: return syntax("invalid escape");
      }
    }
  }
  bool number(Number &num) {
    num = Number{};
    if (at('-')) {
      num.negative = true;
      ++p_;
    }
    if (p_ >= n_ || !is_digit(s_[p_])) return syntax("invalid number");
    if (s_[p_] == '0') {
      ++p_;
    } else {
      while (p_ < n_ && is_digit(s_[p_])) {
        const uint64_t d = static_cast<uint64_t>(s_[p_] - '0');
        if (num.value > (std::numeric_limits<uint64_t>::max() - d) / 10) num.overflow = true;
        else num.value = num.value * 10 + d;
        ++p_;
      }
    }
    bool frac = false, exp = false;
    if (at('.')) {
      ++p_;
      if (p_ >= n_ || !is_digit(s_[p_])) return syntax("invalid number");
      while (p_ < n_ && is_digit(s_[p_])) ++p_;
      frac = true;
    }
    if (at('e') || at('E')) {
      ++p_;
      if (at('+') || at('-')) ++p_;
      if (p_ >= n_ || !is_digit(s_[p_])) return syntax("invalid number");
      while (p_ < n_ && is_digit(s_[p_])) ++p_;
      exp = true;
    }
    num.integer = !frac && !exp;
    return true;
  }
  bool literal(const char *word) {
    const size_t k = std::char_traits<char>::length(word);
    if (n_ - p_ < k || std::char_traits<char>::compare(s_ + p_, word, k) != 0) return syntax("invalid literal");
    p_ += k;
    return true;
  }
  // Any JSON value (fields we do not use); nesting bounded by kMaxDepth.
  bool skip_value(int depth) {
    if (depth > kMaxDepth) return fail("header JSON nests deeper than " + std::to_string(kMaxDepth) + " levels");
    ws();
    if (!more()) return false;
    std::string tmp;
    switch (s_[p_]) {
      case '"': return string(tmp);
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      case '{': {
        ++p_;
        ws();
        if (at('}')) return ++p_, true;
        for (;;) {
          ws();
          if (!at('"')) return syntax("expected a string key");
          if (!string(tmp) || !expect(':', "':'") || !skip_value(depth + 1)) return false;
          ws();
          if (at(',')) { ++p_; continue; }
          if (at('}')) return ++p_, true;
          return syntax("expected ',' or '}'");
        }
      }
      case '[': {
        ++p_;
        ws();
        if (at(']')) return ++p_, true;
        for (;;) {
          if (!skip_value(depth + 1)) return false;
          ws();
          if (at(',')) { ++p_; continue; }
          if (at(']')) return ++p_, true;
          return syntax("expected ',' or ']'");
        }
      }
      default: {
        if (s_[p_] == '-' || is_digit(s_[p_])) {
          Number num;
          return number(num);
        }
        return syntax("unexpected character");
      }
    }
  }

  // ---- safetensors level -----------------------------------------------------------------------
  // A non-negative integer (shape entry or offset). `what` names it for messages.
  bool uint_value(const std::string &who, const char *what, uint64_t max, uint64_t &v) {
    ws();
    if (!more()) return false;
    if (!(s_[p_] == '-' || is_digit(s_[p_]))) return fail(who + ": " + what + " must be non-negative integers");
    Number num;
    if (!number(num)) return false;
    if (!num.integer || (num.negative && (num.value != 0 || num.overflow)))
      return fail(who + ": " + what + " must be non-negative integers");
    if (num.overflow || num.value > max)
      return fail(who + ": " + what + " value is larger than " + std::to_string(max));
    v = num.value;
    return true;
  }
  bool shape(const std::string &who, std::vector<int64_t> &dims) {
    ws();
    if (!more()) return false;
    if (!at('[')) return fail(who + ": shape must be an array of at most " + std::to_string(CKH_MAX_DIMS) + " sizes");
    ++p_;
    dims.clear();
    ws();
    if (at(']')) return ++p_, true;
    for (;;) {
      uint64_t d = 0;
      if (!uint_value(who, "shape entries", static_cast<uint64_t>(std::numeric_limits<int64_t>::max()), d))
        return false;
      if (dims.size() == CKH_MAX_DIMS)
        return fail(who + ": shape has more than " + std::to_string(CKH_MAX_DIMS) + " dimensions");
      dims.push_back(static_cast<int64_t>(d));
      ws();
      if (at(',')) { ++p_; continue; }
      if (at(']')) return ++p_, true;
      return syntax("expected ',' or ']' in shape");
    }
  }
  bool offsets(const std::string &who, uint64_t (&off)[2]) {
    ws();
    const char *msg = ": data_offsets must be an array of two non-negative integers";
    if (!more()) return false;
    if (!at('[')) return fail(who + msg);
    ++p_;
    for (int i = 0; i < 2; ++i) {
      ws();
      if (at(']')) return fail(who + msg);
      if (!uint_value(who, "data_offsets", std::numeric_limits<uint64_t>::max(), off[i])) return false;
      ws();
      if (i == 0 && !at(',')) return at(']') ? fail(who + msg) : syntax("expected ','");
      if (i == 0) ++p_;
    }
    ws();
    if (at(',')) return fail(who + msg);
    return expect(']', "']'");
  }
  bool entry(const std::string &name, Entry &out) {
    const std::string who = "tensor " + quote(name);
    ws();
    if (!more()) return false;
    if (!at('{')) return fail(who + ": entry is not an object with dtype, shape and data_offsets");
    ++p_;
    RawEntry raw;
    std::string key;
    ws();
    if (at('}')) {
      ++p_;
    } else {
      for (;;) {
        ws();
        if (!at('"')) return syntax("expected a string key");
        if (!string(key) || !expect(':', "':'")) return false;
        ws();
        bool *seen = nullptr;
        if (key == "dtype") seen = &raw.has_dtype;
        else if (key == "shape") seen = &raw.has_shape;
        else if (key == "data_offsets") seen = &raw.has_offsets;
        if (seen && *seen) return fail(who + ": field '" + key + "' appears twice");
        if (seen) *seen = true;
        if (key == "dtype") {
          if (!more()) return false;
          if (!at('"')) return fail(who + ": dtype is not a string");
          if (!string(raw.dtype)) return false;
        } else if (key == "shape") {
          if (!shape(who, raw.shape)) return false;
        } else if (key == "data_offsets") {
          if (!offsets(who, raw.off)) return false;
        } else if (!skip_value(1)) {  // unknown fields are ignored, like the reference implementation
          return false;
        }
        ws();
        if (at(',')) { ++p_; continue; }
        if (at('}')) { ++p_; break; }
        return syntax("expected ',' or '}'");
      }
    }
    if (!raw.has_dtype) return fail(who + ": entry has no dtype");
    if (!raw.has_shape) return fail(who + ": entry has no shape");
    if (!raw.has_offsets) return fail(who + ": entry has no data_offsets");
    out.name = name;
    out.dtype = dtype_from_string(raw.dtype);
    if (out.dtype == CKH_DT_INVALID) return fail(who + ": unknown dtype " + quote(raw.dtype));
    out.shape = std::move(raw.shape);
    out.begin = raw.off[0];
    out.end = raw.off[1];
    return true;
  }
  bool metadata(std::map<std::string, std::string> &meta) {
    ws();
    if (!more()) return false;
    if (!at('{')) return fail("__metadata__ is not an object of strings");
    ++p_;
    ws();
    if (at('}')) return ++p_, true;
    std::string key, value;
    for (;;) {
      ws();
      if (!at('"')) return syntax("expected a string key");
      if (!string(key) || !expect(':', "':'")) return false;
      ws();
      if (!more()) return false;
      if (!at('"')) return fail("__metadata__ value of " + quote(key) + " is not a string");
      if (!string(value)) return false;
      if (!meta.emplace(key, value).second) return fail("__metadata__ key " + quote(key) + " appears twice");
      ws();
      if (at(',')) { ++p_; continue; }
      if (at('}')) return ++p_, true;
      return syntax("expected ',' or '}'");
    }
  }

  const char *s_;
  size_t n_;
  size_t p_ = 0;
  std::string &err_;
};

bool Parser::run(Header &out) {
  ws();
  if (!at('{')) return p_ >= n_ ? fail("header is empty") : fail("header is not a JSON object");
  ++p_;
  std::unordered_set<std::string> names;
  bool have_meta = false;
  std::string key;
  ws();
  if (at('}')) {
    ++p_;
  } else {
    for (;;) {
      ws();
      if (!at('"')) return syntax("expected a string key");
      if (!string(key) || !expect(':', "':'")) return false;
      if (key == kMeta) {
        if (have_meta) return fail("__metadata__ appears twice");
        have_meta = true;
        if (!metadata(out.metadata)) return false;
      } else {
        if (key.empty()) return fail("a tensor has an empty name");
        if (key.find('\0') != std::string::npos) return fail("tensor " + quote(key) + ": name contains a NUL byte");
        if (!names.insert(key).second) return fail("tensor " + quote(key) + " appears twice in the header");
        Entry e;
        if (!entry(key, e)) return false;
        out.entries.push_back(std::move(e));
      }
      ws();
      if (at(',')) { ++p_; continue; }
      if (at('}')) { ++p_; break; }
      return syntax("expected ',' or '}'");
    }
  }
  ws();
  if (p_ != n_) return syntax("unexpected bytes after the header object");
  return true;
}

}  // namespace

ckh_dtype dtype_from_string(std::string_view s) {
  for (const auto &d : kDtypes)
    if (s == d.name) return d.dtype;
  return CKH_DT_INVALID;
}

const char *dtype_to_string(ckh_dtype dt) {
  for (const auto &d : kDtypes)
    if (dt == d.dtype) return d.name;
  return nullptr;
}

std::string shape_str(const std::vector<int64_t> &s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

std::string quote(std::string_view name) {
  constexpr size_t kMax = 200;
  std::string r = "'";
  size_t n = name.size();
  bool cut = false;
  if (n > kMax) {
    n = kMax;
    while (n > 0 && (static_cast<unsigned char>(name[n]) & 0xC0) == 0x80) --n;  // whole characters
    cut = true;
  }
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(name[i]);
    if (c < 0x20 || c == 0x7F || c == '\'' || c == '\\') {
      r += "\\x";
      r += hex[c >> 4];
      r += hex[c & 15];
    } else {
      r += static_cast<char>(c);
    }
  }
  if (cut) r += "...";
  return r + "'";
}

bool parse_length(const uint8_t *b, uint64_t file_size, uint64_t &len, std::string &err) {
  if (file_size < 8) {
    err = "file has " + std::to_string(file_size) + " bytes, too short for a safetensors header";
    return false;
  }
  len = 0;
  for (int i = 7; i >= 0; --i) len = (len << 8) | b[i];
  if (len < 2) {
    err = "header length " + std::to_string(len) + " is too small for a JSON object";
    return false;
  }
  if (len > kMaxHeader) {
    err = "header length " + std::to_string(len) + " exceeds the limit of " + std::to_string(kMaxHeader) + " bytes";
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
  out = Header{};
  if (len > kMaxHeader || file_size < 8 || len > file_size - 8) {
    err = "header length " + std::to_string(len) + " does not fit a file of " + std::to_string(file_size) + " bytes";
    return false;
  }
  out.header_len = len;
  out.data_start = 8 + len;
  out.data_size = file_size - out.data_start;
  auto reject = [&](std::string msg) {
    err = std::move(msg);
    out.entries.clear();
    out.metadata.clear();
    return false;
  };
  Parser p(text, static_cast<size_t>(len), err);
  if (!p.run(out)) return reject(err);
  // Sizes and bounds.
  for (const Entry &e : out.entries) {
    const std::string who = "tensor " + quote(e.name);
    const char *dt = dtype_to_string(e.dtype);
    if (e.begin > e.end)
      return reject(who + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) + "] are reversed");
    // The element count with every dimension taken as at least 1 must fit int64 (so strides computed
    // by anyone stay finite, even for empty tensors); the byte count is numel * dtype size.
    uint64_t bound = 1, numel = 1;
    bool overflow = false;
    for (int64_t d : e.shape) {
      const uint64_t u = static_cast<uint64_t>(d);
      if (__builtin_mul_overflow(bound, u ? u : 1, &bound)) overflow = true;
      numel *= u;  // used only without overflow, when numel <= bound
    }
    uint64_t need = 0;
    if (overflow || bound > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        __builtin_mul_overflow(numel, ckh_dtype_size(e.dtype), &need))
      return reject(who + ": shape " + shape_str(e.shape) + " x " + dt + " is too large (its byte size overflows 64 bits)");
    if (need != e.end - e.begin)
      return reject(who + ": shape " + shape_str(e.shape) + " x " + dt + " needs " + std::to_string(need) +
                    " bytes but data_offsets span " + std::to_string(e.end - e.begin));
    if (e.end > out.data_size)
      return reject(who + ": data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
                    "] end past the data section of " + std::to_string(out.data_size) + " bytes (file truncated?)");
  }
  // Overlaps (empty tensors occupy no bytes and never overlap).
  std::vector<const Entry *> by_off;
  by_off.reserve(out.entries.size());
  for (const auto &e : out.entries)
    if (e.end > e.begin) by_off.push_back(&e);
  std::sort(by_off.begin(), by_off.end(), [](const Entry *a, const Entry *b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  for (size_t i = 1; i < by_off.size(); ++i)
    if (by_off[i]->begin < by_off[i - 1]->end) {
      const Entry &a = *by_off[i - 1], &b = *by_off[i];
      return reject("tensor " + quote(b.name) + ": data_offsets [" + std::to_string(b.begin) + ", " +
                    std::to_string(b.end) + "] overlap tensor " + quote(a.name) + " at [" + std::to_string(a.begin) +
                    ", " + std::to_string(a.end) + "]");
    }
  return true;
}

bool parse(const uint8_t *data, size_t avail, uint64_t file_size, Header &out, std::string &err) {
  out = Header{};
  if (avail > file_size) avail = static_cast<size_t>(file_size);
  if (file_size >= 8 && avail < 8) {
    err = "only " + std::to_string(avail) + " bytes given, the header length needs 8";
    return false;
  }
  uint64_t len = 0;
  if (!parse_length(data, file_size, len, err)) return false;
  if (len > avail - 8) {
    err = "only " + std::to_string(avail - 8) + " of the header's " + std::to_string(len) + " bytes given";
    return false;
  }
  return parse_header(reinterpret_cast<const char *>(data + 8), len, file_size, out, err);
}

}  // namespace ckh::st
