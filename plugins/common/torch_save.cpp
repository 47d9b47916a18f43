// torch_save.cpp — see torch_save.hpp.
#include "torch_save.hpp"

#include <cstring>
#include <stdexcept>

namespace ckh::torchfmt {

namespace {
void put16(std::string &s, uint64_t v) {
  for (int i = 0; i < 2; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put32(std::string &s, uint64_t v) {
  for (int i = 0; i < 4; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put64(std::string &s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
constexpr uint64_t k32 = 0xFFFFFFFFull;
}  // namespace

// ---- pickle ------------------------------------------------------------------------------------

Pickler::Pickler(int protocol) {
  op(0x80);
  op(static_cast<uint8_t>(protocol));
}
void Pickler::u32(uint32_t v) { put32(out_, v); }
void Pickler::none() { op('N'); }
void Pickler::boolean(bool v) { op(v ? 0x88 : 0x89); }
void Pickler::integer(int64_t v) {
  if (v >= 0 && v < 256) {
    op('K');
    op(static_cast<uint8_t>(v));
  } else if (v >= 0 && v < 65536) {
    op('M');
    put16(out_, static_cast<uint64_t>(v));
  } else if (v >= INT32_MIN && v <= INT32_MAX) {
    op('J');
    put32(out_, static_cast<uint32_t>(static_cast<int32_t>(v)));
  } else {
    // LONG1: minimal two's-complement little-endian.
    std::string b;
    uint64_t u = static_cast<uint64_t>(v);
    for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
    while (b.size() > 1) {
      const uint8_t last = static_cast<uint8_t>(b.back()), prev = static_cast<uint8_t>(b[b.size() - 2]);
      if ((last == 0x00 && !(prev & 0x80)) || (last == 0xFF && (prev & 0x80))) b.pop_back();
      else break;
    }
    op(0x8a);
    op(static_cast<uint8_t>(b.size()));
    out_ += b;
  }
}
void Pickler::real(double v) {
  uint64_t u;
  std::memcpy(&u, &v, 8);
  op('G');
  for (int i = 7; i >= 0; --i) out_.push_back(static_cast<char>((u >> (8 * i)) & 0xFF));
}
void Pickler::str(const std::string &s) {
  op('X');
  u32(static_cast<uint32_t>(s.size()));
  out_ += s;
}
void Pickler::global(const std::string &module, const std::string &name) {
  op('c');
  out_ += module + "\n" + name + "\n";
}
void Pickler::mark() { op('('); }
void Pickler::empty_dict() { op('}'); }
void Pickler::empty_list() { op(']'); }
void Pickler::empty_tuple() { op(')'); }
void Pickler::tuple(size_t n) {
  if (n == 1) op(0x85);
  else if (n == 2) op(0x86);
  else if (n == 3) op(0x87);
  else op('t');
}
void Pickler::setitems() { op('u'); }
void Pickler::appends() { op('e'); }
void Pickler::reduce() { op('R'); }
void Pickler::newobj() { op(0x81); }
void Pickler::build() { op('b'); }
void Pickler::binpersid() { op('Q'); }
void Pickler::stop() { op('.'); }

void Pickler::json(const nlohmann::json &v) {
  switch (v.type()) {
    case nlohmann::json::value_t::null: none(); break;
    case nlohmann::json::value_t::boolean: boolean(v.get<bool>()); break;
    case nlohmann::json::value_t::number_integer: integer(v.get<int64_t>()); break;
    case nlohmann::json::value_t::number_unsigned:
      if (v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) real(static_cast<double>(v.get<uint64_t>()));
      else integer(static_cast<int64_t>(v.get<uint64_t>()));
      break;
    case nlohmann::json::value_t::number_float: real(v.get<double>()); break;
    case nlohmann::json::value_t::string: str(v.get<std::string>()); break;
    case nlohmann::json::value_t::array:
      empty_list();
      if (!v.empty()) {
        mark();
        for (const auto &e : v) json(e);
        appends();
      }
      break;
    case nlohmann::json::value_t::object:
      empty_dict();
      if (!v.empty()) {
        mark();
        for (auto it = v.begin(); it != v.end(); ++it) {
          str(it.key());
          json(it.value());
        }
        setitems();
      }
      break;
    default: none(); break;
  }
}

void Pickler::namespace_obj(const nlohmann::json &attrs) {
  global("argparse", "Namespace");
  empty_tuple();
  newobj();
  json(attrs);
  build();
}

void Pickler::empty_ordered_dict() {
  global("collections", "OrderedDict");
  empty_tuple();
  reduce();
}

const char *storage_class(ckh_dtype dt) {
  switch (dt) {
    case CKH_DT_F32: return "FloatStorage";
    case CKH_DT_F64: return "DoubleStorage";
    case CKH_DT_F16: return "HalfStorage";
    case CKH_DT_BF16: return "BFloat16Storage";
    case CKH_DT_I64: return "LongStorage";
    case CKH_DT_I32: return "IntStorage";
    case CKH_DT_I16: return "ShortStorage";
    case CKH_DT_I8: return "CharStorage";
    case CKH_DT_U8: return "ByteStorage";
    case CKH_DT_BOOL: return "BoolStorage";
    default: return "";
  }
}

// Dtypes torch 1.13 lacks: torch >= 2.1 saves them as an UntypedStorage (counted in bytes) rebuilt by
// _rebuild_tensor_v3 with the dtype as its last argument.
const char *v3_dtype(ckh_dtype dt) {
  switch (dt) {
    case CKH_DT_F8_E4M3FN: return "float8_e4m3fn";
    case CKH_DT_F8_E5M2: return "float8_e5m2";
    default: return "";
  }
}

bool picklable(ckh_dtype dt) { return *storage_class(dt) || *v3_dtype(dt); }

void Pickler::tensor(const std::string &key, ckh_dtype dt, const std::vector<int64_t> &shape) {
  const char *cls = storage_class(dt);
  const char *v3 = v3_dtype(dt);
  if (!*cls && !*v3) throw std::invalid_argument("torch 1.13 has no storage class for this dtype");
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  std::vector<int64_t> stride(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i)
    stride[static_cast<size_t>(i)] = stride[static_cast<size_t>(i) + 1] * shape[static_cast<size_t>(i) + 1];
  global("torch._utils", *v3 ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2");
  mark();
  mark();
  str("storage");
  if (*v3) global("torch.storage", "UntypedStorage");
  else global("torch", cls);
  str(key);
  str("cpu");
  integer(*v3 ? numel * static_cast<int64_t>(ckh_dtype_size(dt)) : numel);
  tuple(5);
  binpersid();
  integer(0);
  auto ints = [&](const std::vector<int64_t> &v) {
    if (v.empty()) {
      empty_tuple();
      return;
    }
    if (v.size() > 3) mark();
    for (int64_t x : v) integer(x);
    tuple(v.size());
  };
  ints(shape);
  ints(stride);
  boolean(false);
  empty_ordered_dict();
  if (*v3) {
    global("torch", v3);
    tuple(7);
  } else {
    tuple(6);
  }
  reduce();
}

// ---- zip ---------------------------------------------------------------------------------------

size_t ZipLayout::add(const std::string &name, uint64_t size) {
  Record r;
  r.name = root_ + "/" + name;
  r.size = size;
  r.header_offset = cursor_;
  r.zip64 = size >= k32 || cursor_ >= k32;
  uint64_t start = cursor_ + 30 + r.name.size() + 4;
  if (r.zip64) {
    start += 4;
    if (size >= k32) start += 16;
    if (cursor_ >= k32) start += 8;
  }
  r.payload_offset = (start + 63) / 64 * 64;
  r.descriptor_offset = r.payload_offset + size;
  cursor_ = r.descriptor_offset + (r.zip64 ? 24 : 16);
  recs_.push_back(r);
  return recs_.size() - 1;
}

uint64_t ZipLayout::central_size() const {
  uint64_t n = 0;
  for (const auto &r : recs_) {
    uint64_t extra = 0;
    if (r.size >= k32) extra += 16;
    if (r.header_offset >= k32) extra += 8;
    if (extra) extra += 4;
    n += 46 + r.name.size() + extra;
  }
  return n;
}

uint64_t ZipLayout::total_size() const { return cursor_ + central_size() + 56 + 20 + 22; }

std::vector<std::pair<uint64_t, std::string>> ZipLayout::header_blobs(const std::vector<uint32_t> &crcs) const {
  std::vector<std::pair<uint64_t, std::string>> out;
  for (size_t i = 0; i < recs_.size(); ++i) {
    const Record &r = recs_[i];
    const uint32_t crc = i < crcs.size() ? crcs[i] : 0;
    std::string z64;
    if (r.zip64) {
      std::string body;
      if (r.size >= k32) {
        put64(body, r.size);
        put64(body, r.size);
      }
      if (r.header_offset >= k32) put64(body, r.header_offset);
      put16(z64, 0x0001);
      put16(z64, body.size());
      z64 += body;
    }
    const uint64_t fb = r.payload_offset - (r.header_offset + 30 + r.name.size() + z64.size() + 4);
    std::string h;
    put32(h, 0x04034b50);
    put16(h, 0);       // version needed
    put16(h, 0x0808);  // data descriptor + UTF-8
    put16(h, 0);       // stored
    put16(h, 0);
    put16(h, 0);
    put32(h, 0);  // crc, sizes: in the descriptor
    put32(h, 0);
    put32(h, 0);
    put16(h, r.name.size());
    put16(h, z64.size() + 4 + fb);
    h += r.name;
    h += z64;
    put16(h, 0x4246);  // "FB"
    put16(h, fb);
    h.append(fb, 'Z');
    out.emplace_back(r.header_offset, h);
    std::string d;
    put32(d, 0x08074b50);
    put32(d, crc);
    if (r.zip64) {
      put64(d, r.size);
      put64(d, r.size);
    } else {
      put32(d, r.size);
      put32(d, r.size);
    }
    out.emplace_back(r.descriptor_offset, d);
  }
  // Central directory and end records.
  const uint64_t cd_off = cursor_;
  std::string c;
  for (size_t i = 0; i < recs_.size(); ++i) {
    const Record &r = recs_[i];
    std::string body;
    if (r.size >= k32) {
      put64(body, r.size);
      put64(body, r.size);
    }
    if (r.header_offset >= k32) put64(body, r.header_offset);
    std::string extra;
    if (!body.empty()) {
      put16(extra, 0x0001);
      put16(extra, body.size());
      extra += body;
    }
    put32(c, 0x02014b50);
    put16(c, 0);
    put16(c, 0);
    put16(c, 0x0808);
    put16(c, 0);
    put16(c, 0);
    put16(c, 0);
    put32(c, i < crcs.size() ? crcs[i] : 0);
    put32(c, r.size >= k32 ? k32 : r.size);
    put32(c, r.size >= k32 ? k32 : r.size);
    put16(c, r.name.size());
    put16(c, extra.size());
    put16(c, 0);  // comment
    put16(c, 0);  // disk
    put16(c, 0);  // internal attributes
    put32(c, 0);  // external attributes
    put32(c, r.header_offset >= k32 ? k32 : r.header_offset);
    c += r.name;
    c += extra;
  }
  const uint64_t cd_size = c.size();
  const uint64_t z64_eocd = cd_off + cd_size;
  put32(c, 0x06064b50);
  put64(c, 44);
  put16(c, 0x031e);
  put16(c, 45);
  put32(c, 0);
  put32(c, 0);
  put64(c, recs_.size());
  put64(c, recs_.size());
  put64(c, cd_size);
  put64(c, cd_off);
  put32(c, 0x07064b50);
  put32(c, 0);
  put64(c, z64_eocd);
  put32(c, 1);
  put32(c, 0x06054b50);
  put16(c, 0);
  put16(c, 0);
  put16(c, recs_.size() >= 0xFFFF ? 0xFFFF : recs_.size());
  put16(c, recs_.size() >= 0xFFFF ? 0xFFFF : recs_.size());
  put32(c, cd_size >= k32 ? k32 : cd_size);
  put32(c, cd_off >= k32 ? k32 : cd_off);
  put16(c, 0);
  out.emplace_back(cd_off, c);
  return out;
}

}  // namespace ckh::torchfmt
