// Conv, ConvTranspose, the pools and the quantized convolutions through the
// CUDA executor, against the CPU backend. Float operands are positive (0.1 to
// 1) so sums do not cancel and relative tolerances mean something; f32 runs
// with TF32 off.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cstdio>

#include "backends/cuda/kernels/conv.cuh"
#include "backends/cuda/ops/cudnn_conv.h"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

// Long f32 sums: the CPU adds in double, cuDNN in float in its own order.
double conv_tolerance(DType t) { return t == DType::kF32 ? 1e-4 : 1e-2; }

Tensor operand(DType t, std::vector<int64_t> dims, uint32_t seed) { return random_tensor(t, dims, 0.1f, 1.f, seed); }

struct ConvCase {
  const char* what;
  std::vector<int64_t> x, w;
  Attrs attrs;
  bool bias = true;
};

void check_conv(const std::string& op, const ConvCase& c, DType t) {
  const Tensor x = operand(t, c.x, 1), w = operand(t, c.w, 2);
  const int64_t m = op == "Conv" ? c.w[0] : c.w[1] * (c.attrs.count("group") ? c.attrs.at("group").i : 1);
  std::vector<Tensor> ins{x, w};
  if (c.bias) ins.push_back(operand(t, {m}, 3));
  const std::string what = op + " " + c.what + " " + std::string(dtype_name(t));
  expect_close(run_cuda(op, ins, c.attrs), run_cpu(op, ins, c.attrs), conv_tolerance(t), what);
}

std::vector<ConvCase> conv_cases() {
  return {
      {"3x3 pad 1 stride 2", {2, 5, 17, 19}, {8, 5, 3, 3}, {{"pads", ints({1, 1, 1, 1})}, {"strides", ints({2, 2})}}},
      {"1x1", {2, 16, 9, 11}, {12, 16, 1, 1}, {}, false},
      {"7x7 stride 2 stem", {1, 3, 45, 45}, {16, 3, 7, 7}, {{"pads", ints({3, 3, 3, 3})}, {"strides", ints({2, 2})}}},
      {"depthwise", {2, 12, 15, 13}, {12, 1, 3, 3}, {{"group", i(12)}, {"pads", ints({1, 1, 1, 1})}}},
      {"grouped", {1, 12, 10, 10}, {18, 4, 3, 3}, {{"group", i(3)}}, false},
      {"dilated", {1, 4, 20, 20}, {6, 4, 3, 3}, {{"dilations", ints({2, 2})}, {"pads", ints({2, 2, 2, 2})}}},
      {"asymmetric pads", {1, 4, 12, 13}, {6, 4, 3, 3}, {{"pads", ints({0, 1, 2, 1})}}},
      {"SAME_UPPER stride 2", {1, 4, 15, 16}, {6, 4, 3, 3}, {{"auto_pad", s("SAME_UPPER")}, {"strides", ints({2, 2})}}},
      {"SAME_LOWER", {1, 4, 15, 16}, {6, 4, 4, 4}, {{"auto_pad", s("SAME_LOWER")}}, false},
      {"VALID stride 3", {1, 4, 17, 16}, {6, 4, 3, 2}, {{"auto_pad", s("VALID")}, {"strides", ints({3, 3})}}},
      {"1-D", {2, 6, 31}, {8, 6, 5}, {{"pads", ints({2, 2})}}},
      {"1-D stride 3 dilation 2", {2, 6, 40}, {8, 6, 3}, {{"strides", ints({3})}, {"dilations", ints({2})}}, false},
      {"3-D", {1, 3, 7, 9, 8}, {4, 3, 3, 3, 3}, {{"pads", ints({1, 1, 1, 1, 1, 1})}}},
      {"3-D stride 2 dilation 2",
       {1, 3, 9, 10, 11},
       {5, 3, 2, 3, 2},
       {{"strides", ints({2, 2, 2})}, {"dilations", ints({2, 2, 2})}},
       false},
      {"many blocks", {2, 32, 28, 30}, {48, 32, 3, 3}, {{"pads", ints({1, 1, 1, 1})}}},
  };
}

