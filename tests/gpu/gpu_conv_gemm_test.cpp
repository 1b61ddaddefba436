// kiln.FusedConv's "cublaslt:<i>" tactics (a 1x1 channels-last layer as one
// cuBLASLt GEMM, bias + residual + Relu in its epilogue) against the CPU
// reference: 64 -> 256, 256 -> 64, 24 -> 144 at pixel counts that are not
// multiples of 8 (126, 35, 75) and ResNet-50's layer1 conv3 at 56x56 (3136);
// f16 and bf16 within 1e-2 relative to |cpu| + the convolution's magnitude,
// f32 within 1e-5 (TF32 off); with and without bias and residual; no
// activation, Relu and Clip [0, +inf). Every cublaslt:<i> the layer is
// offered runs, and cublaslt:0 runs even where none is (cuBLASLt then
// declined the GEMM, and the layer runs as under ""). Layers that are no GEMM
// (3x3, 1x1 at stride 2, Relu6, Silu) are not offered the tactic and give the
// CPU's result under "cublaslt:0" all the same. The host-only checks
// (workspace, more layers not offered it) are
// tests/unit/cuda_conv_gemm_tactic_test.cpp's.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "../unit/fake_kernel_query.h"
#include "backends/cuda/cuda_kernel.h"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

// The convolution's magnitude: X and W uniform in [-1, 1] (products of
// variance 1/9), so a sum of K products has deviation sqrt(K) / 3.
float conv_scale(int64_t k) { return std::sqrt(static_cast<float>(k)) / 3.f; }

struct Activation {
  const char* name;
  std::vector<float> params;
};

// The channels-last FusedConv's tactics as the builder lists them with `limit` candidates.
std::vector<std::string> tactics_of(const std::vector<Tensor>& ins, Attrs attrs, size_t limit) {
  attrs["channels_last"] = i(1);
  return cuda::listed_tactics("kiln", "FusedConv", ins, attrs, limit);
}

std::vector<std::string> cublaslt_only(const std::vector<std::string>& tactics) {
  std::vector<std::string> out;
  for (const std::string& t : tactics)
    if (t.rfind("cublaslt:", 0) == 0) out.push_back(t);
  return out;
}

// x [N, H, W, Cin] and w [Cout, 1, 1, Cin] (or [Cout, KH, KW, Cin] for layers
// that are no GEMM), with `attrs` (pads, strides).
struct GemmCase {
  const char* what;
  std::vector<int64_t> x, w;
  Attrs attrs;
};

// X and W signed; bias and Z within the convolution's magnitude, so the sum
// straddles zero and Relu bites. `offered`: whether the layer must be offered
// cuBLASLt's tactics (a GEMM) or must not (none).
void check_case(const GemmCase& c, DType t, const Activation& act, bool bias, bool residual, bool offered) {
  const float scale = conv_scale(c.w[1] * c.w[2] * c.w[3]);
  Attrs attrs = c.attrs;
  attrs["activation"] = Attribute::of_string(act.name);
  if (!act.params.empty()) attrs["activation_params"] = Attribute::of_floats(act.params);
  const Tensor x = random_tensor(t, c.x, -1.f, 1.f, 1);
  const Tensor w = random_tensor(t, c.w, -1.f, 1.f, 2);
  std::vector<Tensor> ins{x, w};
  if (bias || residual) ins.push_back(bias ? random_tensor(t, {c.w[0]}, -scale / 2, scale / 2, 3) : Tensor());
  const std::string what = fmt::format("{} {} act '{}'{}{}{}", c.what, dtype_name(t), act.name,
                                       act.params.empty() ? "" : fmt::format(" {},{}", act.params[0], act.params[1]),
                                       bias ? " bias" : "", residual ? " residual" : "");
  if (residual) {
    Attrs plain = c.attrs;
    const Tensor y = run_nhwc_fused_conv(false, {x, w}, plain, "");
    ASSERT_TRUE(y.is_valid()) << what;
    ins.push_back(random_tensor(t, y.dims(), -scale, scale, 4));
  }
  const Tensor cpu = run_nhwc_fused_conv(false, ins, attrs, "");
  ASSERT_TRUE(cpu.is_valid()) << what;
  const std::vector<std::string> all = tactics_of(ins, attrs, 16);
  std::vector<std::string> tactics = cublaslt_only(all);
  if (offered) {
    // 1 to 4 of the 16, together, after kiln's own kernels (kiln_igemm takes
    // 256 -> 64) and before cuDNN's.
    EXPECT_GE(tactics.size(), size_t(1)) << what << ": cuBLASLt offers no algorithm";
    EXPECT_LE(tactics.size(), size_t(4)) << what;
    const auto first = std::find(all.begin(), all.end(), "cublaslt:0");
    ASSERT_NE(first, all.end()) << what;
    for (auto it = all.begin(); it != first; ++it) EXPECT_EQ(it->rfind("kiln_", 0), size_t(0)) << what << ": " << *it;
    for (size_t k = 0; k < tactics.size(); ++k) {
      ASSERT_LT(static_cast<size_t>(first - all.begin()) + k, all.size()) << what;
      EXPECT_EQ(first[static_cast<ptrdiff_t>(k)], "cublaslt:" + std::to_string(k)) << what;
    }
  } else {
    EXPECT_TRUE(tactics.empty()) << what << ": offered " << tactics.size() << " cublaslt tactics";
  }
  if (std::find(tactics.begin(), tactics.end(), "cublaslt:0") == tactics.end())
    tactics.insert(tactics.begin(), "cublaslt:0");
  for (const std::string& tactic : tactics)
    expect_close_at_scale(run_nhwc_fused_conv(true, ins, attrs, tactic), cpu, tolerance_for(t), scale,
                          what + " " + tactic);
}

