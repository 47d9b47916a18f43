// tokenizer.cpp — GGUF tokenizer metadata from an HF tokenizers file (see tokenizer.hpp).
#include "tokenizer.hpp"

#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>

using nlohmann::json;

namespace ckh::gguf {

namespace {

// llama.cpp's pre-tokenizer types (llama-vocab.cpp LLAMA_VOCAB_PRE_TYPE_*), named by the split expression
// a tokenizer.json states for them: the tokenizer's own description decides, not a hash of its outputs.
const std::pair<const char *, const char *> kSplits[] = {
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     "llama-bpe"},
    {"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
     "qwen2"},
};

[[noreturn]] void bad(const std::string &msg) { throw std::invalid_argument(msg); }

json read_json(const std::string &path, uint64_t limit) {
  std::ifstream f(path, std::ios::binary);
  if (!f) bad(path + ": cannot open");
  f.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(f.tellg());
  if (size > limit) bad(path + ": " + std::to_string(size) + " bytes, more than a tokenizer file holds");
  f.seekg(0);
  json j = json::parse(f, nullptr, false);
  if (j.is_discarded() || !j.is_object()) bad(path + ": not a JSON object");
  return j;
}

std::string pre_type(const json &pre, const std::string &path) {
  if (pre.is_object() && pre.value("type", std::string()) == "ByteLevel" && pre.value("use_regex", true)) return "gpt-2";
  if (pre.is_object() && pre.value("type", std::string()) == "Sequence" && pre.contains("pretokenizers") &&
      pre["pretokenizers"].is_array() && pre["pretokenizers"].size() == 2) {
    const json &split = pre["pretokenizers"][0], &bl = pre["pretokenizers"][1];
    if (split.value("type", std::string()) == "Split" && split.contains("pattern") && split["pattern"].is_object() &&
        split["pattern"].contains("Regex") && split["pattern"]["Regex"].is_string() && bl.value("type", std::string()) == "ByteLevel" &&
        !bl.value("use_regex", true)) {
      const std::string r = split["pattern"]["Regex"].get<std::string>();
      for (const auto &[re, name] : kSplits)
        if (r == re) return name;
      bad(path + ": pre-tokenizer split expression " + json(r).dump().substr(0, 120) +
          " is not one llama.cpp names (llama-bpe, qwen2, gpt-2); give --gguf-tokenizer none to write no tokenizer");
    }
  }
  bad(path + ": pre-tokenizer " + pre.dump().substr(0, 120) + " is not byte-level BPE as llama.cpp reads it; give --gguf-tokenizer none");
}

// A special token of tokenizer_config.json: a string or {"content": ...}.
std::string token_text(const json &t) {
  if (t.is_string()) return t.get<std::string>();
  if (t.is_object() && t.contains("content") && t["content"].is_string()) return t["content"].get<std::string>();
  return "";
}

json kv(const std::string &key, const char *type, json value) { return {{"key", key}, {"type", type}, {"value", std::move(value)}}; }
json kv_array(const std::string &key, const char *item, json value) {
  return {{"key", key}, {"type", "array"}, {"item", item}, {"value", std::move(value)}};
}

}  // namespace

