// sentencepiece.hpp — a bounded reader of SentencePiece's `tokenizer.model` (a serialized protobuf ModelProto), only as
// far as the GGUF tokenizer metadata needs it: every piece's text, score and type, the trainer's model type and
// byte_fallback, and the normalizer's name and whitespace flags. Untrusted bytes: every varint is at most 10 bytes, every
// length lies inside its enclosing message, field numbers and wire types are checked, unknown fields are skipped by
// their wire type (groups, which sentencepiece never writes, are refused), and the piece count is bounded.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ckh::gguf::spm {

// ModelProto.SentencePiece.Type; llama.cpp's token types (llama_token_type) use the same numbers.
enum PieceType : int32_t { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };
// TrainerSpec.ModelType.
enum ModelType : int32_t { kUnigram = 1, kBpe = 2, kWord = 3, kChar = 4 };

constexpr uint64_t kMaxPieces = 1u << 24;        // the GGUF tokenizer's id bound (as for tokenizer.json)
constexpr uint64_t kMaxFileBytes = 256ull << 20;  // a 256k-piece Gemma model is about 4 MiB

struct Piece {
  std::string text;
  float score = 0.0f;
  int32_t type = kNormal;
};

struct Model {
  std::vector<Piece> pieces;
  // trainer_spec (defaults as the .proto declares them)
  int32_t model_type = kUnigram;
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  // normalizer_spec
  bool has_normalizer = false;
  std::string normalizer_name;  // "identity", "nmt_nfkc", ... ("" when absent)
  bool has_charsmap = false;    // a precompiled_charsmap is present (a normalization llama.cpp does not apply)
  bool add_dummy_prefix = true;
  bool add_dummy_prefix_set = false;  // stated in the file (not the default)
  bool remove_extra_whitespaces = true;
  bool escape_whitespaces = true;
};

// Parses a serialized ModelProto. Throws std::runtime_error saying what is wrong and at which byte (no file name).
// Checks beyond the wire format, as SentencePiece's own loader does: at least one piece, no empty or duplicate piece,
// pieces valid UTF-8, piece types 1..6.
Model parse(const uint8_t *data, size_t size);

// Reads and parses `path` (at most kMaxFileBytes); errors are std::invalid_argument naming the file.
Model read(const std::string &path);

}  // namespace ckh::gguf::spm
