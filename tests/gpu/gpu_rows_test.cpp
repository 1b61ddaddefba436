// Row kernels (Softmax, LogSoftmax, LayerNormalization, RMSNormalization)
// and reductions against the CPU backend.
#include "backends/cuda/kernels/normalization.cuh"
#include "backends/cuda/kernels/reduce.cuh"
#include "backends/cuda/kernels/softmax.cuh"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

// Short rows take the warp-per-row kernel, long ones the block-per-row one.
const std::vector<std::vector<int64_t>> kRowShapes = {{1, 1}, {3, 7}, {5, 1000}, {2, 3, 1025}, {64, 4096}, {2, 20001}};

TEST_F(GpuTest, SoftmaxAndLogSoftmaxMatchCpuOverTheLastAxis) {
  for (bool log : {false, true})
    for (DType t : kFloatTypes)
      for (const auto& dims : kRowShapes) {
        const Tensor x = random_tensor(t, dims, -8.f, 8.f);
        const Tensor ref = run_cpu(log ? "LogSoftmax" : "Softmax", {x}, {{"axis", Attribute::of_int(-1)}});
        cuda::DeviceBuffer dx = upload(x), dy = device_zeros(x.nbytes());
        cuda::SoftmaxParams p{t, dx.data(), dy.data(), x.numel() / dims.back(), dims.back(), log};
        ASSERT_TRUE(cuda::launch_softmax(p, nullptr).is_ok());
        expect_close(download(dy.data(), t, dims), ref, tolerance_for(t),
                     std::string(log ? "LogSoftmax " : "Softmax ") + std::string(dtype_name(t)) + shape_str(dims));
      }
}

void check_norm(bool rms, bool with_bias, DType t, const std::vector<int64_t>& dims) {
  const int64_t cols = dims.back();
  const Tensor x = random_tensor(t, dims, -3.f, 5.f, 3);
  const Tensor scale = random_tensor(t, {cols}, 0.5f, 1.5f, 4);
  const Tensor bias = with_bias ? random_tensor(t, {cols}, -1.f, 1.f, 5) : Tensor();
  const std::map<std::string, Attribute> attrs = {{"axis", Attribute::of_int(-1)},
                                                  {"epsilon", Attribute::of_float(1e-5f)}};
  const char* op = rms ? "RMSNormalization" : "LayerNormalization";
  const int outputs = rms ? 1 : 3;
  const std::vector<Tensor> ins = rms ? std::vector<Tensor>{x, scale} : std::vector<Tensor>{x, scale, bias};
  const Tensor ref = run_cpu(op, ins, attrs, 0, outputs);
  cuda::DeviceBuffer dx = upload(x), ds = upload(scale), dy = device_zeros(x.nbytes());
  cuda::DeviceBuffer db = with_bias ? upload(bias) : cuda::DeviceBuffer();
  const int64_t rows = x.numel() / cols;
  cuda::DeviceBuffer dmean = device_zeros(rows * 4), dinv = device_zeros(rows * 4);
  cuda::NormParams p;
  p.dtype = t;
  p.x = dx.data();
  p.scale = ds.data();
  p.bias = with_bias ? db.data() : nullptr;
  p.y = dy.data();
  p.rows = rows;
  p.cols = cols;
  p.epsilon = 1e-5f;
  p.rms = rms;
  if (!rms) p.mean = dmean.as<float>(), p.inv_std_dev = dinv.as<float>();
  ASSERT_TRUE(cuda::launch_normalization(p, nullptr).is_ok());
  const std::string what = std::string(op) + " " + std::string(dtype_name(t)) + shape_str(dims);
  expect_close(download(dy.data(), t, dims), ref, tolerance_for(t), what);
  if (!rms && t == DType::kF32) {
    const Tensor ref_mean = run_cpu(op, ins, attrs, 1, outputs);
    const Tensor ref_inv = run_cpu(op, ins, attrs, 2, outputs);
    expect_close(download(dmean.data(), DType::kF32, ref_mean.dims()), ref_mean, 1e-5, what + " Mean");
    expect_close(download(dinv.data(), DType::kF32, ref_inv.dims()), ref_inv, 1e-5, what + " InvStdDev");
  }
}

