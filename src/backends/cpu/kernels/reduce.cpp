// Reduce* kernels: each output element folds the input elements of its
// reduced sub-box. Floats accumulate in double; integer sums and products wrap
// like numpy (in uint64, then truncated to T); Max/Min compare in T.
#include <algorithm>
#include <cmath>
#include <limits>

#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

enum class Reduce { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

// Offsets (in input elements) of every position of the sub-box spanned by
// the dims with `mask` set, or by the others when `mask` is negated.
std::vector<int64_t> box_offsets(const std::vector<int64_t>& dims, const std::vector<bool>& mask, bool want) {
  std::vector<int64_t> strides = strides_of(dims), box_dims, box_strides;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (mask[i] != want) continue;
    box_dims.push_back(dims[i]);
    box_strides.push_back(strides[i]);
  }
  int64_t n = 1;
  for (int64_t d : box_dims) n *= d;
  std::vector<int64_t> out(static_cast<size_t>(n));
  BroadcastWalker w(box_dims, {box_strides});
  for (int64_t i = 0; i < n; ++i, w.next()) out[i] = w.offset(0);
  return out;
}

template <typename T>
T reduce_float(const T* x, const std::vector<int64_t>& offs, Reduce op) {
  double acc = 0;
  switch (op) {
    case Reduce::kMax:
    case Reduce::kMin: {
      const bool is_max = op == Reduce::kMax;
      acc = is_max ? -INFINITY : INFINITY;
      for (int64_t o : offs) {
        double v = convert_to<double>(x[o]);
        if (std::isnan(v) || (is_max ? v > acc : v < acc)) acc = std::isnan(acc) ? acc : v;
      }
      return convert_to<T>(acc);
    }
    case Reduce::kProd:
      acc = 1;
      for (int64_t o : offs) acc *= convert_to<double>(x[o]);
      return convert_to<T>(acc);
    case Reduce::kLogSumExp: {
      double m = -INFINITY;
      for (int64_t o : offs) m = std::max(m, convert_to<double>(x[o]));
      if (std::isinf(m)) return convert_to<T>(m);
      for (int64_t o : offs) acc += std::exp(convert_to<double>(x[o]) - m);
      return convert_to<T>(m + std::log(acc));
    }
    default: break;
  }
  for (int64_t o : offs) {
    double v = convert_to<double>(x[o]);
    acc += op == Reduce::kL1 ? std::fabs(v) : (op == Reduce::kL2 || op == Reduce::kSumSquare) ? v * v : v;
  }
  if (op == Reduce::kMean) acc /= static_cast<double>(offs.size());
  if (op == Reduce::kL2) acc = std::sqrt(acc);
  if (op == Reduce::kLogSum) acc = std::log(acc);
  return convert_to<T>(acc);
}

template <typename T>
T reduce_integer(const T* x, const std::vector<int64_t>& offs, Reduce op) {
  if (op == Reduce::kMax || op == Reduce::kMin) {
    const bool is_max = op == Reduce::kMax;
    T acc = is_max ? std::numeric_limits<T>::lowest() : std::numeric_limits<T>::max();
    for (int64_t o : offs) acc = is_max ? std::max(acc, x[o]) : std::min(acc, x[o]);
    return acc;
  }
  if (op == Reduce::kMean || op == Reduce::kL2 || op == Reduce::kLogSum || op == Reduce::kLogSumExp) {
    // numpy computes these in float64 and truncates back to the integer type.
    double acc = 0;
    for (int64_t o : offs) {
      auto v = static_cast<double>(x[o]);
      acc += op == Reduce::kL2 ? v * v : op == Reduce::kLogSumExp ? std::exp(v) : v;
    }
    if (op == Reduce::kMean) acc /= static_cast<double>(offs.size());
    if (op == Reduce::kL2) acc = std::sqrt(acc);
    if (op == Reduce::kLogSum || op == Reduce::kLogSumExp) acc = std::log(acc);
    return static_cast<T>(acc);
  }
  uint64_t acc = op == Reduce::kProd ? 1 : 0;
  for (int64_t o : offs) {
    auto v = static_cast<int64_t>(x[o]);
    auto u = static_cast<uint64_t>(op == Reduce::kL1 && v < 0 ? -v : v);
    if (op == Reduce::kProd)
      acc *= u;
    else
      acc += op == Reduce::kSumSquare ? u * u : u;
  }
  return static_cast<T>(acc);
}

