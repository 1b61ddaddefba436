// Reductions, arg-reductions, TopK, softmax, normalizations and losses
// through the CUDA executor, against the CPU backend: every dtype class,
// first/middle/last and multiple axes, keepdims both ways, rows longer than a
// block, odd sizes.
#include <chrono>
#include <cstdio>
#include <functional>

#include "backends/cuda/kernels/normalization.cuh"
#include "backends/cuda/kernels/reduce.cuh"
#include "backends/cuda/kernels/skip_layer_norm.cuh"
#include "backends/cuda/kernels/softmax.cuh"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

std::string name_of(const std::string& op, DType t, const std::vector<int64_t>& dims, const std::string& extra = "") {
  return op + " " + std::string(dtype_name(t)) + shape_str(dims) + extra;
}

// Compares output `out` of a run on both backends (exactly for integer results).
void check(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs, DType t, const std::string& what,
           size_t out = 0, int num_outputs = 1, int opset = 28) {
  const Tensor gpu = run_cuda(op, ins, attrs, out, num_outputs, opset);
  const Tensor cpu = run_cpu(op, ins, attrs, out, num_outputs, opset);
  const DType rt = cpu.dtype();
  if (rt == DType::kF32 || rt == DType::kF16 || rt == DType::kBF16 || rt == DType::kF64)
    expect_close(gpu, cpu, tolerance_for(t), what);
  else
    expect_equal(gpu, cpu, what);
}

struct AxesCase {
  std::vector<int64_t> dims, axes;
};

// Last, first, middle, several (contiguous and not), all; long rows, a few
// very long rows and long columns (the split reductions); size-1 dims.
const std::vector<AxesCase> kAxesCases = {
    {{4, 33}, {1}},      {{4, 33}, {0}},         {{3, 5, 7}, {1}},          {{3, 5, 7}, {0, 2}},
    {{3, 5, 7}, {}},     {{2, 3, 4, 5}, {1, 3}}, {{2, 3, 4, 5}, {0, 2, 3}}, {{2, 3, 4, 5}, {-1, -2}},
    {{6, 1, 4}, {1}},    {{3, 5000}, {1}},       {{5000, 3}, {0}},          {{1500, 130}, {0}},
    {{3, 2000, 5}, {1}}, {{2, 20000}, {1}},      {{4, 50, 60}, {}},         {{7}, {0}},
    {{5, 1200}, {-1}},
};

const char* const kFloatReduceOps[] = {"ReduceSum", "ReduceMean",   "ReduceMax",       "ReduceMin",      "ReduceL1",
                                       "ReduceL2",  "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"};

TEST_F(GpuTest, FloatReductionsMatchCpuOverAnyAxesWithKeepdimsBothWays) {
  for (const char* op : kFloatReduceOps)
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
      for (const AxesCase& c : kAxesCases)
        for (int64_t keep : {0, 1}) {
          if (t != DType::kF32 && keep == 0) continue;  // keepdims changes no kernel: once is enough
          // Positive values: sums do not cancel, so relative tolerances hold.
          const Tensor x = random_tensor(t, c.dims, 0.25f, 1.25f, 6);
          const Tensor axes = c.axes.empty() ? Tensor() : Tensor::vector_i64(c.axes);
          check(op, {x, axes}, {{"keepdims", i(keep)}}, t,
                name_of(op, t, c.dims, " axes " + shape_str(c.axes) + " keepdims " + std::to_string(keep)));
        }
}

TEST_F(GpuTest, ReduceProdMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (const AxesCase& c : std::vector<AxesCase>{{{4, 33}, {1}}, {{3, 5, 7}, {0, 2}}, {{300, 3}, {0}}}) {
      const Tensor x = random_tensor(t, c.dims, 0.9f, 1.1f, 7);
      check("ReduceProd", {x, Tensor::vector_i64(c.axes)}, {}, t, name_of("ReduceProd", t, c.dims));
    }
}

