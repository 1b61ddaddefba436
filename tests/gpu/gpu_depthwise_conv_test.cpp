// kiln's own channels-last depthwise convolution (kiln.FusedConv's tactics
// "kiln_dw", "kiln_dw_strip" and "kiln_dw_tile", kernels/depthwise_conv.cu and
// depthwise_conv_tile.cu) against the CPU reference: 3x3, 5x5 and 7x7,
// strides 1 and 2, symmetric and asymmetric pads,
// output widths that leave the strip kernel a short strip at the right edge
// (OW 11, 5 and 7 for R = 4, 2 and 4); channel counts that take the 16-byte
// vector path (8, 24, 144), the 4-channel one (12) and the scalar one (7);
// with and without bias and residual, every activation; f16 and bf16 within
// 1e-2, f32 within 1e-5 (both relative to |cpu| + the convolution's size).
// Also the kernel on its own with misaligned pointers (each vector width on
// one layer, with and without strips and tiles), and "kiln_dw_tile" bit for
// bit against "kiln_dw" on MobileNetV2's and EfficientNet-B0's layers at
// batch 1 and on odd sizes (one tile per image, many, tiles cut by the
// border, every channel-block width). Which layers are offered the tactics
// is tests/unit/cuda_depthwise_conv_tactic_test.cpp's.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "backends/cuda/kernels/depthwise_conv.cuh"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

struct DwCase {
  const char* what;
  int64_t h, w, k;  // input height and width, a k x k kernel
  Attrs attrs;      // strides and pads
};

std::vector<DwCase> dw_cases() {
  return {
      {"3x3 stride 1 pad 1", 10, 11, 3, {{"pads", ints({1, 1, 1, 1})}}},
      {"3x3 stride 2 pads (0,0,1,1)", 11, 10, 3, {{"strides", ints({2, 2})}, {"pads", ints({0, 0, 1, 1})}}},
      {"5x5 stride 2 pad 2", 13, 12, 5, {{"strides", ints({2, 2})}, {"pads", ints({2, 2, 2, 2})}}},
      {"5x5 stride 1 pads (2,1,2,3)", 9, 7, 5, {{"pads", ints({2, 1, 2, 3})}}},
      {"7x7 stride 1 pad 3", 15, 9, 7, {{"pads", ints({3, 3, 3, 3})}}},
      {"7x7 stride 2 pads (3,2,3,3)", 17, 19, 7, {{"strides", ints({2, 2})}, {"pads", ints({3, 2, 3, 3})}}},
  };
}

// 8, 24, 144: 16-byte vectors (f32: 4 channels), and tile blocks of 1, 3
// and 6 channel groups; 12: f16/bf16 take 4 channels (no tile: it runs
// "kiln_dw"); 7: one channel a thread.
constexpr int64_t kChannels[] = {8, 24, 144, 12, 7};

struct Activation {
  const char* name;
  std::vector<float> params;
};

const Activation kActivations[] = {{"", {}},        {"Relu", {}}, {"Clip", {0.f, 6.f}}, {"Clip", {-1.f, 2.f}},
                                   {"Sigmoid", {}}, {"Silu", {}}};

// X and W positive (0.1 to 1); bias and Z in [-s, 0] with s about the
// convolution's mean, so the sum straddles zero and every activation bites.
void check_dw(const DwCase& c, int64_t channels, DType t, const Activation& act, bool bias, bool residual) {
  const float s = 0.3f * static_cast<float>(c.k * c.k);
  Attrs attrs = c.attrs;
  attrs["group"] = i(channels);
  const Tensor x = random_tensor(t, {2, c.h, c.w, channels}, 0.1f, 1.f, 1);
  const Tensor w = random_tensor(t, {channels, c.k, c.k, 1}, 0.1f, 1.f, 2);
  const Tensor plain = run_nhwc_fused_conv(false, {x, w}, attrs, "");
  ASSERT_TRUE(plain.is_valid()) << c.what;
  attrs["activation"] = Attribute::of_string(act.name);
  if (!act.params.empty()) attrs["activation_params"] = Attribute::of_floats(act.params);
  std::vector<Tensor> ins{x, w, bias ? random_tensor(t, {channels}, -s / 2, 0.f, 3) : Tensor()};
  if (residual) ins.push_back(random_tensor(t, plain.dims(), -s, 0.f, 4));
  if (!bias && !residual) ins.pop_back();
  const std::string what = fmt::format("kiln_dw {} C={} {} act '{}'{}{}{}", c.what, channels, dtype_name(t), act.name,
                                       act.params.empty() ? "" : fmt::format(" {}", fmt::join(act.params, ",")),
                                       bias ? " bias" : "", residual ? " residual" : "");
  const Tensor cpu = run_nhwc_fused_conv(false, ins, attrs, "");
  expect_close_at_scale(run_nhwc_fused_conv(true, ins, attrs, "kiln_dw"), cpu, tolerance_for(t), s, what);
  expect_close_at_scale(run_nhwc_fused_conv(true, ins, attrs, "kiln_dw_strip"), cpu, tolerance_for(t), s,
                        what + " (tactic \"kiln_dw_strip\")");
  expect_close_at_scale(run_nhwc_fused_conv(true, ins, attrs, "kiln_dw_tile"), cpu, tolerance_for(t), s,
                        what + " (tactic \"kiln_dw_tile\")");
  // The default tactic too: cuDNN's plan, or (asymmetric pads, which
  // channels-last cuDNN routes lack) the same depthwise kernel.
  expect_close_at_scale(run_nhwc_fused_conv(true, ins, attrs, ""), cpu, tolerance_for(t), s, what + " (tactic \"\")");
}