json tokenizer_kv(const std::string &tokenizer_json, const std::string &tokenizer_config, const std::string &chat_template,
                  const json &model_config, int64_t vocab_size) {
  const json t = read_json(tokenizer_json, 1ull << 30);
  const json tc = tokenizer_config.empty() ? json::object() : read_json(tokenizer_config, 64ull << 20);
  const json &m = t.value("model", json::object());
  if (m.value("type", std::string()) != "BPE" || !m.contains("vocab") || !m["vocab"].is_object())
    bad(tokenizer_json + ": model type '" + m.value("type", std::string("?")) +
        "' (this writer converts byte-level BPE tokenizers; give --gguf-tokenizer none to write no tokenizer)");
  const std::string pre = pre_type(t.value("pre_tokenizer", json()), tokenizer_json);
  // Token ids: the BPE vocabulary and the added tokens; gaps and the rows the model has beyond them are [PAD<i>].
  std::map<int64_t, std::pair<std::string, int32_t>> by_id;  // id -> (text, token type)
  constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kUnused = 5;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > (1 << 24))
      bad(tokenizer_json + ": token '" + it.key() + "' has the id " + it.value().dump());
    by_id[it.value().get<int64_t>()] = {it.key(), kNormal};
  }
  if (t.contains("added_tokens") && t["added_tokens"].is_array())
    for (const auto &a : t["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string()) continue;
      const int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id > (1 << 24)) bad(tokenizer_json + ": added token id " + std::to_string(id));
      by_id[id] = {a["content"].get<std::string>(), a.value("special", false) ? kControl : kUserDefined};
    }
  int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  if (vocab_size > 0 && n > vocab_size)
    bad(tokenizer_json + ": " + std::to_string(n) + " token ids, the model's vocabulary has " + std::to_string(vocab_size) + " rows");
  if (vocab_size > n) n = vocab_size;
  json tokens = json::array(), types = json::array();
  std::map<std::string, int64_t> id_of;
  for (int64_t i = 0; i < n; ++i) {
    const auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens.push_back("[PAD" + std::to_string(i) + "]");
      types.push_back(kUnused);
    } else {
      tokens.push_back(it->second.first);
      types.push_back(it->second.second);
      id_of.emplace(it->second.first, i);
    }
  }
  json merges = json::array();
  if (m.contains("merges") && m["merges"].is_array())
    for (const auto &x : m["merges"]) {
      if (x.is_string()) merges.push_back(x);
      else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string())
        merges.push_back(x[0].get<std::string>() + " " + x[1].get<std::string>());
      else bad(tokenizer_json + ": merge " + x.dump().substr(0, 60) + " is neither \"a b\" nor [a, b]");
    }
  json out = json::array();
  out.push_back(kv("tokenizer.ggml.model", "string", "gpt2"));
  out.push_back(kv("tokenizer.ggml.pre", "string", pre));
  out.push_back(kv_array("tokenizer.ggml.tokens", "string", tokens));
  out.push_back(kv_array("tokenizer.ggml.token_type", "i32", types));
  out.push_back(kv_array("tokenizer.ggml.merges", "string", merges));
  // Special token ids: tokenizer_config.json's tokens, else config.json's ids.
  const std::pair<const char *, const char *> specials[] = {
      {"bos_token", "bos_token_id"}, {"eos_token", "eos_token_id"}, {"unk_token", "unknown_token_id"}, {"pad_token", "padding_token_id"}};
  for (const auto &[name, key] : specials) {
    const std::string text = tc.contains(name) ? token_text(tc[name]) : "";
    int64_t id = -1;
    if (!text.empty() && id_of.count(text)) id = id_of[text];
    else if (model_config.is_object()) {
      const std::string cfg_key = std::string(name) + "_id";
      if (model_config.contains(cfg_key) && model_config[cfg_key].is_number_integer()) id = model_config[cfg_key].get<int64_t>();
    }
    if (id >= 0 && id < n) out.push_back(kv(std::string("tokenizer.ggml.") + key, "u32", id));
  }
  if (tc.contains("add_bos_token") && tc["add_bos_token"].is_boolean()) out.push_back(kv("tokenizer.ggml.add_bos_token", "bool", tc["add_bos_token"]));
  if (tc.contains("add_eos_token") && tc["add_eos_token"].is_boolean()) out.push_back(kv("tokenizer.ggml.add_eos_token", "bool", tc["add_eos_token"]));
  if (!chat_template.empty()) {  // transformers >= 4.43 saves it as chat_template.jinja
    std::ifstream f(chat_template, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    if (!f) bad(chat_template + ": cannot read");
    out.push_back(kv("tokenizer.chat_template", "string", ss.str()));
  } else if (tc.contains("chat_template") && tc["chat_template"].is_string()) {
    out.push_back(kv("tokenizer.chat_template", "string", tc["chat_template"]));
  }
  return out;
}

}  // namespace ckh::gguf