TEST_F(GpuTest, IntegerReductionsMatchCpuExactly) {
  const char* const ops[] = {"ReduceSum", "ReduceMean", "ReduceMax",    "ReduceMin",      "ReduceProd",
                             "ReduceL1",  "ReduceL2",   "ReduceLogSum", "ReduceSumSquare"};
  const std::vector<AxesCase> cases = {{{4, 33}, {1}}, {{33, 4}, {0}}, {{3, 5, 7}, {0, 2}}, {{2, 1500}, {1}}};
  for (const char* op : ops)
    for (DType t : {DType::kI32, DType::kI64, DType::kI8, DType::kU8, DType::kU32})
      for (const AxesCase& c : cases) {
        const bool needs_positive = std::string(op) == "ReduceLogSum";
        const Tensor x = random_tensor(t, c.dims, needs_positive ? 1.f : -9.f, 9.f, 8);
        check(op, {x, Tensor::vector_i64(c.axes)}, {}, t, name_of(op, t, c.dims, " axes " + shape_str(c.axes)));
      }
}

TEST_F(GpuTest, BoolReduceMaxAndMinAreAnyAndAll) {
  for (const char* op : {"ReduceMax", "ReduceMin"})
    for (const AxesCase& c : std::vector<AxesCase>{{{4, 33}, {1}}, {{33, 4}, {0}}, {{3, 5, 7}, {0, 2}}}) {
      const Tensor x = random_tensor(DType::kBool, c.dims, 0.f, 1.f, 9);
      check(op, {x, Tensor::vector_i64(c.axes)}, {}, DType::kBool, name_of(op, DType::kBool, c.dims));
    }
}

TEST_F(GpuTest, ReductionsWithNoopEmptyAxesTransformEachElement) {
  for (const char* op : kFloatReduceOps) {
    const Tensor x = random_tensor(DType::kF32, {3, 7}, 0.25f, 1.25f, 10);
    check(op, {x}, {{"noop_with_empty_axes", i(1)}}, DType::kF32, std::string(op) + " noop");
  }
}

TEST_F(GpuTest, EmptyReductionsGiveTheIdentity) {
  for (const char* op :
       {"ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceSumSquare", "ReduceLogSumExp"}) {
    const Tensor x(DType::kF32, {3, 0, 4});
    const Tensor gpu = run_cuda(op, {x, Tensor::vector_i64({1})}, {});
    const Tensor cpu = run_cpu(op, {x, Tensor::vector_i64({1})}, {});
    expect_equal(gpu, cpu, std::string(op) + " over an empty axis");
  }
}

TEST_F(GpuTest, ArgMaxAndArgMinMatchCpuWithTies) {
  const std::vector<std::vector<int64_t>> shapes = {{4, 33}, {3, 5, 7}, {2, 5000}, {1500, 3}, {9}};
  for (const char* op : {"ArgMax", "ArgMin"})
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI32, DType::kI64, DType::kU8})
      for (const auto& dims : shapes)
        for (int64_t axis = -1; axis < static_cast<int64_t>(dims.size()); ++axis)
          for (int64_t last : {0, 1}) {
            // Few distinct values: many ties, so the index rule matters.
            const Tensor x = random_tensor(t, dims, 0.f, 4.f, 11);
            check(op, {x}, {{"axis", i(axis)}, {"keepdims", i(axis % 2 == 0)}, {"select_last_index", i(last)}}, t,
                  name_of(op, t, dims, " axis " + std::to_string(axis) + " last " + std::to_string(last)));
          }
}

TEST_F(GpuTest, TopKMatchesCpuValuesAndIndices) {
  struct Case {
    std::vector<int64_t> dims;
    int64_t axis, k;
  };
  const std::vector<Case> cases = {{{4, 33}, -1, 5},   {{4, 33}, 0, 4},   {{3, 17, 5}, 1, 17},
                                   {{2, 5000}, 1, 50}, {{5000, 2}, 0, 3}, {{6, 9}, 1, 0}};
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI32, DType::kI64, DType::kI8})
    for (const Case& c : cases)
      for (int64_t largest : {0, 1}) {
        // Narrow ranges give ties (16-bit floats and integers): ties go to the lower index.
        const Tensor x = random_tensor(t, c.dims, -4.f, 4.f, 12);
        const Attrs attrs = {{"axis", i(c.axis)}, {"largest", i(largest)}};
        const std::vector<Tensor> ins = {x, Tensor::vector_i64({c.k})};
        const std::string what = name_of(
            "TopK", t, c.dims,
            " axis " + std::to_string(c.axis) + " k " + std::to_string(c.k) + " largest " + std::to_string(largest));
        expect_equal(run_cuda("TopK", ins, attrs, 0, 2), run_cpu("TopK", ins, attrs, 0, 2), what + " values");
        expect_equal(run_cuda("TopK", ins, attrs, 1, 2), run_cpu("TopK", ins, attrs, 1, 2), what + " indices");
      }
}

