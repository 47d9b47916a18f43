// Unit tests of the safetensors header parser (plugins/format-safetensors/header.*): valid headers of
// every dtype, edge shapes, and every malformed case the parser must refuse with a one-line message.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "header.hpp"

namespace st = ckh::st;

namespace {

// A whole file: u64 LE header length | header | data_size zero bytes.
std::string file(const std::string &header, uint64_t data_size = 0) {
  std::string f(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f[i] = static_cast<char>(n >> (8 * i));
  return f + header + std::string(data_size, '\0');
}

struct Result {
  bool ok;
  st::Header h;
  std::string err;
};

Result parse_file(const std::string &f, uint64_t file_size) {
  Result r;
  r.ok = st::parse(reinterpret_cast<const uint8_t *>(f.data()), f.size(), file_size, r.h, r.err);
  if (r.ok) EXPECT_TRUE(r.err.empty()) << r.err;
  else {
    EXPECT_FALSE(r.err.empty());
    EXPECT_EQ(r.err.find('\n'), std::string::npos) << "one line: " << r.err;
    EXPECT_TRUE(r.h.entries.empty());
  }
  return r;
}
Result parse_file(const std::string &f) { return parse_file(f, f.size()); }
Result parse_h(const std::string &header, uint64_t data_size = 0) { return parse_file(file(header, data_size)); }

std::string tensor(const std::string &name, const std::string &dtype, const std::string &shape, uint64_t b, uint64_t e) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape + ",\"data_offsets\":[" +
         std::to_string(b) + "," + std::to_string(e) + "]}";
}

::testing::AssertionResult fails_with(const Result &r, std::initializer_list<std::string> needles) {
  if (r.ok) return ::testing::AssertionFailure() << "accepted";
  for (const auto &n : needles)
    if (r.err.find(n) == std::string::npos)
      return ::testing::AssertionFailure() << "message '" << r.err << "' lacks '" << n << "'";
  return ::testing::AssertionSuccess();
}

}  // namespace

// ---- valid files ------------------------------------------------------------------------------------

struct DtypeCase {
  const char *name;
  ckh_dtype dtype;
  uint32_t size;
};

class EveryDtype : public ::testing::TestWithParam<DtypeCase> {};