const std::vector<GemmCase>& gemm_cases() {
  static const std::vector<GemmCase> cases = {
      {"1x1 64->256 2x7x9", {2, 7, 9, 64}, {256, 1, 1, 64}, {}},
      {"1x1 256->64 1x5x7", {1, 5, 7, 256}, {64, 1, 1, 256}, {}},
      {"1x1 24->144 3x5x5", {3, 5, 5, 24}, {144, 1, 1, 24}, {}},
  };
  return cases;
}

const DType kHalfTypes[] = {DType::kF16, DType::kBF16};

TEST_F(GpuTest, ConvGemmCublasLtMatchesCpuWithAndWithoutBiasAndResidual) {
  for (const GemmCase& c : gemm_cases())
    for (DType t : kHalfTypes)
      for (const Activation& act : {Activation{"", {}}, Activation{"Relu", {}}})
        for (bool bias : {false, true})
          for (bool residual : {false, true}) check_case(c, t, act, bias, residual, true);
}

TEST_F(GpuTest, ConvGemmCublasLtMatchesCpuInF32) {
  for (const GemmCase& c : gemm_cases()) {
    check_case(c, DType::kF32, {"Relu", {}}, true, true, true);
    check_case(c, DType::kF32, {"", {}}, false, false, true);
  }
}

// Clip to [0, +inf) is Relu, and cuBLASLt's epilogue applies it.
TEST_F(GpuTest, ConvGemmCublasLtTakesClipToInfinityAsRelu) {
  const Activation clip{"Clip", {0.f, std::numeric_limits<float>::infinity()}};
  for (DType t : kHalfTypes) check_case(gemm_cases()[0], t, clip, true, true, true);
}

// ResNet-50's layer1 conv3 at batch 1 (m = 3136, a multiple of 64).
TEST_F(GpuTest, ConvGemmCublasLtMatchesCpuOnResNetLayer1Conv3) {
  const GemmCase c{"ResNet layer1 conv3 1x1 64->256 1x56x56", {1, 56, 56, 64}, {256, 1, 1, 64}, {}};
  for (DType t : kHalfTypes) check_case(c, t, {"Relu", {}}, true, true, true);
}

// The builder's share: none at one candidate; at two, cublaslt:0 first and
// cuDNN's after it.
TEST_F(GpuTest, ConvGemmCublasLtCandidateShare) {
  const DType t = DType::kF16;
  const std::vector<Tensor> ins{random_tensor(t, {2, 7, 9, 64}, -1.f, 1.f, 1),
                                random_tensor(t, {256, 1, 1, 64}, -1.f, 1.f, 2), random_tensor(t, {256}, -1.f, 1.f, 3)};
  const Attrs attrs{{"activation", Attribute::of_string("Relu")}};
  EXPECT_TRUE(cublaslt_only(tactics_of(ins, attrs, 1)).empty());
  const std::vector<std::string> two = tactics_of(ins, attrs, 2);
  ASSERT_EQ(two.size(), size_t(2));
  EXPECT_EQ(two[0], "cublaslt:0");
  EXPECT_EQ(two[1].rfind("cublaslt:", 0), std::string::npos) << two[1];
  const std::vector<std::string> eight = cublaslt_only(tactics_of(ins, attrs, 8));
  EXPECT_EQ(eight.size(), size_t(2));
}

// Layers that are no GEMM: not offered, and "cublaslt:0" runs them as "".
TEST_F(GpuTest, ConvGemmCublasLtFallsBackWhereTheLayerIsNoGemm) {
  const GemmCase three{"3x3 pad 1 32->64 1x6x7", {1, 6, 7, 32}, {64, 3, 3, 32}, {{"pads", ints({1, 1, 1, 1})}}};
  const GemmCase strided{"1x1 stride 2 64->256 2x7x9", {2, 7, 9, 64}, {256, 1, 1, 64}, {{"strides", ints({2, 2})}}};
  for (DType t : kHalfTypes) {
    check_case(three, t, {"Relu", {}}, true, true, false);
    check_case(strided, t, {"", {}}, true, false, false);
    check_case(gemm_cases()[2], t, {"Clip", {0.f, 6.f}}, true, false, false);
    check_case(gemm_cases()[2], t, {"Silu", {}}, true, true, false);
  }
}

}  // namespace
}  // namespace kiln::gpu_test
