// cuDNN engine config ids as text, on the host only: the form a
// "cudnn_all:<id>" tactic stores in an engine file and a timing cache, and
// which must read back as the same config in another process
// (backends/cuda/ops/cudnn_engine_config.h).
#ifdef KILN_WITH_CUDA
#include <gtest/gtest.h>

#include "backends/cuda/ops/cudnn_engine_config.h"

namespace kiln::cuda {
namespace {

TEST(CudnnEngineConfigId, DefaultKnobsAreTheEngineAlone) {
  EXPECT_EQ((CudnnEngineConfigId{12, {}}).to_string(), "12");
  EXPECT_EQ(parse_cudnn_engine_config("12"), (CudnnEngineConfigId{12, {}}));
  EXPECT_EQ(parse_cudnn_engine_config("0"), (CudnnEngineConfigId{0, {}}));
}

TEST(CudnnEngineConfigId, KnobsRoundTripInTypeOrder) {
  const CudnnEngineConfigId id{7, {{2, 5}, {24, 0}, {30, -1}}};
  EXPECT_EQ(id.to_string(), "7_k2=5_k24=0_k30=-1");
  EXPECT_EQ(parse_cudnn_engine_config(id.to_string()), id);
  // Knobs written in another order name the same config.
  EXPECT_EQ(parse_cudnn_engine_config("7_k30=-1_k2=5_k24=0"), id);
}

TEST(CudnnEngineConfigId, RejectsWhatItDoesNotWrite) {
  for (const char* bad : {"", "-1", "x", "12_", "12_k", "12_k3", "12_k3=", "12_k-3=1", "12_k3=1_k3=2", "12 ",
                          "12_k3=1x", "12:k3=1", "99999999999999999999"})
    EXPECT_FALSE(parse_cudnn_engine_config(bad).has_value()) << "'" << bad << "'";
}

TEST(CudnnEngineConfigId, SourcesHaveNames) {
  EXPECT_STREQ(cudnn_engine_source_name(CudnnEngineSource::kHeuristicA), "heur_a");
  EXPECT_STREQ(cudnn_engine_source_name(CudnnEngineSource::kFallback), "fallback");
  EXPECT_STREQ(cudnn_engine_source_name(CudnnEngineSource::kHeuristicB), "heur_b");
  EXPECT_STREQ(cudnn_engine_source_name(CudnnEngineSource::kGlobalIndex), "global");
}

// Operand reordering for int8x32 is something kiln never does.
TEST(CudnnEngineConfigId, EnginesThatWantReorderedOperandsDoNotRunAsIs) {
  CudnnEngineTraits t;
  EXPECT_TRUE(cudnn_engine_runs_as_is(t));
  t.behavior = {CUDNN_BEHAVIOR_NOTE_RUNTIME_COMPILATION, CUDNN_BEHAVIOR_NOTE_SUPPORTS_CUDA_GRAPH_NATIVE_API};
  EXPECT_TRUE(cudnn_engine_runs_as_is(t));
  t.behavior.push_back(CUDNN_BEHAVIOR_NOTE_REQUIRES_FILTER_INT8x32_REORDER);
  EXPECT_FALSE(cudnn_engine_runs_as_is(t));
  t.behavior = {CUDNN_BEHAVIOR_NOTE_REQUIRES_BIAS_INT8x32_REORDER};
  EXPECT_FALSE(cudnn_engine_runs_as_is(t));
}

}  // namespace
}  // namespace kiln::cuda
#endif  // KILN_WITH_CUDA
