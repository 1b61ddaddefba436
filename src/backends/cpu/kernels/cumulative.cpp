// CumSum and CumProd along the axis given as input 1, with the exclusive
// (shifted by one, starting at the identity) and reverse options.
#include "backends/cpu/kernels/axis_slice.h"
#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

CpuKernelFn cumulative_kernel(bool product) {
  return [product](CpuKernelContext& ctx) -> Status {
    const Tensor& x = ctx.input(0);
    const std::string& name = ctx.node().op_type;
    KILN_ASSIGN_OR_RETURN(std::vector<int64_t> axis_v, ctx.input(1).to_i64_vector());
    if (axis_v.size() != 1) return invalid_model("{}: axis must hold one element, got {}", name, axis_v.size());
    int64_t axis = axis_v[0], rank = x.rank();
    if (axis < -rank || axis >= rank) return invalid_model("{}: axis {} is out of range for rank {}", name, axis, rank);
    if (axis < 0) axis += rank;
    const bool exclusive = ctx.node().attr_int("exclusive", 0) != 0;
    const bool reverse = ctx.node().attr_int("reverse", 0) != 0;
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
    AxisSlices slices(x.dims(), axis);
    return visit_dtype_in<kNumericTypes>(x.dtype(), [&]<typename T>() {
      using C = compute_t<T>;
      const T* in = x.data<T>();
      T* out = y->mutable_data<T>();
      slices.for_each([&](int64_t s) {
        const int64_t base = slices.base(s);
        C acc = product ? C(1) : C(0);
        for (int64_t j = 0; j < slices.n; ++j) {
          int64_t k = reverse ? slices.n - 1 - j : j;
          int64_t at = base + k * slices.inner;
          C v = convert_to<C>(in[at]);
          if (!exclusive) acc = product ? static_cast<C>(acc * v) : static_cast<C>(acc + v);
          out[at] = convert_to<T>(acc);
          if (exclusive) acc = product ? static_cast<C>(acc * v) : static_cast<C>(acc + v);
        }
      });
      return Status::ok();
    });
  };
}

KILN_CPU_KERNEL("", "CumSum", cumulative_kernel(false));
KILN_CPU_KERNEL("", "CumProd", cumulative_kernel(true));

}  // namespace
}  // namespace kiln
