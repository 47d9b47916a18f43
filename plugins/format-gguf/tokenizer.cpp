// tokenizer.cpp — GGUF tokenizer metadata from a checkpoint's tokenizer files (see tokenizer.hpp).
#include "tokenizer.hpp"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <unordered_set>

#include "sentencepiece.hpp"

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

// llama.cpp's token types (llama_token_type), the numbers SentencePiece's piece types also use.
constexpr int32_t kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6;
const char *const kMetaspace = "\xe2\x96\x81";  // U+2581, SentencePiece's escaped space

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

std::string read_text(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f) bad(path + ": cannot read");
  return ss.str();
}

// Python's truth value of a JSON value (the converter's `if x:`).
bool truthy(const json &v) {
  if (v.is_null()) return false;
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_number_integer()) return v.get<int64_t>() != 0;
  if (v.is_number()) return v.get<double>() != 0.0;
  if (v.is_string() || v.is_array() || v.is_object()) return !v.empty();
  return true;
}

json get(const json &o, const char *key) { return o.is_object() && o.contains(key) ? o[key] : json(); }

std::string replace_all(std::string s, const std::string &from, const std::string &to) {
  for (size_t p = 0; (p = s.find(from, p)) != std::string::npos; p += to.size()) s.replace(p, from.size(), to);
  return s;
}

