// cuBLASLt is column-major. A row-major [m, n] D is the column-major [n, m]
// D^T = op(B)^T op(A)^T, so cuBLASLt is asked for that product: its "A" is
// our B and its "B" is our A, with the same transpose flags, and the bias
// epilogue (a vector over D^T's rows) is our bias over D's columns.
#include "backends/cuda/cublaslt_matmul.h"

#include <utility>

#include "backends/cuda/cuda_status.h"

namespace kiln::cuda {
namespace {

// Destroys cuBLASLt descriptors on every path out.
struct Descriptors {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~Descriptors() {
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
    for (cublasLtMatrixLayout_t l : {a, b, c, d})
      if (l) cublasLtMatrixLayoutDestroy(l);
    if (op) cublasLtMatmulDescDestroy(op);
  }
};

Expected<cudaDataType_t> data_type(DType t) {
  switch (t) {
    case DType::kF32: return CUDA_R_32F;
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
    default: return unsupported("matmul: dtype {} (cuBLASLt path takes f32, f16, bf16)", dtype_name(t));
  }
}

Status make_layout(cublasLtMatrixLayout_t* layout, cudaDataType_t type, int64_t rows, int64_t cols, int64_t batch,
                   int64_t stride) {
  // Column-major rows x cols with leading dimension rows.
  KILN_CUDA_RETURN_IF_ERROR(
      cublasLtMatrixLayoutCreate(layout, type, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), rows));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    KILN_CUDA_RETURN_IF_ERROR(
        cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof(count)));
    KILN_CUDA_RETURN_IF_ERROR(cublasLtMatrixLayoutSetAttribute(*layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                               &stride, sizeof(stride)));
  }
  return Status::ok();
}

// A batch that shares one B (stride 0) over a contiguous, untransposed A is a
// single product with m * batch rows: one larger GEMM runs better than a
// batch of small ones, and cuBLASLt is not asked for a zero batch stride.
MatmulShape fold_shared_b(MatmulShape s) {
  if (s.batch > 1 && s.stride_b == 0 && !s.trans_a && s.stride_a == s.m * s.k &&
      (!s.has_c || s.stride_c == s.m * s.n)) {
    s.m *= s.batch;
    s.batch = 1;
    s.stride_a = s.stride_c = 0;
  }
  return s;
}

cublasLtEpilogue_t epilogue_of(const MatmulShape& s) {
  switch (s.activation) {
    case MatmulActivation::kRelu: return s.has_bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    case MatmulActivation::kGeluTanh: return s.has_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    case MatmulActivation::kNone: break;
  }
  return s.has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

Status describe(const MatmulShape& shape, Descriptors& desc) {
  const MatmulShape s = fold_shared_b(shape);
  if (s.m <= 0 || s.n <= 0 || s.k <= 0 || s.batch <= 0)
    return invalid_argument("matmul: m={} n={} k={} batch={} must be positive", s.m, s.n, s.k, s.batch);
  KILN_ASSIGN_OR_RETURN(cudaDataType_t type, data_type(s.dtype));
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  if (s.dtype == DType::kF32 && s.allow_tf32) compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  KILN_CUDA_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&desc.op, compute, CUDA_R_32F));
  // Swapped operands (see the file comment): cuBLASLt A = our B, B = our A.
  const cublasOperation_t op_a = s.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = s.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  KILN_CUDA_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof(op_a)));
  KILN_CUDA_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof(op_b)));
  const cublasLtEpilogue_t epilogue = epilogue_of(s);
  if (epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
    // The bias is of D's type (CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE's default
    // for these kernels) and the same for every batch.
    KILN_CUDA_RETURN_IF_ERROR(
        cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof(epilogue)));
  }
  // Our B stored [k, n] row-major is column-major [n, k]; stored [n, k] it is [k, n].
  KILN_RETURN_IF_ERROR(make_layout(&desc.a, type, s.trans_b ? s.k : s.n, s.trans_b ? s.n : s.k, s.batch, s.stride_b));
  KILN_RETURN_IF_ERROR(make_layout(&desc.b, type, s.trans_a ? s.m : s.k, s.trans_a ? s.k : s.m, s.batch, s.stride_a));
  KILN_RETURN_IF_ERROR(make_layout(&desc.c, type, s.n, s.m, s.batch, s.has_c ? s.stride_c : s.m * s.n));
  KILN_RETURN_IF_ERROR(make_layout(&desc.d, type, s.n, s.m, s.batch, s.m * s.n));
  return Status::ok();
}

}  // namespace

