// sentencepiece.cpp — the bounded ModelProto reader (see sentencepiece.hpp).
//
// Protobuf wire format, as far as it is read here: a message is a sequence of (key, value); key = varint
// (field_number << 3 | wire_type); wire types 0 varint, 1 fixed 8 bytes, 2 length-delimited (varint length, then
// that many bytes), 5 fixed 4 bytes; 3 and 4 (groups) are deprecated and refused. Fields read (sentencepiece_model.proto):
//   ModelProto:      1 pieces (message, repeated), 2 trainer_spec (message), 3 normalizer_spec (message)
//   SentencePiece:   1 piece (string), 2 score (float, fixed32), 3 type (enum varint)
//   TrainerSpec:     3 model_type (enum), 24 treat_whitespace_as_suffix (bool), 35 byte_fallback (bool)
//   NormalizerSpec:  1 name (string), 2 precompiled_charsmap (bytes), 3 add_dummy_prefix, 4 remove_extra_whitespaces,
//                    5 escape_whitespaces (bools)
// A field given twice keeps its last value, as protobuf parsers do; a sub-message given twice is merged.
#include "sentencepiece.hpp"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <unordered_set>

namespace ckh::gguf::spm {

namespace {

[[noreturn]] void bad(const std::string &msg) { throw std::runtime_error(msg); }

bool utf8(const std::string &s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || n > s.size() - i) return false;
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (size_t k = 1; k < n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xc0) != 0x80) return false;
      cp = cp << 6 | (d & 0x3f);
    }
    const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

// A cursor over [pos, end) of the whole buffer; offsets in messages are from the buffer's start.
struct Cursor {
  const uint8_t *base;
  size_t pos, end;

  bool done() const { return pos >= end; }

  uint64_t varint(const char *what) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos >= end) bad(std::string(what) + ": a varint runs past its message's end at byte " + std::to_string(pos));
      const uint8_t b = base[pos++];
      if (i == 9 && b > 1) bad(std::string(what) + ": a varint longer than 64 bits at byte " + std::to_string(pos - 1));
      v |= static_cast<uint64_t>(b & 0x7f) << (7 * i);
      if (!(b & 0x80)) return v;
    }
    bad(std::string(what) + ": a varint longer than 10 bytes at byte " + std::to_string(pos));
  }

  // The [start, end) of a length-delimited value: its length must fit in what is left of the enclosing message.
  Cursor sub(const char *what) {
    const size_t at = pos;
    const uint64_t n = varint(what);
    if (n > end - pos)
      bad(std::string(what) + ": a length of " + std::to_string(n) + " bytes at byte " + std::to_string(at) + ", only " +
          std::to_string(end - pos) + " left in its message");
    Cursor c{base, pos, pos + static_cast<size_t>(n)};
    pos += static_cast<size_t>(n);
    return c;
  }

  uint32_t fixed32(const char *what) {
    if (end - pos < 4) bad(std::string(what) + ": a 4-byte value runs past its message's end at byte " + std::to_string(pos));
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(base[pos + i]) << (8 * i);
    pos += 4;
    return v;
  }

  // (field number, wire type) of the next field.
  std::pair<uint64_t, uint32_t> key(const char *what) {
    const size_t at = pos;
    const uint64_t k = varint(what);
    const uint64_t field = k >> 3;
    const auto wire = static_cast<uint32_t>(k & 7);
    if (field == 0 || field > 536870911) bad(std::string(what) + ": field number " + std::to_string(field) + " at byte " + std::to_string(at));
    if (wire == 3 || wire == 4) bad(std::string(what) + ": a group (wire type " + std::to_string(wire) + ") at byte " + std::to_string(at) + ", which sentencepiece never writes");
    if (wire > 5) bad(std::string(what) + ": wire type " + std::to_string(wire) + " at byte " + std::to_string(at) + " (protobuf has 0 to 5)");
    return {field, wire};
  }

  void skip(uint32_t wire, const char *what) {
    switch (wire) {
      case 0: (void)varint(what); return;
      case 1:
        if (end - pos < 8) bad(std::string(what) + ": an 8-byte value runs past its message's end at byte " + std::to_string(pos));
        pos += 8;
        return;
      case 2: (void)sub(what); return;
      case 5: (void)fixed32(what); return;
    }
    bad(std::string(what) + ": wire type " + std::to_string(wire));
  }

  // A known field's value of the wire type its .proto declares.
  void expect(uint32_t wire, uint32_t want, uint64_t field, const char *what) const {
    if (wire != want)
      bad(std::string(what) + ": field " + std::to_string(field) + " has wire type " + std::to_string(wire) + ", expected " +
          std::to_string(want) + " (at byte " + std::to_string(pos) + ")");
  }
};

std::string bytes_of(const Cursor &c) { return std::string(reinterpret_cast<const char *>(c.base + c.pos), c.end - c.pos); }

