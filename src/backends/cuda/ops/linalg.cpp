// Einsum and Det. An Einsum of two operands whose labels split into batch,
// row, column and contracted groups (no diagonals, no broadcasting, no label
// summed within one operand) runs as transposes into [batch, m, k] and
// [batch, k, n], one cuBLASLt batched product, and a transpose into the
// output order (each transpose skipped when it is the identity); any other
// equation, dtype or an empty dim takes the generic kernel.
#include "backends/cuda/kernels/linalg.cuh"

#include <algorithm>
#include <map>
#include <optional>

#include "backends/cuda/kernels/data_movement.cuh"
#include "backends/cuda/ops/matmul_plan.h"
#include "ops/einsum_equation.h"

namespace kiln::cuda {
namespace {

// The CPU kernel's loop structure: labels (output first), their sizes, and
// each operand's stride along each (0 where absent or broadcast).
struct EinsumPlan {
  EinsumLabels labels;
  std::map<int, int64_t> size;
  std::vector<int> order;
  size_t n_out = 0;
  std::vector<std::vector<int64_t>> strides;  // [operand][loop label]
  std::vector<int64_t> loop_dims;
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size());
  int64_t acc = 1;
  for (size_t d = dims.size(); d-- > 0;) s[d] = acc, acc *= dims[d];
  return s;
}

Expected<EinsumPlan> plan_einsum(const std::string& equation, const std::vector<std::vector<int64_t>>& dims) {
  KILN_ASSIGN_OR_RETURN(EinsumEquation eq, parse_einsum(equation, dims.size()));
  std::vector<int64_t> ranks;
  for (const auto& d : dims) ranks.push_back(static_cast<int64_t>(d.size()));
  EinsumPlan p;
  KILN_ASSIGN_OR_RETURN(p.labels, resolve_einsum(eq, ranks));
  for (size_t i = 0; i < dims.size(); ++i)
    for (size_t k = 0; k < p.labels.inputs[i].size(); ++k) {
      const int64_t d = dims[i][k];
      auto [it, fresh] = p.size.emplace(p.labels.inputs[i][k], d);
      if (!fresh && it->second != d && d != 1 && it->second != 1)
        return invalid_model("Einsum \"{}\": a label has sizes {} and {}", equation, it->second, d);
      if (it->second == 1) it->second = d;
    }
  p.order = p.labels.output;
  p.n_out = p.order.size();
  for (const auto& [l, s] : p.size)
    if (std::find(p.order.begin(), p.order.end(), l) == p.order.end()) p.order.push_back(l);
  for (int l : p.order) p.loop_dims.push_back(p.size.count(l) ? p.size[l] : 1);
  p.strides.assign(dims.size(), std::vector<int64_t>(p.order.size(), 0));
  for (size_t i = 0; i < dims.size(); ++i) {
    const std::vector<int64_t> s = contiguous_strides(dims[i]);
    for (size_t k = 0; k < p.labels.inputs[i].size(); ++k) {
      const size_t pos = std::find(p.order.begin(), p.order.end(), p.labels.inputs[i][k]) - p.order.begin();
      if (dims[i][k] != 1) p.strides[i][pos] += s[k];
    }
  }
  return p;
}

// An Einsum that is one batched product; dims of A and B are permuted by
// perm_a / perm_b into [batch, m, k] / [batch, k, n], and output dim i is
// dim perm_y[i] of the product [batch labels, m labels, n labels].
struct EinsumProduct {
  std::vector<int64_t> perm_a, perm_b, perm_y, p_dims;
  int64_t batch = 1, m = 1, n = 1, k = 1;
};

bool is_identity(const std::vector<int64_t>& perm) {
  for (size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return true;
}

int64_t position(const std::vector<int>& labels, int l) {
  return std::find(labels.begin(), labels.end(), l) - labels.begin();
}

std::optional<EinsumProduct> as_product(const EinsumPlan& p, const std::vector<std::vector<int64_t>>& dims) {
  if (dims.size() != 2) return std::nullopt;
  const std::vector<int>&a = p.labels.inputs[0], &b = p.labels.inputs[1], &out = p.labels.output;
  auto has = [](const std::vector<int>& v, int l) { return std::find(v.begin(), v.end(), l) != v.end(); };
  for (size_t i = 0; i < 2; ++i) {
    const std::vector<int>& mine = p.labels.inputs[i];
    const std::vector<int>& other = p.labels.inputs[1 - i];
    for (size_t d = 0; d < mine.size(); ++d) {
      if (std::count(mine.begin(), mine.end(), mine[d]) > 1) return std::nullopt;  // a diagonal
      if (dims[i][d] != p.size.at(mine[d])) return std::nullopt;                   // broadcast
      if (!has(other, mine[d]) && !has(out, mine[d])) return std::nullopt;         // summed alone
    }
  }
  std::vector<int> batch, ms, ns, ks;
  for (int l : out) (has(a, l) && has(b, l) ? batch : (has(a, l) ? ms : ns)).push_back(l);
  for (int l : a)
    if (has(b, l) && !has(out, l)) ks.push_back(l);
  EinsumProduct e;
  std::vector<int> p_labels;
  for (const auto* group : {&batch, &ms, &ns})
    for (int l : *group) p_labels.push_back(l), e.p_dims.push_back(p.size.at(l));
  for (int l : batch) e.batch *= p.size.at(l);
  for (int l : ms) e.m *= p.size.at(l);
  for (int l : ns) e.n *= p.size.at(l);
  for (int l : ks) e.k *= p.size.at(l);
  for (const auto* group : {&batch, &ms, &ks})
    for (int l : *group) e.perm_a.push_back(position(a, l));
  for (const auto* group : {&batch, &ks, &ns})
    for (int l : *group) e.perm_b.push_back(position(b, l));
  for (int l : out) e.perm_y.push_back(position(p_labels, l));
  return e;
}

size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Scratch of the product path: A', B' and the product where a transpose is
// needed (in that order), then cuBLASLt's workspace.
struct EinsumScratch {
  size_t a = 0, b = 0, y = 0, total = 0;
};

EinsumScratch scratch_for(const EinsumProduct& e, DType t, size_t workspace_limit) {
  const size_t elem = dtype_storage_bytes(t, 1);
  EinsumScratch s;
  if (!is_identity(e.perm_a)) s.a = aligned(static_cast<size_t>(e.batch * e.m * e.k) * elem);
  if (!is_identity(e.perm_b)) s.b = aligned(static_cast<size_t>(e.batch * e.k * e.n) * elem);
  if (!is_identity(e.perm_y)) s.y = aligned(static_cast<size_t>(e.batch * e.m * e.n) * elem);
  s.total = s.a + s.b + s.y + cublaslt_workspace_bytes(workspace_limit);
  return s;
}

// The product path, when the equation, dtype and sizes allow it.
std::optional<EinsumProduct> product_path(const EinsumPlan& p, const std::vector<std::vector<int64_t>>& dims, DType t) {
  if (!cublaslt_dtype(t)) return std::nullopt;
  for (int64_t d : p.loop_dims)
    if (d == 0) return std::nullopt;
  return as_product(p, dims);
}

std::vector<std::vector<int64_t>> query_dims(const KernelQuery& q) {
  std::vector<std::vector<int64_t>> dims;
  for (size_t i = 0; i < q.node().inputs.size(); ++i) {
    const std::vector<int64_t>* d = q.input_dims(i);
    if (!d) return {};
    dims.push_back(*d);
  }
  return dims;
}

size_t einsum_workspace(const KernelQuery& q) {
  const std::vector<std::vector<int64_t>> dims = query_dims(q);
  if (dims.empty()) return 0;
  auto plan = plan_einsum(q.node().attr_string("equation", ""), dims);
  if (!plan.is_ok()) return 0;
  const auto e = product_path(*plan, dims, q.input_dtype(0));
  return e ? scratch_for(*e, q.input_dtype(0), q.workspace_limit()).total : 0;
}

Status run_einsum_product(KernelContext& ctx, const EinsumProduct& e, DType t) {
  const EinsumScratch s = scratch_for(e, t, ctx.workspace_limit());
  if (ctx.workspace_bytes() < s.total)
    return internal_error("Einsum: workspace of {} bytes, {} needed", ctx.workspace_bytes(), s.total);
  char* ws = static_cast<char*>(ctx.workspace());
  const int elem = static_cast<int>(dtype_storage_bytes(t, 1));
  const DeviceTensor &a = ctx.input(0), &b = ctx.input(1), &y = ctx.output(0);
  const void *pa = a.data, *pb = b.data;
  if (s.a) {
    KILN_RETURN_IF_ERROR(launch_transpose({elem, a.data, ws, a.dims, e.perm_a}, ctx.stream()));
    pa = ws;
  }
  if (s.b) {
    KILN_RETURN_IF_ERROR(launch_transpose({elem, b.data, ws + s.a, b.dims, e.perm_b}, ctx.stream()));
    pb = ws + s.a;
  }
  void* product = s.y ? static_cast<void*>(ws + s.a + s.b) : y.data;
  BatchedProduct bp;
  bp.m = e.m, bp.n = e.n, bp.k = e.k;
  if (e.batch > 1) bp.batch = {e.batch}, bp.a_strides = {e.m * e.k}, bp.b_strides = {e.k * e.n};
  KILN_RETURN_IF_ERROR(run_cublaslt_product(ctx, bp, t, pa, pb, product, s.a + s.b + s.y));
  if (!s.y) return Status::ok();
  return launch_transpose({elem, product, y.data, e.p_dims, e.perm_y}, ctx.stream());
}

Status run_einsum(KernelContext& ctx) {
  std::vector<std::vector<int64_t>> dims;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    dims.push_back(ctx.input(i).dims);
    if (ctx.input(i).dtype != ctx.input(0).dtype) return invalid_model("Einsum: inputs must share one dtype");
  }
  KILN_ASSIGN_OR_RETURN(EinsumPlan plan, plan_einsum(ctx.node().attr_string("equation", ""), dims));
  const DType t = ctx.input(0).dtype;
  if (ctx.output(0).numel() == 0) return Status::ok();
  if (auto e = product_path(plan, dims, t)) return run_einsum_product(ctx, *e, t);
  EinsumParams p;
  p.dtype = t;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) p.inputs.push_back(ctx.input(i).data);
  p.y = ctx.output(0).data;
  p.out_dims.assign(plan.loop_dims.begin(), plan.loop_dims.begin() + static_cast<int64_t>(plan.n_out));
  p.sum_dims.assign(plan.loop_dims.begin() + static_cast<int64_t>(plan.n_out), plan.loop_dims.end());
  for (const auto& s : plan.strides) {
    p.out_strides.emplace_back(s.begin(), s.begin() + static_cast<int64_t>(plan.n_out));
    p.sum_strides.emplace_back(s.begin() + static_cast<int64_t>(plan.n_out), s.end());
  }
  return launch_einsum(p, ctx.stream());
}

