// kiln's implicit-GEMM tensor-core convolution (kiln.FusedConv's tactic
// "kiln_igemm", kernels/stem_conv.cu) against the CPU reference: ResNet-50's
// space-to-depth stem at a small size (4x4 on 16 channels to 64, pads 0), a
// 2x2 kernel to 32 channels (MobileNetV2's and EfficientNet's stems) and a
// 3x3 pad 1 with Cin 32, Cout 48 whose 63 pixels are not a multiple of the
// 64-pixel tile; with and without bias and residual; activations none, Relu,
// Clip 0..6, Sigmoid, Silu; f16 and bf16 within 1e-2 relative to |cpu| + the
// convolution's magnitude. More cases cover the persistent kernel's paths:
// Cout 16 to 128, Cin 16 and 32, 1 to 16 taps, pads on each side, outputs
// that end inside a tile, and a layer too large for it (the simple kernel);
// a capped grid makes every block loop over many tiles (double-buffered
// halos), and the simple kernel is checked on its own too. Also the kernel
// on its own (so a tactic that fell back to cuDNN cannot hide it):
// asymmetric pads, y, bias and z 16-byte aligned (vector epilogue) or not
// (one element at a time), and a misaligned x declined. Which layers are
// offered the tactic is tests/unit/cuda_stem_conv_tactic_test.cpp's.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cmath>

#include "backends/cuda/kernels/stem_conv.cuh"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

constexpr double kRtol = 1e-2;  // f16 and bf16

struct StemCase {
  const char* what;
  std::vector<int64_t> x, w;  // [N, H, W, Cin], [Cout, KH, KW, Cin]
  std::vector<int64_t> y;     // the expected output dims
  Attrs attrs;                // pads
};

std::vector<StemCase> stem_cases() {
  return {
      {"ResNet stem 4x4 Cin 16 Cout 64", {2, 19, 19, 16}, {64, 4, 4, 16}, {2, 16, 16, 64}, {}},
      {"2x2 Cin 16 Cout 32", {2, 9, 10, 16}, {32, 2, 2, 16}, {2, 8, 9, 32}, {}},
      {"3x3 pad 1 Cin 32 Cout 48", {1, 7, 9, 32}, {48, 3, 3, 32}, {1, 7, 9, 48}, {{"pads", ints({1, 1, 1, 1})}}},
      // 37 columns in 64-column tiles: 16-pixel fragments full, partial (5) and empty.
      {"1x1 Cin 16 Cout 16", {2, 5, 37, 16}, {16, 1, 1, 16}, {2, 5, 37, 16}, {}},
      // Pads on each side, 3 taps in one dimension only.
      {"3x1 pads (1,0,2,0) Cin 16 Cout 64",
       {1, 20, 17, 16},
       {64, 3, 1, 16},
       {1, 21, 17, 64},
       {{"pads", ints({1, 0, 2, 0})}}},
      {"4x4 pads (2,1,0,3) Cin 32 Cout 128",
       {1, 11, 13, 32},
       {128, 4, 4, 32},
       {1, 10, 14, 128},
       {{"pads", ints({2, 1, 0, 3})}}},
      // 9 output rows of a 16-row tile: halo rows past the image are zeros.
      {"4x4 pad 3 Cin 16 Cout 16", {1, 6, 40, 16}, {16, 4, 4, 16}, {1, 9, 43, 16}, {{"pads", ints({3, 3, 3, 3})}}},
      {"2x2 Cin 32 Cout 96", {2, 6, 19, 32}, {96, 2, 2, 32}, {2, 5, 18, 96}, {}},
      // Weights of 128 x 1024 halves do not fit in shared memory: the simple kernel.
      {"1x1 Cin 1024 Cout 128", {1, 3, 5, 1024}, {128, 1, 1, 1024}, {1, 3, 5, 128}, {}},
  };
}

struct Activation {
  const char* name;
  std::vector<float> params;
};

const Activation kActivations[] = {{"", {}}, {"Relu", {}}, {"Clip", {0.f, 6.f}}, {"Sigmoid", {}}, {"Silu", {}}};

