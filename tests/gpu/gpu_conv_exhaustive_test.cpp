// --builderOptimizationLevel 5's exhaustive cuDNN search for convolutions
// (KernelQuery::exhaustive): the list extends the default one (which stays
// its prefix) with "cudnn_fused_all:<id>" and "cudnn_all:<id>" tactics, each
// once; a sample of those extras (the first two and the last of each
// family) runs a channels-last kiln.FusedConv (ResNet-50-like 3x3 with bias,
// residual and Relu; 3x3 stride 2 at batch 1 and odd sizes; 1x1 with
// residual) in f16 and bf16, and a plain NCHW Conv in f32 (TF32 off),
// against the CPU reference (f16/bf16 within 1e-2 of |cpu| + the
// convolution's size, f32 1e-4; NaN never passes); a config's plan is built
// again from its id alone (a plan-cache miss); an id no engine has still
// gives the CPU's result (the route's fallbacks). The host-only checks (ids as text, tactic parsing, keys) are
// tests/unit/cuda_cudnn_engine_config_test.cpp's and
// cuda_cudnn_conv_spec_test.cpp's.
#include <fmt/format.h>

#include <cstdio>
#include <set>

#include "../unit/fake_kernel_query.h"
#include "backends/cuda/cuda_kernel.h"
#include "backends/cuda/ops/cudnn_conv.h"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

// x [N, H, W, C] and w [K, R, S, C] of a channels-last FusedConv.
struct ExhaustiveCase {
  const char* what;
  std::vector<int64_t> x, w;
  Attrs attrs;
  bool residual = true;
  const char* activation = "Relu";
};

std::vector<ExhaustiveCase> exhaustive_cases() {
  return {
      {"3x3 pad 1 (ResNet-50 block)", {2, 14, 14, 64}, {64, 3, 3, 64}, {{"pads", ints({1, 1, 1, 1})}}},
      {"3x3 stride 2 batch 1 odd",
       {1, 15, 13, 32},
       {64, 3, 3, 32},
       {{"pads", ints({1, 1, 1, 1})}, {"strides", ints({2, 2})}},
       false},
      {"1x1 residual no activation", {2, 7, 9, 64}, {128, 1, 1, 64}, {}, true, ""},
  };
}

// The layer's tactics as the builder lists them at level 5 (`exhaustive`) or
// below, 64 candidates (at levels 5 and 4's 16 alike, cuDNN's whole heuristic
// list on these layers).
std::vector<std::string> tactics_of(const char* domain, const char* op, const std::vector<Tensor>& ins,
                                    const Attrs& attrs, bool exhaustive) {
  return cuda::listed_tactics(domain, op, ins, attrs, 64, exhaustive);
}

bool starts_with(const std::string& s, const char* prefix) { return s.rfind(prefix, 0) == 0; }

// The exhaustive list's extras: its default list is its prefix, every
// extra is a by-id tactic, and no name repeats.
std::vector<std::string> extras_of(const std::vector<std::string>& base, const std::vector<std::string>& all,
                                   const std::string& what) {
  EXPECT_GE(all.size(), base.size()) << what;
  if (all.size() < base.size()) return {};
  EXPECT_EQ(std::vector<std::string>(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(base.size())), base)
      << what << ": the default list is not the exhaustive one's prefix";
  std::vector<std::string> extras(all.begin() + static_cast<std::ptrdiff_t>(base.size()), all.end());
  for (const std::string& t : extras)
    EXPECT_TRUE(starts_with(t, "cudnn_all:") || starts_with(t, "cudnn_fused_all:")) << what << ": " << t;
  EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), all.size()) << what << ": a tactic repeats";
  std::printf("[   INFO   ] %s: %zu default tactics, %zu exhaustive extras\n", what.c_str(), base.size(),
              extras.size());
  return extras;
}