json kv(const std::string &key, const char *type, json value) { return {{"key", key}, {"type", type}, {"value", std::move(value)}}; }
json kv_array(const std::string &key, const char *item, json value) {
  return {{"key", key}, {"type", "array"}, {"item", item}, {"value", std::move(value)}};
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

// An added token the converter's does_token_look_special() takes for a control token although it is not marked special.
bool looks_special(const std::string &t) {
  auto starts = [&](const std::string &p) { return t.size() >= p.size() && t.compare(0, p.size(), p) == 0; };
  auto ends = [&](const std::string &s) { return t.size() >= s.size() && t.compare(t.size() - s.size(), s.size(), s) == 0; };
  if (t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]") return true;
  if (starts("<|") && ends("|>")) return true;
  if (starts("<\xef\xbd\x9c") && ends("\xef\xbd\x9c>")) return true;  // <｜...｜> (fullwidth bars)
  return starts("<unused") && ends(">");
}

// ---- special tokens, add_* flags and the chat template (gguf-py's SpecialVocab) -------------------------------

struct Specials {
  std::vector<std::string> types{"bos", "eos", "unk", "sep", "pad", "cls", "mask"};
  std::vector<std::pair<std::string, int64_t>> ids;  // in the order found; the first id of a type wins
  std::map<std::string, bool> add;
  int64_t n_vocab;
  std::vector<std::string> *notes;

  bool has_type(const std::string &t) const {
    for (const auto &x : types)
      if (x == t) return true;
    return false;
  }
  void set(const std::string &typ, const json &id) {
    if (!id.is_number_integer()) return;
    const int64_t v = id.get<int64_t>();
    if (v < 0) return;
    for (const auto &p : ids)
      if (p.first == typ) return;
    if (v < n_vocab) ids.emplace_back(typ, v);
    else notes->push_back("special token " + typ + " id " + std::to_string(v) + " is beyond the " + std::to_string(n_vocab) + " tokens; not written");
  }

  // tokenizer.json's post-processor and tokenizer_config.json (SpecialVocab._try_load_from_tokenizer_json).
  void from_tokenizer_files(const json &tj, json tc, const TokenizerFiles &f, json &chat_template) {
    const bool has_tc = truthy(tc);
    const json added = truthy(tj) ? get(tj, "added_tokens") : json::array();
    if (truthy(tj)) {
      json bos = get(tc, "bos_token"), cls = get(tc, "cls_token"), eos = get(tc, "eos_token"), sep = get(tc, "sep_token");
      if (!truthy(bos) && truthy(cls) && has_tc) tc["bos_token"] = bos = cls;
      if (!truthy(eos) && truthy(sep) && has_tc) tc["eos_token"] = eos = sep;
      const json post = get(tj, "post_processor");
      if (truthy(post) && post.is_object()) {
        const json procs = post.contains("processors") ? post["processors"] : json::array({post});
        for (const json &p : procs.is_array() ? procs : json::array()) {
          const std::string type = p.is_object() ? p.value("type", std::string()) : std::string();
          if (type == "ByteLevel") {
            add.emplace("bos", false);
            add.emplace("eos", false);
          } else if (type == "RobertaProcessing") {
            add["bos"] = add["eos"] = add["sep"] = true;
            if (!truthy(cls) && has_tc) {
              const json c = get(p, "cls");
              tc["cls_token"] = cls = c.is_array() && !c.empty() ? c[0] : bos;
            }
            if (!truthy(sep) && has_tc) {
              const json s = get(p, "sep");
              tc["sep_token"] = sep = s.is_array() && !s.empty() ? s[0] : eos;
            }
          } else if (type == "TemplateProcessing") {
            template_flags(p, tc, has_tc, bos, cls, eos, sep);
          }
        }
      }
    }
    if (!has_tc) return;
    // The chat template: tokenizer_config.json's key (even a null one), else chat_template.jinja, else chat_template.json.
    json alt;
    if (!f.chat_template_jinja.empty()) alt = read_text(f.chat_template_jinja);
    else if (!f.chat_template_json.empty()) alt = get(read_json(f.chat_template_json, 64ull << 20), "chat_template");
    chat_template = tc.contains("chat_template") ? tc["chat_template"] : alt;
    if (!chat_template.is_null() && !chat_template.is_string() && !chat_template.is_array()) {
      notes->push_back(f.tokenizer_config + ": chat_template is neither a string nor a list; not written");
      chat_template = json();
    }
    for (const std::string &typ : std::vector<std::string>(types)) {
      const json a = get(tc, ("add_" + typ + "_token").c_str());
      if (a.is_boolean()) add.emplace(typ, a.get<bool>());
      const json e = get(tc, (typ + "_token").c_str());
      std::string content;
      if (e.is_string()) content = e.get<std::string>();
      else if (e.is_object() && e.contains("content") && e["content"].is_string()) content = e["content"].get<std::string>();
      else continue;
      if (added.is_array())
        for (const json &t : added)
          if (t.is_object() && t.contains("content") && t["content"] == content) {
            set(typ, get(t, "id"));
            break;
          }
    }
  }

  // A TemplateProcessing post-processor: whether BOS / EOS / SEP are added, as SpecialVocab reads its templates.
  void template_flags(const json &p, json &tc, bool has_tc, json &bos, json &cls, json &eos, json &sep) {
    const json single = get(p, "single").is_array() ? p["single"] : json::array();
    json pair = get(p, "pair").is_array() ? p["pair"] : json::array();
    auto special_id = [](const json &item) { return get(get(item, "SpecialToken"), "id"); };
    json first, last;
    if (single.size() > 1) {
      first = special_id(single.front());
      if (truthy(first)) {
        if (!has_tc) {
          bos = first;
        } else if (first != bos && first != cls) {
          if (!truthy(bos)) tc["bos_token"] = bos = first;
          if (!truthy(cls)) tc["cls_token"] = cls = first;
        }
        add["bos"] = first == bos || first == cls;
      }
      last = special_id(single.back());
      if (truthy(last)) {
        if (!has_tc) {
          eos = last;
        } else if (last != eos) {
          if (!has_type("eot")) {
            types.push_back("eot");
            tc["eot_token"] = eos;
          } else if (!has_type("eom")) {
            types.push_back("eom");
            tc["eom_token"] = eos;
          }
          tc["eos_token"] = eos = last;
        }
        add["eos"] = last == eos;
      }
    }
    if (pair.empty()) return;
    const size_t start = truthy(first) && special_id(pair.front()) == first ? 1 : 0;
    const size_t stop = truthy(last) && special_id(pair.back()) == last ? pair.size() - 1 : pair.size();
    if (start >= stop) return;
    const json mid(json::array_t(pair.begin() + static_cast<std::ptrdiff_t>(start), pair.begin() + static_cast<std::ptrdiff_t>(stop)));
    const json a = get(get(mid.front(), "Sequence"), "id"), b = get(get(mid.back(), "Sequence"), "id");
    if (a != "A" || b != "B" || mid.size() <= 2) return;
    const json inner(json::array_t(mid.begin() + 1, mid.end() - 1));  // A [sep] [eos] B
    bool add_sep = false;
    const json e0 = special_id(inner[0]);
    if (truthy(e0) && (e0 == sep || e0 == eos) && !truthy(last)) add_sep = true;
    if (inner.size() == 2) {
      const json e1 = special_id(inner[1]);
      if (truthy(e1) && (e1 == sep || e1 == eos)) add_sep = true;
    }
    add["sep"] = add_sep;
    if (add_sep && !truthy(sep) && has_tc) tc["sep_token"] = eos;
  }

  // config.json's *_token_id (or its text_config's) for the types still unset.
  void from_config(const json &cfg) {
    for (const std::string &typ : types) {
      json id = get(cfg, (typ + "_token_id").c_str());
      if (id.is_null()) id = get(get(cfg, "text_config"), (typ + "_token_id").c_str());
      set(typ, id);
    }
  }

  void write(json &out, const json &chat_template) const {
    static const std::map<std::string, std::string> kIdKey = {
        {"bos", "bos_token_id"}, {"eos", "eos_token_id"}, {"unk", "unknown_token_id"}, {"sep", "seperator_token_id"},
        {"pad", "padding_token_id"}, {"mask", "mask_token_id"}, {"eot", "eot_token_id"}, {"eom", "eom_token_id"}};
    for (const auto &[typ, id] : ids) {  // cls has no GGUF key: gguf-py skips it too
      const auto k = kIdKey.find(typ);
      if (k != kIdKey.end()) out.push_back(kv("tokenizer.ggml." + k->second, "u32", id));
    }
    for (const char *typ : {"bos", "eos", "sep"})
      if (add.count(typ)) out.push_back(kv(std::string("tokenizer.ggml.add_") + typ + "_token", "bool", add.at(typ)));
    if (chat_template.is_string()) {
      out.push_back(kv("tokenizer.chat_template", "string", chat_template));
    } else if (chat_template.is_array()) {  // [{"name": ..., "template": ...}]: "default" and the named ones
      json names = json::array();
      json def;
      for (const json &c : chat_template) {
        std::string name = c.is_object() ? c.value("name", std::string()) : std::string();
        const json t = get(c, "template");
        for (char &ch : name)
          if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
        if (name.empty() || !t.is_string()) continue;
        if (name == "default") {
          def = t;
        } else {
          out.push_back(kv("tokenizer.chat_template." + name, "string", t));
          if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
        }
      }
      if (!names.empty()) out.push_back(kv_array("tokenizer.chat_templates", "string", names));
      if (def.is_string()) out.push_back(kv("tokenizer.chat_template", "string", def));
    }
  }
};

void add_specials(json &out, const TokenizerFiles &f, const json &tj, const json &tc, const json &model_config, int64_t n,
                  std::vector<std::string> &notes) {
  Specials s;
  s.n_vocab = n;
  s.notes = &notes;
  json chat_template;
  s.from_tokenizer_files(tj, tc, f, chat_template);
  s.from_config(model_config);
  s.write(out, chat_template);
}

// The tokens must be distinct: llama.cpp maps text to id and aborts on a duplicate.
void check_distinct(const json &tokens, const std::string &path) {
  std::unordered_set<std::string> seen;
  seen.reserve(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    if (!seen.insert(tokens[i].get_ref<const std::string &>()).second)
      bad(path + ": token " + std::to_string(i) + " " + json(tokens[i]).dump(-1, ' ', true).substr(0, 80) +
          " appears twice in the vocabulary (llama.cpp needs every token text once)");
}

// ---- byte-level BPE (tokenizer.json) --------------------------------------------------------------------------

json bpe_kv(const TokenizerFiles &f, const json &tc, const json &model_config, int64_t vocab_size, std::vector<std::string> &notes) {
  const std::string &path = f.tokenizer_json;
  const json t = read_json(path, 1ull << 30);
  const json &m = t.value("model", json::object());
  if (m.value("type", std::string()) != "BPE" || !m.contains("vocab") || !m["vocab"].is_object())
    bad(path + ": model type '" + m.value("type", std::string("?")) +
        "' (this writer converts byte-level BPE tokenizers; give --gguf-tokenizer none to write no tokenizer)");
  const std::string pre = pre_type(t.value("pre_tokenizer", json()), path);
  // Token ids: the BPE vocabulary and the added tokens; gaps and the rows the model has beyond them are [PAD<i>].
  std::map<int64_t, std::pair<std::string, int32_t>> by_id;  // id -> (text, token type)
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > (1 << 24))
      bad(path + ": token '" + it.key() + "' has the id " + it.value().dump());
    by_id[it.value().get<int64_t>()] = {it.key(), kNormal};
  }
  if (t.contains("added_tokens") && t["added_tokens"].is_array())
    for (const auto &a : t["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string()) continue;
      const int64_t id = a["id"].get<int64_t>();
      if (id < 0 || id > (1 << 24)) bad(path + ": added token id " + std::to_string(id));
      by_id[id] = {a["content"].get<std::string>(), a.value("special", false) ? kControl : kUserDefined};
    }
  int64_t n = by_id.empty() ? 0 : by_id.rbegin()->first + 1;
  if (vocab_size > 0 && n > vocab_size)
    bad(path + ": " + std::to_string(n) + " token ids, the model's vocabulary has " + std::to_string(vocab_size) + " rows");
  if (vocab_size > n) n = vocab_size;
  json tokens = json::array(), types = json::array();
  for (int64_t i = 0; i < n; ++i) {
    const auto it = by_id.find(i);
    if (it == by_id.end()) {
      tokens.push_back("[PAD" + std::to_string(i) + "]");
      types.push_back(kUnused);
    } else {
      tokens.push_back(it->second.first);
      types.push_back(it->second.second);
    }
  }
  json merges = json::array();
  if (m.contains("merges") && m["merges"].is_array())
    for (const auto &x : m["merges"]) {
      if (x.is_string()) merges.push_back(x);
      else if (x.is_array() && x.size() == 2 && x[0].is_string() && x[1].is_string())
        merges.push_back(x[0].get<std::string>() + " " + x[1].get<std::string>());
      else bad(path + ": merge " + x.dump().substr(0, 60) + " is neither \"a b\" nor [a, b]");
    }
  json out = json::array();
  out.push_back(kv("tokenizer.ggml.model", "string", "gpt2"));
  out.push_back(kv("tokenizer.ggml.pre", "string", pre));
  out.push_back(kv_array("tokenizer.ggml.tokens", "string", tokens));
  out.push_back(kv_array("tokenizer.ggml.token_type", "i32", types));
  out.push_back(kv_array("tokenizer.ggml.merges", "string", merges));
  add_specials(out, f, t, tc, model_config, n, notes);
  return out;
}

// ---- SentencePiece (tokenizer.model) --------------------------------------------------------------------------

json spm_kv(const TokenizerFiles &f, const json &tc, const json &model_config, int64_t vocab_size, std::vector<std::string> &notes) {
  const std::string &path = f.tokenizer_model;
  const spm::Model model = spm::read(path);
  const auto n_pieces = static_cast<int64_t>(model.pieces.size());
  const int64_t n = vocab_size > 0 ? vocab_size : n_pieces;
  if (n_pieces > n)
    bad(path + ": " + std::to_string(n_pieces) + " pieces, the model's vocabulary has " + std::to_string(n) + " rows");
  // Rows beyond the pieces: [PAD<i>], score -10000, UNUSED (the converter's defaults).
  json tokens = json::array(), scores = json::array(), types = json::array();
  std::vector<std::string> text(static_cast<size_t>(n));
  std::vector<float> score(static_cast<size_t>(n), -10000.0f);
  std::vector<int32_t> type(static_cast<size_t>(n), kUnused);
  for (int64_t i = 0; i < n; ++i) text[static_cast<size_t>(i)] = "[PAD" + std::to_string(i) + "]";
  for (int64_t i = 0; i < n_pieces; ++i) {
    const spm::Piece &p = model.pieces[static_cast<size_t>(i)];
    text[static_cast<size_t>(i)] = p.type == kUserDefined ? replace_all(p.text, kMetaspace, " ") : p.text;
    score[static_cast<size_t>(i)] = p.score;
    type[static_cast<size_t>(i)] = p.type;  // NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE: the same numbers
  }
  // added_tokens.json {text: id}: USER_DEFINED, score -1000.
  if (!f.added_tokens.empty()) {
    const json a = read_json(f.added_tokens, 64ull << 20);
    for (auto it = a.begin(); it != a.end(); ++it) {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= n)
        bad(f.added_tokens + ": token " + json(it.key()).dump() + " has the id " + it.value().dump() + ", outside the model's " +
            std::to_string(n) + " rows");
      const auto id = static_cast<size_t>(it.value().get<int64_t>());
      text[id] = it.key();
      score[id] = -1000.0f;
      type[id] = kUserDefined;
    }
  }
  // tokenizer_config.json's added_tokens_decoder {"id": {"content": ..., "special": ...}}: CONTROL or USER_DEFINED.
  const json dec = get(tc, "added_tokens_decoder");
  if (dec.is_object())
    for (auto it = dec.begin(); it != dec.end(); ++it) {
      const std::string &k = it.key();
      const bool digits = !k.empty() && k.size() <= 9 && k.find_first_not_of("0123456789") == std::string::npos;
      const json content = get(it.value(), "content");
      if (!digits || !content.is_string()) bad(f.tokenizer_config + ": added_tokens_decoder entry " + json(k).dump() + " is not {id: {\"content\": ...}}");
      const int64_t id = std::stoll(k);
      if (id >= n) bad(f.tokenizer_config + ": added token " + content.dump() + " has the id " + k + ", outside the model's " + std::to_string(n) + " rows");
      std::string t = content.get<std::string>();
      if (truthy(get(it.value(), "special")) || looks_special(t)) {
        type[static_cast<size_t>(id)] = kControl;
      } else {
        t = replace_all(t, kMetaspace, " ");  // llama.cpp matches user-defined tokens in the raw text
        type[static_cast<size_t>(id)] = kUserDefined;
      }
      score[static_cast<size_t>(id)] = -1000.0f;
      text[static_cast<size_t>(id)] = t;
    }
  for (int64_t i = 0; i < n; ++i) {
    tokens.push_back(text[static_cast<size_t>(i)]);
    scores.push_back(score[static_cast<size_t>(i)]);
    types.push_back(type[static_cast<size_t>(i)]);
  }
  check_distinct(tokens, path);
  // What llama.cpp's SentencePiece tokenizer does not do: normalization, and the unigram model's Viterbi search.
  if (model.model_type != spm::kBpe)
    notes.push_back(path + ": a " + std::string(model.model_type == spm::kUnigram ? "unigram" : model.model_type == spm::kWord ? "word" : "char") +
                    " SentencePiece model: llama.cpp's llama tokenizer merges pieces by score as SentencePiece's BPE does, "
                    "so it may split some text differently");
  if (model.has_charsmap || (!model.normalizer_name.empty() && model.normalizer_name != "identity"))
    notes.push_back(path + ": normalizer '" + model.normalizer_name +
                    "': llama.cpp applies no normalization to the text (transformers' Llama tokenizer neither)");
  json out = json::array();
  // tokenizer.ggml.add_space_prefix: tokenizer_config.json's add_prefix_space when it states one (the converter's
  // LlamaModel), else false when the SentencePiece model itself adds no dummy prefix (llama.cpp defaults to true).
  const json aps = get(tc, "add_prefix_space");
  if (aps.is_boolean()) out.push_back(kv("tokenizer.ggml.add_space_prefix", "bool", aps));
  else if (model.add_dummy_prefix_set && !model.add_dummy_prefix) out.push_back(kv("tokenizer.ggml.add_space_prefix", "bool", false));
  out.push_back(kv("tokenizer.ggml.model", "string", "llama"));
  out.push_back(kv("tokenizer.ggml.pre", "string", "default"));
  out.push_back(kv_array("tokenizer.ggml.tokens", "string", tokens));
  out.push_back(kv_array("tokenizer.ggml.scores", "f32", scores));
  out.push_back(kv_array("tokenizer.ggml.token_type", "i32", types));
  const json tj = f.tokenizer_json.empty() ? json() : read_json(f.tokenizer_json, 1ull << 30);
  add_specials(out, f, tj, tc, model_config, n, notes);
  return out;
}

}  // namespace

