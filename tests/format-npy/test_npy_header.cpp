// The C99 NPY header parser/writer and JSON helpers of format-npy, called directly. Inputs are files
// written by NumPy (gen_npy.py) plus hand-made malformed headers.
#include <cstring>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "npy_fixtures.hpp"
#include "npy_header.h"
#include "npy_json.h"

using npytest::fixtures;
using npytest::fs::path;
using npytest::slurp;

namespace {

struct Parsed {
  int rc;
  npy_header h;
  std::string err;
};

Parsed parse_bytes(const std::string &b, size_t avail = SIZE_MAX) {
  Parsed p{};
  char err[512] = {0};
  p.rc = npy_parse_header(reinterpret_cast<const unsigned char *>(b.data()), std::min(avail, b.size()), b.size(), &p.h,
                          err, sizeof err);
  p.err = err;
  return p;
}

Parsed parse_file(const path &f) { return parse_bytes(slurp(f)); }

std::vector<int64_t> shape_of(const npy_header &h) { return {h.shape, h.shape + h.ndim}; }

}  // namespace

// ---- files written by NumPy ---------------------------------------------------------------------

TEST(NpyHeader, EveryNumpyFileOfTheCheckpointParses) {
  NPY_NEED_FIXTURES();
  const auto manifest = nlohmann::json::parse(slurp(fixtures() / "reader.json"));
  const std::map<std::string, ckh_dtype> dt = {
      {"<f2", CKH_DT_F16}, {"<f4", CKH_DT_F32}, {"<f8", CKH_DT_F64}, {"|i1", CKH_DT_I8},  {"<i2", CKH_DT_I16},
      {"<i4", CKH_DT_I32}, {"<i8", CKH_DT_I64}, {"|u1", CKH_DT_U8},  {"<u2", CKH_DT_U16}, {"<u4", CKH_DT_U32},
      {"<u8", CKH_DT_U64}, {"|b1", CKH_DT_BOOL}};
  ASSERT_GE(manifest.size(), 18u);
  for (const auto &[name, m] : manifest.items()) {
    SCOPED_TRACE(name);
    const Parsed p = parse_file(fixtures() / "reader" / (name + ".npy"));
    ASSERT_EQ(p.rc, 0) << p.err;
    ASSERT_TRUE(dt.count(m["descr"].get<std::string>())) << m["descr"];
    EXPECT_EQ(p.h.dtype, dt.at(m["descr"].get<std::string>()));
    EXPECT_EQ(shape_of(p.h), m["shape"].get<std::vector<int64_t>>());
    EXPECT_EQ(p.h.fortran_order != 0, m["fortran"].get<bool>());
    EXPECT_EQ(p.h.data_offset, m["offset"].get<uint64_t>());
    EXPECT_EQ(p.h.version, m["version"].get<unsigned>());
    EXPECT_EQ(p.h.data_offset + p.h.data_size, m["file_size"].get<uint64_t>());
  }
  const Parsed s = parse_file(fixtures() / "reader" / "scalar.npy");
  EXPECT_EQ(s.h.ndim, 0u);
  EXPECT_EQ(s.h.numel, 1u);
  const Parsed e = parse_file(fixtures() / "reader" / "empty.npy");
  EXPECT_EQ(e.h.numel, 0u);
  EXPECT_EQ(e.h.data_size, 0u);
}

TEST(NpyHeader, AcceptedVariants) {
  NPY_NEED_FIXTURES();
  const path cs = fixtures() / "cases";
  for (const char *ok : {"ok_numpy", "ok_python2_longs", "ok_shape_trailing_comma", "ok_no_trailing_comma",
                         "ok_double_quotes", "ok_key_order", "ok_v2"}) {
    SCOPED_TRACE(ok);
    const Parsed p = parse_file(cs / (std::string(ok) + ".npy"));
    ASSERT_EQ(p.rc, 0) << p.err;
    EXPECT_EQ(p.h.dtype, CKH_DT_F32);
    EXPECT_EQ(shape_of(p.h), (std::vector<int64_t>{30, 20}));
    EXPECT_EQ(p.h.fortran_order, 0);
  }
  Parsed p = parse_file(cs / "ok_one_byte_le.npy");
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_EQ(p.h.dtype, CKH_DT_U8);
  p = parse_file(cs / "ok_one_byte_be.npy");
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_EQ(p.h.dtype, CKH_DT_I8);
  p = parse_file(cs / "ok_fortran_1d.npy");
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_EQ(p.h.fortran_order, 1);
  p = parse_file(cs / "ok_empty_huge_dim.npy");
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_EQ(p.h.numel, 0u);
  EXPECT_EQ(shape_of(p.h), (std::vector<int64_t>{0, 100000000000000000}));
}

