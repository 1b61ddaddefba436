// Activation kernels with attributes, Clip and PRelu. The element functions
// compute in compute_t<T> (float for 16-bit floats, double for f64).
#include <fmt/ranges.h>

#include <cmath>
#include <limits>

#include "backends/cpu/kernels/elementwise_apply.h"

namespace kiln {
namespace {

// A unary kernel whose element function is made from the node's attributes.
template <DTypeSet kTypes, typename Make>
CpuKernelFn with_attrs(Make make) {
  return [make](CpuKernelContext& ctx) -> Status { return unary_kernel<kTypes>(make(ctx.node()))(ctx); };
}

template <typename C>
C softplus(C x) {
  return x > C(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
}

auto leaky_relu = [](const Node& n) {
  float alpha = n.attr_float("alpha", 0.01f);
  return [alpha](auto x) { return x < 0 ? decltype(x)(alpha) * x : x; };
};
auto elu = [](const Node& n) {
  float alpha = n.attr_float("alpha", 1.0f);
  return [alpha](auto x) { return x < 0 ? decltype(x)(alpha) * (std::exp(x) - 1) : x; };
};
auto selu = [](const Node& n) {
  float alpha = n.attr_float("alpha", 1.67326319217681884765625f);
  float gamma = n.attr_float("gamma", 1.05070102214813232421875f);
  return [alpha, gamma](auto x) {
    using C = decltype(x);
    return x <= 0 ? C(gamma) * (C(alpha) * std::exp(x) - C(alpha)) : C(gamma) * x;
  };
};
auto celu = [](const Node& n) {
  float alpha = n.attr_float("alpha", 1.0f);
  return [alpha](auto x) {
    using C = decltype(x);
    return std::max(C(0), x) + std::min(C(0), C(alpha) * (std::exp(x / C(alpha)) - 1));
  };
};
auto hard_sigmoid = [](const Node& n) {
  float alpha = n.attr_float("alpha", 0.2f), beta = n.attr_float("beta", 0.5f);
  return [alpha, beta](auto x) {
    using C = decltype(x);
    return std::max(C(0), std::min(C(1), C(alpha) * x + C(beta)));
  };
};
auto hard_swish = [](const Node&) {
  return [](auto x) {
    using C = decltype(x);
    return x * std::max(C(0), std::min(C(1), x / C(6) + C(0.5)));
  };
};
auto mish = [](const Node&) { return [](auto x) { return x * std::tanh(softplus(x)); }; };
auto gelu = [](const Node& n) {
  bool tanh_approx = n.attr_string("approximate", "none") == "tanh";
  return [tanh_approx](auto x) {
    using C = decltype(x);
    if (tanh_approx) {
      const C k = std::sqrt(C(2) / C(M_PI));
      return C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x)));
    }
    return C(0.5) * x * (C(1) + std::erf(x / std::sqrt(C(2))));
  };
};
auto thresholded_relu = [](const Node& n) {
  float alpha = n.attr_float("alpha", 1.0f);
  return [alpha](auto x) { return x > decltype(x)(alpha) ? x : decltype(x)(0); };
};
// Shrink also takes integers: the bounds compare as double, the result is x's type.
auto shrink = [](const Node& n) {
  double lambd = n.attr_float("lambd", 0.5f), bias = n.attr_float("bias", 0.0f);
  return [lambd, bias](auto x) {
    using C = decltype(x);
    auto d = static_cast<double>(x);
    if (d < -lambd) return static_cast<C>(d + bias);
    if (d > lambd) return static_cast<C>(d - bias);
    return C(0);
  };
};
auto swish = [](const Node& n) {
  float alpha = n.attr_float("alpha", 1.0f);
  return [alpha](auto x) {
    using C = decltype(x);
    return x / (C(1) + std::exp(-C(alpha) * x));
  };
};

// Clip's bounds are optional scalars; any numeric dtype is read (the opset < 11
// upgrade gives f32 bounds for any input dtype).
template <typename T>
Expected<compute_t<T>> clip_bound(const CpuKernelContext& ctx, size_t i, compute_t<T> fallback) {
  if (!ctx.has_input(i)) return fallback;
  const Tensor& b = ctx.input(i);
  if (b.numel() != 1) return invalid_model("Clip: {} must hold one element, got {}", i == 1 ? "min" : "max", b.numel());
  if (b.dtype() == ctx.input(0).dtype()) return convert_to<compute_t<T>>(b.data<T>()[0]);
  return static_cast<compute_t<T>>(b.element_as_double(0));
}

Status run_clip(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  return visit_dtype_in<kNumericTypes>(x.dtype(), [&]<typename T>() -> Status {
    using C = compute_t<T>;
    KILN_ASSIGN_OR_RETURN(C lo, clip_bound<T>(ctx, 1, std::numeric_limits<C>::lowest()));
    KILN_ASSIGN_OR_RETURN(C hi, clip_bound<T>(ctx, 2, std::numeric_limits<C>::max()));
    map_elements<T, T>(x, *y, [&](T v) {
      C c = convert_to<C>(v);
      c = c < lo ? lo : c;  // NaN stays NaN; min > max gives max (the spec)
      c = c > hi ? hi : c;
      return convert_to<T>(c);
    });
    return Status::ok();
  });
}

Status run_prelu(CpuKernelContext& ctx) {
  const Tensor &x = ctx.input(0), &slope = ctx.input(1);
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  if (y->dims() != x.dims())
    return invalid_model("PRelu: slope {} does not broadcast to X {}", fmt::join(slope.dims(), "x"),
                         fmt::join(x.dims(), "x"));
  return visit_dtype_in<kNumericTypes>(x.dtype(), [&]<typename T>() {
    using C = compute_t<T>;
    map_broadcast<T, T, T>(x, slope, *y, [](T a, T s) {
      C v = convert_to<C>(a);
      return v < C(0) ? convert_to<T>(convert_to<C>(s) * v) : a;
    });
    return Status::ok();
  });
}

KILN_CPU_KERNEL("", "LeakyRelu", with_attrs<kFloatTypes>(leaky_relu));
KILN_CPU_KERNEL("", "Elu", with_attrs<kFloatTypes>(elu));
KILN_CPU_KERNEL("", "Selu", with_attrs<kFloatTypes>(selu));
KILN_CPU_KERNEL("", "Celu", with_attrs<kFloatTypes>(celu));
KILN_CPU_KERNEL("", "HardSigmoid", with_attrs<kFloatTypes>(hard_sigmoid));
KILN_CPU_KERNEL("", "HardSwish", with_attrs<kFloatTypes>(hard_swish));
KILN_CPU_KERNEL("", "Mish", with_attrs<kFloatTypes>(mish));
KILN_CPU_KERNEL("", "Gelu", with_attrs<kFloatTypes>(gelu));
KILN_CPU_KERNEL("", "ThresholdedRelu", with_attrs<kFloatTypes>(thresholded_relu));
KILN_CPU_KERNEL("", "Shrink", with_attrs<kNumericTypes>(shrink));
KILN_CPU_KERNEL("", "Swish", with_attrs<kFloatTypes>(swish));
KILN_CPU_KERNEL("", "Clip", run_clip);
KILN_CPU_KERNEL("", "PRelu", run_prelu);

}  // namespace
}  // namespace kiln
