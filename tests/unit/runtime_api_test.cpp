// The public runtime API: engine queries, shapes and profiles, binding and
// running, output allocators, and contexts on several threads.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>
#include <thread>

#include "builder/builder.h"
#include "engine_fixtures.h"
#include "kiln/kiln.h"

namespace kiln {
namespace {

BuildConfig profile_config(std::vector<std::array<int64_t, 3>> batch_ranges) {
  BuildConfig c;
  for (auto [lo, opt, hi] : batch_ranges) {
    OptimizationProfile p;
    EXPECT_TRUE(p.set_shape_range("x", {lo, 4}, {opt, 4}, {hi, 4}).is_ok());
    c.profiles.push_back(p);
  }
  return c;
}

std::shared_ptr<Engine> make_engine(const BuildConfig& config = {}, Model m = testing::identity_model()) {
  auto plan = build_engine(m, config);
  EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  auto engine = Runtime::deserialize(plan->data(), plan->size());
  EXPECT_TRUE(engine.is_ok()) << engine.status().to_string();
  return *engine;
}

// Runs x (batch x 4) through the identity engine and returns y.
Expected<std::vector<float>> run_identity(ExecutionContext& ctx, const std::vector<float>& x) {
  int64_t batch = static_cast<int64_t>(x.size() / 4);
  KILN_RETURN_IF_ERROR(ctx.set_input_shape("x", {batch, 4}));
  KILN_RETURN_IF_ERROR(ctx.set_input_tensor_address("x", x.data()));
  std::vector<float> y(x.size()), w(4);
  KILN_RETURN_IF_ERROR(ctx.set_tensor_address("y", y.data()));
  KILN_RETURN_IF_ERROR(ctx.set_tensor_address("wout", w.data()));
  KILN_RETURN_IF_ERROR(ctx.execute());
  if (w != std::vector<float>{0, 1, 2, 3}) return internal_error("wout is wrong");
  return y;
}

TEST(RuntimeApi, EngineDescribesItsIoTensorsAndProfiles) {
  auto e = make_engine(profile_config({{1, 2, 8}}));
  ASSERT_EQ(e->num_io_tensors(), 3);
  EXPECT_EQ(e->io_tensor_name(0), "x");
  EXPECT_EQ(e->io_tensor_name(2), "wout");
  EXPECT_EQ(e->io_tensor_name(3), "");
  EXPECT_EQ(e->tensor_io_mode("x"), TensorIOMode::kInput);
  EXPECT_EQ(e->tensor_io_mode("y"), TensorIOMode::kOutput);
  EXPECT_EQ(e->tensor_io_mode("nope"), TensorIOMode::kNone);
  EXPECT_EQ(e->tensor_dtype("y"), DType::kF32);
  EXPECT_EQ(e->tensor_shape("x").value(), (std::vector<int64_t>{-1, 4}));
  EXPECT_EQ(e->tensor_dim_names("x").value(), (std::vector<std::string>{"batch", "4"}));
  EXPECT_EQ(e->tensor_shape("nope").status().message(),
            "the engine has no I/O tensor 'nope' (it has 'x', 'y', 'wout')");
  EXPECT_EQ(e->num_optimization_profiles(), 1);
  EXPECT_EQ(e->profile_shape("x", 0)->max, (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(e->profile_shape("x", 1).status().message(), "profile 1 does not exist (the engine has 1)");
  EXPECT_EQ(e->backend(), "cpu");
  EXPECT_EQ(e->kiln_version(), KILN_VERSION);
}

TEST(RuntimeApi, ExecuteCopiesThroughTheGraph) {
  auto e = make_engine();
  auto ctx = e->create_execution_context();
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  auto y = run_identity(*ctx, x);
  ASSERT_TRUE(y.is_ok()) << y.status().to_string();
  EXPECT_EQ(*y, x);
  EXPECT_EQ(ctx->tensor_shape("y").value(), (std::vector<int64_t>{2, 4}));
}

// Output shapes follow the input shapes when a context goes back to shapes
// it has run before (they come from its cache of inferred shapes then), and
// when the same shape is set again.
TEST(RuntimeApi, OutputShapesFollowInputShapesSeenBefore) {
  auto e = make_engine();
  auto ctx = e->create_execution_context();
  for (int64_t batch : {2, 3, 2, 2, 5, 3}) {
    std::vector<float> x(static_cast<size_t>(batch) * 4);
    for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) + 0.5f * static_cast<float>(batch);
    auto y = run_identity(*ctx, x);
    ASSERT_TRUE(y.is_ok()) << y.status().to_string();
    EXPECT_EQ(*y, x) << "batch " << batch;
    EXPECT_EQ(ctx->tensor_shape("y").value(), (std::vector<int64_t>{batch, 4})) << "batch " << batch;
  }
}

TEST(RuntimeApi, NanAndInfPassThrough) {
  auto e = make_engine();
  auto ctx = e->create_execution_context();
  float inf = std::numeric_limits<float>::infinity();
  auto y = run_identity(*ctx, {std::nanf(""), inf, -inf, 0});
  ASSERT_TRUE(y.is_ok());
  EXPECT_TRUE(std::isnan((*y)[0]));
  EXPECT_EQ((*y)[1], inf);
  EXPECT_EQ((*y)[2], -inf);
}

TEST(RuntimeApi, WithoutProfilesDynamicDimsTakeAnySize) {
  auto e = make_engine();
  auto ctx = e->create_execution_context();
  EXPECT_TRUE(ctx->set_input_shape("x", {1000, 4}).is_ok());
  EXPECT_TRUE(ctx->set_input_shape("x", {0, 4}).is_ok());
}

TEST(RuntimeApi, ShapeOutsideTheProfileNamesInputDimAndRange) {
  auto e = make_engine(profile_config({{1, 2, 8}, {16, 32, 64}}));
  auto ctx = e->create_execution_context();
  Status st = ctx->set_input_shape("x", {9, 4});
  EXPECT_EQ(st.code(), ErrorCode::kOutOfRange);
  EXPECT_EQ(st.message(), "input 'x' dim 0 (batch) is 9, outside optimization profile 0's range [1, 8]");
  EXPECT_TRUE(ctx->set_input_shape("x", {8, 4}).is_ok());
  // Switching profiles re-checks the shape already set.
  EXPECT_EQ(ctx->set_optimization_profile(1).message(),
            "input 'x' dim 0 (batch) is 8, outside optimization profile 1's range [16, 64]");
  EXPECT_TRUE(ctx->set_input_shape("x", {20, 4}).is_ok());
  EXPECT_EQ(ctx->set_optimization_profile(2).message(), "optimization profile 2 does not exist (the engine has 2)");
}

TEST(RuntimeApi, WrongRankFixedDimOrNameIsRejected) {
  auto e = make_engine();
  auto ctx = e->create_execution_context();
  EXPECT_EQ(ctx->set_input_shape("x", {2}).message(),
            "input 'x': shape [2] has rank 1, the engine expects rank 2 [batch,4]");
  EXPECT_EQ(ctx->set_input_shape("x", {2, 5}).message(),
            "input 'x' dim 1 is 5, the engine fixes it to 4 (shape [batch,4])");
  EXPECT_EQ(ctx->set_input_shape("x", {-2, 4}).message(), "input 'x' dim 0 (batch) is -2; dims must be >= 0");
  EXPECT_EQ(ctx->set_input_shape("y", {2, 4}).message(), "'y' is an output; only inputs take a shape");
  EXPECT_EQ(ctx->set_input_shape("z", {2, 4}).code(), ErrorCode::kNotFound);
  EXPECT_EQ(ctx->set_tensor_address("z", nullptr).code(), ErrorCode::kNotFound);
}

TEST(RuntimeApi, MissingShapeOrAddressIsReportedBeforeRunning) {
  auto e = make_engine();
  auto ctx = e->create_execution_context();
  EXPECT_EQ(ctx->infer_shapes().message(), "no shape set for input 'x' [batch,4] (call set_input_shape)");
  EXPECT_EQ(ctx->execute().message(), "no shape set for input 'x' [batch,4] (call set_input_shape)");
  ASSERT_TRUE(ctx->set_input_shape("x", {2, 4}).is_ok());
  EXPECT_EQ(ctx->execute().message(), "input 'x' has no address (call set_tensor_address)");
  std::vector<float> x(8);
  ASSERT_TRUE(ctx->set_input_tensor_address("x", x.data()).is_ok());
  EXPECT_EQ(ctx->execute().message(), "output 'y' has no address (call set_tensor_address)");
}

TEST(RuntimeApi, InputsSharingASymbolMustAgree) {
  Model m = testing::identity_model();
  Graph& g = *m.graph;
  Value* x2 = g.add_value("x2", g.inputs[0]->type);
  g.inputs.push_back(x2);
  Value* y2 = g.add_value("y2", x2->type);
  Node* n = g.add_node("Identity");
  n->inputs = {x2};
  n->outputs = {y2};
  y2->producer = n;
  g.outputs.push_back(y2);
  auto e = make_engine({}, std::move(m));
  auto ctx = e->create_execution_context();
  ASSERT_TRUE(ctx->set_input_shape("x", {2, 4}).is_ok());
  ASSERT_TRUE(ctx->set_input_shape("x2", {3, 4}).is_ok());
  EXPECT_EQ(ctx->infer_shapes().message(), "input 'x2' dim 0 (batch) is 3, but input 'x' set batch to 2");
}

class RecordingAllocator : public OutputAllocator {
 public:
  void* reallocate_output(const std::string& name, void*, size_t size, size_t alignment) override {
    last_name = name;
    last_size = size;
    EXPECT_EQ(alignment, 64u);
    buffer.resize(size / sizeof(float));
    return buffer.data();
  }
  void notify_shape(const std::string&, const std::vector<int64_t>& dims) override { shape = dims; }
  std::vector<float> buffer;
  std::vector<int64_t> shape;
  std::string last_name;
  size_t last_size = 0;
};

// x: string[batch,2] -> Identity -> y.
Model string_identity_model() {
  Model m;
  m.opsets = {{"", 17}};
  m.graph = std::make_shared<Graph>();
  Graph& g = *m.graph;
  Shape shape(Dims{Dim::symbolic("batch"), Dim(2)});
  Value* x = g.add_value("x", Type::tensor(DType::kString, shape));
  Value* y = g.add_value("y", Type::tensor(DType::kString, shape));
  g.inputs.push_back(x);
  g.outputs.push_back(y);
  Node* n = g.add_node("Identity");
  n->opset = 17;
  n->inputs = {x};
  n->outputs = {y};
  y->producer = n;
  return m;
}

class StringAllocator : public OutputAllocator {
 public:
  void* reallocate_output(const std::string&, void*, size_t, size_t) override { return nullptr; }
  std::string* reallocate_string_output(const std::string&, size_t count) override {
    strings.assign(count, "stale");
    return strings.data();
  }
  void notify_shape(const std::string&, const std::vector<int64_t>& dims) override { shape = dims; }
  std::vector<std::string> strings;
  std::vector<int64_t> shape;
};

class NumbersOnlyAllocator : public OutputAllocator {
 public:
  void* reallocate_output(const std::string&, void*, size_t, size_t) override { return nullptr; }
  void notify_shape(const std::string&, const std::vector<int64_t>&) override {}
};

TEST(RuntimeApi, StringTensorsBindArraysOfStdString) {
  auto e = make_engine({}, string_identity_model());
  EXPECT_EQ(e->tensor_dtype("x"), DType::kString);
  auto ctx = e->create_execution_context();
  std::vector<std::string> x = {"a", "", std::string("\0z", 2), "long string"}, y(4);
  ASSERT_TRUE(ctx->set_input_shape("x", {2, 2}).is_ok());
  ASSERT_TRUE(ctx->set_input_tensor_address("x", x.data()).is_ok());
  EXPECT_EQ(ctx->execute().message(), "output 'y' has no address (call set_tensor_address)");
  ASSERT_TRUE(ctx->set_tensor_address("y", y.data()).is_ok());
  ASSERT_TRUE(ctx->execute().is_ok());
  EXPECT_EQ(y, x);

  StringAllocator alloc;
  ASSERT_TRUE(ctx->set_input_shape("x", {1, 2}).is_ok());
  ASSERT_TRUE(ctx->set_output_allocator("y", &alloc).is_ok());
  Status st = ctx->execute();
  ASSERT_TRUE(st.is_ok()) << st.to_string();
  EXPECT_EQ(alloc.strings, (std::vector<std::string>{"a", ""}));
  EXPECT_EQ(alloc.shape, (std::vector<int64_t>{1, 2}));

  NumbersOnlyAllocator numbers;
  ASSERT_TRUE(ctx->set_output_allocator("y", &numbers).is_ok());
  EXPECT_EQ(ctx->execute().message(),
            "the allocator of string output 'y' returned no strings (reallocate_string_output)");
}

TEST(RuntimeApi, OutputAllocatorReceivesSizeAndShape) {
  auto e = make_engine();
  auto ctx = e->create_execution_context();
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, w(4);
  RecordingAllocator alloc;
  ASSERT_TRUE(ctx->set_input_shape("x", {3, 4}).is_ok());
  ASSERT_TRUE(ctx->set_input_tensor_address("x", x.data()).is_ok());
  ASSERT_TRUE(ctx->set_output_allocator("y", &alloc).is_ok());
  ASSERT_TRUE(ctx->set_tensor_address("wout", w.data()).is_ok());
  EXPECT_EQ(ctx->set_output_allocator("x", &alloc).message(), "'x' is an input; only outputs take an allocator");
  ASSERT_TRUE(ctx->execute().is_ok());
  EXPECT_EQ(alloc.last_name, "y");
  EXPECT_EQ(alloc.last_size, 48u);
  EXPECT_EQ(alloc.shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(alloc.buffer, x);
}

TEST(RuntimeApi, TwoContextsRunAtOnceOnTwoThreads) {
  auto e = make_engine();
  std::atomic<int> failures{0};
  auto work = [&](int seed) {
    auto ctx = e->create_execution_context();
    for (int it = 0; it < 200; ++it) {
      int batch = 1 + (seed + it) % 7;
      std::vector<float> x(static_cast<size_t>(batch) * 4);
      for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(seed * 1000 + it + static_cast<int>(i));
      auto y = run_identity(*ctx, x);
      if (!y.is_ok() || *y != x) ++failures;
    }
  };
  std::thread a(work, 1), b(work, 2);
  a.join();
  b.join();
  EXPECT_EQ(failures.load(), 0);
}

TEST(RuntimeApi, EngineFileRoundTripsThroughDisk) {
  auto plan = build_engine(testing::identity_model(), {});
  ASSERT_TRUE(plan.is_ok());
  auto path = (std::filesystem::temp_directory_path() / "kiln_runtime_api_test.kiln").string();
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(plan->data(), 1, plan->size(), f);
    std::fclose(f);
  }
  auto e = Runtime::deserialize_file(path);
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  EXPECT_EQ((*e)->serialize(), *plan);
  auto ctx = (*e)->create_execution_context();
  EXPECT_TRUE(run_identity(*ctx, {1, 2, 3, 4}).is_ok());
  std::filesystem::remove(path);
  EXPECT_EQ(Runtime::deserialize_file(path).status().code(), ErrorCode::kNotFound);
}

TEST(Builder, RejectsBadProfilesAndConfigs) {
  BuildConfig c;
  c.profiles.emplace_back();
  EXPECT_EQ(build_engine(testing::identity_model(), c).status().message(),
            "profile 0 gives no range for dynamic input 'x' [batch,4]: every profile needs one");
  c = profile_config({{1, 2, 8}});
  ASSERT_TRUE(c.profiles[0].set_shape_range("x", {1, 3}, {2, 3}, {8, 3}).is_ok());
  EXPECT_EQ(build_engine(testing::identity_model(), c).status().message(),
            "profile 0: input 'x' dim 1 is fixed to 4, the range is [3, 3]");
  OptimizationProfile p;
  EXPECT_EQ(p.set_shape_range("x", {4, 4}, {2, 4}, {8, 4}).message(),
            "input 'x' dim 0: needs 0 <= min <= opt <= max, got 4 / 2 / 8");
  c = {};
  c.optimization_level = 6;
  EXPECT_EQ(build_engine(testing::identity_model(), c).status().message(), "optimization level 6 is outside 0..5");
  c = {};
  c.disabled_passes = {"fold_constants", "fuse_everything", "cse"};
  const std::string disabled = build_engine(testing::identity_model(), c).status().message();
  EXPECT_EQ(disabled.rfind("no pass named fuse_everything, cse to disable; the pipeline's passes are ", 0), 0)
      << disabled;
  EXPECT_NE(disabled.find("fuse_matmul_bias_activation"), std::string::npos) << disabled;
  c = {};
  c.strongly_typed = true;
  c.fp16 = true;
  EXPECT_EQ(build_engine(testing::identity_model(), c).status().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace kiln