TEST_P(EveryDtype, ParsesAndMaps) {
  const DtypeCase c = GetParam();
  const uint64_t bytes = 2 * 3 * c.size;
  Result r = parse_h("{" + tensor("w", c.name, "[2,3]", 0, bytes) + "}", bytes);
  ASSERT_TRUE(r.ok) << r.err;
  ASSERT_EQ(r.h.entries.size(), 1u);
  const st::Entry &e = r.h.entries[0];
  EXPECT_EQ(e.name, "w");
  EXPECT_EQ(e.dtype, c.dtype);
  EXPECT_EQ(ckh_dtype_size(e.dtype), c.size);
  EXPECT_EQ(e.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(e.begin, 0u);
  EXPECT_EQ(e.end, bytes);
  EXPECT_EQ(st::dtype_from_string(c.name), c.dtype);
  EXPECT_STREQ(st::dtype_to_string(c.dtype), c.name);
  // Wrong size for this dtype: one byte short.
  Result bad = parse_h("{" + tensor("w", c.name, "[2,3]", 0, bytes - 1) + "}", bytes);
  EXPECT_TRUE(fails_with(bad, {"'w'", std::string("x ") + c.name, "needs " + std::to_string(bytes),
                               "span " + std::to_string(bytes - 1)}));
}

INSTANTIATE_TEST_SUITE_P(
    Header, EveryDtype,
    ::testing::Values(DtypeCase{"BOOL", CKH_DT_BOOL, 1}, DtypeCase{"U8", CKH_DT_U8, 1}, DtypeCase{"I8", CKH_DT_I8, 1},
                      DtypeCase{"F8_E5M2", CKH_DT_F8_E5M2, 1}, DtypeCase{"F8_E4M3", CKH_DT_F8_E4M3FN, 1},
                      DtypeCase{"I16", CKH_DT_I16, 2}, DtypeCase{"U16", CKH_DT_U16, 2},
                      DtypeCase{"F16", CKH_DT_F16, 2}, DtypeCase{"BF16", CKH_DT_BF16, 2},
                      DtypeCase{"I32", CKH_DT_I32, 4}, DtypeCase{"U32", CKH_DT_U32, 4},
                      DtypeCase{"F32", CKH_DT_F32, 4}, DtypeCase{"F64", CKH_DT_F64, 8},
                      DtypeCase{"I64", CKH_DT_I64, 8}, DtypeCase{"U64", CKH_DT_U64, 8},
                      DtypeCase{"F8_E8M0", CKH_DT_F8_E8M0, 1}),
    [](const ::testing::TestParamInfo<DtypeCase> &i) { return std::string(i.param.name); });

TEST(Header, DtypeNamesRoundTripAndUnsupportedOnesAreNull) {
  for (ckh_dtype d = 0; d < 16; ++d) {
    const char *n = st::dtype_to_string(d);
    ASSERT_NE(n, nullptr) << d;
    EXPECT_EQ(st::dtype_from_string(n), d);
  }
  EXPECT_EQ(st::dtype_to_string(CKH_DT_INVALID), nullptr);
  EXPECT_EQ(st::dtype_to_string(64), nullptr);
  EXPECT_EQ(st::dtype_from_string("f32"), CKH_DT_INVALID);
  EXPECT_EQ(st::dtype_from_string("F32 "), CKH_DT_INVALID);
  EXPECT_EQ(st::dtype_from_string(""), CKH_DT_INVALID);
}

TEST(Header, ManyTensorsKeepFileOrderAndOffsets) {
  const std::string h = "{" + tensor("b", "F32", "[2]", 0, 8) + "," + tensor("a", "BF16", "[3]", 8, 14) + "," +
                        tensor("c", "U8", "[1,1,1]", 14, 15) + "}";
  Result r = parse_h(h, 15);
  ASSERT_TRUE(r.ok) << r.err;
  ASSERT_EQ(r.h.entries.size(), 3u);
  EXPECT_EQ(r.h.entries[0].name, "b");
  EXPECT_EQ(r.h.entries[1].name, "a");
  EXPECT_EQ(r.h.entries[2].name, "c");
  EXPECT_EQ(r.h.entries[1].begin, 8u);
  EXPECT_EQ(r.h.entries[2].shape, (std::vector<int64_t>{1, 1, 1}));
  EXPECT_EQ(r.h.header_len, h.size());
  EXPECT_EQ(r.h.data_start, 8 + h.size());
  EXPECT_EQ(r.h.data_size, 15u);
}

TEST(Header, ScalarAndZeroSizeTensors) {
  const std::string h = "{" + tensor("scalar", "F64", "[]", 0, 8) + "," + tensor("empty", "F32", "[0,4]", 8, 8) + "," +
                        tensor("empty2", "BF16", "[3,0]", 0, 0) + "}";
  Result r = parse_h(h, 8);
  ASSERT_TRUE(r.ok) << r.err;
  ASSERT_EQ(r.h.entries.size(), 3u);
  EXPECT_TRUE(r.h.entries[0].shape.empty());
  EXPECT_EQ(r.h.entries[1].shape, (std::vector<int64_t>{0, 4}));
  // An empty tensor may sit anywhere inside the data section, even at the end.
  EXPECT_TRUE(parse_h("{" + tensor("e", "F32", "[0]", 8, 8) + "}", 8).ok);
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("e", "F32", "[0]", 9, 9) + "}", 8), {"'e'", "[9, 9]", "8 bytes"}));
}

TEST(Header, EmptyHeaderAndMetadataOnly) {
  Result r = parse_h("{}");
  ASSERT_TRUE(r.ok) << r.err;
  EXPECT_TRUE(r.h.entries.empty());
  r = parse_h(R"({"__metadata__":{"format":"pt","note":"x\"y"}})");
  ASSERT_TRUE(r.ok) << r.err;
  EXPECT_TRUE(r.h.entries.empty());
  EXPECT_EQ(r.h.metadata.at("format"), "pt");
  EXPECT_EQ(r.h.metadata.at("note"), "x\"y");
  EXPECT_TRUE(parse_h(R"({"__metadata__":{}})").ok);
}

TEST(Header, MetadataIsKeptAlongsideTensors) {
  Result r = parse_h("{" + tensor("w", "U8", "[2]", 0, 2) + R"(,"__metadata__":{"format":"pt","a":""}})", 2);
  ASSERT_TRUE(r.ok) << r.err;
  EXPECT_EQ(r.h.entries.size(), 1u);
  EXPECT_EQ(r.h.metadata.size(), 2u);
  EXPECT_EQ(r.h.metadata.at("a"), "");
}

