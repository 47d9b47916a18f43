// internvl_config.cpp — InternVL's two config.json forms (transformers' InternVLConfig and OpenGVLab's
// InternVLChatConfig) read into one Config, and each written from the other.
#include <algorithm>

#include "config_fields.hpp"
#include "internvl_model.hpp"

using nlohmann::json;
namespace cf = ckh::plugins::config;

namespace ckh::internvl {

namespace {

const char *const kTypes[] = {"internvl", "internvl_chat"};
const char *const kArchs[] = {"InternVLForConditionalGeneration", "InternVLChatModel"};

// An int or a [h, w] pair (transformers states image_size and patch_size either way).
void size_pair(const json &v, const char *key, int64_t def, int64_t &h, int64_t &w) {
  if (!cf::present(v, key)) {
    h = w = def;
    return;
  }
  const json &x = v[key];
  if (x.is_array()) {
    if (x.size() != 2) cf::bad(std::string("vision_config '") + key + "' must be an integer or a pair, got " + x.dump());
    const json pair = {{"h", x[0]}, {"w", x[1]}};
    h = cf::need_int(pair, "h");
    w = cf::need_int(pair, "w");
  } else {
    h = w = cf::need_int(v, key);
  }
}

void parse_llm(const json &t, const std::string &llm, Config &c) {
  c.llm = llm;
  c.hidden = cf::need_int(t, "hidden_size");
  c.inter = cf::need_int(t, "intermediate_size");
  c.layers = cf::need_int(t, "num_hidden_layers");
  c.heads = cf::need_int(t, "num_attention_heads");
  c.kv_heads = cf::opt_int(t, "num_key_value_heads", c.heads);
  c.vocab = cf::need_int(t, "vocab_size");
  if (c.heads % c.kv_heads)
    cf::bad("num_attention_heads " + std::to_string(c.heads) + " is not a multiple of num_key_value_heads " + std::to_string(c.kv_heads));
  c.head_dim = cf::opt_int(t, "head_dim", c.hidden / c.heads);
  if (llm == "qwen2") {
    c.qkv_bias = true;
  } else if (llm == "qwen3" || llm == "qwen3_moe") {
    c.qkv_bias = c.o_bias = cf::opt_bool(t, "attention_bias", false);
    c.qk_norm = true;
    if (llm == "qwen3_moe") {
      c.experts = cf::present(t, "num_experts") ? cf::need_int(t, "num_experts") : cf::need_int(t, "num_local_experts");
      c.moe_inter = cf::need_int(t, "moe_intermediate_size");
      c.sparse_step = cf::opt_int(t, "decoder_sparse_step", 1);
      if (cf::present(t, "mlp_only_layers")) {
        if (!t["mlp_only_layers"].is_array()) cf::bad("'mlp_only_layers' must be a list of layer numbers");
        for (const auto &x : t["mlp_only_layers"]) {
          if (!x.is_number_integer() || x.get<int64_t>() < 0) cf::bad("'mlp_only_layers' must be a list of layer numbers");
          c.mlp_only.push_back(x.get<int64_t>());
        }
      }
    }
  } else if (llm == "llama") {
    c.qkv_bias = c.o_bias = cf::opt_bool(t, "attention_bias", false);
    if (cf::opt_bool(t, "mlp_bias", false)) cf::bad("a Llama language model with mlp_bias has no InternVL layout");
  } else {  // internlm2: one flag for wqkv and wo (InternLM2Config's default is true)
    c.qkv_bias = c.o_bias = cf::opt_bool(t, "bias", true);
  }
}

std::string llm_of_arch(const json &t) {
  std::string arch;
  if (cf::present(t, "architectures") && t["architectures"].is_array() && !t["architectures"].empty() && t["architectures"][0].is_string())
    arch = t["architectures"][0].get<std::string>();
  const std::string mt = cf::opt_str(t, "model_type", "");
  if (arch == "Qwen2ForCausalLM" || mt == "qwen2") return "qwen2";
  if (arch == "LlamaForCausalLM" || mt == "llama") return "llama";
  if (arch == "InternLM2ForCausalLM" || mt == "internlm2") return "internlm2";
  if (arch == "Qwen3ForCausalLM" || mt == "qwen3") return "qwen3";
  if (arch == "Qwen3MoeForCausalLM" || mt == "qwen3_moe") return "qwen3_moe";
  cf::bad("the language model '" + (arch.empty() ? mt : arch) +
          "' is not one InternVL's layouts name (Qwen2, Llama, InternLM2, Qwen3, Qwen3-MoE ForCausalLM)");
}

}  // namespace

int score(const json &cfg) noexcept { return ckh::plugins::model::score_by_name(cfg, kTypes, kArchs); }

bool Config::moe_layer(int64_t l) const {
  return experts > 0 && std::find(mlp_only.begin(), mlp_only.end(), l) == mlp_only.end() && (l + 1) % sparse_step == 0;
}

Config parse_config(const json &cfg) {
  if (!cfg.is_object()) cf::bad("not an object");
  Config c;
  const std::string mt = cf::opt_str(cfg, "model_type", "");
  bool chat_arch = false;
  if (cfg.contains("architectures") && cfg["architectures"].is_array())
    for (const auto &a : cfg["architectures"]) chat_arch = chat_arch || (a.is_string() && a.get<std::string>() == kArchs[1]);
  c.custom_form = mt == "internvl_chat" || (mt.empty() && chat_arch);
  if (!cf::present(cfg, "vision_config") || !cfg["vision_config"].is_object()) cf::bad("'vision_config' is missing");
  const json &v = cfg["vision_config"];
  c.v_width = cf::need_int(v, "hidden_size");
  c.v_inter = cf::need_int(v, "intermediate_size");
  c.v_layers = cf::need_int(v, "num_hidden_layers");
  c.v_heads = cf::need_int(v, "num_attention_heads");
  c.v_channels = cf::opt_int(v, "num_channels", 3);
  if (c.v_width % c.v_heads)
    cf::bad("vision hidden_size " + std::to_string(c.v_width) + " is not a multiple of num_attention_heads " + std::to_string(c.v_heads));
  const double ratio = cf::opt_num(cfg, "downsample_ratio", 0.5);
  if (!(ratio > 0 && ratio <= 1)) cf::bad("'downsample_ratio' must be in (0, 1], got " + std::to_string(ratio));
  c.shuffle = static_cast<int64_t>(1.0 / ratio);  // the projector's int(1 / downsample_ratio)
  if (c.shuffle < 1 || c.shuffle > 64) cf::bad("'downsample_ratio' " + std::to_string(ratio) + " gives no pixel-shuffle factor");
  if (c.custom_form) {
    // InternVisionConfig's defaults: qkv_bias false, rms_norm, no q/k norm; image_size 224 unless forced.
    size_pair(v, "image_size", cf::opt_int(cfg, "force_image_size", 224), c.v_img_h, c.v_img_w);
    if (cf::present(cfg, "force_image_size")) c.v_img_h = c.v_img_w = cf::need_int(cfg, "force_image_size");
    size_pair(v, "patch_size", 14, c.v_patch_h, c.v_patch_w);
    c.v_qkv_bias = cf::opt_bool(v, "qkv_bias", false);
    c.v_qk_norm = cf::opt_bool(v, "qk_normalization", false);
    c.v_rms = cf::opt_str(v, "norm_type", "rms_norm") == "rms_norm";
    if (!cf::present(cfg, "llm_config") || !cfg["llm_config"].is_object()) cf::bad("'llm_config' is missing");
    const json &t = cfg["llm_config"];
    parse_llm(t, llm_of_arch(t), c);
    c.tied = cf::opt_bool(t, "tie_word_embeddings", cf::opt_bool(cfg, "tie_word_embeddings", false));
    c.dtype = cf::model_dtype(cf::present(cfg, "torch_dtype") || cf::present(cfg, "dtype") ? cfg : t);
  } else {
    size_pair(v, "image_size", 448, c.v_img_h, c.v_img_w);
    size_pair(v, "patch_size", 14, c.v_patch_h, c.v_patch_w);
    c.v_qkv_bias = cf::opt_bool(v, "attention_bias", false);
    c.v_qk_norm = cf::opt_bool(v, "use_qk_norm", false);
    const std::string nt = cf::opt_str(v, "norm_type", "layer_norm");
    if (nt != "layer_norm" && nt != "rms_norm") cf::bad("vision_config 'norm_type' must be layer_norm or rms_norm, got " + nt);
    c.v_rms = nt == "rms_norm";
    c.v_mean_pool = cf::opt_bool(v, "use_mean_pooling", true);
    c.v_mask_token = cf::opt_bool(v, "use_mask_token", false);
    c.v_abs_pos = cf::opt_bool(v, "use_absolute_position_embeddings", true);
    if (!cf::present(cfg, "text_config") || !cfg["text_config"].is_object()) cf::bad("'text_config' is missing");
    const json &t = cfg["text_config"];
    const std::string tm = cf::opt_str(t, "model_type", "");
    if (tm != "qwen2" && tm != "llama" && tm != "qwen3" && tm != "qwen3_moe")
      cf::bad("text_config model_type '" + tm + "': InternVL's layouts name a qwen2, llama, qwen3 or qwen3_moe language model");
    parse_llm(t, tm, c);
    c.tied = cf::opt_bool(cfg, "tie_word_embeddings", true);  // InternVLConfig's default
    c.dtype = cf::model_dtype(cf::present(cfg, "torch_dtype") || cf::present(cfg, "dtype") ? cfg : t);
  }
  if (c.v_img_h % c.v_patch_h || c.v_img_w % c.v_patch_w) cf::bad("the vision image_size is not a multiple of patch_size");
  return c;
}

namespace {

// transformers' and InternLM2's configs both carry these as they are.
const char *const kLlmShared[] = {"hidden_size",  "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                  "num_key_value_heads", "vocab_size", "rms_norm_eps", "max_position_embeddings",
                                  "hidden_act",   "bos_token_id",      "eos_token_id",      "pad_token_id",
                                  "initializer_range"};

void copy_keys(const json &from, json &to) {
  for (const char *k : kLlmShared)
    if (from.contains(k)) to[k] = from[k];
}

// InternLM2's rope_theta / rope_scaling {"type", "factor"} -> transformers' rope_parameters.
json rope_parameters_of(const json &t) {
  json r = {{"rope_type", "default"}, {"rope_theta", t.value("rope_theta", json(10000.0))}};
  if (t.contains("rope_scaling") && t["rope_scaling"].is_object()) {
    const json &s = t["rope_scaling"];
    const std::string type = s.value("type", s.value("rope_type", std::string("default")));
    if (type != "dynamic" && type != "linear" && type != "default")
      cf::bad("llm_config rope_scaling type '" + type + "' has no Llama equivalent");
    r["rope_type"] = type;
    if (s.contains("factor")) r["factor"] = s["factor"];
  }
  return r;
}

json dtype_of(const json &src) {
  if (src.contains("torch_dtype")) return src["torch_dtype"];
  if (src.contains("dtype")) return src["dtype"];
  return "bfloat16";
}

}  // namespace

json hf_config(const Config &c, const json &src) {
  const json &v = src.at("vision_config");
  const json &t = src.at("llm_config");
  json text;
  if (c.llm == "internlm2") {
    text = {{"model_type", "llama"}, {"attention_bias", c.qkv_bias}, {"mlp_bias", false}, {"head_dim", c.head_dim}};
    copy_keys(t, text);
    text["rope_parameters"] = rope_parameters_of(t);
  } else {
    text = t;
    for (const char *k : {"architectures", "auto_map", "_name_or_path", "transformers_version", "torch_dtype", "dtype"}) text.erase(k);
    text["model_type"] = c.llm;
  }
  text["tie_word_embeddings"] = c.tied;
  json vision = {{"model_type", "internvl_vision"},
                 {"hidden_size", c.v_width},
                 {"intermediate_size", c.v_inter},
                 {"num_hidden_layers", c.v_layers},
                 {"num_attention_heads", c.v_heads},
                 {"num_channels", c.v_channels},
                 {"image_size", {c.v_img_h, c.v_img_w}},
                 {"patch_size", {c.v_patch_h, c.v_patch_w}},
                 {"attention_bias", c.v_qkv_bias},
                 {"use_qk_norm", c.v_qk_norm},
                 {"norm_type", c.v_rms ? "rms_norm" : "layer_norm"},
                 {"layer_norm_eps", v.value("layer_norm_eps", json(1e-6))},
                 {"hidden_act", v.value("hidden_act", json("gelu"))},
                 {"use_mean_pooling", true},
                 {"use_mask_token", false},
                 {"use_absolute_position_embeddings", true}};
  if (!src.contains("image_token_id") || !src["image_token_id"].is_number_integer())
    cf::bad("InternVLChatConfig has no 'image_token_id' (the <IMG_CONTEXT> token id transformers' config needs): give it with "
            "--option internvl_image_token_id=N");
  const int64_t per_side_h = c.v_img_h / c.v_patch_h / c.shuffle, per_side_w = c.v_img_w / c.v_patch_w / c.shuffle;
  json out = {{"architectures", {"InternVLForConditionalGeneration"}},
              {"model_type", "internvl"},
              {"downsample_ratio", src.value("downsample_ratio", json(0.5))},
              {"image_token_id", src["image_token_id"]},
              {"image_seq_length", per_side_h * per_side_w},
              {"projector_hidden_act", "gelu"},
              {"vision_feature_layer", src.value("select_layer", json(-1))},
              {"vision_feature_select_strategy", "default"},
              {"tie_word_embeddings", c.tied},
              {"dtype", dtype_of(src)},
              {"text_config", text},
              {"vision_config", vision}};
  return out;
}

json custom_config(const Config &c, const json &src, bool internlm2) {
  const json &v = src.at("vision_config");
  const json &t = src.at("text_config");
  if (c.v_img_h != c.v_img_w || c.v_patch_h != c.v_patch_w)
    cf::bad("InternVLChatConfig states one image_size and one patch_size: this model's are not square");
  if (!c.v_mean_pool || c.v_mask_token || !c.v_abs_pos)
    cf::bad("the vision tower has a final layernorm, a mask token or no absolute position embedding: InternViT has none of these");
  if (src.value("projector_hidden_act", std::string("gelu")) != "gelu")
    cf::bad("projector_hidden_act '" + src["projector_hidden_act"].get<std::string>() + "': InternVL's mlp1 uses gelu");
  if (src.value("vision_feature_select_strategy", std::string("default")) != "default")
    cf::bad("vision_feature_select_strategy 'full' has no InternVLChatConfig field");
  json llm;
  if (internlm2) {
    if (c.llm != "llama") cf::bad("InternLM2 names need a llama language model, this one is " + c.llm);
    if (c.qkv_bias != c.o_bias) cf::bad("InternLM2 has one bias flag for wqkv and wo");
    llm = {{"architectures", {"InternLM2ForCausalLM"}}, {"model_type", "internlm2"}, {"bias", c.qkv_bias}, {"attn_implementation", "eager"}};
    copy_keys(t, llm);
    const json rp = t.value("rope_parameters", json::object());
    llm["rope_theta"] = rp.value("rope_theta", t.value("rope_theta", json(10000.0)));
    const std::string rt = rp.value("rope_type", std::string("default"));
    if (rt == "default") llm["rope_scaling"] = nullptr;
    else if (rt == "dynamic" || rt == "linear") llm["rope_scaling"] = {{"type", rt}, {"factor", rp.value("factor", json(1.0))}};
    else cf::bad("text_config rope_type '" + rt + "' has no InternLM2 equivalent");
    if (t.value("head_dim", c.head_dim) != c.hidden / c.heads) cf::bad("InternLM2 has no head_dim other than hidden_size / heads");
  } else {
    llm = t;
    const char *arch = c.llm == "qwen2" ? "Qwen2ForCausalLM" : c.llm == "qwen3" ? "Qwen3ForCausalLM" : c.llm == "qwen3_moe" ? "Qwen3MoeForCausalLM" : "LlamaForCausalLM";
    llm["architectures"] = {arch};
  }
  llm["tie_word_embeddings"] = c.tied;
  llm["torch_dtype"] = dtype_of(src);
  json vision = {{"architectures", {"InternVisionModel"}},
                 {"model_type", "intern_vit_6b"},
                 {"hidden_size", c.v_width},
                 {"intermediate_size", c.v_inter},
                 {"num_hidden_layers", c.v_layers},
                 {"num_attention_heads", c.v_heads},
                 {"num_channels", c.v_channels},
                 {"image_size", c.v_img_h},
                 {"patch_size", c.v_patch_h},
                 {"qkv_bias", c.v_qkv_bias},
                 {"qk_normalization", c.v_qk_norm},
                 {"norm_type", c.v_rms ? "rms_norm" : "layer_norm"},
                 {"layer_norm_eps", v.value("layer_norm_eps", json(1e-6))},
                 {"hidden_act", v.value("hidden_act", json("gelu"))},
                 {"drop_path_rate", 0.0},
                 {"dropout", 0.0},
                 {"attention_dropout", 0.0},
                 {"initializer_factor", 1.0},
                 {"use_flash_attn", false},
                 {"torch_dtype", dtype_of(src)}};
  json out = {{"architectures", {"InternVLChatModel"}},
              {"model_type", "internvl_chat"},
              {"downsample_ratio", src.value("downsample_ratio", json(0.5))},
              {"select_layer", src.value("vision_feature_layer", json(-1))},
              {"force_image_size", c.v_img_h},
              {"ps_version", "v2"},
              {"dynamic_image_size", true},
              {"use_thumbnail", true},
              {"max_dynamic_patch", 12},
              {"min_dynamic_patch", 1},
              {"use_backbone_lora", 0},
              {"use_llm_lora", 0},
              {"tie_word_embeddings", c.tied},
              {"torch_dtype", dtype_of(src)},
              {"vision_config", vision},
              {"llm_config", llm}};
  if (src.contains("image_token_id")) out["image_token_id"] = src["image_token_id"];  // read back by hf_config
  return out;
}

}  // namespace ckh::internvl