TEST_F(GpuTest, ConvMatchesCpuForEveryGeometryAndFloatType) {
  for (const ConvCase& c : conv_cases())
    for (DType t : kFloatTypes) check_conv("Conv", c, t);
}

TEST_F(GpuTest, ConvF64RunsTheDirectKernel) {
  check_conv("Conv", {"f64 asymmetric", {1, 4, 12, 13}, {6, 2, 3, 3}, {{"group", i(2)}, {"pads", ints({0, 1, 2, 1})}}},
             DType::kF64);
}

// The direct kernel on its own (cuDNN takes most cases through the executor).
TEST_F(GpuTest, DirectConvKernelMatchesCpu) {
  for (DType t : kFloatTypes) {
    const Tensor x = operand(t, {2, 6, 11, 13}, 1), w = operand(t, {4, 3, 3, 3}, 2), b = operand(t, {4}, 3);
    const Attrs attrs{
        {"pads", ints({1, 0, 2, 1})}, {"dilations", ints({2, 1})}, {"strides", ints({1, 2})}, {"group", i(2)}};
    const Tensor ref = run_cpu("Conv", {x, w, b}, attrs);
    ASSERT_EQ(ref.dims(), (std::vector<int64_t>{2, 4, 10, 6}));
    cuda::DeviceBuffer dx = upload(x), dw = upload(w), db = upload(b), dy = device_zeros(ref.nbytes());
    cuda::DirectConvParams p;
    p.dtype = t;
    p.g.batch = 2, p.g.in_channels = 6, p.g.out_channels = 4, p.g.group = 2;
    const int64_t in[3] = {1, 11, 13}, out[3] = {1, 10, 6}, k[3] = {1, 3, 3}, st[3] = {1, 1, 2}, dil[3] = {1, 2, 1},
                  pb[3] = {0, 1, 0}, pe[3] = {0, 2, 1};
    for (int a = 0; a < 3; ++a) {
      p.g.in[a] = in[a], p.g.out[a] = out[a], p.g.kernel[a] = k[a], p.g.stride[a] = st[a];
      p.g.dilation[a] = dil[a], p.g.pad_begin[a] = pb[a], p.g.pad_end[a] = pe[a];
    }
    p.x = dx.data(), p.w = dw.data(), p.bias = db.data(), p.y = dy.data();
    ASSERT_TRUE(cuda::launch_direct_conv(p, nullptr).is_ok());
    expect_close(download(dy.data(), t, ref.dims()), ref, conv_tolerance(t), "direct " + std::string(dtype_name(t)));
  }
}

TEST_F(GpuTest, ConvTransposeMatchesCpu) {
  const std::vector<ConvCase> cases = {
      {"stride 2 output_padding 1",
       {1, 6, 7, 9},
       {6, 4, 3, 3},
       {{"strides", ints({2, 2})}, {"pads", ints({1, 1, 1, 1})}, {"output_padding", ints({1, 1})}}},
      {"grouped", {2, 6, 5, 6}, {6, 3, 4, 4}, {{"group", i(2)}, {"strides", ints({2, 2})}}, false},
      {"asymmetric pads", {1, 4, 6, 7}, {4, 5, 3, 3}, {{"strides", ints({2, 2})}, {"pads", ints({0, 1, 1, 2})}}},
      {"output_shape", {1, 4, 6, 7}, {4, 3, 3, 3}, {{"strides", ints({2, 2})}, {"output_shape", ints({12, 13})}}},
      // Past the full result: negative end pads, which only the direct kernel takes.
      {"output_shape past the full result",
       {1, 4, 6, 7},
       {4, 3, 3, 3},
       {{"strides", ints({2, 2})}, {"output_shape", ints({16, 17})}}},
      {"SAME_UPPER", {1, 4, 6, 7}, {4, 3, 3, 3}, {{"strides", ints({2, 2})}, {"auto_pad", s("SAME_UPPER")}}},
      {"1-D dilated", {2, 5, 13}, {5, 3, 3}, {{"dilations", ints({2})}, {"strides", ints({3})}}},
      {"3-D", {1, 3, 4, 5, 6}, {3, 2, 3, 3, 3}, {{"strides", ints({2, 2, 2})}, {"pads", ints({1, 1, 1, 1, 1, 1})}}},
  };
  for (const ConvCase& c : cases)
    for (DType t : kFloatTypes) check_conv("ConvTranspose", c, t);
  check_conv("ConvTranspose", cases[0], DType::kF64);
  check_conv("ConvTranspose", cases[2], DType::kF64);
}