TEST(NpyHeader, MalformedFilesAreRefusedWithOneLineReasons) {
  NPY_NEED_FIXTURES();
  const std::map<std::string, std::string> want = {
      {"bad_empty", "not an NPY file (bad magic)"},
      {"bad_short", "not an NPY file (bad magic)"},
      {"bad_magic", "not an NPY file (bad magic)"},
      {"bad_prefix_truncated", "truncated NPY header (file is 9 bytes)"},
      {"bad_v2_prefix_truncated", "truncated NPY header (file is 11 bytes)"},
      {"bad_header_truncated", "NPY header length 118 runs past the end of the file (40 bytes)"},
      {"bad_header_past_eof", "NPY header length 60000 runs past the end of the file (200 bytes)"},
      {"bad_header_too_long", "exceeds 65536 bytes"},
      {"bad_version_4", "unsupported NPY version 4.0"},
      {"bad_version_1_1", "unsupported NPY version 1.1"},
      {"bad_data_truncated", "shape and dtype need 2400 bytes of data, the file has 2392"},
      {"bad_data_extra", "shape and dtype need 2400 bytes of data, the file has 2404"},
      {"bad_big_endian", "big-endian not supported (descr '>f4')"},
      {"bad_complex", "unsupported dtype '<c8'"},
      {"bad_unicode", "unsupported dtype '<U3'"},
      {"bad_object", "unsupported dtype '|O'"},
      {"bad_datetime", "unsupported dtype '<M8[D]'"},
      {"bad_float128", "unsupported dtype '<f16'"},
      {"bad_no_byte_order", "unsupported dtype 'f4'"},
      {"bad_multibyte_no_order", "unsupported dtype '|f4' (multi-byte type without byte order)"},
      {"bad_structured", "structured (record) arrays are not supported"},
      {"bad_dict_key", "unexpected key 'shope' in NPY header"},
      {"bad_missing_shape", "NPY header lacks 'shape'"},
      {"bad_missing_descr", "NPY header lacks 'descr'"},
      {"bad_duplicate_key", "duplicate key 'descr' in NPY header"},
      {"bad_not_dict", "NPY header is not a dict literal"},
      {"bad_unterminated_string", "unterminated string in NPY header"},
      {"bad_missing_colon", "expected ':' after 'descr' in NPY header"},
      {"bad_missing_comma", "expected ',' or '}' in NPY header dict"},
      {"bad_unclosed_dict", "bad key in NPY header dict"},
      {"bad_fortran_value", "'fortran_order' is not True or False"},
      {"bad_shape_list", "'shape' is not a tuple"},
      {"bad_shape_not_tuple", "'shape' is not a tuple (one dimension needs a trailing comma)"},
      {"bad_shape_negative", "bad shape entry"},
      {"bad_shape_float", "bad shape tuple"},
      {"bad_shape_leading_zero", "bad shape entry"},
      {"bad_shape_9d", "shape has more than 8 dimensions"},
      {"bad_shape_overflow", "shape is too large (byte size overflows)"},
      {"bad_shape_overflow_with_zero", "shape is too large (byte size overflows)"},
      {"bad_shape_19_digits", "bad shape entry"},
      {"bad_shape_huge", "shape and dtype need 40000000000000 bytes of data, the file has 2400"},
      {"bad_trailing_junk", "unexpected characters after the NPY header dict"},
      {"bad_newline_in_key", "unexpected key 'a?b' in NPY header"},
  };
  std::set<std::string> seen;
  for (const auto &e : npytest::fs::directory_iterator(fixtures() / "cases")) {
    const std::string stem = e.path().stem().string();
    if (stem.rfind("bad_", 0) != 0) continue;
    SCOPED_TRACE(stem);
    seen.insert(stem);
    ASSERT_TRUE(want.count(stem)) << "no expectation for " << stem;
    const Parsed p = parse_file(e.path());
    EXPECT_EQ(p.rc, -1);
    EXPECT_NE(p.err.find(want.at(stem)), std::string::npos) << p.err;
    EXPECT_EQ(p.err.find('\n'), std::string::npos);
  }
  EXPECT_EQ(seen.size(), want.size());
}

