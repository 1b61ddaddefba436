// kiln.FusedConv with pool attributes (fuse_conv_max_pool) on the GPU
// against the CPU reference (the convolution then the MaxPool kernel): the
// fused kernel (tactic "kiln_igemm_pool", kernels/stem_conv_pool.cu) and the
// unfused route ("kiln_igemm": the stem kernel into the workspace, then the
// pool kernel), which must also agree bit for bit (same mma order, same
// epilogue, same rounding before the max). ResNet-50's stem at batch 1 and
// 3, odd sizes (pool tiles cut by the border, conv pads), other pools (2x2/2,
// 3x3/1, asymmetric pads), every Cout the kernel takes, f16 and bf16, and
// the persistent loop with the grid capped to 3 blocks.
#include <fmt/format.h>

#include "backends/cuda/kernels/stem_conv.cuh"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

struct PoolCase {
  const char* what;
  int64_t n, h, w, cin, k, cout;
  std::vector<int64_t> conv_pads, pool_kernel, pool_strides, pool_pads;
};

void check_stem_pool(const PoolCase& c, DType t, int max_blocks) {
  const float scale = 0.05f * static_cast<float>(c.cin * c.k * c.k);
  Attrs attrs{{"pads", ints(c.conv_pads)},
              {"activation", s("Relu")},
              {"pool_kernel", ints(c.pool_kernel)},
              {"pool_strides", ints(c.pool_strides)},
              {"pool_pads", ints(c.pool_pads)}};
  const Tensor x = random_tensor(t, {c.n, c.h, c.w, c.cin}, -1.f, 1.f, 21);
  const Tensor w = random_tensor(t, {c.cout, c.k, c.k, c.cin}, -0.5f, 0.5f, 22);
  const Tensor b = random_tensor(t, {c.cout}, -0.5f, 0.5f, 23);
  const std::string what = fmt::format("stem conv + max pool {} {} max_blocks {}", c.what, dtype_name(t), max_blocks);
  cuda::StemConvTestHooks hooks;
  hooks.max_blocks = max_blocks;
  cuda::set_stem_conv_test_hooks(hooks);
  const Tensor fused = run_nhwc_fused_conv(true, {x, w, b}, attrs, "kiln_igemm_pool");
  const Tensor unfused = run_nhwc_fused_conv(true, {x, w, b}, attrs, "kiln_igemm");
  cuda::set_stem_conv_test_hooks({});
  const Tensor cpu = run_nhwc_fused_conv(false, {x, w, b}, attrs, "");
  ASSERT_TRUE(fused.is_valid() && unfused.is_valid() && cpu.is_valid()) << what;
  ASSERT_EQ(fused.dims(), cpu.dims()) << what;
  expect_close_at_scale(fused, cpu, tolerance_for(t), scale, what);
  expect_close_at_scale(unfused, cpu, tolerance_for(t), scale, what + " (unfused)");
  expect_equal(fused, unfused, what + ": fused vs unfused");
}

const std::vector<int64_t> kNoPads = {0, 0, 0, 0}, kPads1 = {1, 1, 1, 1};

TEST_F(GpuTest, StemConvPoolMatchesCpuOnResNet50Stem) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t n : {1, 3}) {
      check_stem_pool(
          {"ResNet-50 4x4x16->64, MaxPool 3x3/2 pad 1", n, 115, 115, 16, 4, 64, kNoPads, {3, 3}, {2, 2}, kPads1}, t, 0);
    }
  }
}

TEST_F(GpuTest, StemConvPoolMatchesCpuOnOddSizesAndPools) {
  const std::vector<PoolCase> cases = {
      {"21x19 4x4x16->64 3x3/2 pad 1", 2, 21, 19, 16, 4, 64, kNoPads, {3, 3}, {2, 2}, kPads1},
      {"conv pads 1, 3x3x32->32, 3x3/2 pad 1", 1, 17, 23, 32, 3, 32, kPads1, {3, 3}, {2, 2}, kPads1},
      {"2x2/2 pool, no pads, ->16", 2, 14, 13, 16, 2, 16, kNoPads, {2, 2}, {2, 2}, kNoPads},
      {"3x3/1 pool pad 1, ->128", 1, 12, 11, 16, 2, 128, kNoPads, {3, 3}, {1, 1}, kPads1},
      {"asymmetric pool pads (0,1,1,0)", 3, 10, 9, 16, 2, 64, kNoPads, {3, 3}, {2, 2}, {0, 1, 1, 0}},
      {"1x1 conv output", 1, 4, 4, 16, 4, 64, kNoPads, {3, 3}, {2, 2}, kPads1},
  };
  for (DType t : {DType::kF16, DType::kBF16})
    for (const PoolCase& c : cases) check_stem_pool(c, t, 0);
}

// Three blocks loop over every tile: the double-buffered halo and the
// convolution tile's barriers across iterations.
TEST_F(GpuTest, StemConvPoolPersistentLoopMatchesCpu) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    check_stem_pool({"ResNet-50 stem, 3 blocks", 1, 115, 115, 16, 4, 64, kNoPads, {3, 3}, {2, 2}, kPads1}, t, 3);
    check_stem_pool({"21x19, 3 blocks", 2, 21, 19, 16, 4, 64, kNoPads, {3, 3}, {2, 2}, kPads1}, t, 3);
  }
}

}  // namespace
}  // namespace kiln::gpu_test