TEST(Header, WhitespaceAndSpacePaddingAreAccepted) {
  std::string h = " {\n\t\"w\" : { \"shape\" : [ 2 ] , \"dtype\" : \"U8\" , \"data_offsets\" : [ 0 , 2 ] } }\r\n";
  h.append(7, ' ');
  Result r = parse_h(h, 2);
  ASSERT_TRUE(r.ok) << r.err;
  EXPECT_EQ(r.h.entries[0].shape, (std::vector<int64_t>{2}));
}

TEST(Header, GapsBetweenTensorsAndTrailingDataAreAccepted) {
  // Not the reference writer's layout, but harmless: alignment padding between tensors.
  Result r = parse_h("{" + tensor("a", "U8", "[1]", 0, 1) + "," + tensor("b", "F32", "[1]", 4, 8) + "}", 16);
  ASSERT_TRUE(r.ok) << r.err;
}

TEST(Header, AdjacentTensorsDoNotOverlap) {
  EXPECT_TRUE(parse_h("{" + tensor("a", "F32", "[2]", 8, 16) + "," + tensor("b", "F32", "[2]", 0, 8) + "}", 16).ok);
}

TEST(Header, UnknownEntryFieldsAreIgnored) {
  Result r = parse_h(R"({"w":{"dtype":"U8","extra":{"a":[1,2.5e3,-0.5,true,false,null,"s",{}]},"shape":[1],)"
                     R"("data_offsets":[0,1],"z":null}})",
                     1);
  ASSERT_TRUE(r.ok) << r.err;
  EXPECT_EQ(r.h.entries.size(), 1u);
}

TEST(Header, UnicodeNamesEscapesAndRawUtf8) {
  Result r = parse_h(R"({"caf\u00e9.\ud83d\ude00.w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                     "\"na\xc3\xafve\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]},"
                     R"("a\"b\\c\/d\n":{"dtype":"U8","shape":[1],"data_offsets":[2,3]}})",
                     3);
  ASSERT_TRUE(r.ok) << r.err;
  EXPECT_EQ(r.h.entries[0].name, "caf\xc3\xa9.\xf0\x9f\x98\x80.w");
  EXPECT_EQ(r.h.entries[1].name, "na\xc3\xafve");
  EXPECT_EQ(r.h.entries[2].name, "a\"b\\c/d\n");
}

TEST(Header, MaxDimsAndLargeButValidDims) {
  EXPECT_TRUE(parse_h("{" + tensor("w", "U8", "[1,1,1,1,1,1,1,2]", 0, 2) + "}", 2).ok);
  // A huge dimension times zero is an empty tensor, as long as the shape stays representable.
  EXPECT_TRUE(parse_h("{" + tensor("w", "U8", "[0,4611686018427387904]", 0, 0) + "}").ok);
}

TEST(Header, ParseLengthAlone) {
  uint64_t len = 0;
  std::string err;
  const std::string f = file("{}", 4);
  EXPECT_TRUE(st::parse_length(reinterpret_cast<const uint8_t *>(f.data()), f.size(), len, err));
  EXPECT_EQ(len, 2u);
}

// ---- malformed files ------------------------------------------------------------------------------

TEST(HeaderBad, TruncatedFile) {
  for (size_t n = 0; n < 8; ++n) {
    Result r = parse_file(std::string(n, '\0'));
    EXPECT_TRUE(fails_with(r, {std::to_string(n) + " bytes", "too short"})) << n;
  }
}

TEST(HeaderBad, HeaderLengthPastEndOfFile) {
  std::string f = file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 4);
  f[0] = '\x40', f[1] = '\x42', f[2] = '\x0f';  // 1000000
  EXPECT_TRUE(fails_with(parse_file(f), {"header length 1000000", "past the end", std::to_string(f.size())}));
  // Exactly one byte too long.
  std::string g = file("{}");
  g[0] = 3;
  EXPECT_TRUE(fails_with(parse_file(g), {"header length 3", "10 bytes"}));
}

TEST(HeaderBad, HeaderLengthTooSmallOrTooLarge) {
  std::string f = file("{}");
  f[0] = 0;
  EXPECT_TRUE(fails_with(parse_file(f), {"header length 0"}));
  f[0] = 1;
  EXPECT_TRUE(fails_with(parse_file(f), {"header length 1"}));
  // Over 100 MiB, in a file that claims to be large enough.
  std::string g(8, '\0');
  const uint64_t n = st::kMaxHeader + 1;
  for (int i = 0; i < 8; ++i) g[i] = static_cast<char>(n >> (8 * i));
  g += "{}";
  EXPECT_TRUE(fails_with(parse_file(g, 1ull << 40), {"header length " + std::to_string(n), "limit"}));
  // Huge length (high bit set) does not wrap around.
  std::string h(8, '\xff');
  EXPECT_TRUE(fails_with(parse_file(h + "{}", UINT64_MAX), {"limit"}));
}