TEST_F(GpuTest, DepthwiseConvKilnDwMatchesCpuForEveryActivation) {
  for (const DwCase& c : dw_cases())
    for (int64_t channels : kChannels)
      for (DType t : kFloatTypes)
        for (const Activation& act : kActivations) check_dw(c, channels, t, act, true, true);
}

TEST_F(GpuTest, DepthwiseConvKilnDwMatchesCpuWithAndWithoutBiasAndResidual) {
  const Activation relu{"Relu", {}};
  for (const DwCase& c : dw_cases())
    for (int64_t channels : kChannels)
      for (DType t : kFloatTypes) {
        check_dw(c, channels, t, relu, false, false);
        check_dw(c, channels, t, relu, true, false);
        check_dw(c, channels, t, relu, false, true);
      }
}

// "kiln_dw_tile" against "kiln_dw" bit for bit (same taps, same order, same
// epilogue) and against the CPU: batch n, h x w x c, a k x k kernel at
// stride `st`, pads k / 2 (`asym`: one more at the bottom and right), bias,
// residual and Clip(0, 6).
void check_dw_tile(DType t, int64_t n, int64_t h, int64_t w, int64_t c, int64_t k, int64_t st, bool asym) {
  const int64_t p = k / 2, q = asym ? p + 1 : p;
  const Attrs attrs{{"group", i(c)},
                    {"pads", ints({p, p, q, q})},
                    {"strides", ints({st, st})},
                    {"activation", s("Clip")},
                    {"activation_params", Attribute::of_floats({0.f, 6.f})}};
  const float sc = 0.3f * static_cast<float>(k * k);
  const Tensor x = random_tensor(t, {n, h, w, c}, 0.1f, 1.f, 11);
  const Tensor wt = random_tensor(t, {c, k, k, 1}, 0.1f, 1.f, 12);
  const Tensor b = random_tensor(t, {c}, -sc / 2, 0.f, 13);
  const int64_t oh = (h + p + q - k) / st + 1, ow = (w + p + q - k) / st + 1;
  const Tensor z = random_tensor(t, {n, oh, ow, c}, -sc, 0.f, 14);
  const std::string what = fmt::format("kiln_dw_tile {} [{},{},{},{}] {}x{} stride {}{}", dtype_name(t), n, h, w, c, k,
                                       k, st, asym ? " asymmetric pads" : "");
  const Tensor tile = run_nhwc_fused_conv(true, {x, wt, b, z}, attrs, "kiln_dw_tile");
  ASSERT_TRUE(tile.is_valid()) << what;
  ASSERT_EQ(tile.dims(), (std::vector<int64_t>{n, oh, ow, c})) << what;
  expect_equal(tile, run_nhwc_fused_conv(true, {x, wt, b, z}, attrs, "kiln_dw"), what + " vs kiln_dw");
  expect_close_at_scale(tile, run_nhwc_fused_conv(false, {x, wt, b, z}, attrs, ""), tolerance_for(t), sc, what);
}

// MobileNetV2's depthwise layers (3x3) and EfficientNet-B0's (3x3 and 5x5)
// at batch 1: channel blocks of 4 to 8 groups (32, 96, 144, 240, 480, 672,
// 960, 1152 channels), 7x7 to 112x112 images.
TEST_F(GpuTest, DepthwiseConvTileMatchesKilnDwOnMobileNetAndEfficientNetLayers) {
  struct Layer {
    int64_t hw, c, k, st;
  };
  const Layer layers[] = {{112, 32, 3, 1}, {112, 96, 3, 2}, {56, 144, 3, 1}, {56, 144, 3, 2}, {28, 192, 3, 1},
                          {28, 192, 3, 2}, {14, 384, 3, 1}, {14, 576, 3, 1}, {14, 576, 3, 2}, {7, 960, 3, 1},
                          {56, 144, 5, 2}, {28, 240, 5, 1}, {28, 240, 3, 2}, {14, 480, 3, 1}, {14, 480, 5, 1},
                          {14, 672, 5, 2}, {7, 1152, 5, 1}, {7, 1152, 3, 1}};
  for (DType t : {DType::kF16, DType::kBF16})
    for (const Layer& l : layers) check_dw_tile(t, 1, l.hw, l.hw, l.c, l.k, l.st, false);
}

