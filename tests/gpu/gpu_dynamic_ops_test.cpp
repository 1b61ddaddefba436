// The ops that used to run on the host only: the training optimizers
// (Adagrad, Momentum, Adam) and NonZero, Compress, Unique and
// NonMaxSuppression (output dims that depend on the data) against the CPU on
// fresh random inputs; the random ops by their distributions (their
// generator is not the CPU's); and the executor around a data-dependent
// layer (planning on after it, refusing CUDA graphs with it).
#include <algorithm>
#include <array>
#include <numeric>

#include "backends/cuda/cuda_runner.h"
#include "gpu_test_util.h"
#include "ir/element_cast.h"
#include "ir/parser.h"

namespace kiln::gpu_test {
namespace {

using Dims = std::vector<int64_t>;

Tensor scalar_f32(float v) {
  Tensor t(DType::kF32, {});
  t.mutable_data<float>()[0] = v;
  return t;
}

Tensor scalar_i64(int64_t v) {
  Tensor t(DType::kI64, {});
  t.mutable_data<int64_t>()[0] = v;
  return t;
}

// Integers in [lo, hi] as `t`: many repeats and zeros.
Tensor small_ints(DType t, Dims dims, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  Tensor out(t, dims);
  for (int64_t i = 0; i < out.numel(); ++i) write_scalar(t, out.mutable_raw(), i, Scalar::of_float(dist(rng)));
  return out;
}

Tensor bools(Dims dims, uint32_t seed) { return small_ints(DType::kBool, std::move(dims), 0, 1, seed); }

// ---- training optimizers ----------------------------------------------------

const char* kTraining = "ai.onnx.preview.training.";

// Runs `op` with R, T and `groups` groups of `n` tensors each; compares every output.
void check_optimizer(const std::string& op, size_t groups, size_t n, DType dtype, int64_t step, Attrs attrs) {
  std::vector<Tensor> ins = {scalar_f32(0.1f), scalar_i64(step)};
  for (size_t g = 0; g < groups; ++g)
    for (size_t k = 0; k < n; ++k)
      ins.push_back(random_tensor(dtype, {static_cast<int64_t>(3 + k), 5}, g == 2 || g == 3 ? 0.1f : -2.f, 2.f,
                                  static_cast<uint32_t>(10 * g + k + 1)));
  const int outputs = static_cast<int>(n * (groups - 1));
  const std::string what = op + " " + std::string(dtype_name(dtype)) + " T=" + std::to_string(step);
  for (int o = 0; o < outputs; ++o) {
    Tensor cpu = run_cpu(kTraining + op, ins, attrs, static_cast<size_t>(o), outputs, 1);
    Tensor gpu = run_cuda(kTraining + op, ins, attrs, static_cast<size_t>(o), outputs, 1);
    expect_close(gpu, cpu, dtype == DType::kF64 ? 1e-12 : tolerance_for(dtype), what + " output " + std::to_string(o));
  }
}

TEST_F(GpuTest, AdagradMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF64, DType::kF16})
    for (int64_t step : {0, 3})
      check_optimizer("Adagrad", 3, 2, t, step,
                      {{"decay_factor", Attribute::of_float(0.1f)},
                       {"epsilon", Attribute::of_float(1e-5f)},
                       {"norm_coefficient", Attribute::of_float(0.01f)}});
}

TEST_F(GpuTest, MomentumStandardAndNesterovMatchCpu) {
  for (const char* mode : {"standard", "nesterov"})
    for (DType t : {DType::kF32, DType::kF64})
      for (int64_t step : {0, 5})
        check_optimizer("Momentum", 3, 2, t, step,
                        {{"alpha", Attribute::of_float(0.9f)},
                         {"beta", Attribute::of_float(0.5f)},
                         {"norm_coefficient", Attribute::of_float(0.02f)},
                         {"mode", Attribute::of_string(mode)}});
}

TEST_F(GpuTest, AdamMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF64, DType::kBF16})
    for (int64_t step : {0, 4})
      check_optimizer("Adam", 4, 2, t, step,
                      {{"alpha", Attribute::of_float(0.8f)},
                       {"beta", Attribute::of_float(0.95f)},
                       {"epsilon", Attribute::of_float(1e-3f)},
                       {"norm_coefficient", Attribute::of_float(0.01f)},
                       {"norm_coefficient_post", Attribute::of_float(0.05f)}});
}

// ---- random ops ---------------------------------------------------------------

double mean_of(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += t.element_as_double(i);
  return s / static_cast<double>(t.numel());
}

