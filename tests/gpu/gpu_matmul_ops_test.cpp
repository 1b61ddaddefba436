// The CUDA matmul family (MatMul, Gemm, kiln.FusedMatMul, MatMulInteger,
// QLinearMatMul, Q/DQ, DynamicQuantizeLinear, Einsum, Det) against the CPU oracle. Attention and
// RotaryEmbedding are in gpu_attention_ops_test.cpp.
#include <chrono>
#include <cstdio>

#include "backends/cuda/cuda_runner.h"
#include "backends/cuda/cudnn_handle.h"
#include "backends/cuda/ops/cudnn_matmul.h"
#include "gpu_test_util.h"
#include "ir/element_cast.h"
#include "ir/quantize.h"

namespace kiln::gpu_test {
namespace {

using Dims = std::vector<int64_t>;

std::string type_name(DType t) { return std::string(dtype_name(t)); }

class GpuMatmulOpsTest : public GpuTest {};

// Positive operands keep long dot products away from cancellation, so
// relative tolerances are meaningful.
Tensor operand(DType t, Dims dims, uint32_t seed) { return random_tensor(t, std::move(dims), 0.1f, 1.f, seed); }

// Integers in [lo, hi] of any integer dtype, packed 4-bit ones too.
Tensor random_ints(DType t, Dims dims, int lo, int hi, uint32_t seed) {
  const Tensor wide = random_tensor(DType::kI32, dims, static_cast<float>(lo), static_cast<float>(hi), seed);
  Tensor out(t, dims);
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t v = wide.data<int32_t>()[i];
    v = v < lo ? lo : (v > hi ? hi : v);
    set_integer_element(out, i, v);
  }
  return out;
}

// f32 sums over hundreds of terms in another order: 1e-4 relative.
double matmul_tolerance(DType t) { return t == DType::kF32 ? 1e-4 : tolerance_for(t); }

void check_op(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs, double tol,
              const std::string& what, size_t output = 0, int num_outputs = 1) {
  expect_close(run_cuda(op, ins, attrs, output, num_outputs), run_cpu(op, ins, attrs, output, num_outputs), tol, what);
}

void check_exact(const std::string& op, const std::vector<Tensor>& ins, const Attrs& attrs, const std::string& what,
                 size_t output = 0, int num_outputs = 1) {
  expect_equal(run_cuda(op, ins, attrs, output, num_outputs), run_cpu(op, ins, attrs, output, num_outputs), what);
}

TEST_F(GpuMatmulOpsTest, MatMulMatchesCpuForEveryBatchingForm) {
  const std::vector<std::pair<Dims, Dims>> cases = {
      {{33, 65}, {65, 17}},          // 2-D
      {{3, 16, 40}, {3, 40, 24}},    // batched
      {{4, 5, 7}, {7, 6}},           // batch x shared B
      {{7, 9}, {3, 9, 5}},           // shared A x batch
      {{2, 1, 5, 7}, {1, 3, 7, 6}},  // broadcast both ways: an outer loop
      {{2, 3, 5, 7}, {2, 1, 7, 6}},  // broadcast inner dim of B
      {{7}, {7, 6}},                 // 1-D x 2-D
      {{5, 7}, {7}},                 // 2-D x 1-D
      {{7}, {2, 7, 3}},              // 1-D x batch
      {{7}, {7}},                    // dot product
      {{2, 130, 300}, {300, 200}},   // many blocks
  };
  for (DType t : kFloatTypes)
    for (const auto& [da, db] : cases) {
      const Tensor a = operand(t, da, 1), b = operand(t, db, 2);
      check_op("MatMul", {a, b}, {}, matmul_tolerance(t),
               std::string("MatMul ") + type_name(t) + " " + shape_str(da) + "x" + shape_str(db));
    }
}

TEST_F(GpuMatmulOpsTest, MatMulOfIntegersAndF64UsesThePlainKernel) {
  for (DType t : {DType::kI32, DType::kI64, DType::kU32, DType::kU64}) {
    const Tensor a = random_tensor(t, {2, 3, 19, 37}, -9, 9, 1), b = random_tensor(t, {3, 37, 21}, -9, 9, 2);
    check_exact("MatMul", {a, b}, {}, std::string("MatMul ") + type_name(t));
  }
  const Tensor a = operand(DType::kF64, {5, 33, 70}, 1), b = operand(DType::kF64, {70, 18}, 2);
  check_op("MatMul", {a, b}, {}, 1e-12, "MatMul f64");
}

TEST_F(GpuMatmulOpsTest, MatMulWithEmptyKIsZerosAndEmptyOutputsAreFine) {
  for (DType t : {DType::kF32, DType::kI32}) {
    check_exact("MatMul", {Tensor(t, {3, 0}), Tensor(t, {0, 4})}, {}, std::string("K=0 ") + type_name(t));
    check_exact("MatMul", {Tensor(t, {0, 5}), operand(t, {5, 4}, 1)}, {}, std::string("M=0 ") + type_name(t));
  }
}

TEST_F(GpuMatmulOpsTest, MatMulWithTf32StaysWithinTf32Tolerance) {
  const Tensor a = operand(DType::kF32, {96, 200}, 1), b = operand(DType::kF32, {200, 80}, 2);
  expect_close(run_cuda("MatMul", {a, b}, {}, 0, 1, 28, /*allow_tf32=*/true), run_cpu("MatMul", {a, b}),
               tolerance_for(DType::kF32, true) * 3, "MatMul tf32");
}

TEST_F(GpuMatmulOpsTest, GemmMatchesCpuForTransposesAndEveryFormOfC) {
  const int64_t m = 37, n = 29, k = 51;
  for (DType t : {DType::kF32, DType::kF16, DType::kBF16, DType::kF64, DType::kI32})
    for (int ta : {0, 1})
      for (int tb : {0, 1}) {
        const bool integer = t == DType::kI32;
        auto input = [&](Dims d, uint32_t seed) {
          return integer ? random_tensor(t, d, -5, 5, seed) : operand(t, d, seed);
        };
        const Tensor a = input(ta ? Dims{k, m} : Dims{m, k}, 1), b = input(tb ? Dims{n, k} : Dims{k, n}, 2);
        const std::string what =
            std::string("Gemm ") + type_name(t) + " transA " + std::to_string(ta) + " transB " + std::to_string(tb);
        Attrs attrs = {{"transA", Attribute::of_int(ta)}, {"transB", Attribute::of_int(tb)}};
        if (!integer) attrs["alpha"] = Attribute::of_float(0.5f);
        const double tol = t == DType::kF64 ? 1e-12 : matmul_tolerance(t);
        auto check = [&](const std::vector<Tensor>& ins, const Attrs& at, const std::string& w) {
          if (integer)
            check_exact("Gemm", ins, at, w);
          else
            check_op("Gemm", ins, at, tol, w);
        };
        check({a, b}, attrs, what + " no C");
        check({a, b, input({n}, 3)}, attrs, what + " bias vector");
        Attrs scaled = attrs;
        scaled["beta"] = Attribute::of_float(integer ? 2.f : 0.25f);
        check({a, b, input({m, n}, 4)}, scaled, what + " full C");
        check({a, b, input({n}, 3)}, scaled, what + " scaled bias vector");
        check({a, b, input({m, 1}, 5)}, scaled, what + " column C");
        check({a, b, input({}, 6)}, scaled, what + " scalar C");
      }
}

// FusedMatMul operands whose products do not cancel: A is positive and each
// column of B (and its bias) has one sign, alternating, so the activations see
// values of both signs of size about 0.1 to 3 without near-zero sums.
struct FusedOperands {
  Tensor a, b, bias;
};

FusedOperands fused_operands(DType t, const Dims& da, const Dims& db, uint32_t seed) {
  const int64_t k = db.size() >= 2 ? db[db.size() - 2] : db[0], n = db.size() >= 2 ? db.back() : 1;
  Tensor a = random_tensor(DType::kF32, da, 0.1f, 1.f, seed);
  Tensor b = random_tensor(DType::kF32, db, 0.1f, 1.f, seed + 1);
  Tensor bias = random_tensor(DType::kF32, {n}, 0.05f, 0.5f, seed + 2);
  const float scale = 3.f / static_cast<float>(k > 0 ? k : 1);
  for (int64_t i = 0; i < b.numel(); ++i) b.mutable_data<float>()[i] *= (i % n) % 2 ? -scale : scale;
  for (int64_t j = 1; j < n; j += 2) bias.mutable_data<float>()[j] *= -1.f;
  auto in = [&](const Tensor& x) { return t == DType::kF32 ? x : cast_tensor(x, t).value(); };
  return {in(a), in(b), in(bias)};
}

// A residual for an output of `dims` with the sign of the bias's column
// (alternating), so bias, product and residual never cancel: 0.05 to 0.5.
Tensor fused_residual(DType t, const Dims& dims, uint32_t seed) {
  Tensor r = random_tensor(DType::kF32, dims, 0.05f, 0.5f, seed);
  const int64_t n = dims.empty() ? 1 : dims.back();
  for (int64_t i = 0; i < r.numel(); ++i)
    if ((i % n) % 2) r.mutable_data<float>()[i] *= -1.f;
  return t == DType::kF32 ? r : cast_tensor(r, t).value();
}

TEST_F(GpuMatmulOpsTest, FusedMatMulMatchesCpuForEveryActivationDtypeAndBatchingForm) {
  const std::vector<std::pair<Dims, Dims>> cases = {
      {{2, 5, 40}, {40, 24}},        // batch x shared B: one call, m = batch * rows
      {{33, 65}, {65, 17}},          // odd n
      {{3, 16, 40}, {3, 40, 24}},    // batched B: strided batch, one bias for all
      {{2, 1, 5, 7}, {1, 3, 7, 6}},  // broadcast both ways: plain product + bias pass
      {{40}, {40, 24}},              // 1-D A
      {{2, 130, 300}, {300, 200}},   // many blocks
  };
  for (DType t : kFloatTypes)
    for (const char* act : {"", "Relu", "Gelu", "GeluTanh"})
      for (const auto& [da, db] : cases) {
        const FusedOperands x = fused_operands(t, da, db, 1);
        const Attrs attrs = {{"activation", Attribute::of_string(act)}};
        const std::string what = std::string("FusedMatMul ") + type_name(t) + " " + shape_str(da) + "x" +
                                 shape_str(db) + " activation \"" + act + "\"";
        check_op("kiln.FusedMatMul", {x.a, x.b, x.bias}, attrs, matmul_tolerance(t), what + " bias");
        check_op("kiln.FusedMatMul", {x.a, x.b}, attrs, matmul_tolerance(t), what + " no bias");
        // The residual (cuBLASLt's C; on the broadcast case the C of each call of the outer loop).
        const Tensor r = fused_residual(t, run_cpu("kiln.FusedMatMul", {x.a, x.b}, attrs).dims(), 4);
        check_op("kiln.FusedMatMul", {x.a, x.b, x.bias, r}, attrs, matmul_tolerance(t), what + " bias residual");
        check_op("kiln.FusedMatMul", {x.a, x.b, Tensor(), r}, attrs, matmul_tolerance(t), what + " residual");
      }
}

TEST_F(GpuMatmulOpsTest, FusedMatMulWithEmptyKIsTheActivationOfTheBias) {
  for (DType t : kFloatTypes)
    for (const char* act : {"", "Relu", "Gelu", "GeluTanh"}) {
      const FusedOperands x = fused_operands(t, {3, 0}, {0, 4}, 1);
      check_op("kiln.FusedMatMul", {x.a, x.b, x.bias}, {{"activation", Attribute::of_string(act)}}, tolerance_for(t),
               std::string("FusedMatMul K=0 ") + type_name(t) + " " + act);
      // With a residual: the activation of bias + residual.
      check_op("kiln.FusedMatMul", {x.a, x.b, x.bias, fused_residual(t, {3, 4}, 4)},
               {{"activation", Attribute::of_string(act)}}, tolerance_for(t),
               std::string("FusedMatMul K=0 residual ") + type_name(t) + " " + act);
    }
}

TEST_F(GpuMatmulOpsTest, FusedMatMulWithTf32StaysWithinTf32Tolerance) {
  const FusedOperands x = fused_operands(DType::kF32, {96, 200}, {200, 80}, 1);
  for (const char* act : {"Relu", "Gelu"}) {
    const Attrs attrs = {{"activation", Attribute::of_string(act)}};
    expect_close(run_cuda("kiln.FusedMatMul", {x.a, x.b, x.bias}, attrs, 0, 1, 28, /*allow_tf32=*/true),
                 run_cpu("kiln.FusedMatMul", {x.a, x.b, x.bias}, attrs), tolerance_for(DType::kF32, true) * 3,
                 std::string("FusedMatMul tf32 ") + act);
  }
}

// FusedMatMul's cuDNN tactics (cudnn_matmul.h): "cudnn:<i>" is cuDNN's i-th
// usable engine config for the layer.
constexpr int kCudnnTacticsTried = 4;

cuda::BiasActivation activation_of(const std::string& act) {
  if (act == "Relu") return cuda::BiasActivation::kRelu;
  if (act == "Gelu") return cuda::BiasActivation::kGelu;
  if (act == "GeluTanh") return cuda::BiasActivation::kGeluTanh;
  return cuda::BiasActivation::kNone;
}

// How many cudnn tactics the layer has (at most `limit`), under
// run_graph_on_cuda's unlimited workspace; `ins` is A, B and maybe the bias.
int cudnn_engines(const std::vector<Tensor>& ins, const std::string& act, int limit = kCudnnTacticsTried) {
  const std::optional<cuda::CudnnMatmulSpec> spec = cuda::cudnn_matmul_spec(
      ins[0].dtype(), ins[0].dims(), ins[1].dims(), ins.size() > 2, activation_of(act), SIZE_MAX);
  return spec ? cuda::cudnn_matmul_engine_count(*spec, limit) : 0;
}

Tensor run_fused_tactic(const std::vector<Tensor>& ins, const Attrs& attrs, const std::string& tactic) {
  std::vector<RunValue> values;
  auto g = one_node_graph("kiln.FusedMatMul", ins, attrs, 1, 28, values);
  g->nodes()[0]->metadata["kiln.tactic"] = tactic;
  cuda::RunOptions options;
  options.allow_tf32 = false;  // f32 cases are checked at f32's tolerance
  auto out = cuda::run_graph_on_cuda(*g, std::move(values), options);
  EXPECT_TRUE(out.is_ok()) << tactic << ": " << out.status().to_string();
  return out.is_ok() ? (*out)[0].tensor : Tensor();
}

// Every cudnn tactic of the layer against the CPU; `must_take`: cuDNN has to
// offer one (else the layer would silently keep cuBLASLt).
void check_cudnn_tactics(const std::vector<Tensor>& ins, const std::string& act, const std::string& what,
                         bool must_take = true) {
  const int n = cudnn_engines(ins, act);
  if (must_take) {
    EXPECT_GT(n, 0) << what << ": cuDNN offers no engine config";
  }
  std::printf("[   INFO   ] %s: %d cuDNN engine config(s) tried\n", what.c_str(), n);
  const Attrs attrs = {{"activation", Attribute::of_string(act)}};
  const Tensor want = run_cpu("kiln.FusedMatMul", ins, attrs);
  for (int i = 0; i < n; ++i) {
    const std::string tactic = cuda::cudnn_matmul_tactic(i);
    expect_close(run_fused_tactic(ins, attrs, tactic), want, matmul_tolerance(ins[0].dtype()),
                 what + " tactic " + tactic);
  }
}

// ViT-B/16's first MLP product (the batch folded into rows), a 3-D A with an
// odd row count, a 2-D A, and a batched B (which cuDNN may decline) in f16
// and bf16, for every activation, with and without the bias.
TEST_F(GpuMatmulOpsTest, FusedMatMulCudnnTacticsMatchCpu) {
  if (!cuda::cudnn_matmul_compiled()) GTEST_SKIP() << "built without the cuDNN frontend (scripts/install_deps.sh)";
  struct Case {
    Dims a, b;
    bool must_take;
  };
  const std::vector<Case> cases = {
      {{3, 197, 256}, {256, 512}, true},
      {{96, 128}, {128, 64}, true},
      {{2, 33, 64}, {2, 64, 40}, false},
  };
  for (DType t : {DType::kF16, DType::kBF16}) {
    for (const char* act : {"", "Relu", "Gelu", "GeluTanh"})
      for (const Case& c : cases) {
        const FusedOperands x = fused_operands(t, c.a, c.b, 1);
        const std::string what = std::string("FusedMatMul ") + type_name(t) + " " + shape_str(c.a) + "x" +
                                 shape_str(c.b) + " activation \"" + act + "\"";
        check_cudnn_tactics({x.a, x.b, x.bias}, act, what + " bias", c.must_take);
        check_cudnn_tactics({x.a, x.b}, act, what + " no bias", c.must_take);
      }
    const FusedOperands vit = fused_operands(t, {3, 197, 768}, {768, 3072}, 2);
    check_cudnn_tactics({vit.a, vit.b, vit.bias}, "Gelu", "ViT-B/16 MLP " + type_name(t) + " Gelu bias");
    check_cudnn_tactics({vit.a, vit.b}, "Gelu", "ViT-B/16 MLP " + type_name(t) + " Gelu no bias");
  }
}

// cuDNN's graph has no residual: a layer with one is never offered a cudnn
// tactic, and one pinned to it anyway (a stale engine) runs on cuBLASLt with
// the residual, not cuDNN without it.
TEST_F(GpuMatmulOpsTest, FusedMatMulWithAResidualRunsCudnnTacticsOnCublasLt) {
  for (DType t : {DType::kF16, DType::kBF16}) {
    const FusedOperands x = fused_operands(t, {3, 197, 256}, {256, 512}, 1);
    const std::vector<Tensor> ins = {x.a, x.b, x.bias, fused_residual(t, {3, 197, 512}, 4)};
    const Attrs attrs = {{"activation", Attribute::of_string("Gelu")}};
    expect_close(run_fused_tactic(ins, attrs, "cudnn:0"), run_cpu("kiln.FusedMatMul", ins, attrs), matmul_tolerance(t),
                 "FusedMatMul residual cudnn:0 " + type_name(t));
  }
}

// A row count the product has not run at: the plan of cudnn:0 at batch 8 of
// 197 rows, then at 5, 13 and 32, each matching the CPU; the printed plan
// times show what a new row count costs (not asserted).
TEST_F(GpuMatmulOpsTest, FusedMatMulCudnnPlansNewRowCountsAndMatchesCpu) {
  if (!cuda::cudnn_matmul_compiled()) GTEST_SKIP() << "built without the cuDNN frontend (scripts/install_deps.sh)";
  std::printf("[   INFO   ] cuDNN %zu\n", cudnnGetVersion());
  const Attrs attrs = {{"activation", Attribute::of_string("Gelu")}};
  for (int64_t batch : {8, 5, 13, 32}) {
    const FusedOperands x = fused_operands(DType::kF16, {batch, 197, 256}, {256, 384}, 3);
    const std::optional<cuda::CudnnMatmulSpec> spec =
        cuda::cudnn_matmul_spec(DType::kF16, x.a.dims(), x.b.dims(), true, cuda::BiasActivation::kGelu, SIZE_MAX);
    ASSERT_TRUE(spec.has_value());
    const auto start = std::chrono::steady_clock::now();
    const bool planned = cuda::cudnn_matmul_plan(*spec) != nullptr;
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("[   INFO   ] FusedMatMul f16 [%lld,197,256]x[256,384] Gelu: cudnn:0 plan %.1f ms%s\n",
                static_cast<long long>(batch), ms, planned ? "" : " (no engine)");
    expect_close(run_fused_tactic({x.a, x.b, x.bias}, attrs, "cudnn:0"),
                 run_cpu("kiln.FusedMatMul", {x.a, x.b, x.bias}, attrs), matmul_tolerance(DType::kF16),
                 "FusedMatMul batch " + std::to_string(batch));
  }
}

// An exact (erf) Gelu layer on a cudnn tactic stays within the tanh form's
// distance of the erf: cuDNN's CUDNN_POINTWISE_GELU_FWD measured as the tanh
// approximation on an H200 (x = -3.5: gpu -0.000613, tanh form -0.000616,
// erf -0.000814), whose largest difference from the erf is 4.73e-4 (at
// x = -2.70). The tuner may pick it only for f16/bf16 layers, where that is
// below the output's own rounding for |y| >= 0.5 (docs/ops.md says so). On
// exact pre-activations x from -3.5 to 3.375 (A all ones, each column j of B
// x_j / 16, or x_j / 32 plus a bias of x_j / 2), every output is within
// 5e-4 plus one ulp of the dtype of the CPU's erf Gelu: half an ulp for the
// rounding of each side, which may round the two forms to neighbours (f16
// x = 2.375: tanh form 2.35459 -> 2.35547, erf 2.35417 -> 2.35352; H100).
TEST_F(GpuMatmulOpsTest, FusedMatMulCudnnGeluIsWithinTheTanhFormOfTheErf) {
  if (!cuda::cudnn_matmul_compiled()) GTEST_SKIP() << "built without the cuDNN frontend (scripts/install_deps.sh)";
  const int64_t m = 32, k = 16, n = 56;
  const Attrs attrs = {{"activation", Attribute::of_string("Gelu")}};
  for (DType t : {DType::kF16, DType::kBF16})
    for (bool bias : {false, true}) {
      Tensor a(DType::kF32, {m, k}), b(DType::kF32, {k, n}), c(DType::kF32, {n});
      for (int64_t i = 0; i < a.numel(); ++i) a.mutable_data<float>()[i] = 1.f;
      for (int64_t j = 0; j < n; ++j) {
        const float x = -3.5f + static_cast<float>(j) / 8.f;
        for (int64_t p = 0; p < k; ++p) b.mutable_data<float>()[p * n + j] = bias ? x / 32.f : x / 16.f;
        c.mutable_data<float>()[j] = x / 2.f;
      }
      std::vector<Tensor> ins = {cast_tensor(a, t).value(), cast_tensor(b, t).value()};
      if (bias) ins.push_back(cast_tensor(c, t).value());
      const std::string what = std::string("Gelu ") + type_name(t) + (bias ? " bias" : " no bias");
      const int engines = cudnn_engines(ins, "Gelu");
      EXPECT_GT(engines, 0) << what << ": cuDNN offers no engine config";
      const Tensor want = run_cpu("kiln.FusedMatMul", ins, attrs);
      const double ulp = t == DType::kF16 ? 0x1p-10 : 0x1p-7;  // relative, at least one ulp
      for (int e = 0; e < engines; ++e) {
        const std::string tactic = cuda::cudnn_matmul_tactic(e);
        const Tensor got = run_fused_tactic(ins, attrs, tactic);
        ASSERT_EQ(got.numel(), want.numel()) << what << " tactic " << tactic;
        int reported = 0;
        for (int64_t i = 0; i < want.numel(); ++i) {
          const double g = got.element_as_double(i), w = want.element_as_double(i);
          if (std::fabs(g - w) <= 5e-4 + ulp * std::fabs(w) || reported++ >= 5) continue;
          ADD_FAILURE() << what << " tactic " << tactic << ": x = " << -3.5 + static_cast<double>(i % n) / 8 << " gpu "
                        << g << " cpu " << w;
        }
      }
    }
}

// A cudnn tactic cuDNN cannot honour (an engine number past its list, f32,
// K = 0, a batching it declines) runs cuBLASLt's path instead, with the same
// result as the CPU: an engine built with another cuDNN still runs.
TEST_F(GpuMatmulOpsTest, FusedMatMulCudnnTacticWithoutAPlanFallsBackToCublasLt) {
  const Attrs gelu = {{"activation", Attribute::of_string("Gelu")}};
  const FusedOperands h = fused_operands(DType::kF16, {2, 64, 128}, {128, 256}, 1);
  const std::vector<Tensor> past_the_list = {h.a, h.b, h.bias};
  EXPECT_LT(cudnn_engines(past_the_list, "Gelu", 1000), 999);
  expect_close(run_fused_tactic(past_the_list, gelu, "cudnn:999"), run_cpu("kiln.FusedMatMul", past_the_list, gelu),
               matmul_tolerance(DType::kF16), "f16 tactic cudnn:999");
  const FusedOperands f = fused_operands(DType::kF32, {2, 64, 128}, {128, 256}, 2);
  expect_close(run_fused_tactic({f.a, f.b, f.bias}, gelu, "cudnn:0"),
               run_cpu("kiln.FusedMatMul", {f.a, f.b, f.bias}, gelu), matmul_tolerance(DType::kF32),
               "f32 tactic cudnn:0");
  const FusedOperands empty_k = fused_operands(DType::kF16, {3, 0}, {0, 8}, 3);
  expect_close(run_fused_tactic({empty_k.a, empty_k.b, empty_k.bias}, gelu, "cudnn:0"),
               run_cpu("kiln.FusedMatMul", {empty_k.a, empty_k.b, empty_k.bias}, gelu), tolerance_for(DType::kF16),
               "K=0 tactic cudnn:0");
  const FusedOperands shared_a = fused_operands(DType::kF16, {16, 40}, {3, 40, 24}, 4);
  expect_close(run_fused_tactic({shared_a.a, shared_a.b, shared_a.bias}, gelu, "cudnn:0"),
               run_cpu("kiln.FusedMatMul", {shared_a.a, shared_a.b, shared_a.bias}, gelu),
               matmul_tolerance(DType::kF16), "one A for every B tactic cudnn:0");
}

// A cudnn tactic captured in a CUDA graph and replayed with new inputs: the
// plan is built while planning, and its execution neither allocates nor syncs.
TEST_F(GpuMatmulOpsTest, FusedMatMulCudnnTacticReplaysInACudaGraph) {
  if (!cuda::cudnn_matmul_compiled()) GTEST_SKIP() << "built without the cuDNN frontend (scripts/install_deps.sh)";
  const DType t = DType::kF16;
  const Dims da = {2, 64, 128}, db = {128, 256}, dbias = {256}, dy = {2, 64, 256};
  const Attrs attrs = {{"activation", Attribute::of_string("Gelu")}};
  const FusedOperands first = fused_operands(t, da, db, 1);
  std::vector<Tensor> ins = {first.a, first.b, first.bias};
  ASSERT_GT(cudnn_engines(ins, "Gelu", 1), 0) << "cuDNN offers no engine config";
  std::vector<RunValue> values;
  auto g = one_node_graph("kiln.FusedMatMul", ins, attrs, 1, 28, values);
  g->nodes()[0]->metadata["kiln.tactic"] = cuda::cudnn_matmul_tactic(0);
  auto weights = cuda::upload_weights(*g);
  ASSERT_TRUE(weights.is_ok()) << weights.status().to_string();
  cuda::RunnerOptions options;
  options.use_cuda_graph = true;
  cuda::Runner runner(*g, *weights, options);
  auto stream = cuda::Stream::create();
  ASSERT_TRUE(stream.is_ok());
  cuda::DeviceBindings bindings(1);
  for (const Tensor& in : ins) bindings.inputs.push_back(device_zeros(in.nbytes()));
  for (uint32_t run = 1; run <= 3; ++run) {
    const FusedOperands x = fused_operands(t, da, db, 10 * run);
    ins = {x.a, x.b, x.bias};
    for (size_t i = 0; i < ins.size(); ++i)
      ASSERT_TRUE(bindings.inputs[i].copy_from_host(ins[i].raw(), ins[i].nbytes(), stream->get()).is_ok());
    const Status st = runner.run({da, db, dbias}, {nullptr, nullptr, nullptr}, bindings, stream->get());
    ASSERT_TRUE(st.is_ok()) << st.to_string();
    ASSERT_TRUE(stream->synchronize().is_ok());
    expect_close(download(bindings.outputs[0].data(), t, dy), run_cpu("kiln.FusedMatMul", ins, attrs),
                 matmul_tolerance(t), "tactic cudnn:0 in a CUDA graph, run " + std::to_string(run));
  }
}

TEST_F(GpuMatmulOpsTest, MatMulIntegerMatchesCpuWithZeroPoints) {
  for (DType ta : {DType::kU8, DType::kI8})
    for (DType tb : {DType::kU8, DType::kI8}) {
      const float lo = ta == DType::kU8 ? 0.f : -100.f;
      const Tensor a = random_tensor(ta, {2, 23, 45}, lo, 100.f, 1);
      const Tensor b = random_tensor(tb, {45, 19}, tb == DType::kU8 ? 0.f : -100.f, 100.f, 2);
      const std::string what = std::string("MatMulInteger ") + type_name(ta) + "x" + type_name(tb);
      check_exact("MatMulInteger", {a, b}, {}, what);
      check_exact("MatMulInteger", {a, b, random_tensor(ta, {}, 0, 9, 3), random_tensor(tb, {}, 0, 9, 4)}, {},
                  what + " scalar zero points");
      check_exact("MatMulInteger", {a, b, random_tensor(ta, {23}, 0, 9, 3), random_tensor(tb, {19}, 0, 9, 4)}, {},
                  what + " per-row/column zero points");
    }
}

TEST_F(GpuMatmulOpsTest, QLinearMatMulMatchesCpu) {
  for (DType t : {DType::kU8, DType::kI8}) {
    const float lo = t == DType::kU8 ? 0.f : -100.f;
    const Tensor a = random_tensor(t, {3, 21, 40}, lo, 100.f, 1), b = random_tensor(t, {40, 17}, lo, 100.f, 2);
    auto scale = [](Dims d, uint32_t seed) { return random_tensor(DType::kF32, d, 0.001f, 0.01f, seed); };
    const std::vector<Tensor> per_tensor = {a,
                                            scale({}, 3),
                                            random_tensor(t, {}, 0, 5, 4),
                                            b,
                                            scale({}, 5),
                                            random_tensor(t, {}, 0, 5, 6),
                                            scale({}, 7),
                                            random_tensor(t, {}, 0, 5, 8)};
    check_exact("QLinearMatMul", per_tensor, {}, std::string("QLinearMatMul per tensor ") + type_name(t));
    std::vector<Tensor> per_channel = per_tensor;
    per_channel[4] = scale({17}, 9);
    per_channel[5] = random_tensor(t, {17}, 0, 5, 10);
    check_exact("QLinearMatMul", per_channel, {}, std::string("QLinearMatMul per column ") + type_name(t));
  }
}

TEST_F(GpuMatmulOpsTest, QuantizeLinearMatchesCpuPerTensorPerAxisAndBlocked) {
  const Tensor x = random_tensor(DType::kF32, {3, 8, 33}, -30.f, 30.f, 1);
  const Tensor s_tensor = random_tensor(DType::kF32, {}, 0.05f, 0.2f, 2);
  const Tensor s_axis = random_tensor(DType::kF32, {8}, 0.05f, 0.2f, 3);
  const Tensor s_block = random_tensor(DType::kF32, {3, 2, 33}, 0.05f, 0.2f, 4);  // block 4 along axis 1
  for (DType y : {DType::kI8, DType::kU8, DType::kI16, DType::kU16, DType::kI32, DType::kI4, DType::kU4}) {
    const std::string name = std::string("QuantizeLinear -> ") + type_name(y);
    const bool small = y == DType::kI4 || y == DType::kU4;
    const Tensor z = random_ints(y, {}, 0, small ? 3 : 9, 5);
    const Tensor z_axis = random_ints(y, {8}, 0, small ? 3 : 9, 6);
    const Tensor z_block = random_ints(y, {3, 2, 33}, 0, small ? 3 : 9, 7);
    check_exact("QuantizeLinear", {x, s_tensor, z}, {}, name + " per tensor");
    check_exact("QuantizeLinear", {x, s_axis, z_axis}, {{"axis", Attribute::of_int(1)}}, name + " per axis");
    check_exact("QuantizeLinear", {x, s_block, z_block},
                {{"axis", Attribute::of_int(1)}, {"block_size", Attribute::of_int(4)}}, name + " blocked");
  }
  check_exact("QuantizeLinear", {x, s_axis}, {{"axis", Attribute::of_int(-2)}}, "no zero point (uint8)");
  const Tensor xh = random_tensor(DType::kF16, {5, 31}, -30.f, 30.f, 8);
  check_exact("QuantizeLinear", {xh, random_tensor(DType::kF16, {}, 0.05f, 0.2f, 9), Tensor(DType::kI8, {})}, {},
              "f16 input");
  for (DType y : {DType::kF8E4M3FN, DType::kF8E5M2, DType::kF8E4M3FNUZ, DType::kF8E5M2FNUZ, DType::kF4E2M1})
    for (int saturate : {0, 1}) {
      const Tensor big = random_tensor(DType::kF32, {4, 37}, -2000.f, 2000.f, 10);
      check_exact("QuantizeLinear", {big, random_tensor(DType::kF32, {}, 0.5f, 1.f, 11), Tensor(y, {})},
                  {{"saturate", Attribute::of_int(saturate)}},
                  std::string("QuantizeLinear -> ") + type_name(y) + " saturate " + std::to_string(saturate));
    }
}

TEST_F(GpuMatmulOpsTest, DequantizeLinearMatchesCpuPerTensorPerAxisAndBlocked) {
  const Tensor s_tensor = random_tensor(DType::kF32, {}, 0.05f, 0.2f, 2);
  const Tensor s_axis = random_tensor(DType::kF32, {8}, 0.05f, 0.2f, 3);
  const Tensor s_block = random_tensor(DType::kF32, {3, 2, 33}, 0.05f, 0.2f, 4);
  for (DType t : {DType::kI8, DType::kU8, DType::kI16, DType::kI32, DType::kI4, DType::kU4}) {
    const bool small = t == DType::kI4 || t == DType::kU4;
    const int lo = t == DType::kU4 || t == DType::kU8 ? 0 : (small ? -8 : -100);
    const Tensor x = random_ints(t, {3, 8, 33}, lo, small ? 7 : 100, 1);
    const std::string name = std::string("DequantizeLinear ") + type_name(t);
    check_exact("DequantizeLinear", {x, s_tensor, random_ints(t, {}, 0, 3, 5)}, {}, name + " per tensor");
    check_exact("DequantizeLinear", {x, s_axis, random_ints(t, {8}, 0, 3, 6)}, {{"axis", Attribute::of_int(1)}},
                name + " per axis");
    check_exact("DequantizeLinear", {x, s_block, random_ints(t, {3, 2, 33}, 0, 3, 7)},
                {{"axis", Attribute::of_int(1)}, {"block_size", Attribute::of_int(4)}}, name + " blocked");
  }
  const Tensor x8 = random_tensor(DType::kI8, {4, 9}, -100.f, 100.f, 12);
  check_exact("DequantizeLinear", {x8, random_tensor(DType::kF16, {}, 0.05f, 0.2f, 13)}, {}, "f16 scale and output");
  // f8 inputs: quantize first so the bits are meaningful.
  const Tensor xf = random_tensor(DType::kF32, {4, 37}, -200.f, 200.f, 10);
  for (DType y : {DType::kF8E4M3FN, DType::kF8E5M2}) {
    const Tensor q = run_cpu("QuantizeLinear", {xf, Tensor::from_vector<float>(DType::kF32, {}, {1.f}), Tensor(y, {})});
    check_exact("DequantizeLinear", {q, random_tensor(DType::kF32, {}, 0.5f, 1.f, 11)}, {},
                std::string("DequantizeLinear ") + type_name(y));
  }
}

TEST_F(GpuMatmulOpsTest, DynamicQuantizeLinearMatchesCpu) {
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{{-3.f, 5.f}, {0.5f, 4.f}, {-6.f, -1.f}}) {
    const Tensor x = random_tensor(DType::kF32, {7, 301}, lo, hi, 1);
    for (size_t o = 0; o < 3; ++o)
      check_exact("DynamicQuantizeLinear", {x}, {}, "DynamicQuantizeLinear output " + std::to_string(o), o, 3);
  }
}

