// The ggml quantizer's numbers and mix rules without llama.cpp at hand (plugins/quant-ggml/ggml_blocks.cpp and
// ggml_mix.cpp, compiled here as the plugin compiles them): FNV-1a digests of its blocks for fixed inputs equal the
// digests of libggml-base's ggml_quantize_chunk (and to_float) for the same inputs, taken once from the
// llama-cpp-python 0.3.36 build (tests/interop/test_gguf_quant.py checks the bytes against that library itself);
// the per-tensor types are those llama_model_quantize chose for such tensors.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include <gtest/gtest.h>

#include "ggml_blocks.hpp"
#include "ggml_mix.hpp"

namespace {

uint64_t fnv(const void *p, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= static_cast<const uint8_t *>(p)[i];
    h *= 1099511628211ull;
  }
  return h;
}

// 6 rows of 512: noise, a non-negative row, a row whose first super-block is zero, a row with outliers; and an
// importance of 512 positive values (xorshift32 from 12345; uniforms from its top 24 bits).
struct Inputs {
  static constexpr int R = 6, C = 512;
  std::vector<float> x, w;
  Inputs() : x(R * C), w(C) {
    uint32_t s = 12345;
    auto uni = [&] {
      s ^= s << 13;
      s ^= s >> 17;
      s ^= s << 5;
      return static_cast<float>(s >> 8) * (1.0f / 16777216.0f);
    };
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) {
        const float a = uni(), b = uni(), d = uni();
        float v = (a + b + d - 1.5f) * 0.04f;
        if (r == 1) v = v * v * 10.0f;
        if (r == 2 && c < 256) v = 0.0f;
        if (r == 3 && c % 37 == 0) v *= 25.0f;
        x[r * C + c] = v;
      }
    for (int c = 0; c < C; ++c) {
      const float a = uni(), b = uni();
      w[c] = 0.05f + a * b * 20.0f;
    }
  }
};

struct Golden {
  ckh_dtype t;
  uint64_t ref, weighted, dequant;  // ggml_quantize_chunk without / with the importance; to_float of the first
};
const Golden kGolden[] = {
    {CKH_DT_Q8_0, 0x1b858c450a7db27bull, 0x1b858c450a7db27bull, 0x30287a37eee98875ull},
    {CKH_DT_Q4_0, 0x86b38eb273e6d414ull, 0x1059bfae85622920ull, 0xfd164d5b1a4970ebull},
    {CKH_DT_Q4_1, 0x8671b13ece4b3c01ull, 0x41190fda4c20eb93ull, 0xd6fd9a89451ca983ull},
    {CKH_DT_Q5_0, 0xe62f587eab9cd128ull, 0x1ca622d02a9361b8ull, 0xfc31322bd1b22a59ull},
    {CKH_DT_Q5_1, 0xa7309d37055485a0ull, 0xb85937f156b2b090ull, 0x0a30a1c90dfd8efeull},
    {CKH_DT_Q2_K, 0xf5764282ee97cdd9ull, 0x4e07a1696494fb7cull, 0xe591a2f6260d804cull},
    {CKH_DT_Q3_K, 0x1c931b147df8596dull, 0x7d0fe3c17a904987ull, 0xe036e5aff7a91bb7ull},
    {CKH_DT_Q4_K, 0x0b6cc411935d141eull, 0x85a5ac57c129ee0aull, 0x922f2fd9f24d8195ull},
    {CKH_DT_Q5_K, 0xc6edfb2972fad0ddull, 0x77615c246b8b0986ull, 0xd49896d4b43fc188ull},
    {CKH_DT_Q6_K, 0x2afdd0dff6a64b2cull, 0x878af7e61b9d024eull, 0x75c0c15a2ecbd6d7ull},
};