TEST_F(GpuTest, LayerNormalizationMatchesCpuWithAndWithoutBias) {
  for (DType t : kFloatTypes)
    for (const auto& dims : kRowShapes)
      for (bool bias : {true, false}) check_norm(false, bias, t, dims);
}

TEST_F(GpuTest, RmsNormalizationMatchesCpu) {
  for (DType t : kFloatTypes)
    for (const auto& dims : kRowShapes) check_norm(true, false, t, dims);
}

struct ReduceCase {
  std::vector<int64_t> dims, axes;
};

TEST_F(GpuTest, ReductionsMatchCpuOverAnyAxes) {
  const std::vector<ReduceCase> cases = {
      {{4, 33}, {1}},      {{4, 33}, {0}},    {{3, 5, 7}, {1}},       {{3, 5, 7}, {0, 2}},
      {{3, 5, 7}, {0, 1}}, {{3, 5, 7}, {}},   {{2, 3, 4, 5}, {1, 3}}, {{2, 3, 4, 5}, {-1}},
      {{6, 1, 4}, {1}},    {{2, 20001}, {1}}, {{64, 4096}, {-1}},     {{1000, 3}, {0}},
  };
  const std::vector<std::pair<cuda::ReduceOp, const char*>> ops = {{cuda::ReduceOp::kSum, "ReduceSum"},
                                                                   {cuda::ReduceOp::kMean, "ReduceMean"},
                                                                   {cuda::ReduceOp::kMax, "ReduceMax"},
                                                                   {cuda::ReduceOp::kMin, "ReduceMin"}};
  for (const auto& [op, name] : ops)
    for (DType t : kFloatTypes)
      for (const ReduceCase& c : cases) {
        // Positive values: sums do not cancel, so relative tolerances hold.
        const Tensor x = random_tensor(t, c.dims, 0.25f, 1.25f, 6);
        const Tensor axes = c.axes.empty() ? Tensor() : Tensor::vector_i64(c.axes);
        const Tensor ref = run_cpu(name, {x, axes}, {{"keepdims", Attribute::of_int(1)}});
        cuda::DeviceBuffer dx = upload(x), dy = device_zeros(ref.nbytes());
        cuda::ReduceParams p{op, t, dx.data(), dy.data(), c.dims, c.axes};
        const Status st = cuda::launch_reduce(p, nullptr);
        ASSERT_TRUE(st.is_ok()) << st.to_string();
        expect_close(
            download(dy.data(), t, ref.dims()), ref, tolerance_for(t),
            std::string(name) + " " + std::string(dtype_name(t)) + shape_str(c.dims) + " axes " + shape_str(c.axes));
      }
}

TEST(ReduceView, MergesTheReducedRunIntoOuterReduceInner) {
  auto v = cuda::reduce_view({2, 3, 4, 5}, {1, 2});
  ASSERT_TRUE(v.is_ok());
  EXPECT_TRUE(v->contiguous);
  EXPECT_EQ(v->outer, 2);
  EXPECT_EQ(v->reduce, 12);
  EXPECT_EQ(v->inner, 5);
  auto split = cuda::reduce_view({2, 3, 4}, {0, 2});
  ASSERT_TRUE(split.is_ok());
  EXPECT_FALSE(split->contiguous);
  auto ones = cuda::reduce_view({2, 1, 3, 1}, {1, 2});  // size-1 dims do not split the run
  ASSERT_TRUE(ones.is_ok());
  EXPECT_TRUE(ones->contiguous);
  EXPECT_EQ(ones->reduce, 3);
}

}  // namespace
}  // namespace kiln::gpu_test