TEST_F(GpuTest, SoftmaxLogSoftmaxHardmaxMatchCpuOverAnyAxis) {
  // {2, 5, 40000} along 0 and 1: enough slices for the thread-per-slice kernel.
  const std::vector<std::vector<int64_t>> shapes = {{3, 5, 7}, {2, 5000}, {1500, 3},    {4, 1024},
                                                    {1, 1},    {11},      {2, 5, 40000}};
  for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"})
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
      for (const auto& dims : shapes)
        for (int64_t axis = -1; axis < static_cast<int64_t>(dims.size()); ++axis) {
          const Tensor x = random_tensor(t, dims, -8.f, 8.f, 13);
          check(op, {x}, {{"axis", i(axis)}}, t, name_of(op, t, dims, " axis " + std::to_string(axis)));
        }
}

void check_layer_norm(const char* op, DType t, const std::vector<int64_t>& dims, int64_t axis,
                      const std::vector<int64_t>& scale_dims, const std::vector<int64_t>& bias_dims,
                      int64_t stash_type = 1) {
  const Tensor x = random_tensor(t, dims, -3.f, 5.f, 14);
  const Tensor scale = random_tensor(t, scale_dims, 0.5f, 1.5f, 15);
  const bool rms = std::string(op) == "RMSNormalization";
  std::vector<Tensor> ins = {x, scale};
  if (!rms && !bias_dims.empty()) ins.push_back(random_tensor(t, bias_dims, -1.f, 1.f, 16));
  Attrs attrs = {{"axis", i(axis)}, {"epsilon", Attribute::of_float(1e-5f)}};
  if (!rms) attrs["stash_type"] = i(stash_type);
  const int outputs = rms ? 1 : 3;
  const std::string what = name_of(op, t, dims, " axis " + std::to_string(axis) + " scale " + shape_str(scale_dims));
  check(op, ins, attrs, t, what, 0, outputs);
  if (!rms) {
    check(op, ins, attrs, t, what + " Mean", 1, outputs);
    check(op, ins, attrs, t, what + " InvStdDev", 2, outputs);
  }
}

TEST_F(GpuTest, LayerAndRmsNormalizationMatchCpu) {
  for (const char* op : {"LayerNormalization", "RMSNormalization"})
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
      check_layer_norm(op, t, {3, 7, 33}, -1, {33}, {33});
      check_layer_norm(op, t, {5, 4096}, -1, {4096}, {4096});    // vectorized rows and parameters
      check_layer_norm(op, t, {3, 5000}, 1, {5000}, {});         // longer than a block, no bias
      check_layer_norm(op, t, {4, 6, 10}, 1, {6, 10}, {10});     // two normalized dims, bias broadcast
      check_layer_norm(op, t, {4, 6, 10}, 1, {1, 10}, {1});      // scale broadcast over a dim
      check_layer_norm(op, t, {2, 3, 4}, 0, {3, 4}, {3, 4});     // every dim normalized
      check_layer_norm(op, t, {2, 20000}, 1, {20000}, {20000});  // few long rows: split over blocks
    }
  check_layer_norm("LayerNormalization", DType::kF16, {3, 7, 33}, -1, {33}, {33}, 0);  // f16 Mean/InvStdDev
}

TEST_F(GpuTest, LayerNormalizationTakesFloatParametersWithHalfInputs) {
  const Tensor x = random_tensor(DType::kF16, {6, 40}, -3.f, 5.f, 17);
  const Tensor scale = random_tensor(DType::kF32, {40}, 0.5f, 1.5f, 18);
  const Tensor bias = random_tensor(DType::kF32, {40}, -1.f, 1.f, 19);
  check("LayerNormalization", {x, scale, bias}, {}, DType::kF16, "f16 x, f32 scale/bias", 0, 1);
}

