// Attention's cuDNN tactic, on the host only: which nodes it takes and the
// [B, H, S, D] strides and bias dims it hands cuDNN (backends/cuda/ops/
// cudnn_attention.h). The GPU side is tests/gpu/gpu_attention_ops_test.cpp.
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/ops/cudnn_attention.h"

namespace kiln::cuda {
namespace {

using Dims = std::vector<int64_t>;
using Array = std::array<int64_t, 4>;

// An Attention node with Q, K, V (and `extra_inputs` more) and Y.
struct AttentionNode {
  Graph g;
  Node* n = nullptr;
  explicit AttentionNode(size_t extra_inputs = 0) {
    n = g.add_node("Attention");
    for (size_t i = 0; i < 3 + extra_inputs; ++i) n->inputs.push_back(g.add_value("in" + std::to_string(i)));
    n->outputs.push_back(g.add_value("y"));
  }
};

std::optional<CudnnSdpaSpec> spec(const Node& n, const Dims& q, const Dims& k, const Dims& v, DType t = DType::kF16,
                                  const Dims* mask = nullptr, DType mask_type = DType::kF16) {
  return cudnn_sdpa_spec(n, t, q, k, v, mask_type, mask, size_t(1) << 30);
}

TEST(CudnnAttentionSpec, FourDimensionalLayoutIsContiguousBhsd) {
  AttentionNode a;
  const auto s = spec(*a.n, {2, 12, 128, 64}, {2, 12, 128, 64}, {2, 12, 128, 64});
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->q_heads, 12);
  EXPECT_EQ(s->kv_heads, 12);
  EXPECT_EQ(s->q_strides, (Array{12 * 128 * 64, 128 * 64, 64, 1}));
  EXPECT_EQ(s->o_strides, s->q_strides);
  EXPECT_FLOAT_EQ(s->scale, 0.125f);  // 1 / sqrt(64)
  EXPECT_FALSE(s->causal);
  EXPECT_FALSE(s->has_bias);
}

TEST(CudnnAttentionSpec, PackedLayoutStridesHeadsInsideTheRow) {
  AttentionNode a;
  a.n->attrs["q_num_heads"] = Attribute::of_int(8);
  a.n->attrs["kv_num_heads"] = Attribute::of_int(2);
  a.n->attrs["scale"] = Attribute::of_float(0.5f);
  const auto s = spec(*a.n, {3, 197, 8 * 32}, {3, 50, 2 * 32}, {3, 50, 2 * 32}, DType::kBF16);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->q_len, 197);
  EXPECT_EQ(s->kv_len, 50);
  EXPECT_EQ(s->head, 32);
  EXPECT_EQ(s->q_strides, (Array{197 * 8 * 32, 32, 8 * 32, 1}));
  EXPECT_EQ(s->k_strides, (Array{50 * 2 * 32, 32, 2 * 32, 1}));
  EXPECT_EQ(s->v_strides, s->k_strides);
  EXPECT_EQ(s->o_strides, s->q_strides);
  EXPECT_FLOAT_EQ(s->scale, 0.5f);
}

// kiln.PackedAttention: Q, K and V are column ranges of one QKV row of
// (8 + 2 * 2) * 32 elements; every token stride is that row, O stays dense.
TEST(CudnnAttentionSpec, PackedQkvRowsStrideQKAndVByTheWholeRow) {
  Graph g;
  Node* n = g.add_node("PackedAttention", "kiln");
  n->inputs.push_back(g.add_value("qkv"));
  n->outputs.push_back(g.add_value("y"));
  n->attrs["q_num_heads"] = Attribute::of_int(8);
  n->attrs["kv_num_heads"] = Attribute::of_int(2);
  auto s = spec(*n, {3, 197, 8 * 32}, {3, 197, 2 * 32}, {3, 197, 2 * 32});
  ASSERT_TRUE(s.has_value());
  const int64_t row = (8 + 2 * 2) * 32;
  use_packed_qkv_rows(*s, row);
  EXPECT_EQ(s->q_strides, (Array{197 * row, 32, row, 1}));
  EXPECT_EQ(s->k_strides, s->q_strides);
  EXPECT_EQ(s->v_strides, s->q_strides);
  EXPECT_EQ(s->o_strides, (Array{197 * 8 * 32, 32, 8 * 32, 1}));
}