TEST(HeaderBad, FewerBytesGivenThanTheHeader) {
  const std::string f = file("{" + tensor("w", "U8", "[1]", 0, 1) + "}", 1);
  Result r = parse_file(f.substr(0, 20), f.size());
  EXPECT_TRUE(fails_with(r, {"only 12 of the header's"}));
  Result r2 = parse_file(f.substr(0, 5), f.size());
  EXPECT_TRUE(fails_with(r2, {"only 5 bytes"}));
  // Bytes past the claimed file size are not used.
  EXPECT_FALSE(parse_file(f, 9).ok);
}

TEST(HeaderBad, OffsetsOutOfRange) {
  Result r = parse_h("{" + tensor("w", "F32", "[4]", 0, 16) + "}", 8);
  EXPECT_TRUE(fails_with(r, {"tensor 'w'", "[0, 16]", "data section of 8 bytes"}));
  // Truncated data section (the last tensor is cut).
  const std::string h = "{" + tensor("a", "F32", "[2]", 0, 8) + "," + tensor("b", "F32", "[2]", 8, 16) + "}";
  EXPECT_TRUE(parse_h(h, 16).ok);
  EXPECT_TRUE(fails_with(parse_h(h, 15), {"'b'", "truncated"}));
  // Offsets near 2^64 must not wrap.
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[18446744073709551615,0]}})", 8),
                         {"'w'", "reversed"}));
  EXPECT_TRUE(
      fails_with(parse_h(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[18446744073709551615,18446744073709551615]}})", 8),
                 {"'w'", "data section"}));
}

TEST(HeaderBad, ReversedOffsets) {
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", "[0]", 4, 2) + "}", 8), {"'w'", "[4, 2]", "reversed"}));
}

TEST(HeaderBad, OverlappingTensors) {
  Result r = parse_h("{" + tensor("a", "F32", "[2]", 0, 8) + "," + tensor("b", "F32", "[2]", 4, 12) + "}", 12);
  EXPECT_TRUE(fails_with(r, {"'b'", "overlap", "'a'", "[4, 12]", "[0, 8]"}));
  // Identical ranges, and one tensor inside another.
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("a", "U8", "[4]", 0, 4) + "," + tensor("b", "U8", "[4]", 0, 4) + "}", 4),
                         {"overlap"}));
  EXPECT_TRUE(fails_with(
      parse_h("{" + tensor("a", "U8", "[8]", 0, 8) + "," + tensor("b", "U8", "[2]", 3, 5) + "}", 8), {"overlap"}));
}

TEST(HeaderBad, SizeMismatchMessageNamesTensorShapeDtypeAndBothSizes) {
  Result r = parse_h("{" + tensor("model.layers.3.mlp.up_proj.weight", "BF16", "[5632,2048]", 0, 23068670) + "}", 8);
  ASSERT_FALSE(r.ok);
  EXPECT_EQ(r.err,
            "tensor 'model.layers.3.mlp.up_proj.weight': shape [5632, 2048] x BF16 needs 23068672 bytes but "
            "data_offsets span 23068670");
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "BF16", "[3,3]", 0, 16) + "}", 16), {"'w'", "18", "16"}));
}

TEST(HeaderBad, HugeShapesWhoseByteSizeOverflows) {
  // 2^62 * 2^62 elements.
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", "[4611686018427387904,4611686018427387904]", 0, 0) + "}"),
                         {"'w'", "overflows"}));
  // 2^61 F64 = 2^64 bytes.
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "F64", "[2305843009213693952]", 0, 0) + "}"), {"'w'", "overflows"}));
  // 2^32 x 2^32 x F32 wraps to 0 in 64 bits: must not match an empty span.
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "F32", "[4294967296,4294967296]", 0, 0) + "}"), {"overflows"}));
  // Eight dims of 2^8 = 2^64 elements.
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", "[256,256,256,256,256,256,256,256]", 0, 0) + "}"),
                         {"overflows"}));
  // Zero-size but unrepresentable strides.
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", "[0,4294967296,4294967296]", 0, 0) + "}"), {"overflows"}));
  // A dimension beyond int64.
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", "[9223372036854775808]", 0, 0) + "}"), {"'w'", "larger"}));
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", "[99999999999999999999999]", 0, 0) + "}"), {"'w'", "larger"}));
}