TEST(GgmlQuants, BlocksEqualGgmlDigests) {
  const Inputs in;
  for (const Golden &g : kGolden) {
    ckh_dtype_traits_t tr{};
    ASSERT_TRUE(ckh_dtype_traits(g.t, &tr));
    const size_t rb = Inputs::C / tr.block_elems * tr.block_bytes;
    for (int weighted = 0; weighted < 2; ++weighted) {
      std::vector<uint8_t> q(rb * Inputs::R);
      for (int r = 0; r < Inputs::R; ++r)
        ggmlq::quantize_row(g.t, in.x.data() + r * Inputs::C, Inputs::C, weighted ? in.w.data() : nullptr, q.data() + r * rb);
      EXPECT_EQ(fnv(q.data(), q.size()), weighted ? g.weighted : g.ref) << "dtype " << g.t << (weighted ? " with importance" : "");
      if (weighted) continue;
      std::vector<float> y(Inputs::R * Inputs::C);
      for (int r = 0; r < Inputs::R; ++r) ggmlq::dequantize_row(g.t, q.data() + r * rb, Inputs::C, y.data() + r * Inputs::C);
      EXPECT_EQ(fnv(y.data(), y.size() * 4), g.dequant) << "dtype " << g.t << " dequantized";
    }
  }
}

TEST(GgmlQuants, ImportanceChangesBlocks) {
  // Negative twin: swapping two 256-value halves of the importance changes the weighted K blocks.
  const Inputs in;
  std::vector<float> w = in.w;
  for (int c = 0; c < 256; ++c) std::swap(w[c], w[c + 256]);
  std::vector<uint8_t> a(2 * 144), b(2 * 144);
  ggmlq::quantize_row(CKH_DT_Q4_K, in.x.data(), 512, in.w.data(), a.data());
  ggmlq::quantize_row(CKH_DT_Q4_K, in.x.data(), 512, w.data(), b.data());
  EXPECT_NE(a, b);
}

// Random rows of 1 to 5 super-blocks whose 32- and 16-value groups are drawn from many shapes: noise at
// magnitudes from 1e-30 to 1e30, zeros, constants, one-sided values, outliers, a single value, values near ggml's
// all-zero threshold (1e-15), subnormals, and now and then an infinity or a NaN.
struct RandomRows {
  uint32_t s;
  explicit RandomRows(uint32_t seed) : s(seed) {}
  uint32_t next() {
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
  }
  float uni() { return static_cast<float>(next() >> 8) * (1.0f / 16777216.0f); }
  void group(float *x, int n) {
    static const float kMag[] = {1e-30f, 1e-20f, 1e-15f, 3e-15f, 1e-8f, 1e-3f, 0.02f, 1.0f, 7.0f, 1e4f, 1e15f, 1e30f};
    const float mag = kMag[next() % (sizeof kMag / sizeof kMag[0])];
    const uint32_t kind = next() % 14;
    for (int i = 0; i < n; ++i) {
      const float g = uni() + uni() + uni() - 1.5f;
      float v = g * mag;
      switch (kind) {
        case 0: v = 0.0f; break;
        case 1: v = mag; break;                            // constant, positive
        case 2: v = -mag; break;                           // constant, negative
        case 3: v = -std::fabs(v); break;                  // negative only
        case 4: v = std::fabs(v); break;                   // positive only
        case 5: if (next() % 9 == 0) v *= 300.0f; break;   // outliers
        case 6: v = i == static_cast<int>(next() % n) ? mag : 0.0f; break;
        case 7: v = (next() % 2 ? 1e-15f : -1e-15f) * uni(); break;
        case 8: v = static_cast<float>(next() % 3) * mag; break;  // few distinct values
        case 9: v = g * 1e-41f; break;                    // subnormal
        case 10: v = i % 2 ? -0.0f : 0.0f; break;
        case 11: v = static_cast<float>(static_cast<int>(g * 16.0f)) * mag; break;  // on a grid
        default: break;
      }
      x[i] = v;
    }
    if (next() % 60 == 0) x[next() % n] = next() % 2 ? std::numeric_limits<float>::infinity() : -std::numeric_limits<float>::infinity();
    if (next() % 60 == 0) x[next() % n] = std::numeric_limits<float>::quiet_NaN();
  }
};

