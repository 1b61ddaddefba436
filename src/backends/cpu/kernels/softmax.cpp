// Softmax, LogSoftmax and Hardmax along one axis (the opset-13 form; older
// nodes are rewritten at import). Each slice along the axis is independent.
#include <cmath>
#include <limits>

#include "backends/cpu/kernels/axis_slice.h"
#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

enum class Kind { kSoftmax, kLogSoftmax, kHardmax };

template <typename T>
void normalize_slice(const T* x, T* y, int64_t n, int64_t stride, Kind kind) {
  using C = compute_t<T>;
  // Max first: exp(x - max) cannot overflow, and Hardmax needs its index.
  C max = -std::numeric_limits<C>::infinity();
  int64_t argmax = 0;
  for (int64_t k = 0; k < n; ++k) {
    C v = convert_to<C>(x[k * stride]);
    if (v > max || (k == 0)) max = v, argmax = k;
  }
  if (kind == Kind::kHardmax) {
    for (int64_t k = 0; k < n; ++k) y[k * stride] = convert_to<T>(C(k == argmax ? 1 : 0));
    return;
  }
  C sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += std::exp(convert_to<C>(x[k * stride]) - max);
  const C log_sum = std::log(sum);
  for (int64_t k = 0; k < n; ++k) {
    C shifted = convert_to<C>(x[k * stride]) - max;
    y[k * stride] = convert_to<T>(kind == Kind::kLogSoftmax ? shifted - log_sum : std::exp(shifted) / sum);
  }
}

CpuKernelFn softmax_kernel(Kind kind) {
  return [kind](CpuKernelContext& ctx) -> Status {
    const Tensor& x = ctx.input(0);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
    int64_t axis = ctx.node().attr_int("axis", -1);
    int64_t rank = x.rank();
    if (axis < -std::max<int64_t>(rank, 1) || axis >= std::max<int64_t>(rank, 1))
      return invalid_model("{}: axis {} is out of range for rank {}", ctx.node().op_type, axis, rank);
    if (axis < 0) axis += std::max<int64_t>(rank, 1);
    if (x.numel() == 0) return Status::ok();
    return visit_dtype_in<kFloatTypes>(x.dtype(), [&]<typename T>() {
      const T* in = x.data<T>();
      T* out = y->mutable_data<T>();
      AxisSlices slices(x.dims(), axis);
      slices.for_each([&](int64_t s) {
        int64_t base = slices.base(s);
        normalize_slice(in + base, out + base, slices.n, slices.inner, kind);
      });
      return Status::ok();
    });
  };
}

KILN_CPU_KERNEL("", "Softmax", softmax_kernel(Kind::kSoftmax));
KILN_CPU_KERNEL("", "LogSoftmax", softmax_kernel(Kind::kLogSoftmax));
KILN_CPU_KERNEL("", "Hardmax", softmax_kernel(Kind::kHardmax));

}  // namespace
}  // namespace kiln
