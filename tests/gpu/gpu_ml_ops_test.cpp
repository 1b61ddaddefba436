// The ai.onnx.ml kernels (Binarizer, ArrayFeatureExtractor, LabelEncoder)
// through the CUDA executor against the CPU backend, bit for bit: random
// inputs in several dtypes, values equal to the threshold, NaN inputs and
// keys, repeated keys, defaults, more keys than one launch carries, and the
// errors and refusals (an index out of range, string values).
#include <algorithm>
#include <limits>
#include <numeric>

#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

constexpr const char* kBinarizer = "ai.onnx.ml.Binarizer";
constexpr const char* kAfe = "ai.onnx.ml.ArrayFeatureExtractor";
constexpr const char* kLabelEncoder = "ai.onnx.ml.LabelEncoder";
constexpr int kMlOpset = 4;

Tensor f32s(std::vector<float> v) { return Tensor::from_vector<float>(DType::kF32, {int64_t(v.size())}, v); }
Tensor f64s(std::vector<double> v) { return Tensor::from_vector<double>(DType::kF64, {int64_t(v.size())}, v); }
Tensor i64s(std::vector<int64_t> v, std::vector<int64_t> dims = {}) {
  if (dims.empty()) dims = {int64_t(v.size())};
  return Tensor::from_vector<int64_t>(DType::kI64, dims, v);
}
Tensor i32s(std::vector<int32_t> v) { return Tensor::from_vector<int32_t>(DType::kI32, {int64_t(v.size())}, v); }

Tensor cpu_of(const char* op, const std::vector<Tensor>& ins, const Attrs& attrs) {
  return run_cpu(op, ins, attrs, 0, 1, kMlOpset);
}
Tensor cuda_of(const char* op, const std::vector<Tensor>& ins, const Attrs& attrs) {
  return run_cuda(op, ins, attrs, 0, 1, kMlOpset);
}

// The CUDA run equals the CPU's bit for bit; returns the CPU result.
Tensor same(const char* op, const std::vector<Tensor>& ins, const Attrs& attrs, const std::string& what) {
  Tensor cpu = cpu_of(op, ins, attrs);
  expect_equal(cuda_of(op, ins, attrs), cpu, what);
  return cpu;
}

// The status of running `op` on `backend` ("cpu" or "cuda").
Status run_status(const std::string& backend, const char* op, const std::vector<Tensor>& ins, const Attrs& attrs) {
  std::vector<RunValue> values;
  auto g = one_node_graph(op, ins, attrs, 1, kMlOpset, values);
  if (backend == "cpu") return run_graph_on_cpu(*g, std::move(values)).status();
  return cuda::run_graph_on_cuda(*g, std::move(values)).status();
}

bool contains(const Status& s, const std::string& part) { return s.message().find(part) != std::string::npos; }

TEST_F(GpuTest, MlBinarizerMatchesCpu) {
  const DType types[] = {DType::kF32, DType::kF16, DType::kBF16, DType::kF64,
                         DType::kI8,  DType::kI32, DType::kI64,  DType::kU8};
  for (DType t : types)
    for (float threshold : {0.0f, 0.5f, -1.25f, 3.0f}) {
      const Tensor x = random_tensor(t, {3, 5, 7}, -4.f, 4.f, 3);
      same(kBinarizer, {x}, {{"threshold", Attribute::of_float(threshold)}},
           "Binarizer " + std::string(dtype_name(t)) + " threshold " + std::to_string(threshold));
    }
  same(kBinarizer, {random_tensor(DType::kF32, {}, -1.f, 1.f)}, {}, "Binarizer rank 0, default threshold");
  same(kBinarizer, {Tensor(DType::kF32, {2, 0})}, {}, "Binarizer empty");
}

// A value equal to the threshold is not above it; NaN is never above it.
TEST_F(GpuTest, MlBinarizerEdgeValues) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const Tensor x = f32s({0.5f, 0.25f, 1.f, -0.5f, nan, -nan, inf, -inf, 0.50000006f});
  const Tensor cpu = same(kBinarizer, {x}, {{"threshold", Attribute::of_float(0.5f)}}, "Binarizer f32 edges");
  const std::vector<float> want = {0, 0, 1, 0, 0, 0, 1, 0, 1};
  ASSERT_EQ(cpu.numel(), int64_t(want.size()));
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(cpu.data<float>()[i], want[i]) << "element " << i;
  // The same in f16 (NaN and infinities survive the conversion) and in integers.
  Tensor h(DType::kF16, x.dims());
  for (int64_t i = 0; i < x.numel(); ++i) h.mutable_data<uint16_t>()[i] = f32_to_f16(x.data<float>()[i]);
  same(kBinarizer, {h}, {{"threshold", Attribute::of_float(0.5f)}}, "Binarizer f16 edges");
  const Tensor cpu_i = same(kBinarizer, {i64s({0, 1, 2, -1})}, {{"threshold", Attribute::of_float(1.f)}},
                            "Binarizer i64 threshold equal to a value");
  EXPECT_EQ(std::vector<int64_t>(cpu_i.data<int64_t>(), cpu_i.data<int64_t>() + 4), (std::vector<int64_t>{0, 0, 1, 0}));
}

