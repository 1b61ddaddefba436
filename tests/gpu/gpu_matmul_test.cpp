// cuBLASLt MatMul / Gemm against the CPU backend: every algorithm the
// heuristic offers must give the right answer, since an autotuner may pick any.
#include <array>

#include "backends/cuda/cublaslt_matmul.h"
#include "gpu_test_util.h"

namespace kiln::gpu_test {
namespace {

class MatmulTest : public GpuTest {
 protected:
  void SetUp() override {
    GpuTest::SetUp();
    if (IsSkipped()) return;
    auto lt = cuda::CublasLt::create();
    ASSERT_TRUE(lt.is_ok()) << lt.status().to_string();
    lt_ = std::move(lt).value();
    workspace_ = device_zeros(kWorkspace);
  }
  static constexpr size_t kWorkspace = 32 << 20;
  cuda::CublasLt lt_;
  cuda::DeviceBuffer workspace_;

  // Runs the top algorithms (and the default choice) and compares each with `ref`.
  void check(const cuda::MatmulShape& s, cuda::MatmulArgs args, const Tensor& ref, const std::string& what) {
    cuda::DeviceBuffer dd = device_zeros(ref.nbytes());
    args.d = dd.data();
    args.workspace = workspace_.data();
    args.workspace_bytes = kWorkspace;
    auto algos = cuda::matmul_algos(lt_, s, 4, kWorkspace);
    ASSERT_TRUE(algos.is_ok()) << what << ": " << algos.status().to_string();
    ASSERT_FALSE(algos->empty());
    const double tol = tolerance_for(s.dtype, s.allow_tf32);
    for (size_t i = 0; i <= algos->size(); ++i) {
      const cuda::MatmulAlgo* algo = i < algos->size() ? &(*algos)[i] : nullptr;
      ASSERT_EQ(cudaMemset(dd.data(), 0, ref.nbytes()), cudaSuccess);
      const Status st = cuda::launch_matmul(lt_, s, args, algo, nullptr);
      ASSERT_TRUE(st.is_ok()) << what << ": " << st.to_string();
      expect_close(download(dd.data(), s.dtype, ref.dims()), ref, tol, what + " algo " + std::to_string(i));
    }
  }
};

// Positive inputs keep dot products away from cancellation, so relative
// tolerances are meaningful.
Tensor operand(DType t, std::vector<int64_t> dims, uint32_t seed) { return random_tensor(t, dims, 0.1f, 1.f, seed); }

TEST_F(MatmulTest, MatMulMatchesCpuForOddShapesAndEveryFloatType) {
  for (DType t : kFloatTypes)
    for (auto [m, k, n] : std::vector<std::array<int64_t, 3>>{{33, 65, 17}, {1, 128, 96}, {64, 256, 128}}) {
      const Tensor a = operand(t, {m, k}, 1), b = operand(t, {k, n}, 2);
      const Tensor ref = run_cpu("MatMul", {a, b});
      cuda::DeviceBuffer da = upload(a), db = upload(b);
      cuda::MatmulShape s;
      s.dtype = t;
      s.m = m, s.n = n, s.k = k;
      check(s, {da.data(), db.data()}, ref, "MatMul " + std::string(dtype_name(t)) + shape_str({m, k, n}));
    }
}

TEST_F(MatmulTest, MatMulWithTf32MatchesCpuWithinTf32Tolerance) {
  const Tensor a = operand(DType::kF32, {96, 200}, 1), b = operand(DType::kF32, {200, 80}, 2);
  const Tensor ref = run_cpu("MatMul", {a, b});
  cuda::DeviceBuffer da = upload(a), db = upload(b);
  cuda::MatmulShape s;
  s.m = 96, s.n = 80, s.k = 200;
  s.allow_tf32 = true;
  check(s, {da.data(), db.data()}, ref, "MatMul tf32");
}

TEST_F(MatmulTest, BatchedMatMulMatchesCpuIncludingABroadcastOperand) {
  for (DType t : {DType::kF32, DType::kF16}) {
    const Tensor a = operand(t, {3, 16, 40}, 1), b = operand(t, {3, 40, 24}, 2), b2 = operand(t, {40, 24}, 3);
    cuda::DeviceBuffer da = upload(a), db = upload(b), db2 = upload(b2);
    cuda::MatmulShape s;
    s.dtype = t;
    s.m = 16, s.n = 24, s.k = 40, s.batch = 3;
    s.stride_a = 16 * 40, s.stride_b = 40 * 24;
    check(s, {da.data(), db.data()}, run_cpu("MatMul", {a, b}), "batched MatMul " + std::string(dtype_name(t)));
    s.stride_b = 0;
    check(s, {da.data(), db2.data()}, run_cpu("MatMul", {a, b2}), "broadcast-B MatMul " + std::string(dtype_name(t)));
  }
}

TEST_F(MatmulTest, GemmMatchesCpuWithTransposesBiasAndScaledC) {
  const int64_t m = 37, n = 29, k = 51;
  for (DType t : kFloatTypes)
    for (int ta : {0, 1})
      for (int tb : {0, 1}) {
        const Tensor a = operand(t, ta ? std::vector<int64_t>{k, m} : std::vector<int64_t>{m, k}, 1);
        const Tensor b = operand(t, tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n}, 2);
        const Tensor bias = operand(t, {n}, 3), c = operand(t, {m, n}, 4);
        cuda::DeviceBuffer da = upload(a), db = upload(b), dbias = upload(bias), dc = upload(c);
        cuda::MatmulShape s;
        s.dtype = t;
        s.m = m, s.n = n, s.k = k;
        s.trans_a = ta, s.trans_b = tb;
        const std::string what =
            "Gemm " + std::string(dtype_name(t)) + " transA " + std::to_string(ta) + " transB " + std::to_string(tb);
        // Bias vector as the fused epilogue (Gemm with beta = 1 and C of shape [n]).
        std::map<std::string, Attribute> attrs = {
            {"transA", Attribute::of_int(ta)}, {"transB", Attribute::of_int(tb)}, {"alpha", Attribute::of_float(0.5f)}};
        s.has_bias = true;
        check(s, {da.data(), db.data(), nullptr, dbias.data(), nullptr, 0.5f}, run_cpu("Gemm", {a, b, bias}, attrs),
              what + " bias");
        // Full C scaled by beta.
        attrs["beta"] = Attribute::of_float(0.25f);
        s.has_bias = false;
        s.has_c = true;
        s.stride_c = m * n;
        check(s, {da.data(), db.data(), dc.data(), nullptr, nullptr, 0.5f, 0.25f}, run_cpu("Gemm", {a, b, c}, attrs),
              what + " C");
      }
}

TEST_F(MatmulTest, UnsupportedDtypeIsAnError) {
  cuda::MatmulShape s;
  s.dtype = DType::kI8;
  s.m = s.n = s.k = 4;
  auto algos = cuda::matmul_algos(lt_, s, 1, 0);
  EXPECT_FALSE(algos.is_ok());
}

}  // namespace
}  // namespace kiln::gpu_test
