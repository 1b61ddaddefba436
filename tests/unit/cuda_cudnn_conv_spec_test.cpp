// The cuDNN convolution's plan key, on the host only: a plan is cached
// process-wide by its full signature (backends/cuda/ops/cudnn_conv.h), so
// every field that changes the graph, the engine or the workspace limit must
// change the key; and what a tactic name selects in a spec. The GPU side is
// tests/gpu/gpu_nhwc_ops_test.cpp and gpu_conv_exhaustive_test.cpp.
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/ops/cudnn_conv.h"

namespace kiln::cuda {
namespace {

// A ResNet-50 3x3 FusedConv (bias, residual, Relu), f16 NHWC, batch 8.
CudnnConvSpec resnet_block_conv() {
  CudnnConvSpec s;
  s.dtype = DType::kF16;
  s.g.batch = 8, s.g.in_channels = 64, s.g.out_channels = 64;
  for (int a = 1; a < 3; ++a) {
    s.g.in[a] = s.g.out[a] = 56;
    s.g.kernel[a] = 3;
    s.g.pad_begin[a] = s.g.pad_end[a] = 1;
  }
  s.workspace_limit = size_t(1) << 30;
  s.fused = s.fused_bias = s.fused_residual = true;
  s.activation = EpilogueActivation::kRelu;
  s.channels_last = true;
  return s;
}

TEST(CudnnConvSpec, KeyKeepsEveryField) {
  const CudnnConvSpec base = resnet_block_conv();
  std::vector<CudnnConvSpec> changed(21, base);
  changed[0].dtype = DType::kBF16;
  changed[1].transpose = true;
  changed[2].allow_tf32 = true;
  changed[3].accumulate = true;
  changed[4].spatial = 3;
  changed[5].g.in_channels = 32;
  changed[6].g.out_channels = 128;
  changed[7].g.group = 64;
  changed[8].g.kernel[2] = 1;
  changed[9].g.stride[1] = 2;
  changed[10].g.dilation[2] = 2;
  changed[11].g.pad_end[1] = 0;
  changed[12].activation = EpilogueActivation::kSilu;
  changed[13].channels_last = false;
  changed[14].g.batch = 13;
  changed[15].g.in[1] = changed[15].g.out[1] = 28;
  changed[16].g.in[2] = changed[16].g.out[2] = 30;
  changed[17].engine_index = 2;
  changed[18].workspace_limit = 0;
  changed[19].config = CudnnEngineConfigId{12, {}};
  changed[20].config = CudnnEngineConfigId{12, {{3, 1}}};
  for (size_t i = 0; i < changed.size(); ++i) EXPECT_NE(changed[i].key(), base.key()) << "field " << i;
  CudnnConvSpec no_residual = base, no_bias = base, clip = base, unfused = base;
  no_residual.fused_residual = false;
  no_bias.fused_bias = false;
  clip.activation = EpilogueActivation::kClip;
  clip.clip_hi = 6;
  unfused.fused = false;
  for (const CudnnConvSpec* s : {&no_residual, &no_bias, &clip, &unfused}) EXPECT_NE(s->key(), base.key());
  // Two configs of one engine are two plans.
  EXPECT_NE(changed[19].key(), changed[20].key());
}

// A tactic names its engine in the spec: "cudnn:<i>" the i-th of the
// heuristic list, "cudnn_all:<id>" a config by id; another family's name, or
// an id that does not parse, leaves the heuristic's first.
TEST(CudnnConvSpec, TacticSelectsTheEngine) {
  CudnnConvSpec s = resnet_block_conv();
  select_cudnn_engine("cudnn:3", "cudnn", s);
  EXPECT_EQ(s.engine_index, 3);
  EXPECT_FALSE(s.config.has_value());
  select_cudnn_engine("cudnn_all:40_k2=7", "cudnn", s);
  EXPECT_EQ(s.engine_index, 0);
  ASSERT_TRUE(s.config.has_value());
  EXPECT_EQ(*s.config, (CudnnEngineConfigId{40, {{2, 7}}}));
  for (const char* other : {"cudnn_fused:2", "cudnn_fused_all:4", "cudnn_all:x", "cublaslt:1", "kiln_dw", ""}) {
    s.engine_index = 5;
    s.config = CudnnEngineConfigId{1, {}};
    select_cudnn_engine(other, "cudnn", s);
    EXPECT_EQ(s.engine_index, 0) << other;
    EXPECT_FALSE(s.config.has_value()) << other;
  }
  select_cudnn_engine("cudnn_fused_all:4", "cudnn_fused", s);
  ASSERT_TRUE(s.config.has_value());
  EXPECT_EQ(s.config->engine, 4);
}

// "cudnn:<i>" reads as it always has: a negative or unreadable index is 0.
TEST(CudnnConvSpec, HeuristicIndexReadsLeniently) {
  EXPECT_EQ(parse_cudnn_tactic("cudnn:-2", "cudnn")->index, 0);
  EXPECT_EQ(parse_cudnn_tactic("cudnn:abc", "cudnn")->index, 0);
  EXPECT_EQ(parse_cudnn_tactic("cudnn_fused:7", "cudnn_fused")->index, 7);
  EXPECT_FALSE(parse_cudnn_tactic("cudnn_fused:7", "cudnn").has_value());
  EXPECT_FALSE(parse_cudnn_tactic("cudnnx:7", "cudnn").has_value());
}

// The tactic a config is listed under reads back as that config.
TEST(CudnnConvSpec, ConfigTacticRoundTrips) {
  const CudnnEngineConfigId id{57, {{24, 3}, {30, -1}}};
  EXPECT_EQ(cudnn_config_tactic("cudnn_fused", id), "cudnn_fused_all:57_k24=3_k30=-1");
  for (const char* family : {"cudnn", "cudnn_fused"}) {
    const std::optional<CudnnEngineChoice> back = parse_cudnn_tactic(cudnn_config_tactic(family, id), family);
    ASSERT_TRUE(back && back->config) << family;
    EXPECT_EQ(*back->config, id) << family;
  }
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