TEST_F(GpuTest, MlArrayFeatureExtractorMatchesCpu) {
  const DType types[] = {DType::kF32, DType::kF16, DType::kF64, DType::kI64, DType::kI32, DType::kU8, DType::kBool};
  for (DType t : types) {
    const std::string n = "ArrayFeatureExtractor " + std::string(dtype_name(t));
    same(kAfe, {random_tensor(t, {2, 3, 6}, -50.f, 50.f), i64s({5, 0, 0, 3})}, {}, n + " [2,3,6]");
    same(kAfe, {random_tensor(t, {6}, -50.f, 50.f), i64s({2})}, {}, n + " rank 1 -> [1,1]");
    same(kAfe, {random_tensor(t, {4, 6}, -50.f, 50.f), i64s({1, 4, 4, 2}, {2, 2})}, {}, n + " 2-D indices");
    same(kAfe, {random_tensor(t, {5, 9}, -50.f, 50.f), i32s({8, 7, 0})}, {}, n + " int32 indices");
  }
  const Tensor cpu = same(kAfe, {random_tensor(DType::kF32, {7}, -5.f, 5.f), i64s({6, 1})}, {}, "rank 1 shape");
  EXPECT_EQ(cpu.dims(), (std::vector<int64_t>{1, 2}));
}

// An index out of range is the CPU's error, word for word, on both backends.
TEST_F(GpuTest, MlArrayFeatureExtractorIndexOutOfRange) {
  const Tensor x = random_tensor(DType::kF32, {3, 4});
  for (const auto& [idx, bad] : std::vector<std::pair<std::vector<int64_t>, int64_t>>{{{1, 4, 0}, 4}, {{-1}, -1}}) {
    const std::string msg = "ArrayFeatureExtractor: index " + std::to_string(bad) + " is out of range [0, 4)";
    const Status cpu = run_status("cpu", kAfe, {x, i64s(idx)}, {});
    const Status gpu = run_status("cuda", kAfe, {x, i64s(idx)}, {});
    EXPECT_EQ(cpu.code(), ErrorCode::kInvalidArgument) << cpu.to_string();
    EXPECT_EQ(gpu.code(), ErrorCode::kInvalidArgument) << gpu.to_string();
    EXPECT_TRUE(contains(cpu, msg)) << cpu.to_string();
    EXPECT_TRUE(contains(gpu, msg)) << gpu.to_string();
  }
}

TEST_F(GpuTest, MlLabelEncoderMatchesCpu) {
  // int64 keys -> float values, with a default.
  const Attrs int_to_float = {{"keys_int64s", Attribute::of_ints({-3, 0, 1, 2, 7, 11})},
                              {"values_floats", Attribute::of_floats({0.5f, -1.f, 2.f, 3.25f, 4.f, -0.f})},
                              {"default_float", Attribute::of_float(7.5f)}};
  for (DType t : {DType::kI64, DType::kI32, DType::kF32, DType::kF16, DType::kU8})
    same(kLabelEncoder, {random_tensor(t, {4, 33}, -12.f, 12.f, 5)}, int_to_float,
         "LabelEncoder int64 -> float, input " + std::string(dtype_name(t)));
  // float keys -> int64 values: -0.0 matches a 0 key, NaN takes the default.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Attrs float_to_int = {{"keys_floats", Attribute::of_floats({0.f, 1.5f, -2.25f, 1e30f})},
                              {"values_int64s", Attribute::of_ints({10, 20, 30, 40})},
                              {"default_int64", Attribute::of_int(-7)}};
  const Tensor cpu = same(kLabelEncoder, {f32s({-0.f, 0.f, 1.5f, 1.25f, -2.25f, nan, 1e30f, 3.f})}, float_to_int,
                          "LabelEncoder float -> int64");
  EXPECT_EQ(std::vector<int64_t>(cpu.data<int64_t>(), cpu.data<int64_t>() + 8),
            (std::vector<int64_t>{10, 10, 20, -7, 30, -7, 40, -7}));
  same(kLabelEncoder, {random_tensor(DType::kF32, {257}, -3.f, 3.f)}, float_to_int, "LabelEncoder float random");
  // keys_tensor / values_tensor of other dtypes, default_tensor.
  const Attrs tensors = {{"keys_tensor", Attribute::of_tensor(f64s({2.0, -1.0, 0.5, 8.0}))},
                         {"values_tensor", Attribute::of_tensor(i32s({1, 2, 3, 4}))},
                         {"default_tensor", Attribute::of_tensor(i32s({42}))}};
  same(kLabelEncoder, {f64s({2.0, 0.5, 0.25, -1.0, 8.0, 9.0})}, tensors, "LabelEncoder f64 -> i32 tensors");
  same(kLabelEncoder, {random_tensor(DType::kI16, {3, 3, 3}, -9.f, 9.f)},
       {{"keys_tensor", Attribute::of_tensor(i64s({-1, 1, 3}))},
        {"values_tensor",
         Attribute::of_tensor(Tensor::from_vector<uint16_t>(DType::kF16, {3}, {0x3C00, 0xC000, 0x7E00}))}},
       "LabelEncoder i16 -> f16 values (a NaN value), default -0");
}

