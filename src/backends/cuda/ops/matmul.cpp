// MatMul and Gemm (cuBLASLt for f32/f16/bf16, the plain kernel for f64 and
// 32/64-bit integers and for K = 0), MatMulInteger and QLinearMatMul (the
// plain kernel with zero points and a requantizing epilogue).
#include <fmt/ranges.h>

#include "backends/cuda/ops/matmul_plan.h"

namespace kiln::cuda {
namespace {

DType input_type(const Node& node, size_t i) {
  const Value* v = node.input(i);
  return v ? v->type.dtype : DType::kUndefined;
}

bool plain_matmul_dtype(DType t) {
  return cublaslt_dtype(t) || t == DType::kF64 || t == DType::kI32 || t == DType::kI64 || t == DType::kU32 ||
         t == DType::kU64;
}

Status supports_matmul(const Node& node) {
  const DType t = input_type(node, 0);
  if (t != DType::kUndefined && !plain_matmul_dtype(t))
    return unsupported("{}: dtype {} (the CUDA kernel takes f32, f16, bf16, f64, i32, i64, u32, u64)", node.op_type,
                       dtype_name(t));
  return Status::ok();
}

size_t cublaslt_workspace(const KernelQuery& q) {
  return cublaslt_dtype(q.input_dtype(0)) ? cublaslt_workspace_bytes(q.workspace_limit()) : 0;
}

// cuBLASLt's candidate algorithms for a product that is one strided call.
std::vector<std::string> matmul_tactics(const KernelQuery& q, size_t limit) {
  const auto *a = q.input_dims(0), *b = q.input_dims(1);
  if (!a || !b) return {};
  auto bp = plan_product(*a, *b, "MatMul");
  if (!bp) return {};
  auto s = single_call_shape(*bp, q.input_dtype(0), q.allow_tf32());
  return s ? cublaslt_tactics(*s, limit, cublaslt_workspace_bytes(q.workspace_limit())) : std::vector<std::string>{};
}

Status run_matmul(KernelContext& ctx) {
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output(0);
  if (y.numel() == 0) return Status::ok();
  KILN_ASSIGN_OR_RETURN(BatchedProduct bp, plan_product(a.dims, b.dims, "MatMul"));
  if (bp.k > 0 && cublaslt_dtype(a.dtype)) return run_cublaslt_product(ctx, bp, a.dtype, a.data, b.data, y.data);
  return launch_simple_matmul(simple_params(bp, a.dtype, a.dtype, a.dtype, a.data, b.data, y.data), ctx.stream());
}

// Gemm's C on cuBLASLt: a row vector with beta 1 is the bias epilogue, a full
// [m, n] C is read as is, any other broadcast is first copied into Y and then
// read from there (C may alias D).
Status run_gemm_cublaslt(KernelContext& ctx, MatmulShape s, float alpha, float beta) {
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output(0);
  MatmulArgs args{a.data, b.data, nullptr, nullptr, y.data, alpha, beta};
  if (ctx.has_input(2) && beta != 0.f) {
    const DeviceTensor& c = ctx.input(2);
    const bool row_vector = c.numel() == s.n && !c.dims.empty() && c.dims.back() == s.n;
    if (row_vector && beta == 1.f) {
      s.has_bias = true;
      args.bias = c.data;
    } else {
      s.has_c = true;
      s.stride_c = s.m * s.n;
      args.c = c.data;
      if (c.dims != std::vector<int64_t>{s.m, s.n}) {
        KILN_RETURN_IF_ERROR(launch_broadcast_copy(static_cast<int>(dtype_storage_bytes(c.dtype, 1)), c.data, c.dims,
                                                   y.data, {s.m, s.n}, ctx.stream()));
        args.c = y.data;
      }
    }
  }
  return run_cublaslt(ctx, s, args);
}

Status run_gemm(KernelContext& ctx) {
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output(0);
  const Node& node = ctx.node();
  const bool ta = node.attr_int("transA", 0) != 0, tb = node.attr_int("transB", 0) != 0;
  const float alpha = node.attr_float("alpha", 1.0f), beta = node.attr_float("beta", 1.0f);
  if (a.rank() != 2 || b.rank() != 2) return invalid_model("Gemm: A and B must be 2-D");
  const int64_t m = a.dims[ta ? 1 : 0], k = a.dims[ta ? 0 : 1], n = b.dims[tb ? 0 : 1];
  if (b.dims[tb ? 1 : 0] != k) return invalid_model("Gemm: A has K={} but B has K={}", k, b.dims[tb ? 1 : 0]);
  if (ctx.has_input(2)) {
    const DeviceTensor& c = ctx.input(2);
    if (c.rank() > 2 || (c.rank() >= 1 && c.dims.back() != 1 && c.dims.back() != n) ||
        (c.rank() == 2 && c.dims[0] != 1 && c.dims[0] != m))
      return invalid_model("Gemm: C of shape [{}] does not broadcast to [{},{}]", fmt::join(c.dims, ","), m, n);
  }
  if (y.numel() == 0) return Status::ok();
  if (k > 0 && cublaslt_dtype(a.dtype)) {
    MatmulShape s;
    s.dtype = a.dtype;
    s.m = m, s.n = n, s.k = k;
    s.trans_a = ta, s.trans_b = tb;
    s.allow_tf32 = ctx.allow_tf32();
    return run_gemm_cublaslt(ctx, s, alpha, beta);
  }
  SimpleMatmulParams p =
      simple_params(BatchedProduct{m, n, k, {}, {}, {}}, a.dtype, a.dtype, a.dtype, a.data, b.data, y.data);
  p.a_row = ta ? 1 : k, p.a_col = ta ? m : 1;
  p.b_row = tb ? 1 : n, p.b_col = tb ? k : 1;
  p.epilogue = MatmulEpilogue::kGemm;
  p.alpha = alpha, p.beta = beta;
  if (ctx.has_input(2)) {
    const DeviceTensor& c = ctx.input(2);
    p.c = c.data;
    // Strides of C broadcast to [m, n]: a size-1 (or missing) dim repeats.
    const int64_t rows = c.rank() == 2 ? c.dims[0] : 1, cols = c.rank() >= 1 ? c.dims.back() : 1;
    p.c_row = rows == 1 ? 0 : cols;
    p.c_col = cols == 1 ? 0 : 1;
  }
  return launch_simple_matmul(p, ctx.stream());
}

// Unknown dtypes (an untyped graph) pass; the kernel checks them when it runs.
bool is_8bit(DType t) { return t == DType::kI8 || t == DType::kU8 || t == DType::kUndefined; }

Status supports_matmul_integer(const Node& node) {
  if (!is_8bit(input_type(node, 0)) || !is_8bit(input_type(node, 1)))
    return unsupported("MatMulInteger: dtypes {} x {} (the CUDA kernel takes int8 and uint8)",
                       dtype_name(input_type(node, 0)), dtype_name(input_type(node, 1)));
  return Status::ok();
}

// A zero point: a scalar or one per row of A (per column of B), of its matrix's dtype.
Status check_zero_point(const KernelContext& ctx, size_t i, int64_t count, const char* op) {
  if (!ctx.has_input(i)) return Status::ok();
  const DeviceTensor& z = ctx.input(i);
  if (z.dtype != ctx.input(i - 2).dtype) return invalid_model("{}: zero point {} must have its matrix's dtype", op, i);
  if (z.numel() != 1 && z.numel() != count)
    return unsupported("{}: zero point {} has {} elements; only a scalar or {} is supported", op, i, z.numel(), count);
  return Status::ok();
}

Status run_matmul_integer(KernelContext& ctx) {
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(BatchedProduct bp, plan_product(a.dims, b.dims, "MatMulInteger"));
  KILN_RETURN_IF_ERROR(check_zero_point(ctx, 2, bp.m, "MatMulInteger"));
  KILN_RETURN_IF_ERROR(check_zero_point(ctx, 3, bp.n, "MatMulInteger"));
  SimpleMatmulParams p = simple_params(bp, a.dtype, b.dtype, DType::kI32, a.data, b.data, y.data);
  if (ctx.has_input(2)) p.a_zero = ctx.input(2).data, p.a_zero_count = ctx.input(2).numel();
  if (ctx.has_input(3)) p.b_zero = ctx.input(3).data, p.b_zero_count = ctx.input(3).numel();
  return launch_simple_matmul(p, ctx.stream());
}

Status supports_qlinear_matmul(const Node& node) {
  const DType a = input_type(node, 0), b = input_type(node, 3), y = input_type(node, 7);
  if (!is_8bit(a) || !is_8bit(b) || !is_8bit(y))
    return unsupported("QLinearMatMul: dtypes {} x {} -> {} (the CUDA kernel takes int8 and uint8)", dtype_name(a),
                       dtype_name(b), dtype_name(y));
  const DType s = input_type(node, 1);
  if (s != DType::kF32 && s != DType::kF16 && s != DType::kBF16 && s != DType::kUndefined)
    return unsupported("QLinearMatMul: scale dtype {} (the CUDA kernel takes f32, f16, bf16)", dtype_name(s));
  if (s != DType::kUndefined && (input_type(node, 4) != s || input_type(node, 6) != s))
    return unsupported("QLinearMatMul: scales of different dtypes");
  return Status::ok();
}

Status run_qlinear_matmul(KernelContext& ctx) {
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(3), &y = ctx.output(0);
  KILN_ASSIGN_OR_RETURN(BatchedProduct bp, plan_product(a.dims, b.dims, "QLinearMatMul"));
  const std::pair<size_t, int64_t> counts[] = {{1, bp.m}, {2, bp.m}, {4, bp.n}, {5, bp.n}, {6, 1}, {7, 1}};
  for (auto [i, count] : counts) {
    const int64_t got = ctx.input(i).numel();
    if (got != 1 && got != count)
      return invalid_model("QLinearMatMul: input {} has {} values; expected 1 or {}", i, got, count);
  }
  if (ctx.input(2).dtype != a.dtype || ctx.input(5).dtype != b.dtype || ctx.input(7).dtype != y.dtype)
    return invalid_model("QLinearMatMul: a zero point's dtype differs from its tensor's");
  SimpleMatmulParams p = simple_params(bp, a.dtype, b.dtype, y.dtype, a.data, b.data, y.data);
  p.a_zero = ctx.input(2).data, p.a_zero_count = ctx.input(2).numel();
  p.b_zero = ctx.input(5).data, p.b_zero_count = ctx.input(5).numel();
  p.epilogue = MatmulEpilogue::kRequantize;
  p.scale_type = ctx.input(1).dtype;
  const DType st = p.scale_type;
  if ((st != DType::kF32 && st != DType::kF16 && st != DType::kBF16) || ctx.input(4).dtype != st ||
      ctx.input(6).dtype != st)
    return unsupported("QLinearMatMul: scale dtypes {}, {}, {} (the CUDA kernel takes one of f32, f16, bf16)",
                       dtype_name(st), dtype_name(ctx.input(4).dtype), dtype_name(ctx.input(6).dtype));
  p.a_scale = ctx.input(1).data, p.a_scale_count = ctx.input(1).numel();
  p.b_scale = ctx.input(4).data, p.b_scale_count = ctx.input(4).numel();
  p.y_scale = ctx.input(6).data;
  p.y_zero = ctx.input(7).data;
  return launch_simple_matmul(p, ctx.stream());
}

KILN_CUDA_KERNEL(
    "", "MatMul",
    {.run = run_matmul, .workspace = cublaslt_workspace, .supports = supports_matmul, .tactics = matmul_tactics});
KILN_CUDA_KERNEL("", "Gemm", {.run = run_gemm, .workspace = cublaslt_workspace, .supports = supports_matmul});
KILN_CUDA_KERNEL("", "MatMulInteger", {.run = run_matmul_integer, .supports = supports_matmul_integer});
KILN_CUDA_KERNEL("", "QLinearMatMul", {.run = run_qlinear_matmul, .supports = supports_qlinear_matmul});

}  // namespace
}  // namespace kiln::cuda