// ---- kiln::FusedConv: y = act(conv(x, w) + b + z) ----

struct FusedCase {
  const char* what;
  std::vector<int64_t> x, w;
  Attrs attrs;
  bool bias = true, residual = true;
};

struct Activation {
  const char* name;
  std::vector<float> params;
};

const Activation kActivations[] = {{"", {}},        {"Relu", {}}, {"Clip", {0.f, 6.f}}, {"Clip", {-1.f, 2.f}},
                                   {"Sigmoid", {}}, {"Silu", {}}};

// X and W positive (0.1 to 1), bias and Z in [-s, 0] with s about the
// convolution's mean, so the sum straddles zero and every activation bites.
void check_fused(const FusedCase& c, DType t, const Activation& act, const std::string& tactic) {
  int64_t taps = c.w[1];
  for (size_t d = 2; d < c.w.size(); ++d) taps *= c.w[d];
  const float s = 0.3f * static_cast<float>(taps);
  Attrs attrs = c.attrs;
  attrs["activation"] = Attribute::of_string(act.name);
  if (!act.params.empty()) attrs["activation_params"] = Attribute::of_floats(act.params);
  const Tensor x = operand(t, c.x, 1), w = operand(t, c.w, 2);
  std::vector<Tensor> ins{x, w, c.bias ? random_tensor(t, {c.w[0]}, -s / 2, 0.f, 3) : Tensor()};
  const Tensor ref_plain = run_cpu("Conv", {x, w}, c.attrs);
  ASSERT_TRUE(ref_plain.is_valid());
  if (c.residual) ins.push_back(random_tensor(t, ref_plain.dims(), -s, 0.f, 4));
  if (!c.residual && !c.bias) ins.pop_back();
  const std::string what =
      fmt::format("FusedConv {} {} act '{}'{} tactic '{}'", c.what, dtype_name(t), act.name,
                  act.params.empty() ? "" : fmt::format(" {}", fmt::join(act.params, ",")), tactic);
  const double rtol = t == DType::kF32 ? 1e-5 : (t == DType::kF64 ? 1e-12 : 1e-2);
  expect_close_at_scale(run_fused_conv(true, ins, attrs, tactic), run_fused_conv(false, ins, attrs, ""), rtol, s, what);
}

std::vector<FusedCase> fused_cases() {
  return {
      {"3x3 pad 1", {2, 8, 14, 14}, {16, 8, 3, 3}, {{"pads", ints({1, 1, 1, 1})}}},
      {"1x1 no bias", {2, 16, 9, 11}, {12, 16, 1, 1}, {}, false, true},
      {"3x3 stride 2 no residual",
       {2, 8, 15, 17},
       {8, 8, 3, 3},
       {{"pads", ints({1, 1, 1, 1})}, {"strides", ints({2, 2})}},
       true,
       false},
      {"depthwise", {2, 12, 15, 13}, {12, 1, 3, 3}, {{"group", i(12)}, {"pads", ints({1, 1, 1, 1})}}},
      {"grouped stride 2", {1, 12, 10, 10}, {18, 4, 3, 3}, {{"group", i(3)}, {"strides", ints({2, 2})}}},
      {"asymmetric pads", {1, 4, 12, 13}, {6, 4, 3, 3}, {{"pads", ints({0, 1, 2, 1})}}},
      {"activation only", {1, 8, 9, 9}, {8, 8, 1, 1}, {}, false, false},
  };
}

// Every tactic family: "" (the fused graph when cuDNN has one), the fused
// graph's first engine (or its fallback), and the plain convolution plus
// kiln's epilogue kernel; f32 with TF32 off.
TEST_F(GpuTest, FusedConvMatchesCpuForEveryActivationTacticAndFloatType) {
  for (const FusedCase& c : fused_cases())
    for (DType t : kFloatTypes)
      for (const Activation& act : kActivations)
        for (const char* tactic : {"", "cudnn_fused:0", "cudnn:0"}) check_fused(c, t, act, tactic);
}

