// Loops shared by the elementwise CPU kernels: map one tensor, map two with
// numpy broadcasting, fold many with broadcasting. Element functions take and
// return the element types; 16-bit floats go through float (compute_t).
#pragma once

#include <type_traits>
#include <vector>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"
#include "backends/cpu/index_util.h"
#include "support/parallel.h"

namespace kiln {

// Converts a number to element type To (16-bit floats round from float).
template <typename To, typename From>
To convert_to(From v) {
  if constexpr (std::is_same_v<To, Half> || std::is_same_v<To, BFloat16>) {
    return To(static_cast<float>(v));
  } else if constexpr (std::is_same_v<From, Half> || std::is_same_v<From, BFloat16>) {
    return static_cast<To>(static_cast<float>(v));
  } else {
    return static_cast<To>(v);
  }
}

// out[i] = f(in[i]) over every element.
template <typename TIn, typename TOut, typename F>
void map_elements(const Tensor& in, Tensor& out, F f) {
  const TIn* x = in.data<TIn>();
  TOut* y = out.mutable_data<TOut>();
  parallel_for(in.numel(), 8, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) y[i] = f(x[i]);
  });
}

// out = f(a, b) with a and b broadcast to out's dims (numpy rules).
template <typename TA, typename TB, typename TOut, typename F>
void map_broadcast(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TOut* po = out.mutable_data<TOut>();
  const int64_t n = out.numel();
  if (n == 0) return;
  const bool a_full = a.dims() == out.dims(), b_full = b.dims() == out.dims();
  if ((a_full || a.numel() == 1) && (b_full || b.numel() == 1)) {
    // The common cases (same shape, or a scalar operand) need no index walk.
    const int64_t sa = a_full ? 1 : 0, sb = b_full ? 1 : 0;
    parallel_for(n, 8, [&](int64_t s, int64_t e) {
      for (int64_t i = s; i < e; ++i) po[i] = f(pa[i * sa], pb[i * sb]);
    });
    return;
  }
  BroadcastWalker w(out.dims(), {broadcast_strides(a.dims(), out.dims()), broadcast_strides(b.dims(), out.dims())});
  for (int64_t i = 0; i < n; ++i, w.next()) po[i] = f(pa[w.offset(0)], pb[w.offset(1)]);
}

// out[i] = finish(step(...step(step(in0, in1), in2)...)) with every input
// broadcast to out's dims; the fold runs in compute_t<T>.
template <typename T, typename Step, typename Finish>
void fold_broadcast(const std::vector<const Tensor*>& ins, Tensor& out, Step step, Finish finish) {
  using C = compute_t<T>;
  std::vector<std::vector<int64_t>> strides;
  std::vector<const T*> ptrs;
  for (const Tensor* t : ins) {
    strides.push_back(broadcast_strides(t->dims(), out.dims()));
    ptrs.push_back(t->data<T>());
  }
  T* po = out.mutable_data<T>();
  const int64_t n = out.numel();
  BroadcastWalker w(out.dims(), strides);
  for (int64_t i = 0; i < n; ++i, w.next()) {
    C acc = convert_to<C>(ptrs[0][w.offset(0)]);
    for (size_t k = 1; k < ptrs.size(); ++k) acc = step(acc, convert_to<C>(ptrs[k][w.offset(k)]));
    po[i] = convert_to<T>(finish(acc));
  }
}

// visit_dtype, but instantiating fn only for the dtypes in kAllowed, so an
// element function may use operations that only some types have (~, %, <<).
#define KILN_VISIT_CASE(DT, T)                                                         \
  case DT:                                                                             \
    if constexpr ((kAllowed & dtype_bit(DT)) != 0) return fn.template operator()<T>(); \
    break;

template <DTypeSet kAllowed, typename Fn>
Status visit_dtype_in(DType t, Fn&& fn) {
  switch (t) {
    KILN_VISIT_CASE(DType::kF32, float)
    KILN_VISIT_CASE(DType::kF64, double)
    KILN_VISIT_CASE(DType::kF16, Half)
    KILN_VISIT_CASE(DType::kBF16, BFloat16)
    KILN_VISIT_CASE(DType::kI8, int8_t)
    KILN_VISIT_CASE(DType::kI16, int16_t)
    KILN_VISIT_CASE(DType::kI32, int32_t)
    KILN_VISIT_CASE(DType::kI64, int64_t)
    KILN_VISIT_CASE(DType::kU8, uint8_t)
    KILN_VISIT_CASE(DType::kU16, uint16_t)
    KILN_VISIT_CASE(DType::kU32, uint32_t)
    KILN_VISIT_CASE(DType::kU64, uint64_t)
    KILN_VISIT_CASE(DType::kBool, bool)
    default: break;
  }
  return unsupported("dtype {} is not supported here", dtype_name(t));
}

#undef KILN_VISIT_CASE

// A kernel applying f (on compute_t<T> values) to each element of input 0,
// for the dtypes in `types`; output 0 has input 0's dtype.
template <DTypeSet kTypes, typename F>
CpuKernelFn unary_kernel(F f) {
  return [f](CpuKernelContext& ctx) -> Status {
    const Tensor& x = ctx.input(0);
    KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
    return visit_dtype_in<kTypes>(x.dtype(), [&]<typename T>() {
      using C = compute_t<T>;
      map_elements<T, T>(x, *y, [&](T v) { return convert_to<T>(f(convert_to<C>(v))); });
      return Status::ok();
    });
  };
}

}  // namespace kiln
