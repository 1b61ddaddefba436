// The cuDNN convolution's plan key, on the host only: a plan is cached
// process-wide by its full signature (backends/cuda/ops/cudnn_conv.h), so
// every field that changes the graph, the engine or the workspace limit must
// change the key. The GPU side is tests/gpu/gpu_nhwc_ops_test.cpp.
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
  std::vector<CudnnConvSpec> changed(19, base);
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
  for (size_t i = 0; i < changed.size(); ++i) EXPECT_NE(changed[i].key(), base.key()) << "field " << i;
  CudnnConvSpec no_residual = base, no_bias = base, clip = base, unfused = base;
  no_residual.fused_residual = false;
  no_bias.fused_bias = false;
  clip.activation = EpilogueActivation::kClip;
  clip.clip_hi = 6;
  unfused.fused = false;
  for (const CudnnConvSpec* s : {&no_residual, &no_bias, &clip, &unfused}) EXPECT_NE(s->key(), base.key());
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