// f64 has no cuDNN route: the direct convolution, then the epilogue kernel.
TEST_F(GpuTest, FusedConvF64RunsTheDirectKernelAndTheEpilogue) {
  for (const Activation& act : kActivations) check_fused(fused_cases()[0], DType::kF64, act, "");
}

TEST_F(GpuTest, FusedConvRejectsAResidualOfAnotherShape) {
  const Tensor x = operand(DType::kF32, {1, 2, 4, 4}, 1), w = operand(DType::kF32, {2, 2, 1, 1}, 2);
  const Tensor z = operand(DType::kF32, {1, 2, 4, 3}, 3);
  std::vector<RunValue> values;
  auto g = one_node_graph("FusedConv", {x, w, Tensor(), z}, {}, 1, 1, values);
  g->nodes()[0]->domain = "kiln";
  auto out = cuda::run_graph_on_cuda(*g, std::move(values), {});
  ASSERT_FALSE(out.is_ok());
  EXPECT_NE(out.status().to_string().find("residual Z"), std::string::npos) << out.status().to_string();
}

// Which fused graphs cuDNN has engines for (NCHW): printed for the record,
// since the answer depends on the cuDNN version and GPU; the layer runs either way.
TEST_F(GpuTest, FusedConvReportsCudnnFusedEngineCounts) {
  for (DType t : kFloatTypes) {
    for (auto act :
         {cuda::EpilogueActivation::kNone, cuda::EpilogueActivation::kRelu, cuda::EpilogueActivation::kSilu}) {
      cuda::CudnnConvSpec spec;
      spec.dtype = t;
      spec.g.batch = 8, spec.g.in_channels = 64, spec.g.out_channels = 64;
      for (int a = 1; a < 3; ++a) {
        spec.g.in[a] = spec.g.out[a] = 28;
        spec.g.kernel[a] = 3;
        spec.g.pad_begin[a] = spec.g.pad_end[a] = 1;
      }
      spec.workspace_limit = size_t(256) << 20;
      spec.fused = true, spec.fused_bias = true, spec.fused_residual = true, spec.activation = act;
      std::printf("cuDNN fused conv+bias+add+act(%d) engines, %s NCHW: %d\n", static_cast<int>(act),
                  std::string(dtype_name(t)).c_str(), cuda::cudnn_conv_engine_count(spec, 16));
    }
  }
}

// MaxPool's values and indices are exact.
void check_max_pool(DType t, const std::vector<int64_t>& dims, const Attrs& attrs, const std::string& what) {
  const Tensor x = t == DType::kU8 ? random_tensor(t, dims, 0, 250) : random_tensor(t, dims, -100, 100);
  for (size_t out : {0, 1}) {
    const std::string w = what + " " + std::string(dtype_name(t)) + (out ? " indices" : " values");
    expect_equal(run_cuda("MaxPool", {x}, attrs, out, 2), run_cpu("MaxPool", {x}, attrs, out, 2), w);
  }
}

TEST_F(GpuTest, MaxPoolMatchesCpuWithIndices) {
  const Attrs ceil{
      {"kernel_shape", ints({3, 3})}, {"strides", ints({2, 2})}, {"pads", ints({1, 1, 0, 1})}, {"ceil_mode", i(1)}};
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI8, DType::kU8, DType::kI32})
    check_max_pool(t, {2, 3, 17, 18}, ceil, "ceil_mode pads");
  check_max_pool(DType::kF32, {2, 3, 17, 18},
                 {{"kernel_shape", ints({3, 2})}, {"dilations", ints({2, 2})}, {"storage_order", i(1)}},
                 "dilated column-major");
  check_max_pool(DType::kF16, {2, 4, 33},
                 {{"kernel_shape", ints({4})}, {"strides", ints({3})}, {"auto_pad", s("SAME_UPPER")}},
                 "1-D SAME_UPPER");
  check_max_pool(DType::kF32, {1, 2, 7, 8, 9},
                 {{"kernel_shape", ints({2, 3, 2})}, {"strides", ints({2, 2, 2})}, {"ceil_mode", i(1)}},
                 "3-D ceil_mode");
  check_max_pool(DType::kF32, {4, 64, 56, 56},
                 {{"kernel_shape", ints({3, 3})}, {"strides", ints({2, 2})}, {"pads", ints({1, 1, 1, 1})}},
                 "ResNet stem pool");
}

