// Memory: the workspace limit applied to a layer's tactics, the engine's
// memory report (built, stored, printed) and the allocation strategies of the
// runtime API as the cpu backend takes them. The cuda side (arenas, user
// memory, contexts on several streams) is in tests/gpu/gpu_contexts_test.cpp.
#include <gtest/gtest.h>

#include <cstdint>

#include "builder/builder.h"
#include "builder/memory_plan.h"
#include "builder/workspace_filter.h"
#include "engine/engine_file.h"
#include "engine_fixtures.h"
#include "kiln/kiln.h"
#include "support/bytes.h"

namespace kiln {
namespace {

constexpr size_t kMiB = size_t(1) << 20;

TEST(WorkspaceFilter, TacticsOverTheLimitAreIneligibleAndSayWhy) {
  const std::map<std::string, size_t> need = {{"lib:0", 4 * kMiB}, {"lib:1", 64 * kMiB}, {"lib:2", 0}};
  auto f = filter_by_workspace(
      {"lib:0", "lib:1", "lib:2"}, [&](const std::string& t) { return need.at(t); }, 16 * kMiB);
  EXPECT_EQ(f.eligible, (std::vector<std::string>{"lib:0", "lib:2"}));
  EXPECT_EQ(f.rejected, (std::vector<std::string>{"lib:1 needs 64.0 MiB of workspace, over the limit of 16.0 MiB"}));
}

TEST(WorkspaceFilter, ATacticNeedingExactlyTheLimitFits) {
  auto f = filter_by_workspace(
      {"a", "b"}, [](const std::string& t) { return t == "a" ? size_t{1024} : 1025; }, 1024);
  EXPECT_EQ(f.eligible, (std::vector<std::string>{"a"}));
  EXPECT_EQ(f.rejected, (std::vector<std::string>{"b needs 1.0 KiB of workspace, over the limit of 1.0 KiB"}));
}

TEST(WorkspaceFilter, NoLimitKeepsEveryTacticInOrder) {
  auto f = filter_by_workspace(
      {"x", "y"}, [](const std::string&) { return size_t{1} << 40; }, SIZE_MAX);
  EXPECT_EQ(f.eligible, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(f.rejected.empty());
}

TEST(FormatBytes, PicksTheLargestUnitBelowTheValue) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(4096), "4.0 KiB");
  EXPECT_EQ(format_bytes(97 * kMiB + kMiB / 2), "97.5 MiB");
  EXPECT_EQ(format_bytes(uint64_t(3) << 30), "3.0 GiB");
}

TEST(MemoryReport, TextNamesWeightsArenaAtOptAndMaxAndLargestWorkspace) {
  MemoryReport r;
  r.weight_bytes = 97 * kMiB + kMiB / 2;
  r.activations_planned = true;
  r.profiles = {{38 * kMiB, 60 * kMiB, 4 * kMiB, true}, {10 * kMiB, 80 * kMiB, 2 * kMiB, true}};
  EXPECT_EQ(to_string(r),
            "memory: weights 97.5 MiB, activations 38.0 MiB at opt shapes / 80.0 MiB at max shapes (one arena per "
            "context), workspace 4.0 MiB (largest layer)");
  r.profiles[1].exact = false;
  r.workspace_limit_bytes = 16 * kMiB;
  EXPECT_EQ(to_string(r),
            "memory: weights 97.5 MiB, activations at least 38.0 MiB at opt shapes / 80.0 MiB at max shapes (one "
            "arena per context), workspace 4.0 MiB (largest layer), workspace limit 16.0 MiB");
}

TEST(MemoryReport, CpuEngineReportsItsWeightsAndNoArena) {
  BuildConfig config;
  config.workspace_limit_bytes = 16 * kMiB;
  auto plan = build_engine(testing::identity_model(), config);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  auto e = Runtime::deserialize(plan->data(), plan->size());
  ASSERT_TRUE(e.is_ok()) << e.status().to_string();
  const MemoryReport r = (*e)->memory_report();
  EXPECT_EQ(r.weight_bytes, 16u);  // w: f32[4]
  EXPECT_EQ(r.workspace_limit_bytes, 16 * kMiB);
  EXPECT_FALSE(r.activations_planned);
  EXPECT_TRUE(r.profiles.empty());
  EXPECT_EQ(to_string(r),
            "memory: weights 16 B, activations not planned (allocated per layer while running, or the shapes are "
            "unbounded), workspace limit 16.0 MiB");
}

TEST(MemoryReport, WeightBytesCountEachConstantReadOnce) {
  Model m = testing::identity_model();
  Graph& g = *m.graph;
  g.outputs.push_back(g.initializers[0]);  // w is read by a node and is an output: counted once
  EXPECT_EQ(weight_bytes(g), 16u);
}

EngineContents planned_contents() {
  Model m = testing::identity_model();
  EngineContents c;
  c.kiln_version = KILN_VERSION;
  c.backend = "cpu";
  c.device = current_device("cpu").value();
  c.graph = m.graph;
  c.opsets = m.opsets;
  EngineProfile p;
  p.ranges.emplace_back("x", ShapeRange{{1, 4}, {2, 4}, {8, 4}});
  c.profiles = {p};
  c.settings.workspace_limit_bytes = 1 << 20;
  c.memory.weight_bytes = 16;
  c.memory.activations_planned = true;
  c.memory.profiles = {{512, 2048, 256, false}};
  return c;
}

Expected<EngineContents> round_trip(const EngineContents& c) {
  KILN_ASSIGN_OR_RETURN(auto bytes, write_engine(c));
  // read_engine views the bytes: keep them alive with the contents' tensors.
  auto owner = std::make_shared<std::vector<uint8_t>>(std::move(bytes));
  return read_engine(FileBytes{reinterpret_cast<const std::byte*>(owner->data()), owner->size(), owner});
}

TEST(MemoryReport, EngineFileKeepsTheReport) {
  auto back = round_trip(planned_contents());
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  const MemoryReport& r = back->memory;
  EXPECT_EQ(r.weight_bytes, 16u);
  EXPECT_EQ(r.workspace_limit_bytes, 1u << 20);
  EXPECT_TRUE(r.activations_planned);
  ASSERT_EQ(r.profiles.size(), 1u);
  EXPECT_EQ(r.profiles[0].activation_bytes_opt, 512u);
  EXPECT_EQ(r.profiles[0].activation_bytes_max, 2048u);
  EXPECT_EQ(r.profiles[0].workspace_bytes, 256u);
  EXPECT_FALSE(r.profiles[0].exact);
}

TEST(MemoryReport, AReportForAnotherNumberOfProfilesIsCorrupt) {
  EngineContents c = planned_contents();
  c.memory.profiles.push_back(c.memory.profiles[0]);
  auto back = round_trip(c);
  ASSERT_FALSE(back.is_ok());
  EXPECT_EQ(back.status().message(), "engine metadata: the memory report covers 2 profiles, the engine has 1");
}

std::shared_ptr<Engine> cpu_engine() {
  BuildConfig config;
  OptimizationProfile p;
  EXPECT_TRUE(p.set_shape_range("x", {1, 4}, {2, 4}, {8, 4}).is_ok());
  config.profiles.push_back(p);
  auto plan = build_engine(testing::identity_model(), config);
  EXPECT_TRUE(plan.is_ok()) << plan.status().to_string();
  return Runtime::deserialize(plan->data(), plan->size()).value();
}

TEST(AllocationStrategy, CpuEngineNeedsNoDeviceMemoryForAnyProfile) {
  auto e = cpu_engine();
  EXPECT_EQ(e->device_memory_size(0).value(), 0u);
  EXPECT_EQ(e->device_memory_size(1).status().message(), "optimization profile 1 does not exist (the engine has 1)");
  EXPECT_EQ(e->device_memory_size(-1).status().code(), ErrorCode::kOutOfRange);
}

TEST(AllocationStrategy, CpuContextsRunWithEveryStrategy) {
  auto e = cpu_engine();
  for (AllocationStrategy s :
       {AllocationStrategy::kStatic, AllocationStrategy::kOnProfileChange, AllocationStrategy::kUserManaged}) {
    auto ctx = e->create_execution_context(s);
    EXPECT_EQ(ctx->allocation_strategy(), s);
    std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8}, y(8), w(4);
    ASSERT_TRUE(ctx->set_input_shape("x", {2, 4}).is_ok());
    ASSERT_TRUE(ctx->set_input_tensor_address("x", x.data()).is_ok());
    ASSERT_TRUE(ctx->set_tensor_address("y", y.data()).is_ok());
    ASSERT_TRUE(ctx->set_tensor_address("wout", w.data()).is_ok());
    Status st = ctx->execute();
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    EXPECT_EQ(y, x);
  }
}

TEST(AllocationStrategy, CpuRejectsDeviceMemorySayingWhy) {
  auto e = cpu_engine();
  auto ctx = e->create_execution_context(AllocationStrategy::kUserManaged);
  alignas(256) static char memory[256];
  EXPECT_EQ(ctx->set_device_memory(memory, sizeof(memory)).message(),
            "set_device_memory: the cpu backend runs in host memory it allocates itself");
}

TEST(AllocationStrategy, DeviceMemoryForShapesNeedsTheShapesAndIsZeroOnCpu) {
  auto e = cpu_engine();
  auto ctx = e->create_execution_context(AllocationStrategy::kUserManaged);
  auto missing = ctx->update_device_memory_size_for_shapes();
  ASSERT_FALSE(missing.is_ok());
  EXPECT_EQ(missing.status().message(), "no shape set for input 'x' [batch,4] (call set_input_shape)");
  ASSERT_TRUE(ctx->set_input_shape("x", {3, 4}).is_ok());
  EXPECT_EQ(ctx->update_device_memory_size_for_shapes().value(), 0u);
}

}  // namespace
}  // namespace kiln