// kiln.SkipLayerNormalization: rows of 768 and 1024 (the register kernel: 3,
// 4 and 6 packs a lane for f16 and f32), 64 and 320 (it too, lanes without a
// pack; f64's only register-kernel cases), 37 (odd: the general kernel,
// scalar loads) and 2560 (longer than the register kernel: the general one
// with 16-byte loads), with and without B and Sum; 33 rows (a block's last
// warps idle). Sum is X + Skip rounded to the dtype on both sides: the same
// bits.
TEST_F(GpuTest, SkipLayerNormalizationMatchesCpu) {
  const std::string op = "kiln.SkipLayerNormalization";
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (int64_t cols : {int64_t(768), int64_t(1024), int64_t(64), int64_t(320), int64_t(37), int64_t(2560)})
      for (bool with_bias : {true, false})
        for (bool with_sum : {true, false}) {
          const std::vector<int64_t> dims = {3, 11, cols};
          std::vector<Tensor> ins = {random_tensor(t, dims, -3.f, 5.f, 40), random_tensor(t, dims, -2.f, 2.f, 41),
                                     random_tensor(t, {cols}, 0.5f, 1.5f, 42)};
          if (with_bias) ins.push_back(random_tensor(t, {cols}, -1.f, 1.f, 43));
          const Attrs attrs = {{"epsilon", Attribute::of_float(1e-5f)}};
          const int outputs = with_sum ? 2 : 1;
          const std::string what = name_of(op, t, dims, std::string(with_bias ? " B" : "") + (with_sum ? " Sum" : ""));
          check(op, ins, attrs, t, what, 0, outputs);
          if (with_sum)
            expect_equal(run_cuda(op, ins, attrs, 1, outputs), run_cpu(op, ins, attrs, 1, outputs),
                         what + " output Sum");
        }
}

TEST_F(GpuTest, GroupAndInstanceNormalizationMatchCpu) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64}) {
    struct Case {
      std::vector<int64_t> dims;
      int64_t groups;
      bool per_group;
    };
    for (const Case& c : std::vector<Case>{
             {{2, 6, 5, 7}, 3, false}, {{2, 6, 5, 7}, 3, true}, {{1, 32, 64, 65}, 8, false}, {{3, 4}, 2, false}}) {
      const int64_t params = c.per_group ? c.groups : c.dims[1];
      const Tensor x = random_tensor(t, c.dims, -3.f, 5.f, 20);
      const Tensor scale = random_tensor(t, {params}, 0.5f, 1.5f, 21), bias = random_tensor(t, {params}, -1.f, 1.f, 22);
      check("GroupNormalization", {x, scale, bias}, {{"num_groups", i(c.groups)}}, t,
            name_of("GroupNormalization", t, c.dims, c.per_group ? " per group" : ""), 0, 1, c.per_group ? 18 : 21);
    }
    for (const auto& dims : std::vector<std::vector<int64_t>>{{2, 3, 5, 7}, {1, 4, 5000}}) {
      const Tensor x = random_tensor(t, dims, -3.f, 5.f, 23);
      const Tensor scale = random_tensor(t, {dims[1]}, 0.5f, 1.5f, 24),
                   bias = random_tensor(t, {dims[1]}, -1.f, 1.f, 25);
      check("InstanceNormalization", {x, scale, bias}, {}, t, name_of("InstanceNormalization", t, dims));
    }
  }
}

TEST_F(GpuTest, BatchNormalizationMatchesCpuInInferenceAndTraining) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (const auto& dims : std::vector<std::vector<int64_t>>{{2, 3, 5, 7}, {37, 3}, {4, 5, 300}}) {
      const int64_t c = dims[1];
      const Tensor x = random_tensor(t, dims, -3.f, 5.f, 26);
      const std::vector<Tensor> ins = {x, random_tensor(t, {c}, 0.5f, 1.5f, 27), random_tensor(t, {c}, -1.f, 1.f, 28),
                                       random_tensor(t, {c}, -1.f, 1.f, 29), random_tensor(t, {c}, 0.5f, 2.f, 30)};
      check("BatchNormalization", ins, {}, t, name_of("BatchNormalization", t, dims));
      const Attrs train = {{"training_mode", i(1)}, {"momentum", Attribute::of_float(0.8f)}};
      for (size_t out = 0; out < 3; ++out)
        check("BatchNormalization", ins, train, t,
              name_of("BatchNormalization training", t, dims) + " output " + std::to_string(out), out, 3);
    }
}