json tokenizer_kv(const TokenizerFiles &f, const std::string &which, const json &model_config, int64_t vocab_size,
                  std::vector<std::string> &notes) {
  if (which != "auto" && which != "spm" && which != "bpe") bad("--gguf-tokenizer '" + which + "': expected auto, spm, bpe or none");
  if (which == "spm" && f.tokenizer_model.empty()) bad("--gguf-tokenizer spm: the source has no tokenizer.model");
  if (which == "bpe" && f.tokenizer_json.empty()) bad("--gguf-tokenizer bpe: the source has no tokenizer.json");
  const json tc = f.tokenizer_config.empty() ? json::object() : read_json(f.tokenizer_config, 64ull << 20);
  // auto: the SentencePiece model when there is one, as convert_hf_to_gguf.py's set_vocab tries it first for the
  // llama, mistral, qwen2 and qwen3 architectures; else tokenizer.json.
  if (which == "spm") return spm_kv(f, tc, model_config, vocab_size, notes);
  if (which == "auto" && !f.tokenizer_model.empty()) {
    try {
      return spm_kv(f, tc, model_config, vocab_size, notes);
    } catch (const std::invalid_argument &e) {  // e.g. a tiktoken file named tokenizer.model beside a tokenizer.json
      if (f.tokenizer_json.empty()) throw;
      bad(std::string(e.what()) + " (--gguf-tokenizer bpe takes tokenizer.json instead)");
    }
  }
  if (!f.tokenizer_json.empty()) return bpe_kv(f, tc, model_config, vocab_size, notes);
  return json::array();
}

}  // namespace ckh::gguf
