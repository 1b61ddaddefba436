// ScatterElements (and the deprecated Scatter, the same without reduction),
// ScatterND and TensorScatter: the output is a copy of the data with the
// updates written (or reduced: add, mul, max, min) at the indexed places.
#include <algorithm>
#include <functional>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/index_util.h"
#include "backends/cpu/kernels/element_copy.h"

namespace kiln {
namespace {

// Writes updates[i] into out[target(i)] for every update, with the reduction.
using TargetFn = std::function<Expected<int64_t>(int64_t update_index)>;

Status apply_updates(const std::string& op, const std::string& reduction, const Tensor& updates, Tensor& out,
                     int64_t count, int64_t run, const TargetFn& target) {
  if (reduction == "none") {
    ElementCopier copy(updates, out);
    for (int64_t i = 0; i < count; ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t t, target(i));
      copy.copy(t, i * run, run);
    }
    return Status::ok();
  }
  Status st = visit_dtype(out.dtype(), kNumericTypes | dtype_bit(DType::kBool), [&]<typename T>() -> Status {
    using C = compute_t<T>;
    T* o = out.mutable_data<T>();
    const T* u = updates.data<T>();
    for (int64_t i = 0; i < count; ++i) {
      KILN_ASSIGN_OR_RETURN(int64_t t, target(i));
      for (int64_t k = 0; k < run; ++k) {
        C a = static_cast<C>(o[t + k]), b = static_cast<C>(u[i * run + k]);
        C r = reduction == "add"   ? C(a + b)
              : reduction == "mul" ? C(a * b)
              : reduction == "max" ? std::max(a, b)
                                   : std::min(a, b);
        o[t + k] = T(r);
      }
    }
    return Status::ok();
  });
  return st.is_ok() ? st : st.with_context(op);
}

Status run_scatter_elements(CpuKernelContext& ctx) {
  const std::string& op = ctx.node().op_type;
  const Tensor& data = ctx.input(0);
  const Tensor& idx_t = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(auto indices, idx_t.to_i64_vector());
  if (idx_t.dims() != updates.dims()) return invalid_argument("{}: indices and updates must have one shape", op);
  if (idx_t.rank() != data.rank())
    return invalid_argument("{}: indices have rank {} but data rank {}", op, idx_t.rank(), data.rank());
  int64_t axis_attr = ctx.node().attr_int("axis", 0);
  const auto axis = static_cast<size_t>(axis_attr < 0 ? axis_attr + data.rank() : axis_attr);
  Tensor result = data.clone();
  const std::vector<int64_t> strides = strides_of(data.dims());
  std::vector<int64_t> index(idx_t.dims().size(), 0);
  std::vector<int64_t> targets;
  targets.reserve(indices.size());
  if (idx_t.numel() > 0) {
    int64_t i = 0;
    do {
      KILN_ASSIGN_OR_RETURN(int64_t at, checked_index(indices[static_cast<size_t>(i)], data.dims()[axis], op.c_str()));
      int64_t t = 0;
      for (size_t k = 0; k < index.size(); ++k) {
        if (k != axis && index[k] >= data.dims()[k])
          return invalid_argument("{}: indices dim {} exceeds the data's", op, k);
        t += (k == axis ? at : index[k]) * strides[k];
      }
      targets.push_back(t);
      ++i;
    } while (next_index(index, idx_t.dims()));
  }
  KILN_RETURN_IF_ERROR(apply_updates(op, ctx.node().attr_string("reduction", "none"), updates, result,
                                     static_cast<int64_t>(targets.size()), 1,
                                     [&](int64_t i) -> Expected<int64_t> { return targets[static_cast<size_t>(i)]; }));
  ctx.set_output(0, std::move(result));
  return Status::ok();
}

Status run_scatter_nd(CpuKernelContext& ctx) {
  const Tensor& data = ctx.input(0);
  const Tensor& idx_t = ctx.input(1);
  const Tensor& updates = ctx.input(2);
  KILN_ASSIGN_OR_RETURN(auto indices, idx_t.to_i64_vector());
  if (idx_t.rank() < 1) return invalid_argument("ScatterND: indices must have rank >= 1");
  const auto k = static_cast<size_t>(idx_t.dims().back());
  const auto& d = data.dims();
  if (k > d.size()) return invalid_argument("ScatterND: index tuples of {} exceed the data's rank {}", k, d.size());
  const int64_t tuples = dims_numel(idx_t.dims(), 0, idx_t.dims().size() - 1);
  const int64_t run = dims_numel(d, k, d.size());
  if (updates.numel() != tuples * run)
    return invalid_argument("ScatterND: updates have {} elements, expected {}", updates.numel(), tuples * run);
  const std::vector<int64_t> strides = strides_of(d);
  Tensor result = data.clone();
  KILN_RETURN_IF_ERROR(apply_updates("ScatterND", ctx.node().attr_string("reduction", "none"), updates, result, tuples,
                                     run, [&](int64_t t) -> Expected<int64_t> {
                                       int64_t off = 0;
                                       for (size_t j = 0; j < k; ++j) {
                                         KILN_ASSIGN_OR_RETURN(int64_t at,
                                                               checked_index(indices[t * k + j], d[j], "ScatterND"));
                                         off += at * strides[j];
                                       }
                                       return off;
                                     }));
  ctx.set_output(0, std::move(result));
  return Status::ok();
}

Status run_tensor_scatter(CpuKernelContext& ctx) {
  const Tensor& cache = ctx.input(0);
  const Tensor& update = ctx.input(1);
  const auto& d = cache.dims();
  int64_t axis_attr = ctx.node().attr_int("axis", -2);
  const auto axis = static_cast<size_t>(axis_attr < 0 ? axis_attr + cache.rank() : axis_attr);
  if (axis == 0 || axis >= d.size())
    return invalid_argument("TensorScatter: axis {} must not be the batch axis", axis_attr);
  if (update.rank() != cache.rank()) return invalid_argument("TensorScatter: update rank differs from the cache's");
  const bool circular = ctx.node().attr_string("mode", "linear") == "circular";
  std::vector<int64_t> write(static_cast<size_t>(d[0]), 0);
  if (ctx.has_input(2)) {
    KILN_ASSIGN_OR_RETURN(write, ctx.input(2).to_i64_vector());
  }
  if (static_cast<int64_t>(write.size()) != d[0])
    return invalid_argument("TensorScatter: write_indices needs {} entries", d[0]);
  const int64_t max_seq = d[axis], seq = update.dims()[axis];
  const int64_t inner = dims_numel(d, axis + 1, d.size());
  const int64_t prefix = dims_numel(d, 0, axis), per_batch = prefix / std::max<int64_t>(d[0], 1);
  Tensor result = cache.clone();
  ElementCopier copy(update, result);
  for (int64_t p = 0; p < prefix; ++p) {
    int64_t batch = per_batch ? p / per_batch : 0;
    for (int64_t s = 0; s < seq; ++s) {
      int64_t at = write[static_cast<size_t>(batch)] + s;
      if (circular) at %= max_seq;
      if (at < 0 || at >= max_seq)
        return make_error(ErrorCode::kOutOfRange, "TensorScatter: write position {} is outside the cache of {}", at,
                          max_seq);
      copy.copy((p * max_seq + at) * inner, (p * seq + s) * inner, inner);
    }
  }
  ctx.set_output(0, std::move(result));
  return Status::ok();
}

}  // namespace

KILN_CPU_KERNEL("", "Scatter", run_scatter_elements);
KILN_CPU_KERNEL("", "ScatterElements", run_scatter_elements);
KILN_CPU_KERNEL("", "ScatterND", run_scatter_nd);
KILN_CPU_KERNEL("", "TensorScatter", run_tensor_scatter);

}  // namespace kiln
