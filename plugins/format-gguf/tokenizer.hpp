// tokenizer.hpp — llama.cpp's tokenizer metadata (tokenizer.ggml.*, tokenizer.chat_template) from an HF tokenizers
// file: a byte-level BPE tokenizer.json becomes tokenizer.ggml.model "gpt2" with its tokens (the BPE vocabulary and the
// added tokens, special ones CONTROL, others USER_DEFINED, ids the file leaves free and the model's rows beyond it
// "[PAD<i>]" UNUSED), merges, and the pre-tokenizer type named by the split expression the file states (llama-bpe,
// qwen2, gpt-2); special token ids from tokenizer_config.json (or config.json), add_bos/add_eos and the chat template.
// A format's knowledge (HF tokenizers -> GGUF keys), no model's.
#pragma once
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace ckh::gguf {

// GGUF key-value entries (gguf_kv.hpp's JSON form). `tokenizer_config` and `chat_template` may be "" (absent);
// `vocab_size` <= 0 when unknown. Throws std::invalid_argument naming the file on what it cannot convert.
nlohmann::json tokenizer_kv(const std::string &tokenizer_json, const std::string &tokenizer_config, const std::string &chat_template,
                            const nlohmann::json &model_config, int64_t vocab_size);

}  // namespace ckh::gguf