// ---- in-memory headers --------------------------------------------------------------------------

TEST(NpyHeader, FormatMatchesNumpyLayoutAndParsesBack) {
  struct Case {
    ckh_dtype dt;
    std::vector<int64_t> shape;
    const char *dict;
  } cases[] = {
      {CKH_DT_F32, {3, 4}, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }"},
      {CKH_DT_I64, {5}, "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"},
      {CKH_DT_F64, {}, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }"},
      {CKH_DT_BOOL, {0, 7}, "{'descr': '|b1', 'fortran_order': False, 'shape': (0, 7), }"},
      {CKH_DT_U8, {1, 1, 1, 1, 1, 1, 1, 2}, "{'descr': '|u1', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 2), }"},
      {CKH_DT_F16, {2}, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }"},
      {CKH_DT_I8, {2}, nullptr}, {CKH_DT_I16, {2}, nullptr}, {CKH_DT_I32, {2}, nullptr},
      {CKH_DT_U16, {2}, nullptr}, {CKH_DT_U32, {2}, nullptr}, {CKH_DT_U64, {2}, nullptr},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(std::to_string(c.dt));
    char buf[1024], err[256];
    size_t len = 0;
    ASSERT_EQ(npy_format_header(c.dt, static_cast<uint32_t>(c.shape.size()), c.shape.data(), buf, sizeof buf, &len,
                                err, sizeof err),
              0)
        << err;
    EXPECT_EQ(len % 64, 0u);
    EXPECT_EQ(buf[len - 1], '\n');
    EXPECT_EQ(std::memcmp(buf, "\x93NUMPY\x01\x00", 8), 0);
    EXPECT_EQ(static_cast<size_t>(static_cast<unsigned char>(buf[8]) | (static_cast<unsigned char>(buf[9]) << 8)), len - 10);
    if (c.dict) {
      EXPECT_EQ(std::string(buf + 10, std::strlen(c.dict)), c.dict);
    }
    for (size_t i = 10 + (c.dict ? std::strlen(c.dict) : len); i + 1 < len; ++i) EXPECT_EQ(buf[i], ' ');
    int64_t numel = 1;
    for (int64_t d : c.shape) numel *= d;
    const std::string file = std::string(buf, len) + std::string(static_cast<size_t>(numel) * ckh_dtype_size(c.dt), '\0');
    const Parsed p = parse_bytes(file);
    ASSERT_EQ(p.rc, 0) << p.err;
    EXPECT_EQ(p.h.dtype, c.dt);
    EXPECT_EQ(shape_of(p.h), c.shape);
    EXPECT_EQ(p.h.data_offset, len);
    EXPECT_STREQ(npy_descr(c.dt) + 1, std::string(buf + 22, 2).c_str());
  }
  char buf[1024], err[256];
  size_t len;
  const int64_t s[1] = {4};
  for (ckh_dtype dt : {CKH_DT_BF16, CKH_DT_F8_E4M3FN, CKH_DT_F8_E5M2, CKH_DT_F8_E8M0}) {
    EXPECT_EQ(npy_descr(dt), nullptr);
    EXPECT_EQ(npy_format_header(dt, 1, s, buf, sizeof buf, &len, err, sizeof err), -1);
  }
  EXPECT_EQ(npy_format_header(CKH_DT_F32, 1, s, buf, 32, &len, err, sizeof err), -1);  // does not fit
}