Expected<CublasLt> CublasLt::create() {
  CublasLt lt;
  KILN_CUDA_RETURN_IF_ERROR(cublasLtCreate(&lt.handle_));
  return lt;
}

CublasLt::~CublasLt() {
  if (handle_) cublasLtDestroy(handle_);
}

CublasLt::CublasLt(CublasLt&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}

CublasLt& CublasLt::operator=(CublasLt&& other) noexcept {
  if (this != &other) {
    if (handle_) cublasLtDestroy(handle_);
    handle_ = std::exchange(other.handle_, nullptr);
  }
  return *this;
}

Expected<std::vector<MatmulAlgo>> matmul_algos(const CublasLt& lt, const MatmulShape& s, int max_algos,
                                               size_t workspace_limit) {
  Descriptors desc;
  KILN_RETURN_IF_ERROR(describe(s, desc));
  KILN_CUDA_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&desc.pref));
  KILN_CUDA_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(desc.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                                 &workspace_limit, sizeof(workspace_limit)));
  std::vector<cublasLtMatmulHeuristicResult_t> results(static_cast<size_t>(max_algos > 0 ? max_algos : 1));
  int found = 0;
  KILN_CUDA_RETURN_IF_ERROR(cublasLtMatmulAlgoGetHeuristic(lt.get(), desc.op, desc.a, desc.b, desc.c, desc.d, desc.pref,
                                                           static_cast<int>(results.size()), results.data(), &found));
  std::vector<MatmulAlgo> algos;
  for (int i = 0; i < found; ++i) {
    if (results[static_cast<size_t>(i)].state != CUBLAS_STATUS_SUCCESS) continue;
    algos.push_back({results[static_cast<size_t>(i)].algo, results[static_cast<size_t>(i)].workspaceSize,
                     results[static_cast<size_t>(i)].wavesCount});
  }
  if (algos.empty())
    return unsupported("matmul: cuBLASLt has no algorithm for {} m={} n={} k={} batch={} epilogue {}",
                       dtype_name(s.dtype), s.m, s.n, s.k, s.batch, static_cast<int>(epilogue_of(s)));
  return algos;
}

Status launch_matmul(const CublasLt& lt, const MatmulShape& s, const MatmulArgs& args, const MatmulAlgo* algo,
                     cudaStream_t stream) {
  Descriptors desc;
  KILN_RETURN_IF_ERROR(describe(s, desc));
  if (s.has_bias) {
    if (!args.bias) return invalid_argument("matmul: has_bias but no bias pointer");
    KILN_CUDA_RETURN_IF_ERROR(
        cublasLtMatmulDescSetAttribute(desc.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &args.bias, sizeof(args.bias)));
  }
  if (s.has_c && !args.c) return invalid_argument("matmul: has_c but no C pointer");
  const float beta = s.has_c ? args.beta : 0.f;
  // Without C, cuBLASLt still needs a C matrix; D is read only when beta != 0.
  const void* c = s.has_c ? args.c : args.d;
  if (algo && algo->workspace_bytes > args.workspace_bytes)
    return invalid_argument("matmul: the algorithm needs {} bytes of workspace, {} given", algo->workspace_bytes,
                            args.workspace_bytes);
  KILN_CUDA_RETURN_IF_ERROR(cublasLtMatmul(lt.get(), desc.op, &args.alpha, args.b, desc.a, args.a, desc.b, &beta, c,
                                           desc.c, args.d, desc.d, algo ? &algo->algo : nullptr, args.workspace,
                                           args.workspace_bytes, stream));
  return Status::ok();
}

}  // namespace kiln::cuda
