// fuzz_spm.cpp — libFuzzer target: any bytes as a SentencePiece tokenizer.model; spm::parse() must return or throw
// std::runtime_error, never crash, hang or read outside the buffer. A parsed model's pieces are checked to be what
// parse() promises (non-empty, at most kMaxPieces, types 1..6).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>

#include "sentencepiece.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  namespace spm = ckh::gguf::spm;
  try {
    const spm::Model m = spm::parse(data, size);
    if (m.pieces.empty() || m.pieces.size() > spm::kMaxPieces) std::abort();
    for (const spm::Piece &p : m.pieces)
      if (p.text.empty() || p.type < spm::kNormal || p.type > spm::kByte) std::abort();
  } catch (const std::runtime_error &) {
  }
  return 0;
}