TEST(HeaderBad, InvalidJson) {
  const char *cases[] = {
      R"({"w":{"dtype":"F32","shape":[1],)",                            // truncated
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},})",      // trailing comma
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}})",      // extra brace
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}} x)",     // trailing bytes
      R"({'w':{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",       // single quotes
      R"({w:{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",         // bare key
      R"({"w" {"dtype":"U8","shape":[1],"data_offsets":[0,1]}})",       // missing colon
      R"({"w":{"dtype":"U8" "shape":[1],"data_offsets":[0,1]}})",       // missing comma
      R"({"w":{"dtype":"U8","shape":[01],"data_offsets":[0,1]}})",      // leading zero
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":NaN}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":tru}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1.}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":-}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1e}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":"\x"}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":"\u12"}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":"\ud800"}})",      // lone high surrogate
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":"\udc00"}})",      // lone low surrogate
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":"\ud800\u0041"}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":[1,]}})",
      R"({"w":{"dtype":"U8","shape":[1 2],"data_offsets":[0,1]}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0 1]}})",
      R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]})",
      "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1],\"x\":\"a\nb\"}}",   // raw newline in string
      "{\"w\xff\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",           // invalid UTF-8
      "{\"w\xc0\xaf\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",       // overlong
      "{\"w\xed\xa0\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",   // encoded surrogate
      "{\"w\xf4\x90\x80\x80\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",  // > U+10FFFF
      "{\"w\xe2\x82\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}",       // cut sequence
  };
  for (const char *c : cases) {
    Result r = parse_h(c, 1);
    EXPECT_FALSE(r.ok) << c;
    EXPECT_EQ(r.err.find('\n'), std::string::npos) << r.err;
  }
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{"dtype":"F32","shape":[1],)"), {"not valid JSON", "ends early"}));
  // NUL bytes inside the header are not whitespace.
  EXPECT_TRUE(fails_with(parse_h(std::string("{}\0\0", 4)), {"not valid JSON", "at byte 2"}));
}

TEST(HeaderBad, TopLevelMustBeAnObjectOfObjects) {
  for (const char *c : {"[]", "\"x\"", "12", "null", "  ", "true"})
    EXPECT_TRUE(fails_with(parse_h(c), {"header"})) << c;
  EXPECT_TRUE(fails_with(parse_h(R"({"w":[1,2]})"), {"'w'", "not an object"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"w":"F32"})"), {"'w'", "not an object"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"w":null})"), {"'w'", "not an object"}));
}

TEST(HeaderBad, MissingOrRepeatedFields) {
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{"shape":[1],"data_offsets":[0,1]}})", 1), {"'w'", "no dtype"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{"dtype":"U8","data_offsets":[0,1]}})", 1), {"'w'", "no shape"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{"dtype":"U8","shape":[1]}})", 1), {"'w'", "no data_offsets"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{}})", 1), {"'w'", "no dtype"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{"dtype":"U8","dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1),
                         {"'w'", "'dtype' appears twice"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{"dtype":"U8","shape":[1],"shape":[1],"data_offsets":[0,1]}})", 1),
                         {"'shape' appears twice"}));
}

TEST(HeaderBad, UnknownDtypeIsNamed) {
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "F7", "[1]", 0, 1) + "}", 1), {"tensor 'w'", "unknown dtype 'F7'"}));
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "f32", "[1]", 0, 4) + "}", 4), {"'f32'"}));
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "", "[1]", 0, 4) + "}", 4), {"unknown dtype ''"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", 4), {"'w'", "dtype"}));
}

TEST(HeaderBad, ShapeEntriesMustBeNonNegativeIntegers) {
  for (const char *s : {"[-1]", "[1.0]", "[1e3]", "[\"2\"]", "[null]", "[[1]]", "[true]", "[-5,2]"})
    EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", s, 0, 1) + "}", 1), {"'w'", "shape"})) << s;
  for (const char *s : {"1", "\"[1]\"", "{}", "null"})
    EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", s, 0, 1) + "}", 1), {"'w'", "shape"})) << s;
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("w", "U8", "[1,1,1,1,1,1,1,1,1]", 0, 1) + "}", 1),
                         {"'w'", "more than 8 dimensions"}));
}

