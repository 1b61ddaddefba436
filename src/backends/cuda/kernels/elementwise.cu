// The launch_unary / launch_binary API (f32, f16, bf16) of the callers that
// launch kernels directly (tests, the benchmark), mapped onto the launchers
// of the registered elementwise ops (elementwise_ops.cuh): one set of
// kernels, with their packed and broadcast paths.
#include <fmt/ranges.h>

#include "backends/cuda/kernels/elementwise.cuh"
#include "backends/cuda/kernels/elementwise_ops.cuh"

namespace kiln::cuda {
namespace {

UnaryFn unary_fn(UnaryOp op) {
  switch (op) {
    case UnaryOp::kRelu: return UnaryFn::kRelu;
    case UnaryOp::kSigmoid: return UnaryFn::kSigmoid;
    case UnaryOp::kTanh: return UnaryFn::kTanh;
    case UnaryOp::kGelu: return UnaryFn::kGelu;
    case UnaryOp::kGeluTanh: return UnaryFn::kGeluTanh;
    case UnaryOp::kExp: return UnaryFn::kExp;
    case UnaryOp::kLog: return UnaryFn::kLog;
    case UnaryOp::kSqrt: return UnaryFn::kSqrt;
    case UnaryOp::kNeg: return UnaryFn::kNeg;
    case UnaryOp::kAbs: return UnaryFn::kAbs;
    case UnaryOp::kErf: return UnaryFn::kErf;
    case UnaryOp::kReciprocal: return UnaryFn::kReciprocal;
    case UnaryOp::kSilu: return UnaryFn::kSwish;  // alpha 1
    case UnaryOp::kLeakyRelu: return UnaryFn::kLeakyRelu;
    case UnaryOp::kFloor: return UnaryFn::kFloor;
    case UnaryOp::kCeil: return UnaryFn::kCeil;
    case UnaryOp::kSin: return UnaryFn::kSin;
    case UnaryOp::kCos: return UnaryFn::kCos;
  }
  return UnaryFn::kRelu;
}

BinaryFn binary_fn(BinaryOp op) {
  switch (op) {
    case BinaryOp::kAdd: return BinaryFn::kAdd;
    case BinaryOp::kSub: return BinaryFn::kSub;
    case BinaryOp::kMul: return BinaryFn::kMul;
    case BinaryOp::kDiv: return BinaryFn::kDiv;
    case BinaryOp::kPow: return BinaryFn::kPow;
    case BinaryOp::kMax: return BinaryFn::kMax;
    case BinaryOp::kMin: return BinaryFn::kMin;
  }
  return BinaryFn::kAdd;
}

Status require_16_or_32_bit_float(DType t, const char* what) {
  if (t == DType::kF32 || t == DType::kF16 || t == DType::kBF16) return Status::ok();
  return unsupported("{}: dtype {} (the CUDA kernel takes f32, f16 or bf16)", what, dtype_name(t));
}

}  // namespace

Expected<std::vector<int64_t>> broadcast_dims(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return invalid_argument("shapes {} and {} do not broadcast (dim {}: {} vs {})", fmt::join(a, "x"),
                              fmt::join(b, "x"), i, da, db);
    out[i] = da == 1 ? db : da;
  }
  return out;
}

Status launch_unary(const UnaryParams& p, cudaStream_t stream) {
  KILN_RETURN_IF_ERROR(require_16_or_32_bit_float(p.dtype, "unary"));
  UnaryFnParams q;
  q.fn = unary_fn(p.op);
  q.dtype = p.dtype;
  q.x = p.x;
  q.y = p.y;
  q.n = p.n;
  q.alpha = p.op == UnaryOp::kSilu ? 1.f : p.alpha;
  return launch_unary_fn(q, stream);
}

Status launch_binary(const BinaryParams& p, cudaStream_t stream) {
  KILN_ASSIGN_OR_RETURN(std::vector<int64_t> out, broadcast_dims(p.a_dims, p.b_dims));
  KILN_RETURN_IF_ERROR(require_16_or_32_bit_float(p.dtype, "binary"));
  BinaryFnParams q;
  q.fn = binary_fn(p.op);
  q.dtype = q.b_dtype = p.dtype;
  q.a = p.a;
  q.a_dims = p.a_dims;
  q.b = p.b;
  q.b_dims = p.b_dims;
  q.y = p.y;
  q.y_dims = std::move(out);
  return launch_binary_fn(q, stream);
}

}  // namespace kiln::cuda