double stddev_of(const Tensor& t) {
  const double m = mean_of(t);
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += (t.element_as_double(i) - m) * (t.element_as_double(i) - m);
  return std::sqrt(s / static_cast<double>(t.numel()));
}

TEST_F(GpuTest, SeededRandomUniformIsInRangeUniformAndRepeatable) {
  Attrs a{{"low", Attribute::of_float(-3.f)},
          {"high", Attribute::of_float(5.f)},
          {"seed", Attribute::of_float(7.f)},
          {"shape", Attribute::of_ints({200, 500})}};
  Tensor y = run_cuda("RandomUniform", {}, a);
  ASSERT_EQ(y.numel(), 100000);
  for (int64_t i = 0; i < y.numel(); ++i) ASSERT_TRUE(y.data<float>()[i] >= -3.f && y.data<float>()[i] < 5.f) << i;
  EXPECT_NEAR(mean_of(y), 1.0, 0.05);
  EXPECT_NEAR(stddev_of(y), 8.0 / std::sqrt(12.0), 0.05);
  expect_equal(run_cuda("RandomUniform", {}, a), y, "same seed, same values");
  a["seed"] = Attribute::of_float(8.f);
  Tensor other = run_cuda("RandomUniform", {}, a);
  EXPECT_NE(std::memcmp(other.raw(), y.raw(), y.nbytes()), 0) << "another seed, other values";
}

TEST_F(GpuTest, RandomNormalLikeHasTheMeanAndScaleAsked) {
  Tensor like = random_tensor(DType::kF64, {300, 300});
  Tensor y =
      run_cuda("RandomNormalLike", {like}, {{"mean", Attribute::of_float(2.f)}, {"scale", Attribute::of_float(0.5f)}});
  ASSERT_EQ(y.dtype(), DType::kF64);
  EXPECT_NEAR(mean_of(y), 2.0, 0.01);
  EXPECT_NEAR(stddev_of(y), 0.5, 0.01);
}

TEST_F(GpuTest, UnseededRandomOpsDrawFreshValuesEachRun) {
  Attrs a{{"shape", Attribute::of_ints({1000})}};
  Tensor first = run_cuda("RandomNormal", {}, a), second = run_cuda("RandomNormal", {}, a);
  EXPECT_NE(std::memcmp(first.raw(), second.raw(), first.nbytes()), 0);
}

TEST_F(GpuTest, BernoulliDrawsOnesWithTheGivenProbability) {
  Tensor p(DType::kF32, {4, 50000});
  for (int64_t i = 0; i < p.numel(); ++i)
    p.mutable_data<float>()[i] = std::array<float, 4>{0.f, 1.f, 0.25f, 0.8f}[i / 50000];
  Tensor y = run_cuda("Bernoulli", {p}, {{"seed", Attribute::of_float(3.f)}, {"dtype", Attribute::of_int(7)}});  // i64
  ASSERT_EQ(y.dtype(), DType::kI64);
  int64_t ones[4] = {};
  for (int64_t i = 0; i < y.numel(); ++i) {
    const int64_t v = y.data<int64_t>()[i];
    ASSERT_TRUE(v == 0 || v == 1) << i;
    ones[i / 50000] += v;
  }
  EXPECT_EQ(ones[0], 0);
  EXPECT_EQ(ones[1], 50000);
  EXPECT_NEAR(static_cast<double>(ones[2]) / 50000, 0.25, 0.01);
  EXPECT_NEAR(static_cast<double>(ones[3]) / 50000, 0.8, 0.01);
}

TEST_F(GpuTest, MultinomialDrawsClassesByTheirProbabilities) {
  // Row 0: log-probabilities of 0.1, 0.2, 0.7; row 1: all on class 2.
  Tensor x(DType::kF32, {2, 3});
  const float v[] = {std::log(0.1f), std::log(0.2f), std::log(0.7f), -1e4f, -1e4f, 0.f};
  std::copy(v, v + 6, x.mutable_data<float>());
  Tensor y = run_cuda(
      "Multinomial", {x},
      {{"sample_size", Attribute::of_int(40000)}, {"seed", Attribute::of_float(1.f)}, {"dtype", Attribute::of_int(7)}});
  ASSERT_EQ(y.dims(), (Dims{2, 40000}));
  double freq[3] = {};
  for (int64_t s = 0; s < 40000; ++s) {
    const int64_t c = y.data<int64_t>()[s];
    ASSERT_TRUE(c >= 0 && c < 3);
    freq[c] += 1.0 / 40000;
    EXPECT_EQ(y.data<int64_t>()[40000 + s], 2);
  }
  EXPECT_NEAR(freq[0], 0.1, 0.01);
  EXPECT_NEAR(freq[1], 0.2, 0.01);
  EXPECT_NEAR(freq[2], 0.7, 0.01);
}