bool numeric_dtype(DType t) {
  switch (t) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
    case DType::kF64:
    case DType::kI8:
    case DType::kU8:
    case DType::kI16:
    case DType::kU16:
    case DType::kI32:
    case DType::kU32:
    case DType::kI64:
    case DType::kU64: return true;
    default: return false;
  }
}

Status supports_einsum(const Node& node) {
  const DType t = node.input(0) ? node.input(0)->type.dtype : DType::kUndefined;
  if (t != DType::kUndefined && !numeric_dtype(t)) return unsupported("Einsum: dtype {}", dtype_name(t));
  if (node.inputs.size() > static_cast<size_t>(kMaxEinsumOperands))
    return unsupported("Einsum: {} operands (the CUDA kernel takes up to {})", node.inputs.size(), kMaxEinsumOperands);
  return Status::ok();
}

size_t det_workspace(const KernelQuery& q) {
  const std::vector<int64_t>* d = q.input_dims(0);
  if (!d || d->size() < 2) return 0;
  int64_t count = 1;
  for (int64_t x : *d) count *= x;
  return static_cast<size_t>(count) * sizeof(double);
}

Status run_det(KernelContext& ctx) {
  const DeviceTensor& x = ctx.input(0);
  if (x.rank() < 2 || x.dims[x.rank() - 1] != x.dims[x.rank() - 2])
    return invalid_model("Det: input must be [..., M, M], got rank {}", x.rank());
  DetParams p;
  p.dtype = x.dtype;
  p.x = x.data;
  p.y = ctx.output(0).data;
  p.n = x.dims.back();
  p.count = ctx.output(0).numel();
  if (ctx.workspace_bytes() < static_cast<size_t>(x.numel()) * sizeof(double))
    return internal_error("Det: workspace of {} bytes for {} elements", ctx.workspace_bytes(), x.numel());
  p.workspace = static_cast<double*>(ctx.workspace());
  return launch_det(p, ctx.stream());
}

Status supports_det(const Node& node) {
  const DType t = node.input(0) ? node.input(0)->type.dtype : DType::kUndefined;
  if (t != DType::kF32 && t != DType::kF16 && t != DType::kBF16 && t != DType::kF64 && t != DType::kUndefined)
    return unsupported("Det: dtype {} (the CUDA kernel takes f32, f16, bf16, f64)", dtype_name(t));
  return Status::ok();
}

KILN_CUDA_KERNEL("", "Einsum", {.run = run_einsum, .workspace = einsum_workspace, .supports = supports_einsum});
KILN_CUDA_KERNEL("", "Det", {.run = run_det, .workspace = det_workspace, .supports = supports_det});

}  // namespace
}  // namespace kiln::cuda
