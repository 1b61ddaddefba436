// Linear algebra: MatMul (numpy batching and 1-D promotion), Gemm,
// MatMulInteger, Einsum, Det, and kiln.FusedMatMul (MatMul + bias + residual
// + activation, made by the fuse_matmul_bias_activation pass). Each row is the
// op's whole definition in kiln.
#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "ops/einsum_equation.h"
#include "ops/infer_util.h"

namespace kiln {
namespace {

bool dims_clash(const Dim& a, const Dim& b) { return a.is_fixed() && b.is_fixed() && a.value != b.value; }

// numpy matmul: a 1-D A is [1,K] and a 1-D B is [K,1], with the added dim
// dropped from the result; the batch dims broadcast.
Expected<Shape> matmul_shape(const Shape& a, const Shape& b, const char* op) {
  if (!a.has_rank() || !b.has_rank()) return Shape();
  if (a.rank() == 0 || b.rank() == 0) return invalid_model("{}: inputs must have rank 1 or more", op);
  Dims da = *a.dims, db = *b.dims;
  bool a_vec = da.size() == 1, b_vec = db.size() == 1;
  if (a_vec) da.insert(da.begin(), Dim(1));
  if (b_vec) db.push_back(Dim(1));
  const Dim& ka = da[da.size() - 1];
  const Dim& kb = db[db.size() - 2];
  if (dims_clash(ka, kb))
    return invalid_model("{}: A has K={} but B has K={} (shapes {} and {})", op, ka.value, kb.value, a.to_string(),
                         b.to_string());
  Shape batch_a(Dims(da.begin(), da.end() - 2)), batch_b(Dims(db.begin(), db.end() - 2));
  KILN_ASSIGN_OR_RETURN(Shape batch, broadcast_shapes({&batch_a, &batch_b}));
  Dims out = *batch.dims;
  if (!a_vec) out.push_back(da[da.size() - 2]);
  if (!b_vec) out.push_back(db[db.size() - 1]);
  return Shape(std::move(out));
}

Status infer_matmul(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Shape s, matmul_shape(ctx.input_shape(0), ctx.input_shape(1), "MatMul"));
  // An undefined dtype is one inference does not know yet (a subgraph input), not a mismatch.
  DType a = ctx.input_dtype(0), b = ctx.input_dtype(1);
  if (a != b && a != DType::kUndefined && b != DType::kUndefined)
    return invalid_model("MatMul: A is {} but B is {}", dtype_name(a), dtype_name(b));
  ctx.set_output(0, a != DType::kUndefined ? a : b, std::move(s));
  return Status::ok();
}

bool is_float_or_unknown(DType t) {
  return t == DType::kF32 || t == DType::kF16 || t == DType::kBF16 || t == DType::kF64 || t == DType::kUndefined;
}

// kiln.FusedMatMul(A, B, bias?, residual?) {activation}:
// act(MatMul(A, B) + bias + residual), with bias [N] over the last axis,
// residual of exactly the product's shape and dtype (no broadcasting: on
// cuda it is cuBLASLt's C, read in D's layout), and act one of "" (none),
// Relu, Gelu (erf) or GeluTanh (Gelu's tanh approximation), applied last.
Status infer_fused_matmul(InferContext& ctx) {
  const std::string act = ctx.attr_string("activation", "");
  if (act != "" && act != "Relu" && act != "Gelu" && act != "GeluTanh")
    return invalid_model("FusedMatMul: activation \"{}\" is not one of \"\", Relu, Gelu, GeluTanh", act);
  KILN_ASSIGN_OR_RETURN(Shape s, matmul_shape(ctx.input_shape(0), ctx.input_shape(1), "FusedMatMul"));
  const DType a = ctx.input_dtype(0), b = ctx.input_dtype(1);
  if (a != b && a != DType::kUndefined && b != DType::kUndefined)
    return invalid_model("FusedMatMul: A is {} but B is {}", dtype_name(a), dtype_name(b));
  const DType t = a != DType::kUndefined ? a : b;
  if (!is_float_or_unknown(t)) return invalid_model("FusedMatMul: dtype {} is not a float type", dtype_name(t));
  if (ctx.has_input(2)) {
    const DType bt = ctx.input_dtype(2);
    if (bt != t && bt != DType::kUndefined && t != DType::kUndefined)
      return invalid_model("FusedMatMul: bias is {} but A is {}", dtype_name(bt), dtype_name(t));
    const Shape& bias = ctx.input_shape(2);
    if (bias.has_rank() && bias.rank() != 1)
      return invalid_model("FusedMatMul: bias must be 1-D, got shape {}", bias.to_string());
    const Shape& bs = ctx.input_shape(1);
    if (bias.has_rank() && bs.has_rank() && bs.rank() >= 2 && dims_clash(bias[0], bs[bs.rank() - 1]))
      return invalid_model("FusedMatMul: bias {} does not match N of B {}", bias.to_string(), bs.to_string());
  }
  if (ctx.has_input(3)) {
    const DType rt = ctx.input_dtype(3);
    if (rt != t && rt != DType::kUndefined && t != DType::kUndefined)
      return invalid_model("FusedMatMul: residual is {} but A is {}", dtype_name(rt), dtype_name(t));
    const Shape& r = ctx.input_shape(3);
    if (r.has_rank() && s.has_rank()) {
      if (r.rank() != s.rank())
        return invalid_model("FusedMatMul: residual has rank {} ({}), the product {} ({})", r.rank(), r.to_string(),
                             s.rank(), s.to_string());
      for (int64_t d = 0; d < s.rank(); ++d)
        if (dims_clash(r[d], s[d]))
          return invalid_model("FusedMatMul: residual {} differs from the product {} in dim {}", r.to_string(),
                               s.to_string(), d);
    }
  }
  ctx.set_output(0, t, std::move(s));
  return Status::ok();
}

Status infer_matmul_integer(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Shape s, matmul_shape(ctx.input_shape(0), ctx.input_shape(1), "MatMulInteger"));
  ctx.set_output(0, DType::kI32, std::move(s));
  return Status::ok();
}

