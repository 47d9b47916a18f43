// tokenizer.hpp — llama.cpp's tokenizer metadata (tokenizer.ggml.*, tokenizer.chat_template) from a checkpoint's
// tokenizer files, as llama.cpp's convert_hf_to_gguf.py writes it for the llama, mistral, qwen2 and qwen3 architectures:
//
//  - SentencePiece (`tokenizer.model`) -> tokenizer.ggml.model "llama", pre "default": one token per piece with its
//    score and type (NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6), the model's rows beyond the
//    pieces "[PAD<i>]" (score -10000, UNUSED); then added_tokens.json's tokens (score -1000, USER_DEFINED) and
//    tokenizer_config.json's added_tokens_decoder (score -1000; CONTROL when "special" or when it looks special as
//    <|...|>, <pad>, <mask>, <unused...>; else USER_DEFINED with "▁" written as a space). One deliberate difference:
//    a piece SentencePiece itself types USER_DEFINED stays USER_DEFINED ("▁" as a space), where the converter makes
//    it NORMAL unless added_tokens_decoder lists it; llama.cpp then splits it out of the text as SentencePiece and
//    transformers do. tokenizer.ggml.add_space_prefix is written when tokenizer_config.json states add_prefix_space,
//    else false when the model's normalizer_spec states add_dummy_prefix false.
//  - byte-level BPE (`tokenizer.json`) -> "gpt2" with its tokens (the BPE vocabulary and the added tokens, special
//    ones CONTROL, others USER_DEFINED, ids the file leaves free and the model's rows beyond it "[PAD<i>]" UNUSED),
//    merges, and the pre-tokenizer type named by the split expression the file states (llama-bpe, qwen2, gpt-2).
//  - both: special token ids as gguf-py's SpecialVocab finds them (tokenizer_config.json's bos/eos/unk/sep/pad/mask
//    tokens looked up among tokenizer.json's added tokens, then config.json's *_token_id), add_bos/add_eos/add_sep
//    (tokenizer.json's post-processor template, then tokenizer_config.json), and the chat template
//    (tokenizer_config.json's, else chat_template.jinja, else chat_template.json; a list of named templates as
//    tokenizer.chat_template and tokenizer.chat_template.<name>).
//
// Which one when a checkpoint has both: the SentencePiece model, as the converter's set_vocab tries it first for these
// architectures ("auto"); "spm" or "bpe" names one. A format's knowledge (tokenizer files -> GGUF keys), no model's.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ckh::gguf {

// Paths of the source's tokenizer files; "" where absent.
struct TokenizerFiles {
  std::string tokenizer_json, tokenizer_model, tokenizer_config, added_tokens, chat_template_jinja, chat_template_json;
};

// GGUF key-value entries (gguf_kv.hpp's JSON form); an empty array when the source has no tokenizer file `which`
// ("auto", "spm" or "bpe") can use ("spm" and "bpe" throw instead). `vocab_size` <= 0 when unknown. Throws
// std::invalid_argument naming the file on what it cannot convert. `notes` receives warnings worth logging (what
// llama.cpp will do differently from the source's tokenizer).
nlohmann::json tokenizer_kv(const TokenizerFiles &files, const std::string &which, const nlohmann::json &model_config,
                            int64_t vocab_size, std::vector<std::string> &notes);

}  // namespace ckh::gguf