// The first two and the last extra of each family (all where fewer).
std::vector<std::string> sample(const std::vector<std::string>& extras) {
  std::vector<std::string> out;
  for (const char* family : {"cudnn_fused_all:", "cudnn_all:"}) {
    std::vector<std::string> of;
    for (const std::string& t : extras)
      if (starts_with(t, family)) of.push_back(t);
    for (size_t k = 0; k < of.size(); ++k)
      if (k < 2 || k + 1 == of.size()) out.push_back(of[k]);
  }
  return out;
}

TEST_F(GpuTest, ExhaustiveFusedConvTacticsExtendTheDefaultListAndMatchCpu) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (const ExhaustiveCase& c : exhaustive_cases()) {
      const std::string what = fmt::format("FusedConv {} {}", c.what, dtype_name(t));
      const float scale = std::sqrt(static_cast<float>(c.w[1] * c.w[2] * c.w[3])) / 3.f;
      Attrs attrs = c.attrs;
      attrs["channels_last"] = i(1);
      attrs["activation"] = s(c.activation);
      const Tensor x = random_tensor(t, c.x, -1.f, 1.f, 1), w = random_tensor(t, c.w, -1.f, 1.f, 2);
      std::vector<Tensor> ins{x, w, random_tensor(t, {c.w[0]}, -scale / 2, scale / 2, 3)};
      if (c.residual) {
        const Tensor plain = run_nhwc_fused_conv(false, {x, w}, c.attrs, "");
        ASSERT_TRUE(plain.is_valid()) << what;
        ins.push_back(random_tensor(t, plain.dims(), -scale, scale, 4));
      }
      const std::vector<std::string> base = tactics_of("kiln", "FusedConv", ins, attrs, false);
      const std::vector<std::string> extras = extras_of(base, tactics_of("kiln", "FusedConv", ins, attrs, true), what);
      // cuDNN's heuristics rank engines with tuned knobs; the same engines
      // with their default knobs, at least, are configs they never list.
      EXPECT_FALSE(extras.empty()) << what << ": the exhaustive search found nothing the heuristics did not";
      const Tensor cpu = run_fused_conv(false, ins, attrs, "");
      for (const std::string& tactic : sample(extras))
        expect_close_at_scale(run_fused_conv(true, ins, attrs, tactic), cpu, 1e-2, scale, what + " " + tactic);
    }
  }
}

TEST_F(GpuTest, ExhaustiveConvTacticsMatchCpuInF32) {
  const Attrs attrs{{"pads", ints({1, 1, 1, 1})}};
  const Tensor x = random_tensor(DType::kF32, {2, 32, 17, 19}, 0.1f, 1.f, 1);
  const Tensor w = random_tensor(DType::kF32, {48, 32, 3, 3}, 0.1f, 1.f, 2);
  const Tensor b = random_tensor(DType::kF32, {48}, 0.1f, 1.f, 3);
  const std::vector<Tensor> ins{x, w, b};
  const std::string what = "Conv 3x3 f32 NCHW";
  const std::vector<std::string> extras =
      extras_of(tactics_of("", "Conv", ins, attrs, false), tactics_of("", "Conv", ins, attrs, true), what);
  const Tensor cpu = run_cpu("Conv", ins, attrs);
  // TF32 off, as the tactics were listed (FakeQuery's allow_tf32).
  cuda::RunOptions fp32;
  fp32.allow_tf32 = false;
  for (const std::string& tactic : sample(extras)) {
    std::vector<RunValue> values;
    auto g = one_node_graph("Conv", ins, attrs, 1, 28, values);
    g->nodes()[0]->metadata["kiln.tactic"] = tactic;
    auto out = cuda::run_graph_on_cuda(*g, std::move(values), fp32);
    ASSERT_TRUE(out.is_ok()) << what << " " << tactic << ": " << out.status().to_string();
    expect_close((*out)[0].tensor, cpu, 1e-4, what + " " + tactic);
  }
}

