// ArgMax and ArgMin along one axis. NaN wins (numpy's argmax/argmin return the
// first NaN); select_last_index picks the last of equal values instead.
#include <cmath>

#include "backends/cpu/kernels/axis_slice.h"
#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

CpuKernelFn arg_kernel(bool is_max) {
  return [is_max](CpuKernelContext& ctx) -> Status {
    const Tensor& x = ctx.input(0);
    int64_t axis = ctx.node().attr_int("axis", 0);
    const bool last = ctx.node().attr_int("select_last_index", 0) != 0;
    int64_t rank = std::max<int64_t>(x.rank(), 1);
    if (axis < -rank || axis >= rank)
      return invalid_model("{}: axis {} is out of range for rank {}", ctx.node().op_type, axis, x.rank());
    if (axis < 0) axis += rank;
    AxisSlices slices(x.dims(), axis);
    if (slices.n == 0 && slices.count() > 0)
      return invalid_model("{}: the reduced axis {} is empty", ctx.node().op_type, axis);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
    int64_t* out = y->mutable_data<int64_t>();
    return visit_dtype_in<kNumericTypes>(x.dtype(), [&]<typename T>() {
      using C = compute_t<T>;
      const T* in = x.data<T>();
      auto better = [&](C v, C best) {
        bool vn = v != v, bn = best != best;  // NaN checks that also compile for integers
        if (vn || bn) return vn && (!bn || last);
        if (last) return is_max ? v >= best : v <= best;
        return is_max ? v > best : v < best;
      };
      slices.for_each([&](int64_t s) {
        const T* p = in + slices.base(s);
        int64_t best_k = 0;
        C best = convert_to<C>(p[0]);
        for (int64_t k = 1; k < slices.n; ++k) {
          C v = convert_to<C>(p[k * slices.inner]);
          if (better(v, best)) best = v, best_k = k;
        }
        out[s] = best_k;
      });
      return Status::ok();
    });
  };
}

KILN_CPU_KERNEL("", "ArgMax", arg_kernel(true));
KILN_CPU_KERNEL("", "ArgMin", arg_kernel(false));

}  // namespace
}  // namespace kiln