// The convolution's magnitude: X and W uniform in [-1, 1] (products of
// variance 1/9), so a sum of K = KH * KW * Cin has deviation sqrt(K) / 3.
// Signed data makes a wrong tap, channel or pixel show far beyond the
// tolerance, as positive data would not.
float conv_scale(int64_t k) { return std::sqrt(static_cast<float>(k)) / 3.f; }

// X and W signed; bias and Z within the convolution's magnitude, so the sum
// straddles zero and every activation bites.
void check_stem(const StemCase& c, DType t, const Activation& act, bool bias, bool residual) {
  const float scale = conv_scale(c.w[1] * c.w[2] * c.w[3]);
  Attrs attrs = c.attrs;
  const Tensor x = random_tensor(t, c.x, -1.f, 1.f, 1);
  const Tensor w = random_tensor(t, c.w, -1.f, 1.f, 2);
  attrs["activation"] = Attribute::of_string(act.name);
  if (!act.params.empty()) attrs["activation_params"] = Attribute::of_floats(act.params);
  std::vector<Tensor> ins{x, w, bias ? random_tensor(t, {c.w[0]}, -scale / 2, scale / 2, 3) : Tensor()};
  if (residual) ins.push_back(random_tensor(t, c.y, -scale, scale, 4));
  if (!bias && !residual) ins.pop_back();
  const std::string what = fmt::format("kiln_igemm {} {} act '{}'{}{}{}", c.what, dtype_name(t), act.name,
                                       act.params.empty() ? "" : fmt::format(" {}", fmt::join(act.params, ",")),
                                       bias ? " bias" : "", residual ? " residual" : "");
  const Tensor cpu = run_nhwc_fused_conv(false, ins, attrs, "");
  ASSERT_TRUE(cpu.is_valid()) << what;
  ASSERT_EQ(cpu.dims(), c.y) << what;
  expect_close_at_scale(run_nhwc_fused_conv(true, ins, attrs, "kiln_igemm"), cpu, kRtol, scale, what);
}

const DType kHalfTypes[] = {DType::kF16, DType::kBF16};

TEST_F(GpuTest, StemConvKilnIgemmMatchesCpuForEveryActivation) {
  for (const StemCase& c : stem_cases())
    for (DType t : kHalfTypes)
      for (const Activation& act : kActivations) check_stem(c, t, act, true, true);
}

TEST_F(GpuTest, StemConvKilnIgemmMatchesCpuWithAndWithoutBiasAndResidual) {
  const Activation relu{"Relu", {}};
  for (const StemCase& c : stem_cases())
    for (DType t : kHalfTypes) {
      check_stem(c, t, relu, false, false);
      check_stem(c, t, relu, true, false);
      check_stem(c, t, relu, false, true);
    }
}

// Every case with the persistent grid capped at 1 and at 3 blocks (so each
// block takes many tiles, alternating its two halo buffers, and the last
// round is partial), then with the simple kernel only.
TEST_F(GpuTest, StemConvKilnIgemmMatchesCpuWithFewBlocksAndWithTheSimpleKernel) {
  const Activation clip{"Clip", {0.f, 6.f}};
  for (const cuda::StemConvTestHooks& hooks :
       {cuda::StemConvTestHooks{1, false}, cuda::StemConvTestHooks{3, false}, cuda::StemConvTestHooks{0, true}}) {
    cuda::set_stem_conv_test_hooks(hooks);
    for (const StemCase& c : stem_cases())
      for (DType t : kHalfTypes) check_stem(c, t, clip, true, true);
  }
  cuda::set_stem_conv_test_hooks({});
}

