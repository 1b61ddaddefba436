// Random ops. The generator is a 64-bit Mersenne Twister seeded from the
// `seed` attribute (its float bits), or from the system when there is none.
// Uniform and normal draws are computed here, not by <random>'s
// distributions, so a seed gives the same values with every standard library.
#include <cmath>
#include <cstring>
#include <numbers>
#include <random>

#include "backends/cpu/cpu_kernel.h"
#include "backends/cpu/dtype_dispatch.h"

namespace kiln {
namespace {

class Rng {
 public:
  explicit Rng(const Node& n) {
    const Attribute* s = n.attr("seed");
    if (s) {
      float f = n.attr_float("seed", 0);
      uint32_t bits = 0;
      std::memcpy(&bits, &f, sizeof(bits));
      gen_.seed(bits);
    } else {
      gen_.seed((static_cast<uint64_t>(std::random_device{}()) << 32) | std::random_device{}());
    }
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(gen_() >> 11) * 0x1.0p-53; }
  // Standard normal (Box-Muller).
  double normal() {
    double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
  }

 private:
  std::mt19937_64 gen_;
};

Status fill(CpuKernelContext& ctx, Tensor& y, const std::function<double(int64_t)>& draw) {
  return visit_dtype(y.dtype(), kAllPlainTypes, [&]<typename T>() {
    T* out = y.mutable_data<T>();
    for (int64_t i = 0; i < y.numel(); ++i) out[i] = static_cast<T>(draw(i));
    return Status::ok();
  });
}

Status run_uniform(CpuKernelContext& ctx, Tensor& y) {
  Rng rng(ctx.node());
  double lo = ctx.node().attr_float("low", 0), hi = ctx.node().attr_float("high", 1);
  return fill(ctx, y, [&](int64_t) { return lo + (hi - lo) * rng.uniform(); });
}

Status run_normal(CpuKernelContext& ctx, Tensor& y) {
  Rng rng(ctx.node());
  double mean = ctx.node().attr_float("mean", 0), scale = ctx.node().attr_float("scale", 1);
  return fill(ctx, y, [&](int64_t) { return mean + scale * rng.normal(); });
}

Status run_random_uniform(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  return run_uniform(ctx, *y);
}

Status run_random_normal(CpuKernelContext& ctx) {
  KILN_ASSIGN_OR_RETURN(Tensor * y, ctx.allocate_output(0));
  return run_normal(ctx, *y);
}

Status run_random_uniform_like(CpuKernelContext& ctx) {
  return run_uniform(ctx, ctx.allocate_output(0, ctx.input(0).dims()));
}

Status run_random_normal_like(CpuKernelContext& ctx) {
  return run_normal(ctx, ctx.allocate_output(0, ctx.input(0).dims()));
}

Status run_bernoulli(CpuKernelContext& ctx) {
  const Tensor& p = ctx.input(0);
  if (!dtype_is_float(p.dtype())) return invalid_argument("Bernoulli: input must be a float type");
  Rng rng(ctx.node());
  Tensor& y = ctx.allocate_output(0, p.dims());
  return fill(ctx, y, [&](int64_t i) { return rng.uniform() < p.element_as_double(i) ? 1.0 : 0.0; });
}

// Draws class indices from each row's unnormalized log-probabilities.
Status run_multinomial(CpuKernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2 || x.dim(1) < 1) return invalid_argument("Multinomial: input must be [batch, classes >= 1]");
  if (!dtype_is_float(x.dtype())) return invalid_argument("Multinomial: input must be a float type");
  Rng rng(ctx.node());
  int64_t batch = x.dim(0), classes = x.dim(1), samples = ctx.node().attr_int("sample_size", 1);
  Tensor& y = ctx.allocate_output(0, {batch, samples});
  std::vector<double> cdf(static_cast<size_t>(classes));
  std::vector<int64_t> picks(static_cast<size_t>(batch * samples));
  for (int64_t b = 0; b < batch; ++b) {
    double top = -INFINITY;
    for (int64_t c = 0; c < classes; ++c) top = std::max(top, x.element_as_double(b * classes + c));
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c)
      cdf[static_cast<size_t>(c)] = sum += std::exp(x.element_as_double(b * classes + c) - top);
    for (int64_t s = 0; s < samples; ++s) {
      double u = rng.uniform() * sum;
      int64_t c = 0;
      while (c + 1 < classes && cdf[static_cast<size_t>(c)] <= u) ++c;
      picks[static_cast<size_t>(b * samples + s)] = c;
    }
  }
  return fill(ctx, y, [&](int64_t i) { return static_cast<double>(picks[static_cast<size_t>(i)]); });
}

}  // namespace

KILN_CPU_KERNEL("", "RandomUniform", run_random_uniform);
KILN_CPU_KERNEL("", "RandomNormal", run_random_normal);
KILN_CPU_KERNEL("", "RandomUniformLike", run_random_uniform_like);
KILN_CPU_KERNEL("", "RandomNormalLike", run_random_normal_like);
KILN_CPU_KERNEL("", "Bernoulli", run_bernoulli);
KILN_CPU_KERNEL("", "Multinomial", run_multinomial);

}  // namespace kiln