void check_pool(const std::string& op, DType t, const std::vector<int64_t>& dims, const Attrs& attrs,
                const std::string& what) {
  const Tensor x = random_tensor(t, dims, -2, 2);
  expect_close(run_cuda(op, {x}, attrs), run_cpu(op, {x}, attrs), tolerance_for(t),
               op + " " + what + " " + std::string(dtype_name(t)));
}

TEST_F(GpuTest, AverageAndLpPoolMatchCpu) {
  const Attrs base{
      {"kernel_shape", ints({3, 3})}, {"strides", ints({2, 2})}, {"pads", ints({1, 0, 1, 1})}, {"ceil_mode", i(1)}};
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    for (int64_t include : {0, 1}) {
      Attrs a = base;
      a["count_include_pad"] = i(include);
      check_pool("AveragePool", t, {2, 3, 17, 18}, a, "count_include_pad " + std::to_string(include));
    }
    for (int64_t p : {1, 2, 3}) {
      Attrs a = base;
      a["p"] = i(p);
      check_pool("LpPool", t, {2, 3, 17, 18}, a, "p " + std::to_string(p));
    }
  }
  check_pool("AveragePool", DType::kF32, {1, 2, 7, 8, 9},
             {{"kernel_shape", ints({2, 3, 3})}, {"auto_pad", s("SAME_LOWER")}, {"count_include_pad", i(1)}},
             "3-D SAME_LOWER");
  check_pool("AveragePool", DType::kF32, {2, 5, 40},
             {{"kernel_shape", ints({5})}, {"dilations", ints({2})}, {"pads", ints({2, 2})}}, "1-D dilated");
}

