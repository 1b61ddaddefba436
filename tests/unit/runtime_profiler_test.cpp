// The runtime's per-layer hooks: Engine::layer_info and ExecutionContext's
// Profiler, and BuildConfig's progress phases.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "builder/builder.h"
#include "engine_fixtures.h"
#include "kiln/kiln.h"

namespace kiln {
namespace {

std::shared_ptr<Engine> identity_engine(const BuildConfig& config = {}) {
  auto plan = build_engine(testing::identity_model(), config);
  EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  auto engine = Runtime::deserialize(plan->data(), plan->size());
  EXPECT_TRUE(engine.is_ok()) << engine.status().to_string();
  return *engine;
}

class RecordingProfiler final : public Profiler {
 public:
  void report_layer_time(const std::string& name, float ms) override { calls.emplace_back(name, ms); }
  std::vector<std::pair<std::string, float>> calls;
};

Status run_once(ExecutionContext& ctx) {
  static const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8};
  static std::vector<float> y(8), w(4);
  KILN_RETURN_IF_ERROR(ctx.set_input_shape("x", {2, 4}));
  KILN_RETURN_IF_ERROR(ctx.set_input_tensor_address("x", x.data()));
  KILN_RETURN_IF_ERROR(ctx.set_tensor_address("y", y.data()));
  KILN_RETURN_IF_ERROR(ctx.set_tensor_address("wout", w.data()));
  return ctx.execute();
}

TEST(RuntimeProfiler, LayerInfoNamesEachLayerWithItsOpAndTensors) {
  auto e = identity_engine();
  ASSERT_GE(e->num_layers(), 1);
  LayerInfo first = e->layer_info(0).value();
  EXPECT_EQ(first.name, "id_x");
  EXPECT_EQ(first.op_type, "Identity");
  EXPECT_EQ(first.domain, "");
  ASSERT_EQ(first.inputs.size(), 1u);
  EXPECT_EQ(first.inputs[0].name, "x");
  EXPECT_EQ(first.inputs[0].dtype, DType::kF32);
  EXPECT_EQ(first.inputs[0].dims, (std::vector<std::string>{"batch", "4"}));
  EXPECT_FALSE(first.inputs[0].constant);
  ASSERT_EQ(first.outputs.size(), 1u);
  EXPECT_EQ(first.outputs[0].name, "y");
  EXPECT_EQ(e->layer_info(e->num_layers()).status().message(), "layer " + std::to_string(e->num_layers()) +
                                                                   " does not exist (the engine has " +
                                                                   std::to_string(e->num_layers()) + ")");
  EXPECT_FALSE(e->layer_info(-1).is_ok());
}

TEST(RuntimeProfiler, ProfilerHearsEveryLayerOncePerRunInOrder) {
  auto e = identity_engine();
  auto ctx = e->create_execution_context();
  RecordingProfiler p;
  ctx->set_profiler(&p);
  EXPECT_EQ(ctx->profiler(), &p);
  ASSERT_TRUE(run_once(*ctx).is_ok());
  ASSERT_TRUE(run_once(*ctx).is_ok());
  size_t n = static_cast<size_t>(e->num_layers());
  ASSERT_EQ(p.calls.size(), 2 * n);
  for (size_t k = 0; k < 2 * n; ++k) {
    EXPECT_EQ(p.calls[k].first, e->layer_info(static_cast<int>(k % n)).value().name);
    EXPECT_GE(p.calls[k].second, 0.0f);
  }
}

TEST(RuntimeProfiler, ClearedProfilerHearsNothing) {
  auto e = identity_engine();
  auto ctx = e->create_execution_context();
  RecordingProfiler p;
  ctx->set_profiler(&p);
  ctx->set_profiler(nullptr);
  ASSERT_TRUE(run_once(*ctx).is_ok());
  EXPECT_TRUE(p.calls.empty());
}

class PhaseLog final : public BuildProgress {
 public:
  void phase_start(const std::string& phase) override { log.push_back("start " + phase); }
  void phase_finish(const std::string& phase) override { log.push_back("finish " + phase); }
  std::vector<std::string> log;
};

TEST(RuntimeProfiler, BuildReportsItsPhasesInOrder) {
  PhaseLog progress;
  BuildConfig config;
  config.progress = &progress;
  identity_engine(config);
  EXPECT_EQ(progress.log,
            (std::vector<std::string>{"start optimizing", "finish optimizing", "start planning memory",
                                      "finish planning memory", "start writing engine", "finish writing engine",
                                      "start checking engine", "finish checking engine"}));
}

}  // namespace
}  // namespace kiln
