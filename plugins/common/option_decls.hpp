// option_decls.hpp — the option declarations (SDK 1.1 capabilities "options", see
// host/include/ckhost/host/options.hpp) that several in-tree components share, as JSON string
// literals so a component's capabilities stay one compile-time constant:
//     R"({"layout":"megatron","options":[)" CKH_OPT_TP "," CKH_OPT_PP "]}"
// One declaration per option keeps the spelling, type and help identical wherever it is accepted.
#pragma once

// HF side files of training layouts (Megatron, torch_dist, DCP readers).
#define CKH_OPT_HF_CONFIG                                                                                  \
  R"J({"name":"hf-config","type":"string","group":"HF side files","help":"directory with the HF )J"         \
  R"J(config.json and tokenizer files (default: the checkpoint's own hf/ or DCP directory)"})J"

// Sharded HF-style outputs (safetensors, torch).
#define CKH_OPT_MAX_SHARD_SIZE                                                                             \
  R"J({"name":"max-shard-size","type":"size","default":"5GB","group":"output files",)J"                    \
  R"J("help":"largest output shard, e.g. 5GB, 500MB, 2GiB"})J"

// Megatron parallel layouts (legacy per-rank files and torch_dist).
#define CKH_OPT_TP R"J({"name":"tp","type":"uint","default":1,"group":"megatron","help":"tensor-parallel size"})J"
#define CKH_OPT_PP R"J({"name":"pp","type":"uint","default":1,"group":"megatron","help":"pipeline-parallel size"})J"
#define CKH_OPT_EP \
  R"J({"name":"ep","type":"uint","default":1,"group":"megatron","help":"expert-parallel size (whole experts per EP rank)"})J"
#define CKH_OPT_ETP                                                                                        \
  R"J({"name":"etp","type":"uint","group":"megatron",)J"                                                  \
  R"J("help":"expert tensor-parallel size (the split inside one expert; default: --tp)"})J"
#define CKH_OPT_VPP \
  R"J({"name":"vpp","type":"uint","default":1,"group":"megatron","help":"virtual pipeline chunks per stage"})J"
#define CKH_OPT_PP_LAYERS                                                                                  \
  R"J({"name":"pp-layers","type":"string","group":"megatron",)J"                                          \
  R"J("help":"uneven pipeline stages: layers per stage, e.g. 3,2,2"})J"
#define CKH_OPT_STACK_PP_LAYERS                                                                            \
  R"J({"name":"stack-pp-layers","type":"string","group":"megatron",)J"                                    \
  R"J("help":"layers per pipeline stage of each tower beside the decoder (annotation stack), e.g. 1=32,0,0,0"})J"
#define CKH_OPT_VOCAB_DIVISIBLE                                                                            \
  R"J({"name":"make-vocab-size-divisible-by","type":"uint","default":128,"group":"megatron",)J"            \
  R"J("help":"vocabulary padding multiple per TP rank"})J"
#define CKH_OPT_VOCAB_PAD                                                                                  \
  R"J({"name":"vocab-pad","type":"string","default":"zeros","choices":["zeros","repeat"],"group":"megatron",)J" \
  R"J("help":"padding rows: zeros, or repeat the last row"})J"
#define CKH_OPT_ITERATION                                                                                  \
  R"J({"name":"iteration","type":"int","group":"megatron","help":"write iter_NNNNNNN instead of release"})J"
#define CKH_OPT_MOE_GROUPED_GEMM                                                                           \
  R"J({"name":"moe-grouped-gemm","type":"bool","group":"megatron",)J"                                     \
  R"J("help":"MoE experts as TEGroupedMLP (experts.linear_fc1.weight<e>) instead of SequentialMLP (local_experts.<e>)"})J"
#define CKH_OPT_MEGATRON_SPEC                                                                              \
  R"J({"name":"megatron-spec","type":"string","default":"te","choices":["te","local","legacy"],)J"         \
  R"J("group":"megatron","help":"layer names: Transformer Engine, local (Megatron-Core modules) or legacy"})J"

// Distributed checkpoints (torch_dist and DCP).
#define CKH_OPT_DIST_FILES                                                                                 \
  R"J({"name":"dist-files","type":"uint","default":1,"group":"distributed checkpoint",)J"                  \
  R"J("help":"data files (__0_<n>.distcp) to spread the chunks over"})J"
#define CKH_OPT_DCP_TORCH                                                                                  \
  R"J({"name":"dcp-torch","type":"string","default":"2","choices":["2","1.13"],"group":"distributed checkpoint",)J" \
  R"J("help":"class paths in .metadata: torch.distributed.checkpoint (2) or torch 1.13's"})J"
#define CKH_OPT_DCP_LAYOUT                                                                                 \
  R"J({"name":"dcp-layout","type":"string","default":"plain","choices":["plain","mindspeed"],"group":"distributed checkpoint",)J" \
  R"J("help":"dcp: plain (.metadata at the top) or mindspeed (MindSpeed-MM's FSDP2 layout: latest_checkpointed_iteration.txt, release/ with the DCP files, keys model.model.<HF name>, a checkpoint_version entry, fused 3-D experts viewed 2-D)"})J"
#define CKH_OPT_DCP_PREFIX                                                                                 \
  R"J({"name":"dcp-prefix","type":"string","group":"distributed checkpoint",)J"                            \
  R"J("help":"dcp: key prefix of the HF names, e.g. model. (writing: add it; reading: strip it)"})J"
