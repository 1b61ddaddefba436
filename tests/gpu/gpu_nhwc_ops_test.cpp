// Channels-last (NHWC) layers through the CUDA executor against the CPU
// reference: kiln::FusedConv with channels_last=1 (group 1, grouped and
// depthwise; cuDNN's tactics and kiln's direct kernel; MobileNetV2's fp16
// layers with ReLU6 on every cuDNN engine) and the NHWC pools
// (MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool; the 8-channel
// vector path and the one-channel one). f16/bf16 within 1e-2; f32 within
// 1e-5 (pools) or 1e-4 (convolutions, summed in another order).
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/ops/cudnn_conv.h"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

// Runs kiln::FusedConv {channels_last=1} with `tactic` on the CPU or the GPU.
Tensor run_nhwc_conv(bool gpu, const std::vector<Tensor>& ins, Attrs attrs, const std::string& tactic) {
  attrs["channels_last"] = i(1);
  std::vector<RunValue> values;
  auto g = one_node_graph("kiln.FusedConv", ins, attrs, 1, 0, values);
  if (!tactic.empty()) g->nodes()[0]->metadata["kiln.tactic"] = tactic;
  cuda::RunOptions fp32;  // TF32 off: the f32 case is held to 1e-4
  fp32.allow_tf32 = false;
  auto out = gpu ? cuda::run_graph_on_cuda(*g, std::move(values), fp32) : run_graph_on_cpu(*g, std::move(values));
  EXPECT_TRUE(out.is_ok()) << (gpu ? "cuda: " : "cpu: ") << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

struct NhwcConvCase {
  const char* what;
  std::vector<int64_t> x, w;  // [N, H, W, C] and [K, R, S, C/group]
  Attrs attrs;
};

std::vector<NhwcConvCase> nhwc_conv_cases() {
  return {
      {"3x3 pad 1", {2, 14, 14, 16}, {32, 3, 3, 16}, {{"pads", ints({1, 1, 1, 1})}}},
      {"depthwise 3x3 stride 2",
       {2, 15, 13, 32},
       {32, 3, 3, 1},
       {{"group", i(32)}, {"pads", ints({1, 1, 1, 1})}, {"strides", ints({2, 2})}}},
      {"depthwise 5x5 odd channels", {1, 11, 12, 12}, {12, 5, 5, 1}, {{"group", i(12)}, {"pads", ints({2, 2, 2, 2})}}},
      {"grouped 3x3", {1, 10, 10, 32}, {48, 3, 3, 8}, {{"group", i(4)}, {"pads", ints({1, 1, 1, 1})}}},
      {"grouped 1x1 uneven", {2, 9, 9, 12}, {18, 1, 1, 4}, {{"group", i(3)}}},
  };
}

// y = act(conv + b + z): X and W positive, b and Z negative around the
// convolution's size, so the sum straddles zero and the Relu bites.
void check_nhwc_conv(const NhwcConvCase& c, DType t, const std::string& tactic) {
  const int64_t taps = c.w[1] * c.w[2] * c.w[3];
  const float scale = 0.3f * static_cast<float>(taps);
  Attrs attrs = c.attrs;
  attrs["activation"] = s("Relu");
  const Tensor x = random_tensor(t, c.x, 0.1f, 1.f, 1), w = random_tensor(t, c.w, 0.1f, 1.f, 2);
  const Tensor b = random_tensor(t, {c.w[0]}, -scale / 2, 0.f, 3);
  const Tensor plain = run_nhwc_conv(false, {x, w}, c.attrs, "");
  ASSERT_TRUE(plain.is_valid()) << c.what;
  const Tensor z = random_tensor(t, plain.dims(), -scale, 0.f, 4);
  const std::vector<Tensor> ins{x, w, b, z};
  const std::string what = fmt::format("NHWC FusedConv {} {} tactic '{}'", c.what, dtype_name(t), tactic);
  const Tensor gpu = run_nhwc_conv(true, ins, attrs, tactic), cpu = run_nhwc_conv(false, ins, attrs, "");
  ASSERT_TRUE(gpu.is_valid() && cpu.is_valid()) << what;
  ASSERT_EQ(gpu.dims(), cpu.dims()) << what;
  const double rtol = t == DType::kF32 ? 1e-4 : 1e-2;
  int bad = 0;
  for (int64_t e = 0; e < cpu.numel(); ++e) {
    const double g = gpu.element_as_double(e), r = cpu.element_as_double(e);
    if (!std::isnan(g) && std::fabs(g - r) <= rtol * (std::fabs(r) + scale)) continue;
    if (bad++ < 5) ADD_FAILURE() << what << ": element " << e << " gpu " << g << " cpu " << r;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << cpu.numel() << " elements differ";
}

// "" (cuDNN's fused graph when it has one), the plain convolution plus the
// epilogue kernel, and an engine index past every engine cuDNN has: the
// layer then runs kiln's channels-last direct kernel.
TEST_F(GpuTest, ChannelsLastFusedConvMatchesCpuForGroupedAndDepthwise) {
  for (const NhwcConvCase& c : nhwc_conv_cases())
    for (DType t : kFloatTypes)
      for (const char* tactic : {"", "cudnn:0", "cudnn:1000000"}) check_nhwc_conv(c, t, tactic);
}

// MobileNetV2's layers as its fp16 CUDA graph has them (channels-last, ReLU6
// as activation "Clip" [0, 6]): the space-to-depth stem, depthwise 3x3 at
// stride 1 and 2, the 1x1 expansion with ReLU6 and the 1x1 projection with the
// residual and no activation; at batch 1 and at a large batch (the peer's 128
// for the cheapest layer), on every cuDNN engine the kernel offers (fused
// graph and plain convolution + epilogue) and kiln's direct kernel.
struct MobileNetLayer {
  const char* what;
  std::vector<int64_t> x, w;  // [N, H, W, C] (N replaced per run) and [K, R, S, C/group]
  Attrs attrs;
  bool clip = true, residual = false;
  int64_t large_batch = 16;
};

std::vector<MobileNetLayer> mobilenet_layers() {
  const Attrs dw_s1 = {{"group", i(32)}, {"pads", ints({1, 1, 1, 1})}};
  const Attrs dw_s2 = {{"group", i(96)}, {"pads", ints({1, 1, 1, 1})}, {"strides", ints({2, 2})}};
  return {
      {"stem 2x2 on space-to-depth", {0, 113, 113, 16}, {32, 2, 2, 16}, {}},
      {"depthwise 3x3 stride 1", {0, 112, 112, 32}, {32, 3, 3, 1}, dw_s1},
      {"depthwise 3x3 stride 2", {0, 112, 112, 96}, {96, 3, 3, 1}, dw_s2, true, false, 128},
      {"1x1 expand", {0, 56, 56, 24}, {144, 1, 1, 24}, {}},
      {"1x1 project + residual", {0, 56, 56, 144}, {24, 1, 1, 144}, {}, false, true},
  };
}

// The cuDNN spec FusedConv builds for the layer (channels-last, f16, no
// staging), under run_graph_on_cuda's workspace (cuDNN's share capped at 256 MiB).
cuda::CudnnConvSpec mobilenet_spec(const MobileNetLayer& c, const std::vector<int64_t>& x,
                                   const std::vector<int64_t>& y, bool fused) {
  cuda::CudnnConvSpec spec;
  spec.dtype = DType::kF16;
  spec.channels_last = true;
  spec.workspace_limit = size_t(256) << 20;
  cuda::WindowGeometry& g = spec.g;
  g.batch = x[0], g.in_channels = x[3], g.out_channels = c.w[0];
  g.group = c.attrs.count("group") ? c.attrs.at("group").i : 1;
  g.in[1] = x[1], g.in[2] = x[2], g.out[1] = y[1], g.out[2] = y[2];
  g.kernel[1] = c.w[1], g.kernel[2] = c.w[2];
  if (c.attrs.count("strides"))
    g.stride[1] = c.attrs.at("strides").ints[0], g.stride[2] = c.attrs.at("strides").ints[1];
  if (c.attrs.count("pads")) {
    const std::vector<int64_t>& p = c.attrs.at("pads").ints;
    g.pad_begin[1] = p[0], g.pad_begin[2] = p[1], g.pad_end[1] = p[2], g.pad_end[2] = p[3];
  }
  if (fused) {
    spec.fused = spec.fused_bias = true;
    spec.fused_residual = c.residual;
    spec.activation = c.clip ? cuda::EpilogueActivation::kClip : cuda::EpilogueActivation::kNone;
    spec.clip_hi = c.clip ? 6.f : 0.f;
  }
  return spec;
}

// X in [0, 2] and W in [-0.5, 1.5] * 9 / taps: the convolution has mean 4.5
// and spreads a unit or more either side (less the more taps: the stem's 64),
// the bias in [-5, 2], so ReLU6 clips at both ends (checked on the CPU's
// result, so a lost bound cannot pass).
void check_mobilenet_layer(const MobileNetLayer& c, int64_t batch) {
  std::vector<int64_t> xd = c.x;
  xd[0] = batch;
  const float taps = static_cast<float>(c.w[1] * c.w[2] * c.w[3]);
  const Tensor x = random_tensor(DType::kF16, xd, 0.f, 2.f, 11);
  const Tensor w = random_tensor(DType::kF16, c.w, -0.5f * 9 / taps, 1.5f * 9 / taps, 12);
  const Tensor b = random_tensor(DType::kF16, {c.w[0]}, -5.f, 2.f, 13);
  Attrs attrs = c.attrs;
  if (c.clip) {
    attrs["activation"] = s("Clip");
    attrs["activation_params"] = Attribute::of_floats({0.f, 6.f});
  }
  std::vector<Tensor> ins{x, w, b};
  if (c.residual) {
    const Tensor plain = run_nhwc_conv(false, {x, w}, c.attrs, "");
    ASSERT_TRUE(plain.is_valid()) << c.what;
    ins.push_back(random_tensor(DType::kF16, plain.dims(), -3.f, 3.f, 14));
  }
  const Tensor cpu = run_nhwc_conv(false, ins, attrs, "");
  ASSERT_TRUE(cpu.is_valid()) << c.what;
  if (c.clip) {
    int64_t at_zero = 0, at_six = 0;
    for (int64_t e = 0; e < cpu.numel(); ++e) {
      const double v = cpu.element_as_double(e);
      at_zero += v == 0.0;
      at_six += v == 6.0;
    }
    ASSERT_GT(at_zero, 0) << c.what << ": the lower bound never bites";
    ASSERT_GT(at_six, 0) << c.what << ": the upper bound never bites";
  }
  const std::vector<int64_t> yd = cpu.dims();
  const int fused = cuda::cudnn_conv_engine_count(mobilenet_spec(c, xd, yd, true), 16);
  const int plain = cuda::cudnn_conv_engine_count(mobilenet_spec(c, xd, yd, false), 16);
  std::printf("[   INFO   ] MobileNetV2 %s batch %lld: %d fused and %d plain cuDNN engines\n", c.what,
              static_cast<long long>(batch), fused, plain);
  std::vector<std::string> tactics{"", "cudnn:1000000"};  // the default, and the direct kernel
  for (int e = 0; e < fused; ++e) tactics.push_back("cudnn_fused:" + std::to_string(e));
  for (int e = 0; e < plain; ++e) tactics.push_back("cudnn:" + std::to_string(e));
  for (const std::string& tactic : tactics) {
    const std::string what = fmt::format("MobileNetV2 {} batch {} tactic '{}'", c.what, batch, tactic);
    const Tensor gpu = run_nhwc_conv(true, ins, attrs, tactic);
    ASSERT_TRUE(gpu.is_valid()) << what;
    ASSERT_EQ(gpu.dims(), cpu.dims()) << what;
    int64_t bad = 0;
    for (int64_t e = 0; e < cpu.numel(); ++e) {
      const double g = gpu.element_as_double(e), r = cpu.element_as_double(e);
      if (!std::isnan(g) && std::fabs(g - r) <= 1e-2 * (std::fabs(r) + 1)) continue;
      if (bad++ < 5) ADD_FAILURE() << what << ": element " << e << " gpu " << g << " cpu " << r;
    }
    EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << cpu.numel() << " elements differ";
  }
}

TEST_F(GpuTest, MobileNetV2Fp16ChannelsLastLayersMatchCpuOnEveryTactic) {
  for (const MobileNetLayer& c : mobilenet_layers())
    for (int64_t batch : {int64_t(1), c.large_batch}) check_mobilenet_layer(c, batch);
}

// A batch size the layer has not run at: the plan at N = 8, then at 5, 13 and
// 32, each layer matching the CPU; the printed plan times show what a new
// batch size costs (not asserted: they depend on the GPU and cuDNN's engines).
TEST_F(GpuTest, ChannelsLastFusedConvPlansNewBatchSizesAndMatchesCpu) {
  std::printf("cuDNN %zu\n", cudnnGetVersion());
  for (int64_t n : {8, 5, 13, 32}) {
    cuda::CudnnConvSpec spec;
    spec.dtype = DType::kF16;
    spec.g.batch = n, spec.g.in_channels = 48, spec.g.out_channels = 80;
    for (int a = 1; a < 3; ++a) {
      spec.g.in[a] = spec.g.out[a] = 20;
      spec.g.kernel[a] = 3;
      spec.g.pad_begin[a] = spec.g.pad_end[a] = 1;
    }
    spec.workspace_limit = size_t(256) << 20;
    spec.fused = spec.fused_bias = spec.fused_residual = true;
    spec.activation = cuda::EpilogueActivation::kRelu;
    spec.channels_last = true;
    const auto start = std::chrono::steady_clock::now();
    std::shared_ptr<const cuda::CudnnConvPlan> plan = cuda::cudnn_conv_plan(spec);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("N=%lld fused f16 NHWC plan: %.1f ms, %s\n", static_cast<long long>(n), ms,
                plan ? "built" : "no engine");
    const NhwcConvCase c{"new batch size", {n, 20, 20, 48}, {80, 3, 3, 48}, {{"pads", ints({1, 1, 1, 1})}}};
    for (const char* tactic : {"", "cudnn_fused:1"}) check_nhwc_conv(c, DType::kF16, tactic);
  }
}

// The NHWC pool against the CPU's NHWC reference (which the unit tests hold
// to the NCHW one bit for bit). MaxPool picks an input element: exact.
void check_nhwc_pool(const std::string& op, DType t, const std::vector<int64_t>& nhwc, Attrs attrs,
                     const std::string& what) {
  attrs["channels_last"] = i(1);
  const Tensor x = t == DType::kU8 ? random_tensor(t, nhwc, 0, 250) : random_tensor(t, nhwc, -2, 2);
  const std::string name = fmt::format("NHWC {} {} {} {}", op, what, shape_str(nhwc), dtype_name(t));
  if (op == "MaxPool" || op == "GlobalMaxPool")
    expect_equal(run_cuda(op, {x}, attrs), run_cpu(op, {x}, attrs), name);
  else
    expect_close(run_cuda(op, {x}, attrs), run_cpu(op, {x}, attrs), tolerance_for(t), name);
}

const Attrs kCeilPads{
    {"kernel_shape", ints({3, 3})}, {"strides", ints({2, 2})}, {"pads", ints({1, 0, 1, 1})}, {"ceil_mode", i(1)}};

// C = 16 takes the 8-channel path in 16 bits, C = 5 the one-channel path.
TEST_F(GpuTest, ChannelsLastMaxPoolMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI8, DType::kU8})
    for (int64_t c : {16, 5}) check_nhwc_pool("MaxPool", t, {2, 17, 18, c}, kCeilPads, "ceil_mode pads");
  check_nhwc_pool("MaxPool", DType::kF16, {2, 17, 18, 24},
                  {{"kernel_shape", ints({3, 2})}, {"dilations", ints({2, 2})}, {"auto_pad", s("SAME_LOWER")}},
                  "dilated SAME_LOWER");
  check_nhwc_pool("MaxPool", DType::kF16, {4, 56, 56, 64},
                  {{"kernel_shape", ints({3, 3})}, {"strides", ints({2, 2})}, {"pads", ints({1, 1, 1, 1})}},
                  "ResNet stem pool");
  // pool2d_nhwc_rows_kernel's grid walks its rows in strides of 65535.
  check_nhwc_pool("MaxPool", DType::kF16, {33000, 4, 2, 8}, {{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}},
                  "66000 output rows");
}