TEST_F(GpuTest, LpNormalizationMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (const auto& dims : std::vector<std::vector<int64_t>>{{3, 5, 7}, {2, 5000}, {1500, 3}})
      for (int64_t axis = -1; axis < static_cast<int64_t>(dims.size()); ++axis)
        for (int64_t p : {1, 2}) {
          const Tensor x = random_tensor(t, dims, -3.f, 3.f, 31);
          check("LpNormalization", {x}, {{"axis", i(axis)}, {"p", i(p)}}, t,
                name_of("LpNormalization", t, dims, " axis " + std::to_string(axis) + " p " + std::to_string(p)));
        }
}

TEST_F(GpuTest, MeanVarianceNormalizationMatchesCpu) {
  struct Case {
    std::vector<int64_t> dims, axes;
  };
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (const Case& c :
         std::vector<Case>{{{2, 3, 5, 7}, {0, 2, 3}}, {{2, 3, 5, 7}, {1}}, {{3, 700}, {1}}, {{2, 3, 5, 7}, {0, 2}}}) {
      const Tensor x = random_tensor(t, c.dims, -3.f, 5.f, 32);
      check("MeanVarianceNormalization", {x}, {{"axes", Attribute::of_ints(c.axes)}}, t,
            name_of("MeanVarianceNormalization", t, c.dims, " axes " + shape_str(c.axes)));
    }
}

TEST_F(GpuTest, LrnMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
    for (int64_t size : {1, 3, 4}) {
      const std::vector<int64_t> dims = {2, 7, 5, 9};
      const Tensor x = random_tensor(t, dims, -3.f, 3.f, 33);
      check("LRN", {x},
            {{"size", i(size)},
             {"alpha", Attribute::of_float(0.01f)},
             {"beta", Attribute::of_float(0.6f)},
             {"bias", Attribute::of_float(1.5f)}},
            t, name_of("LRN", t, dims, " size " + std::to_string(size)));
    }
}

TEST_F(GpuTest, LossesMatchCpuWithWeightsIgnoreIndexAndEachReduction) {
  struct Case {
    std::vector<int64_t> dims;  // [N, C, D...]
    bool weight, ignore;
  };
  for (const char* op : {"NegativeLogLikelihoodLoss", "SoftmaxCrossEntropyLoss"})
    for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64})
      for (DType target_t : {DType::kI64, DType::kI32})
        for (const Case& c :
             std::vector<Case>{{{5, 7}, false, false}, {{4, 6, 9}, true, true}, {{3, 1000}, true, false}})
          for (const char* reduction : {"none", "sum", "mean"}) {
            const bool softmax = std::string(op) == "SoftmaxCrossEntropyLoss";
            const Tensor x = random_tensor(t, c.dims, softmax ? -4.f : -6.f, softmax ? 4.f : -0.1f, 34);
            std::vector<int64_t> target_dims = c.dims;
            target_dims.erase(target_dims.begin() + 1);
            Tensor target = random_tensor(target_t, target_dims, 0.f, static_cast<float>(c.dims[1] - 1), 35);
            std::vector<Tensor> ins = {x, target};
            if (c.weight) ins.push_back(random_tensor(t, {c.dims[1]}, 0.5f, 1.5f, 36));
            Attrs attrs = {{"reduction", Attribute::of_string(reduction)}};
            if (c.ignore) attrs["ignore_index"] = i(2);
            const std::string what =
                name_of(op, t, c.dims, std::string(" ") + reduction + (target_t == DType::kI32 ? " i32" : " i64"));
            check(op, ins, attrs, t, what, 0, softmax ? 2 : 1);
            if (softmax) check(op, ins, attrs, t, what + " log_prob", 1, 2);
          }
}

