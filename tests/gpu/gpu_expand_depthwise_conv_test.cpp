// kiln.ExpandDepthwiseConv on the GPU against the CPU reference (the two
// FusedConv layers, in double, the expanded tensor rounded between them):
// the fused kernel (kernels/expand_depthwise_conv.cu) launched on its own, so
// no fallback can hide it, and every tactic through the op ("kiln_expand_dw",
// "unfused", "unfused:<te>/<td>"). Cases: MobileNetV2's and EfficientNet-B0's
// channel counts at small sizes, a small one (C 8, E 32: 32-channel slices),
// K 3, 5 and 7, stride 1 and 2, odd H and W (7, 13), batch 1 and 3, asymmetric
// pads, Clip 0..6 and SiLU (and none, Relu, Sigmoid on one case), with and
// without biases; f16 and bf16 within 1e-2 of |cpu| + the depthwise's
// magnitude, NaN never passing. A capped grid makes each block loop over
// many units (tiles, chunks of slices, the double-buffered weights), and a
// misaligned x is declined by the kernel.
#include <fmt/format.h>

#include <cmath>

#include "backends/cuda/kernels/expand_depthwise_conv.cuh"
#include "gpu_test_util.h"
#include "ops/fused_activation.h"

namespace kiln::gpu_test {
namespace {

constexpr double kRtol = 1e-2;  // f16 and bf16

struct EdCase {
  const char* what;
  int64_t n, h, w, c, e, k, s;
  std::vector<int64_t> pads;  // top, left, bottom, right
};

std::vector<EdCase> cases() {
  return {
      {"MobileNetV2 16->96 s2", 1, 13, 13, 16, 96, 3, 2, {1, 1, 1, 1}},
      {"MobileNetV2 24->144 s1", 3, 13, 7, 24, 144, 3, 1, {1, 1, 1, 1}},
      {"MobileNetV2 160->960 7x7", 2, 7, 7, 160, 960, 3, 1, {1, 1, 1, 1}},
      {"MobileNetV2 96->576 s2 14x14", 1, 14, 14, 96, 576, 3, 2, {1, 1, 1, 1}},
      {"EfficientNet 40->240 k5 s1", 1, 13, 13, 40, 240, 5, 1, {2, 2, 2, 2}},
      {"EfficientNet 24->144 k5 s2", 3, 13, 7, 24, 144, 5, 2, {2, 2, 2, 2}},
      {"EfficientNet 192->1152 k5 7x7", 1, 7, 7, 192, 1152, 5, 1, {2, 2, 2, 2}},
      {"small 8->32 k7 s1", 1, 9, 13, 8, 32, 7, 1, {3, 3, 3, 3}},
      {"small 8->64 k3 s2 asymmetric pads", 3, 7, 13, 8, 64, 3, 2, {0, 1, 2, 0}},
      {"wide tile 16->96 s1 40x33", 1, 40, 33, 16, 96, 3, 1, {1, 1, 1, 1}},
  };
}

struct Activation {
  const char* name;
  std::vector<float> params;
};

std::vector<int64_t> out_dims(const EdCase& c) {
  return {c.n, (c.h + c.pads[0] + c.pads[2] - c.k) / c.s + 1, (c.w + c.pads[1] + c.pads[3] - c.k) / c.s + 1, c.e};
}

// The depthwise's magnitude: W1 is scaled by 1/sqrt(C) so an expanded value
// is about 0.5 (activations bite at both ends), W2 in [-1, 1]: K x K taps sum
// to about 0.5 k / sqrt(3).
double dw_scale(const EdCase& c) { return 0.5 * static_cast<double>(c.k) / std::sqrt(3.0); }

struct Inputs {
  std::vector<Tensor> ins;  // x, w1, b1 (or none), w2, b2 (or none)
  Attrs attrs;
};

Inputs make_inputs(const EdCase& c, DType t, const Activation& act, bool bias) {
  const float w1s = 1.f / std::sqrt(static_cast<float>(c.c));
  Inputs in;
  in.ins = {random_tensor(t, {c.n, c.h, c.w, c.c}, -1.f, 1.f, 1), random_tensor(t, {c.e, 1, 1, c.c}, -w1s, w1s, 2),
            bias ? random_tensor(t, {c.e}, -0.5f, 0.5f, 3) : Tensor(),
            random_tensor(t, {c.e, c.k, c.k, 1}, -1.f, 1.f, 4),
            bias ? random_tensor(t, {c.e}, -0.5f, 0.5f, 5) : Tensor()};
  if (!bias) in.ins.pop_back();
  in.attrs["strides"] = ints({c.s, c.s});
  in.attrs["pads"] = ints(c.pads);
  for (const char* prefix : {"", "expand_"}) {
    in.attrs[std::string(prefix) + "activation"] = Attribute::of_string(act.name);
    if (!act.params.empty()) in.attrs[std::string(prefix) + "activation_params"] = Attribute::of_floats(act.params);
  }
  return in;
}

std::string what(const char* route, const EdCase& c, DType t, const Activation& act, bool bias) {
  return fmt::format("{} {} {} act '{}'{}", route, c.what, dtype_name(t), act.name, bias ? " bias" : "");
}

Tensor run_op(bool gpu, const Inputs& in, const std::string& tactic) {
  std::vector<RunValue> values;
  auto g = one_node_graph("kiln.ExpandDepthwiseConv", in.ins, in.attrs, 1, 1, values);
  if (!tactic.empty()) g->nodes()[0]->metadata["kiln.tactic"] = tactic;
  auto out = gpu ? cuda::run_graph_on_cuda(*g, std::move(values), {}) : run_graph_on_cpu(*g, std::move(values));
  EXPECT_TRUE(out.is_ok()) << (gpu ? "cuda " : "cpu ") << tactic << ": " << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

cuda::EpilogueActivation epilogue_of(const Activation& a) {
  const std::string n = a.name;
  if (n == "Relu") return cuda::EpilogueActivation::kRelu;
  if (n == "Clip") return cuda::EpilogueActivation::kClip;
  if (n == "Sigmoid") return cuda::EpilogueActivation::kSigmoid;
  if (n == "Silu") return cuda::EpilogueActivation::kSilu;
  return cuda::EpilogueActivation::kNone;
}

// The fused kernel launched on its own; `x_shift` elements off x's allocation.
Tensor run_kernel(const EdCase& c, DType t, const Inputs& in, const Activation& act, int x_shift, bool* launched) {
  const bool bias = in.ins.size() == 5;
  const size_t off = 2 * static_cast<size_t>(x_shift);
  const Tensor& x = in.ins[0];
  cuda::DeviceBuffer dx = device_zeros(x.nbytes() + off);
  EXPECT_EQ(cudaMemcpy(static_cast<char*>(dx.data()) + off, x.raw(), x.nbytes(), cudaMemcpyHostToDevice), cudaSuccess);
  cuda::DeviceBuffer dw1 = upload(in.ins[1]), dw2 = upload(in.ins[3]);
  cuda::DeviceBuffer db1 = bias ? upload(in.ins[2]) : device_zeros(16),
                     db2 = bias ? upload(in.ins[4]) : device_zeros(16);
  const std::vector<int64_t> yd = out_dims(c);
  cuda::DeviceBuffer dy = device_zeros(static_cast<size_t>(numel(yd)) * 2);
  cuda::ExpandDepthwiseParams p;
  p.dtype = t;
  p.layer.n = c.n, p.layer.h = c.h, p.layer.w = c.w, p.layer.c = c.c, p.layer.e = c.e, p.layer.k = c.k;
  p.layer.s = c.s, p.layer.pt = c.pads[0], p.layer.pl = c.pads[1], p.layer.pb = c.pads[2], p.layer.pr = c.pads[3];
  p.x = static_cast<const char*>(dx.data()) + off, p.w1 = dw1.data(), p.w2 = dw2.data(), p.y = dy.data();
  p.b1 = bias ? db1.data() : nullptr, p.b2 = bias ? db2.data() : nullptr;
  p.act1 = p.act2 = epilogue_of(act);
  if (!act.params.empty()) p.lo1 = p.lo2 = act.params[0], p.hi1 = p.hi2 = act.params[1];
  *launched = cuda::expand_depthwise_conv_runs(p);
  const Status st = cuda::launch_expand_depthwise_conv(p, nullptr);
  EXPECT_EQ(st.is_ok(), *launched) << st.to_string();
  if (!st.is_ok()) return {};
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  return download(dy.data(), t, yd);
}

const DType kHalfTypes[] = {DType::kF16, DType::kBF16};
const Activation kClip{"Clip", {0.f, 6.f}}, kSilu{"Silu", {}};

void check_kernel(const EdCase& c, DType t, const Activation& act, bool bias) {
  const Inputs in = make_inputs(c, t, act, bias);
  const Tensor cpu = run_op(false, in, "");
  ASSERT_TRUE(cpu.is_valid());
  ASSERT_EQ(cpu.dims(), out_dims(c));
  bool launched = false;
  const Tensor gpu = run_kernel(c, t, in, act, 0, &launched);
  ASSERT_TRUE(launched) << what("kernel", c, t, act, bias) << ": the plan declined the layer";
  expect_close_at_scale(gpu, cpu, kRtol, dw_scale(c), what("kernel", c, t, act, bias));
}

TEST_F(GpuTest, ExpandDepthwiseKernelMatchesCpu) {
  for (const EdCase& c : cases())
    for (DType t : kHalfTypes)
      for (const Activation& act : {kClip, kSilu}) check_kernel(c, t, act, true);
}

TEST_F(GpuTest, ExpandDepthwiseKernelMatchesCpuWithoutBiasesAndForEveryActivation) {
  const EdCase c = cases()[1];
  for (DType t : kHalfTypes) {
    for (const Activation& act : {Activation{"", {}}, Activation{"Relu", {}}, Activation{"Sigmoid", {}}, kClip})
      check_kernel(c, t, act, false);
  }
}

// Each block loops over many units: the grid capped at 1 and at 3 blocks.
TEST_F(GpuTest, ExpandDepthwiseKernelMatchesCpuWithFewBlocks) {
  for (int blocks : {1, 3}) {
    cuda::set_expand_depthwise_test_hooks({blocks});
    for (const EdCase& c : cases()) check_kernel(c, DType::kF16, kSilu, true);
  }
  cuda::set_expand_depthwise_test_hooks({});
}

// Every tactic the op offers for a case, through the executor.
TEST_F(GpuTest, ExpandDepthwiseEveryTacticMatchesCpu) {
  const std::vector<std::string> tactics = {"",
                                            "kiln_expand_dw",
                                            "unfused",
                                            "unfused:/kiln_dw",
                                            "unfused:kiln_igemm/kiln_dw_strip",
                                            "unfused:cublaslt:0/kiln_dw",
                                            "unfused:cudnn:0/cudnn:0"};
  for (const EdCase& c : {cases()[0], cases()[4], cases()[8]}) {
    for (DType t : kHalfTypes) {
      for (const Activation& act : {kClip, kSilu}) {
        const Inputs in = make_inputs(c, t, act, true);
        const Tensor cpu = run_op(false, in, "");
        for (const std::string& tactic : tactics)
          expect_close_at_scale(run_op(true, in, tactic), cpu, kRtol, dw_scale(c),
                                what(("tactic '" + tactic + "'").c_str(), c, t, act, true));
      }
    }
  }
}

// Batch 1 at MobileNetV2's first expansion size (112 x 112, stride 2): many tiles of one image.
TEST_F(GpuTest, ExpandDepthwiseKernelMatchesCpuOnALargeImage) {
  const EdCase c{"MobileNetV2 16->96 s2 112x112", 1, 112, 112, 16, 96, 3, 2, {1, 1, 1, 1}};
  check_kernel(c, DType::kF16, kClip, true);
}

// x off its 16-byte alignment: the kernel declines it, reading nothing (the
// op then runs its layers unfused: expand_depthwise_conv.cpp).
TEST_F(GpuTest, ExpandDepthwiseMisalignedXRunsUnfused) {
  const EdCase c = cases()[0];
  for (DType t : kHalfTypes) {
    const Inputs in = make_inputs(c, t, kClip, true);
    bool launched = true;
    (void)run_kernel(c, t, in, kClip, 1, &launched);
    EXPECT_FALSE(launched);
  }
}

}  // namespace
}  // namespace kiln::gpu_test
