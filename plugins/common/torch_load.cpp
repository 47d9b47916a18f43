// torch_load.cpp — see torch_load.hpp.
#include "torch_load.hpp"

#include "fd_read.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <unordered_map>

namespace ckh::torchfmt {

namespace {

[[noreturn]] void bad(const std::string &m) { throw std::runtime_error(m); }

uint64_t le(const uint8_t *p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

// ---- zip ---------------------------------------------------------------------------------------

std::vector<ZipEntry> read_zip(const ReadAt &read, uint64_t base, uint64_t size) {
  if (size < 22) bad("zip: archive of " + std::to_string(size) + " bytes is too small");
  const uint64_t tail_len = std::min<uint64_t>(size, 65536 + 22);
  std::vector<uint8_t> tail(tail_len);
  if (!read(base + size - tail_len, tail_len, tail.data())) bad("zip: cannot read the end of the archive");
  int64_t eocd = -1;
  for (int64_t i = static_cast<int64_t>(tail_len) - 22; i >= 0; --i)
    if (le(&tail[static_cast<size_t>(i)], 4) == 0x06054b50) {
      eocd = i;
      break;
    }
  if (eocd < 0) bad("zip: no end-of-central-directory record (truncated or not a zip)");
  const uint8_t *e = &tail[static_cast<size_t>(eocd)];
  const uint64_t eocd_pos = size - tail_len + static_cast<uint64_t>(eocd);
  uint64_t entries = le(e + 10, 2), cd_size = le(e + 12, 4), cd_off = le(e + 16, 4);
  // ZIP64: locator right before the classic record.
  if (eocd_pos >= 20) {
    uint8_t loc[20];
    if (!read(base + eocd_pos - 20, 20, loc)) bad("zip: cannot read the ZIP64 locator");
    if (le(loc, 4) == 0x07064b50) {
      const uint64_t z = le(loc + 8, 8);
      if (z > eocd_pos - 20 || eocd_pos - 20 - z < 56) bad("zip: ZIP64 end record out of range");
      uint8_t r[56];
      if (!read(base + z, 56, r) || le(r, 4) != 0x06064b50) bad("zip: bad ZIP64 end record");
      entries = le(r + 32, 8);
      cd_size = le(r + 40, 8);
      cd_off = le(r + 48, 8);
    }
  }
  if (cd_off > size || cd_size > size - cd_off || cd_off + cd_size > eocd_pos)
    bad("zip: central directory [" + std::to_string(cd_off) + ", +" + std::to_string(cd_size) + ") out of range");
  if (cd_size > (512ull << 20)) bad("zip: central directory of " + std::to_string(cd_size) + " bytes is too large");
  if (entries > cd_size / 46) bad("zip: " + std::to_string(entries) + " entries cannot fit the central directory");
  std::vector<uint8_t> cd(cd_size);
  if (cd_size && !read(base + cd_off, cd_size, cd.data())) bad("zip: cannot read the central directory");
  std::vector<ZipEntry> out;
  size_t p = 0;
  for (uint64_t k = 0; k < entries; ++k) {
    if (p + 46 > cd.size() || le(&cd[p], 4) != 0x02014b50) bad("zip: corrupt central directory entry " + std::to_string(k));
    const uint8_t *c = &cd[p];
    ZipEntry z;
    z.method = static_cast<uint16_t>(le(c + 10, 2));
    uint64_t csize = le(c + 20, 4), usize = le(c + 24, 4), lho = le(c + 42, 4);
    const size_t nl = le(c + 28, 2), xl = le(c + 30, 2), cl = le(c + 32, 2);
    if (p + 46 + nl + xl + cl > cd.size()) bad("zip: central directory entry " + std::to_string(k) + " runs past its end");
    z.name.assign(reinterpret_cast<const char *>(c + 46), nl);
    // ZIP64 extra: values present only for fields that are 0xFFFFFFFF, in the order usize, csize, lho.
    for (size_t x = 0; x + 4 <= xl;) {
      const uint64_t id = le(c + 46 + nl + x, 2), len = le(c + 46 + nl + x + 2, 2);
      if (x + 4 + len > xl) bad("zip: bad extra field in entry '" + z.name + "'");
      if (id == 1) {
        const uint8_t *f = c + 46 + nl + x + 4;
        size_t q = 0;
        auto next = [&](uint64_t &v) {
          if (v != 0xFFFFFFFFull) return;
          if (q + 8 > len) bad("zip: short ZIP64 field in entry '" + z.name + "'");
          v = le(f + q, 8);
          q += 8;
        };
        next(usize);
        next(csize);
        next(lho);
      }
      x += 4 + len;
    }
    if (z.method == 0 && csize != usize) bad("zip: stored entry '" + z.name + "' has different sizes");
    if (lho > cd_off || cd_off - lho < 30) bad("zip: entry '" + z.name + "' has its local header out of range");
    uint8_t lh[30];
    if (!read(base + lho, 30, lh) || le(lh, 4) != 0x04034b50) bad("zip: bad local header for entry '" + z.name + "'");
    z.data_offset = lho + 30 + le(lh + 26, 2) + le(lh + 28, 2);
    z.size = csize;
    if (z.data_offset > cd_off || z.size > cd_off - z.data_offset)
      bad("zip: data of entry '" + z.name + "' runs past the central directory");
    z.data_offset += base;
    out.push_back(std::move(z));
    p += 46 + nl + xl + cl;
  }
  // Payloads must not overlap.
  std::vector<const ZipEntry *> s;
  for (const auto &z : out) s.push_back(&z);
  std::sort(s.begin(), s.end(), [](const ZipEntry *a, const ZipEntry *b) { return a->data_offset < b->data_offset; });
  for (size_t i = 1; i < s.size(); ++i)
    if (s[i]->data_offset < s[i - 1]->data_offset + s[i - 1]->size)
      bad("zip: entries '" + s[i - 1]->name + "' and '" + s[i]->name + "' overlap");
  return out;
}

// ---- pickle ------------------------------------------------------------------------------------

namespace {

ckh_dtype storage_dtype(const std::string &cls) {
  static const std::unordered_map<std::string, ckh_dtype> m = {
      {"torch.FloatStorage", CKH_DT_F32},   {"torch.DoubleStorage", CKH_DT_F64}, {"torch.HalfStorage", CKH_DT_F16},
      {"torch.BFloat16Storage", CKH_DT_BF16}, {"torch.LongStorage", CKH_DT_I64}, {"torch.IntStorage", CKH_DT_I32},
      {"torch.ShortStorage", CKH_DT_I16},   {"torch.CharStorage", CKH_DT_I8},   {"torch.ByteStorage", CKH_DT_U8},
      {"torch.BoolStorage", CKH_DT_BOOL}};
  auto it = m.find(cls);
  return it == m.end() ? CKH_DT_INVALID : it->second;
}

ckh_dtype torch_dtype(const std::string &name) {
  static const std::unordered_map<std::string, ckh_dtype> m = {
      {"torch.float32", CKH_DT_F32}, {"torch.float", CKH_DT_F32},   {"torch.float64", CKH_DT_F64},
      {"torch.double", CKH_DT_F64},  {"torch.float16", CKH_DT_F16}, {"torch.half", CKH_DT_F16},
      {"torch.bfloat16", CKH_DT_BF16}, {"torch.int64", CKH_DT_I64}, {"torch.long", CKH_DT_I64},
      {"torch.int32", CKH_DT_I32},   {"torch.int", CKH_DT_I32},     {"torch.int16", CKH_DT_I16},
      {"torch.int8", CKH_DT_I8},     {"torch.uint8", CKH_DT_U8},    {"torch.bool", CKH_DT_BOOL},
      {"torch.float8_e4m3fn", CKH_DT_F8_E4M3FN}, {"torch.float8_e5m2", CKH_DT_F8_E5M2},
      {"torch.uint16", CKH_DT_U16},  {"torch.uint32", CKH_DT_U32},  {"torch.uint64", CKH_DT_U64}};
  auto it = m.find(name);
  return it == m.end() ? CKH_DT_INVALID : it->second;
}

class Machine {
 public:
  Machine(const uint8_t *d, size_t n, const PickleLimits &l, Pickled &owner)
      : p_(d), end_(d + n), lim_(l), owner_(owner) {}

  VP run() {
    while (true) {
      const uint8_t op = u8();
      switch (op) {
        case 0x80: u8(); break;            // PROTO
        case 0x95: take(8); break;         // FRAME
        case '.': {                        // STOP
          if (stack_.empty()) bad("pickle: STOP with an empty stack");
          return stack_.back();
        }
        case '(': marks_.push_back(stack_.size()); depth(); break;
        case '0': pop(); break;
        case '1': pop_mark(); break;
        case '2': push(top()); break;
        case 'N': push(mk(Kind::None)); break;
        case 0x88: push(boolean(true)); break;
        case 0x89: push(boolean(false)); break;
        case 'I': {
          const std::string l = line();
          if (l == "01") push(boolean(true));
          else if (l == "00") push(boolean(false));
          else push(integer(parse_int(l)));
          break;
        }
        case 'L': {
          std::string l = line();
          if (!l.empty() && l.back() == 'L') l.pop_back();
          push(integer(parse_int(l)));
          break;
        }
        case 'J': push(integer(static_cast<int32_t>(le(take(4), 4)))); break;
        case 'K': push(integer(u8())); break;
        case 'M': push(integer(static_cast<int64_t>(le(take(2), 2)))); break;
        case 0x8a: push(long_bytes(u8())); break;
        case 0x8b: push(long_bytes(le(take(4), 4))); break;
        case 'F': {
          VP v = mk(Kind::Float);
          v->f = std::strtod(line().c_str(), nullptr);
          push(v);
          break;
        }
        case 'G': {
          const uint8_t *b = take(8);
          uint64_t u = 0;
          for (int i = 0; i < 8; ++i) u = (u << 8) | b[i];
          VP v = mk(Kind::Float);
          std::memcpy(&v->f, &u, 8);
          push(v);
          break;
        }
        case 'S': {
          std::string l = line();
          if (l.size() >= 2 && (l[0] == '\'' || l[0] == '"')) l = l.substr(1, l.size() - 2);
          push(str(Kind::Str, l));
          break;
        }
        case 'T': push(str(Kind::Str, bytes(le(take(4), 4)))); break;
        case 'U': push(str(Kind::Str, bytes(u8()))); break;
        case 'V': push(str(Kind::Str, line())); break;
        case 'X': push(str(Kind::Str, bytes(le(take(4), 4)))); break;
        case 0x8c: push(str(Kind::Str, bytes(u8()))); break;
        case 0x8d: push(str(Kind::Str, bytes(le(take(8), 8)))); break;
        case 'B': push(str(Kind::Bytes, bytes(le(take(4), 4)))); break;
        case 'C': push(str(Kind::Bytes, bytes(u8()))); break;
        case 0x8e: push(str(Kind::Bytes, bytes(le(take(8), 8)))); break;
        case 0x96: push(str(Kind::Bytes, bytes(le(take(8), 8)))); break;
        case ']': push(mk(Kind::List)); break;
        case ')': push(mk(Kind::Tuple)); break;
        case '}': push(mk(Kind::Dict)); break;
        case 0x8f: push(mk(Kind::List)); break;  // EMPTY_SET as a list
        case 'l': push(seq(Kind::List, pop_mark())); break;
        case 't': push(seq(Kind::Tuple, pop_mark())); break;
        case 0x91: push(seq(Kind::List, pop_mark())); break;  // FROZENSET
        case 0x85: push(seq(Kind::Tuple, pop_n(1))); break;
        case 0x86: push(seq(Kind::Tuple, pop_n(2))); break;
        case 0x87: push(seq(Kind::Tuple, pop_n(3))); break;
        case 'a': {
          VP x = pop();
          append(top(), {x});
          break;
        }
        case 'e':
        case 0x90: {  // APPENDS, ADDITEMS
          auto xs = pop_mark();
          append(top(), xs);
          break;
        }
        case 'd': {
          auto xs = pop_mark();
          VP d = mk(Kind::Dict);
          set_items(d, xs);
          push(d);
          break;
        }
        case 's': {
          auto xs = pop_n(2);
          set_items(top(), xs);
          break;
        }
        case 'u': {
          auto xs = pop_mark();
          set_items(top(), xs);
          break;
        }
        case 'c': {
          const std::string mod = line(), name = line();
          push(global(mod, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          VP name = pop(), mod = pop();
          if (mod->kind != Kind::Str || name->kind != Kind::Str) bad("pickle: STACK_GLOBAL needs two strings");
          push(global(mod->s, name->s));
          break;
        }
        case 'R': {
          VP args = pop(), fn = pop();
          push(call(fn, args));
          break;
        }
        case 0x81: {  // NEWOBJ
          VP args = pop(), cls = pop();
          push(object(cls, args));
          break;
        }
        case 0x92: {  // NEWOBJ_EX
          pop();
          VP args = pop(), cls = pop();
          push(object(cls, args));
          break;
        }
        case 'i': {  // INST
          const std::string mod = line(), name = line();
          auto xs = pop_mark();
          push(object(global(mod, name), seq(Kind::Tuple, xs)));
          break;
        }
        case 'o': {  // OBJ
          auto xs = pop_mark();
          if (xs.empty()) bad("pickle: OBJ without a class");
          VP cls = xs.front();
          xs.erase(xs.begin());
          push(object(cls, seq(Kind::Tuple, xs)));
          break;
        }
        case 'b': {
          VP st = pop();
          build(top(), st);
          break;
        }
        case 'p': memo_put(static_cast<uint64_t>(parse_int(line()))); break;
        case 'q': memo_put(u8()); break;
        case 'r': memo_put(le(take(4), 4)); break;
        case 0x94: memo_put(memo_.size()); break;
        case 'g': push(memo_get(static_cast<uint64_t>(parse_int(line())))); break;
        case 'h': push(memo_get(u8())); break;
        case 'j': push(memo_get(le(take(4), 4))); break;
        case 'P': {
          VP v = mk(Kind::PersId);
          v->items.push_back(str(Kind::Str, line()));
          push(v);
          break;
        }
        case 'Q': {
          VP pid = pop();
          VP v = mk(Kind::PersId);
          v->items = pid->kind == Kind::Tuple ? pid->items : std::vector<VP>{pid};
          push(v);
          break;
        }
        default: {
          char buf[64];
          std::snprintf(buf, sizeof buf, "pickle: unsupported opcode 0x%02x at byte %zu", op,
                        static_cast<size_t>(p_ - start_ - 1));
          bad(buf);
        }
      }
    }
  }
  void set_start(const uint8_t *s) { start_ = s; }

 private:
  uint8_t u8() {
    if (p_ >= end_) bad("pickle: truncated (no STOP)");
    return *p_++;
  }
  const uint8_t *take(uint64_t n) {
    if (n > static_cast<uint64_t>(end_ - p_)) bad("pickle: declares " + std::to_string(n) + " bytes beyond the end of data");
    const uint8_t *r = p_;
    p_ += n;
    return r;
  }
  std::string bytes(uint64_t n) {
    if (n > lim_.max_string) bad("pickle: string of " + std::to_string(n) + " bytes exceeds the limit");
    const uint8_t *b = take(n);
    return std::string(reinterpret_cast<const char *>(b), n);
  }
  std::string line() {
    const uint8_t *s = p_;
    while (p_ < end_ && *p_ != '\n') {
      if (p_ - s > 4096) bad("pickle: text line too long");
      ++p_;
    }
    if (p_ >= end_) bad("pickle: unterminated text line");
    std::string r(reinterpret_cast<const char *>(s), static_cast<size_t>(p_ - s));
    ++p_;
    return r;
  }
  static int64_t parse_int(const std::string &s) {
    try {
      size_t used = 0;
      const long long v = std::stoll(s, &used);
      return v;
    } catch (...) {
      bad("pickle: bad integer '" + s.substr(0, 32) + "'");
    }
  }
  VP mk(Kind k) {
    if (++count_ > lim_.max_values) bad("pickle: more than " + std::to_string(lim_.max_values) + " values");
    auto v = std::make_shared<Value>();
    v->kind = k;
    owner_.all.push_back(v);
    return v;
  }
  VP boolean(bool b) {
    VP v = mk(Kind::Bool);
    v->b = b;
    return v;
  }
  VP integer(int64_t i) {
    VP v = mk(Kind::Int);
    v->i = i;
    return v;
  }
  VP str(Kind k, std::string s) {
    VP v = mk(k);
    v->s = std::move(s);
    return v;
  }
  VP long_bytes(uint64_t n) {
    if (n > 1024) bad("pickle: integer of " + std::to_string(n) + " bytes");
    const uint8_t *b = take(n);
    VP v = mk(Kind::Int);
    if (n == 0) return v;
    if (n > 8) {
      // Beyond int64: kept inert unless all the extra bytes are sign extension.
      const uint8_t ext = (b[7] & 0x80) ? 0xFF : 0x00;
      for (uint64_t k = 8; k < n; ++k)
        if (b[k] != ext) v->big = true;
      n = 8;
    }
    uint64_t u = 0;
    for (int i = static_cast<int>(n) - 1; i >= 0; --i) u = (u << 8) | b[i];
    if (n < 8 && (b[n - 1] & 0x80)) u |= ~0ull << (8 * n);
    v->i = static_cast<int64_t>(u);
    return v;
  }
  VP seq(Kind k, std::vector<VP> xs) {
    VP v = mk(k);
    v->items = std::move(xs);
    return v;
  }
  void depth() {
    if (marks_.size() > lim_.max_depth) bad("pickle: nesting deeper than " + std::to_string(lim_.max_depth));
  }
  void push(VP v) {
    if (stack_.size() > lim_.max_values) bad("pickle: stack too large");
    stack_.push_back(std::move(v));
  }
  VP pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) bad("pickle: stack underflow");
    VP v = stack_.back();
    stack_.pop_back();
    return v;
  }
  VP &top() {
    if (stack_.empty()) bad("pickle: empty stack");
    return stack_.back();
  }
  std::vector<VP> pop_n(size_t n) {
    std::vector<VP> r(n);
    for (size_t i = n; i > 0; --i) r[i - 1] = pop();
    return r;
  }
  std::vector<VP> pop_mark() {
    if (marks_.empty()) bad("pickle: no MARK");
    const size_t m = marks_.back();
    marks_.pop_back();
    if (m > stack_.size()) bad("pickle: corrupt MARK");
    std::vector<VP> r(stack_.begin() + static_cast<long>(m), stack_.end());
    stack_.resize(m);
    return r;
  }
  void append(VP &to, const std::vector<VP> &xs) {
    if (to->kind != Kind::List) bad("pickle: APPEND to a non-list");
    if (to->items.size() + xs.size() > lim_.max_values) bad("pickle: list too large");
    to->items.insert(to->items.end(), xs.begin(), xs.end());
  }
  void set_items(VP &d, const std::vector<VP> &xs) {
    if (xs.size() % 2) bad("pickle: odd number of items for a dict");
    if (d->kind != Kind::Dict) {
      // SETITEMS on an inert object (e.g. a dict subclass): keep the items as its state.
      if (d->kind != Kind::Object) bad("pickle: SETITEM on a non-dict");
      if (!d->state) d->state = mk(Kind::Dict);
      set_items(d->state, xs);
      return;
    }
    for (size_t i = 0; i < xs.size(); i += 2) {
      bool replaced = false;
      if (xs[i]->kind == Kind::Str)
        for (auto &e : d->entries)
          if (e.first->kind == Kind::Str && e.first->s == xs[i]->s) {
            e.second = xs[i + 1];
            replaced = true;
            break;
          }
      if (!replaced) d->entries.emplace_back(xs[i], xs[i + 1]);
    }
  }
  void memo_put(uint64_t i) {
    if (i >= lim_.max_memo) bad("pickle: memo index " + std::to_string(i) + " exceeds the limit");
    if (stack_.empty()) bad("pickle: PUT with an empty stack");
    memo_[i] = stack_.back();
  }
  VP memo_get(uint64_t i) {
    auto it = memo_.find(i);
    if (it == memo_.end()) bad("pickle: GET of unknown memo index " + std::to_string(i));
    return it->second;
  }
  VP global(const std::string &mod, const std::string &name) {
    if (mod.size() > 256 || name.size() > 256) bad("pickle: global name too long");
    std::string m = mod == "__builtin__" ? "builtins" : mod;
    return str(Kind::Global, m + "." + name);
  }
  VP object(const VP &cls, const VP &args) {
    VP o = mk(Kind::Object);
    o->cls = cls->kind == Kind::Global ? cls->s : "?";
    o->items = {cls, args};
    return o;
  }
  static int64_t int_of(const VP &v, const char *what) {
    if (!v || v->kind != Kind::Int || v->big) bad(std::string("pickle: tensor ") + what + " is not an integer");
    return v->i;
  }
  static std::vector<int64_t> ints_of(const VP &v, const char *what) {
    if (!v || (v->kind != Kind::Tuple && v->kind != Kind::List)) bad(std::string("pickle: tensor ") + what + " is not a tuple");
    if (v->items.size() > CKH_MAX_DIMS) bad(std::string("pickle: tensor ") + what + " has too many dims");
    std::vector<int64_t> r;
    for (const auto &x : v->items) r.push_back(int_of(x, what));
    return r;
  }
  VP rebuild_tensor(const std::vector<VP> &a, ckh_dtype v3_dtype) {
    if (a.size() < 4) bad("pickle: tensor rebuild with " + std::to_string(a.size()) + " arguments");
    const VP &st = a[0];
    if (st->kind != Kind::PersId || st->items.size() < 5 || st->items[0]->kind != Kind::Str ||
        st->items[0]->s != "storage" || st->items[1]->kind != Kind::Global || st->items[2]->kind != Kind::Str)
      bad("pickle: tensor storage is not a ('storage', class, key, location, numel) persistent id");
    auto t = std::make_shared<TensorRef>();
    t->storage_key = st->items[2]->s;
    t->storage_numel = int_of(st->items[4], "storage size");
    const std::string cls = st->items[1]->s;
    if (cls == "torch.UntypedStorage" || cls == "torch.storage.UntypedStorage") {  // torch >= 2.1 writes the latter
      if (v3_dtype == CKH_DT_INVALID) bad("pickle: untyped storage without a dtype");
      t->dtype = v3_dtype;
      if (ckh_dtype_size(v3_dtype) == 0) bad("pickle: unsupported dtype");
      t->storage_numel /= ckh_dtype_size(v3_dtype);
    } else {
      t->dtype = storage_dtype(cls);
      if (t->dtype == CKH_DT_INVALID) bad("pickle: unsupported storage class " + cls);
    }
    t->offset = int_of(a[1], "storage offset");
    t->size = ints_of(a[2], "size");
    t->stride = ints_of(a[3], "stride");
    if (t->size.size() != t->stride.size()) bad("pickle: tensor size and stride differ in length");
    VP v = mk(Kind::Tensor);
    v->tensor = t;
    return v;
  }
  VP call(const VP &fn, const VP &args) {
    if (fn->kind != Kind::Global) return object(fn, args);
    const std::string &f = fn->s;
    const std::vector<VP> &a = args->items;
    if (f == "collections.OrderedDict" || f == "builtins.dict") {
      VP d = mk(Kind::Dict);
      if (!a.empty() && (a[0]->kind == Kind::List || a[0]->kind == Kind::Tuple))
        for (const auto &pair : a[0]->items)
          if (pair->kind == Kind::Tuple && pair->items.size() == 2) d->entries.emplace_back(pair->items[0], pair->items[1]);
      return d;
    }
    if (f == "torch._utils._rebuild_tensor_v2" || f == "torch._utils._rebuild_tensor") return rebuild_tensor(a, CKH_DT_INVALID);
    if (f == "torch._utils._rebuild_tensor_v3") {
      if (a.size() < 7 || a[6]->kind != Kind::Global) bad("pickle: _rebuild_tensor_v3 without a dtype");
      return rebuild_tensor(a, torch_dtype(a[6]->s));
    }
    if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
      if (a.empty() || a[0]->kind != Kind::Tensor) bad("pickle: parameter without a tensor");
      return a[0];
    }
    if (f == "torch._tensor._rebuild_from_type_v2") {
      if (a.size() < 3) bad("pickle: _rebuild_from_type_v2 with too few arguments");
      return call(a[0], a[2]);
    }
    if (f == "torch.Size") return a.empty() ? seq(Kind::Tuple, {}) : a[0];
    if (f == "_codecs.encode") {
      if (a.empty() || a[0]->kind != Kind::Str) bad("pickle: _codecs.encode of a non-string");
      // latin-1: code points < 256 were stored as UTF-8; decode them back to single bytes.
      std::string out;
      const std::string &s = a[0]->s;
      for (size_t i = 0; i < s.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) out.push_back(static_cast<char>(c));
        else if ((c & 0xE0) == 0xC0 && i + 1 < s.size()) {
          out.push_back(static_cast<char>(((c & 0x1F) << 6) | (static_cast<unsigned char>(s[i + 1]) & 0x3F)));
          ++i;
        }
      }
      return str(Kind::Bytes, out);
    }
    if (f == "builtins.bytes" || f == "builtins.bytearray") return str(Kind::Bytes, "");
    if (f == "builtins.set" || f == "builtins.frozenset" || f == "builtins.list")
      return a.empty() ? mk(Kind::List) : seq(Kind::List, a[0]->items);
    return object(fn, args);
  }
  void build(VP &obj, const VP &st) {
    if (obj->kind == Kind::Dict && st->kind == Kind::Dict) {
      set_items(obj, [&] {
        std::vector<VP> xs;
        for (const auto &e : st->entries) {
          xs.push_back(e.first);
          xs.push_back(e.second);
        }
        return xs;
      }());
      return;
    }
    if (obj->kind == Kind::Object) {
      obj->state = st;
      return;
    }
    // BUILD on tensors (Parameter state) and others: state is ignored.
  }

  const uint8_t *p_, *end_, *start_ = nullptr;
  PickleLimits lim_;
  std::vector<VP> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, VP> memo_;
  size_t count_ = 0;
  Pickled &owner_;
};

nlohmann::json to_json_rec(const VP &v, size_t &budget, int depth) {
  if (!v) return nullptr;
  if (budget == 0 || depth > 64) return "...";
  --budget;
  // Strings cost by size too: one large string can be referenced many times through the memo.
  const size_t cost = (v->kind == Kind::Str || v->kind == Kind::Bytes) ? v->s.size() / 16 : 0;
  if (cost >= budget) {
    budget = 0;
    return "...";
  }
  budget -= cost;
  switch (v->kind) {
    case Kind::None: return nullptr;
    case Kind::Bool: return v->b;
    case Kind::Int: return v->big ? nlohmann::json("<big integer>") : nlohmann::json(v->i);
    case Kind::Float: return std::isfinite(v->f) ? nlohmann::json(v->f) : nlohmann::json(std::to_string(v->f));
    case Kind::Str: return v->s;
    case Kind::Bytes: return nlohmann::json{{"__bytes__", v->s.size()}};
    case Kind::List:
    case Kind::Tuple: {
      nlohmann::json a = nlohmann::json::array();
      for (const auto &x : v->items) a.push_back(to_json_rec(x, budget, depth + 1));
      return a;
    }
    case Kind::Dict: {
      nlohmann::json o = nlohmann::json::object();
      for (const auto &e : v->entries) {
        std::string k = e.first->kind == Kind::Str ? e.first->s
                        : e.first->kind == Kind::Int ? std::to_string(e.first->i)
                                                     : "<key #" + std::to_string(o.size()) + ">";
        o[k] = to_json_rec(e.second, budget, depth + 1);
      }
      return o;
    }
    case Kind::Global: return nlohmann::json{{"__global__", v->s}};
    case Kind::Object:
      if (v->cls == "argparse.Namespace" && v->state && v->state->kind == Kind::Dict)
        return to_json_rec(v->state, budget, depth + 1);
      return nlohmann::json{{"__object__", v->cls}};
    case Kind::PersId: return nlohmann::json{{"__persistent_id__", true}};
    case Kind::Tensor: return nlohmann::json{{"__tensor__", v->tensor->size}};
    case Kind::Mark: return nullptr;
  }
  return nullptr;
}

}  // namespace

Pickled::~Pickled() {
  root.reset();
  for (auto &w : all)
    if (auto v = w.lock()) {
      v->items.clear();
      v->entries.clear();
      v->state.reset();
    }
}

std::unique_ptr<Pickled> unpickle(const uint8_t *data, size_t n, const PickleLimits &lim) {
  auto out = std::make_unique<Pickled>();
  {
    Machine m(data, n, lim, *out);
    m.set_start(data);
    out->root = m.run();
  }
  return out;
}

nlohmann::json to_json(const VP &v, size_t budget) { return to_json_rec(v, budget, 0); }

ckh_dtype dtype_of_torch_name(const std::string &name) { return torch_dtype(name); }

ReadAt fd_reader(int fd) { return ckh::plugins::fd_read_at(fd); }

}  // namespace ckh::torchfmt