TEST(GgmlQuants, VectorPathsEqualScalar) {
  // Every vector level this CPU runs writes the bytes of the scalar reference code, for every K type, with and
  // without an importance (which also has zeros and huge values), over 600 random rows per type and level.
  const int top = ggmlq::set_simd_level(99);
  if (top == 0) GTEST_SKIP() << "this CPU runs no vector path (AVX2 / AVX-512F)";
  const ckh_dtype kTypes[] = {CKH_DT_Q2_K, CKH_DT_Q3_K, CKH_DT_Q4_K, CKH_DT_Q5_K, CKH_DT_Q6_K};
  for (const ckh_dtype t : kTypes) {
    ckh_dtype_traits_t tr{};
    ASSERT_TRUE(ckh_dtype_traits(t, &tr));
    RandomRows rnd(0x9e3779b9u ^ static_cast<uint32_t>(t));
    int mismatches = 0;
    for (int row = 0; row < 600 && mismatches < 5; ++row) {
      const int nsb = 1 + static_cast<int>(rnd.next() % 5), n = 256 * nsb;
      std::vector<float> x(n), w(n);
      for (int g = 0; g < n;) {
        const int len = g % 32 == 0 && rnd.next() % 2 ? 32 : 16;
        rnd.group(x.data() + g, len);
        g += len;
      }
      for (int i = 0; i < n; ++i) {
        const uint32_t k = rnd.next() % 20;
        w[i] = k == 0 ? 0.0f : k == 1 ? 1e20f * rnd.uni() : 0.01f + rnd.uni() * rnd.uni() * 30.0f;
      }
      const bool weighted = row % 2 == 1;
      const size_t bytes = static_cast<size_t>(nsb) * tr.block_bytes;
      std::vector<uint8_t> ref(bytes), got(bytes);
      ASSERT_EQ(ggmlq::set_simd_level(0), 0);
      ggmlq::quantize_row(t, x.data(), n, weighted ? w.data() : nullptr, ref.data());
      for (int level = 1; level <= top; ++level) {
        ASSERT_EQ(ggmlq::set_simd_level(level), level);
        std::fill(got.begin(), got.end(), 0xA5);
        ggmlq::quantize_row(t, x.data(), n, weighted ? w.data() : nullptr, got.data());
        if (got != ref) {
          ++mismatches;
          size_t at = 0;
          while (ref[at] == got[at]) ++at;
          ADD_FAILURE() << "dtype " << t << " level " << level << " row " << row << (weighted ? " with importance" : "")
                        << ": byte " << at << " of " << bytes << " is " << int(got[at]) << ", scalar " << int(ref[at]);
        }
      }
    }
  }
  ggmlq::set_simd_level(99);
}

TEST(GgmlQuants, VectorPathsNegativeTwin) {
  // The comparison above can fail: the vector path's bytes for a row with one value moved differ from the scalar
  // bytes of the original row.
  const Inputs in;
  const int top = ggmlq::set_simd_level(99);
  std::vector<float> x(in.x.begin(), in.x.begin() + 512);
  std::vector<uint8_t> a(2 * 144), b(2 * 144);
  ggmlq::set_simd_level(0);
  ggmlq::quantize_row(CKH_DT_Q4_K, x.data(), 512, nullptr, a.data());
  x[300] += 0.05f;
  ggmlq::set_simd_level(top);
  ggmlq::quantize_row(CKH_DT_Q4_K, x.data(), 512, nullptr, b.data());
  EXPECT_NE(a, b);
  ggmlq::set_simd_level(99);
}

ggmlq::TensorFacts facts(const char *name, int layer, int64_t cols, int n_layers = 8) {
  ggmlq::TensorFacts f;
  f.name = name;
  f.layer = layer;
  f.n_layers = n_layers;
  f.cols = cols;
  f.n_gqa = 4;
  return f;
}

ckh_dtype type_of(const char *mix, const ggmlq::TensorFacts &f) {
  ggmlq::Ftype ft;
  EXPECT_TRUE(ggmlq::parse_ftype(mix, &ft)) << mix;
  return ggmlq::tensor_type(ft, f);
}