TEST(NpyHeader, BoundsOfTheBuffer) {
  char buf[1024], err[256];
  size_t len;
  const int64_t s[2] = {3, 4};
  ASSERT_EQ(npy_format_header(CKH_DT_F32, 2, s, buf, sizeof buf, &len, err, sizeof err), 0);
  const std::string file = std::string(buf, len) + std::string(48, '\0');
  // The caller read fewer bytes than the header needs: refused, never read past `avail`.
  Parsed p = parse_bytes(file, 20);
  EXPECT_EQ(p.rc, -1);
  EXPECT_NE(p.err.find("not fully read"), std::string::npos) << p.err;
  p = parse_bytes(file, 5);
  EXPECT_EQ(p.rc, -1);
  p = parse_bytes(file, len);
  EXPECT_EQ(p.rc, 0) << p.err;
  // A NUL inside the dict is just a bad character, not an early end.
  std::string nul = file;
  nul[12] = '\0';
  EXPECT_EQ(parse_bytes(nul).rc, -1);
}

TEST(NpyHeader, FortranStrides) {
  npy_header h{};
  int64_t st[CKH_MAX_DIMS];
  h.ndim = 3;
  h.shape[0] = 2;
  h.shape[1] = 3;
  h.shape[2] = 4;
  npy_fortran_strides(&h, st);
  EXPECT_EQ((std::vector<int64_t>(st, st + 4)), (std::vector<int64_t>{1, 2, 6, 0}));
  h.ndim = 2;
  h.shape[0] = 0;
  h.shape[1] = 3;
  npy_fortran_strides(&h, st);
  EXPECT_EQ(st[0], 1);
  EXPECT_EQ(st[1], 1);  // a zero dim counts as 1: strides never collapse to "contiguous" zeros
}

// ---- JSON helpers -------------------------------------------------------------------------------

namespace {
bool valid(const std::string &s) {
  char err[128];
  return npy_json_validate(s.data(), s.size(), err, sizeof err) == 0;
}
npy_json_span span(const std::string &s) { return {s.data(), s.size()}; }
}  // namespace

TEST(NpyJson, Validator) {
  for (const char *ok : {"{}", "[]", " {\"a\" : [1, -2.5e+3, 0, 0.5, 1E9, true, false, null, \"x\\u00e9\\ud83d\\ude00\"]} ",
                         "\"s\"", "0", "-0", "{\"k\":{\"n\":{}}}", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "\"\\/\\b\\f\\n\\r\\t\""})
    EXPECT_TRUE(valid(ok)) << ok;
  for (const char *bad : {"", " ", "{", "}", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "1.", ".5", "+1", "-", "1e",
                          "\"\x01\"", "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\\q\"", "\"\\u12g4\"",
                          "tru", "nul", "{\"a\" 1}", "{1:2}", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"",
                          "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "{} x", "NaN", "[1 2]", "\"abc", "'a'"})
    EXPECT_FALSE(valid(bad)) << bad;
  EXPECT_TRUE(valid(std::string(200, '[') + std::string(200, ']')));
  char err[128];
  const std::string deep = std::string(300, '[') + std::string(300, ']');
  EXPECT_EQ(npy_json_validate(deep.data(), deep.size(), err, sizeof err), -1);
  EXPECT_NE(std::string(err).find("nested too deeply"), std::string::npos) << err;
  const std::string t = "{\"a\":1} x";
  EXPECT_EQ(npy_json_validate(t.data(), t.size(), err, sizeof err), -1);
  EXPECT_STREQ(err, "trailing characters at byte 8");
}