// A batch of many tiles on the full grid: [6, 35, 50, 16] 4x4 -> 64
// ([6, 32, 47, 64]: 4 x 3 tiles of 8 x 16 per image, the last column tile
// partial) and 2x2 -> 32.
TEST_F(GpuTest, StemConvKilnIgemmMatchesCpuOnManyTiles) {
  const StemCase cases[] = {
      {"4x4 Cin 16 Cout 64 batch 6", {6, 35, 50, 16}, {64, 4, 4, 16}, {6, 32, 47, 64}, {}},
      {"2x2 Cin 16 Cout 32 batch 6", {6, 35, 50, 16}, {32, 2, 2, 16}, {6, 34, 49, 32}, {}},
  };
  for (const StemCase& c : cases)
    for (DType t : kHalfTypes) check_stem(c, t, {"Silu", {}}, true, false);
}

// The kernel on its own: x [1, 7, 9, 32], w [48, 3, 3, 32], pads (1, 0, 2, 1)
// -> y [1, 8, 8, 48] (one tile of the persistent kernel), Relu with bias and z;
// y, bias and z shifted by `shift` elements from their allocation (0: the
// 16-byte epilogue, 1: one element at a time). Both must give the CPU's result.
TEST_F(GpuTest, StemConvKernelMatchesCpuAlignedAndNot) {
  for (DType t : kHalfTypes) {
    for (int64_t shift : {0, 1}) {
      const Attrs attrs{{"pads", ints({1, 0, 2, 1})}};
      const float scale = conv_scale(3 * 3 * 32);
      const Tensor x = random_tensor(t, {1, 7, 9, 32}, -1.f, 1.f, 1);
      const Tensor w = random_tensor(t, {48, 3, 3, 32}, -1.f, 1.f, 2);
      const Tensor b = random_tensor(t, {48}, -scale / 2, scale / 2, 3);
      const Tensor plain = run_nhwc_fused_conv(false, {x, w}, attrs, "");
      ASSERT_TRUE(plain.is_valid());
      ASSERT_EQ(plain.dims(), (std::vector<int64_t>{1, 8, 8, 48}));
      const Tensor z = random_tensor(t, plain.dims(), -scale, scale, 4);
      Attrs fused = attrs;
      fused["activation"] = s("Relu");
      const Tensor ref = run_nhwc_fused_conv(false, {x, w, b, z}, fused, "");
      const size_t off = 2 * static_cast<size_t>(shift);  // 2-byte elements
      cuda::DeviceBuffer dx = upload(x), dw = upload(w);
      cuda::DeviceBuffer db = device_zeros(b.nbytes() + off), dz = device_zeros(z.nbytes() + off);
      cuda::DeviceBuffer dy = device_zeros(ref.nbytes() + off);
      char* bp = static_cast<char*>(db.data()) + off;
      char* zp = static_cast<char*>(dz.data()) + off;
      char* yp = static_cast<char*>(dy.data()) + off;
      ASSERT_EQ(cudaMemcpy(bp, b.raw(), b.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
      ASSERT_EQ(cudaMemcpy(zp, z.raw(), z.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
      cuda::StemConvParams p;
      p.dtype = t;
      p.g.batch = 1, p.g.in_channels = 32, p.g.out_channels = 48, p.g.group = 1;
      p.g.in[1] = 7, p.g.in[2] = 9, p.g.out[1] = 8, p.g.out[2] = 8;
      p.g.kernel[1] = p.g.kernel[2] = 3;
      p.g.pad_begin[1] = 1, p.g.pad_begin[2] = 0, p.g.pad_end[1] = 2, p.g.pad_end[2] = 1;
      ASSERT_TRUE(cuda::stem_conv_fits(t, p.g));
      p.x = dx.data(), p.w = dw.data(), p.bias = bp, p.z = zp, p.y = yp;
      p.act = cuda::EpilogueActivation::kRelu;
      ASSERT_TRUE(cuda::launch_stem_conv(p, nullptr).is_ok());
      expect_close_at_scale(download(yp, t, ref.dims()), ref, kRtol, scale,
                            fmt::format("stem kernel {} shift {}", dtype_name(t), shift));
      // x off its 16-byte alignment: declined, not read.
      p.x = static_cast<const char*>(dx.data()) + 2;
      EXPECT_FALSE(cuda::launch_stem_conv(p, nullptr).is_ok());
    }
  }
}

}  // namespace
}  // namespace kiln::gpu_test
