// graph.hpp — the lazy plan: source tensors, expression nodes, stages and the output layout.
//
// A conversion builds one Graph. Stage 0 is the reader's catalog (one Source node per tensor); each
// mapper adds a stage whose tensors are nodes over the previous stage's; the writer then lays out
// files whose regions are nodes. Nothing is evaluated until the executor runs the layout.
#pragma once
#include <array>
#include <deque>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include <ckhost/ckh_expr.h>
#include <ckhost/ckh_quantizer.h>
#include <ckhost/ckh_writer.h>

namespace ckh::host {

struct Shape {
  uint32_t ndim = 0;
  std::array<int64_t, CKH_MAX_DIMS> d{};
  int64_t numel() const {
    int64_t n = 1;
    for (uint32_t i = 0; i < ndim; ++i) n *= d[i];
    return n;
  }
  bool operator==(const Shape &o) const {
    if (ndim != o.ndim) return false;
    for (uint32_t i = 0; i < ndim; ++i)
      if (d[i] != o.d[i]) return false;
    return true;
  }
  bool operator!=(const Shape &o) const { return !(*this == o); }
  std::string str() const;  // "[2048, 5632]"
};

std::string dtype_name(ckh_dtype dt);          // "BF16", "F32", ...

// Block-quantized dtypes (ckh_dtype_traits) inside the host: a node or source of a block dtype keeps its
// shape in storage units, the last dim counted in blocks of block_elems(dt) elements, each
// storage_size(dt) bytes. All host byte arithmetic (views, pieces, layouts) then works unchanged; the
// builders convert to and from the element shapes plugins see (logical_shape / storage_shape).
uint32_t storage_size(ckh_dtype dt);  // bytes per element (plain) or per block (block types); 0 unknown
uint32_t block_elems(ckh_dtype dt);   // 1 for plain dtypes
ckh_dtype dtype_from_name(const std::string &s);  // accepts "bf16", "BF16", "bfloat16", ...; INVALID if unknown

// Element shape of a storage shape, and back (throws naming `what` when the last dim does not divide).
Shape logical_shape(ckh_dtype dt, const Shape &storage);
Shape storage_shape(ckh_dtype dt, const Shape &logical, const std::string &what);

// One rectangular part of a source tensor in a file (see ckh_piece_t).
struct Piece {
  uint32_t file = 0;  // index into Graph::files
  uint64_t byte_offset = 0;
  std::array<int64_t, CKH_MAX_DIMS> offset{}, size{}, stride{};  // stride in elements, row-major filled in
};

// Deterministic pseudo-random content for `ckhost synth`.
struct Generator {
  uint64_t seed = 0;
  int32_t init = CKH_INIT_NORMAL;
};

// What a source tensor is to a quantization scheme. Codes (FP8 dtypes, or a reader's "codes"
// annotation) and their scales are only meaningful together: until pairs are first-class (SDK 1.1),
// the host lets them through only unchanged (see check_quantized in chain.hpp).
enum class QuantRole { None, Codes, Scale };

struct Source {
  std::string name;
  ckh_dtype dtype = CKH_DT_INVALID;
  Shape shape;
  std::vector<Piece> pieces;
  bool generated = false;
  Generator gen;
  QuantRole quant = QuantRole::None;
  std::string quant_pair;  // the scales of codes, or the codes of a scale ("" when unknown)
  std::array<int64_t, 2> quant_block{};  // codes: the block of its scales, rows x cols, when the reader said ({0, 0} when not)
};

enum class Op { Source, Slice, Concat, Reshape, Permute, Pad, Cast, Scale, Quantize };

// The scales of a block-quantized codes node (see pairs.hpp): the scale node holds one value per block,
// block[d] elements of dim d of the codes (1 for dims that are not blocked), so that scale dim d is
// ceil(codes dim d / block[d]). `suffix` names the scales after the codes ("_scale_inv").
struct PairInfo {
  int32_t scale = -1;
  std::array<int64_t, CKH_MAX_DIMS> block{};
  std::string suffix;
};

// One input or output of a prepared quantizer (ckh_quant_port_t), shapes in storage units.
struct QuantPort {
  int64_t rows_per_block = 0;  // 0: whole in every call (inputs only)
  ckh_dtype dtype = CKH_DT_INVALID;
  Shape shape;
  std::string name;  // outputs: the suffix the quantizer gave
};

// A prepared quantizer over fixed inputs. Every Quantize node of the same (inputs, id, params) refers
// to one Quant, so its outputs come from the same calls (see Evaluator).
struct Quant {
  const ckh_quantizer_class_t *cls = nullptr;
  void *state = nullptr;
  bool v11 = false;               // prepare_n/port/quantize_n; else the 1.0 prepare/quantize pair
  ckh_quant_layout_t layout{};    // 1.0 only
  std::string id;
  const std::string *params = nullptr;  // interned in Graph::param_texts (quantizer params repeat a config)
  std::vector<int32_t> inputs;    // input nodes, already in the ports' dtypes
  std::vector<QuantPort> in, out;
  int64_t n_blocks = 0;
  uint64_t extra_bytes_per_block = 0;
  std::string info;               // ckh_quant_desc_t.info_json ("" when none)
  // Bytes of the inputs' and outputs' rows per block (ports with rows_per_block 0 not included).
  uint64_t bytes_per_block() const;
};

struct Node {
  Op op = Op::Source;
  ckh_dtype dtype = CKH_DT_INVALID;
  Shape shape;
  std::vector<int32_t> in;  // operand nodes
  int32_t source = -1;      // Op::Source
  uint32_t dim = 0;         // Slice, Concat, Pad
  int64_t start = 0;        // Slice start, Pad before
  int64_t length = 0;       // Slice length, Pad after
  int32_t mode = 0;         // Pad mode
  std::array<uint32_t, CKH_MAX_DIMS> perm{};  // Permute
  double factor = 1.0;      // Scale
  int32_t quant = -1;       // Quantize: index into Graph::quants
  uint32_t output = 0;      // Quantize output
};

struct Annot {
  int32_t role = CKH_ROLE_OTHER, layer = -1, expert = -1, parallel = CKH_PARALLEL_UNSTATED, split_dim = -1,
          init = CKH_INIT_NORMAL, group = CKH_GROUP_TP, stack = 0, kind = CKH_KIND_UNSTATED;
  std::string extra_json;
  static Annot from(const ckh_tensor_annot_t *a);
  void to(ckh_tensor_annot_t *a) const;  // a->struct_size must be set; fills what fits
};

// A named tensor of a stage.
struct StageTensor {
  std::string name;
  int32_t node = -1;
  Annot annot;
};

struct Stage {
  std::string producer;  // "reader hf", "mapper llama", "cast"
  std::vector<StageTensor> tensors;
  std::unordered_map<std::string, size_t> index;
  std::map<std::string, std::string> ignored;  // name -> reason (set by the NEXT stage's builder)
  nlohmann::json metadata;
  void add(StageTensor t);  // throws on a duplicate name
};

// What a writer laid out.
struct Region {
  int32_t file = -1;
  uint64_t offset = 0;
  int32_t node = -1;
  uint32_t flags = 0;
  uint64_t bytes = 0;
};
// Literal byte runs of an output file (headers), kept in one buffer: a rank file of a large model has
// hundreds of small zip headers, and a string each would cost more than the bytes.
class Blobs {
 public:
  struct Ref {
    uint64_t first;           // offset in the file
    std::string_view second;  // the bytes
  };
  void add(uint64_t offset, const void *data, size_t len) {
    at_.push_back({offset, bytes_.size()});
    // Grown by an eighth, not doubled: the buffers of thousands of rank files are alive at once.
    if (bytes_.size() + len > bytes_.capacity()) bytes_.reserve(bytes_.size() + len + bytes_.size() / 8 + 256);
    if (len) bytes_.append(static_cast<const char *>(data), len);
  }
  void push_back(const std::pair<uint64_t, std::string> &b) { add(b.first, b.second.data(), b.second.size()); }
  size_t size() const { return at_.size(); }
  bool empty() const { return at_.empty(); }
  Ref operator[](size_t i) const {
    const size_t end = i + 1 < at_.size() ? at_[i + 1].pos : bytes_.size();
    return {at_[i].offset, std::string_view(bytes_).substr(at_[i].pos, end - at_[i].pos)};
  }
  class iterator {
   public:
    iterator(const Blobs *b, size_t i) : b_(b), i_(i) {}
    Ref operator*() const { return (*b_)[i_]; }
    iterator &operator++() {
      ++i_;
      return *this;
    }
    bool operator!=(const iterator &o) const { return i_ != o.i_; }