TEST(GgmlQuants, MixesAsLlamaModelQuantize) {
  // Q4_K_M of an 8-layer model: attn_v / ffn_down in Q6_K at layers 0, 3, 6, 7 (use_more_bits); the LM head Q6_K;
  // ffn_down rows of 640 fall back (Q6_K -> Q8_0, Q4_K -> Q5_0); norms and routers stay.
  EXPECT_EQ(type_of("q4_k_m", facts("blk.0.attn_v.weight", 0, 256)), CKH_DT_Q6_K);
  EXPECT_EQ(type_of("q4_k_m", facts("blk.1.attn_v.weight", 1, 256)), CKH_DT_Q4_K);
  EXPECT_EQ(type_of("q4_k_m", facts("blk.3.attn_v.weight", 3, 256)), CKH_DT_Q6_K);
  EXPECT_EQ(type_of("q4_k_m", facts("blk.7.attn_v.weight", 7, 256)), CKH_DT_Q6_K);
  EXPECT_EQ(type_of("q4_k_m", facts("blk.0.ffn_down.weight", 0, 640)), CKH_DT_Q8_0);
  EXPECT_EQ(type_of("q4_k_m", facts("blk.1.ffn_down.weight", 1, 640)), CKH_DT_Q5_0);
  EXPECT_EQ(type_of("q4_k_m", facts("output.weight", -1, 256)), CKH_DT_Q6_K);
  EXPECT_EQ(type_of("q4_k_m", facts("token_embd.weight", -1, 256)), CKH_DT_Q4_K);
  ggmlq::TensorFacts tied = facts("token_embd.weight", -1, 256);
  tied.has_output = false;
  EXPECT_EQ(type_of("q4_k_m", tied), CKH_DT_Q6_K);
  ggmlq::TensorFacts norm = facts("blk.0.attn_norm.weight", 0, 256);
  norm.ndim = 1;
  EXPECT_EQ(type_of("q4_k_m", norm), CKH_DT_INVALID);
  EXPECT_EQ(type_of("q4_k_m", facts("blk.0.ffn_gate_inp.weight", 0, 256)), CKH_DT_INVALID);
  // Q2_K: attn_v by grouped-query ratio, attn_output and ffn_down Q3_K; 32-element rows of 200 -> F16.
  EXPECT_EQ(type_of("q2_k", facts("blk.2.attn_v.weight", 2, 256)), CKH_DT_Q4_K);
  ggmlq::TensorFacts mha = facts("blk.2.attn_v.weight", 2, 256);
  mha.n_gqa = 2;
  EXPECT_EQ(type_of("q2_k", mha), CKH_DT_Q3_K);
  EXPECT_EQ(type_of("q2_k", facts("blk.2.attn_output.weight", 2, 256)), CKH_DT_Q3_K);
  EXPECT_EQ(type_of("q2_k", facts("blk.2.ffn_down.weight", 2, 256)), CKH_DT_Q3_K);
  EXPECT_EQ(type_of("q2_k", facts("blk.2.ffn_down.weight", 2, 200)), CKH_DT_F16);
  // 8 experts: attn_k Q8_0, attn_output Q5_K; Q4_0 with an importance matrix: the first ffn_down Q4_1; 70B: Q5_K attn_v.
  ggmlq::TensorFacts k8 = facts("blk.1.attn_k.weight", 1, 256), o8 = facts("blk.1.attn_output.weight", 1, 256);
  k8.n_experts = o8.n_experts = 8;
  EXPECT_EQ(type_of("q4_k_m", k8), CKH_DT_Q8_0);
  EXPECT_EQ(type_of("q4_k_m", o8), CKH_DT_Q5_K);
  ggmlq::TensorFacts d0 = facts("blk.0.ffn_down.weight", 0, 256);
  EXPECT_EQ(type_of("q4_0", d0), CKH_DT_Q4_0);
  d0.has_imatrix = true;
  EXPECT_EQ(type_of("q4_0", d0), CKH_DT_Q4_1);
  ggmlq::TensorFacts big = facts("blk.40.attn_v.weight", 40, 256, 80);
  big.is_70b = true;
  EXPECT_EQ(type_of("q3_k_s", big), CKH_DT_Q5_K);
  // --ggml-pure: the type itself (shape fallbacks only).
  ggmlq::TensorFacts pure = facts("output.weight", -1, 256);
  pure.pure = true;
  EXPECT_EQ(type_of("q2_k", pure), CKH_DT_Q2_K);
}

}  // namespace
