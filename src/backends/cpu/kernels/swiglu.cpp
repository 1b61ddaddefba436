// SwiGLU (opset 28): Y = A * sigmoid(alpha * A) * B, elementwise on equal
// shapes. Each step is rounded to the dtype as the reference computes it.
#include <cmath>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/kernels/float_io.h"
#include "support/parallel.h"

namespace kiln {
namespace {

Status run_swiglu(CpuKernelContext& ctx) {
  const Tensor &a = ctx.input(0), &b = ctx.input(1);
  if (a.dims() != b.dims() || a.dtype() != b.dtype())
    return invalid_model("SwiGLU: A {} and B {} must have one shape and dtype", Shape::of(a.dims()).to_string(),
                         Shape::of(b.dims()).to_string());
  const double alpha = ctx.node().attr_float("alpha", 1.0f);
  KILN_ASSIGN_OR_RETURN(Tensor * out, ctx.allocate_output(0));
  return visit_dtype(a.dtype(), kFloatTypes, [&]<typename T>() -> Status {
    if constexpr (!kIsFloatElement<T>)
      return internal_error("not a float type");
    else {
      using C = compute_t<T>;
      auto r = [](C v) { return static_cast<C>(T(v)); };
      const T *pa = a.data<T>(), *pb = b.data<T>();
      T* y = out->mutable_data<T>();
      parallel_for(a.numel(), 16, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          C x = pa[i];
          C sig = r(C(1) / r(C(1) + r(std::exp(r(static_cast<C>(-alpha) * x)))));
          y[i] = T(r(r(x * sig) * static_cast<C>(pb[i])));
        }
      });
      return Status::ok();
    }
  });
}

}  // namespace

KILN_CPU_KERNEL("", "SwiGLU", run_swiglu);

}  // namespace kiln