// A ResNet-50 3x3 block conv, f16 NHWC, as the builder's FusedConv asks cuDNN.
cuda::CudnnConvSpec resnet_spec() {
  cuda::CudnnConvSpec spec;
  spec.dtype = DType::kF16;
  spec.channels_last = true;
  spec.g.batch = 2, spec.g.in_channels = 64, spec.g.out_channels = 64, spec.g.group = 1;
  for (int a = 1; a < 3; ++a) {
    spec.g.in[a] = spec.g.out[a] = 14;
    spec.g.kernel[a] = 3;
    spec.g.pad_begin[a] = spec.g.pad_end[a] = 1;
  }
  spec.workspace_limit = size_t(256) << 20;
  spec.fused = spec.fused_bias = spec.fused_residual = true;
  spec.activation = cuda::EpilogueActivation::kRelu;
  return spec;
}

// What an engine file holds is the tactic's name: a config's plan must come
// back from its id alone, not from the search's cache (a workspace limit one
// byte larger is another cache key, and admits the same configs).
TEST_F(GpuTest, ExhaustiveConfigPlansAreBuiltFromTheirIdAlone) {
  for (const bool fused : {true, false}) {
    cuda::CudnnConvSpec spec = resnet_spec();
    spec.fused = spec.fused_bias = spec.fused_residual = fused;
    spec.activation = fused ? cuda::EpilogueActivation::kRelu : cuda::EpilogueActivation::kNone;
    int rebuilt = 0;
    for (const cuda::CudnnEngineCandidate& c : cuda::cudnn_conv_engine_candidates(spec, 4, true)) {
      std::printf("[   INFO   ] %s %s engine %s workspace %zu%s\n", fused ? "fused" : "plain",
                  cuda::cudnn_engine_source_name(c.source), c.id.to_string().c_str(), c.workspace,
                  c.heuristic_index >= 0 ? fmt::format(" (cudnn:{})", c.heuristic_index).c_str() : "");
      if (c.heuristic_index >= 0 || rebuilt >= 3) continue;
      cuda::CudnnConvSpec again = spec;
      again.config = c.id;
      again.workspace_limit = spec.workspace_limit + 1;
      const auto plan = cuda::cudnn_conv_plan(again);
      ASSERT_NE(plan, nullptr) << "engine config " << c.id.to_string();
      EXPECT_EQ(cuda::workspace_size(*plan), c.workspace) << "engine config " << c.id.to_string();
      ++rebuilt;
    }
    EXPECT_GT(rebuilt, 0) << (fused ? "fused" : "plain") << ": no exhaustive extra to rebuild";
  }
}

// An engine index past every engine cuDNN has, or knobs it does not take:
// no plan, and the layer falls back (the plain convolution's first engine,
// or the direct kernel) with the same result.
TEST_F(GpuTest, ExhaustiveTacticWithoutAPlanRunsTheDefault) {
  const ExhaustiveCase c = exhaustive_cases()[0];
  const DType t = DType::kF16;
  const float scale = std::sqrt(static_cast<float>(c.w[1] * c.w[2] * c.w[3])) / 3.f;
  Attrs attrs = c.attrs;
  attrs["channels_last"] = i(1);
  attrs["activation"] = s("Relu");
  const Tensor x = random_tensor(t, c.x, -1.f, 1.f, 1), w = random_tensor(t, c.w, -1.f, 1.f, 2);
  const std::vector<Tensor> ins{x, w, random_tensor(t, {c.w[0]}, -scale / 2, scale / 2, 3)};
  const Tensor cpu = run_fused_conv(false, ins, attrs, "");
  for (const char* tactic : {"cudnn_fused_all:100000", "cudnn_all:100000", "cudnn_fused_all:0_k43=99999"})
    expect_close_at_scale(run_fused_conv(true, ins, attrs, tactic), cpu, 1e-2, scale, tactic);
  cuda::CudnnConvSpec spec = resnet_spec();
  spec.config = cuda::CudnnEngineConfigId{100000, {}};
  EXPECT_EQ(cuda::cudnn_conv_plan(spec), nullptr);
}

}  // namespace
}  // namespace kiln::gpu_test