// Odd sizes and borders: images narrower than a tile, a tile row cut by the
// bottom, strips cut by the right edge, asymmetric pads, batch 1 and 3,
// every kernel size and stride.
TEST_F(GpuTest, DepthwiseConvTileMatchesKilnDwOnOddSizes) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (int64_t k : {3, 5, 7}) {
      for (int64_t st : {1, 2}) {
        check_dw_tile(t, 1, 1, 1, 8, k, st, false);
        check_dw_tile(t, 3, 5, 3, 16, k, st, true);
        check_dw_tile(t, 1, 13, 29, 40, k, st, false);
        check_dw_tile(t, 3, 31, 17, 24, k, st, true);
        check_dw_tile(t, 1, 67, 45, 72, k, st, true);
      }
    }
  }
}

// The kernel on its own (launch_depthwise_conv, `strip` as given) on x, y
// and z shifted by `shift` elements from their allocation: 3x3, H stride 1,
// W stride `sw`, pads (1,0,2,1), bias, residual and Relu.
void check_dw_kernel(DType t, int64_t shift, int64_t sw, bool strip, bool tile) {
  const int64_t channels = 24, ow = sw == 1 ? 9 : 5;
  const Attrs attrs{{"group", i(channels)}, {"pads", ints({1, 0, 2, 1})}, {"strides", ints({1, sw})}};
  const Tensor x = random_tensor(t, {2, 9, 10, channels}, 0.1f, 1.f, 1);
  const Tensor w = random_tensor(t, {channels, 3, 3, 1}, 0.1f, 1.f, 2);
  const Tensor b = random_tensor(t, {channels}, -1.f, 0.f, 3);
  const Tensor plain = run_nhwc_fused_conv(false, {x, w}, attrs, "");
  ASSERT_TRUE(plain.is_valid());
  ASSERT_EQ(plain.dims(), (std::vector<int64_t>{2, 10, ow, channels}));
  const Tensor z = random_tensor(t, plain.dims(), -2.f, 0.f, 4);
  Attrs fused = attrs;
  fused["activation"] = s("Relu");
  const Tensor ref = run_nhwc_fused_conv(false, {x, w, b, z}, fused, "");
  const size_t esize = x.nbytes() / static_cast<size_t>(x.numel()), off = esize * static_cast<size_t>(shift);
  cuda::DeviceBuffer dx = device_zeros(x.nbytes() + off), dz = device_zeros(z.nbytes() + off);
  cuda::DeviceBuffer dy = device_zeros(ref.nbytes() + off), dw = upload(w), db = upload(b);
  cuda::DeviceBuffer ws = device_zeros(4096);
  char* xp = static_cast<char*>(dx.data()) + off;
  char* zp = static_cast<char*>(dz.data()) + off;
  char* yp = static_cast<char*>(dy.data()) + off;
  ASSERT_EQ(cudaMemcpy(xp, x.raw(), x.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
  ASSERT_EQ(cudaMemcpy(zp, z.raw(), z.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
  cuda::DepthwiseConvParams p;
  p.dtype = t;
  p.g.batch = 2, p.g.in_channels = p.g.out_channels = p.g.group = channels;
  p.g.in[1] = 9, p.g.in[2] = 10, p.g.out[1] = 10, p.g.out[2] = ow;
  p.g.kernel[1] = p.g.kernel[2] = 3;
  p.g.stride[1] = 1, p.g.stride[2] = sw;
  p.g.pad_begin[1] = 1, p.g.pad_begin[2] = 0, p.g.pad_end[1] = 2, p.g.pad_end[2] = 1;
  ASSERT_LE(cuda::depthwise_conv_workspace(t, p.g), size_t(4096));
  ASSERT_TRUE(cuda::depthwise_conv_strip_applies(p.g));
  p.x = xp, p.w = dw.data(), p.bias = db.data(), p.z = zp, p.y = yp, p.workspace = ws.data();
  p.act = cuda::EpilogueActivation::kRelu;
  p.strip = strip;
  p.tile = tile;
  ASSERT_TRUE(cuda::launch_depthwise_conv(p, nullptr).is_ok());
  expect_close_at_scale(download(yp, t, ref.dims()), ref, tolerance_for(t), 3.0,
                        fmt::format("depthwise kernel {} shift {} W stride {}{}{}", dtype_name(t), shift, sw,
                                    strip ? " strip" : "", tile ? " tile" : ""));
}

// Every vector width: shift 0 keeps 16-byte alignment, 4 (f16: 8 bytes) the
// 4-channel vectors, 1 one channel a thread; with and without strips, and
// with tiles (the tile kernel at shift 0 and W stride 1, asymmetric pads and
// 3 channel groups a block; elsewhere, off 16-byte alignment or at unequal
// strides, the one-pixel kernel in its place), at W stride 2 (OW 5, R = 2)
// and 1 (OW 9, R = 4), each must give the CPU's result.
TEST_F(GpuTest, DepthwiseConvKernelMatchesCpuAtEveryAlignment) {
  for (DType t : kFloatTypes) {
    for (int64_t shift : {0, 1, 4}) {
      for (int64_t sw : {2, 1}) {
        for (bool strip : {false, true}) check_dw_kernel(t, shift, sw, strip, false);
        check_dw_kernel(t, shift, sw, false, true);
      }
    }
  }
}

}  // namespace
}  // namespace kiln::gpu_test