Status infer_gemm(InferContext& ctx) {
  const Shape &a = ctx.input_shape(0), &b = ctx.input_shape(1);
  Dim m = Dim::unknown(), n = Dim::unknown();
  bool ta = ctx.attr_int("transA", 0) != 0, tb = ctx.attr_int("transB", 0) != 0;
  if (a.has_rank()) {
    if (a.rank() != 2) return invalid_model("Gemm: A must be 2-D, got shape {}", a.to_string());
    m = a[ta ? 1 : 0];
  }
  if (b.has_rank()) {
    if (b.rank() != 2) return invalid_model("Gemm: B must be 2-D, got shape {}", b.to_string());
    n = b[tb ? 0 : 1];
  }
  if (a.has_rank() && b.has_rank() && dims_clash(a[ta ? 0 : 1], b[tb ? 1 : 0]))
    return invalid_model("Gemm: K differs: A {} (transA={}) and B {} (transB={})", a.to_string(), ta, b.to_string(),
                         tb);
  Shape out(Dims{m, n});
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(Shape bc, broadcast_shapes({&out, &ctx.input_shape(2)}));
    if (bc.has_rank() && bc.rank() != 2)
      return invalid_model("Gemm: C {} does not broadcast to [M,N]", ctx.input_shape(2).to_string());
  }
  ctx.set_output(0, ctx.input_dtype(0), std::move(out));
  return Status::ok();
}

Status upgrade_gemm_broadcast(UpgradeContext& ctx) {
  ctx.node().attrs.erase("broadcast");  // numpy broadcasting of C is a superset
  return Status::ok();
}

Status infer_det(InferContext& ctx) {
  KILN_RETURN_IF_ERROR(require_rank(ctx, 0, "Det"));
  const Shape& x = ctx.input_shape(0);
  if (!x.has_rank()) {
    ctx.set_output(0, ctx.input_dtype(0), Shape());
    return Status::ok();
  }
  if (x.rank() < 2) return invalid_model("Det: input must have rank 2 or more, got {}", x.to_string());
  const Dim &r = x[x.rank() - 2], &c = x[x.rank() - 1];
  if (dims_clash(r, c)) return invalid_model("Det: matrices must be square, got {}", x.to_string());
  ctx.set_output(0, ctx.input_dtype(0), Shape(Dims(x.dims->begin(), x.dims->end() - 2)));
  return Status::ok();
}

Status infer_einsum(InferContext& ctx) {
  KILN_ASSIGN_OR_RETURN(EinsumEquation eq, parse_einsum(ctx.attr_string("equation", ""), ctx.num_inputs()));
  std::vector<const Shape*> shapes;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) return invalid_model("Einsum: input {} is missing", i);
    if (!ctx.input_shape(i).has_rank()) {
      ctx.set_output(0, ctx.input_dtype(0), Shape());
      return Status::ok();
    }
    shapes.push_back(&ctx.input_shape(i));
  }
  KILN_ASSIGN_OR_RETURN(Dims out, einsum_output_dims(eq, shapes));
  ctx.set_output(0, ctx.input_dtype(0), Shape(std::move(out)));
  return Status::ok();
}

[[maybe_unused]] const bool registered = [] {
  OpRegistration(OpSchema{.name = "MatMul", .min_inputs = 2, .max_inputs = 2, .infer = infer_matmul});
  OpRegistration(OpSchema{
      .name = "MatMulInteger", .since_opset = 10, .min_inputs = 2, .max_inputs = 4, .infer = infer_matmul_integer});
  OpRegistration(OpSchema{.name = "Gemm",
                          .min_inputs = 2,
                          .max_inputs = 3,
                          .infer = infer_gemm,
                          .upgrades = {{7, upgrade_gemm_broadcast}}});
  OpRegistration(OpSchema{.domain = "kiln",
                          .name = "FusedMatMul",
                          .since_opset = 1,
                          .min_inputs = 2,
                          .max_inputs = 4,
                          .infer = infer_fused_matmul,
                          .summary = "act(MatMul(A, B) + bias + residual): Relu, Gelu, GeluTanh; cuBLASLt epilogues"});
  OpRegistration(OpSchema{.name = "Det", .since_opset = 11, .min_inputs = 1, .max_inputs = 1, .infer = infer_det});
  OpRegistration(
      OpSchema{.name = "Einsum", .since_opset = 12, .min_inputs = 1, .max_inputs = -1, .infer = infer_einsum});
  return true;
}();

}  // namespace
}  // namespace kiln