// ---- data-dependent output dims ---------------------------------------------

void expect_same_outputs(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs, int outputs,
                         const std::string& what) {
  for (int o = 0; o < outputs; ++o) {
    Tensor cpu = run_cpu(op, ins, attrs, static_cast<size_t>(o), outputs);
    Tensor gpu = run_cuda(op, ins, attrs, static_cast<size_t>(o), outputs);
    EXPECT_EQ(gpu.dims(), cpu.dims()) << what << " output " << o;
    expect_equal(gpu, cpu, what + " output " + std::to_string(o));
  }
}

TEST_F(GpuTest, NonZeroMatchesCpu) {
  expect_same_outputs("NonZero", {small_ints(DType::kI32, {3, 7, 11}, -1, 1, 1)}, {}, 1, "i32 rank 3");
  expect_same_outputs("NonZero", {bools({1000}, 2)}, {}, 1, "bool");
  Tensor f = random_tensor(DType::kF32, {64, 33});
  for (int64_t i = 0; i < f.numel(); i += 3) f.mutable_data<float>()[i] = (i % 2) ? 0.f : -0.f;
  expect_same_outputs("NonZero", {f}, {}, 1, "f32 with zeros and negative zeros");
  expect_same_outputs("NonZero", {small_ints(DType::kF16, {5, 4}, 0, 0, 3)}, {}, 1, "all zero");
  expect_same_outputs("NonZero", {small_ints(DType::kI64, {}, 1, 1, 4)}, {}, 1, "scalar");
  expect_same_outputs("NonZero", {small_ints(DType::kU8, {0, 4}, 0, 1, 5)}, {}, 1, "empty");
  expect_same_outputs("NonZero", {small_ints(DType::kI8, {300000}, -3, 3, 6)}, {}, 1, "many blocks");
}

TEST_F(GpuTest, CompressMatchesCpu) {
  Tensor x = random_tensor(DType::kF32, {4, 5, 6});
  expect_same_outputs("Compress", {x, bools({5}, 1)}, {{"axis", Attribute::of_int(1)}}, 1, "axis 1");
  expect_same_outputs("Compress", {x, bools({3}, 2)}, {{"axis", Attribute::of_int(-1)}}, 1, "axis -1, short condition");
  expect_same_outputs("Compress", {x, bools({4}, 3)}, {{"axis", Attribute::of_int(0)}}, 1, "axis 0");
  expect_same_outputs("Compress", {x, bools({100}, 4)}, {}, 1, "flattened, short condition");
  expect_same_outputs("Compress", {random_tensor(DType::kF16, {7}), bools({9}, 5)}, {}, 1, "flattened, long condition");
  expect_same_outputs("Compress", {random_tensor(DType::kI64, {3, 2}), small_ints(DType::kBool, {3}, 0, 0, 6)},
                      {{"axis", Attribute::of_int(0)}}, 1, "nothing kept");
  expect_same_outputs("Compress", {random_tensor(DType::kF64, {2000, 3}), bools({2000}, 7)},
                      {{"axis", Attribute::of_int(0)}}, 1, "f64 rows");
}

TEST_F(GpuTest, UniqueMatchesCpuWithAllFourOutputs) {
  for (int64_t sorted : {1, 0}) {
    const Attrs s{{"sorted", Attribute::of_int(sorted)}};
    const std::string tag = sorted ? "sorted" : "unsorted";
    expect_same_outputs("Unique", {small_ints(DType::kI64, {500}, -20, 20, 1)}, s, 4, tag + " i64");
    expect_same_outputs("Unique", {small_ints(DType::kF32, {4, 60}, -5, 5, 2)}, s, 4, tag + " f32 flattened");
    Attrs axis0 = s, axis1 = s, axis_neg = s;
    axis0["axis"] = Attribute::of_int(0);
    axis1["axis"] = Attribute::of_int(1);
    axis_neg["axis"] = Attribute::of_int(-1);
    expect_same_outputs("Unique", {small_ints(DType::kI32, {40, 3}, 0, 1, 3)}, axis0, 4, tag + " rows");
    expect_same_outputs("Unique", {small_ints(DType::kU8, {2, 50, 2}, 0, 1, 4)}, axis1, 4, tag + " middle axis");
    expect_same_outputs("Unique", {small_ints(DType::kF16, {3, 4, 30}, -1, 1, 5)}, axis_neg, 4, tag + " last axis");
    expect_same_outputs("Unique", {random_tensor(DType::kF32, {1000})}, s, 4, tag + " all distinct");
    expect_same_outputs("Unique", {small_ints(DType::kBool, {77}, 0, 1, 6)}, s, 4, tag + " bool");
  }
  // Only Y wanted: the other outputs are not declared.
  expect_same_outputs("Unique", {small_ints(DType::kI64, {64}, 0, 9, 7)}, {}, 1, "Y only");
}