   private:
    const Blobs *b_;
    size_t i_;
  };
  iterator begin() const { return {this, 0}; }
  iterator end() const { return {this, at_.size()}; }

 private:
  struct At {
    uint64_t offset, pos;
  };
  std::vector<At> at_;
  std::string bytes_;
};

struct OutFile {
  std::string relpath;
  uint64_t size = 0;
  Blobs blobs;  // literal bytes
  bool small = false;   // whole content in blobs[0]
  std::string copy_from;  // non-empty: copied verbatim from this path
};
struct Layout {
  std::vector<OutFile> files;
  std::vector<Region> regions;
  std::unordered_map<std::string, int32_t> by_path;  // relpath -> index into files
};

class Registry;

class Graph {
 public:
  explicit Graph(const Registry *registry = nullptr) : registry_(registry) {}
  ~Graph();
  Graph(const Graph &) = delete;
  Graph &operator=(const Graph &) = delete;

  std::vector<std::string> files;  // absolute paths of source files
  std::vector<Source> sources;
  // Hash-consed: a node structurally equal to an existing one (same op, dtype, shape, parameters and
  // operand ids) is that node, so equal expressions have equal handles and a weight a writer cuts the
  // same way for hundreds of rank files is one node (push).
  std::vector<Node> nodes;
  std::deque<Quant> quants;        // deque: stable addresses
  std::map<std::string, int32_t> quant_index;  // (id, params id, inputs) -> index into quants
  std::unordered_map<std::string, uint32_t> param_texts;  // quantizer params -> id (node-based: stable keys)
  std::deque<Stage> stages;  // deque: builders hold references across push_back
  // Codes node -> its scales: seeded from the reader's pairs, extended by lift_pair (pairs.hpp).
  std::unordered_map<int32_t, PairInfo> pairs;
  std::unordered_map<int32_t, std::string> pair_failures;  // codes node -> why it cannot be lifted
  Layout layout;