TEST_F(GpuTest, GlobalPoolsMatchCpu) {
  for (const char* op : {"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
      check_pool(op, t, {2, 5, 7, 9}, {}, "2-D");
      check_pool(op, t, {3, 37, 1000}, {}, "1-D long planes");
    }
  check_pool("GlobalLpPool", DType::kF32, {2, 3, 4, 5, 6}, {{"p", i(3)}}, "3-D p 3");
}

TEST_F(GpuTest, MaxUnpoolMatchesCpu) {
  const Attrs pool{{"kernel_shape", ints({2, 2})}, {"strides", ints({2, 2})}};
  for (DType t : {DType::kF32, DType::kF16, DType::kI32}) {
    const Tensor x = random_tensor(t, {2, 3, 10, 12}, -50, 50);
    const Tensor values = run_cpu("MaxPool", {x}, pool, 0, 2), indices = run_cpu("MaxPool", {x}, pool, 1, 2);
    const std::string what = "MaxUnpool " + std::string(dtype_name(t));
    expect_equal(run_cuda("MaxUnpool", {values, indices}, pool), run_cpu("MaxUnpool", {values, indices}, pool), what);
    const Tensor shape = Tensor::vector_i64({2, 3, 11, 13});
    expect_equal(run_cuda("MaxUnpool", {values, indices, shape}, pool),
                 run_cpu("MaxUnpool", {values, indices, shape}, pool), what + " output_shape");
  }
}

Tensor scalar(DType t, double v) {
  Tensor out(t, {});
  switch (t) {
    case DType::kF32: out.mutable_data<float>()[0] = static_cast<float>(v); break;
    case DType::kU8: out.mutable_data<uint8_t>()[0] = static_cast<uint8_t>(v); break;
    case DType::kI8: out.mutable_data<int8_t>()[0] = static_cast<int8_t>(v); break;
    default: ADD_FAILURE() << "scalar: dtype " << dtype_name(t);
  }
  return out;
}

TEST_F(GpuTest, ConvIntegerMatchesCpu) {
  const Tensor x = random_tensor(DType::kU8, {2, 4, 9, 11}, 0, 250),
               w = random_tensor(DType::kI8, {6, 2, 3, 3}, -120, 120);
  const Attrs attrs{{"pads", ints({1, 1, 0, 2})}, {"group", i(2)}, {"strides", ints({2, 1})}};
  const std::vector<Tensor> ins{x, w, scalar(DType::kU8, 131), scalar(DType::kI8, -3)};
  expect_equal(run_cuda("ConvInteger", ins, attrs), run_cpu("ConvInteger", ins, attrs), "ConvInteger u8 x i8");
  const std::vector<Tensor> no_zero{x, w};
  expect_equal(run_cuda("ConvInteger", no_zero, attrs), run_cpu("ConvInteger", no_zero, attrs),
               "ConvInteger no zero points");
}

TEST_F(GpuTest, QLinearConvMatchesCpuPerChannel) {
  const int64_t m = 6;
  const Tensor x = random_tensor(DType::kU8, {1, 3, 10, 9}, 0, 250),
               w = random_tensor(DType::kI8, {m, 3, 3, 3}, -120, 120);
  const Tensor w_scale = random_tensor(DType::kF32, {m}, 0.001f, 0.01f, 5),
               bias = random_tensor(DType::kI32, {m}, -500, 500, 6);
  Tensor w_zero(DType::kI8, {m});  // per channel, zeros (ONNX requires symmetric int8 weights)
  std::memset(w_zero.mutable_raw(), 0, w_zero.nbytes());
  const Attrs attrs{{"pads", ints({1, 1, 1, 1})}};
  const std::vector<Tensor> ins{x,      scalar(DType::kF32, 0.02), scalar(DType::kU8, 128), w,   w_scale,
                                w_zero, scalar(DType::kF32, 0.05), scalar(DType::kU8, 120), bias};
  expect_equal(run_cuda("QLinearConv", ins, attrs), run_cpu("QLinearConv", ins, attrs), "QLinearConv u8 per channel");
}

TEST_F(GpuTest, GridSampleMatchesCpuForEveryModeAndPadding) {
  for (DType t : kFloatTypes)
    for (const char* mode : {"linear", "nearest", "cubic"})
      for (const char* padding : {"zeros", "border", "reflection"})
        for (int64_t align : {0, 1}) {
          const Tensor x = random_tensor(t, {2, 3, 9, 11}, -2, 2, 1),
                       grid = random_tensor(t, {2, 5, 7, 2}, -1.2f, 1.2f, 2);
          const Attrs attrs{{"mode", s(mode)}, {"padding_mode", s(padding)}, {"align_corners", i(align)}};
          const std::string what = std::string("GridSample ") + mode + " " + padding + " align " +
                                   std::to_string(align) + " " + std::string(dtype_name(t));
          expect_close(run_cuda("GridSample", {x, grid}, attrs), run_cpu("GridSample", {x, grid}, attrs),
                       tolerance_for(t), what);
        }
  const Tensor x = random_tensor(DType::kF32, {1, 2, 5, 6, 7}, -2, 2, 3),
               grid = random_tensor(DType::kF32, {1, 3, 4, 5, 3}, -1.1f, 1.1f, 4);
  expect_close(run_cuda("GridSample", {x, grid}), run_cpu("GridSample", {x, grid}), 1e-5, "GridSample 3-D");
}

TEST_F(GpuTest, AffineGridMatchesCpu) {
  for (DType t : kFloatTypes)
    for (int64_t align : {0, 1}) {
      const std::string what = "AffineGrid align " + std::to_string(align) + " " + std::string(dtype_name(t));
      const Tensor theta2 = random_tensor(t, {2, 2, 3}, -1, 1, 1), size2 = Tensor::vector_i64({2, 3, 5, 7});
      expect_close(run_cuda("AffineGrid", {theta2, size2}, {{"align_corners", i(align)}}),
                   run_cpu("AffineGrid", {theta2, size2}, {{"align_corners", i(align)}}), tolerance_for(t), what);
      const Tensor theta3 = random_tensor(t, {1, 3, 4}, -1, 1, 2), size3 = Tensor::vector_i64({1, 1, 3, 4, 5});
      expect_close(run_cuda("AffineGrid", {theta3, size3}, {{"align_corners", i(align)}}),
                   run_cpu("AffineGrid", {theta3, size3}, {{"align_corners", i(align)}}), tolerance_for(t),
                   what + " 3-D");
    }
}

TEST_F(GpuTest, RoiAlignMatchesCpu) {
  const std::vector<float> boxes = {1, 1, 9, 7, 0.5f, 2, 13, 11, 3, 0, 4, 12, -1, -1, 6, 5, 2.5f, 3.5f, 20, 20};
  Tensor batch(DType::kI64, {5});
  for (int64_t r = 0; r < 5; ++r) batch.mutable_data<int64_t>()[r] = r % 2;
  for (DType t : {DType::kF32, DType::kF16}) {
    const Tensor x = random_tensor(t, {2, 4, 12, 14}, -2, 2);
    Tensor rois(t, {5, 4});
    for (size_t k = 0; k < boxes.size(); ++k) {
      if (t == DType::kF32)
        rois.mutable_data<float>()[k] = boxes[k];
      else
        rois.mutable_data<uint16_t>()[k] = f32_to_f16(boxes[k]);
    }
    for (const char* mode : {"avg", "max"})
      for (const char* transform : {"half_pixel", "output_half_pixel"})
        for (int64_t ratio : {0, 2}) {
          const Attrs attrs{{"mode", s(mode)},
                            {"coordinate_transformation_mode", s(transform)},
                            {"sampling_ratio", i(ratio)},
                            {"output_height", i(3)},
                            {"output_width", i(4)},
                            {"spatial_scale", Attribute::of_float(0.75f)}};
          const std::string what = std::string("RoiAlign ") + mode + " " + transform + " ratio " +
                                   std::to_string(ratio) + " " + std::string(dtype_name(t));
          expect_close(run_cuda("RoiAlign", {x, rois, batch}, attrs), run_cpu("RoiAlign", {x, rois, batch}, attrs),
                       tolerance_for(t), what);
        }
  }
}

TEST_F(GpuTest, DeformConvMatchesCpu) {
  for (DType t : kFloatTypes) {
    const Tensor x = operand(t, {1, 4, 8, 9}, 1), w = operand(t, {6, 2, 3, 3}, 2), b = operand(t, {6}, 3);
    const Tensor offset = random_tensor(t, {1, 36, 8, 9}, -2, 2, 4), mask = operand(t, {1, 18, 8, 9}, 5);
    const Attrs attrs{{"pads", ints({1, 1, 1, 1})}, {"group", i(2)}, {"offset_group", i(2)}};
    const std::vector<Tensor> ins{x, w, offset, b, mask};
    expect_close(run_cuda("DeformConv", ins, attrs), run_cpu("DeformConv", ins, attrs), conv_tolerance(t),
                 "DeformConv " + std::string(dtype_name(t)));
  }
}

TEST_F(GpuTest, CausalConvWithStateMatchesCpu) {
  for (DType t : kFloatTypes)
    for (const char* act : {"none", "silu"}) {
      const Tensor x = random_tensor(t, {2, 5, 17}, -2, 2, 1), w = random_tensor(t, {5, 1, 4}, -1, 1, 2);
      const Tensor b = random_tensor(t, {5}, -1, 1, 3), past = random_tensor(t, {2, 5, 3}, -2, 2, 4);
      const Attrs attrs{{"activation", s(act)}};
      const std::string what = std::string("CausalConvWithState ") + act + " " + std::string(dtype_name(t));
      for (size_t out : {0, 1})
        expect_close(run_cuda("CausalConvWithState", {x, w, b, past}, attrs, out, 2),
                     run_cpu("CausalConvWithState", {x, w, b, past}, attrs, out, 2), tolerance_for(t),
                     what + " output " + std::to_string(out));
      expect_close(run_cuda("CausalConvWithState", {x, w}, attrs), run_cpu("CausalConvWithState", {x, w}, attrs),
                   tolerance_for(t), what + " no state");
    }
}

}  // namespace
}  // namespace kiln::gpu_test
