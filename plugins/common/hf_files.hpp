// hf_files.hpp — HF model-directory conventions shared by the in-tree plugins that read or write HF
// checkpoints: which files are weights, which are side files (config, tokenizer, chat templates,
// code, README) to carry to the output, and how a writer carries them.
#pragma once
#include <filesystem>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_writer.h>

namespace ckh::plugins {

// Files that hold weights (or their indexes) in any format; never carried as side files.
bool is_weight_file(const std::string &name);

// The side files of a model directory as metadata "side_files": [{"name", "path"}], sorted by name:
// regular, non-hidden, non-weight files. Throws ckh::sdk::Error when the directory cannot be listed.
nlohmann::json list_side_files(const std::filesystem::path &dir);

// Reader side of formats that keep HF files beside the weights (Megatron layouts, DCP): sets metadata
// "config" (parsed config.json, or null) and "side_files" from options "hf_config" (--hf-config) or
// `default_dir`. A missing default directory is fine; a missing --hf-config directory or a config.json
// that is not a JSON object throws ckh::sdk::Error.
void add_hf_side(nlohmann::json &meta, const nlohmann::json &options, const std::filesystem::path &default_dir);

// Writer side of formats that keep HF files beside the weights: copies every metadata "side_files" entry
// except weights, verbatim, to `<dir>/<name>` (e.g. "hf/tokenizer.json"); when metadata
// "config_modified" is set, `<dir>/config.json` is written from metadata "config" instead of copied.
// Throws ckh::sdk::Error.
void copy_side_files_to(ckh_layout_builder_t *lb, const nlohmann::json &meta, const std::string &dir);

// Writer side: copies every metadata "side_files" entry except weights and names in `written` (files
// the writer lays out itself); config.json is regenerated from metadata "config" when
// "config_modified" is true, or written when there was no config.json file. Throws ckh::sdk::Error.
void carry_side_files(ckh_layout_builder_t *lb, const nlohmann::json &meta, const std::set<std::string> &written);

}  // namespace ckh::plugins