void piece(Cursor c, Model &m) {
  Piece p;
  const size_t index = m.pieces.size();
  const std::string what = "piece " + std::to_string(index);
  while (!c.done()) {
    const auto [field, wire] = c.key(what.c_str());
    if (field == 1) {
      c.expect(wire, 2, field, what.c_str());
      p.text = bytes_of(c.sub(what.c_str()));
    } else if (field == 2) {
      c.expect(wire, 5, field, what.c_str());
      const uint32_t bits = c.fixed32(what.c_str());
      std::memcpy(&p.score, &bits, 4);
    } else if (field == 3) {
      c.expect(wire, 0, field, what.c_str());
      const uint64_t t = c.varint(what.c_str());
      if (t < kNormal || t > kByte) bad(what + ": type " + std::to_string(t) + " (SentencePiece's piece types are 1 to 6)");
      p.type = static_cast<int32_t>(t);
    } else {
      c.skip(wire, what.c_str());
    }
  }
  m.pieces.push_back(std::move(p));
}

void trainer(Cursor c, Model &m) {
  while (!c.done()) {
    const auto [field, wire] = c.key("trainer_spec");
    if (field == 3 || field == 24 || field == 35) {
      c.expect(wire, 0, field, "trainer_spec");
      const uint64_t v = c.varint("trainer_spec");
      if (field == 3) {
        if (v < kUnigram || v > kChar) bad("trainer_spec: model_type " + std::to_string(v) + " (1 unigram, 2 bpe, 3 word, 4 char)");
        m.model_type = static_cast<int32_t>(v);
      } else if (field == 24) {
        m.treat_whitespace_as_suffix = v != 0;
      } else {
        m.byte_fallback = v != 0;
      }
    } else {
      c.skip(wire, "trainer_spec");
    }
  }
}

void normalizer(Cursor c, Model &m) {
  m.has_normalizer = true;
  while (!c.done()) {
    const auto [field, wire] = c.key("normalizer_spec");
    if (field == 1 || field == 2) {
      c.expect(wire, 2, field, "normalizer_spec");
      const Cursor s = c.sub("normalizer_spec");
      if (field == 1) {
        m.normalizer_name = bytes_of(s);
        if (!utf8(m.normalizer_name)) bad("normalizer_spec: the name is not UTF-8");
      } else {
        m.has_charsmap = s.end > s.pos;
      }
    } else if (field >= 3 && field <= 5) {
      c.expect(wire, 0, field, "normalizer_spec");
      const bool v = c.varint("normalizer_spec") != 0;
      if (field == 3) {
        m.add_dummy_prefix = v;
        m.add_dummy_prefix_set = true;
      } else if (field == 4) {
        m.remove_extra_whitespaces = v;
      } else {
        m.escape_whitespaces = v;
      }
    } else {
      c.skip(wire, "normalizer_spec");
    }
  }
}

}  // namespace

Model parse(const uint8_t *data, size_t size) {
  Model m;
  Cursor c{data, 0, size};
  while (!c.done()) {
    const auto [field, wire] = c.key("ModelProto");
    if (field >= 1 && field <= 3) {
      c.expect(wire, 2, field, "ModelProto");
      const Cursor s = c.sub("ModelProto");
      if (field == 1) {
        if (m.pieces.size() >= kMaxPieces) bad("more than " + std::to_string(kMaxPieces) + " pieces");
        piece(s, m);
      } else if (field == 2) {
        trainer(s, m);
      } else {
        normalizer(s, m);
      }
    } else {
      c.skip(wire, "ModelProto");
    }
  }
  if (m.pieces.empty()) bad("no pieces (not a SentencePiece model)");
  std::unordered_set<std::string> seen;
  seen.reserve(m.pieces.size());
  for (size_t i = 0; i < m.pieces.size(); ++i) {
    const std::string &t = m.pieces[i].text;
    if (t.empty()) bad("piece " + std::to_string(i) + " is empty");
    if (!utf8(t)) bad("piece " + std::to_string(i) + " is not UTF-8");
    if (!seen.insert(t).second) {
      size_t cut = std::min<size_t>(t.size(), 64);  // whole UTF-8 characters only
      while (cut < t.size() && (static_cast<unsigned char>(t[cut]) & 0xc0) == 0x80) --cut;
      bad("piece " + std::to_string(i) + " '" + t.substr(0, cut) + "' is defined twice");
    }
  }
  return m;
}

Model read(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::invalid_argument(path + ": cannot open");
  f.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(f.tellg());
  if (size > kMaxFileBytes)
    throw std::invalid_argument(path + ": " + std::to_string(size) + " bytes, more than a SentencePiece model holds (at most " +
                                std::to_string(kMaxFileBytes) + ")");
  f.seekg(0);
  std::string buf(static_cast<size_t>(size), '\0');
  if (size && !f.read(buf.data(), static_cast<std::streamsize>(size))) throw std::invalid_argument(path + ": cannot read");
  try {
    return parse(reinterpret_cast<const uint8_t *>(buf.data()), buf.size());
  } catch (const std::runtime_error &e) {
    throw std::invalid_argument(path + ": not a valid SentencePiece model: " + e.what());
  }
}

}  // namespace ckh::gguf::spm