template <typename T>
T reduce_values(const T* x, const std::vector<int64_t>& offs, Reduce op) {
  if constexpr (std::is_same_v<T, bool>) {
    // Bool is only allowed for Max (any) and Min (all).
    bool acc = op == Reduce::kMin;
    for (int64_t o : offs) acc = op == Reduce::kMax ? (acc || x[o]) : (acc && x[o]);
    return acc;
  } else if constexpr (std::is_floating_point_v<compute_t<T>>) {
    return reduce_float(x, offs, op);
  } else {
    return reduce_integer(x, offs, op);
  }
}

CpuKernelFn reduce_kernel(Reduce op) {
  return [op](CpuKernelContext& ctx) -> Status {
    const Tensor& x = ctx.input(0);
    const std::string& name = ctx.node().op_type;
    std::vector<int64_t> axes;
    if (ctx.has_input(1)) {
      KILN_ASSIGN_OR_RETURN(axes, ctx.input(1).to_i64_vector());
    }
    const bool noop = ctx.node().attr_int("noop_with_empty_axes", 0) != 0;
    std::vector<bool> reduced(static_cast<size_t>(x.rank()), axes.empty() && !noop);
    for (int64_t a : axes) {
      if (a < -x.rank() || a >= x.rank())
        return invalid_model("{}: axis {} is out of range for rank {}", name, a, x.rank());
      reduced[static_cast<size_t>(a < 0 ? a + x.rank() : a)] = true;
    }
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
    constexpr DTypeSet kMinMaxTypes = kNumericTypes | dtype_bit(DType::kBool);
    if (x.dtype() == DType::kBool && op != Reduce::kMax && op != Reduce::kMin)
      return unsupported("{}: dtype bool is not supported", name);
    const std::vector<int64_t> inner = box_offsets(x.dims(), reduced, true);
    const std::vector<int64_t> outer = box_offsets(x.dims(), reduced, false);
    if (static_cast<int64_t>(outer.size()) != y->numel())
      return internal_error("{}: {} outputs for {} inferred elements", name, outer.size(), y->numel());
    return visit_dtype_in<kMinMaxTypes>(x.dtype(), [&]<typename T>() {
      const T* in = x.data<T>();
      T* out = y->mutable_data<T>();
      parallel_for(static_cast<int64_t>(outer.size()), static_cast<int64_t>(inner.size()) + 1,
                   [&](int64_t b, int64_t e) {
                     for (int64_t i = b; i < e; ++i) out[i] = reduce_values(in + outer[i], inner, op);
                   });
      return Status::ok();
    });
  };
}

KILN_CPU_KERNEL("", "ReduceSum", reduce_kernel(Reduce::kSum));
KILN_CPU_KERNEL("", "ReduceMean", reduce_kernel(Reduce::kMean));
KILN_CPU_KERNEL("", "ReduceMax", reduce_kernel(Reduce::kMax));
KILN_CPU_KERNEL("", "ReduceMin", reduce_kernel(Reduce::kMin));
KILN_CPU_KERNEL("", "ReduceProd", reduce_kernel(Reduce::kProd));
KILN_CPU_KERNEL("", "ReduceL1", reduce_kernel(Reduce::kL1));
KILN_CPU_KERNEL("", "ReduceL2", reduce_kernel(Reduce::kL2));
KILN_CPU_KERNEL("", "ReduceLogSum", reduce_kernel(Reduce::kLogSum));
KILN_CPU_KERNEL("", "ReduceLogSumExp", reduce_kernel(Reduce::kLogSumExp));
KILN_CPU_KERNEL("", "ReduceSumSquare", reduce_kernel(Reduce::kSumSquare));

}  // namespace
}  // namespace kiln