// The CPU's choices: the first of equal keys wins, the last NaN key matches
// NaN inputs, and without a default attribute a float miss is -0.0.
TEST_F(GpuTest, MlLabelEncoderRepeatedAndNanKeysAndDefaults) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const Attrs attrs = {{"keys_floats", Attribute::of_floats({3.f, nan, 3.f, 2.f, nan})},
                       {"values_floats", Attribute::of_floats({1.f, 2.f, 3.f, 4.f, 5.f})}};
  const Tensor cpu = same(kLabelEncoder, {f32s({3.f, nan, 2.f, 9.f})}, attrs, "LabelEncoder repeated and NaN keys");
  ASSERT_EQ(cpu.numel(), 4);
  EXPECT_EQ(cpu.data<float>()[0], 1.f);
  EXPECT_EQ(cpu.data<float>()[1], 5.f);
  EXPECT_EQ(cpu.data<float>()[2], 4.f);
  EXPECT_TRUE(cpu.data<float>()[3] == 0.f && std::signbit(cpu.data<float>()[3])) << cpu.data<float>()[3];
  // No default_int64: -1.
  same(kLabelEncoder, {i64s({5, 6, 7})},
       {{"keys_int64s", Attribute::of_ints({6})}, {"values_int64s", Attribute::of_ints({60})}},
       "LabelEncoder int64 -> int64, default -1");
  // No keys match at all, and an empty input.
  same(kLabelEncoder, {i64s({5, 6, 7})},
       {{"keys_int64s", Attribute::of_ints({1})}, {"values_floats", Attribute::of_floats({1.f})}},
       "LabelEncoder all misses");
  same(kLabelEncoder, {Tensor(DType::kI64, {0, 3})},
       {{"keys_int64s", Attribute::of_ints({1})}, {"values_floats", Attribute::of_floats({1.f})}},
       "LabelEncoder empty input");
}

// More keys than one launch carries (kLabelChunk = 240): 1000 shuffled keys.
TEST_F(GpuTest, MlLabelEncoderManyKeys) {
  std::vector<int64_t> keys(1000), values(1000);
  std::iota(keys.begin(), keys.end(), -500);
  std::mt19937 rng(7);
  std::shuffle(keys.begin(), keys.end(), rng);
  for (size_t i = 0; i < keys.size(); ++i) values[i] = keys[i] * 3 + 1;
  keys[10] = keys[20];  // a repeated key: the first wins, keys[10]'s old key becomes a miss
  const Attrs attrs = {{"keys_int64s", Attribute::of_ints(keys)},
                       {"values_int64s", Attribute::of_ints(values)},
                       {"default_int64", Attribute::of_int(123456)}};
  same(kLabelEncoder, {random_tensor(DType::kI64, {40, 50}, -700.f, 700.f, 9)}, attrs, "LabelEncoder 1000 keys");
  same(kLabelEncoder, {random_tensor(DType::kF32, {40, 50}, -700.f, 700.f, 9)}, attrs,
       "LabelEncoder 1000 keys, float input (fractions miss)");
}

// String keys or values stay on the CPU: the CUDA backend refuses the node.
TEST_F(GpuTest, MlLabelEncoderStringValuesUnsupported) {
  const Attrs attrs = {{"keys_int64s", Attribute::of_ints({1, 2})},
                       {"values_strings", Attribute::of_strings({"a", "b"})}};
  EXPECT_TRUE(run_status("cpu", kLabelEncoder, {i64s({1, 2, 3})}, attrs).is_ok());
  const Status gpu = run_status("cuda", kLabelEncoder, {i64s({1, 2, 3})}, attrs);
  EXPECT_EQ(gpu.code(), ErrorCode::kUnsupported) << gpu.to_string();
  EXPECT_TRUE(contains(gpu, "LabelEncoder: string keys or values")) << gpu.to_string();
}

}  // namespace
}  // namespace kiln::gpu_test