TEST_F(GpuTest, NonMaxSuppressionMatchesCpu) {
  // Boxes in a small area so they overlap; scores with ties.
  Tensor boxes = random_tensor(DType::kF32, {2, 120, 4}, 0.f, 10.f, 1);
  Tensor scores = small_ints(DType::kF32, {2, 3, 120}, 0, 50, 2);
  for (int64_t i = 0; i < scores.numel(); ++i) scores.mutable_data<float>()[i] /= 50.f;
  auto i64 = [](int64_t v) { return Tensor::vector_i64({v}); };
  auto f32 = [](float v) {
    Tensor t(DType::kF32, {1});
    t.mutable_data<float>()[0] = v;
    return t;
  };
  expect_same_outputs("NonMaxSuppression", {boxes, scores, i64(10), f32(0.3f), f32(0.2f)}, {}, 1, "corners");
  expect_same_outputs("NonMaxSuppression", {boxes, scores, i64(200), f32(0.6f)}, {}, 1, "no score threshold");
  expect_same_outputs("NonMaxSuppression", {boxes, scores, i64(5), f32(0.f), f32(0.5f)},
                      {{"center_point_box", Attribute::of_int(1)}}, 1, "center boxes");
  expect_same_outputs("NonMaxSuppression", {boxes, scores}, {}, 1, "no max: nothing selected");
  expect_same_outputs("NonMaxSuppression", {boxes, scores, i64(3), f32(0.5f), f32(2.f)}, {}, 1,
                      "threshold above every score");
}

// ---- the executor around a data-dependent layer ------------------------------

std::shared_ptr<Graph> parse(const char* text) {
  auto g = parse_graph(text);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  return g.is_ok() ? *g : nullptr;
}

const char* kNonZeroChain =
    "graph main(%x: f32[6,5]) {\n"
    "  %n: i64[2,?] = NonZero(%x)\n"
    "  %t: i64[?,2] = Transpose(%n) {perm = [1, 0]}\n"
    "  %y: i64[?,2] = Neg(%t)\n"
    "  return %y, %n\n"
    "}\n";

TEST_F(GpuTest, LayersAfterADataDependentLayerArePlannedWithItsActualDims) {
  auto g = parse(kNonZeroChain);
  Tensor x = random_tensor(DType::kF32, {6, 5});
  for (int64_t i = 0; i < 30; i += 4) x.mutable_data<float>()[i] = 0.f;  // 8 zeros: 22 kept
  auto cpu = run_graph_on_cpu(*g, {RunValue::of(x)});
  auto gpu = cuda::run_graph_on_cuda(*g, {RunValue::of(x)});
  ASSERT_TRUE(cpu.is_ok()) << cpu.status().to_string();
  ASSERT_TRUE(gpu.is_ok()) << gpu.status().to_string();
  EXPECT_EQ((*gpu)[0].tensor.dims(), (Dims{22, 2}));
  EXPECT_EQ((*gpu)[1].tensor.dims(), (Dims{2, 22}));
  expect_equal((*gpu)[0].tensor, (*cpu)[0].tensor, "NonZero -> Transpose -> Neg");
  expect_equal((*gpu)[1].tensor, (*cpu)[1].tensor, "NonZero");
}

TEST_F(GpuTest, DataDependentLayerRefusesCudaGraphCaptureNamingIt) {
  auto g = parse(kNonZeroChain);
  g->nodes()[0]->name = "where";
  cuda::DeviceBindings b(2);
  b.inputs.push_back(upload(random_tensor(DType::kF32, {6, 5})));
  auto weights = cuda::upload_weights(*g);
  ASSERT_TRUE(weights.is_ok());
  cuda::RunnerOptions options;
  options.use_cuda_graph = true;
  cuda::Runner runner(*g, *weights, options);
  Status st = runner.run({{6, 5}}, {nullptr}, b, nullptr);
  ASSERT_FALSE(st.is_ok());
  EXPECT_EQ(st.message(),
            "node 'where' (NonZero): its output shape depends on the data, which the host reads mid-run (a stream "
            "synchronization), so the run cannot be captured as a CUDA graph (run without --useCudaGraph)");
}

}  // namespace
}  // namespace kiln::gpu_test
