// Det: the determinant of each [..., M, M] matrix by LU decomposition with
// partial pivoting, in double.
#include <cmath>
#include <utility>

#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

double determinant(std::vector<double>& a, int64_t n) {
  double det = 1;
  for (int64_t c = 0; c < n; ++c) {
    int64_t pivot = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[pivot * n + c])) pivot = r;
    if (a[pivot * n + c] == 0) return 0;
    if (pivot != c) {
      for (int64_t k = 0; k < n; ++k) std::swap(a[c * n + k], a[pivot * n + k]);
      det = -det;
    }
    det *= a[c * n + c];
    for (int64_t r = c + 1; r < n; ++r) {
      double f = a[r * n + c] / a[c * n + c];
      for (int64_t k = c; k < n; ++k) a[r * n + k] -= f * a[c * n + k];
    }
  }
  return det;
}

Status run_det(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2 || x.dim(x.rank() - 1) != x.dim(x.rank() - 2))
    return invalid_model("Det: input must be [..., M, M], got rank {}", x.rank());
  const int64_t n = x.dim(x.rank() - 1);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  return visit_dtype_in<kFloatTypes>(x.dtype(), [&]<typename T>() {
    const T* in = x.data<T>();
    T* out = y->mutable_data<T>();
    parallel_for(y->numel(), n * n * n, [&](int64_t b, int64_t e) {
      std::vector<double> m(static_cast<size_t>(n * n));
      for (int64_t i = b; i < e; ++i) {
        for (int64_t k = 0; k < n * n; ++k) m[k] = convert_to<double>(in[i * n * n + k]);
        out[i] = convert_to<T>(determinant(m, n));
      }
    });
    return Status::ok();
  });
}

}  // namespace

KILN_CPU_KERNEL("", "Det", run_det);

}  // namespace kiln