TEST_F(GpuMatmulOpsTest, EinsumMatchesCpuForMatmulLikeAndGenericEquations) {
  struct Case {
    std::string eq;
    std::vector<Dims> dims;
  };
  const std::vector<Case> cases = {
      {"bij,bjk->bik", {{3, 17, 33}, {3, 33, 9}}},
      {"bhqd,bhkd->bhqk", {{2, 3, 11, 16}, {2, 3, 13, 16}}},
      {"ij,jk", {{12, 7}, {7, 5}}},
      {"ij->ji", {{19, 23}}},
      {"ii->i", {{9, 9}}},
      {"ij->", {{9, 31}}},
      {"bij,jk->bki", {{2, 5, 6}, {6, 4}}},
      {"i,j->ij", {{5}, {7}}},
      {"...ij,...jk->...ik", {{2, 4, 6}, {2, 6, 3}}},
  };
  for (DType t : kFloatTypes)
    for (const Case& c : cases) {
      std::vector<Tensor> ins;
      for (size_t i = 0; i < c.dims.size(); ++i) ins.push_back(operand(t, c.dims[i], static_cast<uint32_t>(i + 1)));
      check_op("Einsum", ins, {{"equation", Attribute::of_string(c.eq)}}, matmul_tolerance(t),
               std::string("Einsum ") + c.eq + " " + type_name(t));
    }
  const Tensor ai = random_tensor(DType::kI64, {4, 6}, -9, 9, 1), bi = random_tensor(DType::kI64, {6, 3}, -9, 9, 2);
  check_exact("Einsum", {ai, bi}, {{"equation", Attribute::of_string("ij,jk->ik")}}, "Einsum i64");
}

TEST_F(GpuMatmulOpsTest, DetMatchesCpu) {
  for (DType t : {DType::kF32, DType::kF64, DType::kF16})
    for (const Dims& d : std::vector<Dims>{{3, 3}, {5, 1, 1}, {7, 4, 4}, {2, 3, 9, 9}, {2, 0, 3, 3}}) {
      const Tensor x = random_tensor(t, d, -2.f, 2.f, 1);
      check_op("Det", {x}, {}, t == DType::kF64 ? 1e-10 : (t == DType::kF32 ? 1e-4 : 1e-2),
               std::string("Det ") + type_name(t) + " " + shape_str(d));
    }
}

}  // namespace
}  // namespace kiln::gpu_test
