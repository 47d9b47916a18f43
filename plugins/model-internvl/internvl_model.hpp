// internvl_model.hpp — InternVL 2.5/3 (InternViT vision tower, pixel-shuffle MLP projector, Qwen2 / Llama /
// InternLM2 language model) under its three namings:
//   hf      transformers' InternVLForConditionalGeneration as save_pretrained writes it (5.x):
//           vision_tower.embeddings.{cls_token, patch_embeddings.projection, position_embeddings},
//           vision_tower.encoder.layer.N.{attention.{q,k,v}_proj, attention.projection_layer, attention.{q,k}_norm,
//           layernorm_before/after, lambda_1/2, mlp.fc1/fc2}, multi_modal_projector.{layer_norm, linear_1, linear_2},
//           language_model.model.*, language_model.lm_head (the canonical form; the in-memory names
//           model.vision_tower.* / model.language_model.* / lm_head of transformers 4.52+ are read too)
//   custom  OpenGVLab's InternVLChatModel ("chat" layout): vision_model.embeddings.{class_embedding,
//           patch_embedding, position_embedding}, vision_model.encoder.layers.N.{attn.qkv = [Q; K; V], attn.proj,
//           attn.{q,k}_norm, norm1/norm2, ls1/ls2, mlp.fc1/fc2}, mlp1.{0,1,3}; the LLM as Qwen2/Llama
//           (language_model.model.*, language_model.lm_head) or InternLM2 (tok_embeddings, attention.wqkv grouped
//           per key-value head as [q heads of the group; k; v], attention.wo, attention_norm, ffn_norm,
//           feed_forward.w1/w3/w2, output)
//   mm      MindSpeed-MM's (checkpoint/vlm_model/converters/internvl.py): image_encoder.encoder.embeddings.*,
//           image_encoder.encoder.encoder.layers.N.{self_attention.linear_qkv = [Q; K; V], linear_proj,
//           q_layernorm/k_layernorm, input_layernorm, pre_mlp_layernorm, mlp.linear_fc1/fc2, ls1, ls2},
//           image_encoder.projector.{norm, linear_fc1, linear_fc2}, text_decoder.* as Megatron-Core (qkv fused per
//           query group, [gate; up])
// (names checked against transformers 5.24's modeling_internvl.py, InternVL's internvl_chat/tools/
// internvl_custom2hf.py rules and transformers' convert_internvl_weights_to_hf.py for InternLM2).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/cpp/ckh_plugin.hpp>

#include "model_check.hpp"

namespace ckh::internvl {

enum class Naming { Hf, HfInMemory, Custom, CustomInternLM2, Mm };

struct Config {
  bool custom_form = false;  // config.json is InternVLChatConfig (model_type internvl_chat)
  // vision tower (InternViT)
  int64_t v_width = 0, v_inter = 0, v_layers = 0, v_heads = 0, v_channels = 3, v_img_h = 448, v_img_w = 448, v_patch_h = 14,
          v_patch_w = 14;
  bool v_qkv_bias = true, v_qk_norm = false, v_rms = false, v_mean_pool = true, v_mask_token = false, v_abs_pos = true;
  // projector: LayerNorm and Linear over the pixel-shuffled width v_width * (1/downsample_ratio)^2
  int64_t shuffle = 2;
  // language model
  // qwen2 | llama | internlm2 (the custom config's LLM; canonically a llama) | qwen3 | qwen3_moe (InternVL3.5)
  std::string llm = "qwen2";
  int64_t hidden = 0, inter = 0, layers = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0;
  bool qkv_bias = false, o_bias = false, tied = false;
  bool qk_norm = false;  // Qwen3: per-head q/k RMSNorm
  // Qwen3-MoE: layers whose MLP is a router and experts (mlp.gate, mlp.experts.E.{gate,up,down}_proj)
  int64_t experts = 0, moe_inter = 0, sparse_step = 1;
  std::vector<int64_t> mlp_only;
  bool moe_layer(int64_t l) const;
  ckh_dtype dtype = CKH_DT_BF16;
  int64_t proj_width() const { return v_width * shuffle * shuffle; }
  int64_t v_positions() const { return (v_img_h / v_patch_h) * (v_img_w / v_patch_w) + 1; }
};

// Either form of config.json (InternVLConfig or InternVLChatConfig). Throws std::invalid_argument naming the field.
Config parse_config(const nlohmann::json &cfg);
// 90 for model_type internvl / internvl_chat, 80 for their architectures, else 0. Never throws.
int score(const nlohmann::json &cfg) noexcept;

// The config.json of the other form, from `src` (whose fields the new form keeps where it has them).
// Throws std::invalid_argument when the target form cannot state the model.
nlohmann::json hf_config(const Config &c, const nlohmann::json &src);
nlohmann::json custom_config(const Config &c, const nlohmann::json &src, bool internlm2);

struct Tensor {
  std::string name;  // hf naming
  std::vector<int64_t> shape;
  int32_t role = CKH_ROLE_OTHER;
  int32_t layer = -1;
  int32_t stack = 0;  // 1: the vision tower and projector (their own pipeline distribution), 0: the LLM
  int32_t init = CKH_INIT_NORMAL;
  int32_t kind = CKH_KIND_UNSTATED;
  int32_t expert = -1;  // global expert index of an expert weight
};
// Every tensor of the model in hf names, in module order (vision tower, projector, LLM).
std::vector<Tensor> canonical_tensors(const Config &c);

struct Value {
  Tensor t;
  ckh_expr e;
};

// The naming of a checkpoint's tensors, from its keys; throws ckh::sdk::Error when none matches.
Naming detect_naming(const ckh::sdk::Builder &b);
// Every canonical tensor as an expression over the checkpoint in naming `n`; each source tensor the naming
// implies must be present with its shape (one-line errors naming the tensor).
std::vector<Value> read_canonical(ckh::sdk::Builder &b, const Config &c, Naming n);
// Emits the model in naming `n` (hf, custom or custom-internlm2), annotated for later stages. `merged_experts`:
// each MoE layer's experts as MindSpeed-MM's ExpertMergeDcpConverter stacks them for FSDP2:
// mlp.experts.gate_up_proj [E, H, 2I] = stack_e([gate_e; up_e]^T), mlp.experts.down_proj [E, I, H] = stack_e(down_e^T).
void write_named(ckh::sdk::Builder &b, const Config &c, Naming n, const std::vector<Value> &v, bool merged_experts = false);
// Emits the model in MindSpeed-MM's names with its TP splits and pipeline places.
void write_mm(ckh::sdk::Builder &b, const Config &c, const std::vector<Value> &v);
// The Megatron reader's merge hints for a MindSpeed-MM InternVL checkpoint.
std::string mm_reader_hints();

const char *naming_name(Naming n);

}  // namespace ckh::internvl