TEST(HeaderBad, DataOffsetsMustBeTwoNonNegativeIntegers) {
  for (const char *o : {"[0]", "[0,1,2]", "[]", "[-1,0]", "[0,1.5]", "[\"0\",\"1\"]", "0", "{\"a\":0}", "[0,null]",
                        "[0,18446744073709551616]"}) {
    const std::string h = std::string(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":)") + o + "}}";
    EXPECT_TRUE(fails_with(parse_h(h, 4), {"'w'", "data_offsets"})) << o;
  }
}

TEST(HeaderBad, DuplicateTensorNames) {
  // A general JSON library would keep the last "w" silently.
  const std::string h = "{" + tensor("w", "U8", "[1]", 0, 1) + "," + tensor("w", "U8", "[1]", 1, 2) + "}";
  EXPECT_TRUE(fails_with(parse_h(h, 2), {"tensor 'w' appears twice"}));
  // Same name spelled differently.
  const std::string h2 = "{" + tensor("w", "U8", "[1]", 0, 1) + "," + tensor("\\u0077", "U8", "[1]", 1, 2) + "}";
  EXPECT_TRUE(fails_with(parse_h(h2, 2), {"'w' appears twice"}));
}

TEST(HeaderBad, BadMetadata) {
  EXPECT_TRUE(fails_with(parse_h(R"({"__metadata__":{"format":1}})"), {"__metadata__", "'format'", "not a string"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"__metadata__":{"a":null}})"), {"__metadata__", "'a'"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"__metadata__":{"a":{"b":"c"}}})"), {"__metadata__", "'a'"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"__metadata__":["a"]})"), {"__metadata__", "not an object"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"__metadata__":"pt"})"), {"__metadata__"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"__metadata__":null})"), {"__metadata__"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"__metadata__":{"a":"1","a":"2"}})"), {"__metadata__", "'a' appears twice"}));
  EXPECT_TRUE(fails_with(parse_h(R"({"__metadata__":{},"__metadata__":{}})"), {"__metadata__ appears twice"}));
}

TEST(HeaderBad, NamesThatCannotBeUsed) {
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("", "U8", "[1]", 0, 1) + "}", 1), {"empty name"}));
  EXPECT_TRUE(fails_with(parse_h("{" + tensor("a\\u0000b", "U8", "[1]", 0, 1) + "}", 1), {"NUL"}));
}

TEST(HeaderBad, NestingIsBounded) {
  auto nested = [](int depth) {
    return std::string(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":)") + std::string(depth, '[') +
           std::string(depth, ']') + "}}";
  };
  EXPECT_TRUE(parse_h(nested(st::kMaxDepth), 1).ok);
  EXPECT_TRUE(fails_with(parse_h(nested(st::kMaxDepth + 1), 1), {"nests deeper"}));
  // Far deeper than any stack would allow if recursion were unbounded.
  EXPECT_TRUE(fails_with(parse_h(nested(1 << 20), 1), {"nests deeper"}));
}

TEST(HeaderBad, MessagesStayOnOneLineAndNamesAreEscaped) {
  Result r = parse_h("{" + tensor("bad\\nname\\u0007", "F7", "[1]", 0, 1) + "}", 1);
  ASSERT_FALSE(r.ok);
  EXPECT_NE(r.err.find("'bad\\x0aname\\x07'"), std::string::npos) << r.err;
  const std::string longname(5000, 'n');
  Result r2 = parse_h("{" + tensor(longname, "F7", "[1]", 0, 1) + "}", 1);
  ASSERT_FALSE(r2.ok);
  EXPECT_LT(r2.err.size(), 400u);
  EXPECT_NE(r2.err.find("...'"), std::string::npos);
}

TEST(Header, QuoteKeepsWholeUtf8Characters) {
  std::string s(199, 'a');
  s += "\xc3\xa9\xc3\xa9";  // a 2-byte char straddles the 200-byte cut
  const std::string q = st::quote(s);
  EXPECT_EQ(q, "'" + std::string(199, 'a') + "...'");
  EXPECT_EQ(st::quote("it's"), "'it\\x27s'");
}

TEST(Header, LargeHeaderWithManyTensorsParses) {
  std::string h = "{";
  uint64_t off = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    if (i) h += ",";
    h += tensor("model.layers." + std::to_string(i) + ".weight", "BF16", "[4,2]", off, off + 16);
    off += 16;
  }
  h += "}";
  Result r = parse_h(h, off);
  ASSERT_TRUE(r.ok) << r.err;
  EXPECT_EQ(r.h.entries.size(), static_cast<size_t>(n));
  EXPECT_EQ(r.h.entries.back().end, off);
}
