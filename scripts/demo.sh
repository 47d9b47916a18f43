#!/usr/bin/env bash
# The main job on the bundled default model (plugins/model-llama/configs/tiny-llama.json):
# synthesise an HF Llama checkpoint, inspect it, reshard it, cast it to f32, and verify each result
# against the source. Installs missing packages and builds first (idempotent).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ckh_ensure_deps
ckh_build >/dev/null
CK="$CKH_BUILD/bin/ckhost"
MODEL="${1:-$CKH_ROOT/plugins/model-llama/configs/tiny-llama.json}"
W="$CKH_BUILD/demo"
rm -rf "$W"
mkdir -p "$W"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. synthesise an HF Llama checkpoint from $(basename "$MODEL")"
"$CK" synth --model llama --config "$MODEL" "$W/hf" --seed 1 --progress none

step "2. inspect it"
"$CK" inspect "$W/hf" | sed -n '1,5p;/tensors,/p'

step "3. reshard into 1 MB shards (bytes only move: pread and pwrite through a 1 MiB block)"
"$CK" convert "$W/hf" "$W/hf-sharded" --to hf --max-shard-size 1MB --progress none
ls "$W/hf-sharded"

step "4. verify the reshard is bit-exact"
"$CK" verify "$W/hf" "$W/hf-sharded"

step "5. cast to f32 and verify the values are unchanged (bf16 -> f32 is exact)"
"$CK" convert "$W/hf" "$W/hf-f32" --to hf --dtype f32 --progress none
"$CK" verify "$W/hf" "$W/hf-f32" --atol 0

step "6. HF -> Megatron-Core TP2 x PP2 (per-rank model_optim_rng.pt files, loadable by torch.load)"
"$CK" convert "$W/hf" "$W/megatron" --to megatron --tp 2 --pp 2 --progress none
find "$W/megatron" -name model_optim_rng.pt | sort

step "7. Megatron -> HF, and verify the round trip is bit-exact"
"$CK" convert "$W/megatron" "$W/hf-back" --to hf --progress none
"$CK" verify "$W/hf" "$W/hf-back"

step "8. Megatron -> Megatron-Core torch_dist (DCP, stacked layers, 2 data files), then back to HF"
"$CK" convert "$W/megatron" "$W/torch-dist" --to torch-dist --dist-files 2 --progress none
find "$W/torch-dist" -type f | sort
"$CK" convert "$W/torch-dist" "$W/hf-from-dist" --to hf --progress none
"$CK" verify "$W/hf" "$W/hf-from-dist"

step "done: outputs in $W"