  // Node constructors; each validates and throws ckh::host::Error with a precise message.
  int32_t source_node(int32_t source);
  int32_t slice(int32_t e, uint32_t dim, int64_t start, int64_t length);
  int32_t concat(const std::vector<int32_t> &parts, uint32_t dim);
  int32_t reshape(int32_t e, const Shape &shape);
  int32_t permute(int32_t e, const std::vector<uint32_t> &perm);
  int32_t pad(int32_t e, uint32_t dim, int64_t before, int64_t after, int32_t mode);
  int32_t cast(int32_t e, ckh_dtype to);
  int32_t scale(int32_t e, double factor);
  int32_t quantize(int32_t e, const std::string &id, const std::string &params, uint32_t output);
  // Output `output` of quantizer `id` over `inputs` (SDK 1.1 quantize_n); prepares it once per
  // (inputs, id, params). 1.0 quantizers take exactly one input, handed over as f32.
  int32_t quantize_n(const std::vector<int32_t> &inputs, const std::string &id, const std::string &params,
                     uint32_t output);

  const Node &node(int32_t e) const;
  uint64_t node_bytes(int32_t e) const;
  Shape logical(int32_t e) const { return logical_shape(node(e).dtype, node(e).shape); }
  std::string describe(int32_t e, int depth = 0) const;  // human-readable expression

  // Adds a stage built from a reader's catalog (also registers the files and sources).
  Stage &add_stage(const std::string &producer);

 private:
  int32_t push(Node n);
  const Registry *registry_;
  // Open addressing over `nodes`: (hash >> 32) << 32 | (id + 1) per slot, 0 empty; at most half full.
  std::vector<uint64_t> intern_;
  size_t interned_ = 0;
};

// The C builder handed to mappers (mode Mapper) and writers (mode Writer). It reads the inputs from
// `in` and, for a mapper, fills `out`.
class BuilderImpl {
 public:
  BuilderImpl(Graph &g, Stage &in, Stage *out, std::string who);
  ckh_expr_builder_t *c() { return &vt_; }
  // Turns a failed builder call into an exception with the recorded message.
  Graph &graph() { return g_; }
  Stage &in() { return in_; }
  Stage *out() { return out_; }
  const std::string &who() const { return who_; }
  bool metadata_set = false;
  nlohmann::json metadata;

 private:
  ckh_expr_builder_t vt_{};
  Graph &g_;
  Stage &in_;
  Stage *out_;
  std::string who_;
};

// The C layout builder handed to writers.
class LayoutBuilderImpl {
 public:
  LayoutBuilderImpl(Graph &g, Stage &in, std::string who);
  ckh_layout_builder_t *c() { return &vt_; }
  BuilderImpl &expr() { return expr_; }
  Graph &graph() { return g_; }
  const std::string &who() const { return who_; }

 private:
  ckh_layout_builder_t vt_{};
  Graph &g_;
  BuilderImpl expr_;
  std::string who_;
};

// Checks the layout: paths, sizes, overlaps. Throws on the first problem.
void validate_layout(const Graph &g);

// Names of stage `stage`'s tensors that no tensor of the last stage depends on (and that the next
// stage did not ignore).
std::vector<std::string> unused_tensors(const Graph &g, size_t stage);

// Every tensor of every stage must reach the layout or be ignored by the next stage. Throws listing
// the stragglers (the first stage's are "unexpected tensors").
void check_consumption(const Graph &g);

}  // namespace ckh::host