TEST(CudnnAttentionSpec, FloatMaskBecomesABroadcastBias) {
  AttentionNode a(1);
  const Dims q = {2, 4, 16, 64}, kv = {2, 4, 16, 64};
  const Dims keys_only = {2, 1, 1, 16};
  const auto s = spec(*a.n, q, kv, kv, DType::kF16, &keys_only, DType::kF32);
  ASSERT_TRUE(s.has_value());
  EXPECT_TRUE(s->has_bias);
  EXPECT_EQ(s->bias_dtype, DType::kF32);
  EXPECT_EQ(s->bias_dims, (Array{2, 1, 1, 16}));
  EXPECT_EQ(s->bias_strides, (Array{16, 16, 16, 1}));
  const Dims rank2 = {16, 16};  // right-aligned: (Sq, Skv)
  const auto r = spec(*a.n, q, kv, kv, DType::kF16, &rank2);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->bias_dims, (Array{1, 1, 16, 16}));
  EXPECT_NE(r->key(), s->key());
}

TEST(CudnnAttentionSpec, DeclinesWhatCudnnDoesNotComputeAsKilnDoes) {
  const Dims q = {1, 2, 8, 64};
  AttentionNode plain;
  EXPECT_TRUE(spec(*plain.n, q, q, q).has_value());
  EXPECT_FALSE(spec(*plain.n, q, q, q, DType::kF32).has_value());  // f16/bf16 only
  const Dims d72 = {1, 2, 8, 72}, d160 = {1, 2, 8, 160}, d12 = {1, 2, 8, 12};
  EXPECT_TRUE(spec(*plain.n, d72, d72, d72).has_value());
  EXPECT_FALSE(spec(*plain.n, d160, d160, d160).has_value());  // D <= 128
  EXPECT_FALSE(spec(*plain.n, d12, d12, d12).has_value());     // D % 8 == 0
  const Dims dv32 = {1, 2, 8, 32};
  EXPECT_FALSE(spec(*plain.n, q, q, dv32).has_value());  // D == Dv

  AttentionNode causal;
  causal.n->attrs["is_causal"] = Attribute::of_int(1);
  const auto c = spec(*causal.n, q, q, q);
  ASSERT_TRUE(c.has_value());
  EXPECT_TRUE(c->causal);
  const Dims longer = {1, 2, 9, 64};
  EXPECT_FALSE(spec(*causal.n, q, longer, longer).has_value());  // causal with Sq != Skv

  AttentionNode softcap;
  softcap.n->attrs["softcap"] = Attribute::of_float(30.f);
  EXPECT_FALSE(spec(*softcap.n, q, q, q).has_value());
  AttentionNode window;
  window.n->attrs["left_window_size"] = Attribute::of_int(4);
  EXPECT_FALSE(spec(*window.n, q, q, q).has_value());

  AttentionNode past(3);  // mask slot omitted, past_key, past_value
  past.n->inputs[3] = nullptr;
  EXPECT_FALSE(spec(*past.n, q, q, q).has_value());
  AttentionNode present;
  present.n->outputs.push_back(present.g.add_value("present_key"));
  EXPECT_FALSE(spec(*present.n, q, q, q).has_value());

  AttentionNode masked(1);
  const Dims bool_mask = {8, 8}, short_mask = {8, 5}, bad = {3, 8};
  EXPECT_FALSE(spec(*masked.n, q, q, q, DType::kF16, &bool_mask, DType::kBool).has_value());
  EXPECT_FALSE(spec(*masked.n, q, q, q, DType::kF16, &bool_mask, DType::kF64).has_value());
  EXPECT_FALSE(spec(*masked.n, q, q, q, DType::kF16, &short_mask).has_value());  // fewer keys than Skv
  EXPECT_FALSE(spec(*masked.n, q, q, q, DType::kF16, &bad).has_value());         // does not broadcast
}

TEST(CudnnAttentionSpec, GroupedQueryHeadsMustDivide) {
  AttentionNode a;
  const auto gqa = spec(*a.n, {2, 8, 10, 64}, {2, 2, 10, 64}, {2, 2, 10, 64});
  ASSERT_TRUE(gqa.has_value());
  EXPECT_EQ(gqa->kv_heads, 2);
  EXPECT_EQ(gqa->k_strides, (Array{2 * 10 * 64, 10 * 64, 64, 1}));
  EXPECT_FALSE(spec(*a.n, {2, 8, 10, 64}, {2, 3, 10, 64}, {2, 3, 10, 64}).has_value());
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