TEST_F(GpuTest, ChannelsLastAveragePoolMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (int64_t c : {16, 5})
      for (int64_t include : {0, 1}) {
        Attrs a = kCeilPads;
        a["count_include_pad"] = i(include);
        check_nhwc_pool("AveragePool", t, {2, 17, 18, c}, a, "count_include_pad " + std::to_string(include));
      }
  check_nhwc_pool("AveragePool", DType::kF16, {1, 13, 13, 1000}, {{"kernel_shape", ints({13, 13})}}, "SqueezeNet head");
}

// Shapes for every block layout: one lane group (C = 24: 3 vectors), full
// warps over 2048 channels, long spatial runs (the unrolled loads and their
// tail), C = 3 (scalar), C = 12 (packs for f32 and f64 only), C = 10 (f64
// packs only), 144 and 1152 channels (18 and 24 lanes of f16 packs), 37
// (no lane count divides it: idle lanes), H*W = 1, and more batches than the
// grid's 65535 rows.
TEST_F(GpuTest, ChannelsLastGlobalPoolsMatchCpu) {
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool"})
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
      check_nhwc_pool(op, t, {2, 7, 9, 16}, {}, "small");
      check_nhwc_pool(op, t, {3, 7, 7, 2048}, {}, "ResNet head");
      check_nhwc_pool(op, t, {1, 56, 56, 24}, {}, "long planes");
      check_nhwc_pool(op, t, {2, 112, 112, 32}, {}, "EfficientNet features.1");
      check_nhwc_pool(op, t, {5, 4, 4, 3}, {}, "three channels");
      check_nhwc_pool(op, t, {3, 5, 5, 12}, {}, "twelve channels");
      check_nhwc_pool(op, t, {2, 6, 6, 10}, {}, "ten channels");
      check_nhwc_pool(op, t, {2, 11, 11, 144}, {}, "EfficientNet 144 channels");
      check_nhwc_pool(op, t, {2, 7, 7, 1152}, {}, "EfficientNet 1152 channels");
      check_nhwc_pool(op, t, {2, 13, 3, 37}, {}, "37 channels");
      check_nhwc_pool(op, t, {3, 1, 1, 40}, {}, "HW = 1");
    }
  check_nhwc_pool("GlobalAveragePool", DType::kF16, {70000, 1, 2, 8}, {}, "70000 batches");
}

}  // namespace
}  // namespace kiln::gpu_test