// Bandwidth of the hot kernels (run with --gtest_also_run_disabled_tests):
// last- vs first-axis ReduceSum, Softmax, LayerNorm, GroupNorm,
// SkipLayerNorm; f16, 2^28 elements. Reports GB/s counting bytes read and written once.
TEST_F(GpuTest, DISABLED_HotKernelBandwidth) {
  const int64_t n = int64_t(1) << 28, rows = n / 4096;
  const DType t = DType::kF16;
  auto a = cuda::DeviceBuffer::allocate(n * 2), b = cuda::DeviceBuffer::allocate(n * 2);
  auto ws = cuda::DeviceBuffer::allocate(size_t(1) << 26);
  ASSERT_TRUE(a.is_ok() && b.is_ok() && ws.is_ok());
  ASSERT_EQ(cudaMemset(a->data(), 0x3c, n * 2), cudaSuccess);  // 1.0-ish halves
  auto time_ms = [&](const std::function<Status()>& fn) {
    cudaEvent_t start, stop;
    cudaEventCreate(&start), cudaEventCreate(&stop);
    EXPECT_TRUE(fn().is_ok());
    cudaEventRecord(start);
    constexpr int kReps = 10;
    for (int r = 0; r < kReps; ++r) EXPECT_TRUE(fn().is_ok());
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    cudaEventDestroy(start), cudaEventDestroy(stop);
    return ms / kReps;
  };
  auto report = [](const char* what, float ms, double bytes) {
    std::printf("%-40s %8.3f ms %8.1f GB/s\n", what, ms, bytes / ms / 1e6);
  };
  for (std::vector<int64_t> axes : {std::vector<int64_t>{1}, std::vector<int64_t>{0}}) {
    cuda::ReduceParams p{cuda::ReduceOp::kSum, t, a->data(), b->data(), {rows, 4096}, axes};
    p.workspace = ws->data(), p.workspace_bytes = ws->size();
    ASSERT_LE(cuda::reduce_workspace_bytes(p), ws->size());
    report(axes[0] == 1 ? "ReduceSum last f16 [65536,4096]" : "ReduceSum first f16 [65536,4096]",
           time_ms([&] { return cuda::launch_reduce(p, nullptr); }), n * 2.0);
  }
  for (int64_t cols : {int64_t(4096), int64_t(512)}) {
    cuda::SoftmaxParams p{t, a->data(), b->data(), n / cols, cols};
    report(cols == 4096 ? "Softmax f16 [65536,4096]" : "Softmax f16 [524288,512]",
           time_ms([&] { return cuda::launch_softmax(p, nullptr); }), n * 4.0);
  }
  cuda::NormParams ln;
  ln.dtype = t, ln.x = a->data(), ln.y = b->data(), ln.scale = ws->data(), ln.bias = ws->data();
  ln.rows = rows, ln.cols = 4096;
  report("LayerNorm f16 [65536,4096]", time_ms([&] { return cuda::launch_normalization(ln, nullptr); }), n * 4.0);
  // GroupNorm of a [16, 512, 128, 256] activation, 32 groups: 512 rows of 2^19.
  cuda::NormParams gn = ln;
  gn.rows = 512, gn.cols = n / 512, gn.scale = gn.bias = nullptr;
  gn.workspace = ws->data(), gn.workspace_bytes = ws->size();
  report("GroupNorm-shaped f16 [512, 2^19]", time_ms([&] { return cuda::launch_normalization(gn, nullptr); }), n * 4.0);
  gn.rows = 64, gn.cols = n / 64;
  report("GroupNorm-shaped f16 [64, 2^22]", time_ms([&] { return cuda::launch_normalization(gn, nullptr); }), n * 4.0);
  // BERT-base's residual rows: X and Skip (a's two halves) read, Y written,
  // then Y and Sum (b's two halves).
  cuda::SkipNormParams sk;
  sk.dtype = t, sk.rows = n / 2 / 768, sk.cols = 768;
  const size_t half_bytes = size_t(sk.rows) * 768 * 2;
  sk.x = a->data(), sk.skip = static_cast<char*>(a->data()) + half_bytes;
  sk.scale = ws->data(), sk.bias = ws->data(), sk.y = b->data();
  report("SkipLayerNorm f16 [174762,768]", time_ms([&] { return cuda::launch_skip_layer_norm(sk, nullptr); }),
         half_bytes * 3.0);
  sk.sum = static_cast<char*>(b->data()) + half_bytes;
  report("SkipLayerNorm f16 [174762,768] + Sum", time_ms([&] { return cuda::launch_skip_layer_norm(sk, nullptr); }),
         half_bytes * 4.0);
}

}  // namespace
}  // namespace kiln::gpu_test