TEST(NpyJson, MembersArraysStrings) {
  const std::string doc =
      R"({"config":{"a":[1,{"name":"no"}],"s":"}"},"side_files":[{"path":"/x/\"q\"","name":"tok\u00e9.json"},)"
      R"( {"name":"b\\c","path":"\ud83d\ude00"} ],"k\u0065y":5,"config_modified":true,"empty":[]})";
  ASSERT_TRUE(valid(doc));
  npy_json_span cfg, sf, v, e;
  ASSERT_EQ(npy_json_member(span(doc), "config", &cfg), 0);
  EXPECT_TRUE(npy_json_is(cfg, '{'));
  EXPECT_EQ(std::string(cfg.p, cfg.n), R"({"a":[1,{"name":"no"}],"s":"}"})");
  ASSERT_EQ(npy_json_member(span(doc), "key", &v), 0);  // keys compared unescaped
  EXPECT_EQ(std::string(v.p, v.n), "5");
  ASSERT_EQ(npy_json_member(span(doc), "config_modified", &v), 0);
  EXPECT_TRUE(npy_json_is(v, 't'));
  EXPECT_EQ(npy_json_member(span(doc), "name", &v), -1);  // only top-level members
  EXPECT_EQ(npy_json_member(span(doc), "nope", &v), -1);
  EXPECT_EQ(npy_json_member(span("[1]"), "a", &v), -1);

  ASSERT_EQ(npy_json_member(span(doc), "side_files", &sf), 0);
  size_t pos = 0;
  std::vector<std::pair<std::string, std::string>> got;
  while (npy_json_next(sf, &pos, &e) == 1) {
    npy_json_span n, p;
    char name[64], path[64];
    ASSERT_EQ(npy_json_member(e, "name", &n), 0);
    ASSERT_EQ(npy_json_member(e, "path", &p), 0);
    ASSERT_EQ(npy_json_string(n, name, sizeof name), 0);
    ASSERT_EQ(npy_json_string(p, path, sizeof path), 0);
    got.emplace_back(name, path);
  }
  EXPECT_EQ(got, (std::vector<std::pair<std::string, std::string>>{{"tok\xc3\xa9.json", "/x/\"q\""},
                                                                    {"b\\c", "\xf0\x9f\x98\x80"}}));
  ASSERT_EQ(npy_json_member(span(doc), "empty", &v), 0);
  pos = 0;
  EXPECT_EQ(npy_json_next(v, &pos, &e), 0);
  pos = 0;
  EXPECT_EQ(npy_json_next(cfg, &pos, &e), -1);  // not an array

  char small[4];
  EXPECT_EQ(npy_json_string(span("\"abcd\""), small, sizeof small), -1);  // does not fit
  EXPECT_EQ(npy_json_string(span("\"abc\""), small, sizeof small), 0);
  EXPECT_STREQ(small, "abc");
  char buf[16];
  EXPECT_EQ(npy_json_string(span("\"a\\u0000b\""), buf, sizeof buf), -1);  // NUL inside
  EXPECT_EQ(npy_json_string(span("5"), buf, sizeof buf), -1);
}

TEST(NpyJson, QuoteAndUtf8) {
  char out[64];
  const std::string s = std::string("a\"b\\c\n\xc3\xa9") + '\xff';
  const size_t n = npy_json_quote(s.data(), s.size(), out, sizeof out);
  EXPECT_STREQ(out, "\"a\\\"b\\\\c\\u000a\xc3\xa9\\ufffd\"");
  EXPECT_EQ(n, std::strlen(out));
  EXPECT_TRUE(valid(out));
  char tiny[4];
  EXPECT_EQ(npy_json_quote("abcdef", 6, tiny, sizeof tiny), 8u);  // like snprintf: the needed length
  EXPECT_STREQ(tiny, "\"ab");
  EXPECT_EQ(npy_json_quote("x", 1, nullptr, 0), 3u);
  auto u = [](const std::string &x) { return npy_utf8_valid(reinterpret_cast<const unsigned char *>(x.data()), x.size()); };
  EXPECT_TRUE(u("plain"));
  EXPECT_TRUE(u("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
  EXPECT_FALSE(u("\xff"));
  EXPECT_FALSE(u("\xc3"));
  EXPECT_FALSE(u("\xe0\x80\x80"));  // overlong
  EXPECT_FALSE(u("\xed\xb0\x80"));  // surrogate
}
